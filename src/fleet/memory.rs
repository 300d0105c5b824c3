//! The in-process store: the same semantics as the Redis scripts, on a `dashmap`, for the
//! trackers of one process (and to test the fleet logic without a server). Nothing expires by
//! wall clock here: a record is replaced when its window passed in capture time, and the
//! process's end forgets everything.

use std::sync::Arc;

use dashmap::DashMap;

use super::{Backend, Op, RawClaim, RawRecord, RawReply, StoreError};
use crate::tracker::KeyId;

#[derive(Debug, Clone)]
struct Entry {
    /// `i64::MIN` while being created.
    first_us: i64,
    raw: RawRecord,
    /// Later uses registered while the first is in flight: claim id and record.
    uses: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn empty() -> Entry {
        Entry {
            first_us: i64::MIN,
            raw: RawRecord {
                claim_id: String::new(),
                record: Vec::new(),
                first_response: None,
                stored: None,
                end: None,
            },
            uses: Vec::new(),
        }
    }
}

/// A request's last keyed attempt, as the Redis hash holds it.
#[derive(Debug, Clone)]
struct AttemptEntry {
    /// Ended: whether badly; `None` in flight.
    ended: Option<bool>,
    claim_id: String,
    key: KeyId,
    record: Vec<u8>,
    /// Attempts under other keys registered while it was in flight: claim id, record.
    waiters: Vec<(String, Vec<u8>)>,
    /// Forgotten after this (wall clock).
    until: std::time::Instant,
}

/// A keyless use of a request: its capture time (µs) and its record.
type KeylessUse = (i64, Vec<u8>);

/// The shared maps; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    records: Arc<DashMap<String, Entry>>,
    endpoints: Arc<DashMap<String, i64>>,
    /// Attempts that ended badly, with when they are forgotten.
    attempts: Arc<DashMap<String, AttemptEntry>>,
    /// Recent keyless uses of each request: capture time (µs) and record, latest last.
    keyless: Arc<DashMap<String, Vec<KeylessUse>>>,
    inserts: Arc<std::sync::atomic::AtomicU64>,
}

/// Keyless uses older than this (in capture time) than the newest filed go when the map is
/// full: ten minutes, past any duplicate window worth setting.
const KEYLESS_HORIZON_US: i64 = 600_000_000;

/// Every this many new records, records older than two windows are dropped (as Redis's TTL
/// would), so that a long-running process stays bounded by the keys of two windows.
const PRUNE_EVERY: u64 = 4096;

impl MemoryStore {
    pub fn records(&self) -> usize {
        self.records.len()
    }
}

/// A [`Backend`] on a [`MemoryStore`].
pub struct MemoryBackend {
    store: MemoryStore,
    prefix: String,
}

impl MemoryBackend {
    pub fn new(store: MemoryStore, prefix: &str) -> MemoryBackend {
        MemoryBackend {
            store,
            prefix: prefix.to_string(),
        }
    }

    fn one(&self, op: &Op) -> RawReply {
        match op {
            Op::Claim { rk, claim, .. } => {
                let name = rk.name(&self.prefix);
                let Some(c) = claim else {
                    return RawReply::Claim(match self.store.records.get(&name) {
                        Some(e) => RawClaim::Held(e.raw.clone()),
                        None => RawClaim::Free,
                    });
                };
                self.prune(c.first_us, c.window_us);
                // The entry API locks the record's shard: two claims of one key are serial.
                let mut slot = self.store.records.entry(name).or_insert_with(Entry::empty);
                let fresh = slot.first_us == i64::MIN;
                if !fresh && c.first_us.saturating_sub(slot.first_us) <= c.window_us {
                    if slot.raw.end.is_none()
                        && slot.uses.len() < super::USES_KEPT
                        && !slot.uses.iter().any(|(id, _)| *id == c.claim_id)
                    {
                        slot.uses.push((c.claim_id.clone(), c.record.clone()));
                    }
                    return RawReply::Claim(RawClaim::Held(slot.raw.clone()));
                }
                let old = std::mem::replace(
                    &mut *slot,
                    Entry {
                        first_us: c.first_us,
                        raw: RawRecord {
                            claim_id: c.claim_id.clone(),
                            record: c.record.clone(),
                            first_response: None,
                            stored: None,
                            end: None,
                        },
                        uses: Vec::new(),
                    },
                );
                RawReply::Claim(if fresh {
                    RawClaim::Free
                } else {
                    RawClaim::Replaced(old.raw)
                })
            }
            Op::Release { rk, claim_id } => {
                self.store
                    .records
                    .remove_if(&rk.name(&self.prefix), |_, e| e.raw.claim_id == *claim_id);
                RawReply::Done
            }
            Op::Settle {
                rk,
                claim_id,
                first_response,
                stored,
                end,
                ..
            } => {
                let mut uses = Vec::new();
                if let Some(mut e) = self.store.records.get_mut(&rk.name(&self.prefix)) {
                    let claimer = e.raw.claim_id == *claim_id;
                    if let Some(f) = first_response
                        && claimer
                    {
                        e.raw.first_response = Some(f.clone());
                    }
                    if let Some(s) = stored
                        && e.raw.stored.is_none()
                    {
                        e.raw.stored = Some(s.clone());
                    }
                    if let Some(m) = end
                        && claimer
                    {
                        e.raw.end = Some(*m);
                        uses = std::mem::take(&mut e.uses)
                            .into_iter()
                            .map(|(_, r)| r)
                            .collect();
                    }
                }
                match end {
                    Some(_) => RawReply::Settled(uses),
                    None => RawReply::Done,
                }
            }
            Op::Endpoint { name, deadline_us } => {
                let mut d = self.store.endpoints.entry(name.clone()).or_insert(i64::MIN);
                *d = (*d).max(*deadline_us);
                RawReply::Done
            }
            Op::SyncEndpoints { now_us } => {
                self.store.endpoints.retain(|_, d| *d >= *now_us);
                let mut v: Vec<(String, i64)> = self
                    .store
                    .endpoints
                    .iter()
                    .map(|e| (e.key().clone(), *e.value()))
                    .collect();
                v.sort();
                RawReply::Endpoints(v)
            }
            Op::Barrier { .. } => RawReply::Done,
            Op::AttemptStarted {
                ak,
                claim_id,
                key,
                record,
                ttl_ms,
            } => {
                let now = std::time::Instant::now();
                if self.store.attempts.len() >= 4096 {
                    self.store.attempts.retain(|_, a| a.until > now);
                }
                let mut slot = self
                    .store
                    .attempts
                    .entry(ak.name(&self.prefix))
                    .or_insert_with(|| AttemptEntry {
                        ended: Some(false),
                        claim_id: String::new(),
                        key: *key,
                        record: Vec::new(),
                        waiters: Vec::new(),
                        until: now,
                    });
                let others_in_flight =
                    slot.ended.is_none() && slot.until > now && slot.claim_id != *claim_id;
                if !others_in_flight {
                    *slot = AttemptEntry {
                        ended: None,
                        claim_id: claim_id.clone(),
                        key: *key,
                        record: record.clone(),
                        waiters: Vec::new(),
                        until: now + std::time::Duration::from_millis(*ttl_ms),
                    };
                }
                RawReply::Done
            }
            Op::AttemptEnded {
                ak,
                claim_id,
                bad,
                record,
                ttl_ms,
                ..
            } => {
                let name = ak.name(&self.prefix);
                let mut waiters = Vec::new();
                if let Some(mut a) = self.store.attempts.get_mut(&name)
                    && a.claim_id == *claim_id
                {
                    waiters = std::mem::take(&mut a.waiters)
                        .into_iter()
                        .map(|(_, r)| r)
                        .collect();
                    a.ended = Some(*bad);
                    a.record = record.clone();
                    a.until = std::time::Instant::now() + std::time::Duration::from_millis(*ttl_ms);
                }
                RawReply::Settled(waiters)
            }
            Op::KeylessLookup {
                dk,
                at_us,
                window_us,
                ..
            } => {
                let oldest = at_us.saturating_sub(*window_us);
                RawReply::Keyless(
                    self.store
                        .keyless
                        .get(&dk.name(&self.prefix))
                        .and_then(|uses| {
                            uses.iter()
                                .rev()
                                .find(|(t, _)| *t < *at_us && *t >= oldest)
                                .map(|(_, r)| r.clone())
                        }),
                )
            }
            Op::KeylessUse {
                dk, at_us, record, ..
            } => {
                if self.store.keyless.len() >= 4096 {
                    // Bounded as Redis's TTL bounds it: uses far older than this one go.
                    let horizon = at_us.saturating_sub(KEYLESS_HORIZON_US);
                    self.store
                        .keyless
                        .retain(|_, v| v.last().is_some_and(|(t, _)| *t >= horizon));
                }
                let mut uses = self.store.keyless.entry(dk.name(&self.prefix)).or_default();
                let at = uses.partition_point(|(t, _)| *t <= *at_us);
                uses.insert(at, (*at_us, record.clone()));
                let extra = uses.len().saturating_sub(super::KEYLESS_KEPT);
                uses.drain(..extra);
                RawReply::Done
            }
            Op::EndpointLookup { name, .. } => {
                RawReply::Endpoint(self.store.endpoints.get(name).map(|d| *d))
            }
            Op::AttemptLookup {
                ak,
                claim_id,
                key,
                waiter,
                ttl_ms,
                ..
            } => {
                let now = std::time::Instant::now();
                let mut slot = self
                    .store
                    .attempts
                    .entry(ak.name(&self.prefix))
                    .or_insert_with(|| AttemptEntry {
                        ended: Some(false),
                        claim_id: String::new(),
                        key: *key,
                        record: Vec::new(),
                        waiters: Vec::new(),
                        until: now,
                    });
                let live = slot.until > now;
                if live && slot.ended.is_none() && slot.claim_id != *claim_id {
                    if slot.key != *key
                        && slot.waiters.len() < super::USES_KEPT
                        && !slot.waiters.iter().any(|(id, _)| id == claim_id)
                    {
                        slot.waiters.push((claim_id.clone(), waiter.clone()));
                    }
                    return RawReply::Attempt(None);
                }
                let found = match slot.ended {
                    Some(bad) if live && !slot.record.is_empty() => {
                        Some((bad, std::mem::take(&mut slot.record)))
                    }
                    _ => None,
                };
                *slot = AttemptEntry {
                    ended: None,
                    claim_id: claim_id.clone(),
                    key: *key,
                    record: waiter.clone(),
                    waiters: Vec::new(),
                    until: now + std::time::Duration::from_millis(*ttl_ms),
                };
                RawReply::Attempt(found)
            }
        }
    }

    /// Drops records older than two windows before `now_us`, once every [`PRUNE_EVERY`]
    /// claims.
    fn prune(&self, now_us: i64, window_us: i64) {
        use std::sync::atomic::Ordering;
        if self.store.inserts.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY != PRUNE_EVERY - 1 {
            return;
        }
        let oldest = now_us.saturating_sub(window_us.saturating_mul(2));
        self.store
            .records
            .retain(|_, e| e.first_us == i64::MIN || e.first_us >= oldest);
    }
}

impl Backend for MemoryBackend {
    fn connect(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn run(&mut self, ops: &[Op]) -> Result<Vec<RawReply>, StoreError> {
        Ok(ops.iter().map(|op| self.one(op)).collect())
    }

    fn describe(&self) -> String {
        "memory (this process)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{Claim, RecordKey};
    use crate::tracker::{KeyId, Scope};

    fn claim(id: &str, first_us: i64) -> Option<Claim> {
        Some(Claim {
            claim_id: id.into(),
            first_us,
            window_us: 1000,
            ttl_ms: 1000,
            record: id.as_bytes().to_vec(),
        })
    }

    fn rk() -> RecordKey {
        RecordKey {
            scope: Scope([1; 16]),
            key: KeyId::of("k"),
        }
    }

    fn one(b: &mut MemoryBackend, op: Op) -> RawReply {
        b.run(&[op])
            .unwrap_or_default()
            .pop()
            .unwrap_or(RawReply::Done)
    }

    fn held_by(r: &RawReply) -> Option<(&str, bool)> {
        match r {
            RawReply::Claim(RawClaim::Held(x)) => Some((&x.claim_id, false)),
            RawReply::Claim(RawClaim::Replaced(x)) => Some((&x.claim_id, true)),
            _ => None,
        }
    }

    #[test]
    fn the_first_claim_holds_the_key_for_its_window_then_is_replaced() {
        let store = MemoryStore::default();
        let (mut a, mut b) = (
            MemoryBackend::new(store.clone(), "p:"),
            MemoryBackend::new(store, "p:"),
        );
        let c = |t, id| Op::Claim {
            ticket: t,
            rk: rk(),
            claim: claim(id, 5000),
        };
        assert_eq!(one(&mut a, c(0, "a")), RawReply::Claim(RawClaim::Free));
        assert_eq!(held_by(&one(&mut b, c(1, "b"))), Some(("a", false)));
        // Read only: who holds it, nothing changed.
        let look = Op::Claim {
            ticket: 2,
            rk: rk(),
            claim: None,
        };
        assert_eq!(held_by(&one(&mut b, look)), Some(("a", false)));
        // After the window, a claim takes the key and gets the old holder back.
        let late = Op::Claim {
            ticket: 3,
            rk: rk(),
            claim: claim("b", 7000),
        };
        assert_eq!(held_by(&one(&mut b, late)), Some(("a", true)));
        let look = Op::Claim {
            ticket: 4,
            rk: rk(),
            claim: None,
        };
        assert_eq!(held_by(&one(&mut a, look)), Some(("b", false)));
    }

    #[test]
    fn only_the_claimer_releases_a_first_use_the_server_did_not_process() {
        let store = MemoryStore::default();
        let (mut a, mut b) = (
            MemoryBackend::new(store.clone(), "p:"),
            MemoryBackend::new(store, "p:"),
        );
        let c = |t, id| Op::Claim {
            ticket: t,
            rk: rk(),
            claim: claim(id, 5000),
        };
        let release = |id: &str| Op::Release {
            rk: rk(),
            claim_id: id.into(),
        };
        assert_eq!(one(&mut a, c(0, "a")), RawReply::Claim(RawClaim::Free));
        one(&mut b, release("b"));
        assert_eq!(held_by(&one(&mut b, c(1, "b"))), Some(("a", false)));
        one(&mut a, release("a"));
        assert_eq!(
            one(&mut b, c(2, "b")),
            RawReply::Claim(RawClaim::Free),
            "the next use is the key's first"
        );
    }

    #[test]
    fn only_the_claimer_files_the_first_response_and_the_first_stored_result_wins() {
        let mut a = MemoryBackend::new(MemoryStore::default(), "p:");
        one(
            &mut a,
            Op::Claim {
                ticket: 0,
                rk: rk(),
                claim: claim("a", 1),
            },
        );
        let settle = |id: &str, f: &[u8], s: Option<Option<Vec<u8>>>| Op::Settle {
            ticket: 0,
            rk: rk(),
            claim_id: id.into(),
            first_response: Some(f.to_vec()),
            stored: s,
            end: None,
        };
        one(
            &mut a,
            settle("b", b"not the claimer", Some(Some(b"b stored".to_vec()))),
        );
        one(
            &mut a,
            settle("a", b"first", Some(Some(b"a stored".to_vec()))),
        );
        let look = Op::Claim {
            ticket: 1,
            rk: rk(),
            claim: None,
        };
        match one(&mut a, look) {
            RawReply::Claim(RawClaim::Held(r)) => {
                assert_eq!(r.first_response.as_deref(), Some(&b"first"[..]));
                assert_eq!(r.stored, Some(Some(b"b stored".to_vec())));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endpoints_keep_their_latest_deadline_and_past_ones_are_forgotten() {
        let mut a = MemoryBackend::new(MemoryStore::default(), "p:");
        let ep = |n: &str, d| Op::Endpoint {
            name: n.into(),
            deadline_us: d,
        };
        one(&mut a, ep("x", 10));
        one(&mut a, ep("x", 30));
        one(&mut a, ep("x", 20));
        one(&mut a, ep("y", 5));
        assert_eq!(
            one(&mut a, Op::SyncEndpoints { now_us: 8 }),
            RawReply::Endpoints(vec![("x".into(), 30)])
        );
    }
}
