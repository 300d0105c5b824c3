//! One connection's HTTP/1.1 state: a parser per direction, and the exchanges awaiting their
//! responses.
//!
//! Each direction is either looking for a start line (at the start of a connection picked up
//! mid-stream, or after a gap or a parse error: it resynchronises on the next request or status
//! line), reading a head, or reading a body. Responses pair with requests in order (RFC 9112
//! section 9.3.2, pipelining). After a gap, the ACK numbers decide: a response whose segment
//! did not acknowledge a request's first byte cannot answer it, and a request after which the
//! client received new bytes before sending the next one was answered, even if that answer was
//! lost. So the wrong request is never paired with the wrong response.
//!
//! Takes one connection's ordered bytes, gaps and ends per direction (from reassembly, or the
//! mirror's plaintext); hands requests and transactions to a [`Sink`]. Heads are read in
//! `heads.rs`, bodies in `body.rs`; server bytes that run ahead of the client's wait in
//! `hold.rs`. Whom forwarding headers name is asked of the settings (the mirror's trusted
//! proxies); where each event goes in the output is the pipeline's business.

use std::collections::VecDeque;
use std::sync::Arc;

use super::heads::{
    BadHead, Head, Plausible, collect_heads, content_length, credential_identity, find_head_end,
    json_id, parse_head, plausible_start, transfer_codings,
};
use super::hold::{Held, Holding};
use crate::http::body::{BodyReader, Fed, Framing, GapEffect};
use crate::http::h2::session::Upgraded;
use crate::http::settings::SessionSettings;
use crate::http::sink::Sink;
use crate::http::target;
use crate::http::transaction::{
    Body, Conn, HttpEvent, Protocol, Request, Response, Transaction, TxId,
};
use crate::net::{Endpoint, Vlans};
use crate::reassembly::{Chunk, EndReason, FlowInfo, Side, StreamSink};
use crate::ts::Timestamp;

/// What a direction carries: unknown until a handshake or a start line shows who the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Unknown,
    Requests,
    Responses,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Request(u64),
    Response(u64),
}

enum State {
    /// Looking for the next start line.
    Sync,
    /// Reading a head (bytes so far in `buf`).
    Head,
    Body(Box<BodyReader>, Owner),
    /// Not HTTP any more (upgrade, tunnel, unframeable request) or ended.
    Dead,
}

#[derive(Debug, Clone, Copy)]
struct Start {
    offset: u64,
    ts: Timestamp,
    peer_ack: Option<u64>,
    vlans: Vlans,
}

struct Half {
    state: State,
    buf: Vec<u8>,
    start: Option<Start>,
    ended: bool,
    /// Where a start line may begin while resynchronising.
    sync: SyncMode,
}

impl Half {
    fn new() -> Half {
        Half {
            state: State::Sync,
            buf: Vec::new(),
            start: None,
            ended: false,
            sync: SyncMode::Segments,
        }
    }

    /// Resynchronises after bytes that are not a message head (a parse error, a head over the
    /// limits): no byte was lost, so only line starts qualify, never segment starts. Segment
    /// boundaries are the sender's choice and must not change what is parsed.
    fn resync_on_lines(&mut self) {
        self.state = State::Sync;
        self.sync = SyncMode::Lines {
            at_line_start: false,
        };
    }
}

/// Candidates for the next start line when resynchronising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncMode {
    /// After lost bytes (a gap, a connection picked up mid-stream): line starts, and the start
    /// of every segment, since senders start messages on segment boundaries far more often than
    /// a body's bytes happen to look like a head.
    Segments,
    /// The byte stream is whole: line starts only. `at_line_start`: the next byte begins a
    /// line (or the stream).
    Lines { at_line_start: bool },
}

struct Exchange {
    id: u64,
    req: Option<Request>,
    req_done: bool,
    resp: Option<Response>,
    resp_started: bool,
    resp_done: bool,
    /// The response was lost in a gap: the exchange waits for nothing more from the server.
    resp_lost: bool,
    /// Gaps in the server's stream before this exchange began (see `server_gaps`).
    server_gaps_at_start: u64,
    /// The client named by a trusted proxy's header.
    forwarded_client: Option<std::net::IpAddr>,
    /// What to add to our times to get the gateway's (its `X-Request-Start`), in ns.
    clock_shift: i64,
    /// The request's body was hashed, so its response's is too.
    hashed: bool,
    interim: Vec<u16>,
    /// The request offered `Upgrade: h2c`: the client's settings (`HTTP2-Settings` decoded).
    h2c: Option<Vec<u8>>,
}

/// HTTP state of one connection.
pub struct Session {
    cfg: Arc<SessionSettings>,
    ends: [Endpoint; 2],
    flow_id: u64,
    community_id: Arc<str>,
    file_index: usize,
    serial: u64,
    client: Option<Side>,
    /// The connection as events carry it, built once per client side.
    conn: Option<(Side, Arc<Conn>)>,
    /// The TLS its bytes were decrypted from (`tls::stage`).
    tls: Option<Arc<crate::http::transaction::TlsInfo>>,
    halves: [Half; 2],
    /// Boxed: an exchange holds its request and response (several hundred bytes), and a
    /// queue grows to four slots at its first push, most of them never used.
    pending: VecDeque<Box<Exchange>>,
    next_id: u64,
    /// Bytes were lost since the last response was paired: pair by ACK evidence.
    desync: bool,
    /// Bytes of the client's stream that belong to no known message were lost since the last
    /// request head.
    client_lost: bool,
    /// Offset in the server's stream where the last response paired with a known request
    /// ended.
    answered_end: u64,
    /// A paired response just ended; `answered_end` is set once its end offset is known.
    answered_unplaced: bool,
    /// How far the client's stream has been read (data or gap).
    client_end: u64,
    /// Any byte, gap or end of the server's stream was seen.
    server_seen: bool,
    /// Holes in the server's stream so far: an exchange left without a response after one may
    /// have had it in the hole, so its missing response says nothing about the server.
    server_gaps: u64,
    /// Requests dropped from a full pending queue before their responses came: that many next
    /// responses answer them (in order), and must not be paired with the requests after.
    skip_responses: u64,
    /// Server bytes that acknowledge client bytes not read yet (mirror ports deliver one
    /// direction a little late): parsed once the client catches up, so that a response never
    /// meets the queue before its request.
    held: Holding,
    /// The connection switched to HTTP/2 (`Upgrade: h2c`, 101): its first stream, and the
    /// bytes after the switch, for [`Session::take_upgrade`].
    upgrade: Option<Upgraded>,
    after_upgrade: AfterUpgrade,
}

/// Header lines parsed without allocating; `--max-headers` above it uses the heap.
const STACK_HEADERS: usize = 128;

impl Session {
    pub fn new(cfg: Arc<SessionSettings>, info: &FlowInfo) -> Session {
        Session {
            cfg,
            ends: info.ends,
            flow_id: info.flow_id,
            community_id: Arc::from(info.community_id.as_str()),
            file_index: info.file_index,
            serial: info.serial,
            client: None,
            conn: None,
            tls: None,
            halves: [Half::new(), Half::new()],
            pending: VecDeque::new(),
            next_id: 0,
            // Until a handshake is seen, the connection may have been picked up mid-stream.
            desync: true,
            client_lost: false,
            answered_end: 0,
            answered_unplaced: false,
            client_end: 0,
            server_seen: false,
            server_gaps: 0,
            skip_responses: 0,
            held: Holding::default(),
            upgrade: None,
            after_upgrade: Vec::new(),
        }
    }

    fn role(&self, side: Side) -> Role {
        match self.client {
            None => Role::Unknown,
            Some(c) if c == side => Role::Requests,
            Some(_) => Role::Responses,
        }
    }

    /// The connection as events carry it, with its client side as known now.
    pub(crate) fn conn(&mut self) -> Arc<Conn> {
        let c = self.client.unwrap_or(Side(0));
        if let Some((side, conn)) = &self.conn
            && *side == c
        {
            return conn.clone();
        }
        let (client, server) = (self.ends[c.index()], self.ends[c.other().index()]);
        let conn = Arc::new(Conn {
            client,
            server,
            flow_id: self.flow_id,
            community_id: self.community_id.clone(),
            file_index: self.file_index,
            tls: self.tls.clone(),
        });
        self.conn = Some((c, conn.clone()));
        conn
    }

    /// The flow's serial number (its first packet's place in the input).
    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// This connection's bytes are TLS's plaintext: its exchanges say so (`tls`).
    pub fn set_tls(&mut self, info: crate::http::transaction::TlsInfo) {
        self.tls = Some(Arc::new(info));
        self.conn = None;
    }

    fn half(&mut self, side: Side) -> &mut Half {
        let [a, b] = &mut self.halves;
        if side.index() == 0 { a } else { b }
    }

    /// Feeds in-order bytes of one direction.
    fn feed(&mut self, side: Side, chunk: Chunk<'_>, em: &mut Sink) {
        let bytes = chunk.bytes;
        let mut pos = 0usize;
        let mut stalled = 0u8;
        while pos < bytes.len() {
            let before = pos;
            let rest = bytes.get(pos..).unwrap_or(&[]);
            let here = Start {
                offset: chunk.offset + pos as u64,
                ts: chunk.ts,
                peer_ack: chunk.peer_ack,
                vlans: chunk.vlans,
            };
            let half = self.half(side);
            match &mut half.state {
                State::Dead => {
                    if self.upgrade.is_some() {
                        self.after_upgrade.push((side, rest.to_vec()));
                    }
                    return;
                }
                State::Sync => {
                    pos += self.resync(side, rest, here, em);
                }
                State::Head => {
                    pos += self.read_head(side, rest, here, em);
                }
                State::Body(reader, owner) => {
                    let owner = *owner;
                    let Fed { used, done } = reader.feed(rest);
                    pos += used;
                    if done {
                        self.end_body(side, owner, chunk.ts, em);
                        let half = self.half(side);
                        if !matches!(half.state, State::Dead) {
                            half.state = State::Head;
                        }
                    } else if used == 0 {
                        // Cannot happen with a live body; avoid spinning on any bug.
                        return;
                    }
                }
            }
            self.place_answered(chunk.offset + pos as u64);
            // Every state change that consumes nothing is followed by one that does; never
            // spin on input that defeats that.
            stalled = if pos == before { stalled + 1 } else { 0 };
            if stalled > 3 {
                em.stats.http_parse_errors += 1;
                let half = self.half(side);
                half.resync_on_lines();
                half.buf.clear();
                pos += 1;
                stalled = 0;
            }
        }
    }

    /// Records where the response that just ended did end.
    fn place_answered(&mut self, offset: u64) {
        if std::mem::take(&mut self.answered_unplaced) {
            self.answered_end = self.answered_end.max(offset);
        }
    }

    /// Looks for the next start line in `rest`; returns the bytes consumed.
    fn resync(&mut self, side: Side, rest: &[u8], here: Start, em: &mut Sink) -> usize {
        let role = self.role(side);
        let half = self.half(side);
        // Bytes carried over from the previous chunk (a possible start line cut short).
        let carried = half.buf.len();
        let mut joined;
        let data: &[u8] = if carried > 0 {
            joined = std::mem::take(&mut half.buf);
            joined.extend_from_slice(rest);
            &joined
        } else {
            rest
        };
        // Candidates: line starts, and (see `SyncMode`) the start of this segment or of the
        // bytes carried over because they were too few to judge.
        let first = match half.sync {
            SyncMode::Segments => true,
            SyncMode::Lines { at_line_start } => at_line_start,
        };
        let mut cand = first.then_some(0);
        let mut search_from = 0usize;
        loop {
            let c = match cand.take() {
                Some(c) => c,
                None => match memchr::memchr(b'\n', data.get(search_from..).unwrap_or(&[])) {
                    Some(rel) => search_from + rel + 1,
                    None => break,
                },
            };
            search_from = c;
            let tail = data.get(c..).unwrap_or(&[]);
            match plausible_start(tail, role) {
                Plausible::Request | Plausible::Response => {
                    let kind = plausible_start(tail, role);
                    if self.client.is_none() {
                        self.client = Some(if kind == Plausible::Request {
                            side
                        } else {
                            side.other()
                        });
                    }
                    em.stats.http_resync_skipped_bytes += c as u64;
                    let half = self.half(side);
                    half.state = State::Head;
                    // The start line begins at `c` of `data`; offsets count from `rest`.
                    let start_in_rest = c.saturating_sub(carried);
                    half.start = Some(Start {
                        offset: here.offset + start_in_rest as u64,
                        ..here
                    });
                    if c < carried {
                        // It began in the carried bytes: keep those as the head's start.
                        half.buf.clear();
                        half.buf
                            .extend_from_slice(data.get(c..carried).unwrap_or(&[]));
                        return 0;
                    }
                    return start_in_rest;
                }
                Plausible::Maybe => {
                    // Too short to tell: carry it to the next chunk, where it is a candidate.
                    let keep = data.get(c..).unwrap_or(&[]).to_vec();
                    em.stats.http_resync_skipped_bytes += c as u64;
                    let half = self.half(side);
                    half.buf = keep;
                    if let SyncMode::Lines { at_line_start } = &mut half.sync {
                        *at_line_start = true;
                    }
                    return rest.len();
                }
                Plausible::No => {
                    if c >= data.len() {
                        break;
                    }
                }
            }
        }
        em.stats.http_resync_skipped_bytes += data.len() as u64;
        let ends_line = data.last() == Some(&b'\n');
        if let SyncMode::Lines { at_line_start } = &mut self.half(side).sync {
            *at_line_start = ends_line;
        }
        rest.len()
    }

    /// Reads head bytes from `rest`; returns the bytes consumed.
    fn read_head(&mut self, side: Side, rest: &[u8], here: Start, em: &mut Sink) -> usize {
        let max = self.cfg.max_head_bytes;
        let half = self.half(side);
        let mut skipped = 0usize;
        let mut rest = rest;
        if half.buf.is_empty() {
            // Empty lines between messages are ignored (RFC 9112 section 2.2).
            while let Some((&b, r)) = rest.split_first() {
                if b == b'\r' || b == b'\n' {
                    rest = r;
                    skipped += 1;
                } else {
                    break;
                }
            }
            if rest.is_empty() {
                return skipped;
            }
            if half
                .start
                .is_none_or(|s| s.offset < here.offset + skipped as u64)
            {
                half.start = Some(Start {
                    offset: here.offset + skipped as u64,
                    ..here
                });
            }
            // A whole head in one piece obeys the same limit as one gathered from several.
            if let Some(end) = find_head_end(rest.get(..max.min(rest.len())).unwrap_or(&[]), 0) {
                let head = rest.get(..end).unwrap_or(&[]);
                let ok = self.on_head(side, head, em);
                return skipped + if ok { end } else { 1 };
            }
        }
        let half = self.half(side);
        let before = half.buf.len();
        let room = max.saturating_sub(before);
        let take = rest.len().min(room);
        half.buf.extend_from_slice(rest.get(..take).unwrap_or(&[]));
        match find_head_end(&half.buf, before.saturating_sub(3)) {
            Some(end) => {
                let head = std::mem::take(&mut half.buf);
                let used_here = end.saturating_sub(before);
                let ok = self.on_head(side, head.get(..end).unwrap_or(&[]), em);
                let half = self.half(side);
                half.buf.clear();
                if !ok {
                    // Resume one byte into the bad head, as when it came in one piece: carry
                    // the rest of it to resynchronisation.
                    half.buf.extend_from_slice(head.get(1..end).unwrap_or(&[]));
                    half.start = None;
                }
                skipped + used_here
            }
            None if take < rest.len() || half.buf.len() >= max => {
                em.stats.http_head_too_large += 1;
                half.buf.clear();
                half.resync_on_lines();
                self.desync = true;
                skipped + take.max(1)
            }
            None => skipped + take,
        }
    }

    /// Parses a complete head. On failure, switches to resynchronisation and returns false.
    fn on_head(&mut self, side: Side, head: &[u8], em: &mut Sink) -> bool {
        let role = self.role(side);
        let is_request = match role {
            Role::Requests => true,
            Role::Responses => false,
            Role::Unknown => !head.starts_with(b"HTTP/"),
        };
        // A fixed array on the stack: no allocation per message.
        let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
        let mut heap;
        let n = self.cfg.max_headers;
        let headers: &mut [httparse::Header<'_>] = if n <= STACK_HEADERS {
            stack.get_mut(..n).unwrap_or(&mut [])
        } else {
            heap = vec![httparse::EMPTY_HEADER; n];
            &mut heap
        };
        let ok = match parse_head(head, is_request, headers) {
            Ok(Head::Request {
                method,
                target,
                protocol,
                headers,
            }) => {
                if self.client.is_none() {
                    self.client = Some(side);
                }
                let (method, target) = (method.to_string(), target.to_string());
                self.on_request(side, method, target, protocol, headers, em);
                true
            }
            Ok(Head::Response { status, headers }) => {
                if self.client.is_none() {
                    self.client = Some(side.other());
                }
                self.on_response(side, status, headers, em);
                true
            }
            Err(BadHead::TooManyHeaders) => {
                em.stats.http_too_many_headers += 1;
                false
            }
            Err(BadHead::Invalid) => false,
        };
        if !ok {
            tracing::debug!(
                flow_id = self.flow_id,
                side = side.0,
                len = head.len(),
                "unparseable message head; resynchronising"
            );
            em.stats.http_parse_errors += 1;
            self.desync = true;
            let half = self.half(side);
            half.resync_on_lines();
            half.buf.clear();
        }
        ok
    }

    fn on_request(
        &mut self,
        side: Side,
        method: String,
        target_raw: String,
        protocol: Protocol,
        headers: &[httparse::Header<'_>],
        em: &mut Sink,
    ) {
        em.stats.http_requests += 1;
        let cfg = self.cfg.clone();
        let h = collect_heads(headers, &cfg.http.key_headers);
        let start = self.half(side).start.take().unwrap_or(Start {
            offset: 0,
            ts: Timestamp::default(),
            peer_ack: None,
            vlans: Vlans::default(),
        });
        let request = Request {
            ts: start.ts,
            ts_end: start.ts,
            path: target::redact(&target_raw, &cfg.http.redacted_params),
            target_identity: target::identity(target_raw.as_bytes()),
            method,
            host: h.host,
            keys: h.keys,
            credential: h.authorization.as_deref().map(credential_identity),
            stripe_account: h.stripe_account,
            stripe_context: h.stripe_context,
            content_type: h.content_type,
            content_encoding: h.content_encoding,
            body: Body::default(),
            vlans: start.vlans,
            stream_start: start.offset,
            peer_ack_at_start: start.peer_ack,
            answered_at_start: self.answered_end,
            lost_before: std::mem::take(&mut self.client_lost),
            protocol,
        };
        let te = transfer_codings(&h.transfer_encoding);
        let cl = content_length(&h.content_length);
        let framing = if !te.is_empty() {
            if !h.content_length.is_empty() {
                em.stats.http_te_and_cl += 1;
            }
            if te.last().map(String::as_str) == Some("chunked") {
                Some(Framing::Chunked)
            } else {
                None
            }
        } else {
            match cl {
                Ok(Some(n)) => Some(Framing::Length(n)),
                Ok(None) => Some(Framing::Length(0)),
                Err(()) => None,
            }
        };
        let hashed = cfg.hashes(&request.method, !request.keys.is_empty());
        let opts = cfg.request_body(request.content_encoding.as_deref(), hashed);
        let forwarded_client = self.forwarded_client(&h.forwarded);
        let h2c = if h.upgrade_h2c {
            h.http2_settings.as_deref().and_then(decode_http2_settings)
        } else {
            None
        };
        let mut request = request;
        let clock_shift = self.gateway_shift(h.request_start.as_deref(), request.ts);
        request.ts = request.ts.shifted(clock_shift);
        request.ts_end = request.ts_end.shifted(clock_shift);
        let id = self.next_id;
        self.next_id += 1;
        self.pending.push_back(Box::new(Exchange {
            id,
            req: Some(request),
            req_done: false,
            resp: None,
            resp_started: false,
            resp_done: cfg.requests_only,
            resp_lost: cfg.requests_only,
            server_gaps_at_start: self.server_gaps,
            forwarded_client,
            clock_shift,
            hashed,
            interim: Vec::new(),
            h2c,
        }));
        if self.pending.len() > cfg.max_pending {
            em.stats.http_pending_overflow += 1;
            if let Some(mut ex) = self.pending.pop_front() {
                ex.req_done = true;
                ex.resp_done = true;
                if ex.req.is_some() && !ex.resp_started && !ex.resp_lost {
                    // Its response is still to come: it is unobservable, and the next
                    // unpaired response is its own.
                    ex.resp_lost = true;
                    self.skip_responses += 1;
                }
                self.emit_exchange(ex, em);
            }
        }
        match framing {
            Some(f) => {
                let reader = BodyReader::new(f, opts);
                if reader.is_done() {
                    self.end_body_with(Owner::Request(id), reader, start.ts, em);
                } else {
                    self.half(side).state = State::Body(Box::new(reader), Owner::Request(id));
                }
            }
            None => {
                // RFC 9112 section 6.3: the length cannot be determined; the server must
                // answer 400 and close. Whatever follows is not read as requests, so that a
                // smuggled request is never invented.
                em.stats.http_bad_framing += 1;
                let mut reader = BodyReader::new(Framing::UntilClose, opts);
                reader.end_of_stream();
                let mut res = reader.finish();
                res.complete = false;
                res.sha256 = None;
                res.decoded_sha256 = None;
                if let Some(ex) = self.pending.iter_mut().find(|e| e.id == id) {
                    if let Some(r) = ex.req.as_mut() {
                        r.body = res.response_body();
                        r.body.missing = r.body.missing.max(1);
                    }
                    ex.req_done = true;
                }
                self.request_done(id, em);
                self.half(side).state = State::Dead;
            }
        }
    }

    /// Index of the exchange a final response answers, or `None` when it answers a request
    /// that was never seen.
    fn pair(&mut self, ack: Option<u64>, resp_start: u64) -> Option<usize> {
        let mut i = self
            .pending
            .iter()
            .position(|e| e.req.is_some() && !e.resp_started && !e.resp_lost)?;
        if self.desync {
            if let Some(a) = ack {
                // Skip requests that were answered (the client received new bytes before it
                // sent the next request) by a response that was lost.
                while let (Some(cur), Some(nxt)) = (self.pending.get(i), self.pending.get(i + 1)) {
                    let (Some(cr), Some(nr)) = (cur.req.as_ref(), nxt.req.as_ref()) else {
                        break;
                    };
                    match (cr.peer_ack_at_start, nr.peer_ack_at_start) {
                        (Some(x), Some(y)) if y > x && nr.stream_start < a => {
                            if let Some(e) = self.pending.get_mut(i) {
                                e.resp_lost = true;
                                e.resp_done = true;
                            }
                            i += 1;
                        }
                        _ => break,
                    }
                }
            }
            self.desync = false;
        }
        let e = self.pending.get_mut(i)?;
        let Some(r) = e.req.as_mut() else {
            return Some(i);
        };
        if ack.is_some_and(|a| r.stream_start >= a) {
            // The server had not received this request's first byte: the response answers an
            // earlier request that was lost.
            return None;
        }
        if r.peer_ack_at_start.is_some_and(|x| resp_start < x) {
            // The client had received this response before it sent the request.
            r.lost_before = false;
            return None;
        }
        if r.lost_before {
            r.lost_before = false;
            // A request may have been lost just before this one. If, when sending this one,
            // the client had received server bytes we never captured, the lost request's
            // answer was among them; otherwise this response is the lost request's.
            let answered_unseen = r.peer_ack_at_start.is_some_and(|x| x > r.answered_at_start);
            if !answered_unseen {
                return None;
            }
        }
        Some(i)
    }

    fn on_response(
        &mut self,
        side: Side,
        status: u16,
        headers: &[httparse::Header<'_>],
        em: &mut Sink,
    ) {
        let cfg = self.cfg.clone();
        let h = collect_heads(headers, &[]);
        let start = self.half(side).start.take().unwrap_or(Start {
            offset: 0,
            ts: Timestamp::default(),
            peer_ack: None,
            vlans: Vlans::default(),
        });
        if (100..200).contains(&status) && status != 101 {
            em.stats.http_interim_responses += 1;
            if let Some(e) = self
                .pending
                .iter_mut()
                .find(|e| e.req.is_some() && !e.resp_started && !e.resp_lost)
            {
                e.interim.push(status);
            }
            return;
        }
        em.stats.http_responses += 1;
        let skip = self.skip_responses > 0;
        self.skip_responses = self.skip_responses.saturating_sub(1);
        let paired = if skip {
            None
        } else {
            self.pair(start.peer_ack, start.offset)
        };
        let idx = match paired {
            Some(i) => i,
            None => {
                em.stats.http_orphan_responses += 1;
                let id = self.next_id;
                self.next_id += 1;
                let at = self
                    .pending
                    .iter()
                    .position(|e| e.req.is_some() && !e.resp_started && !e.resp_lost)
                    .unwrap_or(self.pending.len());
                self.pending.insert(
                    at,
                    Box::new(Exchange {
                        id,
                        req: None,
                        req_done: true,
                        resp: None,
                        resp_started: false,
                        resp_done: false,
                        resp_lost: false,
                        server_gaps_at_start: self.server_gaps,
                        forwarded_client: None,
                        clock_shift: 0,
                        hashed: cfg.hash_all,
                        interim: Vec::new(),
                        h2c: None,
                    }),
                );
                at
            }
        };
        if status == 101 && self.pending.get(idx).is_some_and(|e| e.h2c.is_some()) {
            // Not the exchange's response: that comes on stream 1, counted there.
            em.stats.http_responses = em.stats.http_responses.saturating_sub(1);
            self.switch_to_h2c(idx, side);
            return;
        }
        let Some(ex) = self.pending.get_mut(idx) else {
            return;
        };
        ex.resp_started = true;
        let id = ex.id;
        let hashed = ex.hashed;
        let method = ex
            .req
            .as_ref()
            .map(|r| r.method.clone())
            .unwrap_or_default();
        let interim = std::mem::take(&mut ex.interim);
        ex.resp = Some(Response {
            ts: start.ts,
            ts_end: start.ts,
            status,
            interim,
            body: Body::default(),
            resource_id: h.location.clone(),
            replayed: h.replayed,
        });
        let opts = cfg.response_body(
            h.content_type.as_deref(),
            h.content_encoding.as_deref(),
            hashed,
        );
        let tunnel = status == 101
            || (method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&status));
        let framing =
            if tunnel || method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
                Framing::Length(0)
            } else {
                let te = transfer_codings(&h.transfer_encoding);
                if !te.is_empty() {
                    if !h.content_length.is_empty() {
                        em.stats.http_te_and_cl += 1;
                    }
                    if te.last().map(String::as_str) == Some("chunked") {
                        Framing::Chunked
                    } else {
                        Framing::UntilClose
                    }
                } else {
                    match content_length(&h.content_length) {
                        Ok(Some(n)) => Framing::Length(n),
                        Ok(None) => Framing::UntilClose,
                        Err(()) => {
                            em.stats.http_bad_framing += 1;
                            Framing::UntilClose
                        }
                    }
                }
            };
        let reader = BodyReader::new(framing, opts);
        if reader.is_done() {
            self.end_body_with(Owner::Response(id), reader, start.ts, em);
        } else {
            self.half(side).state = State::Body(Box::new(reader), Owner::Response(id));
        }
        if tunnel {
            em.stats.http_upgraded += 1;
            for half in &mut self.halves {
                half.state = State::Dead;
            }
        }
    }

    /// The 101 to an `Upgrade: h2c` request: the connection is HTTP/2 from the next byte
    /// (RFC 7540 section 3.2). The request becomes stream 1, answered there; nothing more is
    /// read as HTTP/1.1.
    fn switch_to_h2c(&mut self, idx: usize, server: Side) {
        let Some(ex) = self.pending.remove(idx) else {
            return;
        };
        let ex = *ex;
        let (Some(request), Some(settings)) = (ex.req, ex.h2c) else {
            return;
        };
        self.upgrade = Some(Upgraded {
            n: ex.id,
            request,
            forwarded: ex.forwarded_client,
            hashed: ex.hashed,
            settings,
        });
        // Bytes of the client's already gathered as a head: the preface's start.
        let client = server.other();
        let buf = std::mem::take(&mut self.half(client).buf);
        if !buf.is_empty() {
            self.after_upgrade.push((client, buf));
        }
        for half in &mut self.halves {
            half.state = State::Dead;
        }
    }

    /// Once the connection switched to HTTP/2: its first stream and the bytes of each side
    /// after the switch, in order. What was still pending as HTTP/1.1 is handed on first.
    pub fn take_upgrade(&mut self, em: &mut Sink) -> Option<(Upgraded, AfterUpgrade)> {
        let up = self.upgrade.take()?;
        self.finalize(em);
        Some((up, std::mem::take(&mut self.after_upgrade)))
    }

    /// The body in `side`'s state ended (complete or not).
    fn end_body(&mut self, side: Side, owner: Owner, ts: Timestamp, em: &mut Sink) {
        let half = self.half(side);
        let state = std::mem::replace(&mut half.state, State::Head);
        if let State::Body(reader, _) = state {
            self.end_body_with(owner, *reader, ts, em);
        }
    }

    fn end_body_with(&mut self, owner: Owner, reader: BodyReader, ts: Timestamp, em: &mut Sink) {
        let res = reader.finish();
        res.count(&mut em.stats);
        match owner {
            Owner::Request(id) => {
                if let Some(ex) = self.pending.iter_mut().find(|e| e.id == id) {
                    if let Some(r) = ex.req.as_mut() {
                        r.body = res.request_body(r.content_type.as_deref());
                        r.ts_end = ts.shifted(ex.clock_shift);
                    }
                    ex.req_done = true;
                }
                self.request_done(id, em);
            }
            Owner::Response(id) => {
                if let Some(ex) = self.pending.iter_mut().find(|e| e.id == id) {
                    if ex.req.is_some() {
                        self.answered_unplaced = true;
                    }
                    if let Some(r) = ex.resp.as_mut() {
                        r.body = res.response_body();
                        r.ts_end = ts;
                        if let Some(id) = res.decoded_whole.as_deref().and_then(json_id) {
                            r.resource_id = Some(id);
                        }
                    }
                    ex.resp_done = true;
                }
            }
        }
        self.emit_ready(em);
    }

    fn tx_id(&self, n: u64) -> TxId {
        TxId {
            flow_id: self.flow_id,
            flow_serial: self.serial,
            n,
        }
    }

    /// The client a trusted proxy's forwarding headers name, if the settings ask for one.
    fn forwarded_client(&self, values: &[(u8, String)]) -> Option<std::net::IpAddr> {
        let c = self.client.unwrap_or(Side(0));
        self.cfg.forwarded_client(self.ends[c.index()].ip, values)
    }

    /// The gateway's clock against ours (ns to add), for a request that reached us at
    /// `arrival`.
    fn gateway_shift(&self, value: Option<&str>, arrival: Timestamp) -> i64 {
        let c = self.client.unwrap_or(Side(0));
        self.cfg
            .gateway_shift(self.ends[c.index()].ip, value, arrival)
    }

    /// The connection an exchange's events carry: the client a trusted proxy named, if any.
    fn conn_for(&mut self, forwarded: Option<std::net::IpAddr>) -> Arc<Conn> {
        self.conn().with_client(forwarded)
    }

    /// Hands on an exchange whose request was fully received.
    fn request_done(&mut self, id: u64, em: &mut Sink) {
        let Some((req, fwd)) = self
            .pending
            .iter()
            .find(|e| e.id == id)
            .and_then(|e| e.req.clone().map(|r| (r, e.forwarded_client)))
        else {
            return;
        };
        let ev = HttpEvent::Request {
            id: self.tx_id(id),
            conn: self.conn_for(fwd),
            request: Box::new(req),
        };
        em.push(self.serial, ev);
    }

    fn emit_exchange(&mut self, ex: Box<Exchange>, em: &mut Sink) {
        let ex = *ex;
        let ts_done = ex
            .resp
            .as_ref()
            .filter(|_| ex.resp_done)
            .map(|r| r.ts_end)
            .unwrap_or(em.now);
        let response_lost =
            ex.resp.is_none() && (ex.resp_lost || self.server_gaps != ex.server_gaps_at_start);
        let tx = Transaction {
            id: self.tx_id(ex.id),
            conn: self.conn_for(ex.forwarded_client),
            request: ex.req,
            response: ex.resp,
            ts_done: ts_done.max(em.now),
            server_seen: self.server_seen,
            response_lost,
            not_processed: false,
        };
        em.push(self.serial, HttpEvent::Transaction(Box::new(tx)));
    }

    /// Writes the exchanges at the front that are finished, in order.
    fn emit_ready(&mut self, em: &mut Sink) {
        while self
            .pending
            .front()
            .is_some_and(|e| e.req_done && e.resp_done)
        {
            if let Some(ex) = self.pending.pop_front() {
                self.emit_exchange(ex, em);
            }
        }
    }

    /// Both directions ended: write everything still pending.
    fn finalize(&mut self, em: &mut Sink) {
        while let Some(ex) = self.pending.pop_front() {
            if ex.req.is_some() && !ex.resp_started {
                em.stats.http_requests_unanswered += 1;
            }
            self.emit_exchange(ex, em);
        }
    }
}

/// Each side's bytes after a switch to HTTP/2, in order.
pub type AfterUpgrade = Vec<(Side, Vec<u8>)>;

/// `HTTP2-Settings`: a SETTINGS payload in base64url without padding (RFC 7540 section
/// 3.2.1); `None` when it is not one.
fn decode_http2_settings(v: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let t = v.trim().trim_end_matches('=');
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    (payload.len() % 6 == 0).then_some(payload)
}

impl StreamSink for Session {
    type Ctx = Sink;

    fn on_client_side(&mut self, side: Side, _ctx: &mut Sink) {
        if self.client.is_none() {
            self.client = Some(side);
        }
        // A handshake was seen: this connection starts at its beginning, where the first
        // message starts; nothing was lost before any later one.
        if self.pending.is_empty() && self.next_id == 0 {
            self.desync = false;
            for half in &mut self.halves {
                if matches!(half.state, State::Sync) && half.buf.is_empty() {
                    half.sync = SyncMode::Lines {
                        at_line_start: true,
                    };
                }
            }
        }
    }

    fn on_data(&mut self, side: Side, chunk: Chunk<'_>, ctx: &mut Sink) {
        if self.role(side) == Role::Responses {
            self.server_seen = true;
        }
        match self.role(side) {
            Role::Responses => {
                // Nothing more comes from a client whose stream ended (an ACK of its FIN counts
                // one past its data).
                let client_ended = self.client.is_some_and(|c| self.halves[c.index()].ended);
                let early = !client_ended && chunk.peer_ack.is_some_and(|a| a > self.client_end);
                if !self.held.is_empty() || early {
                    ctx.stats.http_held_chunks += 1;
                    self.hold(Held::Data {
                        offset: chunk.offset,
                        bytes: chunk.bytes.to_vec(),
                        ts: chunk.ts,
                        peer_ack: chunk.peer_ack,
                        vlans: chunk.vlans,
                    });
                    self.release(chunk.ts, false, ctx);
                } else {
                    self.feed(side, chunk, ctx);
                }
            }
            Role::Requests => {
                self.feed(side, chunk, ctx);
                self.client_end = self.client_end.max(chunk.offset + chunk.bytes.len() as u64);
                self.release(chunk.ts, false, ctx);
            }
            Role::Unknown => {
                self.feed(side, chunk, ctx);
                if let Some(c) = self.client {
                    // The roles were learnt from these bytes.
                    if c == side {
                        self.client_end =
                            self.client_end.max(chunk.offset + chunk.bytes.len() as u64);
                    }
                }
            }
        }
    }

    fn on_tick(&mut self, now: Timestamp, ctx: &mut Sink) {
        self.release(now, false, ctx);
    }

    fn wants_tick(&self) -> bool {
        !self.held.is_empty()
    }

    fn on_gap(&mut self, side: Side, offset: u64, len: u64, ts: Timestamp, ctx: &mut Sink) {
        if self.role(side) == Role::Responses {
            self.server_seen = true;
        }
        if self.role(side) == Role::Responses && !self.held.is_empty() {
            self.hold(Held::Gap { offset, len, ts });
            return;
        }
        self.gap(side, offset, len, ts, ctx);
        if self.role(side) == Role::Requests {
            self.client_end = self.client_end.max(offset + len);
            self.release(ts, false, ctx);
        }
    }

    fn on_end(&mut self, side: Side, reason: EndReason, ts: Timestamp, ctx: &mut Sink) {
        if self.role(side) == Role::Responses && !self.held.is_empty() {
            // The server's end comes after what is held; the client may still catch up.
            self.hold(Held::End { reason, ts });
            return;
        }
        // Whatever is held is older than the end: read it first.
        self.release(ts, true, ctx);
        self.end(side, reason, ts, ctx);
    }
}

impl Session {
    /// Holds server bytes (or their gap or end) behind the client's stream.
    fn hold(&mut self, h: Held) {
        self.held.push(h);
    }

    /// Parses held server bytes that the client's stream has caught up with, or that waited
    /// too long, or all of them (`all`).
    fn release(&mut self, now: Timestamp, all: bool, em: &mut Sink) {
        let Some(server) = self.client.map(Side::other) else {
            return;
        };
        while let Some(next) = self.held.pop_due(now, self.client_end, all) {
            match next {
                Held::Data {
                    offset,
                    bytes,
                    ts,
                    peer_ack,
                    vlans,
                } => {
                    let chunk = Chunk {
                        offset,
                        bytes: &bytes,
                        ts,
                        peer_ack,
                        vlans,
                    };
                    self.feed(server, chunk, em);
                }
                Held::Gap { offset, len, ts } => self.gap(server, offset, len, ts, em),
                Held::End { reason, ts } => self.end(server, reason, ts, em),
            }
        }
    }

    /// Marks the requests whose responses began inside the server-side hole `[g0, g1)`: they
    /// get no response from after it. The server's bytes after a response are the next
    /// response, so a hole that starts between responses (`at_boundary`) holds the start of
    /// the earliest unanswered request's one, unless the client had received the whole hole
    /// before sending that request. A later request sent once the client had received part of
    /// the hole (its ACK falls inside it, past the previous request's) was answered inside it
    /// too. Whatever comes after the hole is then paired with the right request.
    fn responses_in_hole(&mut self, g0: u64, g1: u64, at_boundary: bool) {
        let mut prev_ack: Option<u64> = None;
        let mut first = at_boundary;
        for e in self.pending.iter_mut() {
            let Some(r) = e.req.as_ref() else {
                continue;
            };
            let ack = r.peer_ack_at_start;
            if e.resp_started || e.resp_lost {
                // Answered, being answered (the hole may cut its body), or known lost.
                prev_ack = ack;
                first = false;
                continue;
            }
            let lost = if first {
                ack.is_none_or(|a| a < g1)
            } else {
                ack.is_some_and(|a| a >= g0 && a < g1 && prev_ack.is_none_or(|p| a > p))
            };
            if !lost {
                break;
            }
            e.resp_lost = true;
            e.resp_done = true;
            prev_ack = ack;
            first = false;
        }
    }

    fn gap(&mut self, side: Side, offset: u64, len: u64, ts: Timestamp, ctx: &mut Sink) {
        self.desync = true;
        let client = self.role(side) != Role::Responses;
        if !client {
            self.server_gaps += 1;
        }
        let half = self.half(side);
        let state = std::mem::replace(&mut half.state, State::Sync);
        half.sync = SyncMode::Segments;
        // Between two messages, or at the very start of a stream whose start is known.
        let at_boundary = half.buf.is_empty()
            && (matches!(state, State::Head) || (offset == 0 && matches!(state, State::Sync)));
        // Holes often swallow whole messages: the bytes right after one may start the next.
        half.buf.clear();
        half.start = None;
        if !client {
            self.responses_in_hole(offset, offset + len, at_boundary);
            self.emit_ready(ctx);
        }
        // Whether lost bytes may have held a message nobody will see.
        let unattributed = match state {
            State::Dead => {
                self.half(side).state = State::Dead;
                false
            }
            State::Sync | State::Head => true,
            State::Body(mut reader, owner) => match reader.gap(len) {
                GapEffect::Inside => {
                    self.half(side).state = State::Body(reader, owner);
                    false
                }
                GapEffect::Ended { rest } => {
                    self.end_body_with(owner, *reader, ts, ctx);
                    self.place_answered(offset + len - rest);
                    let half = self.half(side);
                    if rest == 0 {
                        half.state = State::Head;
                    }
                    rest > 0
                }
                GapEffect::FramingLost => {
                    self.end_body_with(owner, *reader, ts, ctx);
                    self.half(side).state = State::Sync;
                    // A chunked body lost its framing: the hole most likely held its rest
                    // only. A whole message besides would need a second segment lost in a
                    // row; assuming one was lost shifts every later pairing on the
                    // connection when it was not (responses left unpaired, the next
                    // request given the one after), which invents alerts.
                    false
                }
            },
        };
        if client && unattributed {
            self.client_lost = true;
        }
    }

    fn end(&mut self, side: Side, reason: EndReason, ts: Timestamp, ctx: &mut Sink) {
        if reason == EndReason::Fin && self.role(side) == Role::Responses {
            self.server_seen = true;
        }
        let half = self.half(side);
        half.ended = true;
        half.buf.clear();
        let state = std::mem::replace(&mut half.state, State::Dead);
        if let State::Body(mut reader, owner) = state {
            reader.end_of_stream();
            self.end_body_with(owner, *reader, ts, ctx);
        }
        if self.halves.iter().all(|h| h.ended) {
            self.finalize(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::hold::{HOLD_ENTRY_BYTES, HOLD_MAX_BYTES};
    use super::*;
    use crate::http::settings::{Limits, Settings};

    const C: Side = Side(0);
    const S: Side = Side(1);

    fn session() -> Session {
        let ep = |p| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: p,
        };
        let info = FlowInfo::new(ep(40000), ep(80), Timestamp(0), 0, 0);
        let mut s = Session::new(
            SessionSettings::new(&Settings::default(), &Limits::default()),
            &info,
        );
        s.on_client_side(C, &mut Sink::default());
        s
    }

    /// Feeds `data` at `offset` of `side`'s stream with the given peer ACK.
    fn feed(s: &mut Session, em: &mut Sink, side: Side, offset: u64, data: &[u8], ack: u64) {
        s.on_data(
            side,
            Chunk {
                offset,
                bytes: data,
                ts: Timestamp(1),
                peer_ack: Some(ack),
                vlans: Vlans::default(),
            },
            em,
        );
    }

    fn end(s: &mut Session, em: &mut Sink) {
        s.on_end(C, EndReason::Fin, Timestamp(2), em);
        s.on_end(S, EndReason::Fin, Timestamp(2), em);
    }

    fn txs(em: &Sink) -> Vec<&Transaction> {
        em.out
            .iter()
            .filter_map(|(_, e)| match e {
                HttpEvent::Transaction(t) => Some(&**t),
                _ => None,
            })
            .collect()
    }

    fn pairs(em: &Sink) -> Vec<(Option<String>, Option<u16>)> {
        em.out
            .iter()
            .filter_map(|(_, e)| match e {
                HttpEvent::Transaction(t) => Some(t),
                _ => None,
            })
            .map(|t| {
                (
                    t.request.as_ref().map(|r| r.path.clone()),
                    t.response.as_ref().map(|r| r.status),
                )
            })
            .collect()
    }

    fn resp(status: u16, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn pipelined_requests_pair_in_order() {
        let (mut s, mut em) = (session(), Sink::default());
        let reqs = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
        feed(&mut s, &mut em, C, 0, reqs, 0);
        let mut out = Vec::new();
        for (st, b) in [(201, "a"), (202, "bb"), (203, "ccc")] {
            out.extend(resp(st, b));
        }
        feed(&mut s, &mut em, S, 0, &out, reqs.len() as u64);
        end(&mut s, &mut em);
        assert_eq!(
            pairs(&em),
            vec![
                (Some("/1".into()), Some(201)),
                (Some("/2".into()), Some(202)),
                (Some("/3".into()), Some(203))
            ]
        );
    }

    #[test]
    fn head_split_into_single_bytes_parses_the_same() {
        let (mut s, mut em) = (session(), Sink::default());
        let req = b"POST /v1/charges?api_key=SECRET HTTP/1.1\r\nidempotency-key: \"k1\"\r\ncontent-length: 3\r\n\r\nabc";
        for (i, b) in req.iter().enumerate() {
            feed(&mut s, &mut em, C, i as u64, &[*b], 0);
        }
        feed(
            &mut s,
            &mut em,
            S,
            0,
            &resp(200, "{\"id\":\"ch_1\"}"),
            req.len() as u64,
        );
        end(&mut s, &mut em);
        let t = txs(&em)[0];
        let r = t.request.as_ref().unwrap();
        assert_eq!(r.path, "/v1/charges?api_key=REDACTED");
        assert_eq!(r.idempotency_key().as_deref(), Some("k1"));
        assert_eq!(r.body.len, 3);
        assert!(r.body.complete);
        let p = t.response.as_ref().unwrap();
        assert_eq!(p.resource_id.as_deref(), Some("ch_1"));
    }

    #[test]
    fn interim_100_continue_is_recorded_and_not_final() {
        let (mut s, mut em) = (session(), Sink::default());
        let head = b"POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
        feed(&mut s, &mut em, C, 0, head, 0);
        feed(
            &mut s,
            &mut em,
            S,
            0,
            b"HTTP/1.1 100 Continue\r\n\r\n",
            head.len() as u64,
        );
        feed(&mut s, &mut em, C, head.len() as u64, b"data", 25);
        feed(
            &mut s,
            &mut em,
            S,
            25,
            &resp(200, "ok"),
            head.len() as u64 + 4,
        );
        end(&mut s, &mut em);
        let t = txs(&em)[0];
        assert_eq!(t.response.as_ref().unwrap().interim, vec![100]);
        assert_eq!(t.response.as_ref().unwrap().status, 200);
        assert_eq!(t.request.as_ref().unwrap().body.len, 4);
    }

    #[test]
    fn head_response_has_no_body_and_the_next_exchange_pairs() {
        let (mut s, mut em) = (session(), Sink::default());
        let r1 = b"HEAD /a HTTP/1.1\r\n\r\n";
        feed(&mut s, &mut em, C, 0, r1, 0);
        let p1 = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        feed(&mut s, &mut em, S, 0, p1, r1.len() as u64);
        let r2 = b"GET /b HTTP/1.1\r\n\r\n";
        feed(&mut s, &mut em, C, r1.len() as u64, r2, p1.len() as u64);
        feed(
            &mut s,
            &mut em,
            S,
            p1.len() as u64,
            &resp(204, ""),
            (r1.len() + r2.len()) as u64,
        );
        end(&mut s, &mut em);
        assert_eq!(
            pairs(&em),
            vec![
                (Some("/a".into()), Some(200)),
                (Some("/b".into()), Some(204))
            ]
        );
        assert_eq!(txs(&em)[0].response.as_ref().unwrap().body.len, 0);
    }

    #[test]
    fn conflicting_content_lengths_never_invent_the_smuggled_request() {
        let (mut s, mut em) = (session(), Sink::default());
        let req = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n";
        feed(&mut s, &mut em, C, 0, req, 0);
        end(&mut s, &mut em);
        assert_eq!(pairs(&em), vec![(Some("/".into()), None)]);
        assert!(!txs(&em)[0].request.as_ref().unwrap().body.complete);
        assert_eq!(em.stats.http_bad_framing, 1);
    }

    #[test]
    fn chunked_identity_transfer_coding_is_chunked() {
        let (mut s, mut em) = (session(), Sink::default());
        let req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
        feed(&mut s, &mut em, C, 0, req, 0);
        end(&mut s, &mut em);
        assert_eq!(
            pairs(&em),
            vec![(Some("/".into()), None), (Some("/next".into()), None)]
        );
    }

    #[test]
    fn gap_in_a_response_body_marks_it_incomplete_and_the_next_pairs() {
        let (mut s, mut em) = (session(), Sink::default());
        let r1 = b"GET /1 HTTP/1.1\r\n\r\n";
        feed(&mut s, &mut em, C, 0, r1, 0);
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let n1 = r1.len() as u64;
        feed(&mut s, &mut em, S, 0, head, n1);
        feed(&mut s, &mut em, S, head.len() as u64, b"abc", n1);
        s.on_gap(S, head.len() as u64 + 3, 4, Timestamp(1), &mut em);
        feed(&mut s, &mut em, S, head.len() as u64 + 7, b"xyz", n1);
        let r2 = b"GET /2 HTTP/1.1\r\n\r\n";
        let p1_end = head.len() as u64 + 10;
        feed(&mut s, &mut em, C, n1, r2, p1_end);
        feed(
            &mut s,
            &mut em,
            S,
            p1_end,
            &resp(202, "b"),
            n1 + r2.len() as u64,
        );
        end(&mut s, &mut em);
        assert_eq!(
            pairs(&em),
            vec![
                (Some("/1".into()), Some(200)),
                (Some("/2".into()), Some(202))
            ]
        );
        let b = &txs(&em)[0].response.as_ref().unwrap().body;
        assert!(!b.complete);
        assert_eq!((b.len, b.missing, b.sha256), (10, 4, None));
    }

    #[test]
    fn lost_request_does_not_take_the_next_requests_response() {
        let (mut s, mut em) = (session(), Sink::default());
        let r1 = b"GET /1 HTTP/1.1\r\n\r\n";
        let n = r1.len() as u64;
        feed(&mut s, &mut em, C, 0, r1, 0);
        let p1 = resp(201, "a");
        feed(&mut s, &mut em, S, 0, &p1, n);
        // Request 2 is lost; its response is seen.
        s.on_gap(C, n, n, Timestamp(1), &mut em);
        let p2 = resp(202, "b");
        let p1n = p1.len() as u64;
        feed(&mut s, &mut em, S, p1n, &p2, 2 * n);
        let r3 = b"GET /3 HTTP/1.1\r\n\r\n";
        feed(&mut s, &mut em, C, 2 * n, r3, p1n + p2.len() as u64);
        feed(
            &mut s,
            &mut em,
            S,
            p1n + p2.len() as u64,
            &resp(203, "c"),
            3 * n,
        );
        end(&mut s, &mut em);
        assert_eq!(
            pairs(&em),
            vec![
                (Some("/1".into()), Some(201)),
                (None, Some(202)),
                (Some("/3".into()), Some(203))
            ]
        );
    }

    #[test]
    fn connection_picked_up_mid_body_resynchronises_on_the_next_request() {
        let (mut s, mut em) = (session(), Sink::default());
        feed(
            &mut s,
            &mut em,
            C,
            0,
            b"tail of a body\r\nGET /next HTTP/1.1\r\n\r\n",
            0,
        );
        end(&mut s, &mut em);
        assert_eq!(pairs(&em), vec![(Some("/next".into()), None)]);
        assert_eq!(em.stats.http_resync_skipped_bytes, 16);
    }

    /// The client's stream fed whole, then in pieces of `step` bytes: the paths seen each time.
    fn paths_whole_and_cut(
        stream: &[u8],
        step: usize,
    ) -> (Vec<Option<String>>, Vec<Option<String>>) {
        let run = |pieces: Vec<&[u8]>| {
            let (mut s, mut em) = (session(), Sink::default());
            let mut off = 0u64;
            for p in pieces {
                feed(&mut s, &mut em, C, off, p, 0);
                off += p.len() as u64;
            }
            end(&mut s, &mut em);
            pairs(&em).into_iter().map(|p| p.0).collect::<Vec<_>>()
        };
        (run(vec![stream]), run(stream.chunks(step).collect()))
    }

    #[test]
    fn segment_boundaries_after_bad_bytes_do_not_change_what_is_parsed() {
        // Found by fuzzing: after bytes that were not a head, every segment start was a
        // candidate start line, so a sender choosing its segments chose what idemwatch saw
        // (here: a request hidden from one run, or one conjured from the middle of a line).
        let stream = b"\xe8POST /a HTTP/1.1\r\nHost: x\r\n\r\nxxGET /hidden HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        for step in 1..12 {
            let (whole, cut) = paths_whole_and_cut(stream, step);
            assert_eq!(whole, cut, "pieces of {step}");
            assert_eq!(whole, vec![Some("/b".to_string())], "pieces of {step}");
        }
    }

    #[test]
    fn one_byte_server_segments_held_for_the_client_are_bounded_by_their_count_too() {
        let (mut s, mut em) = (session(), Sink::default());
        feed(&mut s, &mut em, C, 0, b"GET /a HTTP/1.1\r\n", 0);
        // The server's bytes acknowledge client bytes not seen yet: they are held.
        let reply = resp(200, &"x".repeat(20_000));
        for (i, b) in reply.iter().enumerate() {
            feed(&mut s, &mut em, S, i as u64, std::slice::from_ref(b), 1_000);
            assert!(
                s.held.len() <= HOLD_MAX_BYTES / HOLD_ENTRY_BYTES + 1,
                "{} chunks held",
                s.held.len()
            );
        }
        assert!(em.stats.http_held_chunks > 0);
    }

    #[test]
    fn a_head_over_the_limit_is_refused_whether_it_came_in_one_piece_or_many() {
        let limits = Limits {
            max_head_bytes: 256,
            ..Limits::default()
        };
        let long = format!(
            "POST /big HTTP/1.1\r\nX-Pad: {}\r\n\r\nGET /after HTTP/1.1\r\n\r\n",
            "p".repeat(400)
        );
        for step in [long.len(), 100, 7] {
            let (mut s, mut em) = (session(), Sink::default());
            s.cfg = SessionSettings::new(&Settings::default(), &limits);
            let mut off = 0u64;
            for p in long.as_bytes().chunks(step) {
                feed(&mut s, &mut em, C, off, p, 0);
                off += p.len() as u64;
            }
            end(&mut s, &mut em);
            assert_eq!(em.stats.http_head_too_large, 1, "pieces of {step}");
            assert_eq!(
                pairs(&em),
                vec![(Some("/after".into()), None)],
                "pieces of {step}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Whatever bytes, splits and gaps arrive, the session neither panics nor stalls, and
        /// emits at most one transaction per request head and response head it parsed.
        #[test]
        fn arbitrary_input_never_panics(
            chunks in proptest::collection::vec(
                (proptest::bool::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0u64..8),
                0..40,
            ),
            seed_http in proptest::bool::ANY,
        ) {
            let (mut s, mut em) = (session(), Sink::default());
            let mut off = [0u64; 2];
            if seed_http {
                feed(&mut s, &mut em, C, 0, b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0);
                off[0] = 49;
            }
            for (to_server, bytes, gap) in chunks {
                let side = if to_server { C } else { S };
                let i = side.index();
                if gap > 0 {
                    s.on_gap(side, off[i], gap, Timestamp(1), &mut em);
                    off[i] += gap;
                }
                let ack = off[1 - i];
                feed(&mut s, &mut em, side, off[i], &bytes, ack);
                off[i] += bytes.len() as u64;
            }
            end(&mut s, &mut em);
            proptest::prop_assert!(
                txs(&em).len() as u64 <= em.stats.http_requests + em.stats.http_responses
            );
        }
    }
}
