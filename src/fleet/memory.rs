//! The in-process store: the same semantics as the Redis scripts, on a `dashmap`, for the
//! trackers of one process (and to test the fleet logic without a server). Nothing expires by
//! wall clock here: a record is replaced when its window passed in capture time, and the
//! process's end forgets everything.

use std::sync::Arc;

use dashmap::DashMap;

use super::{Backend, Op, RawClaim, RawRecord, RawReply, StoreError};

#[derive(Debug, Clone)]
struct Entry {
    first_us: i64,
    raw: RawRecord,
}

/// The shared maps; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    records: Arc<DashMap<String, Entry>>,
    endpoints: Arc<DashMap<String, i64>>,
}

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
                // The entry API locks the record's shard: two claims of one key are serial.
                let mut slot = self.store.records.entry(name).or_insert_with(|| Entry {
                    first_us: i64::MIN,
                    raw: RawRecord {
                        claim_id: String::new(),
                        record: Vec::new(),
                        first_response: None,
                        stored: None,
                    },
                });
                let fresh = slot.first_us == i64::MIN;
                if !fresh && c.first_us.saturating_sub(slot.first_us) <= c.window_us {
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
                        },
                    },
                );
                RawReply::Claim(if fresh {
                    RawClaim::Free
                } else {
                    RawClaim::Replaced(old.raw)
                })
            }
            Op::Settle {
                rk,
                claim_id,
                first_response,
                stored,
            } => {
                if let Some(mut e) = self.store.records.get_mut(&rk.name(&self.prefix)) {
                    if let Some(f) = first_response
                        && e.raw.claim_id == *claim_id
                    {
                        e.raw.first_response = Some(f.clone());
                    }
                    if let Some(s) = stored
                        && e.raw.stored.is_none()
                    {
                        e.raw.stored = Some(s.clone());
                    }
                }
                RawReply::Done
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
        }
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
