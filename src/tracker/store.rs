//! Bounded maps that forget in capture time: each entry has a deadline; past it, or past the
//! map's capacity (oldest first), entries go and are counted.
//!
//! Laid out for millions of entries (a key is kept a day by default): the entries live in one
//! arena of slots, each holding its key, value and deadline once; the hash index holds only a
//! slot number (4 bytes a bucket, so a table at half load after it grows wastes little), and
//! the expiry queue only a deadline and a slot number. A freed slot is reused before the arena
//! grows. Bytes per entry: docs/MEMORY.md.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::ts::Timestamp;

/// One entry: stored once, found through the index by its key's hash.
struct Slot<K, V> {
    key: K,
    value: V,
    deadline: Timestamp,
}

/// A map whose entries expire at a deadline and whose size is capped.
pub struct ExpiringMap<K, V> {
    /// Slot numbers, hashed by their entry's key.
    index: HashTable<u32>,
    slots: Vec<Option<Slot<K, V>>>,
    /// Empty slots, reused first.
    free: Vec<u32>,
    /// Deadlines in the order they were set (capture time only grows, so this is nearly
    /// sorted), with their slot. An entry whose slot no longer holds that deadline is stale
    /// (the entry was touched, replaced or removed) and is skipped. A reused slot given the
    /// same deadline answers to the stale entry too: it is then due at that very deadline, or
    /// exactly as old as the entry evicted in its place, so nothing is removed early.
    queue: VecDeque<(Timestamp, u32)>,
    hasher: foldhash::fast::RandomState,
    cap: usize,
}

/// What `expire` and `insert` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub expired: u64,
    pub evicted: u64,
}

impl<K: Hash + Eq, V> ExpiringMap<K, V> {
    pub fn new(cap: usize) -> Self {
        ExpiringMap {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            queue: VecDeque::new(),
            hasher: foldhash::fast::RandomState::default(),
            // Slot numbers are u32.
            cap: cap.clamp(1, u32::MAX as usize - 1),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The most entries it holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn slot_of(&self, k: &K) -> Option<u32> {
        let h = self.hasher.hash_one(k);
        let slots = &self.slots;
        self.index
            .find(h, |&i| {
                slots
                    .get(i as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| s.key == *k)
            })
            .copied()
    }

    fn slot(&self, i: u32) -> Option<&Slot<K, V>> {
        self.slots.get(i as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot<K, V>> {
        self.slots.get_mut(i as usize).and_then(Option::as_mut)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.slot_of(k).is_some()
    }

    /// Every entry with its deadline, in slot order (stable for a given history).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V, Timestamp)> {
        self.slots
            .iter()
            .flatten()
            .map(|s| (&s.key, &s.value, s.deadline))
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        let i = self.slot_of(k)?;
        self.slot(i).map(|s| &s.value)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let i = self.slot_of(k)?;
        self.slot_mut(i).map(|s| &mut s.value)
    }

    /// Inserts or replaces, with a new deadline; evicts the oldest past the cap.
    pub fn insert(&mut self, k: K, v: V, deadline: Timestamp) -> Removed {
        let mut removed = Removed::default();
        if let Some(i) = self.slot_of(&k) {
            if let Some(s) = self.slot_mut(i) {
                s.value = v;
                s.deadline = deadline;
            }
            self.queue.push_back((deadline, i));
            self.compact();
            return removed;
        }
        while self.len() >= self.cap {
            let Some((d, i)) = self.queue.pop_front() else {
                break;
            };
            if self.slot(i).is_some_and(|s| s.deadline == d) {
                self.take(i);
                removed.evicted += 1;
            }
        }
        let h = self.hasher.hash_one(&k);
        let slot = Some(Slot {
            key: k,
            value: v,
            deadline,
        });
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    *s = slot;
                }
                i
            }
            None => {
                self.slots.push(slot);
                // At most cap + 1 slots ever exist (cap < u32::MAX).
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let (hasher, slots) = (&self.hasher, &self.slots);
        self.index.insert_unique(h, i, |&j| {
            slots
                .get(j as usize)
                .and_then(Option::as_ref)
                .map_or(0, |s| hasher.hash_one(&s.key))
        });
        self.queue.push_back((deadline, i));
        self.compact();
        removed
    }

    /// Moves an entry's deadline.
    pub fn touch(&mut self, k: &K, deadline: Timestamp) {
        if let Some(i) = self.slot_of(k)
            && let Some(s) = self.slot_mut(i)
        {
            s.deadline = deadline;
            self.queue.push_back((deadline, i));
            self.compact();
        }
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.slot_of(k)?;
        self.take(i).map(|(_, v)| v)
    }

    /// Empties slot `i`, and its index entry.
    fn take(&mut self, i: u32) -> Option<(K, V)> {
        let s = self.slots.get_mut(i as usize)?.take()?;
        let h = self.hasher.hash_one(&s.key);
        if let Ok(e) = self.index.find_entry(h, |&j| j == i) {
            e.remove();
        }
        self.free.push(i);
        Some((s.key, s.value))
    }

    /// Drops entries whose deadline passed; returns them.
    pub fn expire(&mut self, now: Timestamp) -> Vec<(K, V)> {
        let mut out = Vec::new();
        while let Some(&(d, i)) = self.queue.front() {
            if d > now {
                break;
            }
            self.queue.pop_front();
            if self.slot(i).is_some_and(|s| s.deadline == d)
                && let Some(kv) = self.take(i)
            {
                out.push(kv);
            }
        }
        out
    }

    /// Keeps the queue from growing past a few times the map (stale entries from touches).
    fn compact(&mut self) {
        if self.queue.len() > 2 * self.len() + 64 {
            let slots = &self.slots;
            self.queue.retain(|&(d, i)| {
                slots
                    .get(i as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| s.deadline == d)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_deadline_and_touch_moves_it() {
        let mut m = ExpiringMap::new(10);
        m.insert("a", 1, Timestamp(10));
        m.insert("b", 2, Timestamp(20));
        m.touch(&"a", Timestamp(30));
        assert_eq!(m.expire(Timestamp(25)).len(), 1);
        assert!(m.get(&"a").is_some());
        assert!(m.get(&"b").is_none());
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let mut m = ExpiringMap::new(3);
        let mut evicted = 0;
        for i in 0..10 {
            evicted += m.insert(i, i, Timestamp(i64::from(i))).evicted;
        }
        assert_eq!(m.len(), 3);
        assert_eq!(evicted, 7);
        assert!(m.get(&9).is_some() && m.get(&0).is_none());
    }

    #[test]
    fn a_reused_slot_is_not_expired_by_its_former_entry() {
        let mut m = ExpiringMap::new(10);
        m.insert("a", 1, Timestamp(10));
        assert_eq!(m.remove(&"a"), Some(1));
        // "b" takes a's slot, with a later deadline: a's queue entry must not take it at 10.
        m.insert("b", 2, Timestamp(50));
        assert!(m.expire(Timestamp(10)).is_empty());
        assert_eq!(m.get(&"b"), Some(&2));
        assert_eq!(m.expire(Timestamp(50)), vec![("b", 2)]);
        assert!(m.is_empty());
    }

    #[test]
    fn replacing_an_entry_keeps_one_entry_with_the_new_deadline() {
        let mut m = ExpiringMap::new(10);
        m.insert("a", 1, Timestamp(10));
        m.insert("a", 2, Timestamp(30));
        assert_eq!(m.len(), 1);
        assert!(m.expire(Timestamp(20)).is_empty());
        assert_eq!(m.expire(Timestamp(30)), vec![("a", 2)]);
    }

    #[test]
    fn a_touched_entry_is_evicted_by_its_new_age() {
        let mut m = ExpiringMap::new(2);
        m.insert(1, 1, Timestamp(10));
        m.insert(2, 2, Timestamp(20));
        m.touch(&1, Timestamp(30));
        // 2 is now the oldest.
        assert_eq!(m.insert(3, 3, Timestamp(40)).evicted, 1);
        assert!(m.contains_key(&1) && !m.contains_key(&2) && m.contains_key(&3));
    }

    #[test]
    fn many_entries_churning_through_a_small_map_stay_consistent() {
        let mut m = ExpiringMap::new(100);
        for i in 0..10_000u32 {
            m.insert(i, i, Timestamp(i64::from(i)));
            if i % 3 == 0 {
                m.remove(&(i / 2));
            }
            if i % 7 == 0 {
                m.touch(&i, Timestamp(i64::from(i) + 50));
            }
            m.expire(Timestamp(i64::from(i) - 80));
            assert!(m.len() <= 100);
        }
        for (k, v, _) in m.iter() {
            assert_eq!(k, v);
            assert_eq!(m.get(k), Some(v));
        }
        assert_eq!(m.iter().count(), m.len());
        // Slots are reused: never more than the cap and one.
        assert!(m.slots.len() <= 101);
    }
}
