//! Server bytes held back until the client's bytes they acknowledge have been read: a mirror
//! port delivers one direction a little late, and a response must never meet the queue of
//! exchanges before its request.
//!
//! Takes chunks, gaps and ends of the server's stream; gives them back in order once they are
//! due. Bounded in time (capture time) and in bytes, each held chunk charged for its entry too.
//! It leaves out parsing: the session feeds what is released.

use std::collections::VecDeque;

use crate::net::Vlans;
use crate::reassembly::EndReason;
use crate::ts::Timestamp;

/// Server bytes (or their gap or end) held until the client's bytes they acknowledge have
/// been read.
pub(super) enum Held {
    Data {
        offset: u64,
        bytes: Vec<u8>,
        ts: Timestamp,
        peer_ack: Option<u64>,
        vlans: Vlans,
    },
    Gap {
        offset: u64,
        len: u64,
        ts: Timestamp,
    },
    End {
        reason: EndReason,
        ts: Timestamp,
    },
}

/// Server bytes held at most this long (capture time) or this much, waiting for the client's.
const HOLD_NS: u64 = 1_000_000_000;
pub(super) const HOLD_MAX_BYTES: usize = 64 * 1024;
/// What holding one chunk costs besides its bytes (its entry and allocation), charged against
/// `HOLD_MAX_BYTES` so that a flood of one-byte segments is bounded too.
pub(super) const HOLD_ENTRY_BYTES: usize = size_of::<Held>() + 32;

impl Held {
    /// What it counts against `HOLD_MAX_BYTES`.
    fn cost(&self) -> usize {
        match self {
            Held::Data { bytes, .. } => bytes.len() + HOLD_ENTRY_BYTES,
            Held::Gap { .. } => HOLD_ENTRY_BYTES,
            Held::End { .. } => 0,
        }
    }
}

/// What is held, in stream order, and what it costs.
#[derive(Default)]
pub(super) struct Holding {
    held: VecDeque<Held>,
    bytes: usize,
}

impl Holding {
    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Holds the next piece of the server's stream.
    pub(super) fn push(&mut self, h: Held) {
        self.bytes += h.cost();
        self.held.push_back(h);
    }

    /// The oldest piece, if it is due: the client's stream reached what it acknowledges
    /// (`client_end`), it waited too long, too much is held, or `all` are due. Gaps and ends
    /// are due once what precedes them is.
    pub(super) fn pop_due(&mut self, now: Timestamp, client_end: u64, all: bool) -> Option<Held> {
        let front = self.held.front()?;
        let go = all
            || self.bytes > HOLD_MAX_BYTES
            || match front {
                Held::Data { ts, peer_ack, .. } => {
                    peer_ack.is_none_or(|a| a <= client_end) || now.since(*ts) >= HOLD_NS
                }
                Held::Gap { .. } | Held::End { .. } => true,
            };
        if !go {
            return None;
        }
        let h = self.held.pop_front()?;
        self.bytes = self.bytes.saturating_sub(h.cost());
        Some(h)
    }

    /// How many pieces are held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(peer_ack: u64, ts: i64, len: usize) -> Held {
        Held::Data {
            offset: 0,
            bytes: vec![b'x'; len],
            ts: Timestamp(ts),
            peer_ack: Some(peer_ack),
            vlans: Vlans::default(),
        }
    }

    #[test]
    fn held_bytes_wait_for_the_client_then_come_out_in_order() {
        let mut h = Holding::default();
        h.push(data(10, 0, 1));
        h.push(Held::Gap {
            offset: 1,
            len: 1,
            ts: Timestamp(0),
        });
        assert!(h.pop_due(Timestamp(1), 9, false).is_none());
        assert!(matches!(
            h.pop_due(Timestamp(1), 10, false),
            Some(Held::Data { .. })
        ));
        assert!(matches!(
            h.pop_due(Timestamp(1), 10, false),
            Some(Held::Gap { .. })
        ));
        assert!(h.is_empty());
    }

    #[test]
    fn held_bytes_are_released_after_a_second_or_past_the_byte_bound() {
        let mut h = Holding::default();
        h.push(data(10, 0, 1));
        assert!(
            h.pop_due(Timestamp(0).add_nanos(HOLD_NS - 1), 0, false)
                .is_none()
        );
        assert!(
            h.pop_due(Timestamp(0).add_nanos(HOLD_NS), 0, false)
                .is_some()
        );
        h.push(data(10, 0, HOLD_MAX_BYTES));
        assert!(h.pop_due(Timestamp(0), 0, false).is_some());
        h.push(data(10, 0, 1));
        assert!(h.pop_due(Timestamp(0), 0, true).is_some());
    }
}
