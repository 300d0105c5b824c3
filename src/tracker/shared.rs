//! The tracker's side of fleet mode: what it takes from the shared store (a key's first use
//! seen elsewhere, endpoints learned elsewhere) and what it gives back (responses, stored
//! results, endpoints it learned). The tracker stays the judge; these only fill its tables.

use std::sync::Arc;

use thin_vec::ThinVec;

use super::rules::{self, KeyProblem};
use super::{Identity, KeyEntry, KeyId, ReqRec, RespRec, Scope, Tracker, nanos};
use crate::http::{Request, TxId};
use crate::ts::Timestamp;

/// What the tracker learned that other instances should know.
#[derive(Debug, Clone)]
pub enum Publish {
    /// An endpoint took a key header; watched until the deadline.
    Endpoint { name: String, deadline: Timestamp },
    /// The server answered a key's request: the first request's response (when `first` is
    /// this instance's own request) and the key's stored result, when it was just set.
    Settle {
        scope: Scope,
        key: KeyId,
        first: TxId,
        first_response: Option<Arc<RespRec>>,
        stored: Option<Arc<RespRec>>,
        /// The first use's exchange ended: its request, and when it stopped being in flight
        /// (the start of its final response, else its end) and whether that was observed.
        /// Later uses other instances registered while it was in flight come back, to be
        /// judged by [`Tracker::concurrent_uses_elsewhere`].
        ended: Option<(Arc<ReqRec>, Timestamp, bool)>,
    },
    /// A key's first use (`first`, this instance's own) was not processed by the server
    /// (RFC 9113 section 8.7): it is not the key's first use anywhere.
    Release {
        scope: Scope,
        key: KeyId,
        first: TxId,
    },
    /// A watched keyless request: the same request without a key on any gateway within the
    /// duplicate window is `keyless_duplicate`.
    Keyless {
        scope: Scope,
        identity: Identity,
        rec: Arc<ReqRec>,
        at: Timestamp,
    },
    /// A keyed attempt at a request began: it is the request's last attempt, in flight. The
    /// same request under another key on any gateway now waits on its outcome.
    AttemptStarted {
        scope: Scope,
        identity: Identity,
        key: KeyId,
        rec: Arc<ReqRec>,
    },
    /// A keyed attempt at a request ended: badly (unanswered, aborted, 5xx, 409), the same
    /// request under another key within the churn window is `key_churn`, on any gateway;
    /// well, it is forgotten. The attempts under other keys that other instances registered
    /// while it was in flight come back, to be judged by [`Tracker::churn_elsewhere`].
    AttemptEnded {
        scope: Scope,
        identity: Identity,
        key: KeyId,
        rec: Arc<ReqRec>,
        end: Timestamp,
        response: Option<Arc<RespRec>>,
        bad: bool,
        /// Whether its outcome was observed (a response, or the server seen).
        observable: bool,
        /// The server did not process it (RFC 9113 section 8.7): it ended well (`bad` is
        /// false), and nothing ran alongside it, so no attempt elsewhere is churn against it.
        not_processed: bool,
    },
}

/// A request of this instance that stopped being in flight (a key's first use, an attempt),
/// for judging what other instances registered with it meanwhile.
#[derive(Debug, Clone)]
pub struct Ended {
    pub scope: Scope,
    pub first: Arc<ReqRec>,
    pub response: Option<Arc<RespRec>>,
    /// When it stopped being in flight: the start of its final response, else its end.
    pub at: Timestamp,
    /// Whether that was observed (a response, or the server seen).
    pub observed: bool,
    /// The server did not process it (RFC 9113 section 8.7): nothing is judged against it.
    pub not_processed: bool,
}

impl Ended {
    /// An alert about `later`, a request another instance saw, against this one.
    fn alert(&self, kind: super::AlertKind, later: ReqRec) -> super::Alert {
        super::Alert {
            ts: self.at,
            kind,
            key: later.key.as_deref().map(str::to_string),
            all_keys: None,
            scope: self.scope,
            request: Arc::new(later),
            original: Some(self.first.clone()),
            response: None,
            original_response: self.response.clone(),
        }
    }
}

/// What the fleet stage asks the store about a keyless request of a watched method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessProbe {
    pub scope: Scope,
    /// The request's identity, for the keyless uses filed elsewhere (`None`: its body cannot
    /// be compared, so it is never a duplicate).
    pub identity: Option<Identity>,
    /// The request's endpoint, when this instance does not know it as watched and another
    /// instance may have learned it.
    pub endpoint: Option<String>,
}

/// An attempt that ended badly, as the shared store returned it.
#[derive(Debug, Clone)]
pub struct SharedAttempt {
    pub key: KeyId,
    pub rec: ReqRec,
    pub end: Timestamp,
    pub response: Option<Arc<RespRec>>,
    /// Ended badly (unanswered, aborted, 5xx, 409); else well (kept for the requests that
    /// began while it was in flight).
    pub bad: bool,
}

/// A key's first use as the shared store returned it.
#[derive(Debug, Clone)]
pub struct SharedFirst {
    pub rec: ReqRec,
    pub identity: Identity,
    pub decoded: Option<[u8; 32]>,
    pub first_ts: Timestamp,
    pub first_response: Option<Arc<RespRec>>,
    pub stored: Option<Arc<RespRec>>,
}

impl Tracker {
    /// Starts recording what other instances should know ([`Tracker::take_published`]).
    pub fn enable_publishing(&mut self) {
        self.publishing = true;
    }

    /// What was learned since the last call.
    pub fn take_published(&mut self) -> Vec<Publish> {
        std::mem::take(&mut self.published)
    }

    /// The key a request would be tracked under, and its identity (`None` when its body
    /// cannot be compared): the same choice as the tracker's own.
    pub fn tracked_key(&self, req: &Request) -> Option<(Scope, KeyId, Option<Identity>)> {
        let problem = rules::key_problem(&req.keys, self.cfg.max_key_len);
        let key = req
            .idempotency_key()
            .filter(|k| !k.is_empty() && problem != Some(KeyProblem::Empty))?;
        Some((
            Scope::of(req, self.cfg.scope),
            KeyId::of(&key),
            Identity::of(req),
        ))
    }

    /// Whether this instance's tables already answer for the key at `now`: a first use in
    /// its window that is this instance's own, or another's whose stored result is known.
    pub fn knows_key(&self, scope: Scope, key: KeyId, now: Timestamp) -> bool {
        self.keys.get(&(scope, key)).is_some_and(|e| {
            now.since(e.first_ts) <= nanos(self.cfg.window)
                && (!e.first.origin.is_remote() || e.stored.is_some())
        })
    }

    /// Takes a key's first use from the shared store. `key` is the key value of the request
    /// that asked (the store keeps no key value). A key this instance already tracks keeps its
    /// own first use; a first use from elsewhere only gains a stored result it lacked.
    pub fn import_shared(
        &mut self,
        scope: Scope,
        kid: KeyId,
        key: Option<&str>,
        shared: SharedFirst,
    ) -> bool {
        if let Some(e) = self.keys.get_mut(&(scope, kid)) {
            if e.first.origin.is_remote() && e.first_ts == shared.first_ts {
                if e.stored.is_none() {
                    e.stored = shared.stored;
                }
                if e.first_response.is_none() {
                    e.first_response = shared.first_response;
                }
            }
            return false;
        }
        let mut rec = shared.rec;
        rec.key = key.map(Into::into);
        let deadline = shared.first_ts.add_nanos(2 * nanos(self.cfg.window));
        let entry = KeyEntry {
            decoded: super::Decoded::of(shared.decoded, rec.body_sha256),
            first: Arc::new(rec),
            identity: Some(shared.identity),
            first_ts: shared.first_ts,
            first_response: shared.first_response,
            stored: shared.stored,
            in_flight: ThinVec::new(),
            conflicts_waiting: ThinVec::new(),
        };
        self.keys.insert((scope, kid), entry, deadline);
        true
    }

    /// What to ask the store about a request without any key header line, of a watched
    /// method: the keyless uses of the same request elsewhere, and whether its endpoint was
    /// learned elsewhere (unless this instance already watches it). `None` for other
    /// requests, and when there is nothing to ask.
    pub fn keyless_probe(&self, req: &Request) -> Option<KeylessProbe> {
        if !req.keys.is_empty() {
            return None;
        }
        let m = req.method.to_ascii_uppercase();
        if !self.cfg.watch_methods.contains(&m) {
            return None;
        }
        let identity = Identity::of(req);
        let endpoint = (!self.watched(req)).then(|| super::scope::endpoint(req));
        if identity.is_none() && endpoint.is_none() {
            return None;
        }
        Some(KeylessProbe {
            scope: Scope::of(req, self.cfg.scope),
            identity,
            endpoint,
        })
    }

    /// Takes the latest keyless use of a request seen elsewhere (captured at `at`), unless
    /// this instance remembers a later one of its own.
    pub fn import_keyless(
        &mut self,
        scope: Scope,
        identity: Identity,
        rec: ReqRec,
        at: Timestamp,
    ) -> bool {
        if self
            .keyless
            .get(&(scope, identity))
            .is_some_and(|k| k.rec.ts >= rec.ts)
        {
            return false;
        }
        let deadline = at.add_nanos(nanos(self.cfg.duplicate_window));
        self.keyless.insert(
            (scope, identity),
            super::Keyless {
                rec: Arc::new(rec),
                response: None,
            },
            deadline,
        );
        true
    }

    /// The key's first use seen elsewhere ended (observed) after the request `id` began: that
    /// request, about to be judged, is a `concurrent_reuse` of it.
    pub fn mark_concurrent_elsewhere(&mut self, id: TxId) {
        self.concurrent_elsewhere.insert(id);
    }

    /// `concurrent_reuse` across gateways, judged by the instance of the key's first use: the
    /// later uses of its key that other instances registered while it was in flight, now that
    /// it `ended`. Each that began before that end was concurrent with it; an unobserved end
    /// decides nothing.
    pub fn concurrent_uses_elsewhere(
        &self,
        ended: Ended,
        uses: Vec<ReqRec>,
        stats: &mut crate::stats::Stats,
    ) -> Vec<super::Alert> {
        if ended.not_processed {
            // It never ran: no use elsewhere ran alongside it.
            return Vec::new();
        }
        if !ended.observed {
            stats.tracker_unobservable_skipped += uses.len() as u64;
            return Vec::new();
        }
        uses.into_iter()
            .filter(|u| u.ts < ended.at)
            .map(|mut u| {
                // The store keeps no key value: it is this key.
                u.key = ended.first.key.clone();
                ended.alert(super::AlertKind::ConcurrentReuse, u)
            })
            .collect()
    }

    /// `key_churn` across gateways, judged by the instance of the first attempt: the same
    /// request under other keys that other instances registered while it was in flight
    /// (`waiters`), now that it `ended`. As on one gateway, each fires when the first
    /// attempt's outcome was observed, however it ended (both ran), unless the server did
    /// not process it.
    pub fn churn_elsewhere(
        &self,
        ended: Ended,
        waiters: Vec<SharedAttempt>,
        stats: &mut crate::stats::Stats,
    ) -> Vec<super::Alert> {
        if ended.not_processed {
            // It never ran: a fresh key for the same request elsewhere is a safe retry.
            return Vec::new();
        }
        if !ended.observed {
            stats.tracker_unobservable_skipped += waiters.len() as u64;
            return Vec::new();
        }
        waiters
            .into_iter()
            .filter(|w| w.rec.ts < ended.at)
            .map(|w| ended.alert(super::AlertKind::KeyChurn, w.rec))
            .collect()
    }

    /// Whether this instance remembers an attempt at the request.
    pub fn knows_attempt(&self, scope: Scope, identity: Identity) -> bool {
        self.attempts.contains_key(&(scope, identity))
    }

    /// Takes an attempt another instance saw end badly, unless this instance remembers one of
    /// its own. `key` is the key value of the request that asked, for the `original` object
    /// when it is the same key (else the attempt's key is unknown here: the store keeps none).
    pub fn import_attempt(&mut self, scope: Scope, identity: Identity, a: SharedAttempt) -> bool {
        if self.attempts.contains_key(&(scope, identity)) {
            return false;
        }
        let deadline = a.end.add_nanos(nanos(self.cfg.churn_window).max(1));
        let rec = Arc::new(a.rec);
        let attempt = super::Attempt {
            key: a.key,
            rec,
            ended: Some((a.end, a.bad, a.response)),
        };
        self.attempts.insert((scope, identity), attempt, deadline);
        true
    }

    /// Takes endpoints learned elsewhere (name, deadline), those not past `now`, within the
    /// table's cap. Returns how many were new here.
    pub fn import_endpoints(&mut self, list: &[(String, Timestamp)], now: Timestamp) -> usize {
        let mut n = 0;
        for (name, deadline) in list {
            if *deadline <= now || self.endpoints.len() >= self.endpoints.cap() {
                continue;
            }
            match self.endpoints.get_mut(name) {
                Some(d) if *d < *deadline => {
                    *d = *deadline;
                    self.endpoints.touch(name, *deadline);
                }
                Some(_) => {}
                None => {
                    self.endpoints.insert(name.clone(), *deadline, *deadline);
                    n += 1;
                }
            }
        }
        n
    }

    /// Whether the request's exchange is in flight here.
    pub fn is_in_flight(&self, id: TxId) -> bool {
        self.in_flight.contains_key(&id)
    }

    pub(super) fn publish(&mut self, p: Publish) {
        if self.publishing {
            self.published.push(p);
        }
    }
}
