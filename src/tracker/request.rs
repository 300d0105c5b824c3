//! A request arrives: what the tracker files about it, and the kinds judged on the request
//! alone.
//!
//! Takes a fully received request; gives its [`InFlight`] entry, with the alerts judged now
//! ([`Pending`], written when its exchange ends, with its response) and the earlier requests
//! whose outcome it waits on. Each kind is decided by its own function below, which says when
//! it fires; the tables (keys, attempts, keyless requests, endpoints) are updated apart from
//! those decisions. The kinds decided by the responses are the exchange's (`exchange.rs`).

use std::sync::Arc;

use thin_vec::{ThinVec, thin_vec};

use super::rules::{self, KeyProblem};
use super::{
    AlertKind, Attempt, Decoded, Identity, InFlight, KeyEntry, KeyId, Keyless, MissingKeyMode,
    Pending, ReqRec, RespRec, Role, Scope, Tracker, Waiter, nanos, scope, shared,
};
use crate::http::{Conn, Request, TxId};
use crate::stats::Stats;
use crate::ts::Timestamp;

/// How a keyed request stands against its key's first use, as filed when it arrived.
struct KeyUse {
    role: Role,
    /// The key's first use it was compared with, and that first use's response so far.
    first: Option<(Arc<ReqRec>, Option<Arc<RespRec>>)>,
    /// The same request as the key's first use, after the key's window.
    late: bool,
    /// The key's earliest use still in flight, when this one is another use in the window.
    in_flight: Option<TxId>,
}

/// What a request's key churn check found.
enum Churn {
    /// The last attempt at the request ended badly, recently: alert now.
    Now(Pending),
    /// The last attempt at the request is still in flight: wait for its outcome.
    Wait(TxId),
}

impl Pending {
    /// An alert about a request alone.
    fn alone(kind: AlertKind) -> Pending {
        Pending {
            kind,
            original: None,
            original_tx: None,
            original_response: None,
        }
    }

    /// An alert citing an earlier request (its response is looked up again when the alert is
    /// written, when it was one of this run's exchanges).
    fn against(kind: AlertKind, original: &Arc<ReqRec>, response: Option<Arc<RespRec>>) -> Pending {
        Pending {
            kind,
            original: Some(original.clone()),
            original_tx: original.origin.local(),
            original_response: response,
        }
    }
}

impl Tracker {
    /// A request was fully received: files it, and judges the kinds it raises on its own
    /// (kept pending until its exchange ends) or once an earlier request ends (waits).
    pub(super) fn on_request(
        &mut self,
        id: TxId,
        conn: &Arc<Conn>,
        req: &Request,
        stats: &mut Stats,
    ) {
        stats.tracker_requests += 1;
        let now = req.ts_end;
        let rec = Arc::new(ReqRec::new(id, conn, req));
        let scope = Scope::of(req, self.cfg.scope);
        let identity = Identity::of(req);
        let mut pending = Vec::new();
        let mut waits: Vec<(TxId, AlertKind)> = Vec::new();

        let problem = rules::key_problem(&req.keys, self.cfg.max_key_len);
        pending.extend(invalid_key(problem));
        if !req.keys.is_empty() {
            self.learn_endpoint(req, now);
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
            let u = self.file_key_use(id, &rec, req, (scope, kid), identity, stats);
            role = u.role;
            pending.extend(key_conflict(&u));
            pending.extend(key_reencoded(&u));
            pending.extend(late_retry(&u));
            waits.extend(concurrent_reuse(&u));
            let elsewhere = self.concurrent_elsewhere.remove(&id);
            pending.extend(concurrent_reuse_elsewhere(&u, elsewhere));
            if let Some(ident) = identity {
                match self.key_churn(scope, ident, kid, req.ts, now) {
                    Some(Churn::Now(p)) => pending.push(p),
                    Some(Churn::Wait(t)) => waits.push((t, AlertKind::KeyChurn)),
                    None => {}
                }
                self.remember_attempt(scope, ident, kid, &rec, now, stats);
            }
        } else if req.keys.is_empty() && self.watched(req) {
            pending.extend(self.missing_key());
            match identity {
                Some(ident) => {
                    pending.extend(self.keyless_duplicate(scope, ident));
                    self.remember_keyless(scope, ident, &rec, now);
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

    /// Whether a keyless request is judged: a watched method, and `--missing-key all`, a
    /// `--require-key` prefix, or an endpoint learned to take keys.
    pub(super) fn watched(&self, req: &Request) -> bool {
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

    /// Any key header line, valid or not, teaches that the request's endpoint takes keys, for
    /// a window.
    fn learn_endpoint(&mut self, req: &Request, now: Timestamp) {
        let window = nanos(self.cfg.window);
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

    /// Files a keyed request against its key's first use: another use within the key's window
    /// joins the key's requests in flight; otherwise a comparable request becomes the key's
    /// (new) first use. Says how it stands, for the kinds below.
    fn file_key_use(
        &mut self,
        id: TxId,
        rec: &Arc<ReqRec>,
        req: &Request,
        map_key: (Scope, KeyId),
        identity: Option<Identity>,
        stats: &mut Stats,
    ) -> KeyUse {
        let now = req.ts_end;
        let window = nanos(self.cfg.window);
        let mut u = KeyUse {
            role: Role::Untracked,
            first: None,
            late: false,
            in_flight: None,
        };
        let mut start_new = true;
        if let Some(e) = self.keys.get_mut(&map_key) {
            let age = now.since(e.first_ts);
            match (identity, e.identity) {
                // This request began before the one taken as the key's first, which was only
                // fully received earlier (this one's end waited on a capture hole): which came
                // first is unknown, so neither is judged against the other.
                (Some(_), Some(_)) if req.ts < e.first.ts => {
                    start_new = false;
                    stats.tracker_order_unknown_skipped += 1;
                }
                (Some(ident), Some(first_ident)) => {
                    let same = ident == first_ident;
                    if age <= window {
                        start_new = false;
                        u.role = if !same {
                            Role::Conflict
                        } else if req.body.decoded_sha256 != e.decoded() {
                            Role::Reencoded
                        } else {
                            Role::Retry
                        };
                        u.first = Some((e.first.clone(), e.first_response.clone()));
                        u.in_flight = e.in_flight.first().copied();
                        e.in_flight.push(id);
                    } else if same {
                        // After the window the server has forgotten the key: it runs the
                        // request again, which becomes the key's first use.
                        u.late = true;
                        u.first = Some((e.first.clone(), e.first_response.clone()));
                    }
                }
                _ => {
                    // A body that cannot be compared: neither judged nor a new first use.
                    if age <= window {
                        start_new = false;
                        u.role = Role::Untracked;
                        u.in_flight = e.in_flight.first().copied();
                        e.in_flight.push(id);
                    }
                }
            }
        }
        if start_new && identity.is_some() {
            u.role = Role::First;
            let entry = KeyEntry {
                first: rec.clone(),
                identity,
                decoded: Decoded::of(req.body.decoded_sha256, rec.body_sha256),
                first_ts: now,
                first_response: None,
                stored: None,
                in_flight: thin_vec![id],
                conflicts_waiting: ThinVec::new(),
            };
            let r = self.keys.insert(map_key, entry, now.add_nanos(2 * window));
            stats.tracker_keys_evicted += r.evicted;
        }
        u
    }

    /// `key_churn`, request side: the same request under another key than its last attempt's.
    /// Fires at once when that attempt ended badly (unanswered, aborted, 5xx, 409) at most
    /// `churn_window` before, or ended (however) after this request `began`: it was in flight
    /// then, as one seen ending on another gateway can be. While it is in flight here, waits
    /// for its outcome (`exchange.rs`).
    fn key_churn(
        &self,
        scope: Scope,
        ident: Identity,
        kid: KeyId,
        began: Timestamp,
        now: Timestamp,
    ) -> Option<Churn> {
        let a = self.attempts.get(&(scope, ident))?;
        if a.key == kid {
            return None;
        }
        match &a.ended {
            // Not ended: only this run's own attempts (those imported had ended).
            None => a.rec.origin.local().map(Churn::Wait),
            Some((end, bad, resp)) => ((*bad && now.since(*end) <= nanos(self.cfg.churn_window))
                || began < *end)
                .then(|| Churn::Now(Pending::against(AlertKind::KeyChurn, &a.rec, resp.clone()))),
        }
    }

    /// The request is now the last keyed attempt at itself (for `key_churn`).
    fn remember_attempt(
        &mut self,
        scope: Scope,
        ident: Identity,
        kid: KeyId,
        rec: &Arc<ReqRec>,
        now: Timestamp,
        stats: &mut Stats,
    ) {
        let r = self.attempts.insert(
            (scope, ident),
            Attempt {
                key: kid,
                rec: rec.clone(),
                ended: None,
            },
            now.add_nanos(nanos(self.cfg.window)),
        );
        stats.tracker_keys_evicted += r.evicted;
        self.publish(shared::Publish::AttemptStarted {
            scope,
            identity: ident,
            key: kid,
            rec: rec.clone(),
        });
    }

    /// `missing_key`: a watched request (see [`Tracker::watched`]) without any key header
    /// line. Never with `--missing-key off`.
    fn missing_key(&self) -> Option<Pending> {
        (self.cfg.missing_key != MissingKeyMode::Off).then(|| Pending::alone(AlertKind::MissingKey))
    }

    /// `keyless_duplicate`: a watched keyless request identical to the last one, which came at
    /// most `duplicate_window` before.
    fn keyless_duplicate(&self, scope: Scope, ident: Identity) -> Option<Pending> {
        let prev = self.keyless.get(&(scope, ident))?;
        Some(Pending::against(
            AlertKind::KeylessDuplicate,
            &prev.rec,
            prev.response.clone(),
        ))
    }

    /// The request is now the last keyless one like it, for `duplicate_window`.
    fn remember_keyless(
        &mut self,
        scope: Scope,
        ident: Identity,
        rec: &Arc<ReqRec>,
        now: Timestamp,
    ) {
        self.keyless.insert(
            (scope, ident),
            Keyless {
                rec: rec.clone(),
                response: None,
            },
            now.add_nanos(nanos(self.cfg.duplicate_window)),
        );
        self.publish(shared::Publish::Keyless {
            scope,
            identity: ident,
            rec: rec.clone(),
            at: now,
        });
    }
}

/// `invalid_key`: a key that is empty, longer than `max_key_len`, of characters outside its
/// form (visible ASCII; printable within a quoted string), or sent on several header lines.
fn invalid_key(problem: Option<KeyProblem>) -> Option<Pending> {
    problem.map(|_| Pending::alone(AlertKind::InvalidKey))
}

/// `key_conflict`: another request under a key whose first use, within the key's window, was
/// a different request (another identity: method, target, body).
fn key_conflict(u: &KeyUse) -> Option<Pending> {
    let (first, resp) = u.first.as_ref().filter(|_| u.role == Role::Conflict)?;
    Some(Pending::against(
        AlertKind::KeyConflict,
        first,
        resp.clone(),
    ))
}

/// `key_reencoded`: the same request as the key's first use within its window, with another
/// content encoding of the same body (the decoded bytes differ).
fn key_reencoded(u: &KeyUse) -> Option<Pending> {
    let (first, resp) = u.first.as_ref().filter(|_| u.role == Role::Reencoded)?;
    Some(Pending::against(
        AlertKind::KeyReencoded,
        first,
        resp.clone(),
    ))
}

/// `late_retry`: the same request as the key's first use, after the key's window: the server
/// has forgotten the key and runs it again.
fn late_retry(u: &KeyUse) -> Option<Pending> {
    let (first, resp) = u.first.as_ref().filter(|_| u.late)?;
    Some(Pending::against(AlertKind::LateRetry, first, resp.clone()))
}

/// `concurrent_reuse` across gateways, when the key's first use was seen by another instance
/// that had filed its end when this use was judged: it ended (observed) after this one began
/// (`elsewhere`, found by the fleet stage). When its end was not filed yet, this use was
/// registered with it, and the other instance judges it when it ends
/// ([`Tracker::concurrent_uses_elsewhere`]).
fn concurrent_reuse_elsewhere(u: &KeyUse, elsewhere: bool) -> Option<Pending> {
    let (first, resp) = u.first.as_ref().filter(|_| elsewhere && !u.late)?;
    first
        .origin
        .is_remote()
        .then(|| Pending::against(AlertKind::ConcurrentReuse, first, resp.clone()))
}

/// `concurrent_reuse`, request side: another use of a key within its window while an earlier
/// use is still in flight. Waits on the earliest such use; whether it fires depends on how
/// that one ends (`exchange.rs`).
fn concurrent_reuse(u: &KeyUse) -> Option<(TxId, AlertKind)> {
    u.in_flight.map(|t| (t, AlertKind::ConcurrentReuse))
}
