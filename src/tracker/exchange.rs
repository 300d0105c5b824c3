//! An exchange ends: the alerts judged when its request arrived are written with its response,
//! and the kinds decided by the responses are judged.
//!
//! Takes a transaction whose request is in flight; gives alerts. Each response-side kind is
//! decided by its own function below, which says when it fires; what the tables learn (the
//! key's first response and stored result, how a keyed attempt ended, the keyless request's
//! response, who still waits on whom) is recorded apart from those decisions. The kinds judged
//! on the request alone are the request's (`request.rs`).

use std::sync::Arc;

use thin_vec::ThinVec;

use super::rules::{self, ReplayVerdict};
use super::{
    Alert, AlertKind, Finished, InFlight, KeyEntry, KeyId, Pending, ReqRec, RespRec, Role, Scope,
    Tracker, TrackerConfig, Waiter, nanos, shared,
};
use crate::http::{Transaction, TxId};
use crate::stats::Stats;
use crate::ts::Timestamp;

/// A response-side verdict, decided under the key entry's borrow and raised after it.
enum Verdict {
    /// A retry answered as the stored result says: counted, no alert.
    Retry,
    Replay(AlertKind),
    /// A conflicting request answered 2xx, against the key's stored result.
    Conflict {
        stored: Arc<RespRec>,
        response: Arc<RespRec>,
    },
    /// A conflicting request answered 2xx, marked replayed, before any result was stored.
    ConflictMarkedReplayed(Arc<RespRec>),
}

/// What the key's entry learned from the exchange's end.
#[derive(Default)]
struct Settled {
    verdict: Option<Verdict>,
    /// The exchange was the key's first use: its response is the first response.
    first_answered: bool,
    /// The result the key stores from now on, when this response became it.
    newly_stored: Option<Arc<RespRec>>,
}

/// What a later request that waited on this exchange gets.
enum Waited {
    /// Its alert: this exchange was in flight when it arrived, and its outcome is known.
    Fire,
    /// No alert: this exchange was answered before it arrived.
    Answered,
    /// No alert: whether this exchange was still running is unknowable (never guessed).
    Unknowable,
    /// No alert: the server did not process this exchange (RFC 9113 section 8.7), so nothing
    /// ran alongside the later request.
    NotProcessed,
}

impl Tracker {
    /// An exchange ended: writes its request's pending alerts, judges its response, and
    /// settles the later requests that waited on it.
    pub(super) fn on_done(&mut self, tx: &Transaction, stats: &mut Stats, out: &mut Vec<Alert>) {
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
        if tx.not_processed {
            self.not_processed.insert(tx.id);
        }

        let unseen_original = self.unseen_original(&f, response.as_deref());
        if unseen_original {
            stats.tracker_unseen_original_skipped += 1;
        } else {
            // Request-side alerts, with their responses; none against a request the server
            // did not process (see `forget_not_processed`).
            for p in f.pending.iter().filter(|p| !self.cites_not_processed(p)) {
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
        }

        let settled = if tx.not_processed {
            self.forget_not_processed(&f, tx.id);
            Settled::default()
        } else {
            self.settle_key(&f, tx.id, response.as_ref(), unseen_original)
        };
        if self.publishing
            && (settled.first_answered || settled.newly_stored.is_some())
            && let Some(kid) = f.key_id
        {
            self.publish(shared::Publish::Settle {
                scope: f.scope,
                key: kid,
                first: tx.id,
                first_response: if settled.first_answered {
                    response.clone()
                } else {
                    None
                },
                stored: settled.newly_stored.clone(),
                ended: settled.first_answered.then(|| {
                    let at = response.as_ref().map_or(now, |r| r.ts);
                    (f.rec.clone(), at, observable)
                }),
            });
        }
        match settled.verdict {
            None => {}
            Some(Verdict::Retry) => stats.tracker_retries += 1,
            Some(Verdict::Replay(kind)) => {
                out.push(self.alert_replay(kind, now, &f, response.clone()));
            }
            Some(Verdict::Conflict {
                stored,
                response: r,
            }) => {
                out.push(self.conflict_alert(&f, r, &stored, now));
            }
            Some(Verdict::ConflictMarkedReplayed(r)) => out.push(self.alert(
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
        if let Some(stored) = settled.newly_stored {
            self.judge_waiting_conflicts(&f, &stored, now, out);
        }

        self.end_attempt(&f, tx, observable, response.as_ref());
        if let Some(ident) = f.identity
            && let Some(k) = self.keyless.get_mut(&(f.scope, ident))
            && k.rec.origin.local() == Some(tx.id)
        {
            if tx.not_processed {
                // Never ran: the same request again is no duplicate of it.
                self.keyless.remove(&(f.scope, ident));
            } else {
                k.response = response.clone();
            }
        }

        // Later requests that waited on this one's outcome.
        for w in &f.waiters {
            match self.waited(w, response.as_deref(), observable, tx.not_processed) {
                Waited::Fire => self.settle_waiter(w, &f, response.clone(), now, out),
                Waited::Answered | Waited::NotProcessed => self.release_waiter(w.later),
                Waited::Unknowable => {
                    stats.tracker_unobservable_skipped += 1;
                    self.release_waiter(w.later);
                }
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
            self.not_processed.clear();
        } else if self.responses.len() > 4 * (self.in_flight.len() + self.finished.len()) + 1024 {
            let live: std::collections::HashSet<TxId> = self.keys_citing().into_iter().collect();
            self.responses.retain(|t, _| live.contains(t));
            self.not_processed.retain(|t| live.contains(t));
        }
    }

    /// Whether a pending alert cites, as its original, an exchange the server did not process.
    fn cites_not_processed(&self, p: &Pending) -> bool {
        p.original_tx
            .is_some_and(|t| self.not_processed.contains(&t))
    }

    /// The server did not process the exchange (RFC 9113 section 8.7): it is never the key's
    /// stored result, and no later use is compared with it. When it was the key's first use,
    /// the key is forgotten, so that the next use becomes the first; the uses in flight that
    /// were filed against it are no longer judged on the key (their alerts against it are
    /// dropped when written, see [`Tracker::cites_not_processed`]).
    fn forget_not_processed(&mut self, f: &InFlight, tx: TxId) {
        let Some(k) = &f.key else {
            return;
        };
        let map_key = (f.scope, f.key_id.unwrap_or_else(|| KeyId::of(k)));
        let Some(e) = self.keys.get_mut(&map_key) else {
            return;
        };
        e.in_flight.retain(|t| *t != tx);
        if e.first.origin.local() != Some(tx) {
            return;
        }
        let others = std::mem::take(&mut e.in_flight);
        self.keys.remove(&map_key);
        self.publish(shared::Publish::Release {
            scope: map_key.0,
            key: map_key.1,
            first: tx,
        });
        for t in others {
            if let Some(o) = self.in_flight.get_mut(&t) {
                o.role = Role::Untracked;
            }
        }
    }

    /// The key's entry, for a request whose key is tracked.
    fn entry_of(&self, f: &InFlight) -> Option<&KeyEntry> {
        let k = f.key.as_ref()?;
        self.keys
            .get(&(f.scope, f.key_id.unwrap_or_else(|| KeyId::of(k))))
    }

    /// The server replayed a success for a conflicting request's key, but the only earlier
    /// request with it that was seen was rejected: the result it replays comes from a request
    /// the capture lost, so "the first one" this request is compared with is unknown. None of
    /// its alerts are written (counted instead).
    fn unseen_original(&self, f: &InFlight, response: Option<&RespRec>) -> bool {
        f.role == Role::Conflict
            && response.is_some_and(|r| r.replayed && r.status / 100 == 2)
            && self.entry_of(f).is_some_and(|e| {
                e.first_response
                    .as_ref()
                    .is_some_and(|r| r.status / 100 != 2)
                    && e.stored.as_ref().is_none_or(|s| s.status / 100 != 2)
            })
    }

    /// The key's entry learns the exchange's end: it is no longer in flight, its response is
    /// the first response (for the key's first use), and it may become the stored result.
    /// The response-side verdict on the key is decided on the way.
    fn settle_key(
        &mut self,
        f: &InFlight,
        tx: TxId,
        response: Option<&Arc<RespRec>>,
        unseen_original: bool,
    ) -> Settled {
        let mut s = Settled::default();
        let Some(k) = &f.key else {
            return s;
        };
        let cfg = &self.cfg;
        let Some(e) = self
            .keys
            .get_mut(&(f.scope, f.key_id.unwrap_or_else(|| KeyId::of(k))))
        else {
            return s;
        };
        e.in_flight.retain(|t| *t != tx);
        if e.in_flight.is_empty() {
            // Most keys are never in flight again: give the buffer back.
            e.in_flight = ThinVec::new();
        }
        if e.first.origin.local() == Some(tx) {
            e.first_response = response.cloned();
            s.first_answered = true;
        }
        let Some(r) = response else {
            return s;
        };
        match f.role {
            Role::First | Role::Retry | Role::Reencoded => match &e.stored {
                None => {
                    if stores_result(cfg, f.role, r) {
                        e.stored = Some(r.clone());
                        s.newly_stored = Some(r.clone());
                    }
                }
                Some(stored) => s.verdict = replay(cfg, f.role, stored, r),
            },
            Role::Conflict if !unseen_original => match conflict_answered(e.stored.as_ref(), r) {
                Conflicted::Now(v) => s.verdict = Some(v),
                Conflicted::Later => e.conflicts_waiting.push((f.rec.clone(), r.clone())),
                Conflicted::No => {}
            },
            Role::Conflict | Role::Untracked => {}
        }
        s
    }

    /// A result was stored: the conflicting requests answered 2xx before it are judged against
    /// it now ([`Tracker::conflict_alert`]).
    fn judge_waiting_conflicts(
        &mut self,
        f: &InFlight,
        stored: &Arc<RespRec>,
        now: Timestamp,
        out: &mut Vec<Alert>,
    ) {
        let Some(k) = &f.key else {
            return;
        };
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
            out.push(self.conflict_alert(&fake, r, stored, now));
        }
    }

    /// `key_churn` bookkeeping: how the request's last keyed attempt ended. Badly (unanswered
    /// although observable, 5xx, 409): remembered for `churn_window` (and filed for other
    /// instances); well: forgotten, since a fresh key for the same request later is a new
    /// request, not churn. Not processed by the server (RFC 9113 section 8.7): well, since
    /// retrying it under any key is safe, and other instances learn the same.
    fn end_attempt(
        &mut self,
        f: &InFlight,
        tx: &Transaction,
        observable: bool,
        response: Option<&Arc<RespRec>>,
    ) {
        let (now, not_processed, tx) = (tx.ts_done, tx.not_processed, tx.id);
        let Some(ident) = f.identity else {
            return;
        };
        let Some(a) = self.attempts.get_mut(&(f.scope, ident)) else {
            return;
        };
        if a.rec.origin.local() != Some(tx) {
            return;
        }
        let bad = !not_processed
            && match response {
                None => observable,
                Some(r) => r.status >= 500 || r.status == 409,
            };
        let (key, rec) = (a.key, a.rec.clone());
        if bad {
            a.ended = Some((now, bad, response.cloned()));
            let deadline = now.add_nanos(nanos(self.cfg.churn_window).max(1));
            self.attempts.touch(&(f.scope, ident), deadline);
        } else {
            self.attempts.remove(&(f.scope, ident));
        }
        self.publish(shared::Publish::AttemptEnded {
            scope: f.scope,
            identity: ident,
            key,
            rec,
            end: now,
            response: response.cloned(),
            bad,
            observable,
            not_processed,
        });
    }

    /// `concurrent_reuse` and `key_churn`, waiting side: a later request arrived while this
    /// exchange was in flight (another use of its key; the same request under a fresh key).
    /// Never when the server did not process this exchange. Fires when its outcome is
    /// observable; for `concurrent_reuse`, not when its
    /// final response had begun before the later request did (not in flight then: its end can
    /// come much later, or be lost in a capture gap).
    fn waited(
        &self,
        w: &Waiter,
        response: Option<&RespRec>,
        observable: bool,
        not_processed: bool,
    ) -> Waited {
        if not_processed {
            return Waited::NotProcessed;
        }
        let answered_before = w.kind == AlertKind::ConcurrentReuse
            && response.is_some_and(|r| {
                let later = self
                    .in_flight
                    .get(&w.later)
                    .map(|l| l.rec.ts)
                    .or_else(|| self.finished.get(&w.later).map(|l| l.rec.ts));
                later.is_some_and(|t| r.ts <= t)
            });
        if answered_before {
            Waited::Answered
        } else if observable {
            Waited::Fire
        } else {
            Waited::Unknowable
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
    pub(super) fn waiting_count(&self, later: TxId) -> usize {
        self.waited_on.get(&later).copied().unwrap_or(0)
    }

    fn original_of(&self, f: &InFlight) -> Option<Arc<ReqRec>> {
        self.entry_of(f).map(|e| e.first.clone())
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
            .then(|| rec.all_keys().map(|k| k.to_vec()))
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

    fn alert_replay(
        &self,
        kind: AlertKind,
        now: Timestamp,
        f: &InFlight,
        response: Option<Arc<RespRec>>,
    ) -> Alert {
        let (orig, stored) = self
            .entry_of(f)
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

    /// `conflict_replayed` or `conflict_accepted`: a conflicting request answered 2xx, against
    /// the key's stored result. `conflict_replayed` when the answer is that result (marked
    /// replayed, or the same resource, else the same body): the request's own payload was
    /// dropped. Else `conflict_accepted`: the server ran it as a new request.
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
            original_tx: earlier.rec.origin.local(),
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

/// A re-encoded request (`key_reencoded`) that the server rejected (`reject_statuses`): its
/// answer is neither a result to store nor a replay to compare.
fn rejected_reencoding(cfg: &TrackerConfig, role: Role, r: &RespRec) -> bool {
    role == Role::Reencoded && cfg.reject_statuses.contains(&r.status)
}

/// Whether the response of a use of the key (first, retry, re-encoding) becomes the key's
/// stored result, when it has none: a final answer (see [`rules::storable`]; 5xx only with
/// `store_errors`), not to a rejected re-encoding.
fn stores_result(cfg: &TrackerConfig, role: Role, r: &RespRec) -> bool {
    !rejected_reencoding(cfg, role, r) && rules::storable(r, cfg.store_errors)
}

/// `replay_mismatch` and `replay_drift`: a retry (or re-encoding) of a key with a stored
/// result, answered with a final response (not 408, 409, 425, 429 or 5xx; not a rejected
/// re-encoding). `replay_mismatch` when it names another resource or turns the stored 2xx into
/// an error; `replay_drift` when the status class is the same and the body is not. Else a plain
/// retry (counted). Never for the key's first use.
fn replay(cfg: &TrackerConfig, role: Role, stored: &RespRec, r: &RespRec) -> Option<Verdict> {
    if role == Role::First || rules::transient(r) || rejected_reencoding(cfg, role, r) {
        return None;
    }
    Some(match rules::judge_replay(stored, r) {
        ReplayVerdict::Mismatch => Verdict::Replay(AlertKind::ReplayMismatch),
        ReplayVerdict::Drift => Verdict::Replay(AlertKind::ReplayDrift),
        ReplayVerdict::Same => Verdict::Retry,
    })
}

/// What a conflicting request's answer says, when the key's original was seen.
enum Conflicted {
    Now(Verdict),
    /// Answered 2xx before any result was stored: judged when one is.
    Later,
    No,
}

/// `conflict_accepted` and `conflict_replayed`: a conflicting request (`key_conflict`)
/// answered 2xx. Against the key's stored result when there is one
/// ([`Tracker::conflict_alert`]); without one, `conflict_replayed` at once when the answer is
/// marked `Idempotent-Replayed`, else judged once a result is stored.
fn conflict_answered(stored: Option<&Arc<RespRec>>, r: &Arc<RespRec>) -> Conflicted {
    if r.status / 100 != 2 {
        return Conflicted::No;
    }
    match stored {
        Some(s) => Conflicted::Now(Verdict::Conflict {
            stored: s.clone(),
            response: r.clone(),
        }),
        None if r.replayed => Conflicted::Now(Verdict::ConflictMarkedReplayed(r.clone())),
        None => Conflicted::Later,
    }
}
