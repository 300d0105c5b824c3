//! HTTP/2 sessions fed whole connections through [`HttpConn`], as reassembly would: each
//! claim beside its near miss. Header blocks are written by hand with the simplest HPACK
//! representations (literal fields, static and dynamic indexes), so every byte is known.

use std::sync::Arc;

use crate::http::h2::frame::{PREFACE, flags, frame_type, write};
use crate::http::settings::{Limits, Settings};
use crate::http::{HttpConn, HttpEvent, Protocol, SessionSettings, Sink, Transaction};
use crate::net::{Endpoint, Vlans};
use crate::reassembly::{Chunk, EndReason, FlowInfo, Side, StreamSink};
use crate::ts::Timestamp;

const C: Side = Side(0);
const S: Side = Side(1);

const DATA: u8 = frame_type::DATA;
const HEADERS: u8 = frame_type::HEADERS;
const RST_STREAM: u8 = frame_type::RST_STREAM;
const SETTINGS: u8 = frame_type::SETTINGS;
const GOAWAY: u8 = frame_type::GOAWAY;
const CONTINUATION: u8 = frame_type::CONTINUATION;
const END_STREAM: u8 = flags::END_STREAM;
const END_HEADERS: u8 = flags::END_HEADERS;

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    write(&mut f, ty, flags, stream, payload);
    f
}

/// A literal field without indexing, new name (RFC 7541 section 6.2.2); short strings only.
fn lit(name: &str, value: &str) -> Vec<u8> {
    let mut b = vec![0x00, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b.push(value.len() as u8);
    b.extend_from_slice(value.as_bytes());
    b
}

/// A literal field with incremental indexing, new name (section 6.2.1): enters the table.
fn lit_indexed(name: &str, value: &str) -> Vec<u8> {
    let mut b = lit(name, value);
    b[0] = 0x40;
    b
}

/// A POST to /v1/charges on api.example.com, with `extra` fields after.
fn post(extra: &[u8]) -> Vec<u8> {
    let mut b = vec![0x83, 0x87]; // :method POST, :scheme https (static table)
    b.extend(lit(":path", "/v1/charges"));
    b.extend(lit(":authority", "api.example.com"));
    b.extend_from_slice(extra);
    b
}

fn status(code: &str) -> Vec<u8> {
    lit(":status", code)
}

fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

struct Wire {
    conn: HttpConn,
    em: Sink,
    off: [u64; 2],
    t: i64,
}

impl Wire {
    fn new() -> Wire {
        Wire::with(Limits::default())
    }

    /// A connection picked up without its handshake: which side is the client is unknown.
    fn unknown_client() -> Wire {
        let mut w = Wire::new();
        let info = FlowInfo::new(
            Endpoint {
                ip: "10.0.0.1".parse().expect("ip"),
                port: 40000,
            },
            Endpoint {
                ip: "10.0.0.1".parse().expect("ip"),
                port: 80,
            },
            Timestamp(0),
            0,
            0,
        );
        let cfg = SessionSettings::new(&Settings::default(), &Limits::default());
        w.conn = HttpConn::new(cfg, &info);
        w
    }

    fn with(limits: Limits) -> Wire {
        let ep = |p| Endpoint {
            ip: "10.0.0.1".parse().expect("ip"),
            port: p,
        };
        let info = FlowInfo::new(ep(40000), ep(80), Timestamp(0), 0, 0);
        let cfg: Arc<SessionSettings> = SessionSettings::new(&Settings::default(), &limits);
        let mut conn = HttpConn::new(cfg, &info);
        let mut em = Sink::default();
        conn.on_client_side(C, &mut em);
        Wire {
            conn,
            em,
            off: [0; 2],
            t: 0,
        }
    }

    fn send(&mut self, side: Side, bytes: &[u8]) {
        self.t += 1_000_000;
        let ts = Timestamp(self.t);
        self.em.advance(ts);
        let chunk = Chunk {
            offset: self.off[side.index()],
            bytes,
            ts,
            peer_ack: None,
            vlans: Vlans::default(),
        };
        self.off[side.index()] += bytes.len() as u64;
        self.conn.on_data(side, chunk, &mut self.em);
    }

    /// The client's preface and empty SETTINGS, the server's empty SETTINGS.
    fn open(&mut self) {
        let mut c = PREFACE.to_vec();
        c.extend(settings(&[]));
        self.send(C, &c);
        self.send(S, &settings(&[]));
    }

    fn end(&mut self) {
        let ts = Timestamp(self.t + 1);
        self.conn.on_end(C, EndReason::Fin, ts, &mut self.em);
        self.conn.on_end(S, EndReason::Fin, ts, &mut self.em);
    }

    fn txs(&self) -> Vec<&Transaction> {
        self.em
            .out
            .iter()
            .filter_map(|(_, e)| match e {
                HttpEvent::Transaction(t) => Some(&**t),
                _ => None,
            })
            .collect()
    }

    fn requests(&self) -> usize {
        self.em
            .out
            .iter()
            .filter(|(_, e)| matches!(e, HttpEvent::Request { .. }))
            .count()
    }
}

fn key_of(t: &Transaction) -> Option<String> {
    t.request.as_ref().and_then(|r| r.idempotency_key())
}

#[test]
fn a_prior_knowledge_stream_is_one_transaction_with_its_request_response_and_body() {
    let mut w = Wire::new();
    w.open();
    w.send(
        C,
        &frame(
            HEADERS,
            END_HEADERS,
            1,
            &post(&lit("idempotency-key", "k1")),
        ),
    );
    w.send(C, &frame(DATA, END_STREAM, 1, b"amount=100"));
    w.send(S, &frame(HEADERS, END_HEADERS, 1, &status("200")));
    w.send(S, &frame(DATA, END_STREAM, 1, br#"{"id":"ch_1"}"#));
    let txs = w.txs();
    assert_eq!(txs.len(), 1);
    let r = txs[0].request.as_ref().expect("request");
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/charges")
    );
    assert_eq!(r.host.as_deref(), Some("api.example.com"));
    assert_eq!(r.protocol, Protocol::Http2);
    assert_eq!(key_of(txs[0]).as_deref(), Some("k1"));
    assert_eq!((r.body.len, r.body.complete), (10, true));
    assert!(r.body.sha256.is_some());
    let resp = txs[0].response.as_ref().expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.resource_id.as_deref(), Some("ch_1"));
    assert!(!txs[0].not_processed);
    assert_eq!(w.requests(), 1, "the request was handed on when it ended");
    assert_eq!(w.em.stats.http2_connections, 1);
}

#[test]
fn without_the_preface_the_same_bytes_are_not_read_as_http2() {
    let mut w = Wire::new();
    // The capture starts after the preface: frames only.
    w.send(C, &settings(&[]));
    w.send(C, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &post(&[])));
    w.send(
        S,
        &frame(HEADERS, END_HEADERS | END_STREAM, 1, &status("200")),
    );
    w.end();
    assert!(w.txs().is_empty());
    assert_eq!(w.em.stats.http2_connections, 0);
}

#[test]
fn the_dynamic_table_carries_a_key_from_one_stream_to_the_next() {
    let mut w = Wire::new();
    w.open();
    w.send(
        C,
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &post(&lit_indexed("idempotency-key", "k-dyn")),
        ),
    );
    // Index 62: the newest dynamic entry (RFC 7541 section 2.3.3).
    w.send(
        C,
        &frame(HEADERS, END_HEADERS | END_STREAM, 3, &post(&[0x80 | 62])),
    );
    for id in [1, 3] {
        w.send(
            S,
            &frame(HEADERS, END_HEADERS | END_STREAM, id, &status("200")),
        );
    }
    let keys: Vec<Option<String>> = w.txs().iter().map(|t| key_of(t)).collect();
    assert_eq!(keys, [Some("k-dyn".into()), Some("k-dyn".into())]);
}

#[test]
fn a_header_block_split_over_continuation_frames_is_decoded_as_one() {
    let mut w = Wire::new();
    w.open();
    let block = post(&lit("idempotency-key", "k-cont"));
    let (a, b) = block.split_at(7);
    let (b, c) = b.split_at(9);
    w.send(C, &frame(HEADERS, END_STREAM, 1, a));
    w.send(C, &frame(CONTINUATION, 0, 1, b));
    w.send(C, &frame(CONTINUATION, END_HEADERS, 1, c));
    w.send(
        S,
        &frame(HEADERS, END_HEADERS | END_STREAM, 1, &status("201")),
    );
    let txs = w.txs();
    assert_eq!(txs.len(), 1);
    assert_eq!(key_of(txs[0]).as_deref(), Some("k-cont"));
}

#[test]
fn after_an_hpack_error_the_direction_is_skipped_never_guessed() {
    let mut w = Wire::new();
    w.open();
    // Index 70 does not exist: the client's table is unknown from here on.
    w.send(
        C,
        &frame(HEADERS, END_HEADERS | END_STREAM, 1, &post(&[0x80 | 70])),
    );
    w.send(
        C,
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &post(&lit("idempotency-key", "k")),
        ),
    );
    for id in [1, 3] {
        w.send(
            S,
            &frame(HEADERS, END_HEADERS | END_STREAM, id, &status("200")),
        );
    }
    w.end();
    assert!(w.txs().is_empty(), "no stream of a broken table");
    assert_eq!(w.em.stats.http2_headers_undecodable, 2);
    assert_eq!(w.em.stats.http2_hpack_errors, 1);
}

#[test]
fn a_refused_stream_was_not_processed_and_another_reset_code_says_nothing_of_it() {
    for (code, refused) in [(0x7u32, true), (0x8, false), (0x2, false)] {
        let mut w = Wire::new();
        w.open();
        w.send(C, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &post(&[])));
        w.send(S, &frame(RST_STREAM, 0, 1, &code.to_be_bytes()));
        let txs = w.txs();
        assert_eq!(txs.len(), 1, "code {code}: ended by the reset");
        assert!(txs[0].response.is_none());
        assert_eq!(txs[0].not_processed, refused, "code {code}");
        assert!(txs[0].server_seen && !txs[0].response_lost);
        assert_eq!(w.em.stats.http2_streams_refused, u64::from(refused));
    }
}

#[test]
fn streams_above_the_last_id_of_a_goaway_were_not_processed_and_those_below_wait() {
    let mut w = Wire::new();
    w.open();
    for id in [1, 3, 5] {
        w.send(C, &frame(HEADERS, END_HEADERS | END_STREAM, id, &post(&[])));
    }
    let mut goaway = 3u32.to_be_bytes().to_vec();
    goaway.extend_from_slice(&0u32.to_be_bytes());
    w.send(S, &frame(GOAWAY, 0, 0, &goaway));
    let ended: Vec<(u64, bool)> = w.txs().iter().map(|t| (t.id.n, t.not_processed)).collect();
    assert_eq!(ended, [(2, true)], "stream 5 only, at once");
    w.send(
        S,
        &frame(HEADERS, END_HEADERS | END_STREAM, 3, &status("200")),
    );
    w.send(
        S,
        &frame(HEADERS, END_HEADERS | END_STREAM, 1, &status("200")),
    );
    let all: Vec<(u64, bool, bool)> = w
        .txs()
        .iter()
        .map(|t| (t.id.n, t.not_processed, t.response.is_some()))
        .collect();
    assert_eq!(all, [(2, true, false), (1, false, true), (0, false, true)]);
    assert_eq!(w.em.stats.http2_streams_goaway, 1);
}

#[test]
fn a_client_reset_before_the_response_aborts_the_stream_there() {
    let mut w = Wire::new();
    w.open();
    w.send(C, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &post(&[])));
    w.send(C, &frame(RST_STREAM, 0, 1, &0x8u32.to_be_bytes()));
    let txs = w.txs();
    assert_eq!(txs.len(), 1);
    assert!(txs[0].response.is_none() && !txs[0].not_processed);
    assert_eq!(txs[0].ts_done, Timestamp(w.t));
    assert_eq!(w.em.stats.http2_streams_reset, 1);
}

#[test]
fn streams_end_in_the_order_their_responses_end_and_keep_the_order_they_opened_in() {
    let mut w = Wire::new();
    w.open();
    for id in [1, 3] {
        w.send(
            C,
            &frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                id,
                &post(&lit("idempotency-key", "same")),
            ),
        );
    }
    w.send(
        S,
        &frame(HEADERS, END_HEADERS | END_STREAM, 3, &status("409")),
    );
    w.send(
        S,
        &frame(HEADERS, END_HEADERS | END_STREAM, 1, &status("200")),
    );
    let order: Vec<(u64, u16)> = w
        .txs()
        .iter()
        .map(|t| (t.id.n, t.response.as_ref().map_or(0, |r| r.status)))
        .collect();
    assert_eq!(order, [(1, 409), (0, 200)]);
    // Both were in flight together: the second began before the first ended.
    let t = w.txs();
    let first_end = t[1].ts_done;
    let second_start = t[0].request.as_ref().map(|r| r.ts).expect("request");
    assert!(second_start < first_end);
}

#[test]
fn interim_responses_and_trailers_belong_to_their_stream() {
    let mut w = Wire::new();
    w.open();
    w.send(C, &frame(HEADERS, END_HEADERS, 1, &post(&[])));
    w.send(S, &frame(HEADERS, END_HEADERS, 1, &status("100")));
    w.send(C, &frame(DATA, 0, 1, b"a=1"));
    w.send(
        C,
        &frame(HEADERS, END_HEADERS | END_STREAM, 1, &lit("x-trailer", "t")),
    );
    w.send(S, &frame(HEADERS, END_HEADERS, 1, &status("200")));
    w.send(S, &frame(DATA, 0, 1, b"{}"));
    w.send(
        S,
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &lit("grpc-status", "0"),
        ),
    );
    let txs = w.txs();
    assert_eq!(txs.len(), 1);
    let resp = txs[0].response.as_ref().expect("response");
    assert_eq!((resp.status, resp.interim.clone()), (200, vec![100]));
    assert_eq!(resp.body.len, 2);
    let req = txs[0].request.as_ref().expect("request");
    assert_eq!((req.body.len, req.body.complete), (3, true));
}

#[test]
fn a_table_size_update_is_bounded_by_the_other_sides_settings() {
    for announced in [None, Some(8192u32)] {
        let mut w = Wire::new();
        let mut c = PREFACE.to_vec();
        c.extend(settings(
            &announced.map(|v| vec![(0x1, v)]).unwrap_or_default(),
        ));
        w.send(C, &c);
        w.send(S, &settings(&[]));
        w.send(C, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &post(&[])));
        // A size update to 8192 (0x3f e1 3f: 31 + 8161), then :status.
        let mut block = vec![0x3f, 0xe1, 0x3f];
        block.extend(status("200"));
        w.send(S, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
        let ok = w.txs().first().is_some_and(|t| t.response.is_some());
        assert_eq!(ok, announced.is_some(), "announced {announced:?}");
    }
}

#[test]
fn a_larger_max_frame_size_is_honoured_only_once_announced() {
    for announced in [false, true] {
        let mut w = Wire::new();
        w.open();
        if announced {
            w.send(S, &settings(&[(0x5, 65536)]));
        }
        w.send(C, &frame(HEADERS, END_HEADERS, 1, &post(&[])));
        w.send(C, &frame(DATA, END_STREAM, 1, &vec![b'x'; 20_000]));
        w.send(
            S,
            &frame(HEADERS, END_HEADERS | END_STREAM, 1, &status("200")),
        );
        w.end();
        let body = w
            .txs()
            .first()
            .and_then(|t| t.request.clone())
            .map(|r| r.body);
        assert_eq!(
            body.map(|b| (b.len, b.complete)),
            Some(if announced {
                (20_000, true)
            } else {
                (0, false)
            }),
            "announced {announced}"
        );
        assert_eq!(w.em.stats.http2_frame_errors, u64::from(!announced));
    }
}

#[test]
fn open_streams_are_capped_and_the_oldest_handed_on_unobservable() {
    let limits = Limits {
        max_pending_requests: 4,
        ..Limits::default()
    };
    let mut w = Wire::with(limits);
    w.open();
    for i in 0..100u32 {
        w.send(
            C,
            &frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, &post(&[])),
        );
    }
    let txs = w.txs();
    assert_eq!(txs.len(), 96, "all but the last four handed on");
    assert!(txs.iter().all(|t| t.response_lost && t.response.is_none()));
    assert_eq!(w.em.stats.http_pending_overflow, 96);
}

#[test]
fn rapid_resets_are_counted_and_hold_nothing() {
    let mut w = Wire::new();
    w.open();
    let mut burst = Vec::new();
    for i in 0..10_000u32 {
        let id = 1 + 2 * i;
        burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &post(&[])));
        burst.extend(frame(RST_STREAM, 0, id, &0x8u32.to_be_bytes()));
    }
    w.send(C, &burst);
    assert_eq!(w.em.stats.http2_streams_reset, 10_000);
    assert_eq!(w.txs().len(), 10_000, "each ended at its reset");
}

#[test]
fn a_continuation_flood_is_cut_off_at_the_head_limit() {
    let limits = Limits {
        max_head_bytes: 4096,
        ..Limits::default()
    };
    let mut w = Wire::with(limits);
    w.open();
    w.send(C, &frame(HEADERS, 0, 1, &post(&[])));
    let filler = vec![0u8; 1000];
    for _ in 0..100 {
        w.send(C, &frame(CONTINUATION, 0, 1, &filler));
    }
    assert_eq!(w.em.stats.http2_continuation_floods, 1);
    assert_eq!(w.em.stats.http2_directions_lost, 1);
    assert!(w.txs().is_empty());
}

#[test]
fn an_h2c_upgrade_makes_the_upgrading_request_stream_one() {
    let mut w = Wire::new();
    // HTTP2-Settings: SETTINGS_MAX_CONCURRENT_STREAMS = 100, base64url.
    w.send(
        C,
        b"POST /v1/charges HTTP/1.1\r\nHost: api\r\nConnection: Upgrade, HTTP2-Settings\r\n\
Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\nIdempotency-Key: k-up\r\nContent-Length: 3\r\n\r\nabc",
    );
    let mut s =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    s.extend(settings(&[]));
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &status("201")));
    w.send(S, &s);
    let mut c = PREFACE.to_vec();
    c.extend(settings(&[]));
    c.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &post(&lit("idempotency-key", "k-up")),
    ));
    w.send(C, &c);
    w.send(
        S,
        &frame(HEADERS, END_HEADERS | END_STREAM, 3, &status("200")),
    );
    let txs = w.txs();
    let seen: Vec<(u64, Protocol, u16)> = txs
        .iter()
        .map(|t| {
            let r = t.request.as_ref().expect("request");
            (
                t.id.n,
                r.protocol,
                t.response.as_ref().map_or(0, |r| r.status),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [(0, Protocol::Http11, 201), (1, Protocol::Http2, 200)]
    );
    assert_eq!(w.requests(), 2);
    assert_eq!(w.em.stats.http2_upgrades, 1);
    // The 101 is not a response of its own: two requests, two responses.
    assert_eq!(
        (w.em.stats.http_requests, w.em.stats.http_responses),
        (2, 2)
    );
}

#[test]
fn a_101_to_another_upgrade_is_not_http2() {
    let mut w = Wire::new();
    w.send(
        C,
        b"GET /ws HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    let mut s = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &status("201")));
    w.send(S, &s);
    assert_eq!(w.em.stats.http2_connections, 0);
    assert_eq!(w.em.stats.http_upgraded, 1);
}

#[test]
fn a_gap_in_the_servers_direction_leaves_open_streams_unobservable() {
    let mut w = Wire::new();
    w.open();
    w.send(C, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &post(&[])));
    let ts = Timestamp(w.t);
    w.conn.on_gap(S, w.off[1], 100, ts, &mut w.em);
    let txs = w.txs();
    assert_eq!(txs.len(), 1);
    assert!(txs[0].response_lost);
    assert_eq!(w.em.stats.http2_directions_lost, 1);
}

#[test]
fn server_settings_sent_before_the_clients_preface_are_read_once_it_comes() {
    let mut w = Wire::new();
    // The server speaks first, with a larger frame size for the client.
    w.send(S, &settings(&[(0x5, 65536)]));
    let mut c = PREFACE.to_vec();
    c.extend(settings(&[]));
    c.extend(frame(HEADERS, END_HEADERS, 1, &post(&[])));
    c.extend(frame(DATA, END_STREAM, 1, &vec![b'y'; 30_000]));
    w.send(C, &c);
    w.send(
        S,
        &frame(HEADERS, END_HEADERS | END_STREAM, 1, &status("200")),
    );
    let txs = w.txs();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].request.as_ref().map(|r| r.body.len), Some(30_000));
}

#[test]
fn bytes_held_while_the_first_side_looks_like_a_preface_never_mix_with_the_other_sides() {
    // Picked up without the handshake: the client side is unknown until its bytes tell.
    let mut w = Wire::unknown_client();
    let (head, rest) = PREFACE.split_at(10);
    w.send(C, head);
    // Meanwhile the server's SETTINGS, allowing larger frames: read in their place, as the
    // server's, once the preface is whole.
    w.send(S, &settings(&[(0x5, 65536)]));
    let mut c = rest.to_vec();
    c.extend(settings(&[]));
    c.extend(frame(HEADERS, END_HEADERS, 1, &post(&[])));
    c.extend(frame(DATA, END_STREAM, 1, &vec![b'y'; 30_000]));
    w.send(C, &c);
    w.send(
        S,
        &frame(HEADERS, END_HEADERS | END_STREAM, 1, &status("200")),
    );
    let txs = w.txs();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].request.as_ref().map(|r| r.body.len), Some(30_000));
    assert_eq!(txs[0].response.as_ref().map(|r| r.status), Some(200));
    assert_eq!(w.em.stats.http2_frame_errors, 0);
}
