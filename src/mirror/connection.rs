//! The request path of one mirrored connection, without its socket: the peer's bytes in,
//! requests out, through the same HTTP session as captured traffic (the peer is the client,
//! the server never speaks).
//!
//! Takes plaintext bytes as read; gives the requests they finished, how many to answer, and
//! whether the connection must be closed (bytes that are not HTTP, a head over the limits).
//! Apart from the connection thread so that it can be fuzzed and tested on its own.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::http::{HttpEvent, Session, SessionSettings, Sink};
use crate::net::Endpoint;
use crate::reassembly::{Chunk, EndReason, FlowInfo, Side, StreamSink};
use crate::stats::Stats;
use crate::ts::Timestamp;

/// What one read of a mirrored connection gave.
pub struct MirrorFed {
    /// Requests (and their events) finished by these bytes, in order.
    pub events: Vec<HttpEvent>,
    /// Requests to answer `204`.
    pub answers: usize,
    /// Not HTTP, or a head over the limits: the connection must be closed.
    pub bad: bool,
}

/// The request path of one mirrored connection: bytes in, requests out.
pub struct MirrorConnection {
    session: Session,
    em: Sink,
    offset: u64,
}

impl MirrorConnection {
    pub fn new(
        settings: Arc<SessionSettings>,
        peer: SocketAddr,
        local: SocketAddr,
        serial: u64,
    ) -> Self {
        let ep = |a: SocketAddr| Endpoint {
            ip: a.ip(),
            port: a.port(),
        };
        let info = FlowInfo::new(ep(peer), ep(local), Timestamp::now(), serial, 0);
        let mut session = Session::new(settings, &info);
        let mut em = Sink::default();
        session.on_client_side(CLIENT, &mut em);
        MirrorConnection {
            session,
            em,
            offset: 0,
        }
    }

    /// Feeds the next bytes the peer sent.
    pub fn feed(&mut self, bytes: &[u8], ts: Timestamp) -> MirrorFed {
        self.em.advance(ts);
        self.session.on_data(
            CLIENT,
            Chunk {
                offset: self.offset,
                bytes,
                ts,
                peer_ack: None,
                vlans: Default::default(),
            },
            &mut self.em,
        );
        self.offset += bytes.len() as u64;
        let events: Vec<HttpEvent> = std::mem::take(&mut self.em.out)
            .into_iter()
            .map(|(_, ev)| ev)
            .collect();
        let answers = events
            .iter()
            .filter(|ev| matches!(ev, HttpEvent::Request { .. }))
            .count();
        let st = &self.em.stats;
        let bad = st.http_parse_errors
            + st.http_resync_skipped_bytes
            + st.http_head_too_large
            + st.http_too_many_headers
            > 0;
        MirrorFed {
            events,
            answers,
            bad,
        }
    }

    /// Ends the connection: its last events and its counters.
    pub fn end(mut self, reason: EndReason, ts: Timestamp) -> (Vec<HttpEvent>, Stats) {
        self.session.on_end(CLIENT, reason, ts, &mut self.em);
        self.session
            .on_end(CLIENT.other(), reason, ts, &mut self.em);
        let events = std::mem::take(&mut self.em.out)
            .into_iter()
            .map(|(_, ev)| ev)
            .collect();
        (events, std::mem::take(&mut self.em.stats))
    }
}

/// The mirror's peer is always the client.
const CLIENT: Side = Side(0);
