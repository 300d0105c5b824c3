//! The idempotency tracker: HTTP events in, alerts out.
//!
//! Sees transactions only, never packets: a request when it was fully received (the order in
//! which keys are first used, what is in flight), and its exchange when it ended (the
//! responses). Request-side kinds are judged when the request arrives and written when its
//! exchange ends, with its response; response-side kinds when the responses are known. Every
//! window and limit comes from [`TrackerConfig`]; state is bounded and forgets in capture time.
//!
//! Here: the tracker's types and tables. `request.rs` files an arriving request and decides
//! the kinds judged on the request alone, `exchange.rs` the kinds decided by the responses,
//! one function per kind, each saying when it fires; `rules.rs` holds the checks they share.
//! `persist` saves and loads the tables; `shared` fills them from fleet mode's shared store,
//! which the tracker knows only through plain values (it imports no fleet type).

mod exchange;
pub mod persist;
mod request;
pub mod rules;
pub mod scope;
pub mod shared;
pub mod store;
mod target;

use foldhash::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use thin_vec::ThinVec;

pub use rules::{AlertKind, Severity};
pub use scope::{Identity, Scope, ScopeParts};
pub use target::Target;

use crate::http::{Conn, HttpEvent, Protocol, Request, Response, Transaction, TxId};
use crate::net::Vlans;
use crate::stats::Stats;
use crate::ts::Timestamp;
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

/// What one tracked key costs at most, in bytes of resident memory: its first request and
/// response, the tables' share, and a connection of its own (`examples/key_memory.rs
/// --own-connections`; docs/MEMORY.md has the layout). `--max-key-memory` divides by it.
pub const BYTES_PER_KEY: u64 = 704;

/// The most keys a memory budget holds (`--max-key-memory`), at least one.
pub fn keys_for_memory(bytes: u64) -> usize {
    usize::try_from(bytes / BYTES_PER_KEY)
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Where a request seen by another instance was seen (fleet mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observer {
    /// The instance that saw it (`--store-instance`).
    pub instance: Box<str>,
    /// Its capture file there, when it read files.
    pub file: Option<Box<str>>,
}

/// Where a kept request came from. Only this run's own exchanges have an id that events can
/// name: a request loaded or filed elsewhere is never in flight here and has no response here
/// to cite, so it can never be taken for one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An exchange of this run.
    Local(TxId),
    /// Loaded from the state file: its flow id and rank in the run that saved it (saved again
    /// as they were).
    Loaded { flow_id: u64, n: u64 },
    /// Seen by another instance (fleet mode).
    Remote(Arc<Observer>),
}

impl Origin {
    /// The exchange of this run, for a request this run saw.
    pub fn local(&self) -> Option<TxId> {
        match self {
            Origin::Local(id) => Some(*id),
            Origin::Loaded { .. } | Origin::Remote(_) => None,
        }
    }

    /// The instance that saw it, for a request another instance saw.
    pub fn observer(&self) -> Option<&Observer> {
        match self {
            Origin::Remote(o) => Some(o),
            Origin::Local(_) | Origin::Loaded { .. } => None,
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Origin::Remote(_))
    }
}

/// A request as the tracker keeps it: what the `request` and `original` objects print, and
/// nothing else (a key's first request is kept for a window or two, so it is kept small: the
/// bytes are in docs/MEMORY.md).
#[derive(Debug, Clone)]
pub struct ReqRec {
    /// Which exchange it was, or where else it was seen.
    pub origin: Origin,
    /// Shared by every request of the connection.
    pub conn: Arc<Conn>,
    pub ts: Timestamp,
    /// Method, host and path, shared by the kept requests that have the same (interned).
    pub target: Arc<Target>,
    /// The first key, unquoted.
    pub key: Option<Box<str>>,
    pub body_len: u64,
    pub body_sha256: Option<[u8; 32]>,
    pub body_canon_sha256: Option<[u8; 32]>,
    pub body_complete: bool,
    pub protocol: Protocol,
    /// What most requests lack, boxed: 8 bytes when absent.
    pub rare: Option<Box<ReqRare>>,
}

/// A kept request's rarely set fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReqRare {
    /// Every key value, when several key header lines were sent.
    pub all_keys: Option<Box<[String]>>,
    pub body_missing: u64,
    pub vlans: Vlans,
}

impl ReqRare {
    /// Boxed when any is set.
    pub fn of(
        all_keys: Option<Box<[String]>>,
        body_missing: u64,
        vlans: Vlans,
    ) -> Option<Box<ReqRare>> {
        let r = ReqRare {
            all_keys,
            body_missing,
            vlans,
        };
        (r != ReqRare::default()).then(|| Box::new(r))
    }
}

/// A response as the tracker keeps it (a key's stored result lives a window or two).
#[derive(Debug)]
pub struct RespRec {
    pub ts: Timestamp,
    pub body_len: u64,
    pub body_sha256: Option<[u8; 32]>,
    pub status: u16,
    pub body_complete: bool,
    pub replayed: bool,
    pub resource_id: Option<Box<str>>,
    /// Interim statuses and missing body bytes, when any: 8 bytes when absent.
    pub rare: Option<Box<RespRare>>,
}

/// A kept response's rarely set fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RespRare {
    pub interim: Box<[u16]>,
    pub body_missing: u64,
}

impl RespRare {
    /// Boxed when any is set.
    pub fn of(interim: &[u16], body_missing: u64) -> Option<Box<RespRare>> {
        (!interim.is_empty() || body_missing != 0).then(|| {
            Box::new(RespRare {
                interim: interim.into(),
                body_missing,
            })
        })
    }
}

impl RespRec {
    pub fn new(r: &Response) -> RespRec {
        RespRec {
            ts: r.ts,
            body_len: r.body.len,
            body_sha256: r.body.sha256,
            status: r.status,
            body_complete: r.body.complete,
            replayed: r.replayed,
            resource_id: r.resource_id.as_deref().map(Into::into),
            rare: RespRare::of(&r.interim, r.body.missing),
        }
    }

    /// The 1xx statuses before the final one.
    pub fn interim(&self) -> &[u16] {
        self.rare.as_deref().map_or(&[], |r| &r.interim)
    }

    pub fn body_missing(&self) -> u64 {
        self.rare.as_deref().map_or(0, |r| r.body_missing)
    }
}

impl ReqRec {
    pub fn new(id: TxId, conn: &Arc<Conn>, req: &Request) -> ReqRec {
        ReqRec {
            origin: Origin::Local(id),
            conn: conn.clone(),
            ts: req.ts,
            target: Target::intern(&req.method, req.host.as_deref(), &req.path),
            key: req.idempotency_key().map(Into::into),
            body_len: req.body.len,
            body_sha256: req.body.sha256,
            body_canon_sha256: req.body.canon_sha256,
            body_complete: req.body.complete,
            protocol: req.protocol,
            rare: ReqRare::of(
                (req.keys.len() > 1).then(|| req.keys.iter().map(|k| k.key()).collect()),
                req.body.missing,
                req.vlans,
            ),
        }
    }

    pub fn method(&self) -> &str {
        &self.target.method
    }

    pub fn host(&self) -> Option<&str> {
        self.target.host.as_deref()
    }

    pub fn path(&self) -> &str {
        &self.target.path
    }

    /// Every key value, when several key header lines were sent.
    pub fn all_keys(&self) -> Option<&[String]> {
        self.rare.as_deref().and_then(|r| r.all_keys.as_deref())
    }

    pub fn body_missing(&self) -> u64 {
        self.rare.as_deref().map_or(0, |r| r.body_missing)
    }

    pub fn vlans(&self) -> &Vlans {
        self.rare.as_deref().map_or(&Vlans::NONE, |r| &r.vlans)
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
    decoded: Decoded,
    first_ts: Timestamp,
    first_response: Option<Arc<RespRec>>,
    stored: Option<Arc<RespRec>>,
    in_flight: ThinVec<TxId>,
    /// Conflicting requests answered 2xx before a result was stored.
    conflicts_waiting: ThinVec<(Arc<ReqRec>, Arc<RespRec>)>,
}

impl KeyEntry {
    /// The first request's decoded-body digest.
    fn decoded(&self) -> Option<[u8; 32]> {
        self.decoded.get(self.first.body_sha256)
    }
}

/// A key's first request's decoded-body digest, which is its sent body's own unless a
/// Content-Encoding was undone (nearly always): then only a tag is kept, not 32 more bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decoded {
    None,
    AsSent,
    Own(Box<[u8; 32]>),
}

impl Decoded {
    fn of(decoded: Option<[u8; 32]>, sent: Option<[u8; 32]>) -> Decoded {
        match decoded {
            None => Decoded::None,
            Some(d) if Some(d) == sent => Decoded::AsSent,
            Some(d) => Decoded::Own(Box::new(d)),
        }
    }

    fn get(&self, sent: Option<[u8; 32]>) -> Option<[u8; 32]> {
        match self {
            Decoded::None => None,
            Decoded::AsSent => sent,
            Decoded::Own(d) => Some(**d),
        }
    }
}

/// The last keyed attempt at a request (for `key_churn`).
struct Attempt {
    key: KeyId,
    /// Its request (its exchange, when this run saw it).
    rec: Arc<ReqRec>,
    /// When it ended, whether badly (unanswered, aborted, 5xx, 409), and its response.
    ended: Option<(Timestamp, bool, Option<Arc<RespRec>>)>,
}

/// The last keyless request (for `keyless_duplicate`).
struct Keyless {
    /// Its request (its exchange, when this run saw it).
    rec: Arc<ReqRec>,
    response: Option<Arc<RespRec>>,
}

/// The tracker's state.
pub struct Tracker {
    cfg: TrackerConfig,
    /// Inline: the map's slots are dense (its hash table holds slot numbers only).
    keys: ExpiringMap<(Scope, KeyId), KeyEntry>,
    attempts: ExpiringMap<(Scope, Identity), Attempt>,
    keyless: ExpiringMap<(Scope, Identity), Keyless>,
    /// Requests about to be judged that the fleet stage found concurrent with their key's
    /// first use elsewhere (at most the one being handed over).
    concurrent_elsewhere: HashSet<TxId>,
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
    /// Recent exchanges the server did not process (HTTP/2 refused streams, streams above a
    /// GOAWAY's last id): alerts judged against them while they were in flight are dropped
    /// (pruned with `responses`).
    not_processed: HashSet<TxId>,
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
            concurrent_elsewhere: HashSet::default(),
            endpoints: ExpiringMap::new(cap),
            in_flight: HashMap::default(),
            waited_on: HashMap::default(),
            finished: HashMap::default(),
            responses: HashMap::default(),
            not_processed: HashSet::default(),
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
            HttpEvent::Transaction(tx) => self.on_transaction(tx, stats, out),
        }
    }

    /// An exchange ended (`exchange.rs`), after its request if its request event never came.
    fn on_transaction(&mut self, tx: &Transaction, stats: &mut Stats, out: &mut Vec<Alert>) {
        if let Some(req) = &tx.request
            && !self.in_flight.contains_key(&tx.id)
        {
            // Its request event never came (the connection dropped it): judge it now.
            self.on_request(tx.id, &tx.conn, req, stats);
        }
        self.on_done(tx, stats, out);
    }

    fn expire(&mut self, now: Timestamp, stats: &mut Stats) {
        let expired = self.keys.expire(now).len() + self.attempts.expire(now).len();
        stats.tracker_keys_expired += expired as u64;
        self.keyless.expire(now);
        self.endpoints.expire(now);
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
