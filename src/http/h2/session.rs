//! One HTTP/2 connection's streams (RFC 9113): each client stream one transaction, judged by
//! the same tracker as an HTTP/1.1 exchange.
//!
//! Takes each direction's ordered bytes, gaps and end (from reassembly, after TLS, or after an
//! h2c upgrade); gives requests and transactions to the [`Sink`], each request with
//! `protocol` HTTP/2. Framing is `frame.rs`, header blocks `hpack.rs`; this file holds what
//! lives across frames: the streams, the SETTINGS that bound the other side, and how each
//! stream ended.
//!
//! What it reports, never guesses:
//! - A header block that cannot be decoded (picked up mid-connection, an HPACK error, an
//!   earlier error in its direction) skips its stream: a key read from a broken table is
//!   worse than none. Every block of that direction after an error is counted
//!   (`http2_headers_undecodable`).
//! - RST_STREAM before the final response ends the stream there: in flight until then, no
//!   response. `REFUSED_STREAM` from the server, and streams above the last stream id of the
//!   server's GOAWAY, were not processed (section 8.7): the transaction says so
//!   (`not_processed`), and the tracker decides what that means.
//! - A direction whose framing is lost (a capture gap, a malformed frame, a CONTINUATION
//!   flood) ends what it would have carried: requests cut, responses lost (never guessed to
//!   be absent).
//!
//! Bounded: streams open at once at most `--max-pending-requests` (the oldest is handed on
//! unanswered and unobservable when a new one would pass it), header lists at most
//! `--max-head-bytes` decoded and `--max-headers` fields, HPACK tables at most their SETTINGS
//! value and 64 KiB, frames at most the receiver's SETTINGS_MAX_FRAME_SIZE.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::frame::{Event, FrameError, FrameReader, Side as Sender};
use super::hpack::{Decoder, HpackError};
use crate::http::body::{BodyReader, Framing};
use crate::http::h1::{Heads, credential_identity, json_id};
use crate::http::settings::SessionSettings;
use crate::http::sink::Sink;
use crate::http::target;
use crate::http::transaction::{Conn, HttpEvent, Protocol, Request, Response, Transaction, TxId};
use crate::net::Vlans;
use crate::reassembly::{Chunk, EndReason, Side};
use crate::ts::Timestamp;

/// RST_STREAM error code: the stream was refused before any processing (section 8.7).
const REFUSED_STREAM: u32 = 0x7;
/// SETTINGS identifiers (section 6.5.2).
const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// Direction indexes: what the client sends, what the server sends.
const C: usize = 0;
const S: usize = 1;

/// A request read as HTTP/1.1 that asked for `Upgrade: h2c` and got its 101: it is stream 1
/// of the HTTP/2 connection that follows (RFC 7540 section 3.2), already handed on as a
/// request, waiting for its response.
pub struct Upgraded {
    /// Its rank on the connection: the h1 session's transaction number.
    pub n: u64,
    pub request: Request,
    pub forwarded: Option<IpAddr>,
    pub hashed: bool,
    /// The client's SETTINGS payload from `HTTP2-Settings`, decoded.
    pub settings: Vec<u8>,
}

/// What an endpoint that answers the client (the mirror) owes it, gathered as the client's
/// frames are read: set with [`Session::answering`], taken with [`Session::take_owed`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Owed {
    /// SETTINGS frames to acknowledge.
    pub settings_acks: u32,
    /// PINGs to answer, with their data.
    pub pings: Vec<[u8; 8]>,
    /// Streams whose request ended (not reset by the client): each wants its response.
    pub answer: Vec<u32>,
    /// DATA bytes read so far, padding included: what the peer's flow control spent.
    pub data_bytes: u64,
}

/// One stream of the client's.
struct Stream {
    n: u64,
    req: Option<Request>,
    req_body: Option<Box<BodyReader>>,
    req_done: bool,
    resp: Option<Response>,
    resp_body: Option<Box<BodyReader>>,
    resp_done: bool,
    /// The response may have been in bytes that were lost: its absence says nothing.
    resp_lost: bool,
    not_processed: bool,
    interim: Vec<u16>,
    hashed: bool,
    forwarded: Option<IpAddr>,
    clock_shift: i64,
}

/// The fields of one decoded header block that the session uses.
#[derive(Default)]
struct Fields {
    method: Option<String>,
    path: Option<String>,
    authority: Option<String>,
    status: Option<u16>,
    heads: Heads,
    count: usize,
    /// A pseudo-header after a regular field, or repeated, or not UTF-8 (section 8.3):
    /// malformed.
    malformed: bool,
}

/// Where a chunk came from, for what its frames start.
#[derive(Clone, Copy)]
struct At {
    ts: Timestamp,
    vlans: Vlans,
}

/// What lives across frames, apart from the framing (so that a reader's events can change it
/// while the reader is borrowed).
struct Streams {
    cfg: Arc<SessionSettings>,
    conn: Arc<Conn>,
    flow_id: u64,
    serial: u64,
    /// HPACK state of each direction.
    decoders: [Decoder; 2],
    /// Open client streams by id.
    streams: BTreeMap<u32, Stream>,
    /// The highest client stream id opened: a lower one is closed.
    last_opened: u32,
    next_n: u64,
    /// The server's GOAWAY: streams above this id were not processed.
    goaway: Option<u32>,
    /// A direction's framing was lost: nothing more comes from it.
    lost: [bool; 2],
    ended: [bool; 2],
    server_seen: bool,
    /// SETTINGS_MAX_FRAME_SIZE one side announced, for the other side's reader.
    frame_size: [Option<u32>; 2],
    /// What an answering endpoint owes the client, when there is one.
    owed: Option<Owed>,
}

/// HTTP/2 state of one connection.
pub struct Session {
    client: Side,
    readers: [FrameReader; 2],
    st: Streams,
}

impl Session {
    /// A connection read from its start: the client's direction begins with the preface.
    /// `conn` names its ends (client first); `serial` is the flow's; transactions are numbered
    /// from `first_n`.
    pub fn new(
        cfg: Arc<SessionSettings>,
        conn: Arc<Conn>,
        serial: u64,
        client: Side,
        first_n: u64,
    ) -> Session {
        let max_block = cfg.max_head_bytes;
        Session {
            client,
            readers: [
                FrameReader::new(Sender::Client, max_block),
                FrameReader::new(Sender::Server, max_block),
            ],
            st: Streams {
                flow_id: conn.flow_id,
                conn,
                serial,
                decoders: [Decoder::new(), Decoder::new()],
                streams: BTreeMap::new(),
                last_opened: 0,
                next_n: first_n,
                goaway: None,
                lost: [false; 2],
                ended: [false; 2],
                server_seen: false,
                frame_size: [None; 2],
                owed: None,
                cfg,
            },
        }
    }

    /// After `Upgrade: h2c` and its 101: the upgrading request is stream 1, half closed by
    /// the client, and the client's settings came in `HTTP2-Settings`.
    pub fn upgraded(mut self, up: Upgraded) -> Session {
        let st = &mut self.st;
        st.apply_settings(C, &settings_pairs(&up.settings));
        st.last_opened = 1;
        st.next_n = st.next_n.max(up.n + 1);
        st.streams.insert(
            1,
            Stream {
                n: up.n,
                req: Some(up.request),
                req_body: None,
                req_done: true,
                resp: None,
                resp_body: None,
                resp_done: false,
                resp_lost: false,
                not_processed: false,
                interim: Vec::new(),
                hashed: up.hashed,
                forwarded: up.forwarded,
                clock_shift: 0,
            },
        );
        self.apply_frame_sizes();
        self
    }

    /// Something answers the client (the mirror): gather what it owes (see [`Owed`]).
    pub fn answering(&mut self) {
        self.st.owed.get_or_insert_with(Owed::default);
    }

    /// What the answering endpoint owes the client since the last call.
    pub fn take_owed(&mut self) -> Owed {
        let data_bytes = self.readers[C].counts().data_bytes;
        match self.st.owed.as_mut() {
            Some(o) => {
                let mut taken = std::mem::take(o);
                taken.data_bytes = data_bytes;
                taken
            }
            None => Owed::default(),
        }
    }

    /// Streams whose request is still being received.
    pub fn requests_in_progress(&self) -> usize {
        self.st.streams.values().filter(|s| !s.req_done).count()
    }

    fn dir(&self, side: Side) -> usize {
        if side == self.client { C } else { S }
    }

    /// The next bytes of `side`'s direction.
    pub fn on_data(&mut self, side: Side, chunk: Chunk<'_>, em: &mut Sink) {
        let d = self.dir(side);
        if d == S {
            self.st.server_seen = true;
        }
        let at = At {
            ts: chunk.ts,
            vlans: chunk.vlans,
        };
        let Session { readers, st, .. } = self;
        let Some(reader) = readers.get_mut(d) else {
            return;
        };
        let was_lost = reader.failed().is_some();
        reader.push(chunk.bytes, |ev| st.on_event(d, ev, at, em));
        if !was_lost && let Some(why) = reader.failed() {
            st.direction_lost(d, why, at.ts, em);
        }
        self.apply_frame_sizes();
    }

    /// Bytes of `side`'s direction were lost: its framing is lost with them.
    pub fn on_gap(&mut self, side: Side, ts: Timestamp, em: &mut Sink) {
        let d = self.dir(side);
        if d == S {
            self.st.server_seen = true;
        }
        let Some(reader) = self.readers.get_mut(d) else {
            return;
        };
        if reader.failed().is_some() {
            return;
        }
        reader.gap();
        self.st.direction_lost(d, FrameError::Gap, ts, em);
    }

    /// `side`'s direction ended; once both have, every stream is handed on.
    pub fn on_end(&mut self, side: Side, reason: EndReason, ts: Timestamp, em: &mut Sink) {
        let d = self.dir(side);
        if d == S && reason == EndReason::Fin {
            self.st.server_seen = true;
        }
        self.st.end(d, ts, em);
    }

    /// SETTINGS_MAX_FRAME_SIZE seen in one direction bounds the frames of the other.
    fn apply_frame_sizes(&mut self) {
        for d in [C, S] {
            if let Some(size) = self.st.frame_size.get_mut(d).and_then(Option::take)
                && let Some(r) = self.readers.get_mut(1 - d)
            {
                r.set_max_frame_size(size);
            }
        }
    }
}

/// A SETTINGS payload as (identifier, value) pairs; a trailing partial entry is ignored.
fn settings_pairs(payload: &[u8]) -> Vec<(u16, u32)> {
    payload
        .chunks_exact(6)
        .map(|e| {
            let id = u16::from_be_bytes([e[0], e[1]]);
            let v = u32::from_be_bytes([e[2], e[3], e[4], e[5]]);
            (id, v)
        })
        .collect()
}

impl Streams {
    fn on_event(&mut self, d: usize, ev: Event<'_>, at: At, em: &mut Sink) {
        match ev {
            Event::HeaderBlock {
                stream,
                block,
                end_stream,
            } => {
                if d == C {
                    self.request_headers(stream, block, end_stream, at, em);
                } else {
                    self.response_headers(stream, block, end_stream, at, em);
                }
            }
            Event::PushPromise { block, .. } => {
                // Pushed responses answer no request of the client's; the block is decoded
                // only to keep the server's table in step.
                let _ = self.decode(S, block, em);
            }
            Event::Data {
                stream,
                payload,
                end_stream,
            } => self.data(d, stream, payload, end_stream, at, em),
            Event::Settings {
                ack: false,
                settings,
            } => {
                self.apply_settings(d, &settings);
                if let (C, Some(o)) = (d, self.owed.as_mut()) {
                    o.settings_acks += 1;
                }
            }
            Event::Settings { ack: true, .. } => {}
            Event::RstStream { stream, error_code } => self.reset(d, stream, error_code, at, em),
            Event::GoAway { last_stream_id, .. } => {
                if d == S {
                    self.go_away(last_stream_id, at, em);
                }
            }
            Event::Ping { ack: false, data } => {
                if let (C, Some(o)) = (d, self.owed.as_mut()) {
                    o.pings.push(data);
                }
            }
            Event::WindowUpdate { .. } | Event::Ping { .. } | Event::Priority { .. } => {}
            // Handled once the push returns (`direction_lost`).
            Event::Error(_) => {}
        }
    }

    /// SETTINGS sent by `d` bound what the other side sends: its HPACK table, its frames.
    fn apply_settings(&mut self, d: usize, settings: &[(u16, u32)]) {
        for &(id, value) in settings {
            match id {
                SETTINGS_HEADER_TABLE_SIZE => {
                    if let Some(dec) = self.decoders.get_mut(1 - d) {
                        dec.set_max_size_limit(value);
                    }
                }
                SETTINGS_MAX_FRAME_SIZE => {
                    if let Some(f) = self.frame_size.get_mut(d) {
                        *f = Some(value);
                    }
                }
                _ => {}
            }
        }
    }

    /// Decodes one header block of direction `d`, or counts why not.
    fn decode(&mut self, d: usize, block: &[u8], em: &mut Sink) -> Option<Fields> {
        let max_fields = self.cfg.max_headers;
        let keys = &self.cfg.http.key_headers;
        let dec = self.decoders.get_mut(d)?;
        let was_broken = dec.is_broken();
        let mut f = Fields::default();
        let mut regular_seen = false;
        let result = dec.decode(block, self.cfg.max_head_bytes, |name, value, _sensitive| {
            f.count += 1;
            let Ok(name) = std::str::from_utf8(name) else {
                f.malformed = true;
                return;
            };
            if let Some(pseudo) = name.strip_prefix(':') {
                if regular_seen {
                    f.malformed = true;
                }
                let text = || String::from_utf8_lossy(value).into_owned();
                let slot = match pseudo {
                    "method" => &mut f.method,
                    "path" => &mut f.path,
                    "authority" => &mut f.authority,
                    "status" => {
                        let status = std::str::from_utf8(value)
                            .ok()
                            .filter(|s| s.len() == 3)
                            .and_then(|s| s.parse::<u16>().ok());
                        if f.status.is_some() || status.is_none() {
                            f.malformed = true;
                        }
                        f.status = f.status.or(status);
                        return;
                    }
                    _ => return,
                };
                if slot.is_some() {
                    f.malformed = true;
                } else {
                    *slot = Some(text());
                }
            } else {
                regular_seen = true;
                f.heads.add(name, value, keys);
            }
        });
        match result {
            Ok(_) if f.count > max_fields => {
                em.stats.http_too_many_headers += 1;
                None
            }
            Ok(_) => Some(f),
            Err(e) => {
                em.stats.http2_headers_undecodable += 1;
                if !was_broken {
                    em.stats.http2_hpack_errors += 1;
                    if e == HpackError::ListTooLarge {
                        em.stats.http_head_too_large += 1;
                    }
                    tracing::debug!(
                        flow_id = self.flow_id,
                        error = e.name(),
                        "HTTP/2 header block not decoded; the direction's later blocks are skipped"
                    );
                }
                None
            }
        }
    }

    fn request_headers(&mut self, id: u32, block: &[u8], end_stream: bool, at: At, em: &mut Sink) {
        let fields = self.decode(C, block, em);
        if let Some(s) = self.streams.get_mut(&id) {
            // Trailers (section 8.1): they end the request.
            if s.req.is_some() && !s.req_done && end_stream {
                self.end_request(id, at.ts, false, em);
            }
            return;
        }
        // Even ids are the server's; a lower id than one opened was closed (section 5.1.1).
        if id.is_multiple_of(2) || id <= self.last_opened {
            return;
        }
        self.last_opened = id;
        let Some(f) = fields else {
            return;
        };
        let (Some(method), false) = (f.method.clone(), f.malformed) else {
            em.stats.http_parse_errors += 1;
            return;
        };
        if method.eq_ignore_ascii_case("CONNECT") {
            // A tunnel: its DATA is not an HTTP body.
            em.stats.http_upgraded += 1;
            return;
        }
        em.stats.http_requests += 1;
        em.stats.http2_streams += 1;
        self.make_room(at.ts, em);
        let n = self.next_n;
        self.next_n += 1;
        let cfg = self.cfg.clone();
        let h = f.heads;
        let raw_path = f.path.unwrap_or_default();
        let forwarded = self.forwarded_client(&h.forwarded);
        let clock_shift = self.gateway_shift(h.request_start.as_deref(), at.ts);
        let hashed = cfg.hashes(&method, !h.keys.is_empty());
        let opts = cfg.request_body(h.content_encoding.as_deref(), hashed);
        let request = Request {
            ts: at.ts.shifted(clock_shift),
            ts_end: at.ts.shifted(clock_shift),
            path: target::redact(&raw_path, &cfg.http.redacted_params),
            target_identity: target::identity(raw_path.as_bytes()),
            method,
            host: f.authority.or(h.host),
            keys: h.keys,
            credential: h.authorization.as_deref().map(credential_identity),
            stripe_account: h.stripe_account,
            stripe_context: h.stripe_context,
            content_type: h.content_type,
            content_encoding: h.content_encoding,
            body: Default::default(),
            vlans: at.vlans,
            stream_start: 0,
            peer_ack_at_start: None,
            answered_at_start: 0,
            lost_before: false,
            protocol: Protocol::Http2,
        };
        // A stream opened after the server's GOAWAY and above its last id is ignored by the
        // server (section 6.8).
        let ignored = self.goaway.is_some_and(|last| id > last);
        self.streams.insert(
            id,
            Stream {
                n,
                req: Some(request),
                req_body: Some(Box::new(BodyReader::new(Framing::UntilClose, opts))),
                req_done: false,
                resp: None,
                resp_body: None,
                resp_done: cfg.requests_only || ignored || self.lost[S],
                resp_lost: cfg.requests_only || (self.lost[S] && !ignored),
                not_processed: ignored,
                interim: Vec::new(),
                hashed,
                forwarded,
                clock_shift,
            },
        );
        if end_stream {
            self.end_request(id, at.ts, false, em);
        }
    }

    /// A new stream would pass the bound: the oldest open one is handed on as it stands,
    /// its response unobservable.
    fn make_room(&mut self, ts: Timestamp, em: &mut Sink) {
        while self.streams.len() >= self.cfg.max_pending.max(1) {
            let Some((&oldest, _)) = self.streams.iter().next() else {
                return;
            };
            em.stats.http_pending_overflow += 1;
            if let Some(s) = self.streams.get_mut(&oldest)
                && s.resp.is_none()
            {
                s.resp_lost = true;
            }
            self.end_response(oldest, ts, true, em);
            self.end_request(oldest, ts, true, em);
        }
    }

    fn response_headers(&mut self, id: u32, block: &[u8], end_stream: bool, at: At, em: &mut Sink) {
        let fields = self.decode(S, block, em);
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.resp_done {
            return;
        }
        let Some(f) = fields else {
            // The server answered, but what is unknown.
            if s.resp.is_none() {
                s.resp_lost = true;
            }
            s.resp_done = true;
            s.resp_body = None;
            self.emit_if_done(id, em);
            return;
        };
        if s.resp.is_some() {
            // Trailers end the response.
            if end_stream {
                self.end_response(id, at.ts, false, em);
            }
            return;
        }
        let Some(status) = f.status.filter(|_| !f.malformed) else {
            em.stats.http_parse_errors += 1;
            s.resp_lost = true;
            s.resp_done = true;
            self.emit_if_done(id, em);
            return;
        };
        if (100..200).contains(&status) {
            em.stats.http_interim_responses += 1;
            s.interim.push(status);
            return;
        }
        em.stats.http_responses += 1;
        let h = f.heads;
        let opts = self.cfg.response_body(
            h.content_type.as_deref(),
            h.content_encoding.as_deref(),
            s.hashed,
        );
        s.resp = Some(Response {
            ts: at.ts,
            ts_end: at.ts,
            status,
            interim: std::mem::take(&mut s.interim),
            body: Default::default(),
            resource_id: h.location,
            replayed: h.replayed,
        });
        s.resp_body = Some(Box::new(BodyReader::new(Framing::UntilClose, opts)));
        if end_stream {
            self.end_response(id, at.ts, false, em);
        }
    }

    fn data(&mut self, d: usize, id: u32, payload: &[u8], end_stream: bool, at: At, em: &mut Sink) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let body = if d == C {
            s.req_body.as_mut().filter(|_| !s.req_done)
        } else {
            s.resp_body.as_mut().filter(|_| !s.resp_done)
        };
        if let Some(b) = body {
            b.feed(payload);
        }
        if end_stream {
            if d == C {
                self.end_request(id, at.ts, false, em);
            } else {
                self.end_response(id, at.ts, false, em);
            }
        }
    }

    /// RST_STREAM from `d`: the stream ends here (section 6.4).
    fn reset(&mut self, d: usize, id: u32, code: u32, at: At, em: &mut Sink) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let answered = s.resp.is_some();
        if !answered {
            if d == C {
                em.stats.http2_streams_reset += 1;
            } else if code == REFUSED_STREAM {
                em.stats.http2_streams_refused += 1;
                s.not_processed = true;
            }
        }
        self.end_request(id, at.ts, true, em);
        self.end_response(id, at.ts, true, em);
    }

    /// The server's GOAWAY: streams above `last` were not processed (section 6.8), and end.
    fn go_away(&mut self, last: u32, at: At, em: &mut Sink) {
        self.goaway = Some(self.goaway.map_or(last, |g| g.min(last)));
        let above: Vec<u32> = self
            .streams
            .range(last.saturating_add(1)..)
            .filter(|(_, s)| s.resp.is_none())
            .map(|(&id, _)| id)
            .collect();
        for id in above {
            em.stats.http2_streams_goaway += 1;
            if let Some(s) = self.streams.get_mut(&id) {
                s.not_processed = true;
            }
            self.end_request(id, at.ts, true, em);
            self.end_response(id, at.ts, true, em);
        }
    }

    /// The request of stream `id` ended: by END_STREAM, or `cut` short.
    fn end_request(&mut self, id: u32, ts: Timestamp, cut: bool, em: &mut Sink) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.req_done {
            return;
        }
        s.req_done = true;
        let Some(mut reader) = s.req_body.take() else {
            return;
        };
        if cut {
            reader.cut();
        } else {
            reader.end_of_stream();
            if let Some(o) = self.owed.as_mut() {
                o.answer.push(id);
            }
        }
        let res = reader.finish();
        res.count(&mut em.stats);
        let fwd = s.forwarded;
        let n = s.n;
        let Some(r) = s.req.as_mut() else {
            return;
        };
        r.body = res.request_body(r.content_type.as_deref());
        r.ts_end = ts.shifted(s.clock_shift);
        let request = Box::new(r.clone());
        let ev = HttpEvent::Request {
            id: self.tx_id(n),
            conn: self.conn_for(fwd),
            request,
        };
        em.push(self.serial, ev);
        self.emit_if_done(id, em);
    }

    /// The response of stream `id` ended: by END_STREAM, or `cut` short (or never began).
    fn end_response(&mut self, id: u32, ts: Timestamp, cut: bool, em: &mut Sink) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.resp_done {
            return;
        }
        if let (true, Some(b)) = (cut, s.resp_body.as_mut()) {
            b.cut();
        }
        s.resp_done = true;
        if let Some(r) = s.resp.as_mut() {
            r.ts_end = ts;
        }
        self.end_response_body(id, ts, em);
        self.emit_if_done(id, em);
    }

    /// Measures the response body of stream `id`, if one was being read.
    fn end_response_body(&mut self, id: u32, ts: Timestamp, em: &mut Sink) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let Some(mut reader) = s.resp_body.take() else {
            return;
        };
        reader.end_of_stream();
        let res = reader.finish();
        res.count(&mut em.stats);
        if let Some(r) = s.resp.as_mut() {
            r.body = res.response_body();
            r.ts_end = r.ts_end.max(ts);
            if let Some(rid) = res.decoded_whole.as_deref().and_then(json_id) {
                r.resource_id = Some(rid);
            }
        }
    }

    /// Hands on stream `id`'s transaction once both its sides are done.
    fn emit_if_done(&mut self, id: u32, em: &mut Sink) {
        if !self
            .streams
            .get(&id)
            .is_some_and(|s| s.req_done && s.resp_done)
        {
            return;
        }
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        self.emit(s, em);
    }

    fn emit(&mut self, s: Stream, em: &mut Sink) {
        let ts_done = s
            .resp
            .as_ref()
            .filter(|_| s.resp_done)
            .map_or(em.now, |r| r.ts_end);
        let tx = Transaction {
            id: self.tx_id(s.n),
            conn: self.conn_for(s.forwarded),
            response_lost: s.resp.is_none() && s.resp_lost,
            request: s.req,
            response: s.resp,
            ts_done: ts_done.max(em.now),
            server_seen: self.server_seen,
            not_processed: s.not_processed,
        };
        em.push(self.serial, HttpEvent::Transaction(Box::new(tx)));
    }

    /// Direction `d`'s framing is lost: what it would have carried ends now.
    fn direction_lost(&mut self, d: usize, why: FrameError, ts: Timestamp, em: &mut Sink) {
        if let Some(l) = self.lost.get_mut(d) {
            *l = true;
        }
        em.stats.http2_directions_lost += 1;
        match why {
            FrameError::Gap => {}
            FrameError::HeaderBlockTooLong | FrameError::TooManyContinuations => {
                em.stats.http2_continuation_floods += 1;
            }
            _ => em.stats.http2_frame_errors += 1,
        }
        tracing::debug!(
            flow_id = self.flow_id,
            why = why.name(),
            server = d == S,
            "HTTP/2 direction no longer read"
        );
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            if d == C {
                self.end_request(id, ts, true, em);
            } else {
                if let Some(s) = self.streams.get_mut(&id)
                    && s.resp.is_none()
                {
                    s.resp_lost = true;
                }
                self.end_response(id, ts, true, em);
            }
        }
    }

    /// Direction `d` ended (FIN, RST, or the flow's end).
    fn end(&mut self, d: usize, ts: Timestamp, em: &mut Sink) {
        if let Some(e) = self.ended.get_mut(d) {
            *e = true;
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            if d == C {
                self.end_request(id, ts, true, em);
            } else {
                if let Some(s) = self.streams.get(&id)
                    && s.resp.is_none()
                    && s.req.is_some()
                {
                    em.stats.http_requests_unanswered += 1;
                }
                self.end_response(id, ts, true, em);
            }
        }
        if self.ended.iter().all(|&e| e) {
            let rest = std::mem::take(&mut self.streams);
            for (_, s) in rest {
                self.emit(s, em);
            }
        }
    }

    fn tx_id(&self, n: u64) -> TxId {
        TxId {
            flow_id: self.flow_id,
            flow_serial: self.serial,
            n,
        }
    }

    /// The connection an exchange's events carry: the client a trusted proxy named, if any.
    fn conn_for(&self, forwarded: Option<IpAddr>) -> Arc<Conn> {
        self.conn.with_client(forwarded)
    }

    fn forwarded_client(&self, values: &[(u8, String)]) -> Option<IpAddr> {
        self.cfg.forwarded_client(self.conn.client.ip, values)
    }

    fn gateway_shift(&self, value: Option<&str>, arrival: Timestamp) -> i64 {
        self.cfg.gateway_shift(self.conn.client.ip, value, arrival)
    }
}

#[cfg(test)]
mod tests;
