//! The store's thread: owns the backend, sends what is queued in pipelined batches, decodes
//! the replies, and rides out faults. Whoever queues never waits: the queue is bounded and an
//! operation that finds it full is skipped and counted. While the store is unreachable every
//! operation fails at once (counted), and the connection is retried with a growing backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::record::{self, RemoteFirst};
use super::{Backend, Op, RawClaim, RawRecord, RawReply, StoreConfig};
use crate::stats::Stats;
use crate::tracker::RespRec;
use crate::tracker::shared::SharedAttempt;

/// A key's holder, decoded.
#[derive(Debug, Clone)]
pub struct Remote {
    pub first: RemoteFirst,
    pub claim_id: String,
    pub first_response: Option<Arc<RespRec>>,
    pub stored: Option<Arc<RespRec>>,
    /// When the first use stopped being in flight, if filed.
    pub end: Option<super::EndMark>,
}

/// What a claim found.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Ours (claimed), or nobody's (read only).
    Free,
    /// Held by another first use in its window.
    Held(Box<Remote>),
    /// Ours now; the expired holder is returned.
    Replaced(Box<Remote>),
    /// The store did not answer (unreachable, error, or a record it could not read).
    Failed,
}

/// An answered operation.
#[derive(Debug, Clone)]
pub enum Reply {
    Claim {
        ticket: u64,
        outcome: Outcome,
    },
    /// The attempt filed for a request (`None`: none, or the store did not answer).
    Attempt {
        ticket: u64,
        attempt: Option<Box<SharedAttempt>>,
    },
    Endpoints(Vec<(String, i64)>),
    /// The later uses of a key registered while its first use (this instance's) was in flight
    /// (none when the store did not answer; unreadable ones are counted and left out).
    Settled {
        ticket: u64,
        uses: Vec<RemoteFirst>,
    },
    /// The attempts at a request under other keys registered while this instance's attempt
    /// was in flight.
    Waiters {
        ticket: u64,
        waiters: Vec<SharedAttempt>,
    },
    /// The latest earlier keyless use of a request filed by any instance (`None`: none, or
    /// the store did not answer).
    Keyless {
        ticket: u64,
        prev: Option<Box<RemoteFirst>>,
    },
    /// A learned endpoint's deadline (µs), or `None`: not learned, or the store did not
    /// answer.
    Endpoint {
        ticket: u64,
        name: String,
        deadline_us: Option<i64>,
    },
    Barrier {
        ticket: u64,
    },
}

/// Counters of the store, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct StoreCounters {
    pub round_trips: AtomicU64,
    pub ops: AtomicU64,
    pub ops_failed: AtomicU64,
    pub ops_skipped: AtomicU64,
    pub claims_held: AtomicU64,
    pub bad_records: AtomicU64,
    pub errors: AtomicU64,
    pub outages: AtomicU64,
    pub reconnects: AtomicU64,
    pub degraded_ms: AtomicU64,
    /// 1 while the store is unreachable.
    pub down: AtomicU64,
    /// Round-trip time of the last batch, in µs.
    pub last_rtt_us: AtomicU64,
}

impl StoreCounters {
    /// Adds the counters to `st` (gauges are set).
    pub fn add_to(&self, st: &mut Stats) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        st.store_round_trips += g(&self.round_trips);
        st.store_ops += g(&self.ops);
        st.store_ops_failed += g(&self.ops_failed);
        st.store_ops_skipped += g(&self.ops_skipped);
        st.store_claims_held += g(&self.claims_held);
        st.store_bad_records += g(&self.bad_records);
        st.store_errors += g(&self.errors);
        st.store_outages += g(&self.outages);
        st.store_reconnects += g(&self.reconnects);
        st.store_degraded_ms += g(&self.degraded_ms);
        st.store_down = g(&self.down);
        st.store_last_rtt_us = g(&self.last_rtt_us);
    }
}

/// The handle of a running store thread. Dropping it lets the thread send what is queued,
/// then end.
pub struct StoreHandle {
    tx: Option<Sender<Op>>,
    rx: Receiver<Reply>,
    pub counters: Arc<StoreCounters>,
    /// Latest capture time seen (µs), for forgetting endpoints.
    pub now_us: Arc<AtomicI64>,
    thread: Option<JoinHandle<()>>,
    pub described: String,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl StoreHandle {
    /// Starts the thread. The first connection is tried at once; failing, it is retried in
    /// the background (the store is then degraded, not fatal).
    pub fn start(mut backend: Box<dyn Backend>, cfg: &StoreConfig) -> StoreHandle {
        let (tx, op_rx) = crossbeam_channel::bounded::<Op>(cfg.max_inflight.max(1));
        let (reply_tx, rx) = crossbeam_channel::unbounded::<Reply>();
        let counters = Arc::new(StoreCounters::default());
        let now_us = Arc::new(AtomicI64::new(i64::MIN));
        let described = backend.describe();
        let c = counters.clone();
        let now = now_us.clone();
        let max_batch = cfg.max_batch.max(1);
        let sync_every = cfg.sync_interval.max(Duration::from_millis(100));
        let thread = std::thread::Builder::new()
            .name("idemwatch-store".into())
            .spawn(move || {
                let mut w = Worker {
                    backend: &mut *backend,
                    counters: c,
                    replies: reply_tx,
                    up: false,
                    down_since: Some(Instant::now()),
                    next_try: Instant::now(),
                    backoff: BACKOFF_MIN,
                    first: true,
                };
                w.run(&op_rx, &now, max_batch, sync_every);
            })
            .ok();
        StoreHandle {
            tx: Some(tx),
            rx,
            counters,
            now_us,
            thread,
            described,
        }
    }

    /// Queues `op`; false (and counted) when the queue is full.
    pub fn submit(&self, op: Op) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        match tx.try_send(op) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.ops_skipped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub fn try_recv(&self) -> Option<Reply> {
        self.rx.try_recv().ok()
    }

    pub fn recv_timeout(&self, d: Duration) -> Option<Reply> {
        self.rx.recv_timeout(d).ok()
    }

    /// Queues a barrier: its reply means everything queued before it was sent.
    pub fn barrier(&self, ticket: u64) -> bool {
        match &self.tx {
            Some(tx) => tx
                .send_timeout(Op::Barrier { ticket }, Duration::from_secs(1))
                .is_ok(),
            None => false,
        }
    }
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker<'a> {
    backend: &'a mut dyn Backend,
    counters: Arc<StoreCounters>,
    replies: Sender<Reply>,
    up: bool,
    down_since: Option<Instant>,
    next_try: Instant,
    backoff: Duration,
    first: bool,
}

impl Worker<'_> {
    fn run(&mut self, ops: &Receiver<Op>, now: &AtomicI64, max_batch: usize, sync_every: Duration) {
        self.try_connect();
        // Endpoints learned elsewhere are read at once, then every `sync_every`.
        let mut next_sync = Instant::now();
        loop {
            let mut batch = Vec::new();
            if Instant::now() >= next_sync {
                next_sync = Instant::now() + sync_every;
                batch.push(Op::SyncEndpoints {
                    now_us: now.load(Ordering::Relaxed),
                });
            } else {
                let wait = next_sync.saturating_duration_since(Instant::now());
                let wait = if self.up {
                    wait
                } else {
                    wait.min(self.next_try.saturating_duration_since(Instant::now()))
                };
                match ops.recv_timeout(wait) {
                    Ok(op) => batch.push(op),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            while batch.len() < max_batch {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            if !self.up && Instant::now() >= self.next_try {
                self.try_connect();
            }
            if !batch.is_empty() {
                self.send(batch);
            }
        }
        // The queue closed: what is left was sent; account for an outage still running.
        if let Some(since) = self.down_since.take() {
            self.counters
                .degraded_ms
                .fetch_add(since.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    fn try_connect(&mut self) {
        match self.backend.connect() {
            Ok(()) => {
                self.up = true;
                self.backoff = BACKOFF_MIN;
                self.counters.down.store(0, Ordering::Relaxed);
                if let Some(since) = self.down_since.take() {
                    let ms = since.elapsed().as_millis() as u64;
                    if self.first {
                        tracing::info!(store = %self.backend.describe(), "shared store connected");
                    } else {
                        self.counters.degraded_ms.fetch_add(ms, Ordering::Relaxed);
                        self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            store = %self.backend.describe(),
                            outage_ms = ms,
                            "shared store reachable again; keys are shared from now on"
                        );
                    }
                }
                self.first = false;
            }
            Err(e) => {
                if self.first {
                    self.first = false;
                    self.counters.outages.fetch_add(1, Ordering::Relaxed);
                    self.counters.down.store(1, Ordering::Relaxed);
                    tracing::warn!(
                        store = %self.backend.describe(),
                        "cannot reach the shared store: {e}; judging on this instance's keys \
                         alone until it answers (retrying with backoff)"
                    );
                } else {
                    tracing::debug!(store = %self.backend.describe(), "reconnect failed: {e}");
                }
                self.next_try = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    fn fail(&self, batch: &[Op]) {
        self.counters
            .ops_failed
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for r in batch.iter().filter_map(unanswered) {
            let _ = self.replies.send(r);
        }
    }

    fn send(&mut self, mut batch: Vec<Op>) {
        let barriers: Vec<u64> = batch
            .iter()
            .filter_map(|op| match op {
                Op::Barrier { ticket } => Some(*ticket),
                _ => None,
            })
            .collect();
        batch.retain(|op| !matches!(op, Op::Barrier { .. }));
        if !batch.is_empty() {
            self.send_ops(batch);
        }
        for ticket in barriers {
            let _ = self.replies.send(Reply::Barrier { ticket });
        }
    }

    fn send_ops(&mut self, batch: Vec<Op>) {
        if !self.up {
            self.fail(&batch);
            return;
        }
        let started = Instant::now();
        match self.backend.run(&batch) {
            Ok(replies) => {
                let c = &self.counters;
                c.round_trips.fetch_add(1, Ordering::Relaxed);
                c.ops.fetch_add(batch.len() as u64, Ordering::Relaxed);
                c.last_rtt_us
                    .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                for (op, r) in batch.iter().zip(replies) {
                    if let Some(reply) = self.decode(op, r) {
                        let _ = self.replies.send(reply);
                    }
                }
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.counters.outages.fetch_add(1, Ordering::Relaxed);
                self.counters.down.store(1, Ordering::Relaxed);
                tracing::warn!(
                    store = %self.backend.describe(),
                    ops = batch.len(),
                    "shared store failed: {e}; judging on this instance's keys alone until it \
                     answers again (reconnecting with backoff)"
                );
                self.up = false;
                self.down_since = Some(Instant::now());
                self.next_try = Instant::now() + self.backoff;
                self.fail(&batch);
            }
        }
    }

    fn remote(&self, raw: RawRecord) -> Option<Box<Remote>> {
        let first = record::decode_first(&raw.record);
        let first_response = raw
            .first_response
            .as_deref()
            .and_then(record::decode_response);
        let stored = match &raw.stored {
            None => None,
            Some(None) => first_response.clone(),
            Some(Some(b)) => record::decode_response(b),
        };
        match first {
            Some(first) => Some(Box::new(Remote {
                first,
                claim_id: raw.claim_id,
                first_response,
                stored,
                end: raw.end,
            })),
            None => {
                self.counters.bad_records.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn decode(&self, op: &Op, r: RawReply) -> Option<Reply> {
        match (op, r) {
            (Op::Claim { ticket, .. }, RawReply::Claim(c)) => {
                let outcome = match c {
                    RawClaim::Free => Outcome::Free,
                    RawClaim::Held(raw) => {
                        self.counters.claims_held.fetch_add(1, Ordering::Relaxed);
                        self.remote(raw).map_or(Outcome::Failed, Outcome::Held)
                    }
                    RawClaim::Replaced(raw) => {
                        self.remote(raw).map_or(Outcome::Free, Outcome::Replaced)
                    }
                };
                Some(Reply::Claim {
                    ticket: *ticket,
                    outcome,
                })
            }
            (Op::SyncEndpoints { .. }, RawReply::Endpoints(v)) => Some(Reply::Endpoints(v)),
            (Op::AttemptLookup { ticket, .. }, RawReply::Attempt(found)) => {
                let attempt = found.and_then(|(bad, b)| {
                    let a = record::decode_attempt(&b);
                    if a.is_none() {
                        self.counters.bad_records.fetch_add(1, Ordering::Relaxed);
                    }
                    a.map(|a| Box::new(SharedAttempt { bad, ..a }))
                });
                Some(Reply::Attempt {
                    ticket: *ticket,
                    attempt,
                })
            }
            (Op::KeylessLookup { ticket, .. }, RawReply::Keyless(bytes)) => {
                let prev = bytes.and_then(|b| {
                    let p = record::decode_first(&b);
                    if p.is_none() {
                        self.counters.bad_records.fetch_add(1, Ordering::Relaxed);
                    }
                    p.map(Box::new)
                });
                Some(Reply::Keyless {
                    ticket: *ticket,
                    prev,
                })
            }
            (Op::Settle { ticket, .. }, RawReply::Settled(raw)) => {
                let uses = raw
                    .iter()
                    .filter_map(|b| {
                        let u = record::decode_first(b);
                        if u.is_none() {
                            self.counters.bad_records.fetch_add(1, Ordering::Relaxed);
                        }
                        u
                    })
                    .collect();
                Some(Reply::Settled {
                    ticket: *ticket,
                    uses,
                })
            }
            (Op::AttemptEnded { ticket, .. }, RawReply::Settled(raw)) => {
                let waiters = raw
                    .iter()
                    .filter_map(|b| {
                        let w = record::decode_attempt(b);
                        if w.is_none() {
                            self.counters.bad_records.fetch_add(1, Ordering::Relaxed);
                        }
                        w
                    })
                    .collect();
                Some(Reply::Waiters {
                    ticket: *ticket,
                    waiters,
                })
            }
            (Op::EndpointLookup { ticket, name }, RawReply::Endpoint(deadline_us)) => {
                Some(Reply::Endpoint {
                    ticket: *ticket,
                    name: name.clone(),
                    deadline_us,
                })
            }
            // A reply of the wrong shape: the caller must not wait for it.
            (op, _) => unanswered(op),
        }
    }
}

/// The reply to an answered operation that got no usable answer: the caller must not wait
/// for it. `None` for operations that are not answered.
fn unanswered(op: &Op) -> Option<Reply> {
    match op {
        Op::Claim { ticket, .. } => Some(Reply::Claim {
            ticket: *ticket,
            outcome: Outcome::Failed,
        }),
        Op::AttemptLookup { ticket, .. } => Some(Reply::Attempt {
            ticket: *ticket,
            attempt: None,
        }),
        Op::KeylessLookup { ticket, .. } => Some(Reply::Keyless {
            ticket: *ticket,
            prev: None,
        }),
        Op::Settle {
            ticket,
            end: Some(_),
            ..
        } => Some(Reply::Settled {
            ticket: *ticket,
            uses: Vec::new(),
        }),
        Op::AttemptEnded { ticket, .. } => Some(Reply::Waiters {
            ticket: *ticket,
            waiters: Vec::new(),
        }),
        Op::EndpointLookup { ticket, name } => Some(Reply::Endpoint {
            ticket: *ticket,
            name: name.clone(),
            deadline_us: None,
        }),
        _ => None,
    }
}
