//! IPv4 fragment reassembly, bounded.
//!
//! Rebuilds IPv4 packets from fragments with etherparse's `IpDefragBuf` (which orders and merges
//! the pieces), keyed by (source, destination, protocol, identification). Its pool type is not
//! bounded, so the table here is: at most `max_sets` incomplete packets, each at most
//! `max_bytes`, each dropped after `timeout` of capture time. Everything dropped is counted.

use foldhash::HashMap;
use std::net::Ipv4Addr;

use etherparse::IpNumber;
use etherparse::defrag::IpDefragBuf;

use crate::ts::Timestamp;

/// The fragment table's bounds: the decode stage's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DefragSettings {
    /// Incomplete IPv4 fragment sets kept at once.
    pub max_fragment_sets: usize,
    /// Largest IPv4 packet rebuilt from fragments.
    pub max_fragment_bytes: usize,
    /// Fragment sets older than this (capture time) are dropped.
    pub fragment_timeout: std::time::Duration,
}

impl DefragSettings {
    /// The defaults, as a constant so that the command line's help can show them.
    pub const DEFAULT: DefragSettings = DefragSettings {
        max_fragment_sets: 4096,
        max_fragment_bytes: 65_535,
        fragment_timeout: std::time::Duration::from_secs(30),
    };
}

impl Default for DefragSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    id: u16,
}

struct FragSet {
    buf: IpDefragBuf,
    first_seen: Timestamp,
    bytes: usize,
}

/// What adding a fragment did.
#[derive(Debug, PartialEq, Eq)]
pub enum FragOutcome {
    /// Kept; the packet is not complete yet.
    Pending,
    /// The packet is complete: its payload (the transport header and data).
    Complete(Vec<u8>),
    /// The fragment, or its whole set, was dropped (inconsistent, too large, table full).
    Dropped,
}

/// One fragment's identity and place, as read from its IPv4 header.
#[derive(Debug, Clone, Copy)]
pub struct Fragment {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub id: u16,
    /// Offset in 8-byte units.
    pub offset_units: u16,
    pub more_fragments: bool,
}

/// Bounded table of incomplete IPv4 packets.
pub struct Defragmenter {
    sets: HashMap<FragKey, FragSet>,
    max_sets: usize,
    max_bytes: usize,
    timeout_ns: u64,
    /// Sets dropped since the last call to `take_dropped`.
    dropped: u64,
}

impl Defragmenter {
    pub fn new(max_sets: usize, max_bytes: usize, timeout: std::time::Duration) -> Self {
        Defragmenter {
            sets: HashMap::default(),
            max_sets: max_sets.max(1),
            max_bytes,
            timeout_ns: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            dropped: 0,
        }
    }

    /// Sets and fragments dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Adds one fragment's payload.
    pub fn add(&mut self, ts: Timestamp, frag: Fragment, payload: &[u8]) -> FragOutcome {
        let key = FragKey {
            src: frag.src,
            dst: frag.dst,
            protocol: frag.protocol,
            id: frag.id,
        };
        if !self.sets.contains_key(&key) && self.sets.len() >= self.max_sets {
            self.expire(ts);
            if self.sets.len() >= self.max_sets {
                self.drop_oldest();
            }
        }
        let set = self.sets.entry(key).or_insert_with(|| FragSet {
            buf: IpDefragBuf::new(IpNumber(frag.protocol), Vec::new(), Vec::new()),
            first_seen: ts,
            bytes: 0,
        });
        let offset = match etherparse::IpFragOffset::try_new(frag.offset_units) {
            Ok(o) => o,
            Err(_) => {
                self.sets.remove(&key);
                self.dropped += 1;
                return FragOutcome::Dropped;
            }
        };
        set.bytes = set.bytes.saturating_add(payload.len());
        let end = usize::from(frag.offset_units) * 8 + payload.len();
        if set.bytes > self.max_bytes || end > self.max_bytes {
            self.sets.remove(&key);
            self.dropped += 1;
            return FragOutcome::Dropped;
        }
        if set.buf.add(offset, frag.more_fragments, payload).is_err() {
            self.sets.remove(&key);
            self.dropped += 1;
            return FragOutcome::Dropped;
        }
        if set.buf.is_complete() {
            match self.sets.remove(&key) {
                Some(done) => FragOutcome::Complete(done.buf.take_bufs().0),
                None => FragOutcome::Dropped,
            }
        } else {
            FragOutcome::Pending
        }
    }

    /// Drops sets older than the timeout.
    pub fn expire(&mut self, now: Timestamp) {
        let timeout = self.timeout_ns;
        let before = self.sets.len();
        self.sets.retain(|_, s| now.since(s.first_seen) <= timeout);
        self.dropped += (before - self.sets.len()) as u64;
    }

    fn drop_oldest(&mut self) {
        if let Some(key) = self
            .sets
            .iter()
            .min_by_key(|(k, s)| (s.first_seen, k.id, k.src, k.dst))
            .map(|(k, _)| *k)
        {
            self.sets.remove(&key);
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frag(offset_units: u16, more: bool) -> Fragment {
        Fragment {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: 6,
            id: 7,
            offset_units,
            more_fragments: more,
        }
    }

    #[test]
    fn out_of_order_fragments_rebuild_the_packet() {
        let mut d = Defragmenter::new(8, 65_535, Duration::from_secs(30));
        let data: Vec<u8> = (0..40u8).collect();
        assert_eq!(
            d.add(Timestamp(1), frag(2, true), &data[16..32]),
            FragOutcome::Pending
        );
        assert_eq!(
            d.add(Timestamp(2), frag(4, false), &data[32..]),
            FragOutcome::Pending
        );
        assert_eq!(
            d.add(Timestamp(3), frag(0, true), &data[..16]),
            FragOutcome::Complete(data.clone())
        );
        assert!(d.is_empty());
    }

    #[test]
    fn table_is_bounded_and_drops_are_counted() {
        let mut d = Defragmenter::new(2, 65_535, Duration::from_secs(30));
        for id in 0..10u16 {
            let mut f = frag(0, true);
            f.id = id;
            d.add(Timestamp(i64::from(id)), f, &[0; 8]);
        }
        assert_eq!(d.len(), 2);
        assert_eq!(d.take_dropped(), 8);
    }

    #[test]
    fn oversized_set_is_dropped() {
        let mut d = Defragmenter::new(2, 64, Duration::from_secs(30));
        assert_eq!(
            d.add(Timestamp(0), frag(8, true), &[0; 8]),
            FragOutcome::Dropped
        );
        assert_eq!(d.take_dropped(), 1);
    }

    #[test]
    fn stale_sets_expire_in_capture_time() {
        let mut d = Defragmenter::new(8, 65_535, Duration::from_secs(1));
        d.add(Timestamp(0), frag(0, true), &[0; 8]);
        d.expire(Timestamp(2_000_000_000));
        assert!(d.is_empty());
        assert_eq!(d.take_dropped(), 1);
    }
}
