//! Bounded maps that forget in capture time: each entry has a deadline; past it, or past the
//! map's capacity (oldest first), entries go and are counted.

use std::collections::VecDeque;

use foldhash::HashMap;
use std::hash::Hash;

use crate::ts::Timestamp;

/// A map whose entries expire at a deadline and whose size is capped.
pub struct ExpiringMap<K, V> {
    map: HashMap<K, (V, Timestamp)>,
    /// Deadlines in the order they were set (capture time only grows, so this is nearly
    /// sorted); stale queue entries are skipped lazily.
    queue: VecDeque<(Timestamp, K)>,
    cap: usize,
}

/// What `expire` and `insert` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub expired: u64,
    pub evicted: u64,
}

impl<K: Hash + Eq + Clone, V> ExpiringMap<K, V> {
    pub fn new(cap: usize) -> Self {
        ExpiringMap {
            map: HashMap::default(),
            queue: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The most entries it holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    /// Every entry with its deadline, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V, Timestamp)> {
        self.map.iter().map(|(k, (v, d))| (k, v, *d))
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(v, _)| v)
    }

    /// Inserts or replaces, with a new deadline; evicts the oldest past the cap.
    pub fn insert(&mut self, k: K, v: V, deadline: Timestamp) -> Removed {
        self.queue.push_back((deadline, k.clone()));
        self.map.insert(k, (v, deadline));
        let mut removed = Removed::default();
        while self.map.len() > self.cap {
            let Some((d, key)) = self.queue.pop_front() else {
                break;
            };
            if self.map.get(&key).is_some_and(|(_, dl)| *dl == d) {
                self.map.remove(&key);
                removed.evicted += 1;
            }
        }
        self.compact();
        removed
    }

    /// Moves an entry's deadline.
    pub fn touch(&mut self, k: &K, deadline: Timestamp) {
        if let Some((_, dl)) = self.map.get_mut(k) {
            *dl = deadline;
            self.queue.push_back((deadline, k.clone()));
            self.compact();
        }
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.map.remove(k).map(|(v, _)| v)
    }

    /// Drops entries whose deadline passed; returns them.
    pub fn expire(&mut self, now: Timestamp) -> Vec<(K, V)> {
        let mut out = Vec::new();
        while let Some((d, _)) = self.queue.front() {
            if *d > now {
                break;
            }
            let Some((d, key)) = self.queue.pop_front() else {
                break;
            };
            if self.map.get(&key).is_some_and(|(_, dl)| *dl == d)
                && let Some((v, _)) = self.map.remove(&key)
            {
                out.push((key, v));
            }
        }
        out
    }

    /// Keeps the queue from growing past a few times the map (stale entries from touches).
    fn compact(&mut self) {
        if self.queue.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.queue
                .retain(|(d, k)| map.get(k).is_some_and(|(_, dl)| dl == d));
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
}
