//! Floods, bounded: small versions of the hostile inputs of `examples/floods.rs` (which measures
//! memory at full size). Each test checks, from the counters and the output of
//! `idemwatch read --stats`, that the limit meant for the flood was applied and that nothing
//! was invented. Time and memory are not asserted here.

use crate::support;

use support::*;

/// Runs `idemwatch read --log-requests --stats --threads 1 EXTRA... FILE` on `packets`. One
/// worker: `--max-flows` is split among workers, and the counts below are exact for one.
fn read_with(extra: &[&str], packets: &[Packet]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("flood.pcap");
    write_capture(&path, Format::PCAP, LINKTYPE_ETHERNET, packets);
    let mut args = vec!["read", "--log-requests", "--stats", "--threads", "1"];
    args.extend_from_slice(extra);
    let p = path.to_str().expect("UTF-8 temp path");
    args.push(p);
    let run = run_with(&args, None, &[]);
    run.assert_exit(0);
    run
}

/// Client `i` (distinct address and port) talking to the usual server.
fn conn(i: u32) -> Conversation {
    let [_, a, b, c] = i.to_be_bytes();
    Conversation::new(
        v4([10, 1 + a, b, c], 40_000 + (i % 20_000) as u16),
        server_v4(),
    )
}

fn keyed_post(key: &str, n: u64) -> Vec<u8> {
    post(
        "/v1/charges",
        &[
            "Content-Type: application/json",
            "Authorization: Bearer sk_test_1",
            &format!("Idempotency-Key: {key}"),
        ],
        format!(r#"{{"amount":{n}}}"#).as_bytes(),
    )
}

/// Interleaves the conversations packet by packet (round robin) and restamps them, as
/// concurrent connections show up in a capture.
fn interleave(convs: Vec<Conversation>) -> Vec<Packet> {
    let mut lists: Vec<std::vec::IntoIter<Packet>> = convs
        .into_iter()
        .map(|c| c.into_packets().into_iter())
        .collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for l in &mut lists {
            out.extend(l.next());
        }
        if out.len() == before {
            break;
        }
    }
    restamp(&mut out);
    out
}

fn paths_of(run: &Run) -> Vec<Option<String>> {
    paths(&run.transactions())
}

#[test]
fn distinct_keys_stay_within_max_keys_and_the_oldest_are_evicted() {
    let mut c = Conversation::v4();
    c.handshake();
    for n in 0..5000u64 {
        c.client_send(&keyed_post(&format!("flood-{n:08}"), n));
        c.server_send(&json_ok(&format!("ch_{n}")));
    }
    c.close();
    let run = read_with(&["--max-keys", "1000"], c.packets());
    assert_eq!(run.stat("tracker_requests"), 5000);
    assert_eq!(run.stat("tracker_keys_evicted"), 4000);
    assert_eq!(run.stat("tracker_keys_tracked"), 1000);
    assert_eq!(run.stat("alerts"), 0, "{}", run.stdout);
}

#[test]
fn half_open_flows_stay_within_max_flows() {
    // 300 SYNs never answered, then 300 connections whose request is never answered.
    let mut convs = Vec::new();
    for i in 0..300 {
        let mut c = conn(i);
        c.push(
            c.clone()
                .segment_at(Dir::ToServer, c.client_seq(), SYN, &[]),
        );
        convs.push(c);
    }
    for i in 300..600 {
        let mut c = conn(i);
        c.handshake();
        c.client_send(&keyed_post(&format!("half-{i}"), u64::from(i)));
        convs.push(c);
    }
    let packets: Vec<Packet> = {
        let mut v: Vec<Packet> = convs
            .into_iter()
            .flat_map(Conversation::into_packets)
            .collect();
        restamp(&mut v);
        v
    };
    let run = read_with(&["--max-flows", "100"], &packets);
    assert_eq!(run.stat("flows_created"), 600);
    // Past 100 flows the least recently active eighth goes: at most 100 are left at the end.
    let evicted = run.stat("flows_evicted");
    assert!((500..=500 + 100 / 8).contains(&evicted), "{evicted}");
    assert_eq!(run.stat("http_requests"), 300);
    assert_eq!(run.stat("http_requests_unanswered"), 300);
}

#[test]
fn a_one_mib_header_line_is_dropped_and_the_next_request_parses() {
    let mut big = b"POST /v1/big HTTP/1.1\r\nHost: api.example.com\r\nX-Pad: ".to_vec();
    big.resize(big.len() + (1 << 20), b'a');
    big.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(&big);
    c.server_send(&response(431, "text/plain", b"too large"));
    c.client_send(&keyed_post("after-big", 1));
    c.server_send(&json_ok("ch_1"));
    c.close();
    let run = read_with(&[], c.packets());
    assert_eq!(run.stat("http_head_too_large"), 1);
    assert_eq!(run.stat("http_requests"), 1);
    let paths = paths_of(&run);
    assert!(!paths.contains(&Some("/v1/big".into())), "{paths:?}");
    assert!(paths.contains(&Some("/v1/charges".into())), "{paths:?}");
}

#[test]
fn ten_thousand_headers_are_refused_and_the_next_request_parses() {
    let mut req = b"POST /v1/many HTTP/1.1\r\nHost: api.example.com\r\n".to_vec();
    for i in 0..10_000 {
        req.extend_from_slice(format!("x:{}\r\n", i % 10).as_bytes());
    }
    req.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(&req);
    c.server_send(&response(431, "text/plain", b"too many"));
    c.client_send(&keyed_post("after-many", 1));
    c.server_send(&json_ok("ch_1"));
    c.close();
    let run = read_with(&[], c.packets());
    assert_eq!(run.stat("http_too_many_headers"), 1);
    assert_eq!(run.stat("http_head_too_large"), 0);
    assert_eq!(run.stat("http_requests"), 1);
    let paths = paths_of(&run);
    assert!(!paths.contains(&Some("/v1/many".into())), "{paths:?}");
    assert!(paths.contains(&Some("/v1/charges".into())), "{paths:?}");
}

#[test]
fn an_endless_chunked_body_is_reported_at_the_end_of_input() {
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(
        b"POST /v1/uploads HTTP/1.1\r\nHost: api.example.com\r\nIdempotency-Key: endless\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    );
    let mut chunk = b"4000\r\n".to_vec();
    chunk.resize(chunk.len() + 0x4000, b'x');
    chunk.extend_from_slice(b"\r\n");
    // 8 MiB of chunks, no last chunk, no FIN.
    for _ in 0..512 {
        c.client_send(&chunk);
    }
    let run = read_with(&[], c.packets());
    assert_eq!(run.stat("http_requests"), 1);
    assert_eq!(run.stat("http_requests_unanswered"), 1);
    let txs = run.transactions();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0]["request"]["path"], "/v1/uploads");
}

#[test]
fn a_ten_gb_content_length_with_a_little_sent_is_an_incomplete_body() {
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(
        b"POST /v1/uploads HTTP/1.1\r\nHost: api.example.com\r\nIdempotency-Key: huge\r\n\
          Content-Length: 10737418240\r\n\r\n",
    );
    let block = vec![b'y'; 1 << 20];
    for _ in 0..4 {
        c.client_send(&block);
    }
    let run = read_with(&[], c.packets());
    assert_eq!(run.stat("http_requests"), 1);
    assert_eq!(run.stat("http_incomplete_bodies"), 1);
    let txs = run.transactions();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0]["request"]["path"], "/v1/uploads");
}

#[test]
fn one_byte_segments_on_many_connections_give_every_transaction() {
    let convs: Vec<Conversation> = (0..40u32)
        .map(|i| {
            let mut c = conn(i).with_mss(1);
            c.handshake();
            c.client_send(&keyed_post(&format!("byte-{i}"), u64::from(i)));
            c.server_send(&json_ok(&format!("ch_{i}")));
            c.close();
            c
        })
        .collect();
    let packets = interleave(convs);
    let run = read_with(&[], &packets);
    assert_eq!(run.stat("http_transactions"), 40);
    assert_eq!(run.stat("tracker_requests"), 40);
    let txs = run.transactions();
    assert!(
        txs.iter().all(|t| t["response"]["status"] == 200),
        "{txs:?}"
    );
}

/// A flow whose client sends `n` segments of `len` bytes, each `skip` bytes after the end of
/// the one before (the first `skip` bytes after the handshake never come): holes never filled.
fn ooo_storm(n: u32, len: usize, skip: u32) -> Vec<Packet> {
    let mut c = Conversation::v4();
    c.handshake();
    let start = c.client_seq();
    let data = vec![b'z'; len];
    for i in 0..n {
        let seq = start.wrapping_add(skip + i * (len as u32 + skip));
        let p = c.segment_at(Dir::ToServer, seq, ACK, &data);
        c.push(p);
    }
    c.into_packets()
}

#[test]
fn an_out_of_order_storm_is_cut_at_max_ooo_bytes() {
    let run = read_with(&["--max-ooo-bytes", "65536"], &ooo_storm(200, 1460, 100));
    // At most 44 segments (64240 bytes) fit; each later one pushes the oldest hole out.
    let limit_gaps = run.stat("tcp_reassembly_limit_gaps");
    assert!((200 - 44..200).contains(&limit_gaps), "{limit_gaps}");
    // Every hole is a gap in the end: the rest at the end of input.
    assert_eq!(run.stat("tcp_gaps"), 200);
    assert_eq!(run.stat("tcp_gap_bytes"), 200 * 100);
}

#[test]
fn an_out_of_order_storm_of_single_bytes_is_charged_per_segment() {
    // 5000 payload bytes are far below the limit, but 5000 held segments are not: each costs
    // its bookkeeping (well over 64 bytes), so at most 16384 / 64 of them are held at once.
    let run = read_with(&["--max-ooo-bytes", "16384"], &ooo_storm(5000, 1, 1));
    let limit_gaps = run.stat("tcp_reassembly_limit_gaps");
    assert!(limit_gaps >= 5000 - 16384 / 64, "{limit_gaps}");
    assert_eq!(run.stat("tcp_out_of_order_segments"), 5000);
    assert_eq!(run.stat("tcp_gaps"), 5000);
    assert_eq!(run.stat("tcp_gap_bytes"), 5000);
}

#[test]
fn incomplete_fragment_sets_stay_within_max_fragment_sets() {
    let mut packets = Vec::new();
    for i in 0..300u32 {
        let mut c = conn(i);
        let seg = TcpSegment {
            src: c.client,
            dst: c.server,
            seq: 1,
            ack: 0,
            flags: ACK,
            payload: vec![b'f'; 2000],
            options: Vec::new(),
        };
        let ip = ip_packet(&seg, i as u16, true, Corrupt::default());
        // The first fragment never comes: the set can never complete.
        for f in ipv4_fragments(&ip, &[800, 1600]).into_iter().skip(1) {
            let p = Packet::new(0, frame(&Link::Ethernet, &[], true, &f));
            c.push(p);
        }
        packets.extend(c.into_packets());
    }
    // A whole fragmented request still gets through after the flood.
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send_fragmented(&keyed_post("frag-1", 1), &[64]);
    c.server_send(&json_ok("ch_1"));
    c.close();
    packets.extend(c.into_packets());
    restamp(&mut packets);
    let run = read_with(&["--max-fragment-sets", "100"], &packets);
    assert_eq!(run.stat("ipv4_fragments"), 600 + 2);
    assert_eq!(run.stat("ipv4_reassembled"), 1);
    assert!(run.stat("fragments_dropped") >= 200);
    assert_eq!(paths_of(&run), vec![Some("/v1/charges".into())]);
}
