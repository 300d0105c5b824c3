//! The flow table: one entry per TCP connection, bounded, expired in capture time.
//!
//! Creates a flow on a SYN, a SYN-ACK or the first payload (connections already open when the
//! capture starts are picked up), routes each segment to its direction's [`HalfStream`], closes
//! flows on FIN and RST, and ends them on idle timeout, eviction (table full) or end of input,
//! always in creation order so output never depends on hash order.

use foldhash::HashMap;

use super::flow::{Endpoint, FlowInfo, FlowKey, Side};
use super::seq::SeqNum;
use super::stream::{EndReason, HalfStream, SegIn, StreamSink};
use crate::decode::Segment;
use crate::stats::HasStats;
use crate::ts::Timestamp;

/// A connection being followed.
pub struct Flow<S> {
    pub info: FlowInfo,
    streams: [HalfStream; 2],
    pub app: S,
    last_ts: Timestamp,
    /// Both directions ended: the flow lingers a while to absorb retransmissions.
    closed_at: Option<Timestamp>,
    /// An RST was seen; the flow ends unless data follows soon (receivers ignore some RSTs,
    /// e.g. with a bad TCP-MD5 signature, and evasion tools rely on that).
    reset_at: Option<Timestamp>,
    /// The side whose SYN (without ACK) opened the connection, when seen.
    opener: Option<Side>,
}

/// How long a reset flow waits for more data before it ends (capture time).
const RST_LINGER_NS: u64 = 1_000_000_000;
/// How long a closed flow absorbs retransmissions before it is forgotten (capture time).
const CLOSED_LINGER_NS: u64 = 10_000_000_000;

impl<S: StreamSink> Flow<S> {
    fn side_of(&self, src: Endpoint) -> Side {
        if self.info.ends[0] == src {
            Side(0)
        } else {
            Side(1)
        }
    }

    fn on_segment(&mut self, side: Side, seg: &Segment<'_>, max_ooo: usize, ctx: &mut S::Ctx) {
        ctx.stats().tcp_segments += 1;
        self.last_ts = seg.ts;
        let (mine, theirs) = split_pair(&mut self.streams, side);
        if seg.flags.syn {
            mine.set_syn(seg.seq);
            if seg.flags.ack {
                theirs.set_first_seq(seg.ack);
                self.app.on_client_side(side.other(), ctx);
            } else {
                self.opener = Some(side);
                self.app.on_client_side(side, ctx);
            }
        } else if seg.flags.ack && theirs.base().is_none() && self.opener.is_none_or(|o| o == side)
        {
            // The SYN-ACK was lost (or the handshake was before the capture): an ACK from the
            // other side says where the peer's unseen bytes end, so peer bytes lost before
            // the first ones captured are a gap, not the stream's start (else the responses
            // after it pair with the wrong requests). Bytes before it were delivered already.
            theirs.set_first_seq(seg.ack);
        }
        if seg.flags.rst {
            // Whatever the RST carries is not stream data (RFC 9293 section 3.5.3).
            if self.closed_at.is_none() && self.reset_at.is_none() {
                self.reset_at = Some(seg.ts);
            }
            return;
        }
        if self.closed_at.is_some() {
            if !seg.payload.is_empty() {
                ctx.stats().tcp_retransmitted_segments += 1;
            }
            return;
        }
        if !seg.payload.is_empty() {
            self.reset_at = None;
        }
        let peer_ack = if seg.flags.ack {
            theirs.offset_of(seg.ack)
        } else {
            None
        };
        // The ACK tells what the sender had received before it sent this segment's data:
        // settle the peer's holes first, so its requests are known before this response.
        if seg.flags.ack {
            theirs.on_peer_ack(side.other(), seg.ack, seg.ts, &mut self.app, ctx);
        }
        let data_seq = if seg.flags.syn {
            SeqNum(seg.seq).plus(1).0
        } else {
            seg.seq
        };
        mine.on_segment(
            side,
            SegIn {
                seq: data_seq,
                payload: seg.payload,
                missing_tail: seg.missing_tail,
                fin: seg.flags.fin,
                ts: seg.ts,
                peer_ack,
                vlans: seg.vlans,
            },
            max_ooo,
            &mut self.app,
            ctx,
        );
        if self.streams.iter().all(|s| s.is_ended()) {
            self.closed_at = Some(seg.ts);
        }
    }

    /// Whether anything waits on capture time (a hole's grace, held bytes).
    fn wants_tick(&self) -> bool {
        self.app.holds()
            || (self.closed_at.is_none()
                && (self.streams.iter().any(HalfStream::has_proof) || self.app.wants_tick()))
    }

    /// Capture time passes: proven holes past their grace become gaps; the sink may act.
    fn tick(&mut self, now: Timestamp, ctx: &mut S::Ctx) {
        if self.closed_at.is_some() {
            if self.app.holds() {
                self.app.on_tick(now, ctx);
            }
            return;
        }
        for i in 0..2u8 {
            let side = Side(i);
            if let Some(st) = self.streams.get_mut(side.index()) {
                st.on_tick(side, now, &mut self.app, ctx);
            }
        }
        self.app.on_tick(now, ctx);
    }

    /// Whether the flow is done at `now`: closed and lingered, or reset and quiet.
    fn expired(&self, now: Timestamp, idle_ns: u64) -> Option<EndReason> {
        if self.app.holds() {
            return None;
        }
        if let Some(t) = self.closed_at {
            return (now.since(t) > CLOSED_LINGER_NS).then_some(EndReason::Fin);
        }
        if let Some(t) = self.reset_at
            && now.since(t) > RST_LINGER_NS
        {
            return Some(EndReason::Rst);
        }
        (now.since(self.last_ts) > idle_ns).then_some(EndReason::IdleTimeout)
    }

    /// Ends both directions (delivering what is buffered, with gaps for holes).
    pub fn finish(&mut self, reason: EndReason, ts: Timestamp, ctx: &mut S::Ctx) {
        for i in 0..2u8 {
            let side = Side(i);
            if let Some(st) = self.streams.get_mut(side.index()) {
                st.finish(side, reason, ts, &mut self.app, ctx);
            }
        }
        self.closed_at.get_or_insert(ts);
    }
}

fn split_pair(pair: &mut [HalfStream; 2], side: Side) -> (&mut HalfStream, &mut HalfStream) {
    let [a, b] = pair;
    if side.index() == 0 { (a, b) } else { (b, a) }
}

/// Bounded table of flows.
/// The flow table's bounds: the reassembly stage's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Flows tracked at once; the least recently active are evicted beyond it.
    pub max_flows: usize,
    /// Out-of-order bytes buffered per direction of a flow before a hole is declared; each held
    /// segment also counts its bookkeeping (about 130 bytes), so tiny segments fill it sooner.
    pub max_ooo_bytes_per_flow: usize,
    /// A flow without packets for this long (capture time) is closed.
    pub flow_idle_timeout: std::time::Duration,
}

impl Settings {
    /// The defaults, as a constant so that the command line's help can show them.
    pub const DEFAULT: Settings = Settings {
        max_flows: 200_000,
        max_ooo_bytes_per_flow: 1 << 20,
        flow_idle_timeout: std::time::Duration::from_secs(600),
    };
}

impl Default for Settings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

pub struct FlowTable<S> {
    /// Boxed: a flow with its two directions and HTTP state is several hundred bytes, and a
    /// table holding them inline ran at half load after each growth and copied every flow
    /// when it grew (37 MB of a 95 MB heap peak on 48k connections).
    flows: HashMap<FlowKey, Box<Flow<S>>>,
    max_flows: usize,
    max_ooo: usize,
    idle_ns: u64,
}

impl<S: StreamSink> FlowTable<S> {
    pub fn new(limits: &Settings) -> Self {
        FlowTable {
            flows: HashMap::default(),
            max_flows: limits.max_flows.max(1),
            max_ooo: limits.max_ooo_bytes_per_flow,
            idle_ns: u64::try_from(limits.flow_idle_timeout.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Takes one segment, the `packet_no`th of the input. `new_app` makes the sink of a new
    /// flow.
    pub fn on_segment(
        &mut self,
        seg: &Segment<'_>,
        packet_no: u64,
        file_index: usize,
        new_app: &mut dyn FnMut(&FlowInfo) -> S,
        ctx: &mut S::Ctx,
    ) {
        let src = Endpoint {
            ip: seg.src,
            port: seg.src_port,
        };
        let dst = Endpoint {
            ip: seg.dst,
            port: seg.dst_port,
        };
        let key = FlowKey::new(src, dst);
        let max_ooo = self.max_ooo;
        // Nearly every segment belongs to a known flow: one lookup then.
        if let Some(flow) = self.flows.get_mut(&key) {
            if !(seg.flags.syn && !seg.flags.ack && is_new_connection(flow, src, seg.seq)) {
                Self::segment_into(flow, src, seg, max_ooo, ctx);
                return;
            }
            if flow.closed_at.is_none() {
                flow.finish(EndReason::Reused, seg.ts, ctx);
                ctx.stats().flows_closed += 1;
            }
            self.flows.remove(&key);
        }
        if seg.payload.is_empty() && !seg.flags.syn {
            ctx.stats().tcp_segments_no_flow += 1;
            return;
        }
        if self.flows.len() >= self.max_flows {
            self.evict(seg.ts, ctx);
        }
        // The first packet's index orders flows the same whatever the number of workers.
        let info = FlowInfo::new(src, dst, seg.ts, packet_no, file_index);
        let app = new_app(&info);
        ctx.stats().flows_created += 1;
        let flow = self.flows.entry(key).insert_entry(Box::new(Flow {
            info,
            streams: [HalfStream::default(), HalfStream::default()],
            app,
            last_ts: seg.ts,
            closed_at: None,
            reset_at: None,
            opener: None,
        }));
        Self::segment_into(flow.into_mut(), src, seg, max_ooo, ctx);
    }

    /// Hands a segment to its flow, counting the flow closed if this segment closed it.
    fn segment_into(
        flow: &mut Flow<S>,
        src: Endpoint,
        seg: &Segment<'_>,
        max_ooo: usize,
        ctx: &mut S::Ctx,
    ) {
        let side = flow.side_of(src);
        let was_closed = flow.closed_at.is_some();
        flow.on_segment(side, seg, max_ooo, ctx);
        if !was_closed && flow.closed_at.is_some() {
            ctx.stats().flows_closed += 1;
        }
    }

    /// Ends flows that are idle for longer than the timeout, reset and quiet, or closed and
    /// lingered (capture time), in creation order.
    pub fn sweep(&mut self, now: Timestamp, ctx: &mut S::Ctx) {
        let idle = self.idle_ns;
        // One pass, no sorting: a sweep runs every second of capture time over every flow, so
        // it must stay cheap on long captures. Ticking flows in table order is safe: events
        // carry their flow's serial and are sorted before they leave the worker.
        let mut done: Vec<(u64, FlowKey, EndReason)> = Vec::new();
        for (k, f) in self.flows.iter_mut() {
            if f.wants_tick() {
                f.tick(now, ctx);
            }
            if let Some(r) = f.expired(now, idle) {
                done.push((f.info.serial, *k, r));
            }
        }
        done.sort_unstable_by_key(|(serial, _, _)| *serial);
        for (_, key, reason) in done {
            if let Some(mut flow) = self.flows.remove(&key)
                && flow.closed_at.is_none()
            {
                flow.finish(reason, now, ctx);
                match reason {
                    EndReason::Rst => ctx.stats().flows_closed += 1,
                    _ => ctx.stats().flows_timed_out += 1,
                }
            }
        }
    }

    /// What flows wait for from outside their streams may have come (a followed TLS key log
    /// grew): those that hold are woken, in creation order.
    pub fn wake(&mut self, now: Timestamp, ctx: &mut S::Ctx) {
        let mut holding: Vec<(u64, FlowKey)> = self
            .flows
            .iter()
            .filter(|(_, f)| f.app.holds())
            .map(|(k, f)| (f.info.serial, *k))
            .collect();
        holding.sort_unstable_by_key(|(serial, _)| *serial);
        for (_, key) in holding {
            if let Some(f) = self.flows.get_mut(&key) {
                f.app.on_wake(now, ctx);
            }
        }
    }

    /// Ends every flow (end of input), in creation order.
    pub fn finish_all(&mut self, ts: Timestamp, ctx: &mut S::Ctx) {
        let mut all: Vec<(u64, FlowKey)> = self
            .flows
            .iter()
            .map(|(k, f)| (f.info.serial, *k))
            .collect();
        all.sort_unstable_by_key(|(serial, _)| *serial);
        for (_, key) in all {
            if let Some(mut flow) = self.flows.remove(&key) {
                flow.finish(EndReason::EndOfInput, ts, ctx);
            }
        }
    }

    /// Table full: ends the least recently active eighth of the flows, so that a flood costs
    /// amortised constant time per new flow.
    fn evict(&mut self, now: Timestamp, ctx: &mut S::Ctx) {
        // Closed flows (only lingering) go first, then the least recently active.
        let mut by_age: Vec<(bool, Timestamp, u64, FlowKey)> = self
            .flows
            .iter()
            .map(|(k, f)| (f.closed_at.is_none(), f.last_ts, f.info.serial, *k))
            .collect();
        let n = (by_age.len() / 8).max(1).min(by_age.len());
        if n == 0 {
            return;
        }
        by_age.select_nth_unstable(n - 1);
        let mut victims: Vec<(u64, FlowKey)> = by_age
            .get(..n)
            .unwrap_or(&[])
            .iter()
            .map(|(_, _, s, k)| (*s, *k))
            .collect();
        victims.sort_unstable_by_key(|(s, _)| *s);
        tracing::warn!(
            flows = victims.len(),
            max_flows = self.max_flows,
            "flow table full: ending the least recently active flows; raise --max-flows if this repeats"
        );
        for (_, key) in victims {
            if let Some(mut flow) = self.flows.remove(&key)
                && flow.closed_at.is_none()
            {
                flow.finish(EndReason::Evicted, now, ctx);
                ctx.stats().flows_evicted += 1;
            }
        }
    }
}

/// A SYN for a known flow starts a new connection when its sequence number differs from the
/// one the flow began with and the old connection already carried or ended data (port reuse);
/// a retransmitted SYN does not.
fn is_new_connection<S: StreamSink>(flow: &Flow<S>, src: Endpoint, seq: u32) -> bool {
    let side = flow.side_of(src);
    let Some(st) = flow.streams.get(side.index()) else {
        return false;
    };
    let same_isn = st.base() == Some(SeqNum(seq).plus(1));
    let used = flow
        .streams
        .iter()
        .any(|s| s.has_delivered() || s.is_ended());
    !same_isn && used
}
