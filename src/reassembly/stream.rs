//! One direction of a TCP connection: segments in, ordered bytes out, each byte once.
//!
//! Offsets count bytes from the first byte of the stream (the one after the SYN, or the first
//! byte captured when the connection was already open). Out-of-order segments wait in a bounded
//! buffer; overlaps keep the copy that arrived first and count differing bytes. A hole becomes a
//! gap when the peer's ACK proves the bytes were sent, when the buffer is full, or at the end.

use std::collections::BTreeMap;

use super::flow::Side;
use super::seq::SeqNum;
use crate::decode::Vlans;
use crate::stats::{HasStats, Stats};
use crate::ts::Timestamp;

/// In-order bytes of one direction.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// Stream offset of `bytes[0]`.
    pub offset: u64,
    pub bytes: &'a [u8],
    /// Capture time of the segment that carried these bytes.
    pub ts: Timestamp,
    /// The ACK that segment carried, as an offset in the opposite stream (what the sender had
    /// received of its peer's bytes), when both are known.
    pub peer_ack: Option<u64>,
    /// VLAN ids of that segment.
    pub vlans: Vlans,
}

/// Why a direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Fin,
    Rst,
    IdleTimeout,
    Evicted,
    /// The connection's ports were reused by a new SYN.
    Reused,
    EndOfInput,
}

/// Receives the ordered bytes of both directions of a connection.
pub trait StreamSink {
    type Ctx: HasStats;
    /// The handshake showed which side opened the connection.
    fn on_client_side(&mut self, side: Side, ctx: &mut Self::Ctx);
    fn on_data(&mut self, side: Side, chunk: Chunk<'_>, ctx: &mut Self::Ctx);
    /// `len` bytes starting at `offset` were lost.
    fn on_gap(&mut self, side: Side, offset: u64, len: u64, ts: Timestamp, ctx: &mut Self::Ctx);
    fn on_end(&mut self, side: Side, reason: EndReason, ts: Timestamp, ctx: &mut Self::Ctx);
    /// Capture time passes (periodic, also without packets for this flow).
    fn on_tick(&mut self, _now: Timestamp, _ctx: &mut Self::Ctx) {}
    /// Whether `on_tick` has anything to do.
    fn wants_tick(&self) -> bool {
        false
    }
    /// Whether it waits for something from outside its stream (TLS secrets that a followed
    /// key log has not given yet). While it does, its flow is kept and ticked even once
    /// closed; the sink bounds that wait itself.
    fn holds(&self) -> bool {
        false
    }
    /// What it waits for from outside may have come: it may act at once.
    fn on_wake(&mut self, _now: Timestamp, _ctx: &mut Self::Ctx) {}
}

/// Bytes further than this from the expected offset are not this connection's (or are garbage).
const MAX_WINDOW: i64 = 1 << 30;

#[derive(Debug)]
struct Held {
    bytes: Vec<u8>,
    ts: Timestamp,
    peer_ack: Option<u64>,
    vlans: Vlans,
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub struct HalfStream {
    /// Sequence number of offset 0, once known.
    base: Option<SeqNum>,
    /// Next offset to deliver.
    next: u64,
    ooo: BTreeMap<u64, Held>,
    /// Bytes held in `ooo`, plus `HELD_OVERHEAD` per segment.
    ooo_bytes: usize,
    /// Offset of the FIN, once seen.
    fin: Option<u64>,
    /// Highest offset the peer acknowledged.
    acked: Option<u64>,
    ended: bool,
    /// The last bytes delivered and not yet acknowledged, to tell a retransmission from an
    /// overlap with different bytes. Ends at `next`.
    recent: Vec<u8>,
    /// When a hole was first proven lost (the peer acknowledged past it, data waits behind it),
    /// and how many packets of the flow came since: the hole becomes a gap only after a grace,
    /// because mirror ports deliver one direction's packets a little late.
    proof: Option<(Timestamp, u32)>,
}

/// Packets of the flow, and capture time, a proven hole waits for its bytes before it becomes
/// a gap.
const HOLE_GRACE_PACKETS: u32 = 4;
const HOLE_GRACE_NS: u64 = 50_000_000;

/// What holding one segment costs beyond its bytes: its map entry (key and `Held`, with the
/// B-tree's slack) and its allocation. Charged against the out-of-order limit so that a storm
/// of tiny segments is bounded by the memory it takes, not by its payload bytes alone.
const HELD_OVERHEAD: usize = 2 * (size_of::<u64>() + size_of::<Held>());

/// Unacknowledged bytes kept for overlap checks (amortised: trimmed at twice this).
const RECENT_KEEP: usize = 1536;

/// What travels with a segment's bytes.
#[derive(Debug, Clone, Copy)]
struct Meta {
    ts: Timestamp,
    peer_ack: Option<u64>,
    vlans: Vlans,
}

/// One segment's contribution to a direction.
#[derive(Debug, Clone, Copy)]
pub struct SegIn<'a> {
    pub seq: u32,
    pub payload: &'a [u8],
    /// Bytes cut by the snaplen after `payload`.
    pub missing_tail: u32,
    pub fin: bool,
    pub ts: Timestamp,
    pub peer_ack: Option<u64>,
    pub vlans: Vlans,
}

impl HalfStream {
    /// Sets offset 0 from a SYN's sequence number (data starts one after it).
    pub fn set_syn(&mut self, syn_seq: u32) {
        if self.next == 0 && self.ooo.is_empty() {
            self.base = Some(SeqNum(syn_seq).plus(1));
        }
    }

    /// Sets offset 0 from the first expected sequence number (e.g. the ACK of a SYN-ACK).
    pub fn set_first_seq(&mut self, seq: u32) {
        if self.base.is_none() {
            self.base = Some(SeqNum(seq));
        }
    }

    pub fn base(&self) -> Option<SeqNum> {
        self.base
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// A proven hole waits for its grace to run out.
    pub fn has_proof(&self) -> bool {
        self.proof.is_some()
    }

    pub fn has_delivered(&self) -> bool {
        self.next > 0
    }

    /// Whether the stream reached its FIN.
    pub fn is_finished(&self) -> bool {
        self.fin.is_some_and(|f| self.next >= f)
    }

    /// Bytes waiting in the out-of-order buffer, with the overhead charged per segment.
    pub fn buffered(&self) -> usize {
        self.ooo_bytes
    }

    /// Offset of a sequence number in this stream, if the stream is anchored and it is within
    /// the window.
    pub fn offset_of(&self, seq: u32) -> Option<u64> {
        let base = self.base?;
        let next_seq = base.plus(self.next as u32);
        let d = SeqNum(seq).distance_from(next_seq);
        if !(-MAX_WINDOW..=MAX_WINDOW).contains(&d) {
            return None;
        }
        u64::try_from(i64::try_from(self.next).ok()?.checked_add(d)?).ok()
    }

    /// Records that the peer acknowledged up to `ack`; confirms holes the ACK proves lost.
    pub fn on_peer_ack<S: StreamSink>(
        &mut self,
        side: Side,
        ack: u32,
        ts: Timestamp,
        sink: &mut S,
        ctx: &mut S::Ctx,
    ) {
        self.count_packet();
        if let Some(off) = self.offset_of(ack) {
            if self.acked.is_none_or(|a| off > a) {
                self.acked = Some(off);
            }
            if off >= self.next && !self.recent.is_empty() {
                // The receiver has it all: retransmissions of it are discarded there too. The
                // buffer goes: most directions then wait for the other side (a request for its
                // response), and thousands of idle buffers outweigh one allocation per burst.
                self.recent = Vec::new();
            }
            self.settle(side, ts, sink, ctx);
        }
    }

    /// Takes one segment's payload (and FIN).
    pub fn on_segment<S: StreamSink>(
        &mut self,
        side: Side,
        seg: SegIn<'_>,
        max_ooo: usize,
        sink: &mut S,
        ctx: &mut S::Ctx,
    ) {
        if self.ended {
            return;
        }
        self.count_packet();
        if self.base.is_none() {
            // Picked up mid-connection: this segment's first byte is offset 0.
            if seg.payload.is_empty() && seg.missing_tail == 0 {
                return;
            }
            self.base = Some(SeqNum(seg.seq));
        }
        let Some(off) = self.offset_of(seg.seq) else {
            ctx.stats().tcp_segments_out_of_window += 1;
            return;
        };
        let data_end = off + seg.payload.len() as u64;
        if seg.fin {
            let f = data_end + u64::from(seg.missing_tail);
            if self.fin.is_none() {
                self.fin = Some(f);
            }
        }
        if !seg.payload.is_empty() {
            self.insert(
                side,
                off,
                seg.payload,
                Meta {
                    ts: seg.ts,
                    peer_ack: seg.peer_ack,
                    vlans: seg.vlans,
                },
                max_ooo,
                sink,
                ctx,
            );
        }
        if seg.missing_tail > 0 && data_end >= self.next {
            let hole_end = data_end + u64::from(seg.missing_tail);
            if data_end == self.next {
                // The snaplen cut this segment: its tail is a hole right here.
                let len = hole_end - self.next;
                self.gap(side, len, seg.ts, sink, ctx);
                self.drain(side, sink, ctx);
            }
        }
        self.settle(side, seg.ts, sink, ctx);
        if self.is_finished() && !self.ended {
            self.ended = true;
            // Bytes buffered past the FIN are not stream data (RFC 9293 section 3.10.7.4).
            self.ooo.clear();
            self.ooo_bytes = 0;
            sink.on_end(side, EndReason::Fin, seg.ts, ctx);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn insert<S: StreamSink>(
        &mut self,
        side: Side,
        off: u64,
        payload: &[u8],
        meta: Meta,
        max_ooo: usize,
        sink: &mut S,
        ctx: &mut S::Ctx,
    ) {
        let end = off + payload.len() as u64;
        if off < self.next {
            self.compare_recent(off, payload, ctx.stats());
        }
        if end <= self.next {
            ctx.stats().tcp_retransmitted_segments += 1;
            return;
        }
        let (off, payload) = if off < self.next {
            let skip = (self.next - off) as usize;
            (self.next, payload.get(skip..).unwrap_or(&[]))
        } else {
            (off, payload)
        };
        if off == self.next && self.ooo.is_empty() {
            self.deliver(side, off, payload, meta, sink, ctx);
            return;
        }
        // Keep only the parts no earlier copy covers (first copy wins).
        let pieces = self.uncovered(off, payload, ctx.stats());
        if pieces.is_empty() {
            ctx.stats().tcp_retransmitted_segments += 1;
            return;
        }
        ctx.stats().tcp_out_of_order_segments += u64::from(off != self.next);
        for (o, range) in pieces {
            let bytes = payload.get(range).unwrap_or(&[]).to_vec();
            self.ooo_bytes += bytes.len() + HELD_OVERHEAD;
            self.ooo.insert(
                o,
                Held {
                    bytes,
                    ts: meta.ts,
                    peer_ack: meta.peer_ack,
                    vlans: meta.vlans,
                },
            );
        }
        self.drain(side, sink, ctx);
        // Bound the buffer: declare holes until it fits.
        while self.ooo_bytes > max_ooo {
            let Some(first) = self.ooo.keys().next().copied() else {
                break;
            };
            if first > self.next {
                ctx.stats().tcp_reassembly_limit_gaps += 1;
                let len = first - self.next;
                self.gap(side, len, meta.ts, sink, ctx);
            }
            self.drain(side, sink, ctx);
        }
    }

    /// Counts a mismatch when bytes of a segment that overlap delivered (and still kept) bytes
    /// differ from them; the delivered copy stands.
    fn compare_recent(&self, off: u64, payload: &[u8], stats: &mut Stats) {
        let kept_start = self.next - self.recent.len() as u64;
        let start = off.max(kept_start);
        let end = (off + payload.len() as u64).min(self.next);
        if start >= end {
            return;
        }
        let new = payload.get((start - off) as usize..(end - off) as usize);
        let old = self
            .recent
            .get((start - kept_start) as usize..(end - kept_start) as usize);
        if new != old {
            stats.tcp_overlap_mismatch += 1;
        }
    }

    /// The sub-ranges of `[off, off+len)` not covered by buffered segments, as (offset, range in
    /// payload); counts overlapping bytes that differ.
    fn uncovered(
        &self,
        off: u64,
        payload: &[u8],
        stats: &mut Stats,
    ) -> Vec<(u64, std::ops::Range<usize>)> {
        let end = off + payload.len() as u64;
        let mut out = Vec::new();
        let mut cursor = off;
        let start_key = self
            .ooo
            .range(..=off)
            .next_back()
            .map(|(k, _)| *k)
            .unwrap_or(off);
        let mut mismatch = false;
        for (&o, held) in self.ooo.range(start_key..end) {
            let h_end = o + held.bytes.len() as u64;
            if h_end <= cursor {
                continue;
            }
            if o > cursor {
                out.push((cursor, (cursor - off) as usize..(o - off) as usize));
            }
            // Compare the overlap [max(o,cursor), min(h_end,end)).
            let ov_start = o.max(cursor);
            let ov_end = h_end.min(end);
            let new_part = payload.get((ov_start - off) as usize..(ov_end - off) as usize);
            let old_part = held
                .bytes
                .get((ov_start - o) as usize..(ov_end - o) as usize);
            if new_part != old_part {
                mismatch = true;
            }
            cursor = h_end.max(cursor);
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            out.push((cursor, (cursor - off) as usize..payload.len()));
        }
        if mismatch {
            stats.tcp_overlap_mismatch += 1;
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver<S: StreamSink>(
        &mut self,
        side: Side,
        off: u64,
        bytes: &[u8],
        meta: Meta,
        sink: &mut S,
        ctx: &mut S::Ctx,
    ) {
        debug_assert_eq!(off, self.next);
        self.next += bytes.len() as u64;
        if self.acked.is_none_or(|a| a < self.next) {
            // At most 2 * RECENT_KEEP bytes, in a buffer that grows to at most that: the oldest
            // go before new ones come, and of a large segment only its last RECENT_KEEP bytes
            // are copied. (Appending whole segments grew each direction's buffer by doubling,
            // to its largest segment: 64 KiB with offloads, 37 MB over 48k connections.)
            let skip = bytes.len().saturating_sub(RECENT_KEEP);
            let add = bytes.get(skip..).unwrap_or_default();
            let r = &mut self.recent;
            if skip > 0 {
                // The kept bytes must end where the new ones begin: what came before this
                // segment's tail is older than any byte kept.
                r.clear();
            } else if r.len() + add.len() > 2 * RECENT_KEEP {
                let cut = (r.len() + add.len() - RECENT_KEEP).min(r.len());
                r.drain(..cut);
            }
            let need = r.len() + add.len();
            if need > r.capacity() {
                let cap = (2 * r.capacity()).max(need).min(2 * RECENT_KEEP);
                r.reserve_exact(cap - r.len());
            }
            r.extend_from_slice(add);
        }
        sink.on_data(
            side,
            Chunk {
                offset: off,
                bytes,
                ts: meta.ts,
                peer_ack: meta.peer_ack,
                vlans: meta.vlans,
            },
            ctx,
        );
    }

    /// Delivers buffered segments that are now in order.
    fn drain<S: StreamSink>(&mut self, side: Side, sink: &mut S, ctx: &mut S::Ctx) {
        while let Some(entry) = self.ooo.first_entry() {
            let o = *entry.key();
            if o > self.next {
                break;
            }
            let held = entry.remove();
            self.ooo_bytes -= held.bytes.len() + HELD_OVERHEAD;
            let end = o + held.bytes.len() as u64;
            if end <= self.next {
                continue;
            }
            let skip = (self.next - o) as usize;
            let bytes = held.bytes.get(skip..).unwrap_or(&[]);
            let next = self.next;
            let meta = Meta {
                ts: held.ts,
                peer_ack: held.peer_ack,
                vlans: held.vlans,
            };
            self.deliver(side, next, bytes, meta, sink, ctx);
        }
    }

    fn gap<S: StreamSink>(
        &mut self,
        side: Side,
        len: u64,
        ts: Timestamp,
        sink: &mut S,
        ctx: &mut S::Ctx,
    ) {
        if len == 0 {
            return;
        }
        tracing::debug!(
            side = side.0,
            offset = self.next,
            len,
            "bytes lost in the capture"
        );
        let st = ctx.stats();
        st.tcp_gaps += 1;
        st.tcp_gap_bytes += len;
        let off = self.next;
        self.next += len;
        self.recent.clear();
        sink.on_gap(side, off, len, ts, ctx);
    }

    /// Declares the holes that the peer's ACK proves lost: a hole is proven when data after it
    /// is buffered and the peer acknowledged up to that data. It becomes a gap after a grace
    /// of a few packets or milliseconds, in case its bytes were only captured late.
    fn settle<S: StreamSink>(
        &mut self,
        side: Side,
        now: Timestamp,
        sink: &mut S,
        ctx: &mut S::Ctx,
    ) {
        // An ended direction delivers nothing more (bytes held past its FIN are not its).
        if self.ended {
            return;
        }
        loop {
            let proven = match (self.acked, self.ooo.first_key_value()) {
                (Some(acked), Some((&first, _))) => {
                    first > self.next && acked > self.next && acked >= first
                }
                _ => false,
            };
            if !proven {
                self.proof = None;
                return;
            }
            match self.proof {
                None => {
                    self.proof = Some((now, 0));
                    return;
                }
                Some((t, n)) if n < HOLE_GRACE_PACKETS && now.since(t) < HOLE_GRACE_NS => return,
                Some(_) => {}
            }
            self.proof = None;
            let Some((&first, held)) = self.ooo.first_key_value() else {
                return;
            };
            let ts = held.ts;
            let len = first - self.next;
            self.gap(side, len, ts, sink, ctx);
            self.drain(side, sink, ctx);
        }
    }

    fn count_packet(&mut self) {
        if let Some(p) = self.proof.as_mut() {
            p.1 = p.1.saturating_add(1);
        }
    }

    /// Time passes (capture time) without packets: settles proven holes whose grace ran out.
    pub fn on_tick<S: StreamSink>(
        &mut self,
        side: Side,
        now: Timestamp,
        sink: &mut S,
        ctx: &mut S::Ctx,
    ) {
        if !self.ended && self.proof.is_some() {
            self.settle(side, now, sink, ctx);
        }
    }

    /// Ends the direction: buffered data is delivered with gaps for the holes, a hole up to
    /// what the peer acknowledged or up to the FIN is declared, and the sink is told.
    pub fn finish<S: StreamSink>(
        &mut self,
        side: Side,
        reason: EndReason,
        ts: Timestamp,
        sink: &mut S,
        ctx: &mut S::Ctx,
    ) {
        if self.ended {
            return;
        }
        while let Some(first) = self.ooo.keys().next().copied() {
            if first > self.next {
                let len = first - self.next;
                self.gap(side, len, ts, sink, ctx);
            }
            self.drain(side, sink, ctx);
        }
        // Bytes the peer acknowledged (or the FIN shows were sent) but never captured. An ACK
        // of the FIN itself counts one past the data, hence the FIN's offset wins when known.
        let tail = self.fin.or(self.acked).unwrap_or(0);
        if tail > self.next && self.base.is_some() {
            let len = tail - self.next;
            self.gap(side, len, ts, sink, ctx);
        }
        self.ended = true;
        sink.on_end(side, reason, ts, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Collects what a direction delivers.
    #[derive(Default)]
    struct Collect {
        bytes: Vec<u8>,
        gaps: Vec<(u64, u64)>,
        ended: bool,
    }

    impl StreamSink for Collect {
        type Ctx = Stats;
        fn on_client_side(&mut self, _: Side, _: &mut Stats) {}
        fn on_data(&mut self, _: Side, c: Chunk<'_>, _: &mut Stats) {
            assert_eq!(
                c.offset,
                (self.bytes.len() as u64) + self.gaps.iter().map(|g| g.1).sum::<u64>()
            );
            self.bytes.extend_from_slice(c.bytes);
        }
        fn on_gap(&mut self, _: Side, off: u64, len: u64, _: Timestamp, _: &mut Stats) {
            self.gaps.push((off, len));
        }
        fn on_end(&mut self, _: Side, _: EndReason, _: Timestamp, _: &mut Stats) {
            self.ended = true;
        }
    }

    fn seg(seq: u32, payload: &[u8]) -> SegIn<'_> {
        SegIn {
            seq,
            payload,
            missing_tail: 0,
            fin: false,
            ts: Timestamp(0),
            peer_ack: None,
            vlans: Vlans::default(),
        }
    }

    #[test]
    fn retransmission_is_delivered_once_and_counted() {
        let (mut h, mut sink, mut st) =
            (HalfStream::default(), Collect::default(), Stats::default());
        h.set_syn(99);
        h.on_segment(Side(0), seg(100, b"abc"), 1 << 20, &mut sink, &mut st);
        h.on_segment(Side(0), seg(100, b"abc"), 1 << 20, &mut sink, &mut st);
        h.on_segment(Side(0), seg(103, b"def"), 1 << 20, &mut sink, &mut st);
        assert_eq!(sink.bytes, b"abcdef");
        assert_eq!(st.tcp_retransmitted_segments, 1);
        assert_eq!(st.tcp_overlap_mismatch, 0);
    }

    #[test]
    fn overlap_with_other_bytes_keeps_the_first_copy() {
        let (mut h, mut sink, mut st) =
            (HalfStream::default(), Collect::default(), Stats::default());
        h.set_syn(0);
        h.on_segment(Side(0), seg(4, b"EFGH"), 1 << 20, &mut sink, &mut st);
        h.on_segment(Side(0), seg(3, b"xyzw"), 1 << 20, &mut sink, &mut st);
        h.on_segment(Side(0), seg(1, b"ABC"), 1 << 20, &mut sink, &mut st);
        // Offset 2 came first as 'x' (in "xyzw"), so 'x' stands against the later 'C'.
        assert_eq!(sink.bytes, b"ABxEFGH");
        assert_eq!(st.tcp_overlap_mismatch, 2);
    }

    #[test]
    fn a_large_segment_keeps_only_its_last_bytes_for_overlap_checks() {
        let (mut h, mut sink, mut st) =
            (HalfStream::default(), Collect::default(), Stats::default());
        h.set_syn(0);
        // A small segment first, then a large one: the kept bytes must stay contiguous.
        let small = [7u8; 100];
        h.on_segment(Side(0), seg(1, &small), 1 << 20, &mut sink, &mut st);
        let big: Vec<u8> = (0..2_000u32).map(|i| (i % 251) as u8).collect();
        h.on_segment(Side(0), seg(101, &big), 1 << 20, &mut sink, &mut st);
        // An exact copy of bytes just before the large segment's kept tail, and of its end.
        let before_tail = big.len() - RECENT_KEEP - 60;
        let again = &big[before_tail..before_tail + 120];
        h.on_segment(
            Side(0),
            seg(101 + before_tail as u32, again),
            1 << 20,
            &mut sink,
            &mut st,
        );
        let again = &big[big.len() - 50..];
        h.on_segment(
            Side(0),
            seg(101 + big.len() as u32 - 50, again),
            1 << 20,
            &mut sink,
            &mut st,
        );
        assert_eq!(
            st.tcp_overlap_mismatch, 0,
            "an exact retransmission is no mismatch"
        );
        let (mut h, mut sink, mut st) =
            (HalfStream::default(), Collect::default(), Stats::default());
        h.set_syn(0);
        let big: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
        h.on_segment(Side(0), seg(1, &big), 1 << 20, &mut sink, &mut st);
        assert!(
            h.recent.capacity() < 3 * RECENT_KEEP,
            "{}",
            h.recent.capacity()
        );
        // A retransmission of the last bytes, the same: no mismatch.
        let end = big.len();
        let last = &big[end - 100..];
        h.on_segment(
            Side(0),
            seg(1 + end as u32 - 100, last),
            1 << 20,
            &mut sink,
            &mut st,
        );
        assert_eq!(st.tcp_overlap_mismatch, 0);
        // The same range with other bytes: counted, the first copy stands.
        h.on_segment(
            Side(0),
            seg(1 + end as u32 - 100, &[0xff; 100]),
            1 << 20,
            &mut sink,
            &mut st,
        );
        assert_eq!(st.tcp_overlap_mismatch, 1);
        assert_eq!(sink.bytes, big);
        // Bytes before the kept tail are not compared (as before: only the tail is kept).
        h.on_segment(Side(0), seg(1, &[0xff; 100]), 1 << 20, &mut sink, &mut st);
        assert_eq!(st.tcp_overlap_mismatch, 1);
    }

    #[test]
    fn bytes_held_past_the_fin_are_never_delivered() {
        // Found by the reassembly fuzz target: bytes sent past the FIN sat in the out-of-order
        // buffer and a later ACK delivered them after the direction had ended.
        let (mut h, mut sink, mut st) =
            (HalfStream::default(), Collect::default(), Stats::default());
        h.set_syn(0);
        h.on_segment(Side(0), seg(10, b"late"), 1 << 20, &mut sink, &mut st);
        let fin = SegIn {
            fin: true,
            ..seg(1, b"abc")
        };
        h.on_segment(Side(0), fin, 1 << 20, &mut sink, &mut st);
        assert!(sink.ended);
        assert_eq!(h.buffered(), 0);
        h.on_peer_ack(Side(0), 20, Timestamp(0), &mut sink, &mut st);
        h.on_tick(
            Side(0),
            Timestamp(HOLE_GRACE_NS as i64 * 2),
            &mut sink,
            &mut st,
        );
        h.on_peer_ack(
            Side(0),
            20,
            Timestamp(HOLE_GRACE_NS as i64 * 3),
            &mut sink,
            &mut st,
        );
        assert_eq!(sink.bytes, b"abc");
        assert!(sink.gaps.is_empty());
    }

    #[test]
    fn ack_past_a_hole_with_data_behind_it_declares_the_gap() {
        let (mut h, mut sink, mut st) =
            (HalfStream::default(), Collect::default(), Stats::default());
        h.set_syn(0);
        h.on_segment(Side(0), seg(1, b"abc"), 1 << 20, &mut sink, &mut st);
        h.on_segment(Side(0), seg(10, b"xyz"), 1 << 20, &mut sink, &mut st);
        assert!(
            sink.gaps.is_empty(),
            "not before the ACK proves the bytes were sent"
        );
        h.on_peer_ack(Side(0), 13, Timestamp(0), &mut sink, &mut st);
        assert!(
            sink.gaps.is_empty(),
            "the bytes may still come, a little late"
        );
        h.on_tick(Side(0), Timestamp(HOLE_GRACE_NS as i64), &mut sink, &mut st);
        assert_eq!(sink.gaps, vec![(3, 6)]);
        assert_eq!(sink.bytes, b"abcxyz");
    }

    #[test]
    fn full_out_of_order_buffer_forces_a_gap() {
        let (mut h, mut sink, mut st) =
            (HalfStream::default(), Collect::default(), Stats::default());
        h.set_syn(0);
        let max = 8 + 2 * HELD_OVERHEAD;
        h.on_segment(Side(0), seg(1, b"a"), max, &mut sink, &mut st);
        h.on_segment(Side(0), seg(5, b"12345"), max, &mut sink, &mut st);
        assert_eq!(st.tcp_reassembly_limit_gaps, 0);
        h.on_segment(Side(0), seg(10, b"6789"), max, &mut sink, &mut st);
        assert_eq!(st.tcp_reassembly_limit_gaps, 1);
        assert_eq!(sink.bytes, b"a123456789");
        assert!(h.buffered() <= max);
    }

    #[test]
    fn tiny_segments_are_charged_their_bookkeeping() {
        let (mut h, mut sink, mut st) =
            (HalfStream::default(), Collect::default(), Stats::default());
        h.set_syn(0);
        // Room for ten 1-byte segments; 100 come, each after a hole of one byte.
        let max = 10 * (1 + HELD_OVERHEAD);
        for i in 0..100u32 {
            h.on_segment(Side(0), seg(2 + 2 * i, b"x"), max, &mut sink, &mut st);
            assert!(h.buffered() <= max);
        }
        assert_eq!(st.tcp_reassembly_limit_gaps, 90);
        assert_eq!(sink.bytes.len(), 90);
        assert_eq!(sink.gaps.len(), 90);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let (mut h, mut sink, mut st) =
            (HalfStream::default(), Collect::default(), Stats::default());
        h.set_syn(u32::MAX - 2);
        h.on_segment(
            Side(0),
            seg(u32::MAX.wrapping_add(1), b"cd"),
            1 << 20,
            &mut sink,
            &mut st,
        );
        h.on_segment(Side(0), seg(u32::MAX, b"b"), 1 << 20, &mut sink, &mut st);
        h.on_segment(
            Side(0),
            seg(u32::MAX - 1, b"a"),
            1 << 20,
            &mut sink,
            &mut st,
        );
        assert_eq!(sink.bytes, b"abcd");
    }

    proptest! {
        /// Any segmentation, order and duplication of a stream's bytes delivers them exactly
        /// once, in order, once the last hole is filled.
        #[test]
        fn any_order_and_duplication_rebuilds_the_stream(
            data in proptest::collection::vec(any::<u8>(), 1..400),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
            isn in any::<u32>(),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len())).collect();
            points.push(0);
            points.push(data.len());
            points.sort_unstable();
            points.dedup();
            let segs: Vec<(usize, usize)> = points.windows(2).map(|w| (w[0], w[1])).collect();
            // A random sequence of segments (duplicates allowed), then all in order.
            let mut plan: Vec<usize> = order.iter().map(|i| i.index(segs.len())).collect();
            plan.extend(0..segs.len());
            let (mut h, mut sink, mut st) = (HalfStream::default(), Collect::default(), Stats::default());
            h.set_syn(isn);
            for i in plan {
                let (a, b) = segs[i];
                let s = isn.wrapping_add(1).wrapping_add(a as u32);
                h.on_segment(Side(0), seg(s, &data[a..b]), 1 << 20, &mut sink, &mut st);
            }
            prop_assert_eq!(&sink.bytes, &data);
            prop_assert!(sink.gaps.is_empty());
            prop_assert_eq!(st.tcp_overlap_mismatch, 0);
        }
    }
}
