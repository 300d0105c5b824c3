//! One connection's HTTP, whichever version it speaks: HTTP/1.1 until HTTP/2 shows itself.
//!
//! HTTP/2 is found three ways (RFC 9113 section 3): the client's first bytes are the
//! connection preface (prior knowledge, on any port); an HTTP/1.1 request offering
//! `Upgrade: h2c` is answered 101 (the request becomes stream 1); or TLS chose `h2` by ALPN
//! (`tls::stage` says so before the first byte). Takes one connection's ordered bytes, gaps
//! and ends per side; hands them to the version's session, which gives the [`Sink`] the same
//! requests and transactions either way.

use std::sync::Arc;

use super::Session;
use super::h2;
use super::h2::frame::{PREFACE, is_preface_start};
use super::settings::SessionSettings;
use super::sink::Sink;
use super::transaction::TlsInfo;
use crate::net::Vlans;
use crate::reassembly::{Chunk, EndReason, FlowInfo, Side, StreamSink};
use crate::ts::Timestamp;

/// Bytes held before the version is decided; past this, the connection is read as HTTP/1.1.
const MAX_HELD: usize = 64 * 1024;

enum Mode {
    /// No client byte yet: the first ones tell.
    Undecided,
    H1,
    H2(Box<h2::session::Session>),
}

/// A chunk held until the version is decided.
struct Held {
    offset: u64,
    bytes: Vec<u8>,
    ts: Timestamp,
    peer_ack: Option<u64>,
    vlans: Vlans,
}

impl Held {
    fn of(chunk: &Chunk<'_>) -> Held {
        Held {
            offset: chunk.offset,
            bytes: chunk.bytes.to_vec(),
            ts: chunk.ts,
            peer_ack: chunk.peer_ack,
            vlans: chunk.vlans,
        }
    }

    fn chunk(&self) -> Chunk<'_> {
        Chunk {
            offset: self.offset,
            bytes: &self.bytes,
            ts: self.ts,
            peer_ack: self.peer_ack,
            vlans: self.vlans,
        }
    }
}

/// HTTP state of one connection.
pub struct HttpConn {
    h1: Session,
    mode: Mode,
    cfg: Arc<SessionSettings>,
    client: Option<Side>,
    /// What came before the client's first bytes decided the version, in arrival order: the
    /// server's bytes (an HTTP/2 server may send its SETTINGS first), and the client's while
    /// they are a strict prefix of the preface (a request line may start with the same
    /// letters). At most [`MAX_HELD`] bytes.
    held: Vec<(Side, Held)>,
    /// Something answers the client (the mirror): HTTP/2 sessions gather what it owes.
    answering: bool,
}

impl HttpConn {
    pub fn new(cfg: Arc<SessionSettings>, info: &FlowInfo) -> HttpConn {
        HttpConn {
            h1: Session::new(cfg.clone(), info),
            mode: Mode::Undecided,
            cfg,
            client: None,
            held: Vec::new(),
            answering: false,
        }
    }

    /// This connection's bytes are TLS's plaintext: its exchanges say so.
    pub fn set_tls(&mut self, info: TlsInfo) {
        self.h1.set_tls(info);
    }

    /// TLS chose `h2` by ALPN, sent by the client on `client_side`: HTTP/2 from the first
    /// byte, whatever the bytes look like (a missing preface loses the client's direction,
    /// never reads it as HTTP/1.1).
    pub fn set_h2(&mut self, client_side: Side, ctx: &mut Sink) {
        if matches!(self.mode, Mode::H2(_)) {
            return;
        }
        self.client.get_or_insert(client_side);
        self.start_h2(ctx);
        self.decided(ctx);
    }

    /// Something answers the client (the mirror): an HTTP/2 session gathers what it owes.
    pub fn answering(mut self) -> HttpConn {
        self.answering = true;
        self
    }

    /// The HTTP/2 session, once the connection is HTTP/2.
    pub fn h2(&mut self) -> Option<&mut h2::session::Session> {
        match &mut self.mode {
            Mode::H2(s) => Some(s),
            _ => None,
        }
    }

    /// The HTTP/2 session of this connection, its client on `client`, numbering its
    /// transactions from `first_n`. The connection's description is the HTTP/1.1 session's,
    /// told the client side first.
    fn h2_session(&mut self, client: Side, first_n: u64, ctx: &mut Sink) -> h2::session::Session {
        self.h1.on_client_side(client, ctx);
        let mut s = h2::session::Session::new(
            self.cfg.clone(),
            self.h1.conn(),
            self.h1.serial(),
            client,
            first_n,
        );
        if self.answering {
            s.answering();
        }
        s
    }

    /// Switches to HTTP/2 from the start of the connection.
    fn start_h2(&mut self, ctx: &mut Sink) {
        let client = self.client.unwrap_or(Side(0));
        ctx.stats.http2_connections += 1;
        let s = self.h2_session(client, 0, ctx);
        self.mode = Mode::H2(Box::new(s));
    }

    /// The version is decided: what was held is read, in the order it came.
    fn decided(&mut self, ctx: &mut Sink) {
        for (side, h) in std::mem::take(&mut self.held) {
            self.data(side, h.chunk(), ctx);
        }
    }

    /// A gap, an end, or too many bytes held came before the client's first bytes decided:
    /// HTTP/1.1.
    fn decide_h1(&mut self, ctx: &mut Sink) {
        if !matches!(self.mode, Mode::Undecided) {
            return;
        }
        self.mode = Mode::H1;
        self.decided(ctx);
    }

    /// After HTTP/1.1 read bytes: a 101 to `Upgrade: h2c` switches to HTTP/2, with the bytes
    /// after it.
    fn after_h1(&mut self, ts: Timestamp, vlans: Vlans, ctx: &mut Sink) {
        let Some((up, rest)) = self.h1.take_upgrade(ctx) else {
            return;
        };
        let client = self.client.unwrap_or(Side(0));
        ctx.stats.http2_connections += 1;
        ctx.stats.http2_upgrades += 1;
        let first_n = up.n;
        let mut s = Box::new(self.h2_session(client, first_n, ctx).upgraded(up));
        for (side, bytes) in rest {
            let chunk = Chunk {
                offset: 0,
                bytes: &bytes,
                ts,
                peer_ack: None,
                vlans,
            };
            s.on_data(side, chunk, ctx);
        }
        self.mode = Mode::H2(s);
    }

    fn data(&mut self, side: Side, chunk: Chunk<'_>, ctx: &mut Sink) {
        match &mut self.mode {
            Mode::H2(s) => s.on_data(side, chunk, ctx),
            Mode::H1 => {
                let (ts, vlans) = (chunk.ts, chunk.vlans);
                self.h1.on_data(side, chunk, ctx);
                self.after_h1(ts, vlans, ctx);
            }
            Mode::Undecided => {
                let from_client = self.client.is_none_or(|c| c == side);
                self.held.push((side, Held::of(&chunk)));
                let held: usize = self.held.iter().map(|(_, h)| h.bytes.len()).sum();
                if held > MAX_HELD {
                    self.decide_h1(ctx);
                    return;
                }
                if !from_client {
                    // The client has not spoken: the server's bytes wait for it.
                    return;
                }
                // The client's bytes so far: only its side's, from the stream's start.
                let mine = || self.held.iter().filter(|(s, _)| *s == side);
                let at_start = mine().next().is_some_and(|(_, h)| h.offset == 0);
                let so_far: Vec<u8> = mine().flat_map(|(_, h)| h.bytes.iter().copied()).collect();
                let preface = at_start && is_preface_start(&so_far);
                if preface {
                    // A side whose first bytes start like the preface is the client: the
                    // other side's bytes meanwhile are the server's, never appended to these.
                    self.client = Some(side);
                    if so_far.len() < PREFACE.len() {
                        return;
                    }
                    self.start_h2(ctx);
                } else {
                    self.mode = Mode::H1;
                }
                self.decided(ctx);
            }
        }
    }
}

impl StreamSink for HttpConn {
    type Ctx = Sink;

    fn on_client_side(&mut self, side: Side, ctx: &mut Sink) {
        self.client.get_or_insert(side);
        self.h1.on_client_side(side, ctx);
    }

    fn on_data(&mut self, side: Side, chunk: Chunk<'_>, ctx: &mut Sink) {
        self.data(side, chunk, ctx);
    }

    fn on_gap(&mut self, side: Side, offset: u64, len: u64, ts: Timestamp, ctx: &mut Sink) {
        self.decide_h1(ctx);
        match &mut self.mode {
            Mode::H2(s) => s.on_gap(side, ts, ctx),
            _ => self.h1.on_gap(side, offset, len, ts, ctx),
        }
    }

    fn on_end(&mut self, side: Side, reason: EndReason, ts: Timestamp, ctx: &mut Sink) {
        self.decide_h1(ctx);
        match &mut self.mode {
            Mode::H2(s) => s.on_end(side, reason, ts, ctx),
            _ => {
                self.h1.on_end(side, reason, ts, ctx);
                self.after_h1(ts, Vlans::default(), ctx);
            }
        }
    }

    fn on_tick(&mut self, now: Timestamp, ctx: &mut Sink) {
        if matches!(self.mode, Mode::H1) {
            self.h1.on_tick(now, ctx);
            self.after_h1(now, Vlans::default(), ctx);
        }
    }

    fn wants_tick(&self) -> bool {
        matches!(self.mode, Mode::H1) && self.h1.wants_tick()
    }
}
