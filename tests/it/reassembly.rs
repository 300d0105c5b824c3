//! TCP reassembly seen from the binary: reordering, retransmission, overlap, tiny segments,
//! sequence wrap-around, mid-connection starts, loss, Fast Open and resets.
//!
//! Each test builds its packets with `tests/it/support`, bends them (reorder, duplicate, drop,
//! overlap) and compares what `idemwatch read --log-requests --stats` prints with what the
//! plain conversation gives.

use crate::support;

use std::ops::Range;

use serde_json::Value;
use support::*;

const KEY: &str = "k-reasm-1";

/// A form body long enough to need several segments at a small MSS.
fn charge_body() -> Vec<u8> {
    let mut body = b"amount=1000&currency=eur&customer=cus_NffrFeUfNV2Hib&description=".to_vec();
    body.extend((0..1200u32).map(|i| b'a' + (i % 26) as u8));
    body
}

fn charge_response_body() -> Vec<u8> {
    br#"{"id":"ch_1","object":"charge","amount":1000,"currency":"eur","status":"succeeded"}"#
        .to_vec()
}

/// Two request/response pairs on one keep-alive connection: a POST with a key, then a GET.
fn exchanges() -> Vec<(Vec<u8>, Vec<u8>)> {
    let post_request = post(
        "/v1/charges",
        &[
            "Content-Type: application/x-www-form-urlencoded",
            &format!("Idempotency-Key: {KEY}"),
        ],
        &charge_body(),
    );
    let post_response = response(201, "application/json", &charge_response_body());
    let get_response = response(200, "application/json", &charge_response_body());
    vec![
        (post_request, post_response),
        (get("/v1/charges/ch_1"), get_response),
    ]
}

/// Handshake, each request then its response, FIN/FIN/ACK. Returns the packets and the index
/// range of each flight (each request, each response), in order.
fn keep_alive(
    mut c: Conversation,
    exchanges: &[(Vec<u8>, Vec<u8>)],
) -> (Vec<Packet>, Vec<Range<usize>>) {
    c.handshake();
    let mut flights = Vec::new();
    for (request, response) in exchanges {
        flights.push(c.client_send(request));
        flights.push(c.server_send(response));
    }
    c.close();
    (c.into_packets(), flights)
}

/// The two transactions of [`exchanges`], checked field by field.
fn assert_the_two_transactions(run: &Run) {
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![
            (Some("/v1/charges".to_owned()), Some(201)),
            (Some("/v1/charges/ch_1".to_owned()), Some(200)),
        ],
        "transactions: {txs:#?}"
    );
    let post = &txs[0]["request"];
    assert_eq!(post["method"], "POST");
    assert_eq!(post["idempotency_key"], KEY);
    assert_eq!(post["body_len"], charge_body().len());
    assert_eq!(post["body_sha256"], sha256_hex(&charge_body()));
    assert_eq!(post["body_complete"], true);
    assert_response(&txs[0], 201, &charge_response_body());
    assert_eq!(txs[0]["response"]["resource_id"], "ch_1");
    assert_eq!(txs[1]["request"]["method"], "GET");
    assert_response(&txs[1], 200, &charge_response_body());
}

/// The plain in-order conversation at MSS 536: the reference the bent ones are compared with.
fn baseline() -> Vec<Value> {
    let (packets, _) = keep_alive(Conversation::v4().with_mss(536), &exchanges());
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    assert_the_two_transactions(&run);
    for counter in [
        "tcp_retransmitted_segments",
        "tcp_overlap_mismatch",
        "tcp_gaps",
        "tcp_gap_bytes",
    ] {
        assert_eq!(run.stat(counter), 0, "{counter} on the plain conversation");
    }
    assert_eq!(run.stat("flows_created"), 1);
    run.comparable_transactions()
}

fn data_segments(packets: &[Packet]) -> usize {
    packets
        .iter()
        .filter(|p| tcp_payload_len(&p.data).expect("Ethernet TCP frame") > 0)
        .count()
}

/// Splits an HTTP message after its blank line.
fn split_head(message: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let at = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("message has a head")
        + 4;
    (message[..at].to_vec(), message[at..].to_vec())
}

#[test]
fn plain_conversation_gives_both_transactions_and_no_anomalies() {
    let txs = baseline();
    assert_eq!(txs.len(), 2);
}

#[test]
fn out_of_order_segments_give_the_same_transactions() {
    let expected = baseline();
    let (mut packets, flights) = keep_alive(Conversation::v4().with_mss(536), &exchanges());
    for flight in &flights {
        packets[flight.clone()].reverse();
    }
    assert!(
        flights.iter().any(|f| f.len() >= 3),
        "some flight has several segments"
    );
    restamp(&mut packets);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    run.assert_exit(0);
    assert_eq!(run.comparable_transactions(), expected);
    assert_eq!(run.stat("tcp_gaps"), 0, "reordering is not loss");
    assert_eq!(
        run.stat("tcp_retransmitted_segments"),
        0,
        "reordering is not retransmission"
    );
}

#[test]
fn every_segment_retransmitted_gives_one_transaction_per_request() {
    // A TCP retransmission is not a retry: the same bytes twice on the wire are one request.
    let expected = baseline();
    let (packets, _) = keep_alive(Conversation::v4().with_mss(536), &exchanges());
    let doubled: Vec<Packet> = packets
        .iter()
        .flat_map(|p| [p.clone(), p.clone()])
        .collect();
    let mut doubled = doubled;
    restamp(&mut doubled);
    let run = read_packets(LINKTYPE_ETHERNET, &doubled);
    run.assert_exit(0);
    assert_eq!(run.comparable_transactions(), expected);
    assert!(
        run.stat("tcp_retransmitted_segments") >= data_segments(&packets) as u64,
        "each of the {} data segments was retransmitted once: {:?}",
        data_segments(&packets),
        run.stats()
    );
    assert_eq!(
        run.stat("tcp_overlap_mismatch"),
        0,
        "identical copies are no mismatch"
    );
    assert_eq!(run.stat("http_requests"), 2);
}

#[test]
fn late_retransmission_of_a_post_after_its_response_is_not_a_retry() {
    let request = post(
        "/v1/charges",
        &[&format!("Idempotency-Key: {KEY}")],
        b"amount=1000",
    );
    let mut c = Conversation::v4();
    c.handshake();
    let sent = c.client_send(&request);
    let copy = c.packets()[sent].to_vec();
    c.server_send(&json_ok("ch_1"));
    for p in copy {
        c.push(p);
    }
    c.close();
    let mut packets = c.into_packets();
    restamp(&mut packets);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![(Some("/v1/charges".to_owned()), Some(200))],
        "{txs:#?}"
    );
    assert_eq!(run.stat("tcp_retransmitted_segments"), 1);
    assert_eq!(run.stat("http_requests"), 1);
}

/// One POST whose 23-byte body goes in two segments of its own, A (bytes 0..15) and B
/// (15..23), plus a forged segment with other bytes for part of that range, placed as `place`
/// says. Returns the run.
fn post_with_conflicting_copy(place: &str) -> Run {
    let request = post(
        "/v1/charges",
        &[
            "Content-Type: application/x-www-form-urlencoded",
            "Idempotency-Key: k-overlap",
        ],
        b"amount=100&currency=eur",
    );
    let (head, body) = split_head(&request);
    let mut c = Conversation::v4();
    c.handshake();
    let head_packets = c.client_send(&head);
    let body_seq = c.client_seq();
    let body_packets = c.send_split(Dir::ToServer, &body, &[15]);
    assert_eq!(body_packets.len(), 2);
    let forged = match place {
        // The whole body range, other bytes in A's part.
        "after" | "before" | "buffered" => c.segment_at(
            Dir::ToServer,
            body_seq,
            ACK | PSH,
            b"amount=999&currency=eur",
        ),
        // Bytes 10..23: other bytes over the end of A, B's own bytes after.
        "partial" => c.segment_at(
            Dir::ToServer,
            body_seq.wrapping_add(10),
            ACK | PSH,
            b"XXXXXency=eur",
        ),
        _ => unreachable!(),
    };
    c.server_send(&json_ok("ch_1"));
    c.close();
    let mut packets = c.into_packets();
    let (head_at, a_at) = (head_packets.start, body_packets.start);
    match place {
        // A, B, then the forged copy.
        "after" => packets.insert(a_at + 2, forged),
        // The forged copy first: it is then the first copy.
        "before" => packets.insert(a_at, forged),
        // A, forged, B.
        "partial" => packets.insert(a_at + 1, forged),
        // A and B buffered ahead of the missing head, the forged copy, then the head.
        "buffered" => {
            let head_packet = packets.remove(head_at);
            packets.insert(head_at + 2, forged);
            packets.insert(head_at + 3, head_packet);
        }
        _ => unreachable!(),
    }
    restamp(&mut packets);
    read_packets(LINKTYPE_ETHERNET, &packets)
}

#[test]
fn retransmission_with_different_bytes_keeps_the_first_copy_and_is_counted() {
    for (place, first_copy) in [
        ("after", &b"amount=100&currency=eur"[..]),
        ("buffered", b"amount=100&currency=eur"),
        ("before", b"amount=999&currency=eur"),
    ] {
        let run = post_with_conflicting_copy(place);
        let txs = run.ok_transactions();
        assert_eq!(txs.len(), 1, "{place}: one transaction: {txs:#?}");
        let r = &txs[0]["request"];
        assert_eq!(r["body_len"], first_copy.len(), "{place}");
        assert_eq!(
            r["body_sha256"],
            sha256_hex(first_copy),
            "{place}: body should be the first copy {:?}",
            String::from_utf8_lossy(first_copy)
        );
        assert_eq!(txs[0]["response"]["status"], 200, "{place}");
        assert_eq!(run.stat("tcp_overlap_mismatch"), 1, "{place}");
    }
}

#[test]
fn partial_overlap_with_different_bytes_keeps_the_first_copy() {
    // The forged segment arrives between A and B: bytes 10..15 differ from A's (A wins), bytes
    // 15..23 are new and the same as B's (B is then a plain retransmission).
    let run = post_with_conflicting_copy("partial");
    let txs = run.ok_transactions();
    assert_eq!(txs.len(), 1, "{txs:#?}");
    let r = &txs[0]["request"];
    assert_eq!(r["body_sha256"], sha256_hex(b"amount=100&currency=eur"));
    assert_eq!(txs[0]["response"]["status"], 200);
    assert_eq!(run.stat("tcp_overlap_mismatch"), 1);
}

#[test]
fn one_byte_segments_give_the_same_transactions() {
    let expected = baseline();
    let (packets, _) = keep_alive(Conversation::v4().with_mss(1), &exchanges());
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    run.assert_exit(0);
    assert_eq!(run.comparable_transactions(), expected);
    assert!(run.stat("tcp_segments") >= data_segments(&packets) as u64);
}

#[test]
fn sequence_numbers_wrapping_around_2_pow_32_mid_stream() {
    let expected = baseline();
    // The client's request body and the server's responses both cross 2^32; also an ISN of
    // 2^32 - 1, whose SYN alone wraps the next sequence number to 0.
    for (client_isn, server_isn) in [(0xffff_fc00, 0xffff_ff80), (u32::MAX, u32::MAX - 100)] {
        let c = Conversation::v4()
            .with_mss(536)
            .with_isns(client_isn, server_isn);
        let (packets, _) = keep_alive(c, &exchanges());
        let run = read_packets(LINKTYPE_ETHERNET, &packets);
        run.assert_exit(0);
        assert_eq!(
            run.comparable_transactions(),
            expected,
            "ISNs {client_isn:#x}/{server_isn:#x}"
        );
        assert_eq!(
            run.stat("tcp_gaps"),
            0,
            "ISNs {client_isn:#x}/{server_isn:#x}"
        );
    }
}

#[test]
fn sequence_wrap_with_reordering_across_2_pow_32() {
    // Reordered segments on both sides of the wrap: 2^32 - 10 must sort before 5.
    let expected = baseline();
    let c = Conversation::v4()
        .with_mss(536)
        .with_isns(0xffff_fd00, 0xffff_ff00);
    let (mut packets, flights) = keep_alive(c, &exchanges());
    for flight in &flights {
        packets[flight.clone()].reverse();
    }
    restamp(&mut packets);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    run.assert_exit(0);
    assert_eq!(run.comparable_transactions(), expected);
}

#[test]
fn response_captured_just_before_its_request_is_still_paired() {
    // A mirror (SPAN) port merges both directions and may swap packets between them: here the
    // first segment of the response is captured just before the request it answers.
    let response_body: Vec<u8> = (0..600u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut c = Conversation::v4().with_mss(200);
    c.handshake();
    let request = c.client_send(&post(
        "/v1/charges",
        &["Idempotency-Key: k-span"],
        b"amount=5",
    ));
    c.server_send(&response(201, "text/plain", &response_body));
    c.client_send(&get("/after"));
    c.server_send(&response(200, "text/plain", b"ok"));
    c.close();
    let mut packets = c.into_packets();
    assert_eq!(request.len(), 1);
    packets.swap(request.start, request.start + 1);
    restamp(&mut packets);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    // Whatever else happens, a request is never paired with the next request's response.
    for (path, status) in pairs(&txs) {
        match (path.as_deref(), status) {
            (Some("/v1/charges"), Some(s)) => assert_eq!(
                s,
                201,
                "/v1/charges got /after's response: {:?}",
                pairs(&txs)
            ),
            (Some("/after"), Some(s)) => assert_eq!(
                s,
                200,
                "/after got /v1/charges's response: {:?}",
                pairs(&txs)
            ),
            _ => {}
        }
    }
    assert_eq!(
        pairs(&txs),
        vec![
            (Some("/v1/charges".to_owned()), Some(201)),
            (Some("/after".to_owned()), Some(200))
        ],
        "{txs:#?}"
    );
    assert_response(&txs[0], 201, &response_body);
}

#[test]
fn request_segment_captured_after_the_ack_that_covers_it_is_not_lost() {
    // Mirror ports again: the last segment of a request is captured just after the first
    // response segment, whose ACK already covers it. The bytes come late, not never.
    let body = vec![b'q'; 100];
    let request = post("/v1/charges", &["Idempotency-Key: k-late"], &body);
    let mut c = Conversation::v4();
    c.handshake();
    let sent = c.send_split(Dir::ToServer, &request, &[request.len() - 10]);
    let answer = c.server_send(&response(201, "text/plain", b"created"));
    c.client_send(&get("/after"));
    c.server_send(&response(200, "text/plain", b"ok"));
    c.close();
    let mut packets = c.into_packets();
    assert_eq!((sent.len(), answer.len()), (2, 1));
    packets.swap(sent.end - 1, answer.start);
    restamp(&mut packets);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![
            (Some("/v1/charges".to_owned()), Some(201)),
            (Some("/after".to_owned()), Some(200))
        ],
        "{txs:#?}"
    );
    let r = &txs[0]["request"];
    assert_eq!(r["body_complete"], true, "{r}");
    assert_eq!(r["body_sha256"], sha256_hex(&body), "{r}");
    assert_eq!(run.stat("tcp_gaps"), 0);
}

#[test]
fn response_tail_captured_after_the_next_request_is_not_lost() {
    // Mirror ports: the last segment of a response is captured after the client's next
    // request (which acknowledges it) and the first segment of the next response. The bytes
    // come late, not never: no gap, both bodies complete.
    let first_body = vec![b'1'; 300];
    let second_body = vec![b'2'; 300];
    let mut c = Conversation::v4().with_mss(100);
    c.handshake();
    c.client_send(&get("/first"));
    let first = c.server_send(&response(200, "text/plain", &first_body));
    let next = c.client_send(&get("/second"));
    let second = c.server_send(&response(200, "text/plain", &second_body));
    c.close();
    let mut packets = c.into_packets();
    assert_eq!(
        (next.len(), next.start, second.start),
        (1, first.end, first.end + 1)
    );
    // ..., first[last], next, second[0], ...  becomes  ..., next, second[0], first[last], ...
    let tail = packets.remove(first.end - 1);
    packets.insert(second.start, tail);
    restamp(&mut packets);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![
            (Some("/first".to_owned()), Some(200)),
            (Some("/second".to_owned()), Some(200))
        ],
        "{txs:#?}"
    );
    assert_response(&txs[0], 200, &first_body);
    assert_response(&txs[1], 200, &second_body);
    assert_eq!(run.stat("tcp_gaps"), 0);
}

/// Three request/response pairs; the second request is a multi-segment POST.
fn three_exchanges() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (get("/one"), response(200, "text/plain", b"first")),
        (
            post("/two", &["Idempotency-Key: k2"], &[b'x'; 400]),
            response(201, "text/plain", b"second!"),
        ),
        (
            get("/three"),
            response(202, "text/plain", b"third response"),
        ),
    ]
}

#[test]
fn capture_starting_at_the_second_request_picks_it_up() {
    let (packets, flights) = keep_alive(Conversation::v4().with_mss(100), &three_exchanges());
    // No handshake, no first exchange: the capture starts at the second request's first byte.
    let run = read_packets(LINKTYPE_ETHERNET, &packets[flights[2].start..]);
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![
            (Some("/two".to_owned()), Some(201)),
            (Some("/three".to_owned()), Some(202))
        ],
        "{txs:#?}"
    );
    assert_eq!(txs[0]["request"]["body_len"], 400);
    assert_eq!(txs[0]["request"]["body_sha256"], sha256_hex(&[b'x'; 400]));
    assert_eq!(txs[0]["request"]["idempotency_key"], "k2");
    assert_response(&txs[1], 202, b"third response");
}

#[test]
fn capture_starting_inside_a_request_resumes_at_the_next_request() {
    let (packets, flights) = keep_alive(Conversation::v4().with_mss(100), &three_exchanges());
    let second_request = flights[2].clone();
    assert!(second_request.len() >= 3);
    // Start at the second request's third segment: inside its body.
    let run = read_packets(LINKTYPE_ETHERNET, &packets[second_request.start + 2..]);
    let txs = run.ok_transactions();
    let with_request: Vec<_> = pairs(&txs)
        .into_iter()
        .filter(|(p, _)| p.is_some())
        .collect();
    assert_eq!(
        with_request,
        vec![(Some("/three".to_owned()), Some(202))],
        "{txs:#?}"
    );
    for t in &txs {
        if t["request"].is_null() {
            assert_eq!(
                t["response"]["status"], 201,
                "only the second response can lack its request: {t}"
            );
        }
    }
}

#[test]
fn lost_segment_in_a_response_body_marks_it_incomplete_and_the_next_pair_is_intact() {
    let big: Vec<u8> = (0..3000u32).map(|i| b'A' + (i % 26) as u8).collect();
    let (head, _) = split_head(&response(200, "text/plain", &big));
    let mut c = Conversation::v4().with_mss(1000);
    c.handshake();
    c.client_send(&get("/big"));
    c.server_send(&head);
    let body = c.server_send(&big);
    c.client_send(&get("/after"));
    c.server_send(&response(200, "application/json", br#"{"id":"x_2"}"#));
    c.close();
    let mut packets = c.into_packets();
    assert_eq!(body.len(), 3);
    packets.remove(body.start + 1);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![
            (Some("/big".to_owned()), Some(200)),
            (Some("/after".to_owned()), Some(200))
        ],
        "{txs:#?}"
    );
    let lossy = &txs[0]["response"];
    assert_eq!(lossy["body_complete"], false, "{lossy}");
    assert_eq!(lossy["body_len"], 3000, "{lossy}");
    assert_eq!(lossy["body_missing_bytes"], 1000, "{lossy}");
    assert!(
        lossy.get("body_sha256").is_none_or(Value::is_null),
        "{lossy}"
    );
    assert_response(&txs[1], 200, br#"{"id":"x_2"}"#);
    assert_eq!(txs[1]["response"]["resource_id"], "x_2");
    assert_eq!(run.stat("tcp_gaps"), 1);
    assert_eq!(run.stat("tcp_gap_bytes"), 1000);
}

#[test]
fn lost_segment_in_a_request_body_keeps_the_pairing() {
    let body = vec![b'b'; 1500];
    let request = post("/v1/upload", &["Idempotency-Key: k-up"], &body);
    let (head, _) = split_head(&request);
    let mut c = Conversation::v4().with_mss(500);
    c.handshake();
    c.client_send(&head);
    let body_packets = c.client_send(&body);
    c.server_send(&response(201, "application/json", br#"{"id":"up_1"}"#));
    c.client_send(&get("/v1/next"));
    c.server_send(&response(200, "text/plain", b"ok"));
    c.close();
    let mut packets = c.into_packets();
    packets.remove(body_packets.start + 1);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![
            (Some("/v1/upload".to_owned()), Some(201)),
            (Some("/v1/next".to_owned()), Some(200))
        ],
        "{txs:#?}"
    );
    let r = &txs[0]["request"];
    assert_eq!(r["body_complete"], false, "{r}");
    assert_eq!(r["body_len"], 1500, "{r}");
    assert_eq!(r["body_missing_bytes"], 500, "{r}");
    assert!(r.get("body_sha256").is_none_or(Value::is_null), "{r}");
    assert!(r.get("body_canon_sha256").is_none_or(Value::is_null), "{r}");
    assert_eq!(r["idempotency_key"], "k-up");
}

/// Requests and responses that tell each other apart: path /N goes with status 200+N and a
/// body of N+1 bytes.
fn numbered(n: u16) -> (Vec<u8>, Vec<u8>) {
    (
        get(&format!("/{n}")),
        response(200 + n, "text/plain", &vec![b'r'; usize::from(n) + 1]),
    )
}

/// No transaction pairs request /N with a response other than 200+N.
fn assert_no_wrong_pairing(txs: &[Value]) {
    for (path, status) in pairs(txs) {
        if let (Some(path), Some(status)) = (&path, status) {
            let n: u64 = path.trim_start_matches('/').parse().expect("numbered path");
            assert_eq!(
                status,
                200 + n,
                "request {path} paired with another request's response: {txs:#?}"
            );
        }
    }
}

#[test]
fn lost_request_is_never_paired_with_another_response() {
    let mut c = Conversation::v4();
    c.handshake();
    let mut lost = 0..0;
    for n in 1..=3 {
        let (request, response) = numbered(n);
        let sent = c.client_send(&request);
        if n == 2 {
            lost = sent;
        }
        c.server_send(&response);
    }
    c.close();
    let mut packets = c.into_packets();
    packets.drain(lost);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    assert_no_wrong_pairing(&txs);
    let with_request: Vec<_> = pairs(&txs)
        .into_iter()
        .filter(|(p, _)| p.is_some())
        .collect();
    assert_eq!(
        with_request,
        vec![
            (Some("/1".to_owned()), Some(201)),
            (Some("/3".to_owned()), Some(203))
        ],
        "{txs:#?}"
    );
    for t in txs.iter().filter(|t| t["request"].is_null()) {
        assert_eq!(t["response"]["status"], 202, "{t}");
    }
}

#[test]
fn lost_pipelined_request_is_never_paired_with_another_response() {
    // Three pipelined requests, one segment each; the second is lost; then three responses.
    let mut c = Conversation::v4();
    c.handshake();
    let mut lost = 0..0;
    for n in 1..=3 {
        let sent = c.client_send(&numbered(n).0);
        if n == 2 {
            lost = sent;
        }
    }
    for n in 1..=3 {
        c.server_send(&numbered(n).1);
    }
    c.close();
    let mut packets = c.into_packets();
    packets.drain(lost);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    assert_no_wrong_pairing(&txs);
    assert_eq!(
        pairs(&txs).first(),
        Some(&(Some("/1".to_owned()), Some(201))),
        "the request before the gap keeps its response: {txs:#?}"
    );
}

#[test]
fn tcp_fast_open_request_in_the_syn_is_seen() {
    let request = post("/v1/charges", &["Idempotency-Key: k-tfo"], b"amount=5");
    let mut c = Conversation::v4();
    c.handshake_fast_open(&request);
    c.server_send(&json_ok("ch_tfo"));
    c.close();
    let run = read_packets(LINKTYPE_ETHERNET, c.packets());
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![(Some("/v1/charges".to_owned()), Some(200))],
        "{txs:#?}"
    );
    assert_eq!(txs[0]["request"]["idempotency_key"], "k-tfo");
    assert_eq!(txs[0]["request"]["body_sha256"], sha256_hex(b"amount=5"));
    assert_eq!(txs[0]["response"]["resource_id"], "ch_tfo");
}

#[test]
fn rst_ends_the_flow_and_the_request_is_written_without_response() {
    let request = post("/v1/charges", &["Idempotency-Key: k-rst"], b"amount=5");
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(&request);
    c.server_rst();
    let run = read_packets(LINKTYPE_ETHERNET, c.packets());
    let txs = run.ok_transactions();
    assert_eq!(txs.len(), 1, "{txs:#?}");
    assert_eq!(txs[0]["request"]["path"], "/v1/charges");
    assert_eq!(txs[0]["request"]["idempotency_key"], "k-rst");
    assert!(txs[0]["response"].is_null(), "{}", txs[0]);
}

#[test]
fn new_connection_on_the_same_ports_after_rst_is_a_new_flow() {
    let request = post("/v1/charges", &["Idempotency-Key: k-rst"], b"amount=5");
    let mut first = Conversation::v4();
    first.handshake();
    first.client_send(&request);
    first.server_rst();
    let mut packets = first.into_packets();
    // The client reconnects from the same port with a new ISN and retries.
    let mut second = Conversation::v4()
        .with_isns(3_000_000_000, 7_000_000)
        .starting_at(BASE_TS_NS + 1_000 * STEP_NS);
    second.handshake();
    second.client_send(&request);
    second.server_send(&json_ok("ch_2"));
    second.close();
    packets.extend(second.into_packets());
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![
            (Some("/v1/charges".to_owned()), None),
            (Some("/v1/charges".to_owned()), Some(200))
        ],
        "{txs:#?}"
    );
    assert_eq!(run.stat("flows_created"), 2);
    assert_eq!(
        run.stat("tcp_gaps"),
        0,
        "the new ISN is a new stream, not a hole"
    );
}

#[test]
fn request_unanswered_when_the_capture_ends_is_written_with_null_response() {
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(&get("/answered"));
    c.server_send(&response(200, "text/plain", b"ok"));
    c.client_send(&post(
        "/v1/charges",
        &["Idempotency-Key: k-eof"],
        b"amount=5",
    ));
    let run = read_packets(LINKTYPE_ETHERNET, c.packets());
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![
            (Some("/answered".to_owned()), Some(200)),
            (Some("/v1/charges".to_owned()), None)
        ],
        "{txs:#?}"
    );
    assert_eq!(txs[1]["request"]["idempotency_key"], "k-eof");
    assert!(txs[1]["response"].is_null(), "{}", txs[1]);
}

#[test]
fn response_cut_by_the_end_of_the_capture_is_incomplete() {
    let body = vec![b'z'; 3000];
    let mut c = Conversation::v4().with_mss(1000);
    c.handshake();
    c.client_send(&get("/big"));
    let sent = c.server_send(&response(200, "text/plain", &body));
    // The capture stops after the first segment of the response.
    let packets = &c.packets()[..=sent.start];
    let run = read_packets(LINKTYPE_ETHERNET, packets);
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![(Some("/big".to_owned()), Some(200))],
        "{txs:#?}"
    );
    let r = &txs[0]["response"];
    assert_eq!(r["body_complete"], false, "{r}");
    assert_eq!(r["body_len"], 3000, "{r}");
    let (head, _) = split_head(&response(200, "text/plain", &body));
    assert_eq!(r["body_missing_bytes"], 3000 - (1000 - head.len()), "{r}");
    assert!(r.get("body_sha256").is_none_or(Value::is_null), "{r}");
}
