//! TCP reassembly of an arbitrary segment sequence: sequence and acknowledgement numbers,
//! flags, payload lengths and order all chosen by the fuzzer, on up to four flows with a
//! two-flow table and a small out-of-order budget. Payload bytes are a function of their
//! sequence number, so the checks are exact: what reaches the HTTP layer is contiguous per
//! direction (data and holes follow each other without overlap or going back), every delivered
//! byte sits at the offset its sequence number gives, and the table never holds more flows than
//! its limit.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use idemwatch::decode::{Segment, TcpFlags, Vlans};
use idemwatch::reassembly::{Chunk, EndReason, FlowInfo, FlowTable, Settings, Side, StreamSink};
use idemwatch::stats::{HasStats, Stats};
use idemwatch::ts::Timestamp;

/// The byte every sender puts at sequence number `seq` (its low byte: it wraps with the
/// sequence space).
fn byte_at(seq: u32) -> u8 {
    seq as u8
}

#[derive(Default)]
struct Ctx {
    stats: Stats,
}

impl HasStats for Ctx {
    fn stats(&mut self) -> &mut Stats {
        &mut self.stats
    }
}

/// Checks what one flow's sink receives.
struct Check {
    /// Per side: the next offset expected, and the byte value at offset 0 once known.
    next: [Option<u64>; 2],
    base: [Option<u8>; 2],
    ended: [bool; 2],
}

impl Check {
    fn advance(&mut self, side: Side, offset: u64, len: u64) {
        let i = side.index();
        if let Some(n) = self.next[i] {
            assert_eq!(offset, n, "side {i}: delivery at {offset}, expected {n}");
        }
        self.next[i] = Some(offset + len);
    }
}

impl StreamSink for Check {
    type Ctx = Ctx;
    fn on_client_side(&mut self, _side: Side, _ctx: &mut Ctx) {}
    fn on_data(&mut self, side: Side, chunk: Chunk<'_>, _ctx: &mut Ctx) {
        let i = side.index();
        assert!(!self.ended[i], "side {i}: data after its end");
        for (k, b) in chunk.bytes.iter().enumerate() {
            let off = chunk.offset + k as u64;
            // byte = (seq0 + off) mod 256, so byte - off is the same for every byte.
            let base = b.wrapping_sub(off as u8);
            match self.base[i] {
                None => self.base[i] = Some(base),
                Some(b0) => assert_eq!(b0, base, "side {i}: byte at offset {off} misplaced"),
            }
        }
        self.advance(side, chunk.offset, chunk.bytes.len() as u64);
    }
    fn on_gap(&mut self, side: Side, offset: u64, len: u64, _ts: Timestamp, _ctx: &mut Ctx) {
        assert!(len > 0, "empty hole");
        self.advance(side, offset, len);
    }
    fn on_end(&mut self, side: Side, _reason: EndReason, _ts: Timestamp, _ctx: &mut Ctx) {
        self.ended[side.index()] = true;
    }
}

const MAX_FLOWS: usize = 2;

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let limits = Settings {
        max_flows: MAX_FLOWS,
        max_ooo_bytes_per_flow: 512,
        flow_idle_timeout: Duration::from_secs(5),
    };
    let mut table: FlowTable<Check> = FlowTable::new(&limits);
    let mut ctx = Ctx::default();
    let client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let server = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    // Per (flow, side): the sequence number the fuzzer's deltas are relative to.
    let mut cursor: HashMap<(u8, u8), u32> = HashMap::new();
    let mut ts = 0i64;
    let mut buf = Vec::new();
    // Each segment: 8 bytes of control. [flow/side/flags] [seq delta: i16] [ack delta: i16]
    // [len] [time step] [spare]
    for (n, c) in data.chunks_exact(8).enumerate() {
        let flow = c[0] & 3;
        let side = (c[0] >> 2) & 1;
        let flags = TcpFlags {
            syn: c[0] & 0x08 != 0,
            ack: c[0] & 0x10 != 0,
            fin: c[0] & 0x20 != 0,
            rst: c[0] & 0x40 != 0,
        };
        let absolute = c[0] & 0x80 != 0;
        let d_seq = i16::from_le_bytes([c[1], c[2]]);
        let d_ack = i16::from_le_bytes([c[3], c[4]]);
        let len = usize::from(c[5]);
        ts += i64::from(c[6]) * 50_000_000;
        let cur = cursor.entry((flow, side)).or_insert(0xffff_ff00);
        let seq = if absolute {
            u32::from_le_bytes([c[1], c[2], c[3], c[7]])
        } else {
            cur.wrapping_add(d_seq as i32 as u32)
        };
        let peer = *cursor.get(&(flow, 1 - side)).unwrap_or(&0xffff_ff00);
        let ack = peer.wrapping_add(d_ack as i32 as u32);
        buf.clear();
        // A SYN's data starts one after its sequence number.
        let data_seq = seq.wrapping_add(u32::from(flags.syn));
        buf.extend((0..len as u32).map(|k| byte_at(data_seq.wrapping_add(k))));
        // The next segment of this side follows this one unless the fuzzer says otherwise.
        let next = seq
            .wrapping_add(len as u32)
            .wrapping_add(u32::from(flags.syn) + u32::from(flags.fin));
        cursor.insert((flow, side), next);
        let port = 40000 + u16::from(flow);
        let (src, dst, sp, dp) = if side == 0 {
            (client, server, port, 80)
        } else {
            (server, client, 80, port)
        };
        let seg = Segment {
            ts: Timestamp(ts),
            src,
            dst,
            src_port: sp,
            dst_port: dp,
            seq,
            ack,
            flags,
            payload: &buf,
            missing_tail: if c[7] & 0x0f == 0x0f {
                u32::from(c[7] >> 4)
            } else {
                0
            },
            vlans: Vlans::default(),
        };
        table.on_segment(
            &seg,
            n as u64,
            0,
            &mut |_info: &FlowInfo| Check {
                next: [None; 2],
                base: [None; 2],
                ended: [false; 2],
            },
            &mut ctx,
        );
        assert!(table.len() <= MAX_FLOWS, "flow table over its limit");
        if c[6] > 200 {
            table.sweep(Timestamp(ts), &mut ctx);
        }
    }
    table.finish_all(Timestamp(ts + 1), &mut ctx);
    assert!(table.is_empty());
}
