//! Floods: hostile inputs that try to make `idemwatch read` grow without bound. Each flood is
//! generated as a pcap stream and piped to `target/release/idemwatch read --stats -`, once with
//! explicit (small) limits and once with the defaults; the table gives the bytes fed, the peak
//! RSS of the idemwatch process, the counters that show which bound was applied, and the time.
//!
//! ```sh
//! cargo build --release && cargo run --release --example floods -- [NAME...]
//! ```
//!
//! Names: keys, half-open, big-header, many-headers, endless-chunked, huge-length, byte-segments,
//! ooo, ooo-tiny, fragments, h2-continuation, h2-hpack-bomb, h2-rapid-reset, h2-open-streams
//! (default: all). `--small` divides every flood by 16 (a quick look).
//!
//! The peak RSS comes from `getrusage(RUSAGE_CHILDREN)` in a fresh copy of this program that
//! starts idemwatch, feeds it and waits for it: that copy has no other child, so the maximum is
//! idemwatch's own. Nothing big is written to disk: the capture is produced while it is read.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use pcapgen::PcapStream;
use pcapgen::frame::{self, ACK, FIN, PSH, SYN, TcpFrame};
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------
// Frames and the pcap stream
// ---------------------------------------------------------------------------------------------

type Ep = ([u8; 4], u16);

const MSS: usize = 1460;
/// Every frame carries these MAC addresses, whatever its direction (nothing reads them).
const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 5];
const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

/// A classic little-endian µs pcap written as it is generated; 10 µs between packets.
struct Pcap<W: Write> {
    out: PcapStream<W>,
    ts_us: u64,
    frame: Vec<u8>,
}

impl<W: Write> Pcap<W> {
    fn new(w: W) -> io::Result<Self> {
        Ok(Pcap {
            out: PcapStream::ethernet(w, 262_144)?,
            ts_us: 1_700_000_000_000_000,
            frame: Vec::with_capacity(1600),
        })
    }

    fn put(&mut self) -> io::Result<()> {
        self.out.write_us(self.ts_us, &self.frame)?;
        self.ts_us += 10;
        Ok(())
    }

    /// A TCP segment in IPv4 (identification 0, DF) with a window of 65535.
    fn tcp(
        &mut self,
        src: Ep,
        dst: Ep,
        seq: u32,
        ack: u32,
        flags: u8,
        data: &[u8],
    ) -> io::Result<()> {
        TcpFrame {
            src_mac: SRC_MAC,
            dst_mac: DST_MAC,
            src: src.0,
            dst: dst.0,
            ip_id: 0,
            src_port: src.1,
            dst_port: dst.1,
            seq,
            ack,
            flags,
            window: 0xffff,
            options: &[],
        }
        .write(&mut self.frame, data)?;
        self.put()
    }
}

/// One TCP connection from client `i` to the API server, tracking both sequence numbers.
struct Conn {
    c: Ep,
    s: Ep,
    cseq: u32,
    sseq: u32,
}

impl Conn {
    fn new(i: u32) -> Conn {
        let [_, a, b, c] = i.to_be_bytes();
        Conn {
            c: ([10, 1 + a, b, c], 40_000 + (i % 20_000) as u16),
            s: ([10, 0, 0, 9], 80),
            cseq: 1_000_000u32.wrapping_add(i.wrapping_mul(7919)),
            sseq: 5_000_000,
        }
    }

    fn syn<W: Write>(&mut self, p: &mut Pcap<W>) -> io::Result<()> {
        p.tcp(self.c, self.s, self.cseq, 0, SYN, &[])
    }

    fn open<W: Write>(&mut self, p: &mut Pcap<W>) -> io::Result<()> {
        self.syn(p)?;
        self.cseq = self.cseq.wrapping_add(1);
        p.tcp(self.s, self.c, self.sseq, self.cseq, SYN | ACK, &[])?;
        self.sseq = self.sseq.wrapping_add(1);
        p.tcp(self.c, self.s, self.cseq, self.sseq, ACK, &[])
    }

    /// Client bytes in segments of at most `mss`.
    fn client<W: Write>(&mut self, p: &mut Pcap<W>, data: &[u8], mss: usize) -> io::Result<()> {
        for seg in data.chunks(mss) {
            p.tcp(self.c, self.s, self.cseq, self.sseq, PSH | ACK, seg)?;
            self.cseq = self.cseq.wrapping_add(seg.len() as u32);
        }
        Ok(())
    }

    fn server<W: Write>(&mut self, p: &mut Pcap<W>, data: &[u8], mss: usize) -> io::Result<()> {
        for seg in data.chunks(mss) {
            p.tcp(self.s, self.c, self.sseq, self.cseq, PSH | ACK, seg)?;
            self.sseq = self.sseq.wrapping_add(seg.len() as u32);
        }
        Ok(())
    }

    /// Client bytes at `ahead` bytes past the next expected one (a hole before them).
    fn client_ahead<W: Write>(
        &mut self,
        p: &mut Pcap<W>,
        ahead: u32,
        data: &[u8],
    ) -> io::Result<()> {
        p.tcp(
            self.c,
            self.s,
            self.cseq.wrapping_add(ahead),
            self.sseq,
            PSH | ACK,
            data,
        )
    }

    fn close<W: Write>(&mut self, p: &mut Pcap<W>) -> io::Result<()> {
        p.tcp(self.c, self.s, self.cseq, self.sseq, FIN | ACK, &[])?;
        self.cseq = self.cseq.wrapping_add(1);
        p.tcp(self.s, self.c, self.sseq, self.cseq, FIN | ACK, &[])?;
        self.sseq = self.sseq.wrapping_add(1);
        p.tcp(self.c, self.s, self.cseq, self.sseq, ACK, &[])
    }
}

fn keyed_post(key: &str, amount: u64) -> Vec<u8> {
    let body = format!(r#"{{"amount":{amount},"currency":"usd"}}"#);
    format!(
        "POST /v1/charges HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer sk_test_1\r\n\
         Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn ok_response(id: u64) -> Vec<u8> {
    let body = format!(r#"{{"id":"ch_{id}","object":"charge"}}"#);
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// The floods
// ---------------------------------------------------------------------------------------------

struct Flood {
    name: &'static str,
    what: &'static str,
    /// Explicit limits (idemwatch options) for the first run; the second uses the defaults.
    limits: &'static [&'static str],
    /// Counters shown in the table.
    counters: &'static [&'static str],
    generate: fn(&mut Pcap<&mut dyn Write>, u64) -> io::Result<()>,
}

const FLOODS: &[Flood] = &[
    Flood {
        name: "keys",
        what: "1M distinct keys (keyed POST + 200), 1000 keep-alive connections",
        limits: &["--max-keys", "100000"],
        counters: &[
            "tracker_requests",
            "tracker_keys_evicted",
            "tracker_keys_tracked",
        ],
        generate: keys,
    },
    Flood {
        name: "half-open",
        what: "100k SYN-only flows + 100k flows with one request never answered",
        limits: &["--max-flows", "10000"],
        counters: &[
            "flows_created",
            "flows_evicted",
            "http_requests",
            "http_requests_unanswered",
        ],
        generate: half_open,
    },
    Flood {
        name: "big-header",
        what: "64 connections x 4 requests with a 1 MiB header line, interleaved, then a normal one",
        limits: &["--max-head-bytes", "16384"],
        counters: &["http_head_too_large", "http_requests", "http_transactions"],
        generate: big_header,
    },
    Flood {
        name: "many-headers",
        what: "1000 requests of 10k header lines each, 10 connections",
        limits: &["--max-headers", "64"],
        counters: &[
            "http_too_many_headers",
            "http_head_too_large",
            "http_requests",
        ],
        generate: many_headers,
    },
    Flood {
        name: "endless-chunked",
        what: "4 connections each POST a chunked body of 256 MiB (16 KiB chunks), never ended",
        limits: &["--max-pending", "4"],
        counters: &[
            "http_requests",
            "http_requests_unanswered",
            "http_transactions",
        ],
        generate: endless_chunked,
    },
    Flood {
        name: "huge-length",
        what: "POST with Content-Length: 10737418240 and 200 MiB of body sent",
        limits: &["--max-pending", "4"],
        counters: &[
            "http_requests",
            "http_incomplete_bodies",
            "http_transactions",
        ],
        generate: huge_length,
    },
    Flood {
        name: "byte-segments",
        what: "2000 connections, request and response one byte per segment, interleaved",
        limits: &["--max-flows", "4096"],
        counters: &["tcp_segments", "http_transactions", "tracker_requests"],
        generate: byte_segments,
    },
    Flood {
        name: "ooo",
        what: "256 flows, 2 MiB each of 1460-byte segments ahead of a hole never filled",
        limits: &["--max-ooo-bytes", "65536"],
        counters: &[
            "tcp_out_of_order_segments",
            "tcp_reassembly_limit_gaps",
            "tcp_gap_bytes",
        ],
        generate: ooo,
    },
    Flood {
        name: "ooo-tiny",
        what: "64 flows, 64k one-byte segments each ahead of a hole, none adjacent",
        limits: &["--max-ooo-bytes", "16384"],
        counters: &[
            "tcp_out_of_order_segments",
            "tcp_reassembly_limit_gaps",
            "tcp_gap_bytes",
        ],
        generate: ooo_tiny,
    },
    Flood {
        name: "fragments",
        what: "8192 IPv4 fragment sets of 40 x 1480 bytes, first fragment never sent",
        limits: &["--max-fragment-sets", "1024"],
        counters: &["ipv4_fragments", "fragments_dropped", "ipv4_reassembled"],
        generate: fragments,
    },
    Flood {
        name: "h2-continuation",
        what: "64 HTTP/2 connections, each a HEADERS then 1024 CONTINUATION frames of 1 KiB, no END_HEADERS",
        limits: &["--max-head-bytes", "16384"],
        counters: &[
            "http2_continuation_floods",
            "http2_directions_lost",
            "http_requests",
        ],
        generate: h2_continuation,
    },
    Flood {
        name: "h2-hpack-bomb",
        what: "16 HTTP/2 connections: a 4000-byte field indexed once, then 1000 blocks of 8000 references to it (32 MB decoded each)",
        limits: &["--max-head-bytes", "16384"],
        counters: &[
            "http2_hpack_errors",
            "http2_headers_undecodable",
            "http_head_too_large",
            "http_requests",
        ],
        generate: h2_hpack_bomb,
    },
    Flood {
        name: "h2-rapid-reset",
        what: "one HTTP/2 connection, 1M streams each opened and reset by the client (CVE-2023-44487)",
        // One worker: the memory of the state, without what a second worker's queues hold.
        limits: &["--max-pending", "16", "--threads", "1"],
        counters: &["http2_streams_reset", "http2_streams", "http_transactions"],
        generate: h2_rapid_reset,
    },
    Flood {
        name: "h2-open-streams",
        what: "100 HTTP/2 connections, each opening 10k streams (keyless POSTs) never answered",
        limits: &["--max-pending", "16", "--threads", "1"],
        counters: &[
            "http2_streams",
            "http_pending_overflow",
            "http_transactions",
        ],
        generate: h2_open_streams,
    },
];

/// An HTTP/2 frame (RFC 9113 section 4.1).
fn h2_frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    idemwatch::http::h2::frame::write(&mut f, ty, flags, stream, payload);
    f
}

/// An HPACK literal field, new name, without (0x00) or with (0x40) indexing; lengths below 127
/// for the name, any for the value (RFC 7541 sections 5.1, 6.2).
fn h2_literal(flag: u8, name: &str, value: &[u8]) -> Vec<u8> {
    let mut b = vec![flag, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    let mut n = value.len();
    if n < 127 {
        b.push(n as u8);
    } else {
        b.push(127);
        n -= 127;
        while n >= 128 {
            b.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        b.push(n as u8);
    }
    b.extend_from_slice(value);
    b
}

/// A POST to /v1/charges: :method POST, :scheme http, :path, :authority, then `extra`.
fn h2_post(extra: &[u8]) -> Vec<u8> {
    let mut b = vec![0x83, 0x86];
    b.extend(h2_literal(0, ":path", b"/v1/charges"));
    b.extend(h2_literal(0, ":authority", b"api.example.com"));
    b.extend_from_slice(extra);
    b
}

/// The client's preface and an empty SETTINGS.
fn h2_preface() -> Vec<u8> {
    let mut b = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    b.extend(h2_frame(0x4, 0, 0, &[]));
    b
}

fn h2_continuation(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let mut conns: Vec<Conn> = (0..64).map(Conn::new).collect();
    for k in &mut conns {
        k.open(p)?;
        k.client(p, &h2_preface(), MSS)?;
        k.client(p, &h2_frame(0x1, 0, 1, &h2_post(&[])), MSS)?;
    }
    let cont = h2_frame(0x9, 0, 1, &[0u8; 1024]);
    for _ in 0..1024 / div {
        for k in &mut conns {
            k.client(p, &cont, MSS)?;
        }
    }
    for k in &mut conns {
        k.close(p)?;
    }
    Ok(())
}

fn h2_hpack_bomb(p: &mut P<'_>, div: u64) -> io::Result<()> {
    // Index 62 is the newest dynamic entry: 8000 references decode to 32 MB.
    let bomb = h2_frame(0x1, 0x5, 3, &[0x80 | 62; 8000]);
    for c in 0..16 {
        let mut k = Conn::new(c);
        k.open(p)?;
        k.client(p, &h2_preface(), MSS)?;
        let first = h2_post(&h2_literal(0x40, "x-bomb", &[b'b'; 4000]));
        k.client(p, &h2_frame(0x1, 0x5, 1, &first), MSS)?;
        for i in 0..1000 / div {
            let mut f = bomb.clone();
            let id = 3 + 2 * i as u32;
            if let Some(s) = f.get_mut(5..9) {
                s.copy_from_slice(&id.to_be_bytes());
            }
            k.client(p, &f, MSS)?;
        }
        k.close(p)?;
    }
    Ok(())
}

fn h2_rapid_reset(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let mut k = Conn::new(0);
    k.open(p)?;
    k.client(p, &h2_preface(), MSS)?;
    let block = h2_post(&h2_literal(0, "idempotency-key", b"reset-me"));
    let mut batch = Vec::new();
    for i in 0..1_000_000 / div as u32 {
        let id = 1 + 2 * i;
        batch.extend(h2_frame(0x1, 0x5, id, &block));
        batch.extend(h2_frame(0x3, 0, id, &0x8u32.to_be_bytes()));
        if batch.len() > 60_000 {
            k.client(p, &batch, MSS)?;
            batch.clear();
        }
    }
    k.client(p, &batch, MSS)?;
    k.close(p)
}

fn h2_open_streams(p: &mut P<'_>, div: u64) -> io::Result<()> {
    for c in 0..100 {
        let mut k = Conn::new(c);
        k.open(p)?;
        k.client(p, &h2_preface(), MSS)?;
        let mut batch = Vec::new();
        let block = h2_post(&[]);
        for i in 0..10_000 / div as u32 {
            batch.extend(h2_frame(0x1, 0x5, 1 + 2 * i, &block));
            if batch.len() > 60_000 {
                k.client(p, &batch, MSS)?;
                batch.clear();
            }
        }
        k.client(p, &batch, MSS)?;
        k.close(p)?;
    }
    Ok(())
}

type P<'a> = Pcap<&'a mut dyn Write>;

fn keys(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let (conns, per) = (1000 / div.min(10), 1000 / (div / 10).max(1));
    for c in 0..conns as u32 {
        let mut k = Conn::new(c);
        k.open(p)?;
        for r in 0..per {
            let n = u64::from(c) * per + r;
            k.client(p, &keyed_post(&format!("flood-{n:016x}"), n), MSS)?;
            k.server(p, &ok_response(n), MSS)?;
        }
        k.close(p)?;
    }
    Ok(())
}

fn half_open(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let n = 100_000 / div as u32;
    for i in 0..n {
        Conn::new(i).syn(p)?;
    }
    for i in n..2 * n {
        let mut k = Conn::new(i);
        k.open(p)?;
        k.client(p, &keyed_post(&format!("half-{i}"), u64::from(i)), MSS)?;
    }
    Ok(())
}

fn big_header(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let mut req = b"POST /v1/charges HTTP/1.1\r\nHost: api.example.com\r\nX-Pad: ".to_vec();
    req.resize(req.len() + (1 << 20), b'a');
    req.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let reqs = 4 / div.min(4);
    let mut conns: Vec<Conn> = (0..64).map(Conn::new).collect();
    for k in &mut conns {
        k.open(p)?;
    }
    for _ in 0..reqs.max(1) {
        for seg in req.chunks(MSS) {
            for k in &mut conns {
                k.client(p, seg, MSS)?;
            }
        }
    }
    for (i, k) in conns.iter_mut().enumerate() {
        k.client(p, &keyed_post(&format!("after-{i}"), 1), MSS)?;
        k.server(p, &ok_response(i as u64), MSS)?;
        k.close(p)?;
    }
    Ok(())
}

fn many_headers_request() -> Vec<u8> {
    let mut req = b"POST /v1/charges HTTP/1.1\r\nHost: api.example.com\r\n".to_vec();
    for i in 0..10_000 {
        // Five bytes a line: 10k of them fit in the default 64 KiB head.
        req.extend_from_slice(format!("x:{}\r\n", i % 10).as_bytes());
    }
    req.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    req
}

fn many_headers(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let req = many_headers_request();
    for c in 0..10 {
        let mut k = Conn::new(c);
        k.open(p)?;
        for _ in 0..100 / div {
            k.client(p, &req, MSS)?;
            k.server(p, &ok_response(0), MSS)?;
        }
        k.close(p)?;
    }
    Ok(())
}

fn endless_chunked(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let head =
        b"POST /v1/uploads HTTP/1.1\r\nHost: api.example.com\r\nIdempotency-Key: endless\r\n\
                 Transfer-Encoding: chunked\r\n\r\n";
    let mut chunk = b"4000\r\n".to_vec();
    chunk.resize(chunk.len() + 0x4000, b'x');
    chunk.extend_from_slice(b"\r\n");
    let mut conns: Vec<Conn> = (0..4).map(Conn::new).collect();
    for k in &mut conns {
        k.open(p)?;
        k.client(p, head, MSS)?;
    }
    // 256 MiB per connection; the body never ends and the connection never closes.
    for _ in 0..(256 * 64) / div {
        for k in &mut conns {
            k.client(p, &chunk, MSS)?;
        }
    }
    Ok(())
}

fn huge_length(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let head = b"POST /v1/uploads HTTP/1.1\r\nHost: api.example.com\r\nIdempotency-Key: huge\r\n\
                 Content-Length: 10737418240\r\n\r\n";
    let mut k = Conn::new(0);
    k.open(p)?;
    k.client(p, head, MSS)?;
    let block = vec![b'y'; MSS * 64];
    let total = (200u64 << 20) / div;
    let mut sent = 0u64;
    while sent < total {
        k.client(p, &block, MSS)?;
        sent += block.len() as u64;
    }
    Ok(())
}

fn byte_segments(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let n = 2000 / div as u32;
    let mut conns: Vec<Conn> = (0..n).map(Conn::new).collect();
    let reqs: Vec<Vec<u8>> = (0..n)
        .map(|i| keyed_post(&format!("byte-{i}"), u64::from(i)))
        .collect();
    let resps: Vec<Vec<u8>> = (0..n).map(|i| ok_response(u64::from(i))).collect();
    for k in &mut conns {
        k.open(p)?;
    }
    for (msgs, client) in [(&reqs, true), (&resps, false)] {
        let longest = msgs.iter().map(Vec::len).max().unwrap_or(0);
        for at in 0..longest {
            for (k, m) in conns.iter_mut().zip(msgs) {
                if let Some(b) = m.get(at..at + 1) {
                    if client {
                        k.client(p, b, 1)?;
                    } else {
                        k.server(p, b, 1)?;
                    }
                }
            }
        }
    }
    for k in &mut conns {
        k.close(p)?;
    }
    Ok(())
}

fn ooo(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let mut conns: Vec<Conn> = (0..256).map(Conn::new).collect();
    for k in &mut conns {
        k.open(p)?;
    }
    let seg = vec![b'z'; MSS];
    // The first 100 bytes are never sent; the rest comes, and is never acknowledged.
    for i in 0..(2 << 20) / MSS as u32 / div as u32 {
        for k in &mut conns {
            k.client_ahead(p, 100 + i * MSS as u32, &seg)?;
        }
    }
    Ok(())
}

fn ooo_tiny(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let mut conns: Vec<Conn> = (0..64).map(Conn::new).collect();
    for k in &mut conns {
        k.open(p)?;
    }
    for i in 0..65_536 / div as u32 {
        for k in &mut conns {
            k.client_ahead(p, 2 + 2 * i, b"z")?;
        }
    }
    Ok(())
}

fn fragments(p: &mut P<'_>, div: u64) -> io::Result<()> {
    let data = vec![b'f'; 1480];
    for set in 0..8192 / div as u32 {
        let [_, a, b, c] = set.to_be_bytes();
        let src = [10, 2 + a, b, c];
        // Offsets 1480.. in 8-byte units; the fragment at offset 0 never comes.
        for f in 1..=40u16 {
            frame::ipv4_fragment(
                &mut p.frame,
                SRC_MAC,
                DST_MAC,
                src,
                [10, 0, 0, 9],
                set as u16,
                true,
                f * 185,
                &data,
            )?;
            p.put()?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running and measuring
// ---------------------------------------------------------------------------------------------

fn idemwatch() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/release/examples/floods -> target/release/idemwatch
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("idemwatch"))
        .unwrap_or_else(|| "target/release/idemwatch".into())
}

/// In a fresh process: runs one flood through idemwatch and prints one JSON line.
fn measure(flood: &Flood, explicit: bool, div: u64) -> io::Result<()> {
    let limits: &[&str] = if explicit { flood.limits } else { &[] };
    let start = Instant::now();
    let mut child = Command::new(idemwatch())
        .args(["-q", "read", "--stats"])
        .args(limits)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or(io::ErrorKind::BrokenPipe)?;
    let mut stderr = child.stderr.take().ok_or(io::ErrorKind::BrokenPipe)?;
    // Only the stats line is kept: alerts may be many.
    let out = std::thread::spawn(move || {
        let mut stats = None;
        let mut lines = 0u64;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines += 1;
            if line.contains(r#""event_type":"stats""#) {
                stats = serde_json::from_str::<Value>(&line).ok();
            }
        }
        (stats, lines)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let input_bytes = {
        let stdin = child.stdin.take().ok_or(io::ErrorKind::BrokenPipe)?;
        let mut w = BufWriter::with_capacity(1 << 20, stdin);
        let mut p: Pcap<&mut dyn Write> = Pcap::new(&mut w as &mut dyn Write)?;
        (flood.generate)(&mut p, div)?;
        let bytes = p.out.bytes();
        p.out.into_inner().flush()?;
        bytes
    };
    let status = child.wait()?;
    let elapsed = start.elapsed();
    let rss_kib = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(-1);
    let (stats, lines) = out.join().unwrap_or((None, 0));
    let stderr = err.join().unwrap_or_default();
    let counters: Map<String, Value> = flood
        .counters
        .iter()
        .map(|c| {
            let v = stats
                .as_ref()
                .and_then(|s| s["stats"].get(*c).cloned())
                .unwrap_or(Value::Null);
            (c.to_string(), v)
        })
        .collect();
    let line = serde_json::json!({
        "flood": flood.name,
        "limits": if limits.is_empty() { "defaults".to_string() } else { limits.join(" ") },
        "input_bytes": input_bytes,
        "rss_kib": rss_kib,
        "secs": elapsed.as_secs_f64(),
        "exit": status.code(),
        "output_lines": lines,
        "counters": counters,
        "stderr": stderr.lines().rev().take(3).collect::<Vec<_>>(),
    });
    println!("{line}");
    Ok(())
}

fn mib(b: f64) -> String {
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut div = 1u64;
    if let Some(i) = args.iter().position(|a| a == "--small") {
        args.remove(i);
        div = 16;
    }
    if args.first().is_some_and(|a| a == "--measure") {
        let (Some(name), Some(mode)) = (args.get(1), args.get(2)) else {
            std::process::exit(2);
        };
        let Some(f) = FLOODS.iter().find(|f| f.name == name) else {
            std::process::exit(2);
        };
        if let Err(e) = measure(f, mode == "explicit", div) {
            eprintln!("floods: {name}: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Some(bad) = args
        .iter()
        .find(|a| !FLOODS.iter().any(|f| f.name == a.as_str()))
    {
        let names: Vec<_> = FLOODS.iter().map(|f| f.name).collect();
        eprintln!("floods: unknown flood {bad}; names: {}", names.join(", "));
        std::process::exit(2);
    }
    if !idemwatch().exists() {
        eprintln!(
            "floods: {} missing; run cargo build --release first",
            idemwatch().display()
        );
        std::process::exit(2);
    }
    let me = std::env::current_exe().unwrap_or_else(|_| "floods".into());
    println!("| flood | limits | input | peak RSS | counters | time | exit |");
    println!("|---|---|---|---|---|---|---|");
    for f in FLOODS
        .iter()
        .filter(|f| args.is_empty() || args.iter().any(|a| a == f.name))
    {
        for mode in ["explicit", "defaults"] {
            let mut cmd = Command::new(&me);
            cmd.args(["--measure", f.name, mode]);
            if div > 1 {
                cmd.arg("--small");
            }
            let out = match cmd.stderr(Stdio::inherit()).output() {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("floods: {}: {e}", f.name);
                    continue;
                }
            };
            let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
                eprintln!("floods: {} {mode}: no result", f.name);
                continue;
            };
            let counters = v["counters"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            println!(
                "| {} | {} | {} | {} | {} | {:.1} s | {} |",
                f.name,
                v["limits"].as_str().unwrap_or(""),
                mib(v["input_bytes"].as_f64().unwrap_or(0.0)),
                mib(v["rss_kib"].as_f64().unwrap_or(0.0) * 1024.0),
                counters,
                v["secs"].as_f64().unwrap_or(0.0),
                v["exit"],
            );
            if v["exit"] != 0 {
                eprintln!("floods: {} {mode}: stderr: {}", f.name, v["stderr"]);
            }
        }
        if let Some(f) = FLOODS.iter().find(|x| x.name == f.name) {
            eprintln!("{}: {}", f.name, f.what);
        }
    }
}
