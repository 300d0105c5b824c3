//! A kept request's method, host and path, interned: a gateway's keyed requests go to a few
//! endpoints, so a million kept requests share a few hundred of these instead of holding 72
//! bytes each.
//!
//! The interner is bounded: it holds at most [`MAX_INTERNED`] targets. When full, those no
//! kept request holds any more are dropped; if it is still full, a new target is allocated on
//! its own (shared by nobody, correct all the same). So a stream of unique paths costs what it
//! did before interning, and never grows the interner.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

use compact_str::CompactString;
use hashbrown::HashTable;

/// The most targets interned at once.
pub const MAX_INTERNED: usize = 16 * 1024;

/// What the `request` and `original` objects print of a request line, and its host.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub method: CompactString,
    pub host: Option<CompactString>,
    pub path: CompactString,
}

struct Interner {
    table: HashTable<Arc<Target>>,
    hasher: foldhash::fast::FixedState,
}

/// Shared by every tracker of the process: kept requests come from the tracker, the state
/// file and fleet mode's store alike.
static INTERNER: LazyLock<Mutex<Interner>> = LazyLock::new(|| {
    Mutex::new(Interner {
        table: HashTable::new(),
        hasher: foldhash::fast::FixedState::default(),
    })
});

fn hash_of(h: &foldhash::fast::FixedState, method: &str, host: Option<&str>, path: &str) -> u64 {
    let mut s = h.build_hasher();
    method.hash(&mut s);
    host.hash(&mut s);
    path.hash(&mut s);
    s.finish()
}

impl Target {
    /// The shared target with these parts (a fresh one when the interner is full).
    pub fn intern(method: &str, host: Option<&str>, path: &str) -> Arc<Target> {
        let fresh = || {
            Arc::new(Target {
                method: CompactString::new(method),
                host: host.map(CompactString::new),
                path: CompactString::new(path),
            })
        };
        // A poisoned lock only means another thread panicked mid-insert: the table is still
        // a valid table, so it is used as is.
        let mut guard = INTERNER.lock().unwrap_or_else(|e| e.into_inner());
        let it = &mut *guard;
        let h = hash_of(&it.hasher, method, host, path);
        let same =
            |t: &Arc<Target>| t.method == method && t.host.as_deref() == host && t.path == path;
        if let Some(t) = it.table.find(h, same) {
            return t.clone();
        }
        if it.table.len() >= MAX_INTERNED {
            it.table.retain(|t| Arc::strong_count(t) > 1);
            if it.table.len() >= MAX_INTERNED {
                return fresh();
            }
        }
        let t = fresh();
        let hasher = &it.hasher;
        it.table.insert_unique(h, t.clone(), |t| {
            hash_of(hasher, &t.method, t.host.as_deref(), &t.path)
        });
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_parts_give_the_same_shared_target() {
        let a = Target::intern("POST", Some("api.example.com"), "/v1/charges");
        let b = Target::intern("POST", Some("api.example.com"), "/v1/charges");
        assert!(Arc::ptr_eq(&a, &b));
        let c = Target::intern("POST", None, "/v1/charges");
        let d = Target::intern("PATCH", Some("api.example.com"), "/v1/charges");
        assert!(!Arc::ptr_eq(&a, &c) && !Arc::ptr_eq(&a, &d) && !Arc::ptr_eq(&c, &d));
        assert_eq!(
            (&*c.method, c.host.as_deref(), &*c.path),
            ("POST", None, "/v1/charges")
        );
    }

    #[test]
    fn a_full_interner_still_gives_the_right_target_and_stays_bounded() {
        let held: Vec<_> = (0..MAX_INTERNED + 100)
            .map(|i| Target::intern("POST", Some("full.example"), &format!("/x/{i}")))
            .collect();
        for (i, t) in held.iter().enumerate() {
            assert_eq!(t.path, format!("/x/{i}"));
        }
        let len = INTERNER.lock().map(|g| g.table.len()).unwrap_or(0);
        assert!(len <= MAX_INTERNED);
        drop(held);
        // The dropped ones are pruned when room is needed.
        let t = Target::intern("POST", Some("full.example"), "/after");
        assert_eq!(t.path, "/after");
        let len = INTERNER.lock().map(|g| g.table.len()).unwrap_or(0);
        assert!(len < MAX_INTERNED);
    }
}
