//! Link types, encapsulations, capture formats and damaged input, seen from the binary.
//!
//! Every capture is written by `tests/it/support` and read by `idemwatch read --log-requests
//! --stats`; the tests assert on the JSON lines it prints and on its exit status.

use crate::support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use support::*;

const PATH: &str = "/v1/charges/ch_123?expand=customer";
const BODY: &[u8] = br#"{"id":"ch_123","object":"charge","amount":1000}"#;

/// Handshake, one GET, its 200 with a JSON body, FIN/FIN/ACK.
fn one_get(mut c: Conversation) -> Vec<Packet> {
    c.handshake();
    c.client_send(&get(PATH));
    c.server_send(&response(200, "application/json", BODY));
    c.close();
    c.into_packets()
}

/// Exactly one transaction: the GET and its 200, with the right endpoints, flow ids and VLANs.
fn assert_one_get(run: &Run, client: SocketAddr, server: SocketAddr, vlan: Option<&[u16]>) {
    let txs = run.ok_transactions();
    assert_eq!(
        txs.len(),
        1,
        "one transaction expected, got {txs:#?}\nstderr:\n{}",
        run.stderr
    );
    let t = &txs[0];
    assert_request(t, "GET", "api.example.com", PATH, client, server);
    assert_response(t, 200, BODY);
    assert_eq!(t["response"]["resource_id"], "ch_123", "resource_id in {t}");
    assert_eq!(t["response"]["replayed"], false, "replayed in {t}");
    assert_eq!(
        t["request"]["idempotency_key"],
        Value::Null,
        "no key in {t}"
    );
    assert_eq!(t["request"]["body_len"], 0, "GET has no body in {t}");
    assert_eq!(t["request"]["body_complete"], true, "in {t}");
    assert_eq!(
        t["request"]["community_id"],
        community_id(client, server),
        "community_id in {t}"
    );
    assert_eq!(
        t["community_id"],
        community_id(client, server),
        "community_id in {t}"
    );
    assert!(t["flow_id"].is_u64(), "flow_id is a number in {t}");
    assert_eq!(t["request"]["flow_id"], t["flow_id"], "flow_id in {t}");
    match vlan {
        Some(ids) => assert_eq!(t["request"]["vlan"], json!(ids), "vlan in {t}"),
        None => assert!(
            t["request"].get("vlan").is_none_or(Value::is_null),
            "untagged traffic must not report a vlan: {t}"
        ),
    }
    assert_eq!(run.stat("http_transactions"), 1);
    assert_eq!(run.stat("http_requests"), 1);
    assert_eq!(run.stat("http_responses"), 1);
    assert_eq!(run.stat("flows_created"), 1);
}

fn both_families() -> [(SocketAddr, SocketAddr); 2] {
    [(client_v4(), server_v4()), (client_v6(), server_v6())]
}

#[test]
fn ethernet_get_gives_one_transaction_for_ipv4_and_ipv6() {
    for (client, server) in both_families() {
        let packets = one_get(Conversation::new(client, server));
        let run = read_packets(LINKTYPE_ETHERNET, &packets);
        assert_one_get(&run, client, server, None);
        assert_eq!(run.stat("packets"), packets.len() as u64);
        assert!(run.stat("bytes") > 0);
        // Clean traffic: none of the anomaly counters move.
        for counter in [
            "truncated_packets",
            "bad_checksums",
            "ipv4_fragments",
            "ipv4_reassembled",
            "tcp_retransmitted_segments",
            "tcp_overlap_mismatch",
            "tcp_gaps",
            "tcp_gap_bytes",
        ] {
            assert_eq!(run.stat(counter), 0, "{counter} on clean {client} traffic");
        }
    }
}

#[test]
fn vlan_8021q_id_is_reported_for_ipv4_and_ipv6() {
    for (client, server) in both_families() {
        let c = Conversation::new(client, server).with_vlans(&[100], &[100]);
        let run = read_packets(LINKTYPE_ETHERNET, &one_get(c));
        assert_one_get(&run, client, server, Some(&[100]));
    }
}

#[test]
fn qinq_reports_outer_then_inner_vlan_for_ipv4_and_ipv6() {
    for (client, server) in both_families() {
        let c = Conversation::new(client, server).with_vlans(&[300, 100], &[300, 100]);
        let run = read_packets(LINKTYPE_ETHERNET, &one_get(c));
        assert_one_get(&run, client, server, Some(&[300, 100]));
    }
}

#[test]
fn directions_tagged_with_different_vlans_are_one_flow() {
    // Mirror ports often tag each direction differently: the VLAN is not part of the flow key.
    for (client, server) in both_families() {
        let c = Conversation::new(client, server).with_vlans(&[10], &[20]);
        let run = read_packets(LINKTYPE_ETHERNET, &one_get(c));
        assert_one_get(&run, client, server, Some(&[10]));
    }
}

#[test]
fn linux_cooked_sll_carries_ipv4_and_ipv6() {
    for (client, server) in both_families() {
        let c = Conversation::new(client, server).with_link(Link::Sll);
        let run = read_packets(LINKTYPE_LINUX_SLL, &one_get(c));
        assert_one_get(&run, client, server, None);
    }
}

#[test]
fn linux_cooked_sll2_carries_ipv4_and_ipv6() {
    for (client, server) in both_families() {
        let c = Conversation::new(client, server).with_link(Link::Sll2);
        let run = read_packets(LINKTYPE_LINUX_SLL2, &one_get(c));
        assert_one_get(&run, client, server, None);
    }
}

#[test]
fn bsd_null_loopback_carries_ipv4_and_ipv6_with_each_bsd_inet6_value() {
    // AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
    for family in [30, 24, 28] {
        for (client, server) in both_families() {
            let link = Link::Null {
                ipv6_family: family,
            };
            let c = Conversation::new(client, server).with_link(link);
            let run = read_packets(LINKTYPE_NULL, &one_get(c));
            assert_one_get(&run, client, server, None);
        }
    }
}

#[test]
fn raw_ip_linktypes_101_and_12_carry_ipv4_and_ipv6() {
    for linktype in [LINKTYPE_RAW, LINKTYPE_RAW_12] {
        for (client, server) in both_families() {
            let c = Conversation::new(client, server).with_link(Link::Raw { linktype });
            let run = read_packets(linktype, &one_get(c));
            assert_one_get(&run, client, server, None);
        }
    }
}

#[test]
fn raw_ipv4_linktype_228_and_raw_ipv6_linktype_229() {
    for (linktype, client, server) in [
        (LINKTYPE_IPV4, client_v4(), server_v4()),
        (LINKTYPE_IPV6, client_v6(), server_v6()),
    ] {
        let c = Conversation::new(client, server).with_link(Link::Raw { linktype });
        let run = read_packets(linktype, &one_get(c));
        assert_one_get(&run, client, server, None);
    }
}

#[test]
fn pcap_byte_orders_ns_timestamps_and_pcapng_give_the_same_transactions() {
    let packets = one_get(Conversation::v4());
    let reference = read_capture("le-us.pcap", Format::PCAP, LINKTYPE_ETHERNET, &packets);
    assert_one_get(&reference, client_v4(), server_v4(), None);
    let t = &reference.transactions()[0];
    // Packet 3 (after the handshake) carries the request, packet 4 the response: 1 ms apart.
    assert_eq!(
        t["request"]["ts"], "2026-11-28T08:00:00.003000Z",
        "request ts in {t}"
    );
    assert_eq!(
        t["response"]["ts"], "2026-11-28T08:00:00.004000Z",
        "response ts in {t}"
    );
    assert!(
        t["request"]["pcap_filename"]
            .as_str()
            .is_some_and(|f| f.ends_with("le-us.pcap")),
        "pcap_filename in {t}"
    );
    let expected: Vec<Value> = reference
        .transactions()
        .into_iter()
        .map(|mut t| {
            t["request"]
                .as_object_mut()
                .unwrap()
                .remove("pcap_filename");
            t
        })
        .collect();
    for (name, format) in [
        ("be-us.pcap", Format::PCAP_BE),
        ("le-ns.pcap", Format::PCAP_NS),
        ("be-ns.pcap", Format::PCAP_BE_NS),
        ("us.pcapng", Format::PCAPNG),
        ("ns.pcapng", Format::PCAPNG_NS),
    ] {
        let run = read_capture(name, format, LINKTYPE_ETHERNET, &packets);
        let got: Vec<Value> = run
            .ok_transactions()
            .into_iter()
            .map(|mut t| {
                let r = t["request"].as_object_mut().expect("request object");
                let file = r.remove("pcap_filename");
                assert!(
                    file.as_ref()
                        .and_then(Value::as_str)
                        .is_some_and(|f| f.ends_with(name)),
                    "pcap_filename {file:?} for {name}"
                );
                t
            })
            .collect();
        assert_eq!(
            got, expected,
            "{name} differs from the little-endian µs pcap"
        );
    }
}

#[test]
fn reading_stdin_gives_the_same_transactions_as_the_file() {
    let packets = one_get(Conversation::v4());
    let from_file = read_packets(LINKTYPE_ETHERNET, &packets);
    for format in [Format::PCAP, Format::PCAPNG] {
        let bytes = capture_bytes(format, LINKTYPE_ETHERNET, &packets);
        let from_stdin = run_with(
            &["read", "--log-requests", "--stats", "-"],
            Some(&bytes),
            &[],
        );
        from_stdin.assert_exit(0);
        assert_eq!(
            from_stdin.comparable_transactions(),
            from_file.comparable_transactions(),
            "stdin ({format:?}) and file disagree"
        );
        assert_eq!(from_stdin.transactions().len(), 1);
    }
}

#[test]
fn several_files_are_all_read_each_with_its_filename() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pcap");
    let b = dir.path().join("b.pcapng");
    write_capture(
        &a,
        Format::PCAP,
        LINKTYPE_ETHERNET,
        &one_get(Conversation::v4()),
    );
    let other = Conversation::new(v4([10, 0, 0, 6], 40000), server_v4());
    write_capture(&b, Format::PCAPNG, LINKTYPE_ETHERNET, &one_get(other));
    let run = run_with(
        &[
            "read",
            "--log-requests",
            "--stats",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
        None,
        &[],
    );
    let txs = run.ok_transactions();
    assert_eq!(txs.len(), 2, "{txs:#?}");
    let mut seen: Vec<(String, String)> = txs
        .iter()
        .map(|t| {
            (
                t["request"]["src_ip"].as_str().unwrap().to_owned(),
                t["request"]["pcap_filename"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen[0].0, "10.0.0.5");
    assert!(seen[0].1.ends_with("a.pcap"), "{seen:?}");
    assert_eq!(seen[1].0, "10.0.0.6");
    assert!(seen[1].1.ends_with("b.pcapng"), "{seen:?}");
}

#[test]
fn unsupported_link_type_fails_loudly_instead_of_printing_nothing() {
    // 802.11 frames: a real link type idemwatch does not decode.
    let packets = one_get(Conversation::v4());
    for format in [Format::PCAP, Format::PCAPNG] {
        let run = read_capture("wifi.pcap", format, LINKTYPE_IEEE802_11, &packets);
        run.assert_exit(1);
        assert!(run.transactions().is_empty(), "{}", run.stdout);
        let err = run.stderr.to_lowercase();
        assert!(
            err.contains("link") || err.contains("105"),
            "stderr should name the unsupported link type ({format:?}): {:?}",
            run.stderr
        );
    }
}

/// Stderr lines, ignoring blank ones.
fn stderr_lines(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn file_truncated_in_a_record_keeps_earlier_transactions_and_exits_1() {
    // A complete transaction, then a second connection whose request record is cut.
    let mut first = Conversation::v4();
    first.handshake();
    first.client_send(&get(PATH));
    first.server_send(&response(200, "application/json", BODY));
    let mut packets = first.into_packets();
    let mut second = Conversation::new(v4([10, 0, 0, 6], 40000), server_v4())
        .starting_at(BASE_TS_NS + 100 * STEP_NS);
    second.handshake();
    let cut_record = packets.len() + second.len();
    second.client_send(&get("/v1/second"));
    second.server_send(&response(200, "application/json", BODY));
    packets.extend(second.into_packets());

    for format in [Format::PCAP, Format::PCAPNG] {
        let bytes = capture_bytes(format, LINKTYPE_ETHERNET, &packets);
        let start = record_offsets(format, &packets)[cut_record];
        for (place, cut) in [("record header", start + 10), ("packet data", start + 40)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("cut.pcap");
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let run = read_file(&path);
            run.assert_exit(1);
            let txs = run.transactions();
            assert_eq!(
                paths(&txs),
                vec![Some(PATH.to_owned())],
                "cut in the {place} ({format:?}): the transaction before the damage is written"
            );
            assert_response(&txs[0], 200, BODY);
            assert_eq!(
                stderr_lines(&run).len(),
                1,
                "one stderr line for a cut in the {place} ({format:?}): {:?}",
                run.stderr
            );
        }
    }
}

#[test]
fn a_file_that_is_not_a_capture_exits_1() {
    let text = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n".repeat(4);
    let cut_header = capture_bytes(Format::PCAP, LINKTYPE_ETHERNET, &[])[..10].to_vec();
    for (what, bytes) in [
        ("text", text),
        ("empty file", Vec::new()),
        ("pcap header cut short", cut_header),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.pcap");
        std::fs::write(&path, &bytes).unwrap();
        let run = read_file(&path);
        assert_eq!(
            run.code,
            Some(1),
            "{what}: exit status; stderr: {:?}",
            run.stderr
        );
        assert!(run.transactions().is_empty(), "{what}: {}", run.stdout);
        assert_eq!(
            stderr_lines(&run).len(),
            1,
            "{what}: one stderr line: {:?}",
            run.stderr
        );
    }
}

#[test]
fn a_missing_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does-not-exist.pcap");
    let run = read_file(&path);
    run.assert_exit(1);
    assert!(
        run.stderr.contains("does-not-exist.pcap"),
        "stderr names the file: {:?}",
        run.stderr
    );
}

#[test]
fn an_empty_file_list_is_a_usage_error() {
    let run = run_with(&["read", "--log-requests", "--stats"], None, &[]);
    run.assert_exit(2);
    assert!(run.transactions().is_empty());
    assert!(
        !run.stderr.trim().is_empty(),
        "usage error explained on stderr"
    );
}

#[test]
fn bad_tcp_checksums_are_counted_and_the_packets_still_used() {
    for (client, server) in both_families() {
        let mut c = Conversation::new(client, server);
        c.handshake();
        c.corrupt = Corrupt {
            tcp: true,
            ipv4_header: false,
        };
        c.client_send(&get(PATH));
        c.corrupt = Corrupt::default();
        c.server_send(&response(200, "application/json", BODY));
        c.close();
        let run = read_packets(LINKTYPE_ETHERNET, c.packets());
        assert_one_get(&run, client, server, None);
        assert_eq!(
            run.stat("bad_checksums"),
            1,
            "the one corrupted segment ({client})"
        );
    }
}

#[test]
fn bad_ipv4_header_checksum_is_counted_and_the_packet_still_used() {
    let mut c = Conversation::v4();
    c.handshake();
    c.corrupt = Corrupt {
        tcp: false,
        ipv4_header: true,
    };
    c.client_send(&get(PATH));
    c.corrupt = Corrupt::default();
    c.server_send(&response(200, "application/json", BODY));
    c.close();
    let run = read_packets(LINKTYPE_ETHERNET, c.packets());
    assert_one_get(&run, client_v4(), server_v4(), None);
    assert_eq!(run.stat("bad_checksums"), 1);
}

#[test]
fn snaplen_cut_body_is_incomplete_and_never_misread() {
    // The response head goes in its own segment; its 3000-byte body in three 1000-byte segments,
    // each cut to 100 bytes of payload by the snaplen. Then a second, small transaction.
    let body: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3000\r\n\r\n";
    let mut c = Conversation::v4().with_mss(1000);
    c.handshake();
    c.client_send(&get("/v1/big"));
    c.server_send(head);
    let body_packets = c.server_send(&body);
    c.client_send(&get("/v1/small"));
    c.server_send(&response(200, "application/json", BODY));
    c.close();
    let mut packets = c.into_packets();
    let snaplen = 14 + 20 + 20 + 100;
    assert_eq!(body_packets.len(), 3);
    for p in &mut packets[body_packets] {
        p.truncate(snaplen);
    }
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    assert_eq!(
        paths(&txs),
        vec![Some("/v1/big".to_owned()), Some("/v1/small".to_owned())]
    );
    let big = &txs[0]["response"];
    assert_eq!(big["status"], 200, "{big}");
    assert_eq!(big["body_complete"], false, "{big}");
    assert_eq!(big["body_len"], 3000, "declared length: {big}");
    assert_eq!(big["body_missing_bytes"], 2700, "{big}");
    assert!(
        big.get("body_sha256").is_none_or(Value::is_null),
        "no hash of an incomplete body: {big}"
    );
    assert_response(&txs[1], 200, BODY);
    assert_eq!(run.stat("truncated_packets"), 3);
}

#[test]
fn snaplen_cut_request_head_is_never_misparsed_or_mispaired() {
    // The first request's head is 400 bytes in one segment, cut to 100 bytes of payload: it
    // cannot be parsed, and its response must not go to the next request.
    let long_header = format!("X-Trace: {}", "t".repeat(300));
    let first = post("/1", &[&long_header, "Idempotency-Key: cut-1"], b"amount=1");
    let mut c = Conversation::v4();
    c.handshake();
    let cut = c.client_send(&first);
    c.server_send(&response(201, "text/plain", b"first"));
    c.client_send(&get("/2"));
    c.server_send(&response(202, "text/plain", b"second"));
    c.close();
    let mut packets = c.into_packets();
    assert_eq!(cut.len(), 1);
    packets[cut.start].truncate(14 + 20 + 20 + 100);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    let txs = run.ok_transactions();
    for (path, status) in pairs(&txs) {
        match (path.as_deref(), status) {
            (Some("/2"), Some(s)) => assert_eq!(s, 202, "/2 got /1's response: {txs:#?}"),
            (Some("/1"), Some(s)) => assert_eq!(s, 201, "{txs:#?}"),
            _ => {}
        }
    }
    assert!(
        pairs(&txs).contains(&(Some("/2".to_owned()), Some(202))),
        "the request after the damage is found: {txs:#?}"
    );
    if let Some(t) = txs.iter().find(|t| t["request"]["path"] == "/1") {
        assert_ne!(t["request"]["body_complete"], true, "{t}");
    }
    assert_eq!(run.stat("truncated_packets"), 1);
}

/// A POST whose single TCP segment is long enough to fragment.
fn fragmented_post(order: &[usize], drop: Option<usize>) -> (Run, Vec<u8>) {
    let body = br#"{"amount":1000,"currency":"eur","customer":"cus_NffrFeUfNV2Hib","description":"fragmented request body, long enough for three fragments"}"#;
    let request = post(
        "/v1/charges",
        &["Content-Type: application/json", "Idempotency-Key: frag-1"],
        body,
    );
    let mut c = Conversation::v4();
    c.handshake();
    // Offsets count from the TCP header: the first fragment holds only 16 of its 20 bytes.
    let frags = c.client_send_fragmented(&request, &[16, 104, 200]);
    c.server_send(&response(200, "application/json", BODY));
    c.close();
    let mut packets = c.into_packets();
    let originals: Vec<Packet> = packets[frags.clone()].to_vec();
    assert_eq!(originals.len(), 4);
    let reordered: Vec<Packet> = order
        .iter()
        .filter(|&&i| Some(i) != drop)
        .map(|&i| originals[i].clone())
        .collect();
    packets.splice(frags, reordered);
    restamp(&mut packets);
    (read_packets(LINKTYPE_ETHERNET, &packets), body.to_vec())
}

#[test]
fn ipv4_fragmented_request_is_reassembled_in_any_fragment_order() {
    for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
        let (run, body) = fragmented_post(&order, None);
        let txs = run.ok_transactions();
        assert_eq!(txs.len(), 1, "fragment order {order:?}: {txs:#?}");
        let r = &txs[0]["request"];
        assert_eq!(r["method"], "POST", "{order:?}");
        assert_eq!(r["path"], "/v1/charges", "{order:?}");
        assert_eq!(r["idempotency_key"], "frag-1", "{order:?}");
        assert_eq!(r["body_len"], body.len(), "{order:?}");
        assert_eq!(r["body_sha256"], sha256_hex(&body), "{order:?}");
        assert_eq!(txs[0]["response"]["status"], 200, "{order:?}");
        assert_eq!(run.stat("ipv4_fragments"), 4, "{order:?}");
        assert_eq!(run.stat("ipv4_reassembled"), 1, "{order:?}");
    }
}

#[test]
fn ipv4_datagram_missing_a_fragment_gives_no_request() {
    let (run, _) = fragmented_post(&[0, 1, 2, 3], Some(1));
    let txs = run.ok_transactions();
    assert!(
        txs.iter().all(|t| t["request"].is_null()),
        "a request was made up from an incomplete datagram: {txs:#?}"
    );
    assert_eq!(run.stat("ipv4_fragments"), 3);
    assert_eq!(run.stat("ipv4_reassembled"), 0);
}
