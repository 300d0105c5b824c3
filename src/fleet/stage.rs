//! The stage in front of the tracker in fleet mode. A keyed request whose key this instance
//! cannot answer for alone is held while the shared store says who used the key first; then
//! the store's answer goes into the tracker's tables and the request (and every event after
//! it, so that order never changes) goes to the tracker. A request whose answer does not come
//! within `--store-wait` is judged on this instance's keys alone, and counted.
//!
//! `read` waits for the store when too much is held (a file can wait); `live` and `mirror`
//! never do: past the limit the oldest held event is judged without its answer, so capture is
//! never slowed by the store.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::record::{self, First, RemoteFirst};
use super::worker::{Outcome, Remote, Reply, StoreHandle};
use super::{AttemptKey, Claim, KeylessKey, Op, RecordKey, StoreConfig};
use crate::http::{HttpEvent, Request, TxId};
use crate::stats::Stats;
use crate::tracker::shared::{Ended, Publish, SharedAttempt, SharedFirst};
use crate::tracker::{Alert, ReqRec, RespRec, Tracker};
use crate::ts::Timestamp;

/// An event held in order, with the ticket of its claim.
struct Held {
    ev: HttpEvent,
    ticket: Option<Ticket>,
    since: Instant,
}

/// What a held request asked the store, every question under one ticket: for a keyed
/// request, its key's claim and (for a new key) the attempt at the same request filed
/// elsewhere; for a keyless one, the same request's keyless uses elsewhere and whether its
/// endpoint was learned elsewhere.
struct Ticket {
    n: u64,
    /// The key's record, and the key value of the request.
    claim: Option<(RecordKey, Option<String>)>,
    attempt: Option<AttemptKey>,
    keyless: Option<KeylessKey>,
    endpoint: bool,
}

/// The fleet stage: the store's thread and the events held for it.
pub struct Fleet {
    store: StoreHandle,
    cfg: StoreConfig,
    queue: VecDeque<Held>,
    outcomes: HashMap<u64, Outcome>,
    attempts: HashMap<u64, Option<Box<SharedAttempt>>>,
    keyless: HashMap<u64, Option<Box<RemoteFirst>>>,
    endpoints: HashMap<u64, Option<(String, i64)>>,
    /// This instance's first uses that ended, waiting for the later uses registered
    /// elsewhere while they were in flight.
    settles: HashMap<u64, Ended>,
    /// This instance's attempts that ended, waiting for the attempts under other keys
    /// registered elsewhere while they were in flight.
    churns: HashMap<u64, Ended>,
    /// Alerts judged on the store's answers rather than on an event, for the output.
    alerts: Vec<Alert>,
    /// Requests whose attempt lookup filed them as the attempt in flight (their start is not
    /// sent again); each leaves when the tracker publishes its start.
    started: HashSet<TxId>,
    /// Requests held whose exchange may follow in the queue (one claim for both).
    queued_requests: HashSet<TxId>,
    next_ticket: u64,
    /// Wait for the store rather than judge without it (reading files).
    patient: bool,
    last_now: Timestamp,
}

fn micros(t: Timestamp) -> i64 {
    t.0 / 1000
}

/// Who claims a key: 64 bits of a hash of the instance and its request, in hex (only compared,
/// never printed).
fn claim_id(instance: &str, id: &TxId) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(instance.as_bytes());
    h.update([0]);
    h.update(id.flow_id.to_le_bytes());
    h.update(id.flow_serial.to_le_bytes());
    h.update(id.n.to_le_bytes());
    let mut out = String::with_capacity(16);
    for b in h.finalize().iter().take(8) {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    out
}

impl Fleet {
    /// Starts the store's thread and reads the endpoints learned so far (waiting up to
    /// `--store-wait` for them). `patient`: wait for the store when too much is held.
    pub fn start(
        cfg: &StoreConfig,
        patient: bool,
        tracker: &mut Tracker,
        stats: &mut Stats,
    ) -> Result<Fleet, String> {
        let backend = cfg.backend()?;
        let store = StoreHandle::start(backend, cfg);
        tracker.enable_publishing();
        let mut f = Fleet {
            store,
            cfg: cfg.clone(),
            queue: VecDeque::new(),
            outcomes: HashMap::new(),
            attempts: HashMap::new(),
            keyless: HashMap::new(),
            endpoints: HashMap::new(),
            settles: HashMap::new(),
            churns: HashMap::new(),
            alerts: Vec::new(),
            queued_requests: HashSet::new(),
            started: HashSet::new(),
            next_ticket: 0,
            patient,
            last_now: Timestamp::default(),
        };
        // The thread reads endpoints first thing; take them before the first request.
        let deadline = Instant::now() + cfg.wait.max(cfg.timeout);
        while Instant::now() < deadline {
            match f
                .store
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Some(Reply::Endpoints(list)) => {
                    f.import_endpoints(list, tracker, stats);
                    break;
                }
                Some(other) => f.take(other, tracker, stats),
                None => break,
            }
        }
        tracing::info!(store = %f.store.described, instance = %cfg.instance, "fleet mode");
        Ok(f)
    }

    pub fn store_name(&self) -> &str {
        &self.store.described
    }

    /// Adds the store's counters to `st`.
    pub fn add_counters(&self, st: &mut Stats) {
        self.store.counters.add_to(st);
    }

    /// Nothing held, and no answer awaited that may give alerts.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.settles.is_empty() && self.churns.is_empty()
    }

    /// Holds `ev` in order; sends a claim for its key when this instance cannot answer alone.
    pub fn admit(&mut self, ev: HttpEvent, tracker: &Tracker, names: &[String]) {
        let ticket = self.claim_for(&ev, tracker, names);
        self.queue.push_back(Held {
            ev,
            ticket,
            since: Instant::now(),
        });
    }

    fn claim_for(&mut self, ev: &HttpEvent, tracker: &Tracker, names: &[String]) -> Option<Ticket> {
        let (id, conn, req): (TxId, _, &Request) = match ev {
            HttpEvent::Request { id, conn, request } => {
                self.queued_requests.insert(*id);
                (*id, conn, request)
            }
            HttpEvent::Transaction(tx) => {
                let req = tx.request.as_ref()?;
                if self.queued_requests.contains(&tx.id) || tracker.is_in_flight(tx.id) {
                    return None;
                }
                (tx.id, &tx.conn, req)
            }
        };
        let Some((scope, kid, identity)) = tracker.tracked_key(req) else {
            return self.ask_keyless(req, tracker);
        };
        let now = req.ts_end;
        if tracker.knows_key(scope, kid, now) {
            return None;
        }
        let rk = RecordKey { scope, key: kid };
        let window = tracker.config().window;
        let claim = identity.map(|ident| {
            let rec = ReqRec::new(id, conn, req);
            let file = names.get(conn.file_index).map(String::as_str);
            Claim {
                claim_id: claim_id(&self.cfg.instance, &id),
                first_us: micros(now),
                window_us: i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
                ttl_ms: u64::try_from(2 * window.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1000),
                record: record::encode_first(&First {
                    rec: &rec,
                    identity: ident,
                    decoded: req.body.decoded_sha256,
                    first_ts: now,
                    observer: &self.cfg.instance,
                    file,
                }),
            }
        });
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if !self.store.submit(Op::Claim { ticket, rk, claim }) {
            return None;
        }
        // key_churn across gateways: a new key for a request whose attempt another instance
        // saw end badly.
        let attempt = identity
            .map(|identity| AttemptKey { scope, identity })
            .filter(|ak| !tracker.knows_attempt(ak.scope, ak.identity))
            .filter(|ak| {
                let rec = ReqRec::new(id, conn, req);
                let waiter = self.attempt_record(tracker, kid, &rec, ak.identity, req.ts, None);
                let filed = self.store.submit(Op::AttemptLookup {
                    ticket,
                    ak: *ak,
                    claim_id: claim_id(&self.cfg.instance, &id),
                    key: kid,
                    waiter,
                    ttl_ms: u64::try_from(window.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1000),
                });
                if filed {
                    // The lookup files it as the attempt in flight: no start to send. Bounded
                    // like the queue (each leaves when the tracker files its attempt).
                    if self.started.len() >= 4 * self.cfg.max_inflight {
                        self.started.clear();
                    }
                    self.started.insert(id);
                }
                filed
            });
        Some(Ticket {
            n: ticket,
            claim: Some((rk, req.idempotency_key())),
            attempt,
            keyless: None,
            endpoint: false,
        })
    }

    /// A keyless request of a watched method: asks for the same request's latest keyless use
    /// elsewhere (`keyless_duplicate` across gateways) and, when this instance does not watch
    /// its endpoint, whether another instance learned it (`missing_key`). Both are asked for
    /// every such request, not left to the periodic endpoint sync, so that the verdict does
    /// not depend on when that sync last ran.
    fn ask_keyless(&mut self, req: &Request, tracker: &Tracker) -> Option<Ticket> {
        let probe = tracker.keyless_probe(req)?;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let window = tracker.config().duplicate_window;
        let keyless = probe
            .identity
            .map(|identity| KeylessKey {
                scope: probe.scope,
                identity,
            })
            .filter(|dk| {
                self.store.submit(Op::KeylessLookup {
                    ticket,
                    dk: *dk,
                    at_us: micros(req.ts_end),
                    window_us: i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
                })
            });
        let endpoint = probe
            .endpoint
            .is_some_and(|name| self.store.submit(Op::EndpointLookup { ticket, name }));
        (keyless.is_some() || endpoint).then_some(Ticket {
            n: ticket,
            claim: None,
            attempt: None,
            keyless,
            endpoint,
        })
    }

    fn import_endpoints(
        &mut self,
        list: Vec<(String, i64)>,
        tracker: &mut Tracker,
        st: &mut Stats,
    ) {
        let list: Vec<(String, Timestamp)> = list
            .into_iter()
            .map(|(n, us)| (n, Timestamp(us.saturating_mul(1000))))
            .collect();
        st.store_endpoints_imported += tracker.import_endpoints(&list, self.last_now) as u64;
    }

    fn take(&mut self, r: Reply, tracker: &mut Tracker, st: &mut Stats) {
        match r {
            Reply::Claim { ticket, outcome } => {
                self.outcomes.insert(ticket, outcome);
            }
            Reply::Attempt { ticket, attempt } => {
                self.attempts.insert(ticket, attempt);
            }
            Reply::Settled { ticket, uses } => {
                if let Some(c) = self.settles.remove(&ticket) {
                    let uses = uses.into_iter().map(|u| u.rec).collect();
                    let found = tracker.concurrent_uses_elsewhere(c, uses, st);
                    crate::tracker::count_alerts(st, &found);
                    self.alerts.extend(found);
                }
            }
            Reply::Waiters { ticket, waiters } => {
                if let Some(c) = self.churns.remove(&ticket) {
                    let found = tracker.churn_elsewhere(c, waiters, st);
                    crate::tracker::count_alerts(st, &found);
                    self.alerts.extend(found);
                }
            }
            Reply::Keyless { ticket, prev } => {
                self.keyless.insert(ticket, prev);
            }
            Reply::Endpoint {
                ticket,
                name,
                deadline_us,
            } => {
                self.endpoints
                    .insert(ticket, deadline_us.map(|d| (name, d)));
            }
            Reply::Endpoints(list) => self.import_endpoints(list, tracker, st),
            Reply::Barrier { .. } => {}
        }
    }

    /// Waits (up to `--store-wait`) until what was queued for the store was sent, so that the
    /// counters read next are complete and other instances can read what this one filed.
    pub fn flush(&mut self, tracker: &mut Tracker, st: &mut Stats) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if !self.store.barrier(ticket) {
            return;
        }
        let deadline = Instant::now() + self.cfg.wait.max(self.cfg.timeout) * 2;
        while let Some(r) = self
            .store
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if matches!(r, Reply::Barrier { ticket: t } if t == ticket) {
                return;
            }
            self.take(r, tracker, st);
        }
    }

    /// The next event for the tracker, its key's shared first use already imported; `None`
    /// when the front still waits. `finishing`: wait for every answer (up to `--store-wait`).
    pub fn next_ready(
        &mut self,
        tracker: &mut Tracker,
        st: &mut Stats,
        finishing: bool,
    ) -> Option<HttpEvent> {
        while let Some(r) = self.store.try_recv() {
            self.take(r, tracker, st);
        }
        loop {
            let front = self.queue.front()?;
            let Some(t) = &front.ticket else {
                break;
            };
            if self.answered(t) {
                break;
            }
            let waited = front.since.elapsed();
            if waited >= self.cfg.wait {
                break;
            }
            let must_wait =
                finishing || (self.patient && self.queue.len() >= self.cfg.max_inflight);
            if !must_wait {
                if self.queue.len() > self.cfg.max_inflight {
                    break;
                }
                return None;
            }
            match self.store.recv_timeout(self.cfg.wait - waited) {
                Some(r) => self.take(r, tracker, st),
                None => break,
            }
        }
        let held = self.queue.pop_front()?;
        if let HttpEvent::Request { id, .. } = &held.ev {
            self.queued_requests.remove(id);
        }
        if let Some(t) = held.ticket {
            self.import_answers(t, &held.ev, tracker, st);
        }
        let now = match &held.ev {
            HttpEvent::Request { request, .. } => request.ts_end,
            HttpEvent::Transaction(tx) => tx.ts_done,
        };
        self.last_now = self.last_now.max(now);
        self.store
            .now_us
            .store(micros(self.last_now), Ordering::Relaxed);
        Some(held.ev)
    }

    /// Whether every question of the ticket was answered.
    fn answered(&self, t: &Ticket) -> bool {
        (t.claim.is_none() || self.outcomes.contains_key(&t.n))
            && (t.attempt.is_none() || self.attempts.contains_key(&t.n))
            && (t.keyless.is_none() || self.keyless.contains_key(&t.n))
            && (!t.endpoint || self.endpoints.contains_key(&t.n))
    }

    /// Puts the store's answers to a ticket into the tracker's tables, just before its
    /// request is judged.
    fn import_answers(&mut self, t: Ticket, ev: &HttpEvent, tracker: &mut Tracker, st: &mut Stats) {
        let mut unanswered = false;
        if let Some((rk, key)) = t.claim {
            match self.outcomes.remove(&t.n) {
                Some(Outcome::Held(remote)) => {
                    // Its first use ended elsewhere after this request began: concurrent.
                    let (id, began) = match ev {
                        HttpEvent::Request { id, request, .. } => (*id, request.ts),
                        HttpEvent::Transaction(tx) => {
                            (tx.id, tx.request.as_ref().map_or(tx.ts_done, |r| r.ts))
                        }
                    };
                    if remote
                        .end
                        .is_some_and(|e| e.observed && e.at_us > micros(began))
                    {
                        tracker.mark_concurrent_elsewhere(id);
                    }
                    if tracker.import_shared(rk.scope, rk.key, key.as_deref(), shared(*remote)) {
                        st.store_shared_originals += 1;
                    }
                }
                Some(Outcome::Replaced(remote)) => {
                    if tracker.import_shared(rk.scope, rk.key, key.as_deref(), shared(*remote)) {
                        st.store_shared_originals += 1;
                    }
                }
                Some(Outcome::Free) => {}
                Some(Outcome::Failed) | None => unanswered = true,
            }
        }
        if let (Some(ak), Some(Some(a))) = (t.attempt, self.attempts.remove(&t.n))
            && tracker.import_attempt(ak.scope, ak.identity, *a)
        {
            st.store_shared_attempts += 1;
        }
        if let Some(dk) = t.keyless {
            match self.keyless.remove(&t.n) {
                Some(Some(prev)) => {
                    if tracker.import_keyless(dk.scope, dk.identity, prev.rec, prev.first_ts) {
                        st.store_shared_keyless += 1;
                    }
                }
                Some(None) => {}
                None => unanswered = true,
            }
        }
        if t.endpoint {
            match self.endpoints.remove(&t.n) {
                Some(Some((name, d))) => {
                    let d = Timestamp(d.saturating_mul(1000));
                    st.store_endpoints_imported +=
                        tracker.import_endpoints(&[(name, d)], self.last_now) as u64;
                }
                Some(None) => {}
                None => unanswered = true,
            }
        }
        if unanswered {
            st.store_judged_locally += 1;
        }
    }

    /// Sends what the tracker learned to the store. `names`: the capture files read.
    pub fn publish(&mut self, tracker: &mut Tracker, names: &[String]) {
        for p in tracker.take_published() {
            let op = match p {
                Publish::Endpoint { name, deadline } => Op::Endpoint {
                    name,
                    deadline_us: micros(deadline),
                },
                Publish::Settle {
                    scope,
                    key,
                    first,
                    first_response,
                    stored,
                    ended,
                } => {
                    let same = match (&first_response, &stored) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        _ => false,
                    };
                    let ticket = self.next_ticket;
                    self.next_ticket += 1;
                    let end = ended.map(|(rec, at, observed)| {
                        self.settles.insert(
                            ticket,
                            Ended {
                                scope,
                                first: rec,
                                response: first_response.clone(),
                                at,
                                observed,
                                not_processed: false,
                            },
                        );
                        super::EndMark {
                            at_us: micros(at),
                            observed,
                        }
                    });
                    Op::Settle {
                        ticket,
                        rk: RecordKey { scope, key },
                        claim_id: claim_id(&self.cfg.instance, &first),
                        first_response: first_response.as_deref().map(record::encode_response),
                        stored: stored.map(|s| (!same).then(|| record::encode_response(&s))),
                        end,
                    }
                }
                Publish::Release { scope, key, first } => Op::Release {
                    rk: RecordKey { scope, key },
                    claim_id: claim_id(&self.cfg.instance, &first),
                },
                Publish::Keyless {
                    scope,
                    identity,
                    rec,
                    at,
                } => {
                    let dup = tracker.config().duplicate_window;
                    Op::KeylessUse {
                        dk: KeylessKey { scope, identity },
                        at_us: micros(at),
                        ttl_ms: u64::try_from(2 * dup.as_millis())
                            .unwrap_or(u64::MAX)
                            .max(1000),
                        record: record::encode_first(&First {
                            rec: &rec,
                            identity,
                            decoded: None,
                            first_ts: at,
                            observer: rec
                                .origin
                                .observer()
                                .map_or(&*self.cfg.instance, |o| &o.instance),
                            file: names.get(rec.conn.file_index).map(String::as_str),
                        }),
                    }
                }
                Publish::AttemptStarted {
                    scope,
                    identity,
                    key,
                    rec,
                } => {
                    let Some(id) = rec.origin.local() else {
                        continue;
                    };
                    if self.started.remove(&id) {
                        continue;
                    }
                    let window = tracker.config().window;
                    Op::AttemptStarted {
                        ak: AttemptKey { scope, identity },
                        claim_id: claim_id(&self.cfg.instance, &id),
                        key,
                        record: self.attempt_record(tracker, key, &rec, identity, rec.ts, None),
                        ttl_ms: u64::try_from(window.as_millis())
                            .unwrap_or(u64::MAX)
                            .max(1000),
                    }
                }
                Publish::AttemptEnded {
                    scope,
                    identity,
                    key,
                    rec,
                    end,
                    response,
                    bad,
                    observable,
                    not_processed,
                } => {
                    let Some(id) = rec.origin.local() else {
                        continue;
                    };
                    let churn = tracker.config().churn_window;
                    let ticket = self.next_ticket;
                    self.next_ticket += 1;
                    // Not processed: filed as ending when it began, so that no request
                    // elsewhere is taken as running alongside it (an instance reading it
                    // judges churn by `began < end`), and well (`bad` is false).
                    let filed_end = if not_processed { rec.ts } else { end };
                    let record = self.attempt_record(
                        tracker,
                        key,
                        &rec,
                        identity,
                        filed_end,
                        response.as_deref(),
                    );
                    self.churns.insert(
                        ticket,
                        Ended {
                            scope,
                            first: rec,
                            response,
                            at: end,
                            observed: observable,
                            not_processed,
                        },
                    );
                    Op::AttemptEnded {
                        ticket,
                        ak: AttemptKey { scope, identity },
                        claim_id: claim_id(&self.cfg.instance, &id),
                        bad,
                        record,
                        ttl_ms: u64::try_from(churn.as_millis())
                            .unwrap_or(u64::MAX)
                            .max(1000),
                    }
                }
            };
            let ticket = match &op {
                Op::Settle { ticket, .. } | Op::AttemptEnded { ticket, .. } => Some(*ticket),
                _ => None,
            };
            if !self.store.submit(op)
                && let Some(t) = ticket
            {
                self.settles.remove(&t);
                self.churns.remove(&t);
            }
        }
    }

    /// An attempt's record as filed: its key (the value unless redacted), when it ended (or
    /// began, in flight), the request and its response.
    fn attempt_record(
        &self,
        tracker: &Tracker,
        key: crate::tracker::KeyId,
        rec: &ReqRec,
        identity: crate::tracker::Identity,
        at: Timestamp,
        response: Option<&RespRec>,
    ) -> Vec<u8> {
        let first = First {
            rec,
            identity,
            decoded: None,
            first_ts: at,
            observer: rec
                .origin
                .observer()
                .map_or(&*self.cfg.instance, |o| &o.instance),
            file: None,
        };
        record::encode_attempt(
            key,
            rec.key.as_deref().filter(|_| !tracker.config().redact_keys),
            at,
            &first,
            response,
        )
    }

    /// Alerts judged on the store's answers since the last call (later uses of this
    /// instance's first uses, registered by other instances while they were in flight).
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.alerts)
    }

    /// How long until the front's wait ends (a daemon may sleep that long at most).
    pub fn next_deadline(&self) -> Option<Duration> {
        let f = self.queue.front()?;
        Some(self.cfg.wait.saturating_sub(f.since.elapsed()))
    }
}

fn shared(r: Remote) -> SharedFirst {
    SharedFirst {
        rec: r.first.rec,
        identity: r.first.identity,
        decoded: r.first.decoded,
        first_ts: r.first.first_ts,
        first_response: r.first_response,
        stored: r.stored,
    }
}
