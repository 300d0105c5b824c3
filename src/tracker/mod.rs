//! The idempotency tracker: HTTP events in, alerts out.
//!
//! Sees transactions only, never packets: a request when it was fully received (the order in
//! which keys are first used, what is in flight), and its exchange when it ended (the
//! responses). Request-side kinds are judged when the request arrives and written when its
//! exchange ends, with its response; response-side kinds when the responses are known. Every
//! window and limit comes from [`TrackerConfig`]; state is bounded and forgets in capture time.

pub mod persist;
pub mod rules;
pub mod scope;
pub mod shared;
pub mod store;

use foldhash::HashMap;
use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use thin_vec::{ThinVec, thin_vec};

pub use rules::{AlertKind, Severity};
pub use scope::{Identity, Scope, ScopeParts};

use crate::http::{Conn, HttpEvent, Request, Response, Transaction, TxId};
use crate::stats::Stats;
use crate::ts::Timestamp;
use rules::{KeyProblem, ReplayVerdict};
use store::ExpiringMap;

/// `--missing-key`: which keyless requests are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MissingKeyMode {
    /// Endpoints that an earlier keyed request reached, and `--require-key` prefixes.
    Learned,
    /// Every request with a watched method.
    All,
    /// As learned, but `missing_key` itself is never raised.
    Off,
}

/// Every knob of the policy, with the contract's defaults.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// How long a key is remembered (keys are kept one more window to see `late_retry`).
    pub window: Duration,
    /// Identical keyless requests within this are `keyless_duplicate`.
    pub duplicate_window: Duration,
    /// A fresh key within this after the first attempt ended badly is `key_churn`.
    pub churn_window: Duration,
    /// Methods whose keyless requests are judged (upper case).
    pub watch_methods: Vec<String>,
    /// Path prefixes where every watched request must carry a key.
    pub require_key: Vec<String>,
    pub missing_key: MissingKeyMode,
    /// Statuses that reject a request.
    pub reject_statuses: Vec<u16>,
    /// 5xx responses become stored results (as Stripe API v1 does).
    pub store_errors: bool,
    /// Write key hashes instead of keys.
    pub redact_keys: bool,
    /// Keys tracked at most; the oldest are evicted beyond it.
    pub max_keys: usize,
    pub max_key_len: usize,
    pub scope: ScopeParts,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            window: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(60),
            churn_window: Duration::from_secs(60),
            watch_methods: vec!["POST".into(), "PATCH".into()],
            require_key: Vec::new(),
            missing_key: MissingKeyMode::Learned,
            reject_statuses: vec![400, 409, 422],
            store_errors: false,
            redact_keys: false,
            max_keys: 1_000_000,
            max_key_len: 255,
            scope: ScopeParts::default(),
        }
    }
}

/// Where a request seen by another instance was seen (fleet mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The instance that saw it (`--store-instance`).
    pub observer: Box<str>,
    /// Its capture file there, when it read files.
    pub file: Option<Box<str>>,
}

/// A request as the tracker keeps it: what the `request` and `original` objects print, and
/// nothing else (a key's first request is kept for a window or two, so it is kept small).
#[derive(Debug, Clone)]
pub struct ReqRec {
    pub id: TxId,
    /// Shared by every request of the connection.
    pub conn: Arc<Conn>,
    pub ts: Timestamp,
    /// Inline up to 24 bytes: most methods, hosts and paths cost no allocation of their own.
    pub method: CompactString,
    pub path: CompactString,
    pub host: Option<CompactString>,
    /// The first key, unquoted.
    pub key: Option<Box<str>>,
    /// Every key value, when several key header lines were sent.
    pub all_keys: Option<Box<[String]>>,
    pub body_len: u64,
    pub body_sha256: Option<[u8; 32]>,
    pub body_canon_sha256: Option<[u8; 32]>,
    pub body_complete: bool,
    pub body_missing: u64,
    pub vlans: crate::decode::Vlans,
    /// Set when another instance saw it (fleet mode); `None` for this instance's own.
    pub origin: Option<Arc<Origin>>,
}

/// A response as the tracker keeps it (a key's stored result lives a window or two).
#[derive(Debug)]
pub struct RespRec {
    pub ts: Timestamp,
    pub status: u16,
    pub interim: Box<[u16]>,
    pub body_len: u64,
    pub body_sha256: Option<[u8; 32]>,
    pub body_complete: bool,
    pub body_missing: u64,
    pub resource_id: Option<Box<str>>,
    pub replayed: bool,
}

impl RespRec {
    pub fn new(r: &Response) -> RespRec {
        RespRec {
            ts: r.ts,
            status: r.status,
            interim: r.interim.as_slice().into(),
            body_len: r.body.len,
            body_sha256: r.body.sha256,
            body_complete: r.body.complete,
            body_missing: r.body.missing,
            resource_id: r.resource_id.as_deref().map(Into::into),
            replayed: r.replayed,
        }
    }
}

impl ReqRec {
    pub fn new(id: TxId, conn: &Arc<Conn>, req: &Request) -> ReqRec {
        ReqRec {
            id,
            conn: conn.clone(),
            ts: req.ts,
            method: CompactString::new(&req.method),
            path: CompactString::new(&req.path),
            host: req.host.as_deref().map(CompactString::new),
            key: req.idempotency_key().map(Into::into),
            all_keys: (req.keys.len() > 1).then(|| req.keys.iter().map(|k| k.key()).collect()),
            body_len: req.body.len,
            body_sha256: req.body.sha256,
            body_canon_sha256: req.body.canon_sha256,
            body_complete: req.body.complete,
            body_missing: req.body.missing,
            vlans: req.vlans,
            origin: None,
        }
    }
}

/// One alert, ready for output.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Capture time when it was raised.
    pub ts: Timestamp,
    pub kind: AlertKind,
    /// The key of the request the alert is about (for `key_churn`, the new key).
    pub key: Option<String>,
    /// Every key value, when several key header lines were sent.
    pub all_keys: Option<Vec<String>>,
    pub scope: Scope,
    pub request: Arc<ReqRec>,
    pub original: Option<Arc<ReqRec>>,
    pub response: Option<Arc<RespRec>>,
    pub original_response: Option<Arc<RespRec>>,
}

/// A key as the tables hold it: 128 bits of its SHA-256, not the string (the string stays in
/// the request kept for output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 16]);

impl KeyId {
    pub fn of(key: &str) -> KeyId {
        use sha2::Digest;
        let d = sha2::Sha256::digest(key.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(d.get(..16).unwrap_or(&[0; 16]));
        KeyId(out)
    }

    pub fn bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A key hash as filed (fleet mode).
    pub fn from_bytes(b: [u8; 16]) -> KeyId {
        KeyId(b)
    }
}

fn normalized_key_headers<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .map(|n| n.as_ref().trim().to_ascii_lowercase())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// An alert judged at request time, written when its exchange ends.
#[derive(Debug, Clone)]
struct Pending {
    kind: AlertKind,
    original: Option<Arc<ReqRec>>,
    original_tx: Option<TxId>,
    original_response: Option<Arc<RespRec>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The key's first use (in its window).
    First,
    /// Same key, same request.
    Retry,
    /// Same key, same canonical request, other bytes.
    Reencoded,
    /// Same key, another request.
    Conflict,
    /// No key, an empty key, or a body that cannot be compared.
    Untracked,
}

/// A later request waiting for an earlier one's outcome.
#[derive(Debug, Clone)]
struct Waiter {
    kind: AlertKind,
    later: TxId,
}

/// A request between its arrival and the end of its exchange.
struct InFlight {
    rec: Arc<ReqRec>,
    identity: Option<Identity>,
    /// The tracked key's hash (when the key is tracked).
    key_id: Option<KeyId>,
    scope: Scope,
    key: Option<String>,
    role: Role,
    pending: Vec<Pending>,
    waiters: Vec<Waiter>,
}

/// A request whose exchange ended but that still waits for an earlier one (`concurrent_reuse`,
/// `key_churn`).
struct Finished {
    rec: Arc<ReqRec>,
    scope: Scope,
    key: Option<String>,
    response: Option<Arc<RespRec>>,
    waiting_on: usize,
}

/// What the tracker remembers of a key.
struct KeyEntry {
    first: Arc<ReqRec>,
    identity: Option<Identity>,
    decoded: Option<[u8; 32]>,
    first_ts: Timestamp,
    first_response: Option<Arc<RespRec>>,
    stored: Option<Arc<RespRec>>,
    in_flight: ThinVec<TxId>,
    /// Conflicting requests answered 2xx before a result was stored.
    conflicts_waiting: ThinVec<(Arc<ReqRec>, Arc<RespRec>)>,
}

/// The last keyed attempt at a request (for `key_churn`).
struct Attempt {
    key: KeyId,
    tx: TxId,
    rec: Arc<ReqRec>,
    /// When it ended, whether badly (unanswered, aborted, 5xx, 409), and its response.
    ended: Option<(Timestamp, bool, Option<Arc<RespRec>>)>,
}

/// The last keyless request (for `keyless_duplicate`).
struct Keyless {
    rec: Arc<ReqRec>,
    tx: TxId,
    response: Option<Arc<RespRec>>,
}

/// The tracker's state.
pub struct Tracker {
    cfg: TrackerConfig,
    /// Boxed: the table runs at half load after it grows, and a box keeps empty slots small.
    keys: ExpiringMap<(Scope, KeyId), Box<KeyEntry>>,
    attempts: ExpiringMap<(Scope, Identity), Attempt>,
    keyless: ExpiringMap<(Scope, Identity), Keyless>,
    /// Learned endpoints, with the deadline last set.
    endpoints: ExpiringMap<String, Timestamp>,
    in_flight: HashMap<TxId, InFlight>,
    /// For each request, how many in-flight requests hold a waiter for it: kept with the
    /// waiters, so that an exchange's end does not scan everything in flight (100k requests
    /// that all end at once would take quadratic time).
    waited_on: HashMap<TxId, usize>,
    finished: HashMap<TxId, Finished>,
    /// Responses of recent exchanges that others may cite as `original_response`.
    responses: HashMap<TxId, Option<Arc<RespRec>>>,
    /// The header names that carry keys (lower case, sorted): never read by the tracker, only
    /// part of the saved state's fingerprint (see `persist`).
    key_headers: Vec<String>,
    /// Fleet mode: what other instances should learn is recorded in `published`.
    publishing: bool,
    published: Vec<shared::Publish>,
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Tracker {
        let cap = cfg.max_keys.max(1);
        Tracker {
            keys: ExpiringMap::new(cap),
            attempts: ExpiringMap::new(cap),
            keyless: ExpiringMap::new(cap),
            endpoints: ExpiringMap::new(cap),
            in_flight: HashMap::default(),
            waited_on: HashMap::default(),
            finished: HashMap::default(),
            responses: HashMap::default(),
            key_headers: normalized_key_headers(crate::http::DEFAULT_KEY_HEADERS),
            publishing: false,
            published: Vec::new(),
            cfg,
        }
    }

    /// A tracker for a run whose key header names are `key_headers` (`http::Settings::key_headers`):
    /// the same tracker as [`Tracker::new`], but its saved state remembers those names, so that
    /// state saved under other names is set aside on load.
    pub fn with_key_headers<S: AsRef<str>>(cfg: TrackerConfig, key_headers: &[S]) -> Tracker {
        let mut t = Tracker::new(cfg);
        t.key_headers = normalized_key_headers(key_headers);
        t
    }

    /// The key header names its saved state is fingerprinted with (lower case, sorted).
    pub fn key_headers(&self) -> &[String] {
        &self.key_headers
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Takes the policy options that can change while running (SIGHUP): the windows,
    /// `--require-key`, `--missing-key`, `--reject-statuses` and `--store-errors`. The rest would change how keys already tracked are filed or which
    /// bodies are measured, and needs a restart: their names are returned when they differ.
    pub fn reconfigure(&mut self, new: TrackerConfig) -> Vec<&'static str> {
        let mut restart = Vec::new();
        if new.scope != self.cfg.scope {
            restart.push("scope");
        }
        if new.max_keys != self.cfg.max_keys {
            restart.push("max-keys");
        }
        if new.watch_methods != self.cfg.watch_methods {
            restart.push("watch-methods");
        }
        if new.redact_keys != self.cfg.redact_keys {
            restart.push("redact-keys");
        }
        let c = &mut self.cfg;
        c.window = new.window;
        c.duplicate_window = new.duplicate_window;
        c.churn_window = new.churn_window;
        c.require_key = new.require_key;
        c.missing_key = new.missing_key;
        c.reject_statuses = new.reject_statuses;
        c.store_errors = new.store_errors;
        restart
    }

    /// Keys currently tracked.
    pub fn tracked_keys(&self) -> usize {
        self.keys.len()
    }

    /// Takes one HTTP event; appends the alerts it raises.
    pub fn on_event(
        &mut self,
        ev: &HttpEvent,
        now: Timestamp,
        stats: &mut Stats,
        out: &mut Vec<Alert>,
    ) {
        self.expire(now, stats);
        match ev {
            HttpEvent::Request { id, conn, request } => {
                self.on_request(*id, conn, request, stats);
            }
            HttpEvent::Transaction(tx) => {
                if let Some(req) = &tx.request
                    && !self.in_flight.contains_key(&tx.id)
                {
                    // Its request event never came (the connection dropped it): judge it now.
                    self.on_request(tx.id, &tx.conn, req, stats);
                }
                self.on_done(tx, stats, out);
            }
        }
    }

    fn expire(&mut self, now: Timestamp, stats: &mut Stats) {
        let expired = self.keys.expire(now).len() + self.attempts.expire(now).len();
        stats.tracker_keys_expired += expired as u64;
        self.keyless.expire(now);
        self.endpoints.expire(now);
    }

    fn watched(&self, req: &Request) -> bool {
        let m = req.method.to_ascii_uppercase();
        if !self.cfg.watch_methods.contains(&m) {
            return false;
        }
        if self.cfg.missing_key == MissingKeyMode::All {
            return true;
        }
        let path = req.path.split('?').next().unwrap_or("");
        self.cfg
            .require_key
            .iter()
            .any(|p| path.starts_with(p.as_str()))
            || self.endpoints.get(&scope::endpoint(req)).is_some()
    }

    fn on_request(&mut self, id: TxId, conn: &Arc<Conn>, req: &Request, stats: &mut Stats) {
        stats.tracker_requests += 1;
        let now = req.ts_end;
        let rec = Arc::new(ReqRec::new(id, conn, req));
        let scope = Scope::of(req, self.cfg.scope);
        let identity = Identity::of(req);
        let mut pending = Vec::new();
        let mut waits: Vec<(TxId, AlertKind)> = Vec::new();
        let window = nanos(self.cfg.window);

        // invalid_key
        let problem = rules::key_problem(&req.keys, self.cfg.max_key_len);
        if problem.is_some() {
            pending.push(Pending {
                kind: AlertKind::InvalidKey,
                original: None,
                original_tx: None,
                original_response: None,
            });
        }
        if !req.keys.is_empty() {
            // Any key header line, valid or not, teaches that this endpoint takes keys.
            let ep = scope::endpoint(req);
            let deadline = now.add_nanos(window);
            match self.endpoints.get_mut(&ep) {
                // Moving a deadline queues an entry: do it only when it moved by a quarter of
                // the window, not on every request to a busy endpoint.
                Some(d) if deadline.since(*d) > window / 4 => {
                    *d = deadline;
                    self.endpoints.touch(&ep, deadline);
                    self.publish(shared::Publish::Endpoint { name: ep, deadline });
                }
                Some(_) => {}
                None => {
                    self.endpoints.insert(ep.clone(), deadline, deadline);
                    self.publish(shared::Publish::Endpoint { name: ep, deadline });
                }
            }
        }
        let key = req
            .idempotency_key()
            .filter(|k| !k.is_empty() && problem != Some(KeyProblem::Empty));
        let mut role = Role::Untracked;

        if let Some(k) = &key {
            if identity.is_none() {
                stats.tracker_incomplete_skipped += 1;
            }
            let kid = KeyId::of(k);
            let map_key = (scope, kid);
            let mut start_new = true;
            if let Some(e) = self.keys.get_mut(&map_key) {
                let age = now.since(e.first_ts);
                match (identity, e.identity) {
                    // This request began before the one taken as the key's first, which was
                    // only fully received earlier (this one's end waited on a capture hole):
                    // which came first is unknown, so neither is judged against the other.
                    (Some(_), Some(_)) if req.ts < e.first.ts => {
                        start_new = false;
                        stats.tracker_order_unknown_skipped += 1;
                    }
                    (Some(ident), Some(first_ident)) => {
                        let same = ident == first_ident;
                        if age <= window {
                            start_new = false;
                            role = if !same {
                                Role::Conflict
                            } else if req.body.decoded_sha256 != e.decoded {
                                Role::Reencoded
                            } else {
                                Role::Retry
                            };
                            let kind = match role {
                                Role::Conflict => Some(AlertKind::KeyConflict),
                                Role::Reencoded => Some(AlertKind::KeyReencoded),
                                _ => None,
                            };
                            if let Some(kind) = kind {
                                pending.push(Pending {
                                    kind,
                                    original: Some(e.first.clone()),
                                    original_tx: Some(e.first.id),
                                    original_response: e.first_response.clone(),
                                });
                            }
                            if let Some(earlier) = e.in_flight.first() {
                                waits.push((*earlier, AlertKind::ConcurrentReuse));
                            }
                            e.in_flight.push(id);
                        } else if same {
                            // After the window the server has forgotten the key: it runs
                            // the request again.
                            pending.push(Pending {
                                kind: AlertKind::LateRetry,
                                original: Some(e.first.clone()),
                                original_tx: Some(e.first.id),
                                original_response: e.first_response.clone(),
                            });
                        }
                    }
                    _ => {
                        // A body that cannot be compared: neither judged nor a new first use.
                        if age <= window {
                            start_new = false;
                            role = Role::Untracked;
                            if let Some(earlier) = e.in_flight.first() {
                                waits.push((*earlier, AlertKind::ConcurrentReuse));
                            }
                            e.in_flight.push(id);
                        }
                    }
                }
            }
            if start_new && identity.is_some() {
                role = Role::First;
                let entry = Box::new(KeyEntry {
                    first: rec.clone(),
                    identity,
                    decoded: req.body.decoded_sha256,
                    first_ts: now,
                    first_response: None,
                    stored: None,
                    in_flight: thin_vec![id],
                    conflicts_waiting: ThinVec::new(),
                });
                let r = self.keys.insert(map_key, entry, now.add_nanos(2 * window));
                stats.tracker_keys_evicted += r.evicted;
            }
            // key_churn: the same request under another key while the first attempt may run.
            if let Some(ident) = identity {
                let akey = (scope, ident);
                if let Some(a) = self.attempts.get(&akey)
                    && a.key != kid
                {
                    match &a.ended {
                        None => waits.push((a.tx, AlertKind::KeyChurn)),
                        Some((end, bad, resp)) => {
                            if *bad && now.since(*end) <= nanos(self.cfg.churn_window) {
                                pending.push(Pending {
                                    kind: AlertKind::KeyChurn,
                                    original: Some(a.rec.clone()),
                                    original_tx: Some(a.tx),
                                    original_response: resp.clone(),
                                });
                            }
                        }
                    }
                }
                let r = self.attempts.insert(
                    akey,
                    Attempt {
                        key: kid,
                        tx: id,
                        rec: rec.clone(),
                        ended: None,
                    },
                    now.add_nanos(window),
                );
                stats.tracker_keys_evicted += r.evicted;
            }
        } else if req.keys.is_empty() && self.watched(req) {
            if self.cfg.missing_key != MissingKeyMode::Off {
                pending.push(Pending {
                    kind: AlertKind::MissingKey,
                    original: None,
                    original_tx: None,
                    original_response: None,
                });
            }
            match identity {
                Some(ident) => {
                    let kk = (scope, ident);
                    if let Some(prev) = self.keyless.get(&kk) {
                        pending.push(Pending {
                            kind: AlertKind::KeylessDuplicate,
                            original: Some(prev.rec.clone()),
                            original_tx: Some(prev.tx),
                            original_response: prev.response.clone(),
                        });
                    }
                    self.keyless.insert(
                        kk,
                        Keyless {
                            rec: rec.clone(),
                            tx: id,
                            response: None,
                        },
                        now.add_nanos(nanos(self.cfg.duplicate_window)),
                    );
                }
                None => stats.tracker_incomplete_skipped += 1,
            }
        }

        for (earlier, kind) in waits {
            if let Some(f) = self.in_flight.get_mut(&earlier) {
                f.waiters.push(Waiter { kind, later: id });
                *self.waited_on.entry(id).or_default() += 1;
            }
        }
        self.in_flight.insert(
            id,
            InFlight {
                rec,
                identity,
                key_id: key.as_deref().map(KeyId::of),
                scope,
                key: req.idempotency_key(),
                role,
                pending,
                waiters: Vec::new(),
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        kind: AlertKind,
        ts: Timestamp,
        rec: &Arc<ReqRec>,
        scope: Scope,
        key: Option<String>,
        response: Option<Arc<RespRec>>,
        original: Option<Arc<ReqRec>>,
        original_response: Option<Arc<RespRec>>,
    ) -> Alert {
        let all_keys = (kind == AlertKind::InvalidKey)
            .then(|| rec.all_keys.as_ref().map(|k| k.to_vec()))
            .flatten();
        Alert {
            ts,
            kind,
            key,
            all_keys,
            scope,
            request: rec.clone(),
            original,
            response,
            original_response,
        }
    }

    fn on_done(&mut self, tx: &Transaction, stats: &mut Stats, out: &mut Vec<Alert>) {
        let Some(f) = self.in_flight.remove(&tx.id) else {
            return;
        };
        for w in &f.waiters {
            if let Some(n) = self.waited_on.get_mut(&w.later) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.waited_on.remove(&w.later);
                }
            }
        }
        let now = tx.ts_done;
        let response = tx.response.as_ref().map(|r| Arc::new(RespRec::new(r)));
        // Whether the outcome is known: a response, or a server that was seen at all.
        let observable = response.is_some() || (tx.server_seen && !tx.response_lost);
        self.responses.insert(tx.id, response.clone());

        // The server replayed a success for this key, but the only earlier request with it
        // that we saw was rejected: the result it replays comes from a request the capture
        // lost, so "the first one" this request is compared with is unknown.
        let unseen_original = f.role == Role::Conflict
            && response
                .as_ref()
                .is_some_and(|r| r.replayed && r.status / 100 == 2)
            && f.key.as_ref().is_some_and(|k| {
                self.keys
                    .get(&(f.scope, f.key_id.unwrap_or_else(|| KeyId::of(k))))
                    .is_some_and(|e| {
                        e.first_response
                            .as_ref()
                            .is_some_and(|r| r.status / 100 != 2)
                            && e.stored.as_ref().is_none_or(|s| s.status / 100 != 2)
                    })
            });
        let pending: &[Pending] = if unseen_original {
            stats.tracker_unseen_original_skipped += 1;
            &[]
        } else {
            &f.pending
        };

        // Request-side alerts, with their responses.
        for p in pending {
            let orig_resp = p.original_response.clone().or_else(|| {
                p.original_tx
                    .and_then(|t| self.responses.get(&t).cloned().flatten())
            });
            out.push(self.alert(
                p.kind,
                now,
                &f.rec,
                f.scope,
                f.key.clone(),
                response.clone(),
                p.original.clone(),
                orig_resp,
            ));
        }

        let reject_statuses = self.cfg.reject_statuses.clone();
        let reject = |r: &RespRec| reject_statuses.contains(&r.status);
        let store_errors = self.cfg.store_errors;
        // Response-side: the key's stored result, replays and conflicts. Decided under the
        // entry's borrow, raised after it.
        enum Then {
            Nothing,
            Replay(AlertKind),
            Retry,
            Conflict(Arc<RespRec>, Arc<RespRec>),
            ConflictMarkedReplayed(Arc<RespRec>),
        }
        let mut then = Then::Nothing;
        let mut newly_stored = None;
        let mut first_answered = false;
        if let Some(k) = &f.key
            && let Some(e) = self
                .keys
                .get_mut(&(f.scope, f.key_id.unwrap_or_else(|| KeyId::of(k))))
        {
            e.in_flight.retain(|t| *t != tx.id);
            if e.in_flight.is_empty() {
                // Most keys are never in flight again: give the buffer back.
                e.in_flight = ThinVec::new();
            }
            if e.first.id == tx.id {
                e.first_response = response.clone();
                first_answered = true;
            }
            match (f.role, &response) {
                (Role::First | Role::Retry | Role::Reencoded, Some(r)) => {
                    let rejected_reencoding = f.role == Role::Reencoded && reject(r);
                    match &e.stored {
                        None => {
                            if !rejected_reencoding && rules::storable(r, store_errors) {
                                e.stored = Some(r.clone());
                                newly_stored = Some(r.clone());
                            }
                        }
                        Some(stored) => {
                            if f.role != Role::First && !rules::transient(r) && !rejected_reencoding
                            {
                                then = match rules::judge_replay(stored, r) {
                                    ReplayVerdict::Mismatch => {
                                        Then::Replay(AlertKind::ReplayMismatch)
                                    }
                                    ReplayVerdict::Drift => Then::Replay(AlertKind::ReplayDrift),
                                    ReplayVerdict::Same => Then::Retry,
                                };
                            }
                        }
                    }
                }
                (Role::Conflict, Some(r)) if r.status / 100 == 2 && !unseen_original => {
                    match &e.stored {
                        Some(s) => then = Then::Conflict(s.clone(), r.clone()),
                        None if r.replayed => then = Then::ConflictMarkedReplayed(r.clone()),
                        None => e.conflicts_waiting.push((f.rec.clone(), r.clone())),
                    }
                }
                _ => {}
            }
        }
        if self.publishing
            && (first_answered || newly_stored.is_some())
            && let Some(kid) = f.key_id
        {
            self.publish(shared::Publish::Settle {
                scope: f.scope,
                key: kid,
                first: tx.id,
                first_response: if first_answered {
                    response.clone()
                } else {
                    None
                },
                stored: newly_stored.clone(),
            });
        }
        match then {
            Then::Nothing => {}
            Then::Retry => stats.tracker_retries += 1,
            Then::Replay(kind) => {
                out.push(self.alert_replay(kind, now, &f, response.clone()));
            }
            Then::Conflict(stored, r) => out.push(self.conflict_alert(&f, r, &stored, now)),
            Then::ConflictMarkedReplayed(r) => out.push(self.alert(
                AlertKind::ConflictReplayed,
                now,
                &f.rec,
                f.scope,
                f.key.clone(),
                Some(r),
                self.original_of(&f),
                None,
            )),
        }
        // A result was stored: judge the conflicts that waited for it.
        if let (Some(stored), Some(k)) = (newly_stored, &f.key) {
            let waiting = self
                .keys
                .get_mut(&(f.scope, f.key_id.unwrap_or_else(|| KeyId::of(k))))
                .map(|e| std::mem::take(&mut e.conflicts_waiting))
                .unwrap_or_default();
            for (rec, r) in waiting {
                let fake = InFlight {
                    rec,
                    identity: None,
                    key_id: f.key_id,
                    scope: f.scope,
                    key: f.key.clone(),
                    role: Role::Conflict,
                    pending: Vec::new(),
                    waiters: Vec::new(),
                };
                out.push(self.conflict_alert(&fake, r, &stored, now));
            }
        }

        // key_churn bookkeeping: how the attempt ended.
        if let Some(ident) = f.identity
            && let Some(a) = self.attempts.get_mut(&(f.scope, ident))
            && a.tx == tx.id
        {
            let bad = match &response {
                None => observable,
                Some(r) => r.status >= 500 || r.status == 409,
            };
            if bad {
                a.ended = Some((now, bad, response.clone()));
                let (key, rec) = (a.key, a.rec.clone());
                let deadline = now.add_nanos(nanos(self.cfg.churn_window).max(1));
                self.attempts.touch(&(f.scope, ident), deadline);
                self.publish(shared::Publish::AttemptEnded {
                    scope: f.scope,
                    identity: ident,
                    key,
                    rec,
                    end: now,
                    response: response.clone(),
                });
            } else {
                // It ended well: a fresh key for the same request later is a new request, not
                // churn, so there is nothing left to remember.
                self.attempts.remove(&(f.scope, ident));
            }
        }
        if let Some(ident) = f.identity
            && let Some(k) = self.keyless.get_mut(&(f.scope, ident))
            && k.tx == tx.id
        {
            k.response = response.clone();
        }

        // Later requests that waited on this one's outcome.
        for w in &f.waiters {
            // The final response had begun before the later request did: not in flight then
            // (its end can come much later, or be lost in a capture gap).
            let answered_before = w.kind == AlertKind::ConcurrentReuse
                && response.as_ref().is_some_and(|r| {
                    let later = self
                        .in_flight
                        .get(&w.later)
                        .map(|l| l.rec.ts)
                        .or_else(|| self.finished.get(&w.later).map(|l| l.rec.ts));
                    later.is_some_and(|t| r.ts <= t)
                });
            if answered_before {
                self.release_waiter(w.later);
            } else if observable {
                self.settle_waiter(w, &f, response.clone(), now, out);
            } else {
                // Whether this one was still running is unknowable: never guess.
                stats.tracker_unobservable_skipped += 1;
                self.release_waiter(w.later);
            }
        }

        // This request may itself wait on earlier ones.
        if self.waiting_count(tx.id) > 0 {
            self.finished.insert(
                tx.id,
                Finished {
                    rec: f.rec.clone(),
                    scope: f.scope,
                    key: f.key.clone(),
                    response,
                    waiting_on: self.waiting_count(tx.id),
                },
            );
        }
        // Forget responses nobody can cite any more (bounded by what is in flight).
        if self.in_flight.is_empty() && self.finished.is_empty() {
            self.responses.clear();
        } else if self.responses.len() > 4 * (self.in_flight.len() + self.finished.len()) + 1024 {
            let live: std::collections::HashSet<TxId> = self.keys_citing().into_iter().collect();
            self.responses.retain(|t, _| live.contains(t));
        }
    }

    /// Transactions cited by what is still in flight.
    fn keys_citing(&self) -> Vec<TxId> {
        let mut v: Vec<TxId> = self.in_flight.keys().copied().collect();
        v.extend(self.finished.keys().copied());
        for f in self.in_flight.values() {
            v.extend(f.pending.iter().filter_map(|p| p.original_tx));
        }
        v
    }

    /// How many in-flight requests `later` waits on.
    fn waiting_count(&self, later: TxId) -> usize {
        self.waited_on.get(&later).copied().unwrap_or(0)
    }

    fn original_of(&self, f: &InFlight) -> Option<Arc<ReqRec>> {
        let k = f.key.as_ref()?;
        self.keys
            .get(&(f.scope, f.key_id.unwrap_or_else(|| KeyId::of(k))))
            .map(|e| e.first.clone())
    }

    fn alert_replay(
        &self,
        kind: AlertKind,
        now: Timestamp,
        f: &InFlight,
        response: Option<Arc<RespRec>>,
    ) -> Alert {
        let (orig, stored) = f
            .key
            .as_ref()
            .and_then(|k| {
                self.keys
                    .get(&(f.scope, f.key_id.unwrap_or_else(|| KeyId::of(k))))
            })
            .map(|e| (Some(e.first.clone()), e.stored.clone()))
            .unwrap_or((None, None));
        self.alert(
            kind,
            now,
            &f.rec,
            f.scope,
            f.key.clone(),
            response,
            orig,
            stored,
        )
    }

    fn conflict_alert(
        &self,
        f: &InFlight,
        r: Arc<RespRec>,
        stored: &Arc<RespRec>,
        now: Timestamp,
    ) -> Alert {
        let kind = if rules::conflict_got_stored_result(stored, &r) {
            AlertKind::ConflictReplayed
        } else {
            AlertKind::ConflictAccepted
        };
        self.alert(
            kind,
            now,
            &f.rec,
            f.scope,
            f.key.clone(),
            Some(r),
            self.original_of(f),
            Some(stored.clone()),
        )
    }

    /// The earlier request `f` ended (observably) while `w.later` had arrived during its
    /// flight: raise the waiter's alert, now if the later one already ended, else with it.
    fn settle_waiter(
        &mut self,
        w: &Waiter,
        earlier: &InFlight,
        earlier_response: Option<Arc<RespRec>>,
        now: Timestamp,
        out: &mut Vec<Alert>,
    ) {
        let p = Pending {
            kind: w.kind,
            original: Some(earlier.rec.clone()),
            original_tx: Some(earlier.rec.id),
            original_response: earlier_response,
        };
        if let Some(later) = self.in_flight.get_mut(&w.later) {
            later.pending.push(p);
            return;
        }
        if let Some(fin) = self.finished.get(&w.later) {
            let a = self.alert(
                p.kind,
                now,
                &fin.rec,
                fin.scope,
                fin.key.clone(),
                fin.response.clone(),
                p.original,
                p.original_response,
            );
            out.push(a);
        }
        self.release_waiter(w.later);
    }

    /// One of the requests `later` waited on is settled.
    fn release_waiter(&mut self, later: TxId) {
        if let Some(fin) = self.finished.get_mut(&later) {
            fin.waiting_on = fin.waiting_on.saturating_sub(1);
            if fin.waiting_on == 0 {
                self.finished.remove(&later);
            }
        }
    }
}

/// Counts alerts by kind in `stats`.
pub fn count_alerts(stats: &mut Stats, alerts: &[Alert]) {
    for a in alerts {
        stats.alerts += 1;
        let c = match a.kind {
            AlertKind::KeyConflict => &mut stats.alerts_key_conflict,
            AlertKind::KeyReencoded => &mut stats.alerts_key_reencoded,
            AlertKind::KeyChurn => &mut stats.alerts_key_churn,
            AlertKind::KeylessDuplicate => &mut stats.alerts_keyless_duplicate,
            AlertKind::MissingKey => &mut stats.alerts_missing_key,
            AlertKind::LateRetry => &mut stats.alerts_late_retry,
            AlertKind::InvalidKey => &mut stats.alerts_invalid_key,
            AlertKind::ConflictAccepted => &mut stats.alerts_conflict_accepted,
            AlertKind::ConflictReplayed => &mut stats.alerts_conflict_replayed,
            AlertKind::ReplayMismatch => &mut stats.alerts_replay_mismatch,
            AlertKind::ReplayDrift => &mut stats.alerts_replay_drift,
            AlertKind::ConcurrentReuse => &mut stats.alerts_concurrent_reuse,
        };
        *c += 1;
    }
}

#[cfg(test)]
mod tests;
