//! The `tls` stage between reassembly and HTTP: a connection whose first bytes are a TLS
//! handshake record is decrypted with the key log ([`TlsConn`]) and its plaintext handed to
//! the HTTP session as if it were the TCP stream; any other connection goes to the session
//! untouched.
//!
//! Takes each direction's ordered bytes and gaps (a [`StreamSink`]); gives the session the
//! plaintext, in plaintext offsets, with the connection's TLS version and SNI. A connection
//! that cannot be decrypted is counted with its reason and never parsed as HTTP; one that
//! chose HTTP/2 by ALPN is counted and read as HTTP/2 from its first byte. Plaintext offsets know no TCP
//! acknowledgements, so decrypted data carries none.
//!
//! With `live`, key logs are followed and a secret may be read after its connection's
//! records (the application writes it, the follower polls): such a connection *holds* its
//! records (bounded by [`super::conn::MAX_WAITING`]) and its end for at most [`KEY_WAIT_NS`]
//! of capture time, and is tried again each time the key log grows. Records opened late are
//! handed on with the time and VLANs of the connection's last segment. With `read` the key
//! log is complete before the first packet, nothing holds, and a connection whose secrets are
//! missing is given up when its server side ends.

use std::sync::Arc;

use super::Keys;
use super::conn::{TlsConn, TlsEvent, Undecrypted};
use super::record::version;
use super::sessions::SessionCache;
use crate::http::transaction::TlsInfo;
use crate::http::{HttpConn, Sink};
use crate::net::Vlans;
use crate::reassembly::{Chunk, EndReason, Side, StreamSink};
use crate::ts::Timestamp;

enum Mode {
    /// No byte yet.
    Undecided,
    /// Not TLS: the session takes the bytes as they are.
    Plain,
    Tls(Box<Tls>),
}

struct Tls {
    conn: TlsConn,
    /// Plaintext handed on so far, per side.
    offsets: [u64; 2],
    /// The side that sent the first handshake record, when the TCP handshake was not seen.
    first: Side,
    decrypted: bool,
    undecrypted: Option<Undecrypted>,
    h2: bool,
    /// Its counters were added.
    counted: bool,
    /// The key-log generation last tried.
    tried: u64,
    /// Since when it holds for secrets (followed key logs only).
    holding_since: Option<Timestamp>,
    /// Ends that came while it held, handed on once it stops holding.
    ends: Vec<(Side, EndReason, Timestamp)>,
    /// It held for [`KEY_WAIT_NS`] and no secret came: it holds no more.
    gave_up: bool,
    /// Time and VLANs of the last segment, for records opened late.
    last: (Timestamp, Vlans),
}

/// How long (capture time) a connection holds for secrets a followed key log has not given.
pub const KEY_WAIT_NS: u64 = 5_000_000_000;

/// A connection's stages after reassembly.
pub struct TlsStage {
    session: HttpConn,
    keys: Arc<Keys>,
    client: Option<Side>,
    mode: Mode,
    events: Vec<TlsEvent>,
    sessions: Option<Arc<SessionCache>>,
}

impl TlsStage {
    pub fn new(session: HttpConn, keys: Arc<Keys>) -> TlsStage {
        TlsStage {
            session,
            keys,
            client: None,
            mode: Mode::Undecided,
            events: Vec::new(),
            sessions: None,
        }
    }

    /// Resumed TLS 1.2 sessions are looked up in `sessions` (the run's session cache).
    pub fn with_sessions(mut self, sessions: Option<Arc<SessionCache>>) -> TlsStage {
        self.sessions = sessions;
        self
    }

    /// Hands on what the connection gave.
    fn flush(&mut self, ts: Timestamp, vlans: &Vlans, ctx: &mut Sink) {
        let Mode::Tls(tls) = &mut self.mode else {
            return;
        };
        let client = self.client.unwrap_or(tls.first);
        for ev in self.events.drain(..) {
            match ev {
                TlsEvent::Hello {
                    version: v,
                    sni,
                    alpn,
                    ..
                } => {
                    let version = if v == version::TLS13 {
                        "TLS 1.3"
                    } else {
                        "TLS 1.2"
                    };
                    self.session.set_tls(TlsInfo {
                        version,
                        sni: sni.map(Into::into),
                    });
                    if alpn.as_deref() == Some(b"h2") {
                        tls.h2 = true;
                        self.session.set_h2(client, ctx);
                    }
                }
                TlsEvent::Alpn(a) => {
                    if a == b"h2" {
                        tls.h2 = true;
                        self.session.set_h2(client, ctx);
                    }
                }
                TlsEvent::Data { from_client, bytes } => {
                    tls.decrypted = true;
                    let side = if from_client { client } else { client.other() };
                    let i = side.index();
                    let chunk = Chunk {
                        offset: tls.offsets[i],
                        bytes: &bytes,
                        ts,
                        peer_ack: None,
                        vlans: *vlans,
                    };
                    tls.offsets[i] += bytes.len() as u64;
                    self.session.on_data(side, chunk, ctx);
                }
                TlsEvent::Failed { from_client, len } => {
                    ctx.stats.tls_records_failed += 1;
                    // What the record held is lost: the session marks its hole there.
                    let side = if from_client { client } else { client.other() };
                    let i = side.index();
                    let at = tls.offsets[i];
                    tls.offsets[i] += len as u64;
                    if tls.decrypted {
                        self.session.on_gap(side, at, len as u64, ts, ctx);
                    }
                }
                TlsEvent::Lost { why, .. } => {
                    tls.undecrypted.get_or_insert(why);
                }
            }
        }
    }
}

impl StreamSink for TlsStage {
    type Ctx = Sink;

    fn on_client_side(&mut self, side: Side, ctx: &mut Sink) {
        if self.client.is_none() {
            self.client = Some(side);
        }
        self.session.on_client_side(side, ctx);
    }

    fn on_data(&mut self, side: Side, chunk: Chunk<'_>, ctx: &mut Sink) {
        if matches!(self.mode, Mode::Undecided) {
            self.mode = if TlsConn::looks_like_tls(chunk.bytes) {
                ctx.stats.tls_sessions += 1;
                Mode::Tls(Box::new(Tls {
                    conn: TlsConn::with_sessions(self.sessions.clone()),
                    offsets: [0; 2],
                    first: side,
                    decrypted: false,
                    undecrypted: None,
                    h2: false,
                    counted: false,
                    tried: self.keys.generation(),
                    holding_since: None,
                    ends: Vec::new(),
                    gave_up: false,
                    last: (chunk.ts, chunk.vlans),
                }))
            } else {
                Mode::Plain
            };
        }
        let Mode::Tls(tls) = &mut self.mode else {
            self.session.on_data(side, chunk, ctx);
            return;
        };
        let from_client = side == self.client.unwrap_or(tls.first);
        tls.last = (chunk.ts, chunk.vlans);
        {
            let keys = self.keys.read();
            if self.keys.is_followed() {
                let g = self.keys.generation();
                if g != tls.tried {
                    tls.tried = g;
                    tls.conn.retry(&keys, &mut self.events);
                }
            }
            tls.conn
                .on_data(from_client, chunk.bytes, &keys, &mut self.events);
        }
        self.flush(chunk.ts, &chunk.vlans, ctx);
        self.after_progress(chunk.ts, ctx);
    }

    fn on_gap(&mut self, side: Side, offset: u64, len: u64, ts: Timestamp, ctx: &mut Sink) {
        let Mode::Tls(tls) = &mut self.mode else {
            self.session.on_gap(side, offset, len, ts, ctx);
            return;
        };
        let client = self.client.unwrap_or(tls.first);
        tls.conn.on_gap(side == client);
        // The plaintext lost is about the ciphertext lost: the session marks its hole there.
        let i = side.index();
        let at = tls.offsets[i];
        tls.offsets[i] += len;
        if tls.decrypted {
            self.session.on_gap(side, at, len, ts, ctx);
        }
    }

    fn on_end(&mut self, side: Side, reason: EndReason, ts: Timestamp, ctx: &mut Sink) {
        if self.holding() {
            if let Mode::Tls(tls) = &mut self.mode {
                if tls.ends.is_empty() {
                    tracing::debug!("TLS connection ended before its secrets were read: held");
                }
                tls.ends.push((side, reason, ts));
                tls.holding_since.get_or_insert(ts);
            }
            return;
        }
        self.end(side, reason, ts, ctx);
    }

    fn on_tick(&mut self, now: Timestamp, ctx: &mut Sink) {
        self.session.on_tick(now, ctx);
        self.wake(now, ctx);
    }

    fn wants_tick(&self) -> bool {
        self.session.wants_tick() || self.holding()
    }

    fn holds(&self) -> bool {
        self.holding()
    }

    fn on_wake(&mut self, now: Timestamp, ctx: &mut Sink) {
        self.wake(now, ctx);
    }
}

impl TlsStage {
    /// Whether it waits for secrets a followed key log may still give.
    fn holding(&self) -> bool {
        match &self.mode {
            Mode::Tls(tls) => {
                self.keys.is_followed()
                    && !tls.gave_up
                    && (tls.conn.waits_for_secrets() || tls.conn.has_waiting())
            }
            _ => false,
        }
    }

    /// After records were taken: starts or stops holding; once it stops, the ends that came
    /// meanwhile are handed on.
    fn after_progress(&mut self, ts: Timestamp, ctx: &mut Sink) {
        let holding = self.holding();
        let Mode::Tls(tls) = &mut self.mode else {
            return;
        };
        if holding {
            tls.holding_since.get_or_insert(ts);
            return;
        }
        tls.holding_since = None;
        let ends = std::mem::take(&mut tls.ends);
        for (side, reason, at) in ends {
            self.end(side, reason, at, ctx);
        }
    }

    /// The key log may have grown, or time passed: tries again, or gives up past
    /// [`KEY_WAIT_NS`].
    fn wake(&mut self, now: Timestamp, ctx: &mut Sink) {
        if !self.holding() {
            return;
        }
        let Mode::Tls(tls) = &mut self.mode else {
            return;
        };
        let g = self.keys.generation();
        if g != tls.tried {
            tls.tried = g;
            let keys = self.keys.read();
            tls.conn.retry(&keys, &mut self.events);
        }
        let since = tls.holding_since.unwrap_or(now);
        let (ts, vlans) = tls.last;
        if now.since(since) > KEY_WAIT_NS
            && (tls.conn.waits_for_secrets() || tls.conn.has_waiting())
        {
            tls.gave_up = true;
            tls.conn.finish(&mut self.events);
        }
        self.flush(ts, &vlans, ctx);
        self.after_progress(ts, ctx);
    }

    /// A side ended (not holding): the connection is over once its server side ends.
    fn end(&mut self, side: Side, reason: EndReason, ts: Timestamp, ctx: &mut Sink) {
        let server_end = match &self.mode {
            Mode::Tls(tls) => side != self.client.unwrap_or(tls.first),
            _ => false,
        };
        if server_end {
            // The connection is over once its server side ends: what waited for a secret
            // never got it.
            if let Mode::Tls(tls) = &mut self.mode {
                tls.conn.finish(&mut self.events);
            }
            self.flush(ts, &Vlans::default(), ctx);
            if let Mode::Tls(tls) = &mut self.mode {
                count_end(tls, ctx);
            }
        }
        self.session.on_end(side, reason, ts, ctx);
    }
}

/// A TLS connection's counters, once, when it ends.
fn count_end(tls: &mut Tls, ctx: &mut Sink) {
    if std::mem::replace(&mut tls.counted, true) {
        return;
    }
    let st = &mut ctx.stats;
    st.tls_early_data_skipped += tls.conn.early_skipped;
    if tls.h2 {
        st.tls_sessions_h2 += 1;
    }
    if tls.decrypted || tls.conn.keyed_both() {
        st.tls_sessions_decrypted += 1;
        return;
    }
    st.tls_sessions_undecrypted += 1;
    match tls.undecrypted.unwrap_or(Undecrypted::NoSecret) {
        Undecrypted::NoSecret => st.tls_undecrypted_no_secret += 1,
        Undecrypted::UnsupportedSuite => st.tls_undecrypted_unsupported_suite += 1,
        Undecrypted::Ech => st.tls_undecrypted_ech += 1,
        Undecrypted::NotTls
        | Undecrypted::Authentication
        | Undecrypted::Gap
        | Undecrypted::TooMuchWaiting => st.tls_undecrypted_broken += 1,
    }
}
