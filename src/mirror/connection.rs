//! The request path of one mirrored connection, without its socket: the peer's bytes in,
//! requests out, through the same HTTP reading as captured traffic (the peer is the client,
//! the server never speaks): HTTP/1.1, or HTTP/2 by ALPN `h2` or the connection preface.
//!
//! Takes plaintext bytes as read; gives the requests they finished, the bytes that answer them
//! (`204` each; over HTTP/2 also the server's SETTINGS, the acknowledgements, PING answers and
//! the flow-control credit the peer spent), and whether the connection must be closed (bytes
//! that are not HTTP, a head over the limits). Apart from the connection thread so that it can
//! be fuzzed and tested on its own.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::http::h2::session::Owed;
use crate::http::{HttpConn, HttpEvent, SessionSettings, Sink};
use crate::net::Endpoint;
use crate::reassembly::{Chunk, EndReason, FlowInfo, Side, StreamSink};
use crate::stats::Stats;
use crate::ts::Timestamp;

/// What one read of a mirrored connection gave.
pub struct MirrorFed {
    /// Requests (and their events) finished by these bytes, in order.
    pub events: Vec<HttpEvent>,
    /// Requests finished, each answered `204` in `reply`.
    pub answers: usize,
    /// What to write back.
    pub reply: Vec<u8>,
    /// Not HTTP, or a head over the limits: the connection must be closed.
    pub bad: bool,
    /// HTTP/2 with no request being received: frames between requests (PING, SETTINGS) do
    /// not start one, so its timeout does not run.
    pub idle: bool,
}

/// The `204` each mirrored HTTP/1.1 request gets.
const ANSWER: &[u8] = b"HTTP/1.1 204 No Content\r\nServer: idemwatch\r\n\r\n";

/// `:status: 204`, index 9 of HPACK's static table (RFC 7541 appendix A): a header block
/// that needs no dynamic table on either side.
const STATUS_204: &[u8] = &[0x80 | 9];
/// SETTINGS_INITIAL_WINDOW_SIZE (0x4) at its largest: no stream waits for credit.
const MAX_WINDOW: u32 = (1 << 31) - 1;
/// The connection's window before any WINDOW_UPDATE.
const DEFAULT_WINDOW: u32 = 65_535;

/// What the mirror has told an HTTP/2 peer so far.
#[derive(Default)]
struct H2Answer {
    started: bool,
    /// DATA bytes credited back to the connection's window.
    credited: u64,
}

impl H2Answer {
    /// The frames that pay what the session says is owed.
    fn reply(&mut self, owed: Owed, out: &mut Vec<u8>) {
        use crate::http::h2::frame::{flags::*, frame_type::*, write as frame};
        if !std::mem::replace(&mut self.started, true) {
            // The server's preface: its SETTINGS, then the connection's window opened wide.
            let mut settings = Vec::with_capacity(6);
            settings.extend_from_slice(&0x4u16.to_be_bytes());
            settings.extend_from_slice(&MAX_WINDOW.to_be_bytes());
            frame(out, SETTINGS, 0, 0, &settings);
            frame(
                out,
                WINDOW_UPDATE,
                0,
                0,
                &(MAX_WINDOW - DEFAULT_WINDOW).to_be_bytes(),
            );
        }
        for _ in 0..owed.settings_acks {
            frame(out, SETTINGS, ACK, 0, &[]);
        }
        for data in owed.pings {
            frame(out, PING, ACK, 0, &data);
        }
        for id in owed.answer {
            frame(out, HEADERS, END_HEADERS | END_STREAM, id, STATUS_204);
        }
        // What the peer spent is given back, so that its window never closes.
        let spent = owed.data_bytes.saturating_sub(self.credited);
        if let Ok(n) = u32::try_from(spent)
            && n > 0
            && n <= MAX_WINDOW
        {
            frame(out, WINDOW_UPDATE, 0, 0, &n.to_be_bytes());
            self.credited = owed.data_bytes;
        }
    }
}

/// The request path of one mirrored connection: bytes in, requests out.
pub struct MirrorConnection {
    session: HttpConn,
    h2: H2Answer,
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
        let mut session = HttpConn::new(settings, &info).answering();
        let mut em = Sink::default();
        session.on_client_side(CLIENT, &mut em);
        MirrorConnection {
            session,
            h2: H2Answer::default(),
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
        let mut reply = Vec::new();
        let mut idle = false;
        match self.session.h2() {
            Some(h2) => {
                self.h2.reply(h2.take_owed(), &mut reply);
                idle = h2.requests_in_progress() == 0;
            }
            None => reply = ANSWER.repeat(answers),
        }
        let st = &self.em.stats;
        let bad = st.http_parse_errors
            + st.http_resync_skipped_bytes
            + st.http_head_too_large
            + st.http_too_many_headers
            + st.http2_directions_lost
            + st.http2_headers_undecodable
            > 0;
        MirrorFed {
            events,
            answers,
            reply,
            bad,
            idle,
        }
    }

    /// TLS chose `h2` by ALPN: the peer speaks HTTP/2 from its first byte.
    pub fn set_h2(&mut self) {
        self.session.set_h2(CLIENT, &mut self.em);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::h2::frame::{Event, FrameReader, PREFACE, Side as Sender, flags, frame_type};
    use crate::http::{Limits, Settings};

    fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        crate::http::h2::frame::write(&mut f, ty, flags, stream, payload);
        f
    }

    fn conn() -> MirrorConnection {
        let mut cfg = SessionSettings::new(&Settings::default(), &Limits::default());
        crate::mirror::mirrored(&mut cfg, &[]);
        let a: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:443".parse().expect("addr");
        MirrorConnection::new(cfg, a, b, 0)
    }

    /// The frames of a reply, as a client reads them.
    fn read(reply: &[u8]) -> Vec<String> {
        let mut r = FrameReader::new(Sender::Server, 1 << 16);
        let mut out = Vec::new();
        r.push(reply, |e| {
            out.push(match e {
                Event::Settings { ack, settings } => format!("SETTINGS ack={ack} {settings:?}"),
                Event::WindowUpdate { stream, increment } => {
                    format!("WINDOW_UPDATE {stream} {increment}")
                }
                Event::Ping { ack, data } => format!("PING ack={ack} {data:?}"),
                Event::HeaderBlock {
                    stream,
                    block,
                    end_stream,
                } => {
                    format!("HEADERS {stream} {block:?} end={end_stream}")
                }
                other => format!("{other:?}"),
            })
        });
        assert!(r.failed().is_none());
        out
    }

    #[test]
    fn an_http2_peer_gets_settings_acknowledgements_pings_credit_and_a_204_per_stream() {
        let mut c = conn();
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(frame_type::SETTINGS, 0, 0, &[]));
        bytes.extend(frame(frame_type::PING, 0, 0, &[7; 8]));
        // HEADERS: :method POST, :scheme https, :path / (static indexes 3, 7, 4).
        bytes.extend(frame(
            frame_type::HEADERS,
            flags::END_HEADERS,
            1,
            &[0x83, 0x87, 0x84],
        ));
        bytes.extend(frame(0x0, flags::END_STREAM, 1, b"amount=1"));
        let fed = c.feed(&bytes, Timestamp(1));
        assert!(!fed.bad && fed.idle);
        assert_eq!(fed.answers, 1);
        assert_eq!(
            read(&fed.reply),
            [
                "SETTINGS ack=false [(4, 2147483647)]",
                "WINDOW_UPDATE 0 2147418112",
                "SETTINGS ack=true []",
                "PING ack=true [7, 7, 7, 7, 7, 7, 7, 7]",
                "HEADERS 1 [137] end=true",
                "WINDOW_UPDATE 0 8",
            ]
        );
        // A request begun and not ended: its timeout runs.
        let fed = c.feed(
            &frame(
                frame_type::HEADERS,
                flags::END_HEADERS,
                3,
                &[0x83, 0x87, 0x84],
            ),
            Timestamp(2),
        );
        assert!(!fed.idle && fed.reply.is_empty());
        // HTTP/1.1 on another connection is answered as before.
        let mut h1 = conn();
        let fed = h1.feed(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            Timestamp(1),
        );
        assert_eq!(fed.reply, ANSWER);
    }
}
