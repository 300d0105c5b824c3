//! Evasion and false alerts: traffic shaped to make idemwatch see something the server did not,
//! or miss what it did. Each test says what is alerted and why; docs/HOSTILE.md lists them all
//! (with the overlap cases of tests/it/reassembly.rs).

use crate::support;

use serde_json::Value;
use support::*;

const FORM: &str = "Content-Type: application/x-www-form-urlencoded";

fn alerts(run: &Run) -> Vec<Value> {
    run.lines
        .iter()
        .filter(|l| l["event_type"] == "alert")
        .cloned()
        .collect()
}

fn kinds(run: &Run) -> Vec<String> {
    alerts(run)
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn keyed(key: &str, body: &[u8]) -> Vec<u8> {
    post(
        "/v1/charges",
        &[FORM, &format!("Idempotency-Key: {key}")],
        body,
    )
}

/// A whole request sent again over the same sequence range with other bytes (same length): the
/// receiver keeps the first copy (its TCP already acknowledged it), so the second is neither a
/// request nor a conflicting reuse of the key. A naive monitor would see a key_conflict.
#[test]
fn whole_request_resent_with_other_bytes_is_one_request_and_no_conflict() {
    let first = keyed("k-evade-1", b"amount=100&currency=eur");
    let forged = keyed("k-evade-1", b"amount=999&currency=eur");
    assert_eq!(first.len(), forged.len());
    let mut c = Conversation::v4();
    c.handshake();
    let seq = c.client_seq();
    c.client_send(&first);
    let copy = c.segment_at(Dir::ToServer, seq, ACK | PSH, &forged);
    c.push(copy);
    c.server_send(&json_ok("ch_1"));
    c.close();
    let run = read_packets(LINKTYPE_ETHERNET, &c.into_packets());
    let txs = run.ok_transactions();
    assert_eq!(txs.len(), 1, "{txs:#?}");
    assert_eq!(
        txs[0]["request"]["body_sha256"],
        sha256_hex(b"amount=100&currency=eur")
    );
    assert!(kinds(&run).is_empty(), "{:?}", kinds(&run));
    assert!(run.stat("tcp_overlap_mismatch") >= 1);
}

/// 300 requests pipelined before the first response, each with its own key, then their 300
/// responses in order. The pending queue holds 256 (`--max-pending`); the overflow is counted,
/// never paired with another request's response, and no alert is invented.
#[test]
fn many_pipelined_requests_are_paired_in_order_and_overflow_is_counted() {
    let n = 300;
    let mut c = Conversation::v4();
    c.handshake();
    for i in 0..n {
        c.client_send(&post(
            &format!("/v1/charges/{i}"),
            &[FORM, &format!("Idempotency-Key: k-pipe-{i}")],
            format!("amount={i}").as_bytes(),
        ));
    }
    for i in 0..n {
        c.server_send(&json_ok(&format!("ch_{i}")));
    }
    c.close();
    let run = read_packets(LINKTYPE_ETHERNET, &c.into_packets());
    let txs = run.ok_transactions();
    let mut paired = 0;
    for t in &txs {
        let (Some(path), Some(id)) = (
            t["request"]["path"].as_str(),
            t["response"]["resource_id"].as_str(),
        ) else {
            continue;
        };
        paired += 1;
        let i = path.trim_start_matches("/v1/charges/");
        assert_eq!(id, format!("ch_{i}"), "request {path} paired with {id}");
    }
    assert!(paired >= 256, "{paired} paired");
    assert_eq!(run.stat("http_pending_overflow"), (n - 256) as u64);
    assert!(kinds(&run).is_empty(), "{:?}", kinds(&run));
}

/// Two pipelined requests with one key and different bodies: the second is a conflicting
/// reuse (key_conflict) sent while the first is in flight (concurrent_reuse, since pipelined
/// requests are in flight together). The server ran both (two resources): conflict_accepted.
#[test]
fn pipelined_conflicting_reuse_is_alerted() {
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(&keyed("k-pipe-same", b"amount=100&currency=eur"));
    c.client_send(&keyed("k-pipe-same", b"amount=500&currency=eur"));
    c.server_send(&json_ok("ch_1"));
    c.server_send(&json_ok("ch_2"));
    c.close();
    let run = read_packets(LINKTYPE_ETHERNET, &c.into_packets());
    run.assert_exit(0);
    let mut k = kinds(&run);
    k.sort();
    assert_eq!(
        k,
        ["concurrent_reuse", "conflict_accepted", "key_conflict"],
        "{:#?}",
        alerts(&run)
    );
}

/// The server answers (413) before the request body has ended, then the client sends the rest:
/// one exchange, with its whole body and its 413, and the next request on the connection is
/// paired with its own response.
#[test]
fn server_answering_before_the_request_body_ends_keeps_the_pairing() {
    let body = vec![b'a'; 3000];
    let request = post(
        "/v1/files",
        &[
            "Content-Type: application/octet-stream",
            "Idempotency-Key: k-early",
        ],
        &body,
    );
    let cut = request.len() - 2000;
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(&request[..cut]);
    c.server_send(&response(413, "text/plain", b"too large"));
    c.client_send(&request[cut..]);
    c.client_send(&get("/v1/next"));
    c.server_send(&json_ok("ch_next"));
    c.close();
    let run = read_packets(LINKTYPE_ETHERNET, &c.into_packets());
    let txs = run.ok_transactions();
    assert_eq!(txs.len(), 2, "{txs:#?}");
    assert_eq!(txs[0]["request"]["path"], "/v1/files");
    assert_eq!(txs[0]["request"]["body_len"], 3000);
    assert_eq!(txs[0]["request"]["body_sha256"], sha256_hex(&body));
    assert_eq!(txs[0]["response"]["status"], 413);
    assert_eq!(txs[1]["request"]["path"], "/v1/next");
    assert_eq!(txs[1]["response"]["resource_id"], "ch_next");
    assert!(kinds(&run).is_empty(), "{:?}", kinds(&run));
}

/// The `i`th connection of a test: its own client port, one second after the one before.
fn connection(i: usize) -> Conversation {
    Conversation::new(v4([10, 0, 0, 5], 50_000 + i as u16), server_v4())
        .starting_at(BASE_TS_NS + i as u64 * 1_000_000_000)
}

/// Runs one POST per (key value as raw header bytes, body) on its own connection, each
/// answered with the same resource.
fn keys_run(requests: &[(&[u8], &str)]) -> Run {
    let mut packets = Vec::new();
    for (i, (key, body)) in requests.iter().enumerate() {
        let mut c = connection(i);
        c.handshake();
        let mut req = b"POST /v1/charges HTTP/1.1\r\nHost: api.example.com\r\n".to_vec();
        req.extend_from_slice(format!("{FORM}\r\nIdempotency-Key: ").as_bytes());
        req.extend_from_slice(key);
        req.extend_from_slice(
            format!("\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
        );
        c.client_send(&req);
        c.server_send(&json_ok("ch_1"));
        c.close();
        packets.extend(c.into_packets());
    }
    packets.sort_by_key(|p| p.ts_ns);
    read_packets(LINKTYPE_ETHERNET, &packets)
}

/// A key with a control character: HTTP forbids it in a field value (RFC 9110 section 5.5)
/// and servers refuse the request, so the header line is dropped as invalid and the request is
/// keyless; the first request to the endpoint taught nothing yet, so no missing_key either. A
/// key with a tab inside is allowed by HTTP but not by the key's form: invalid_key.
#[test]
fn keys_with_control_characters() {
    let run = keys_run(&[
        (b"k-ok-1", "amount=100"),
        (b"k-\x01-bell", "amount=100"),
        (b"k-with\ttab", "amount=100"),
    ]);
    run.assert_exit(0);
    let alerts = alerts(&run);
    let txs = run.transactions();
    assert_eq!(txs.len(), 3, "{txs:#?}");
    // The control character never reaches the output, raw or escaped.
    assert!(!run.stdout.contains("\\u0001"), "{}", run.stdout);
    let invalid: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["kind"] == "invalid_key")
        .collect();
    assert_eq!(invalid.len(), 1, "{alerts:#?}");
    assert_eq!(invalid[0]["key"], "k-with\ttab");
    let missing: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["kind"] == "missing_key")
        .collect();
    assert_eq!(
        missing.len(),
        1,
        "the request whose key line was dropped: {alerts:#?}"
    );
}

/// A key over 255 bytes is invalid_key (and still tracked by its value, so a reuse of it with
/// another body is a key_conflict too); a 64 KiB key makes the head too large to parse, which is
/// counted, and nothing is invented.
#[test]
fn very_long_keys() {
    let long = "k".repeat(300);
    let huge = "h".repeat(70_000);
    let mut packets = Vec::new();
    for (i, (key, body)) in [
        (&long, "amount=100"),
        (&long, "amount=999"),
        (&huge, "amount=100"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = connection(i);
        c.handshake();
        c.client_send(&keyed(key, body.as_bytes()));
        c.server_send(&json_ok(&format!("ch_{i}")));
        c.close();
        packets.extend(c.into_packets());
    }
    packets.sort_by_key(|p| p.ts_ns);
    let run = read_packets(LINKTYPE_ETHERNET, &packets);
    run.assert_exit(0);
    let mut k = kinds(&run);
    k.sort();
    assert_eq!(
        k,
        [
            "conflict_accepted",
            "invalid_key",
            "invalid_key",
            "key_conflict"
        ],
        "{:#?}",
        alerts(&run)
    );
    assert_eq!(run.stat("http_head_too_large"), 1);
    assert!(!run.stdout.contains(&huge));
}

/// Keys are ASCII in both of their forms (Stripe's bare token, the draft's sf-string), so a
/// key with other characters is invalid_key; it is still tracked by its value. The same UTF-8
/// key twice with the same request and result is a plain retry. A byte that is not UTF-8 is
/// printed as U+FFFD and its hex digits, and compared as sent: two keys that differ only in such bytes are two keys,
/// so their different bodies are no key_conflict (with U+FFFD replacement they would be).
#[test]
fn unicode_keys() {
    let run = keys_run(&[
        ("k-é-ü-支付".as_bytes(), "amount=100"),
        ("k-é-ü-支付".as_bytes(), "amount=100"),
        (b"k-\xff\xfe", "amount=100"),
        (b"k-\xfe\xff", "amount=200"),
    ]);
    run.assert_exit(0);
    let alerts = alerts(&run);
    let keys: Vec<&str> = alerts
        .iter()
        .map(|a| {
            assert_eq!(a["kind"], "invalid_key", "{a:#}");
            a["key"].as_str().unwrap_or("")
        })
        .collect();
    assert_eq!(
        keys,
        [
            "k-é-ü-支付",
            "k-é-ü-支付",
            "k-\u{FFFD}FF\u{FFFD}FE",
            "k-\u{FFFD}FE\u{FFFD}FF"
        ],
        "{alerts:#?}"
    );
    assert_eq!(run.stat("tracker_retries"), 1);
    assert_eq!(run.transactions().len(), 4);
}
