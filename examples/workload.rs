//! Deterministic workload generator: realistic payment-API traffic as a classic pcap file, with
//! a ground-truth sidecar of the alerts idemwatch must raise on it.
//!
//! ```sh
//! cargo run --release --example workload -- --seed 7 --size 1G --out /tmp/gen.pcap
//! cargo run --release --example workload -- --seed 1 --transactions 2000 --out /tmp/small.pcap
//! ```
//!
//! Writes `OUT` (pcap, little-endian, microseconds, Ethernet) and `OUT.json`, the sidecar. The
//! same seed and size give byte-identical files (the random numbers come from a xoshiro256**
//! generator written out below, so no crate upgrade can change them).
//!
//! The traffic: clients `10.1.x.y` talk HTTP/1.1 to `api.example.com` at `10.0.0.9:80` over
//! keep-alive connections (64 open at once, interleaved packet by packet, a few tens of
//! microseconds apart), each with a full handshake and FIN teardown, correct checksums and ACK
//! numbers, MSS 1460 segmentation and the request head and body in separate segments. A
//! connection uses one of three API credentials (three scopes) and carries 1 to 15 transactions,
//! one at a time. Per transaction:
//!
//! | share | request | answer | alerts |
//! |---|---|---|---|
//! | 36.5 % | `GET /v1/charges/ch_...` | 200 charge | none |
//! | 55 % | keyed POST `/v1/charges`, `/v1/payment_intents` or `/v1/customers`, unique JSON body of 100 B to 8 KB (log-uniform) | 200 resource | none |
//! | 5 % | plain retry of a completed keyed POST: same key, same body bytes | stored body, `Idempotent-Replayed: true` | none (counted in `retries`) |
//! | 1 % | the key of a completed keyed POST, same path, another amount | 400 `idempotency_error` | `key_conflict` |
//! | 2 % | keyless POST `/v1/charges`, unique body | 200 charge | `missing_key` |
//! | ~0.5 % | a quarter of those keyless POSTs repeated 1 to 10 s later (same credential and bytes) | 200, another charge | `missing_key` + `keyless_duplicate` |
//!
//! 10 % of requests with a body are chunked (2 to 4 chunks), 15 % of responses are chunked, and
//! 10 % of requests use lower-case header names. A retry or a conflict starts only after the
//! exchange of the request it repeats has completed, and never while another request with that
//! key is in flight; keyless POSTs start once a keyed POST to `/v1/charges` has completed (the
//! first transaction of each of the first three connections is one, one per credential).
//! Keyless duplicates still pending when the size is reached are sent at the end, each on a
//! connection of its own, after idle time when they are not due yet.
//!
//! `--tls` (`generate_tls`) sends the same story over TLS 1.3 to `10.0.0.9:443` (SNI
//! `api.example.com`, ALPN `http/1.1`) and writes the NSS key log of every connection
//! (`--keylog`, default `OUT.keys`). The TLS comes from rustls, not from idemwatch: one
//! self-signed certificate a run, a client and a server in memory per connection, three in four
//! resuming a session, a write per request head, request body and response, and each side's
//! close_notify before its FIN. The handshake flights follow the TCP handshake as segments in
//! their direction (MSS pieces, the other side acking every second one), interleaved with other
//! connections. The story's random numbers are drawn exactly as in plaintext mode: each
//! plaintext segment becomes its share of the records (the last one overflowing into more
//! segments), and TLS-only packets take their time and place from a generator of their own, on
//! a capture clock that runs ahead of the story's. So the sidecar is the plaintext one's for the
//! same seed and target except `bytes`, `packets` and `capture_end_us`, plus a `tls` object
//! (`plain_bytes`: the plaintext capture's size, which `--size` counts in both modes). Fresh
//! keys each run: the bytes differ run to run, the story does not.
//!
//! `--h2` (`generate_h2`) sends the same story as HTTP/2 (RFC 9113) with prior knowledge on
//! port 80: after the TCP handshake the client's preface, SETTINGS and WINDOW_UPDATE (curl's
//! values), the server's SETTINGS and WINDOW_UPDATE (nginx's) with its SETTINGS ACK, and the
//! client's ACK; then each transaction is a stream (ids 1, 3, 5... on its connection): the
//! request's HEADERS (with END_STREAM when it has no body), its DATA (one frame per chunk of a
//! body HTTP/1.1 sends chunked, no Content-Length then), the response's HEADERS and DATA, the
//! last frame of each side with END_STREAM. Frames stay within 16 KiB (a longer header block
//! would go on in CONTINUATION frames). The fields are HTTP/1.1's, with lower-case names and
//! `:method`, `:scheme`, `:authority` and `:path` (or `:status`) in front, less Host,
//! Connection and Transfer-Encoding (RFC 9113 §8.2.2). `--h2 --tls` (`generate_h2_tls`)
//! agrees on ALPN `h2` instead and sends the same bytes inside TLS to port 443. Each write of
//! the HTTP/1.1 story becomes its frames, cut into as many segments as that write had (even
//! pieces when the frames are shorter, as the header blocks are), so the story's draws, and
//! with them its transactions, timing and alerts, stay the plaintext mode's; the preface
//! packets take their time from the TLS mode's own generator. The sidecar gains an `h2`
//! object: streams, frames, and the bytes of the header blocks against those of the
//! HTTP/1.1 heads they replace. Without `--tls` the output is deterministic for a seed.
//!
//! The header blocks come from `loona-hpack`'s encoder, one per direction and connection, so
//! its dynamic table (4096 bytes, the default) carries over from stream to stream: a field
//! whose name is in neither table goes in with incremental indexing and comes back as an
//! index (`stripe-version`, `x-stripe-client-user-agent`, the first `idempotency-key`), and
//! fields with a static name go as literals of an indexed name. It never uses Huffman coding.
//! Why it: it is the maintained fork (loona's) of the `hpack` crate, whose last release is
//! from 2016, and it is small (thiserror, tracing). The `h2` crate would be the most
//! realistic encoder (Huffman, its own indexing choices), but its HPACK is private: using it
//! means a tokio runtime and a client and server over an in-memory duplex, with flow control
//! and frame boundaries of its own choosing, in a generator that is synchronous, draw by
//! draw, and must cut each write into the plaintext story's segments.

use std::collections::{HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use idemwatch::http::h2::frame::flags::{ACK as SETTINGS_ACK, END_HEADERS, END_STREAM};
use idemwatch::http::h2::frame::frame_type::{
    CONTINUATION as H2_CONTINUATION, DATA as H2_DATA, HEADERS as H2_HEADERS,
    SETTINGS as H2_SETTINGS, WINDOW_UPDATE as H2_WINDOW_UPDATE,
};
use idemwatch::http::h2::frame::write as h2_write;
use pcapgen::PcapStream;
use pcapgen::frame::{ACK, FIN, PSH, SYN, TcpFrame};
use serde_json::{Value, json};

/// Command-line help.
pub const USAGE: &str = "\
usage: workload [--seed N] (--size SIZE | --transactions N) [--h2] [--tls [--keylog KEYS]]
                --out FILE

Writes FILE, a pcap of payment-API traffic (HTTP/1.1 over TCP/IPv4/Ethernet), and FILE.json,
the ground truth: counts of transactions, retries and the alerts idemwatch must raise.

  --seed N            random seed (default 1); same seed and size give identical bytes
  --size SIZE         stop starting transactions once the file has SIZE bytes; suffixes
                      K, M, G (powers of 1024, optionally followed by B or iB), e.g. 1G
  --transactions N    generate exactly N HTTP transactions instead
  --out FILE          the pcap file to write (the sidecar goes to FILE.json)
  --tls               the same story over TLS 1.3 (rustls) to port 443, SNI api.example.com;
                      fresh keys each run, so the bytes differ run to run (the story does not);
                      --size counts the bytes the plaintext capture would have
  --keylog KEYS       with --tls: the NSS key log of every connection (default FILE.keys)
  --h2                the same story as HTTP/2: prior knowledge on port 80, or with --tls
                      ALPN h2 on port 443; --size counts the bytes HTTP/1.1 would have
  -h, --help          this help";

/// When to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Start no transaction once the file holds this many bytes (open ones finish).
    Bytes(u64),
    /// Exactly this many HTTP transactions.
    Transactions(u64),
}

/// Generates the capture in memory: the pcap bytes and the sidecar.
pub fn generate(seed: u64, target: Target) -> (Vec<u8>, Value) {
    let mut pcap = Vec::new();
    let sidecar = generate_to(seed, target, &mut pcap).expect("writing to memory cannot fail");
    (pcap, sidecar)
}

/// Writes the capture to `out` (buffer it) and returns the sidecar.
pub fn generate_to<W: Write>(seed: u64, target: Target, out: W) -> io::Result<Value> {
    // Classic pcap, little-endian, µs, Ethernet, snaplen 65535.
    let out = PcapStream::ethernet(out, 65535)?;
    let mut g = Gen::<W, io::Sink>::new(seed, target, out, None, false);
    g.run()?;
    let sidecar = g.sidecar();
    g.out.into_inner().flush()?;
    Ok(sidecar)
}

/// The TLS mode in memory: the pcap bytes, the key log and the sidecar.
pub fn generate_tls(seed: u64, target: Target) -> io::Result<(Vec<u8>, Vec<u8>, Value)> {
    let (mut pcap, mut keys) = (Vec::new(), Vec::new());
    let sidecar = generate_tls_to(seed, target, &mut pcap, &mut keys)?;
    Ok((pcap, keys, sidecar))
}

/// The TLS mode: the same story (the same draws, so the same transactions, alerts and
/// connections as the plaintext mode's for this seed and target) over TLS 1.3 to port 443,
/// writing the capture to `out` and every connection's secrets to `keys` (NSS key log).
pub fn generate_tls_to<W: Write, K: Write>(
    seed: u64,
    target: Target,
    out: W,
    keys: K,
) -> io::Result<Value> {
    tls_to(seed, target, false, out, keys)
}

/// The HTTP/2 mode in memory: the pcap bytes and the sidecar.
pub fn generate_h2(seed: u64, target: Target) -> io::Result<(Vec<u8>, Value)> {
    let mut pcap = Vec::new();
    let sidecar = generate_h2_to(seed, target, &mut pcap)?;
    Ok((pcap, sidecar))
}

/// The HTTP/2 mode: the same story as HTTP/2 with prior knowledge on port 80.
pub fn generate_h2_to<W: Write>(seed: u64, target: Target, out: W) -> io::Result<Value> {
    let out = PcapStream::ethernet(out, 65535)?;
    let mut g = Gen::<W, io::Sink>::new(seed, target, out, None, true);
    g.run()?;
    let sidecar = g.sidecar();
    g.out.into_inner().flush()?;
    Ok(sidecar)
}

/// HTTP/2 over TLS 1.3 (ALPN `h2`) in memory: the pcap bytes, the key log and the sidecar.
pub fn generate_h2_tls(seed: u64, target: Target) -> io::Result<(Vec<u8>, Vec<u8>, Value)> {
    let (mut pcap, mut keys) = (Vec::new(), Vec::new());
    let sidecar = tls_to(seed, target, true, &mut pcap, &mut keys)?;
    Ok((pcap, keys, sidecar))
}

/// HTTP/2 over TLS 1.3 (ALPN `h2`), as `generate_tls_to` otherwise.
pub fn generate_h2_tls_to<W: Write, K: Write>(
    seed: u64,
    target: Target,
    out: W,
    keys: K,
) -> io::Result<Value> {
    tls_to(seed, target, true, out, keys)
}

fn tls_to<W: Write, K: Write>(
    seed: u64,
    target: Target,
    h2: bool,
    out: W,
    keys: K,
) -> io::Result<Value> {
    let out = PcapStream::ethernet(out, 65535)?;
    let tls = TlsMode::new(keys, h2)?;
    let mut g = Gen::new(seed, target, out, Some(tls), h2);
    g.run()?;
    let sidecar = g.sidecar();
    g.out.into_inner().flush()?;
    if let Some(mut t) = g.tls {
        t.keys.flush()?;
    }
    Ok(sidecar)
}

// ---------------------------------------------------------------------------------------------
// Random numbers: xoshiro256** seeded through splitmix64.
// ---------------------------------------------------------------------------------------------

/// A small seeded generator (xoshiro256**), fixed here so that output never depends on a
/// crate's version.
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62(r: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| BASE62[r.below(62) as usize] as char)
        .collect()
}

fn uuid_v4(r: &mut Rng) -> String {
    let a = r.next_u64();
    let b = r.next_u64();
    let a = (a & !0xf000) | 0x4000; // version 4
    let b = (b & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

// ---------------------------------------------------------------------------------------------
// The traffic model
// ---------------------------------------------------------------------------------------------

/// 2026-11-28T08:00:00Z, capture time of the first packet, in microseconds.
const START_US: u64 = 1_795_852_800 * 1_000_000;
const SERVER_IP: [u8; 4] = [10, 0, 0, 9];
const SERVER_PORT: u16 = 80;
/// The server's port in TLS mode.
const TLS_PORT: u16 = 443;
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x09];
const MSS: usize = 1460;
const CONCURRENCY: usize = 64;
const CLIENT_HOSTS: usize = 4000;
const HOST: &str = "api.example.com";
const CREDENTIALS: [&str; 3] = [
    "sk_test_51NqKd7LkR2Fv8xTq3mZpA0sWbYcH4uJ9eGiD6oE",
    "sk_test_51PzWm2XcV7nB4aQs8rTyU1iOpL3kJ5hGfD0sA9Z",
    "sk_test_51HbTr6YuI8oP2lKj4hGf7dSa1zXc3vBn5mQw9eR",
];
const PATHS: [&str; 3] = ["/v1/charges", "/v1/payment_intents", "/v1/customers"];
const STRIPE_VERSION: &str = "2024-06-20";
/// Completed keyed requests kept per credential for retries and conflicts.
const POOL_CAP: usize = 4096;

/// Client libraries: (User-Agent, X-Stripe-Client-User-Agent).
const CLIENTS: [(&str, &str); 4] = [
    (
        "Stripe/v1 PythonBindings/7.4.0",
        r#"{"bindings_version": "7.4.0", "lang": "python", "publisher": "stripe", "httplib": "requests", "lang_version": "3.11.6", "platform": "Linux-6.5.0-1017-aws-x86_64-with-glibc2.35"}"#,
    ),
    (
        "Stripe/v1 RubyBindings/10.3.0",
        r#"{"application":null,"bindings_version":"10.3.0","lang":"ruby","lang_version":"3.2.2 p53 (2023-03-30)","platform":"x86_64-linux","engine":"ruby","publisher":"stripe","uname":"Linux app-7 6.1.0 #1 SMP x86_64 GNU/Linux","hostname":"app-7"}"#,
    ),
    (
        "Stripe/v1 NodeBindings/14.12.0",
        r#"{"bindings_version":"14.12.0","lang":"node","lang_version":"v20.10.0","platform":"linux","publisher":"stripe","uname":"Linux web-3 5.15.0-91-generic x86_64","typescript":"false"}"#,
    ),
    (
        "Stripe/v1 GoBindings/76.10.0",
        r#"{"application":null,"bindings_version":"76.10.0","language":"go","language_version":"go1.21.5","publisher":"stripe","uname":"linux amd64"}"#,
    ),
];

/// What decides a request body (so a retry can rebuild the same bytes).
#[derive(Clone, Debug)]
struct BodySpec {
    /// Unique per fresh request: every body is different.
    seq: u64,
    path: usize,
    amount: u64,
    size: usize,
    seed: u64,
}

/// What decides a 200 answer's body (so a replay can rebuild the stored bytes).
#[derive(Clone, Debug)]
struct ResourceSpec {
    path: usize,
    id: String,
    created: u64,
    amount: u64,
    seq: u64,
    seed: u64,
}

/// A keyed POST whose exchange completed: what retries and conflicts repeat.
#[derive(Clone, Debug)]
struct Original {
    key: String,
    body: BodySpec,
    resource: ResourceSpec,
    conflicted: bool,
}

#[derive(Debug)]
enum Plan {
    Get,
    Keyed(usize),
    Retry(Original),
    Conflict(Original),
    Keyless,
    KeylessDup(BodySpec),
}

struct PendingDup {
    cred: usize,
    due: u64,
    body: BodySpec,
}

/// Bookkeeping once the last byte of a response is on the wire.
struct Done {
    cred: usize,
    store: Option<Original>,
    release: Option<u64>,
    learned_charges: bool,
}

struct Seg {
    from_client: bool,
    flags: u8,
    payload: Vec<u8>,
    done: Option<Box<Done>>,
    /// The plaintext mode's payload length (the TLS mode's payload is a record's share).
    plain_len: usize,
    /// TLS mode: packets the plaintext story does not have (handshake flights, close_notify),
    /// due after this one and before the connection's next.
    post: Vec<Seg>,
}

struct Conn {
    client_ip: [u8; 4],
    client_port: u16,
    cred: usize,
    client: usize,
    c_nxt: u32,
    s_nxt: u32,
    c_ipid: u16,
    s_ipid: u16,
    planned: u32,
    done: u32,
    queue: VecDeque<Seg>,
    forced: Option<Plan>,
    closing: bool,
    /// TLS mode: the rustls client and server of this connection.
    tls: Option<Box<TlsPair>>,
    /// TLS mode: TLS-only packets due before the next of `queue`.
    extra: VecDeque<Seg>,
    /// HTTP/2 mode: the connection's HPACK contexts and next stream.
    h2: Option<Box<H2Conn>>,
}

struct Gen<W: Write, K: Write> {
    out: PcapStream<W>,
    tls: Option<TlsMode<K>>,
    /// TLS or HTTP/2 mode: the clock and counts of what the HTTP/1.1 plaintext story lacks.
    shadow: Option<Shadow>,
    /// HTTP/2 mode: counts of what was framed.
    h2: Option<H2Counts>,
    rng: Rng,
    seed: u64,
    target: Target,
    now: u64,
    stopped: bool,
    conns: Vec<Conn>,
    host_ports: Vec<u16>,
    pools: [VecDeque<Original>; 3],
    busy: HashSet<u64>,
    pending_dups: Vec<PendingDup>,
    charges_learned: bool,
    seq: u64,
    frame: Vec<u8>,
    // counts (bytes: those written, `out.bytes()`)
    packets: u64,
    connections: u64,
    transactions: u64,
    with_body: u64,
    retries: u64,
    conflicts: u64,
    keyless: u64,
    dups: u64,
    first_us: u64,
}

impl<W: Write, K: Write> Gen<W, K> {
    fn new(
        seed: u64,
        target: Target,
        out: PcapStream<W>,
        tls: Option<TlsMode<K>>,
        h2: bool,
    ) -> Self {
        let shadow = (tls.is_some() || h2).then(|| Shadow {
            rng: Rng::new(seed ^ 0x544c_5331_335f_6d6f),
            drift: 0,
            plain_bytes: out.bytes(),
        });
        let mut rng = Rng::new(seed);
        let host_ports = (0..CLIENT_HOSTS)
            .map(|_| 32768 + rng.below(20000) as u16)
            .collect();
        Gen {
            out,
            tls,
            shadow,
            h2: h2.then(H2Counts::default),
            rng,
            seed,
            target,
            now: START_US,
            stopped: false,
            conns: Vec::with_capacity(CONCURRENCY),
            host_ports,
            pools: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            busy: HashSet::new(),
            pending_dups: Vec::new(),
            charges_learned: false,
            seq: 0,
            frame: Vec::with_capacity(2048),
            packets: 0,
            connections: 0,
            transactions: 0,
            with_body: 0,
            retries: 0,
            conflicts: 0,
            keyless: 0,
            dups: 0,
            first_us: 0,
        }
    }

    fn sidecar(&self) -> Value {
        let (size_target, tx_target) = match self.target {
            Target::Bytes(b) => (Some(b), None),
            Target::Transactions(n) => (None, Some(n)),
        };
        let missing = self.keyless + self.dups;
        let mut v = json!({
            "seed": self.seed,
            "size_target": size_target,
            "transactions_target": tx_target,
            "bytes": self.out.bytes(),
            "packets": self.packets,
            "connections": self.connections,
            "transactions": self.transactions,
            "requests_with_body": self.with_body,
            "retries": self.retries,
            "capture_start_us": self.first_us,
            "capture_end_us": if self.packets > 0 { self.wire_now() } else { 0 },
            "alerts": {
                "key_conflict": self.conflicts,
                "missing_key": missing,
                "keyless_duplicate": self.dups,
            },
            "total_alerts": self.conflicts + missing + self.dups,
        });
        let plain_bytes = self.shadow.as_ref().map_or(0, |s| s.plain_bytes);
        if let Some(h) = &self.h2 {
            v["h2"] = json!({
                "server_port": self.server_port(),
                "plain_bytes": plain_bytes,
                "streams": h.streams,
                "frames": h.frames,
                "continuation_frames": h.continuation,
                "http1_head_bytes": h.http1_head_bytes,
                "header_block_bytes": h.header_block_bytes,
            });
        }
        if let Some(t) = &self.tls {
            v["tls"] = json!({
                "version": "TLS 1.3",
                "sni": HOST,
                "server_port": TLS_PORT,
                "alpn": if self.h2.is_some() { "h2" } else { "http/1.1" },
                "plain_bytes": plain_bytes,
                "resumed_connections": t.resumed,
                "keylog_lines": t.keylog_lines,
            });
        }
        v
    }

    /// The capture clock: the story's, plus the time the TLS-only and HTTP/2-only packets took.
    fn wire_now(&self) -> u64 {
        self.now + self.shadow.as_ref().map_or(0, |t| t.drift)
    }

    fn server_port(&self) -> u16 {
        if self.tls.is_some() {
            TLS_PORT
        } else {
            SERVER_PORT
        }
    }

    /// What the plaintext mode has written by now: the size target counts that in both modes,
    /// so that they tell the same story.
    fn written(&self) -> u64 {
        self.shadow
            .as_ref()
            .map_or(self.out.bytes(), |t| t.plain_bytes)
    }

    /// Latches once the target is reached: no transaction or connection starts after that.
    fn stop(&mut self) -> bool {
        if !self.stopped {
            self.stopped = match self.target {
                Target::Bytes(b) => self.written() >= b,
                Target::Transactions(n) => self.transactions + self.pending_dups.len() as u64 >= n,
            };
        }
        self.stopped
    }

    fn run(&mut self) -> io::Result<()> {
        let initial = match self.target {
            Target::Transactions(n) => CONCURRENCY.min(n as usize),
            Target::Bytes(_) => CONCURRENCY,
        };
        for i in 0..initial {
            if self.stop() {
                break;
            }
            // The first connection of each credential opens with a keyed POST /v1/charges,
            // so that endpoint is watched before any keyless request.
            if i < CREDENTIALS.len() {
                self.open_conn(i, Some(Plan::Keyed(0)), None)?;
            } else {
                let cred = self.rng.below(3) as usize;
                self.open_conn(cred, None, None)?;
            }
        }
        self.drive()?;

        // Keyless duplicates still pending: each on a connection of its own, when due.
        let mut pending = std::mem::take(&mut self.pending_dups);
        pending.sort_by_key(|d| (d.due, d.body.seq));
        for d in pending {
            self.now = self.now.max(d.due);
            self.open_conn(d.cred, Some(Plan::KeylessDup(d.body)), Some(1))?;
            self.drive()?;
        }
        Ok(())
    }

    fn open_conn(
        &mut self,
        cred: usize,
        forced: Option<Plan>,
        planned: Option<u32>,
    ) -> io::Result<()> {
        let h = self.rng.below(CLIENT_HOSTS as u64) as usize;
        let port = self.host_ports[h];
        self.host_ports[h] = if port >= 60999 { 32768 } else { port + 1 };
        // 1 to 15 transactions, mean about 7.
        let planned =
            planned.unwrap_or_else(|| (1 + (15.0 * self.rng.unit().powf(1.25)) as u32).min(15));
        let mut c = Conn {
            client_ip: [10, 1, 1 + (h / 250) as u8, 1 + (h % 250) as u8],
            client_port: port,
            cred,
            client: self.rng.below(CLIENTS.len() as u64) as usize,
            c_nxt: self.rng.next_u64() as u32,
            s_nxt: self.rng.next_u64() as u32,
            c_ipid: self.rng.next_u64() as u16,
            s_ipid: self.rng.next_u64() as u16,
            planned,
            done: 0,
            queue: VecDeque::new(),
            forced,
            closing: false,
            tls: None,
            extra: VecDeque::new(),
            h2: None,
        };
        c.queue.push_back(seg(true, SYN, Vec::new()));
        c.queue.push_back(seg(false, SYN | ACK, Vec::new()));
        let mut ack = seg(true, ACK, Vec::new());
        if let (Some(t), Some(shadow)) = (&mut self.tls, &mut self.shadow) {
            // The TLS handshake follows the TCP one.
            let (pair, flights) = t.handshake(&mut shadow.rng)?;
            c.tls = Some(Box::new(pair));
            ack.post = flights;
        }
        if self.h2.is_some() {
            // Then HTTP/2's preface and SETTINGS both ways, each side acking the other's.
            for (from_client, bytes) in h2_preface() {
                let wire = match c.tls.as_deref_mut() {
                    Some(p) => seal(p, from_client, &bytes)?,
                    None => bytes,
                };
                ack.post.extend(flight(from_client, &wire));
            }
            c.h2 = Some(Box::new(H2Conn {
                client: loona_hpack::Encoder::new(),
                server: loona_hpack::Encoder::new(),
                next_stream: 1,
            }));
        }
        c.queue.push_back(ack);
        self.conns.push(c);
        self.connections += 1;
        Ok(())
    }

    /// Interleaves the open connections packet by packet until all have closed.
    fn drive(&mut self) -> io::Result<()> {
        while !self.conns.is_empty() {
            self.interleave_tls()?;
            let i = self.rng.below(self.conns.len() as u64) as usize;
            if self.conns[i].queue.is_empty() {
                if self.conns[i].closing {
                    self.flush_extra(i)?;
                    self.conns.swap_remove(i);
                    if !self.stop() {
                        let cred = self.rng.below(3) as usize;
                        self.open_conn(cred, None, None)?;
                    }
                    continue;
                }
                let c = &self.conns[i];
                let more = c.done < c.planned;
                if c.forced.is_some() || (more && !self.stop()) {
                    self.start_transaction(i)?;
                } else {
                    // TLS: each side's close_notify goes before its FIN.
                    let mut client_fin = seg(true, FIN | ACK, Vec::new());
                    client_fin.post = self.close_tls(i)?;
                    let c = &mut self.conns[i];
                    c.queue.push_back(client_fin);
                    c.queue.push_back(seg(false, FIN | ACK, Vec::new()));
                    c.queue.push_back(seg(true, ACK, Vec::new()));
                    c.closing = true;
                }
            }
            self.flush_extra(i)?;
            let s = self.conns[i].queue.pop_front().expect("queue was filled");
            self.emit(i, s)?;
        }
        Ok(())
    }

    /// TLS mode: now and then a connection's TLS-only packet goes out between the story's
    /// packets, as handshakes interleave with other connections on a busy link. Its own random
    /// numbers: the story's draws stay those of the plaintext mode.
    fn interleave_tls(&mut self) -> io::Result<()> {
        let Some(t) = &mut self.shadow else {
            return Ok(());
        };
        let waiting = self.conns.iter().filter(|c| !c.extra.is_empty()).count();
        if waiting == 0 || !t.rng.chance(500) {
            return Ok(());
        }
        let k = t.rng.below(waiting as u64) as usize;
        let i = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.extra.is_empty())
            .nth(k)
            .map(|(i, _)| i);
        if let Some(i) = i {
            self.emit_extra(i)?;
        }
        Ok(())
    }

    /// Writes connection `i`'s next TLS-only packet, if any.
    fn emit_extra(&mut self, i: usize) -> io::Result<bool> {
        let Some(s) = self.conns[i].extra.pop_front() else {
            return Ok(false);
        };
        self.tls_tick();
        self.wire(i, s.from_client, s.flags, &s.payload)?;
        Ok(true)
    }

    /// Writes connection `i`'s TLS-only packets that are due.
    fn flush_extra(&mut self, i: usize) -> io::Result<()> {
        while self.emit_extra(i)? {}
        Ok(())
    }

    /// TLS mode: the time a TLS-only packet takes, on the capture clock only.
    fn tls_tick(&mut self) {
        if let Some(t) = &mut self.shadow {
            t.drift += t.rng.range(10, 60);
        }
    }

    /// TLS mode: the client's close_notify, due now; gives the server's, due after the
    /// client's FIN.
    fn close_tls(&mut self, i: usize) -> io::Result<Vec<Seg>> {
        let Some(p) = self.conns[i].tls.as_deref_mut() else {
            return Ok(Vec::new());
        };
        p.client.send_close_notify();
        let (client, _) = pass(&mut p.client, &mut p.server)?;
        p.server.send_close_notify();
        let (server, _) = pass(&mut p.server, &mut p.client)?;
        self.conns[i].extra.extend(flight(true, &client));
        Ok(flight(false, &server))
    }

    /// `data` written by one side of connection `i`, as segments: MSS pieces in plaintext
    /// mode; in TLS mode the records carrying it, cut into as many pieces (the story's clock
    /// ticks once a piece), the last taking the rest (more segments when it is written).
    ///
    /// `plain` is the HTTP/1.1 write, which decides the pieces; `data` is what goes on the
    /// wire in its place (the same bytes, or in HTTP/2 mode its frames), records and all.
    fn pieces(
        &mut self,
        i: usize,
        from_client: bool,
        plain: &[u8],
        data: &[u8],
    ) -> io::Result<Vec<Piece>> {
        let mut pieces = split(plain);
        let c = &mut self.conns[i];
        if pieces.is_empty() || (c.tls.is_none() && c.h2.is_none()) {
            return Ok(pieces);
        }
        let wire = match c.tls.as_deref_mut() {
            Some(p) => seal(p, from_client, data)?,
            None => data.to_vec(),
        };
        let n = pieces.len();
        if wire.len() > (n - 1) * MSS {
            // MSS pieces, the last taking the rest (the TLS case: records add bytes).
            let mut rest = &wire[..];
            for (k, piece) in pieces.iter_mut().enumerate() {
                let take = if k + 1 == n {
                    rest.len()
                } else {
                    MSS.min(rest.len())
                };
                let (now, later) = rest.split_at(take);
                piece.data = now.to_vec();
                rest = later;
            }
        } else {
            // HTTP/2 compressed the heads: as many pieces, of even sizes.
            let len = wire.len();
            for (k, piece) in pieces.iter_mut().enumerate() {
                piece.data = wire[len * k / n..len * (k + 1) / n].to_vec();
            }
        }
        Ok(pieces)
    }

    fn fresh_body(&mut self, path: usize) -> BodySpec {
        self.seq += 1;
        // Log-uniform between 100 B and 8 KB.
        let size = (100.0 * (self.rng.unit() * (8192.0f64 / 100.0).ln()).exp()) as usize;
        BodySpec {
            seq: self.seq,
            path,
            amount: self.rng.range(50, 500_000),
            size,
            seed: self.rng.next_u64(),
        }
    }

    fn fresh_resource(&mut self, path: usize, amount: u64) -> ResourceSpec {
        self.seq += 1;
        let id = match path {
            0 => format!("ch_3{}", base62(&mut self.rng, 23)),
            1 => format!("pi_3{}", base62(&mut self.rng, 23)),
            _ => format!("cus_{}", base62(&mut self.rng, 14)),
        };
        ResourceSpec {
            path,
            id,
            created: self.now / 1_000_000,
            amount,
            seq: self.seq,
            seed: self.rng.next_u64(),
        }
    }

    /// A completed keyed request of this credential not in flight again (and, for a conflict,
    /// not conflicted yet).
    fn pick_original(&mut self, cred: usize, conflict: bool) -> Option<Original> {
        let n = self.pools[cred].len() as u64;
        if n == 0 {
            return None;
        }
        for _ in 0..4 {
            let i = self.rng.below(n) as usize;
            let o = &self.pools[cred][i];
            if self.busy.contains(&o.body.seq) || (conflict && o.conflicted) {
                continue;
            }
            if conflict {
                self.pools[cred][i].conflicted = true;
            }
            return Some(self.pools[cred][i].clone());
        }
        None
    }

    fn choose_plan(&mut self, cred: usize) -> Plan {
        let due = self
            .pending_dups
            .iter()
            .enumerate()
            .filter(|(_, d)| d.cred == cred && d.due <= self.now)
            .min_by_key(|(_, d)| (d.due, d.body.seq))
            .map(|(i, _)| i);
        if let Some(i) = due {
            return Plan::KeylessDup(self.pending_dups.remove(i).body);
        }
        let r = self.rng.below(1000);
        let keyed_path = |rng: &mut Rng| match rng.below(10) {
            0..=4 => 0,
            5..=7 => 1,
            _ => 2,
        };
        if r < 365 {
            Plan::Get
        } else if r < 915 {
            Plan::Keyed(keyed_path(&mut self.rng))
        } else if r < 965 {
            match self.pick_original(cred, false) {
                Some(o) => Plan::Retry(o),
                None => Plan::Keyed(keyed_path(&mut self.rng)),
            }
        } else if r < 975 {
            match self.pick_original(cred, true) {
                Some(o) => Plan::Conflict(o),
                None => Plan::Keyed(keyed_path(&mut self.rng)),
            }
        } else if r < 995 && self.charges_learned {
            Plan::Keyless
        } else if r < 995 {
            Plan::Keyed(0)
        } else {
            Plan::Get
        }
    }

    fn start_transaction(&mut self, i: usize) -> io::Result<()> {
        let cred = self.conns[i].cred;
        let client = self.conns[i].client;
        let plan = match self.conns[i].forced.take() {
            Some(p) => p,
            None => self.choose_plan(cred),
        };
        self.conns[i].done += 1;
        self.transactions += 1;

        let lower = self.rng.chance(100);
        let mut key: Option<String> = None;
        let mut body: Option<Vec<u8>> = None;
        let path: String;
        let mut done = Done {
            cred,
            store: None,
            release: None,
            learned_charges: false,
        };
        // Response: status, body, replayed marker.
        let (status, resp_body, replayed): (u16, Vec<u8>, bool);
        match plan {
            Plan::Get => {
                let amount = self.rng.range(50, 500_000);
                let res = self.fresh_resource(0, amount);
                path = format!("/v1/charges/{}", res.id);
                (status, resp_body, replayed) = (200, resource_body(&res), false);
            }
            Plan::Keyed(p) => {
                let b = self.fresh_body(p);
                let res = self.fresh_resource(p, b.amount);
                let k = uuid_v4(&mut self.rng);
                path = PATHS[p].to_string();
                body = Some(request_body(&b));
                (status, resp_body, replayed) = (200, resource_body(&res), false);
                done.learned_charges = p == 0;
                done.store = Some(Original {
                    key: k.clone(),
                    body: b,
                    resource: res,
                    conflicted: false,
                });
                key = Some(k);
            }
            Plan::Retry(o) => {
                self.retries += 1;
                self.busy.insert(o.body.seq);
                done.release = Some(o.body.seq);
                path = PATHS[o.body.path].to_string();
                body = Some(request_body(&o.body));
                (status, resp_body, replayed) = (200, resource_body(&o.resource), true);
                key = Some(o.key);
            }
            Plan::Conflict(o) => {
                self.conflicts += 1;
                self.busy.insert(o.body.seq);
                done.release = Some(o.body.seq);
                let mut b = o.body.clone();
                b.amount += self.rng.range(1, 10_000);
                path = PATHS[b.path].to_string();
                body = Some(request_body(&b));
                let err = format!(
                    concat!(
                        r#"{{"error":{{"message":"Keys for idempotent requests can only be used "#,
                        r#"with the same parameters they were first used with. Try using a key "#,
                        r#"other than '{}' if you meant to execute a different request.","#,
                        r#""request_log_url":"https://dashboard.example.com/logs/req_{}","#,
                        r#""type":"idempotency_error"}}}}"#
                    ),
                    o.key,
                    base62(&mut self.rng, 14)
                );
                (status, resp_body, replayed) = (400, err.into_bytes(), false);
                key = Some(o.key);
            }
            Plan::Keyless => {
                self.keyless += 1;
                let b = self.fresh_body(0);
                let res = self.fresh_resource(0, b.amount);
                path = PATHS[0].to_string();
                body = Some(request_body(&b));
                (status, resp_body, replayed) = (200, resource_body(&res), false);
                let room = match self.target {
                    Target::Transactions(n) => {
                        self.transactions + (self.pending_dups.len() as u64) < n
                    }
                    Target::Bytes(_) => true,
                };
                if room && self.rng.chance(250) {
                    let due = self.now + self.rng.range(1_000_000, 9_900_000);
                    self.pending_dups.push(PendingDup { cred, due, body: b });
                }
            }
            Plan::KeylessDup(b) => {
                self.dups += 1;
                let res = self.fresh_resource(0, b.amount);
                path = PATHS[0].to_string();
                body = Some(request_body(&b));
                (status, resp_body, replayed) = (200, resource_body(&res), false);
            }
        }

        // Request head and body.
        let method = if body.is_some() { "POST" } else { "GET" };
        let chunked_req = body.is_some() && self.rng.chance(100);
        let auth = format!("Bearer {}", CREDENTIALS[cred]);
        let (ua, xua) = CLIENTS[client];
        let mut headers: Vec<(&str, String)> = vec![
            ("Host", HOST.to_string()),
            ("User-Agent", ua.to_string()),
            ("Accept", "*/*".to_string()),
            ("Connection", "keep-alive".to_string()),
            ("Authorization", auth),
            ("Stripe-Version", STRIPE_VERSION.to_string()),
            ("X-Stripe-Client-User-Agent", xua.to_string()),
        ];
        if let Some(k) = &key {
            headers.push(("Idempotency-Key", k.clone()));
        }
        // Where chunked bodies are cut: HTTP/2 sends those parts as DATA frames of their own.
        let mut req_cuts = None;
        let framed_req = match &body {
            Some(b) => {
                headers.push(("Content-Type", "application/json".to_string()));
                if chunked_req {
                    headers.push(("Transfer-Encoding", "chunked".to_string()));
                    let n = self.rng.range(2, 4) as usize;
                    let cuts = cut_points(&mut self.rng, b.len(), n);
                    let framed = chunked(b, &cuts);
                    req_cuts = Some(cuts);
                    framed
                } else {
                    headers.push(("Content-Length", b.len().to_string()));
                    b.clone()
                }
            }
            None => Vec::new(),
        };
        if body.is_some() {
            self.with_body += 1;
        }
        let req_head = head(&format!("{method} {path} HTTP/1.1"), &headers, lower);

        // Response.
        let reason = if status == 200 { "OK" } else { "Bad Request" };
        let mut rh: Vec<(&str, String)> = vec![
            ("Server", "nginx".to_string()),
            ("Date", http_date(self.now / 1_000_000)),
            ("Content-Type", "application/json".to_string()),
        ];
        let chunked_resp = self.rng.chance(150);
        let mut resp_cuts = None;
        let resp_framed = if chunked_resp {
            rh.push(("Transfer-Encoding", "chunked".to_string()));
            let n = self.rng.range(1, 3) as usize;
            let cuts = cut_points(&mut self.rng, resp_body.len(), n);
            let framed = chunked(&resp_body, &cuts);
            resp_cuts = Some(cuts);
            framed
        } else {
            rh.push(("Content-Length", resp_body.len().to_string()));
            resp_body.clone()
        };
        rh.push(("Connection", "keep-alive".to_string()));
        rh.push(("Access-Control-Allow-Origin", "*".to_string()));
        rh.push(("Cache-Control", "no-cache, no-store".to_string()));
        if let Some(k) = &key {
            rh.push(("Idempotency-Key", k.clone()));
        }
        if replayed {
            rh.push(("Idempotent-Replayed", "true".to_string()));
        }
        rh.push(("Request-Id", format!("req_{}", base62(&mut self.rng, 14))));
        rh.push(("Stripe-Version", STRIPE_VERSION.to_string()));
        rh.push((
            "Strict-Transport-Security",
            "max-age=63072000; includeSubDomains; preload".to_string(),
        ));
        let mut resp = head(&format!("HTTP/1.1 {status} {reason}"), &rh, false);
        resp.extend_from_slice(&resp_framed);

        // HTTP/2 mode: the same exchange as one stream's frames, the same three writes.
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let (h2_head, h2_body, h2_resp) = match self.conns[i].h2.as_deref_mut() {
            None => (req_head.clone(), framed_req.clone(), resp.clone()),
            Some(h) => {
                let counts = self.h2.get_or_insert_with(H2Counts::default);
                let stream = h.next_stream;
                h.next_stream += 2;
                counts.streams += 1;
                let pseudo = [
                    (":method", method),
                    (":scheme", scheme),
                    (":authority", HOST),
                    (":path", path.as_str()),
                ];
                let block = hpack(&mut h.client, &h2_fields(&pseudo, &headers));
                counts.http1_head_bytes += req_head.len() as u64;
                counts.header_block_bytes += block.len() as u64;
                let mut h2_head = Vec::with_capacity(block.len() + 9);
                counts.count(h2_headers(&mut h2_head, stream, &block, body.is_none()));
                let mut h2_body = Vec::new();
                if let Some(b) = &body {
                    counts.count(h2_data(&mut h2_body, stream, b, req_cuts.as_deref()));
                }
                let status = status.to_string();
                let block = hpack(&mut h.server, &h2_fields(&[(":status", &status)], &rh));
                counts.http1_head_bytes += (resp.len() - resp_framed.len()) as u64;
                counts.header_block_bytes += block.len() as u64;
                let mut h2_resp = Vec::with_capacity(block.len() + resp_body.len() + 32);
                counts.count(h2_headers(
                    &mut h2_resp,
                    stream,
                    &block,
                    resp_body.is_empty(),
                ));
                counts.count(h2_data(
                    &mut h2_resp,
                    stream,
                    &resp_body,
                    resp_cuts.as_deref(),
                ));
                (h2_head, h2_body, h2_resp)
            }
        };

        // Segments: head and body as two writes; the server acks every second segment and
        // sometimes on its delayed-ACK timer; the client likewise for the response.
        let mut client_segs = self.pieces(i, true, &req_head, &h2_head)?;
        client_segs.extend(self.pieces(i, true, &framed_req, &h2_body)?);
        let server_segs = self.pieces(i, false, &resp, &h2_resp)?;
        let n = client_segs.len();
        let ack_every_other = |k: usize, n: usize| (k + 1).is_multiple_of(2) && k + 1 < n;
        let server_delayed_ack = self.rng.chance(300);
        let client_final_ack = self.rng.chance(600);
        let q = &mut self.conns[i].queue;
        for (k, s) in client_segs.into_iter().enumerate() {
            q.push_back(s.into_seg(true));
            if ack_every_other(k, n) {
                q.push_back(seg(false, ACK, Vec::new()));
            }
        }
        if server_delayed_ack {
            q.push_back(seg(false, ACK, Vec::new()));
        }
        let n = server_segs.len();
        let mut done = Some(Box::new(done));
        for (k, s) in server_segs.into_iter().enumerate() {
            let mut sg = s.into_seg(false);
            if k + 1 == n {
                sg.done = done.take();
            }
            q.push_back(sg);
            if ack_every_other(k, n) {
                q.push_back(seg(true, ACK, Vec::new()));
            }
        }
        if client_final_ack {
            q.push_back(seg(true, ACK, Vec::new()));
        }
        Ok(())
    }

    fn finish_exchange(&mut self, d: Done) {
        if let Some(seq) = d.release {
            self.busy.remove(&seq);
        }
        if let Some(o) = d.store {
            let pool = &mut self.pools[d.cred];
            if pool.len() == POOL_CAP {
                pool.pop_front();
            }
            pool.push_back(o);
        }
        if d.learned_charges {
            self.charges_learned = true;
        }
    }

    /// One packet of the story: its time on the story's clock, then the packet (in TLS mode,
    /// as many as its records need), then what it completes.
    fn emit(&mut self, i: usize, s: Seg) -> io::Result<()> {
        self.now += self.rng.range(10, 60);
        let Seg {
            from_client,
            flags,
            payload,
            done,
            plain_len,
            post,
        } = s;
        if let Some(t) = &mut self.shadow {
            // Record header, Ethernet, IPv4, TCP (and MSS option) and payload.
            let options = if flags & SYN != 0 { 4 } else { 0 };
            t.plain_bytes += (16 + 14 + 20 + 20 + options + plain_len) as u64;
        }
        if payload.len() <= MSS {
            self.wire(i, from_client, flags, &payload)?;
        } else {
            let n = payload.len().div_ceil(MSS);
            for (k, part) in payload.chunks(MSS).enumerate() {
                if k > 0 {
                    self.tls_tick();
                }
                let f = if k + 1 == n { flags } else { ACK };
                self.wire(i, from_client, f, part)?;
            }
        }
        self.conns[i].extra.extend(post);
        if let Some(d) = done {
            self.finish_exchange(*d);
        }
        Ok(())
    }

    /// Writes one packet of connection `i` at the capture clock.
    fn wire(&mut self, i: usize, from_client: bool, flags: u8, payload: &[u8]) -> io::Result<()> {
        let now = self.wire_now();
        if self.packets == 0 {
            self.first_us = now;
        }
        let server_port = self.server_port();
        let c = &mut self.conns[i];
        let (src, dst, sport, dport, seq, ack, ipid, window) = if from_client {
            c.c_ipid = c.c_ipid.wrapping_add(1);
            let v = (c.client_ip, SERVER_IP, c.client_port, server_port);
            (v.0, v.1, v.2, v.3, c.c_nxt, c.s_nxt, c.c_ipid, 64240u16)
        } else {
            c.s_ipid = c.s_ipid.wrapping_add(1);
            let v = (SERVER_IP, c.client_ip, server_port, c.client_port);
            (v.0, v.1, v.2, v.3, c.s_nxt, c.c_nxt, c.s_ipid, 65160u16)
        };
        let ack = if flags & ACK != 0 { ack } else { 0 };
        let syn = flags & SYN != 0;
        let consumed = payload.len() as u32 + u32::from(syn) + u32::from(flags & FIN != 0);
        if from_client {
            c.c_nxt = c.c_nxt.wrapping_add(consumed);
        } else {
            c.s_nxt = c.s_nxt.wrapping_add(consumed);
        }

        let (dst_mac, src_mac) = if from_client {
            (SERVER_MAC, CLIENT_MAC)
        } else {
            (CLIENT_MAC, SERVER_MAC)
        };
        // MSS 1460 on the handshake.
        let options: &[u8] = if syn { &[2, 4, 0x05, 0xb4] } else { &[] };
        TcpFrame {
            src_mac,
            dst_mac,
            src,
            dst,
            ip_id: ipid,
            src_port: sport,
            dst_port: dport,
            seq,
            ack,
            flags,
            window,
            options,
        }
        .write(&mut self.frame, payload)?;
        self.out.write_us(now, &self.frame)?;
        self.packets += 1;
        Ok(())
    }
}

fn seg(from_client: bool, flags: u8, payload: Vec<u8>) -> Seg {
    Seg {
        from_client,
        flags,
        plain_len: payload.len(),
        payload,
        done: None,
        post: Vec::new(),
    }
}

/// One MSS-sized piece of a write; `last` ends the write (PSH).
struct Piece {
    data: Vec<u8>,
    last: bool,
    /// The plaintext piece's length (TLS mode: `data` is a share of the records instead).
    plain_len: usize,
}

impl Piece {
    fn into_seg(self, from_client: bool) -> Seg {
        let flags = if self.last { PSH | ACK } else { ACK };
        let mut s = seg(from_client, flags, self.data);
        s.plain_len = self.plain_len;
        s
    }
}

fn split(data: &[u8]) -> Vec<Piece> {
    let n = data.len().div_ceil(MSS);
    data.chunks(MSS)
        .enumerate()
        .map(|(k, c)| Piece {
            data: c.to_vec(),
            last: k + 1 == n,
            plain_len: c.len(),
        })
        .collect()
}

/// A TLS flight as segments of its side, the other side acking every second one.
fn flight(from_client: bool, bytes: &[u8]) -> Vec<Seg> {
    let pieces = split(bytes);
    let n = pieces.len();
    let mut out = Vec::with_capacity(n + n / 2);
    for (k, p) in pieces.into_iter().enumerate() {
        out.push(p.into_seg(from_client));
        if (k + 1).is_multiple_of(2) && k + 1 < n {
            out.push(seg(!from_client, ACK, Vec::new()));
        }
    }
    out
}

fn head(first: &str, headers: &[(&str, String)], lower: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(768);
    h.extend_from_slice(first.as_bytes());
    h.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if lower {
            h.extend_from_slice(name.to_ascii_lowercase().as_bytes());
        } else {
            h.extend_from_slice(name.as_bytes());
        }
        h.extend_from_slice(b": ");
        h.extend_from_slice(value.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// Where to cut a body of `len` bytes into (up to) `n` chunks, at random points: the
/// boundaries, 0 and `len` included, ascending.
fn cut_points(rng: &mut Rng, len: usize, n: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (1..n)
        .map(|_| rng.range(1, len.max(2) as u64 - 1) as usize)
        .collect();
    cuts.push(0);
    cuts.push(len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// `body` in chunks (chunked transfer coding), cut at `cuts` (from `cut_points`).
fn chunked(body: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16 * cuts.len() + 5);
    for w in cuts.windows(2) {
        let part = &body[w[0]..w[1]];
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Random lower-case words (and spaces) of exactly `n` bytes.
fn filler(r: &mut Rng, n: usize, out: &mut Vec<u8>) {
    const TABLE: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz e ta ";
    let mut left = n;
    while left > 0 {
        let mut v = r.next_u64();
        for _ in 0..left.min(8) {
            out.push(TABLE[(v & 31) as usize]);
            v >>= 8;
        }
        left -= left.min(8);
    }
}

/// The JSON request body of `b`: unique per `seq`, about `size` bytes.
fn request_body(b: &BodySpec) -> Vec<u8> {
    let mut r = Rng::new(b.seed);
    let customer = base62(&mut r, 14);
    let prefix = match b.path {
        0 => format!(
            r#"{{"amount":{},"currency":"usd","customer":"cus_{}","source":"tok_visa","capture":true,"metadata":{{"order_id":"ord_{}","seq":{}}},"description":""#,
            b.amount,
            customer,
            b.seed % 100_000_000,
            b.seq
        ),
        1 => format!(
            r#"{{"amount":{},"currency":"eur","customer":"cus_{}","payment_method_types":["card"],"confirm":false,"metadata":{{"cart":"cart_{}","seq":{}}},"description":""#,
            b.amount,
            customer,
            b.seed % 100_000_000,
            b.seq
        ),
        _ => format!(
            r#"{{"email":"user{}@example.com","name":"Customer {}","balance":{},"preferred_locales":["en"],"metadata":{{"seq":{}}},"description":""#,
            b.seq, customer, b.amount, b.seq
        ),
    };
    let suffix = "\"}";
    let mut out = Vec::with_capacity(b.size.max(prefix.len() + 2));
    out.extend_from_slice(prefix.as_bytes());
    let pad = b.size.saturating_sub(prefix.len() + suffix.len());
    filler(&mut r, pad, &mut out);
    out.extend_from_slice(suffix.as_bytes());
    out
}

/// The JSON body of a 200 answer describing resource `s`.
fn resource_body(s: &ResourceSpec) -> Vec<u8> {
    let mut r = Rng::new(s.seed);
    let customer = base62(&mut r, 14);
    let s = match s.path {
        0 => format!(
            r#"{{"id":"{}","object":"charge","amount":{},"amount_captured":{},"amount_refunded":0,"balance_transaction":"txn_3{}","billing_details":{{"address":{{"city":null,"country":"US","line1":null,"line2":null,"postal_code":"{:05}","state":null}},"email":null,"name":null,"phone":null}},"captured":true,"created":{},"currency":"usd","customer":"cus_{}","description":null,"livemode":false,"metadata":{{"order_id":"ord_{}"}},"outcome":{{"network_status":"approved_by_network","reason":null,"risk_level":"normal","risk_score":{},"seller_message":"Payment complete.","type":"authorized"}},"paid":true,"payment_method":"pm_1{}","refunded":false,"status":"succeeded"}}"#,
            s.id,
            s.amount,
            s.amount,
            base62(&mut r, 23),
            r.below(100_000),
            s.created,
            customer,
            s.seq,
            r.below(100),
            base62(&mut r, 23)
        ),
        1 => format!(
            r#"{{"id":"{}","object":"payment_intent","amount":{},"amount_received":0,"capture_method":"automatic","client_secret":"{}_secret_{}","created":{},"currency":"eur","customer":"cus_{}","livemode":false,"metadata":{{"seq":"{}"}},"payment_method_types":["card"],"status":"requires_payment_method"}}"#,
            s.id,
            s.amount,
            s.id,
            base62(&mut r, 25),
            s.created,
            customer,
            s.seq
        ),
        _ => format!(
            r#"{{"id":"{}","object":"customer","balance":{},"created":{},"currency":null,"delinquent":false,"email":"user{}@example.com","invoice_prefix":"{}","invoice_settings":{{"custom_fields":null,"default_payment_method":null,"footer":null,"rendering_options":null}},"livemode":false,"metadata":{{}},"phone":null,"preferred_locales":["en"],"shipping":null,"tax_exempt":"none"}}"#,
            s.id,
            s.amount,
            s.created,
            s.seq,
            base62(&mut r, 8).to_ascii_uppercase()
        ),
    };
    s.into_bytes()
}

/// RFC 9110 IMF-fixdate of a Unix time.
fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------
// TLS mode
// ---------------------------------------------------------------------------------------------

/// The TLS mode's parts: one certificate and configuration pair per run, the key log, and the
/// clock and counts of what the plaintext story does not have.
struct TlsMode<K: Write> {
    /// A client with a session cache, and one without (a process that just started).
    client: Arc<rustls::ClientConfig>,
    fresh_client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    log: Arc<KeyLogLines>,
    keys: K,
    resumed: u64,
    keylog_lines: u64,
}

/// One connection's two ends, in memory.
struct TlsPair {
    client: rustls::ClientConnection,
    server: rustls::ServerConnection,
}

impl<K: Write> TlsMode<K> {
    /// A self-signed certificate for `HOST`, and a client trusting it that logs its secrets
    /// (rustls, with ring: an implementation independent of idemwatch's decryption).
    /// ALPN `h2` with `h2`, else `http/1.1`.
    fn new(keys: K, h2: bool) -> io::Result<Self> {
        let cert =
            rcgen::generate_simple_self_signed(vec![HOST.to_string()]).map_err(io::Error::other)?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(tls13)
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .map_err(io::Error::other)?;
        let alpn: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
        server.alpn_protocols = vec![alpn.to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(cert.cert.der().clone())
            .map_err(io::Error::other)?;
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(tls13)
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![alpn.to_vec()];
        let log = Arc::new(KeyLogLines::default());
        client.key_log = log.clone();
        let mut fresh_client = client.clone();
        fresh_client.resumption = rustls::client::Resumption::disabled();
        Ok(TlsMode {
            client: Arc::new(client),
            fresh_client: Arc::new(fresh_client),
            server: Arc::new(server),
            log,
            keys,
            resumed: 0,
            keylog_lines: 0,
        })
    }

    /// A new connection's handshake, run to its end in memory: the pair, and the flights as
    /// segments (ClientHello; the server's flight; the client's Finished; the tickets).
    /// Three connections in four resume a session from rustls's cache, as a long-running
    /// client library's do; the others make a full handshake (certificate and all).
    fn handshake(&mut self, rng: &mut Rng) -> io::Result<(TlsPair, Vec<Seg>)> {
        let name = rustls::pki_types::ServerName::try_from(HOST).map_err(io::Error::other)?;
        let config = if rng.chance(250) {
            self.fresh_client.clone()
        } else {
            self.client.clone()
        };
        let mut p = TlsPair {
            client: rustls::ClientConnection::new(config, name).map_err(io::Error::other)?,
            server: rustls::ServerConnection::new(self.server.clone()).map_err(io::Error::other)?,
        };
        let mut segs = Vec::new();
        for _ in 0..8 {
            let (c, _) = pass(&mut p.client, &mut p.server)?;
            segs.extend(flight(true, &c));
            let (s, _) = pass(&mut p.server, &mut p.client)?;
            segs.extend(flight(false, &s));
            if c.is_empty() && s.is_empty() {
                break;
            }
        }
        if p.client.is_handshaking() || p.server.is_handshaking() {
            return Err(io::Error::other("the TLS handshake did not finish"));
        }
        if p.client.alpn_protocol() != p.server.alpn_protocol()
            || p.client.alpn_protocol().is_none()
        {
            return Err(io::Error::other("ALPN was not agreed"));
        }
        if p.client.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            self.resumed += 1;
        }
        // The secrets of this connection, out to the key log now.
        let lines = std::mem::take(
            &mut *self
                .log
                .0
                .lock()
                .map_err(|_| io::Error::other("key log lock"))?,
        );
        self.keylog_lines += lines.iter().filter(|&&b| b == b'\n').count() as u64;
        self.keys.write_all(&lines)?;
        Ok((p, segs))
    }
}

/// Moves what `from` has to write to `to`, which takes it in: the bytes on the wire, and the
/// plaintext `to` read from them.
fn pass<A, B>(
    from: &mut rustls::ConnectionCommon<A>,
    to: &mut rustls::ConnectionCommon<B>,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire)?;
    }
    let mut plain = Vec::new();
    let mut rest = &wire[..];
    while !rest.is_empty() {
        if to.read_tls(&mut rest)? == 0 {
            return Err(io::Error::other("the TLS peer took no bytes"));
        }
        to.process_new_packets().map_err(io::Error::other)?;
        match to.reader().read_to_end(&mut plain) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok((wire, plain))
}

/// The client's secrets as NSS key-log lines (`LABEL <client random> <secret>`, hex).
#[derive(Debug, Default)]
struct KeyLogLines(Mutex<Vec<u8>>);

impl rustls::KeyLog for KeyLogLines {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        use std::fmt::Write as _;
        let mut line =
            String::with_capacity(label.len() + 2 * (client_random.len() + secret.len()) + 3);
        line.push_str(label);
        line.push(' ');
        for b in client_random {
            let _ = write!(line, "{b:02x}");
        }
        line.push(' ');
        for b in secret {
            let _ = write!(line, "{b:02x}");
        }
        line.push('\n');
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(line.as_bytes());
        }
    }
}

/// Writes `data` from one side of a TLS connection to the other: the records on the wire.
fn seal(p: &mut TlsPair, from_client: bool, data: &[u8]) -> io::Result<Vec<u8>> {
    let (wire, plain) = if from_client {
        p.client.writer().write_all(data)?;
        pass(&mut p.client, &mut p.server)?
    } else {
        p.server.writer().write_all(data)?;
        pass(&mut p.server, &mut p.client)?
    };
    if plain != data {
        return Err(io::Error::other(
            "the TLS peer read other bytes than were sent",
        ));
    }
    Ok(wire)
}

// ---------------------------------------------------------------------------------------------
// TLS and HTTP/2 modes: what the HTTP/1.1 plaintext story lacks
// ---------------------------------------------------------------------------------------------

/// The clock and counts of the packets the plaintext story does not have (handshakes,
/// prefaces, close_notify), kept apart so that the story's draws stay the plaintext mode's.
struct Shadow {
    /// Timing and interleaving of those packets: a generator of its own.
    rng: Rng,
    /// Microseconds those packets have added to the story's clock.
    drift: u64,
    /// What the plaintext mode would have written so far.
    plain_bytes: u64,
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 mode (RFC 9113)
// ---------------------------------------------------------------------------------------------

/// The largest frame payload either side sends: SETTINGS_MAX_FRAME_SIZE's default and the
/// server's stated value (RFC 9113 §6.5.2).
pub const H2_MAX_FRAME: usize = 16_384;

/// One connection's HTTP/2 state: an HPACK encoder per direction (each with its dynamic
/// table, 4096 bytes, the default SETTINGS_HEADER_TABLE_SIZE) and the next client stream.
struct H2Conn {
    client: loona_hpack::Encoder<'static>,
    server: loona_hpack::Encoder<'static>,
    next_stream: u32,
}

#[derive(Default)]
struct H2Counts {
    streams: u64,
    frames: u64,
    continuation: u64,
    /// The HTTP/1.1 heads these header blocks stand for, and the blocks.
    http1_head_bytes: u64,
    header_block_bytes: u64,
}

impl H2Counts {
    fn count(&mut self, f: Framed) {
        self.frames += f.frames;
        self.continuation += f.continuation;
    }
}

/// Frames written by `h2_headers` or `h2_data`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framed {
    pub frames: u64,
    pub continuation: u64,
}

/// A header block on `stream`: one HEADERS frame, or HEADERS and CONTINUATION frames when
/// it exceeds the frame size (RFC 9113 §6.10; END_STREAM belongs on the HEADERS frame).
pub fn h2_headers(out: &mut Vec<u8>, stream: u32, block: &[u8], end_stream: bool) -> Framed {
    let mut parts = block.chunks(H2_MAX_FRAME);
    let first = parts.next().unwrap_or(&[]);
    let n = block.len().div_ceil(H2_MAX_FRAME).max(1);
    let es = if end_stream { END_STREAM } else { 0 };
    let eh = if n == 1 { END_HEADERS } else { 0 };
    h2_write(out, H2_HEADERS, es | eh, stream, first);
    for (k, part) in parts.enumerate() {
        let eh = if k + 2 == n { END_HEADERS } else { 0 };
        h2_write(out, H2_CONTINUATION, eh, stream, part);
    }
    Framed {
        frames: n as u64,
        continuation: n as u64 - 1,
    }
}

/// A body on `stream` as DATA frames, the last with END_STREAM: one part per chunk of the
/// HTTP/1.1 chunked coding when `cuts` is given (from `cut_points`), each cut to the frame
/// size.
pub fn h2_data(out: &mut Vec<u8>, stream: u32, body: &[u8], cuts: Option<&[usize]>) -> Framed {
    let whole = [0, body.len()];
    let cuts = cuts.unwrap_or(&whole);
    let mut frames: Vec<&[u8]> = Vec::new();
    for w in cuts.windows(2) {
        if let Some(part) = body.get(w[0]..w[1]) {
            frames.extend(part.chunks(H2_MAX_FRAME));
        }
    }
    if frames.is_empty() {
        frames.push(&[]);
    }
    let n = frames.len();
    for (k, f) in frames.into_iter().enumerate() {
        let es = if k + 1 == n { END_STREAM } else { 0 };
        h2_write(out, H2_DATA, es, stream, f);
    }
    Framed {
        frames: n as u64,
        continuation: 0,
    }
}

/// A field list for the HPACK encoder: the pseudo-header fields, then the HTTP/1.1 fields
/// with lower-case names (RFC 9113 §8.2.1) less the connection-specific ones (§8.2.2) and
/// Host (`:authority` says it).
fn h2_fields(pseudo: &[(&str, &str)], fields: &[(&str, String)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    const DROPPED: [&str; 5] = [
        "host",
        "connection",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
    ];
    pseudo
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .chain(
            fields
                .iter()
                .filter(|(n, _)| !DROPPED.iter().any(|d| n.eq_ignore_ascii_case(d)))
                .map(|(n, v)| (n.to_ascii_lowercase().into_bytes(), v.as_bytes().to_vec())),
        )
        .collect()
}

/// Encodes `fields` with `encoder`, whose dynamic table carries over from block to block.
fn hpack(encoder: &mut loona_hpack::Encoder<'static>, fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    encoder.encode(fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
}

/// The connection's opening, as three writes: the client's preface, SETTINGS and
/// WINDOW_UPDATE (curl's values); the server's SETTINGS and WINDOW_UPDATE (nginx's) and its
/// ACK of the client's SETTINGS; the client's ACK of the server's.
fn h2_preface() -> [(bool, Vec<u8>); 3] {
    let settings = |pairs: &[(u16, u32)]| {
        let mut p = Vec::with_capacity(6 * pairs.len());
        for (id, v) in pairs {
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&v.to_be_bytes());
        }
        p
    };
    let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE 10 MiB, ENABLE_PUSH 0.
    let s = settings(&[(0x3, 100), (0x4, 10 << 20), (0x2, 0)]);
    h2_write(&mut client, H2_SETTINGS, 0, 0, &s);
    h2_write(
        &mut client,
        H2_WINDOW_UPDATE,
        0,
        0,
        &1_048_510_465u32.to_be_bytes(),
    );
    let mut server = Vec::new();
    // MAX_CONCURRENT_STREAMS 128, INITIAL_WINDOW_SIZE 65536, MAX_FRAME_SIZE 16384.
    let s = settings(&[(0x3, 128), (0x4, 65_536), (0x5, H2_MAX_FRAME as u32)]);
    h2_write(&mut server, H2_SETTINGS, 0, 0, &s);
    h2_write(
        &mut server,
        H2_WINDOW_UPDATE,
        0,
        0,
        &2_147_418_112u32.to_be_bytes(),
    );
    h2_write(&mut server, H2_SETTINGS, SETTINGS_ACK, 0, &[]);
    let mut ack = Vec::new();
    h2_write(&mut ack, H2_SETTINGS, SETTINGS_ACK, 0, &[]);
    [(true, client), (false, server), (true, ack)]
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

/// Parses `1G`, `500M`, `64KiB`, `1000` (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let stem = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, mult) = match stem.chars().last()? {
        'k' => (&stem[..stem.len() - 1], 1u64 << 10),
        'm' => (&stem[..stem.len() - 1], 1 << 20),
        'g' => (&stem[..stem.len() - 1], 1 << 30),
        't' => (&stem[..stem.len() - 1], 1 << 40),
        _ => (stem, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

struct Args {
    seed: u64,
    target: Target,
    out: String,
    /// `--tls`: the key log's path.
    keylog: Option<String>,
    h2: bool,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut seed = 1u64;
    let mut size = None;
    let mut transactions = None;
    let mut out = None;
    let mut tls = false;
    let mut h2 = false;
    let mut keylog = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        if name == "-h" || name == "--help" {
            return Err(String::new());
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name {
            "--seed" => {
                let v = value()?;
                seed = v.parse().map_err(|_| format!("bad seed: {v}"))?;
            }
            "--size" => {
                let v = value()?;
                size = Some(parse_size(&v).ok_or_else(|| format!("bad size: {v}"))?);
            }
            "--transactions" => {
                let v = value()?;
                transactions = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("bad transaction count: {v}"))?,
                );
            }
            "--out" | "-o" => out = Some(value()?),
            "--tls" if inline.is_none() => tls = true,
            "--h2" if inline.is_none() => h2 = true,
            "--keylog" => keylog = Some(value()?),
            _ => return Err(format!("unknown argument: {a}")),
        }
    }
    let target = match (size, transactions) {
        (Some(b), None) => Target::Bytes(b),
        (None, Some(n)) => Target::Transactions(n),
        (None, None) => return Err("give --size or --transactions".into()),
        (Some(_), Some(_)) => return Err("give --size or --transactions, not both".into()),
    };
    let out: String = out.ok_or("--out is required")?;
    let keylog = match (tls, keylog) {
        (true, k) => Some(k.unwrap_or_else(|| format!("{out}.keys"))),
        (false, None) => None,
        (false, Some(_)) => return Err("--keylog goes with --tls".into()),
    };
    Ok(Args {
        seed,
        target,
        out,
        keylog,
        h2,
    })
}

fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("workload: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let result = (|| -> io::Result<Value> {
        let file = std::fs::File::create(&args.out)?;
        let mut w = io::BufWriter::with_capacity(1 << 20, file);
        let sidecar = match &args.keylog {
            None if args.h2 => generate_h2_to(args.seed, args.target, &mut w)?,
            None => generate_to(args.seed, args.target, &mut w)?,
            Some(k) => {
                // Readable by its owner only: idemwatch warns about key logs others can read.
                let mut file = std::fs::OpenOptions::new();
                file.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
                let keys = io::BufWriter::new(file.open(k)?);
                if args.h2 {
                    generate_h2_tls_to(args.seed, args.target, &mut w, keys)?
                } else {
                    generate_tls_to(args.seed, args.target, &mut w, keys)?
                }
            }
        };
        w.flush()?;
        let mut text = serde_json::to_string_pretty(&sidecar).expect("JSON of a Value");
        text.push('\n');
        std::fs::write(format!("{}.json", args.out), text)?;
        Ok(sidecar)
    })();
    match result {
        Ok(s) => {
            eprintln!(
                "workload: wrote {} ({} bytes, {} packets, {} connections, {} transactions, {} alerts expected) and {}.json in {:.2} s",
                args.out,
                s["bytes"],
                s["packets"],
                s["connections"],
                s["transactions"],
                s["total_alerts"],
                args.out,
                started.elapsed().as_secs_f64()
            );
            if args.h2 {
                eprintln!(
                    "workload: HTTP/2, {} streams in {} frames; header blocks {} bytes for {} bytes of HTTP/1.1 heads",
                    s["h2"]["streams"],
                    s["h2"]["frames"],
                    s["h2"]["header_block_bytes"],
                    s["h2"]["http1_head_bytes"]
                );
            }
            if let Some(k) = &args.keylog {
                eprintln!(
                    "workload: TLS 1.3, {} of {} connections resumed; key log {k} ({} lines)",
                    s["tls"]["resumed_connections"], s["connections"], s["tls"]["keylog_lines"]
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("workload: {}: {e}", args.out);
            ExitCode::from(1)
        }
    }
}
