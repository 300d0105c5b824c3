//! HTTP/1.1 message framing seen from the binary (RFC 9112): keep-alive, pipelining,
//! Content-Length and chunked bodies, 1xx, bodiless responses, close-delimited bodies, split
//! heads, conflicting framing headers, content coding, redaction and idempotency keys.

use crate::support;

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use support::*;

/// Sends the exchanges on one keep-alive connection (request, then its response) and closes.
fn keep_alive(c: &mut Conversation, exchanges: &[(&[u8], &[u8])]) {
    c.handshake();
    for (request, response) in exchanges {
        c.client_send(request);
        c.server_send(response);
    }
    c.close();
}

/// Runs the conversation's packets and returns the transactions of a run that exited 0.
fn transactions_of(c: &Conversation) -> (Run, Vec<Value>) {
    let run = read_packets(c.linktype(), c.packets());
    let txs = run.ok_transactions();
    (run, txs)
}

fn p(path: &str) -> Option<String> {
    Some(path.to_owned())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn keep_alive_connection_gives_three_transactions_in_order() {
    let post_body = br#"{"amount":1000,"currency":"eur"}"#;
    let requests = [
        get("/v1/customers/cus_1"),
        post(
            "/v1/charges",
            &["Content-Type: application/json", "Idempotency-Key: ka-1"],
            post_body,
        ),
        get("/v1/charges/ch_9"),
    ];
    let responses = [
        response(200, "application/json", br#"{"id":"cus_1"}"#),
        response(201, "application/json", br#"{"id":"ch_9","amount":1000}"#),
        response(200, "application/json", br#"{"id":"ch_9","status":"paid"}"#),
    ];
    let mut c = Conversation::v4();
    keep_alive(
        &mut c,
        &[
            (&requests[0], &responses[0]),
            (&requests[1], &responses[1]),
            (&requests[2], &responses[2]),
        ],
    );
    let (run, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![
            (p("/v1/customers/cus_1"), Some(200)),
            (p("/v1/charges"), Some(201)),
            (p("/v1/charges/ch_9"), Some(200)),
        ]
    );
    assert_eq!(txs[1]["request"]["method"], "POST");
    assert_eq!(txs[1]["request"]["idempotency_key"], "ka-1");
    assert_eq!(txs[1]["request"]["body_sha256"], sha256_hex(post_body));
    assert_response(&txs[0], 200, br#"{"id":"cus_1"}"#);
    assert_response(&txs[1], 201, br#"{"id":"ch_9","amount":1000}"#);
    assert_response(&txs[2], 200, br#"{"id":"ch_9","status":"paid"}"#);
    assert_eq!(txs[1]["response"]["resource_id"], "ch_9");
    assert_eq!(run.stat("http_transactions"), 3);
    assert_eq!(run.stat("http_requests"), 3);
    assert_eq!(run.stat("http_responses"), 3);
}

#[test]
fn pipelined_requests_pair_with_responses_in_order() {
    let mut requests = get("/p1");
    requests.extend(post("/p2", &["Idempotency-Key: pipe-2"], b"0123456789"));
    requests.extend(get("/p3"));
    let mut responses = response(201, "text/plain", b"one");
    responses.extend(response(202, "text/plain", b"second"));
    responses.extend(response(203, "text/plain", b"the third"));
    let mut c = Conversation::v4();
    c.handshake();
    // All three requests in one segment, then all three responses in one segment.
    assert_eq!(c.client_send(&requests).len(), 1);
    assert_eq!(c.server_send(&responses).len(), 1);
    c.close();
    let (_, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![
            (p("/p1"), Some(201)),
            (p("/p2"), Some(202)),
            (p("/p3"), Some(203))
        ]
    );
    assert_eq!(txs[1]["request"]["body_len"], 10);
    assert_eq!(txs[1]["request"]["idempotency_key"], "pipe-2");
    assert_response(&txs[0], 201, b"one");
    assert_response(&txs[1], 202, b"second");
    assert_response(&txs[2], 203, b"the third");
}

#[test]
fn content_length_bodies_have_exact_length_and_sha256() {
    // Body bytes that look like HTTP must stay body bytes.
    let mut request_body = b"GET /not-a-request HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    request_body.extend((0..=255u8).cycle().take(3000));
    let response_body: Vec<u8> = b"HTTP/1.1 200 OK\r\n\r\n"
        .iter()
        .copied()
        .cycle()
        .take(5000)
        .collect();
    let request = post(
        "/v1/files",
        &["Content-Type: application/octet-stream"],
        &request_body,
    );
    let reply = response(200, "application/octet-stream", &response_body);
    let mut c = Conversation::v4();
    keep_alive(
        &mut c,
        &[
            (&request, &reply),
            (&get("/after"), &response(200, "text/plain", b"ok")),
        ],
    );
    let (_, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![(p("/v1/files"), Some(200)), (p("/after"), Some(200))]
    );
    let r = &txs[0]["request"];
    assert_eq!(r["body_len"], request_body.len());
    assert_eq!(r["body_sha256"], sha256_hex(&request_body));
    assert_eq!(r["body_complete"], true);
    assert_response(&txs[0], 200, &response_body);
}

#[test]
fn chunked_bodies_with_extensions_and_trailers_are_dechunked() {
    let request =
        b"POST /v1/batch HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\
Idempotency-Key: chunk-1\r\n\r\n\
5;ext=1\r\nhello\r\n\
6;name=\"quoted;value\"\r\n world\r\n\
0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";
    let response_body_parts: [&[u8]; 3] = [
        br#"{"id":"batch_7","#,
        br#""items":[1,2,3],"#,
        br#""done":true}"#,
    ];
    let mut reply =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for part in response_body_parts {
        // Upper-case hex sizes, one with an extension.
        reply.extend(format!("{:X};cache=no\r\n", part.len()).as_bytes());
        reply.extend_from_slice(part);
        reply.extend_from_slice(b"\r\n");
    }
    reply.extend_from_slice(b"0\r\nServer-Timing: db;dur=53\r\n\r\n");
    let response_body = response_body_parts.concat();
    let mut c = Conversation::v4().with_mss(20);
    keep_alive(
        &mut c,
        &[
            (request, &reply),
            (&get("/after"), &response(200, "text/plain", b"ok")),
        ],
    );
    let (_, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![(p("/v1/batch"), Some(200)), (p("/after"), Some(200))]
    );
    let r = &txs[0]["request"];
    assert_eq!(r["body_len"], 11, "{r}");
    assert_eq!(r["body_sha256"], sha256_hex(b"hello world"), "{r}");
    assert_eq!(r["body_complete"], true, "{r}");
    assert_eq!(r["idempotency_key"], "chunk-1");
    assert_response(&txs[0], 200, &response_body);
    assert_eq!(txs[0]["response"]["resource_id"], "batch_7");
    assert_response(&txs[1], 200, b"ok");
}

#[test]
fn expect_100_continue_reports_the_interim_and_the_final_status() {
    let body = br#"{"amount":1000}"#;
    let request = post(
        "/v1/charges",
        &["Expect: 100-continue", "Idempotency-Key: exp-1"],
        body,
    );
    let at = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(&request[..at]);
    c.server_send(b"HTTP/1.1 100 Continue\r\n\r\n");
    c.client_send(&request[at..]);
    c.server_send(&response(200, "application/json", br#"{"id":"ch_e"}"#));
    c.client_send(&get("/after"));
    c.server_send(&response(200, "text/plain", b"ok"));
    // 103 Early Hints, then the final response, in one segment.
    c.client_send(&get("/hints"));
    let mut hinted =
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".to_vec();
    hinted.extend(response(200, "text/plain", b"hinted"));
    c.server_send(&hinted);
    c.close();
    let (run, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![
            (p("/v1/charges"), Some(200)),
            (p("/after"), Some(200)),
            (p("/hints"), Some(200))
        ]
    );
    assert_eq!(txs[0]["response"]["interim_statuses"], json!([100]));
    assert_eq!(txs[2]["response"]["interim_statuses"], json!([103]));
    assert_response(&txs[2], 200, b"hinted");
    assert_eq!(txs[0]["request"]["body_sha256"], sha256_hex(body));
    assert_eq!(txs[0]["response"]["resource_id"], "ch_e");
    assert!(
        txs[1]["response"]
            .get("interim_statuses")
            .is_none_or(Value::is_null),
        "no interim response was sent for /after: {}",
        txs[1]
    );
    assert_eq!(run.stat("http_transactions"), 3);
}

#[test]
fn head_response_with_content_length_has_no_body() {
    let head_request = b"HEAD /v1/files/f_1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
    let head_response =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nContent-Length: 123456\r\n\r\n";
    let mut c = Conversation::v4();
    keep_alive(
        &mut c,
        &[
            (head_request, head_response),
            (&get("/after"), &response(200, "text/plain", b"ok")),
        ],
    );
    let (_, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![(p("/v1/files/f_1"), Some(200)), (p("/after"), Some(200))]
    );
    assert_eq!(txs[0]["request"]["method"], "HEAD");
    assert_eq!(txs[0]["response"]["body_len"], 0, "{}", txs[0]);
    assert_eq!(txs[0]["response"]["body_complete"], true, "{}", txs[0]);
    assert_response(&txs[1], 200, b"ok");
}

#[test]
fn responses_204_and_304_have_no_body() {
    let delete = b"DELETE /v1/items/1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
    let no_content = b"HTTP/1.1 204 No Content\r\nDate: Sat, 28 Nov 2026 08:00:00 GMT\r\n\r\n";
    let conditional =
        b"GET /v1/items/2 HTTP/1.1\r\nHost: api.example.com\r\nIf-None-Match: \"v2\"\r\n\r\n";
    // A 304 may carry the Content-Length of the representation it stands for, never a body.
    let not_modified = b"HTTP/1.1 304 Not Modified\r\nETag: \"v2\"\r\nContent-Length: 500\r\n\r\n";
    let mut c = Conversation::v4();
    keep_alive(
        &mut c,
        &[
            (delete, no_content),
            (conditional, not_modified),
            (&get("/after"), &response(200, "text/plain", b"ok")),
        ],
    );
    let (_, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![
            (p("/v1/items/1"), Some(204)),
            (p("/v1/items/2"), Some(304)),
            (p("/after"), Some(200))
        ]
    );
    assert_eq!(txs[0]["response"]["body_len"], 0);
    assert_eq!(txs[1]["response"]["body_len"], 0);
    assert_response(&txs[2], 200, b"ok");
}

#[test]
fn response_without_length_is_delimited_by_connection_close() {
    let body: Vec<u8> = (0..2500u32).map(|i| b'a' + (i % 26) as u8).collect();
    for (request, head) in [
        (
            &b"GET /old HTTP/1.0\r\nHost: api.example.com\r\n\r\n"[..],
            &b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"[..],
        ),
        (
            b"GET /old HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        ),
    ] {
        let mut c = Conversation::v4().with_mss(1000);
        c.handshake();
        c.client_send(request);
        c.server_send(head);
        c.server_send(&body);
        c.server_fin();
        c.client_fin();
        c.ack(Dir::ToClient);
        let (_, txs) = transactions_of(&c);
        assert_eq!(
            pairs(&txs),
            vec![(p("/old"), Some(200))],
            "{}",
            String::from_utf8_lossy(head)
        );
        assert_response(&txs[0], 200, &body);
    }
}

#[test]
fn heads_split_across_many_segments() {
    let request = b"POST /v1/charges HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\n\
Idempotency-Key: split-1\r\nX-Request-Id: 1234567890\r\nContent-Length: 15\r\n\r\n{\"amount\":1000}";
    let reply = response(201, "application/json", br#"{"id":"ch_split"}"#);
    let every = |n: usize, len: usize| (n..len).step_by(n).collect::<Vec<_>>();
    let mut c = Conversation::v4();
    c.handshake();
    c.send_split(Dir::ToServer, request, &every(3, request.len()));
    c.send_split(Dir::ToClient, &reply, &every(2, reply.len()));
    // The next request cut inside its CRLFCRLF.
    let next = get("/after");
    let end = next.len();
    c.send_split(Dir::ToServer, &next, &[5, end - 3, end - 1]);
    c.server_send(&response(200, "text/plain", b"ok"));
    c.close();
    let (_, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![(p("/v1/charges"), Some(201)), (p("/after"), Some(200))]
    );
    assert_eq!(txs[0]["request"]["idempotency_key"], "split-1");
    assert_eq!(txs[0]["request"]["host"], "api.example.com");
    assert_eq!(
        txs[0]["request"]["body_sha256"],
        sha256_hex(br#"{"amount":1000}"#)
    );
    assert_eq!(txs[0]["response"]["resource_id"], "ch_split");
}

#[test]
fn lower_case_header_names_are_recognised() {
    let request =
        b"POST /v1/charges HTTP/1.1\r\nhost: api.example.com\r\nidempotency-key: lower-1\r\n\
transfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
    let reply = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\
idempotent-replayed: true\r\nlocation: /v1/charges/ch_low\r\n\r\n{\"ok\":true}\n";
    let mut c = Conversation::v4();
    keep_alive(
        &mut c,
        &[
            (request, reply),
            (&get("/after"), &response(200, "text/plain", b"ok")),
        ],
    );
    let (_, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![(p("/v1/charges"), Some(201)), (p("/after"), Some(200))]
    );
    let r = &txs[0]["request"];
    assert_eq!(r["host"], "api.example.com");
    assert_eq!(r["idempotency_key"], "lower-1");
    assert_eq!(r["body_len"], 4);
    assert_response(&txs[0], 201, b"{\"ok\":true}\n");
    assert_eq!(txs[0]["response"]["replayed"], true);
    assert_eq!(txs[0]["response"]["resource_id"], "/v1/charges/ch_low");
}

#[test]
fn conflicting_content_lengths_never_yield_invented_requests() {
    // RFC 9112 §6.3: differing Content-Length values make the framing invalid. Read as 5, the
    // rest would become a request for /smuggled; read as the whole, it would hide it.
    let hidden = b"GET /smuggled HTTP/1.1\r\nHost: evil.example\r\n\r\n";
    let mut request = format!(
        "POST /a HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\nContent-Length: {}\r\n\r\nhello",
        5 + hidden.len()
    )
    .into_bytes();
    request.extend_from_slice(hidden);
    let reply = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(&request);
    c.server_send(reply);
    c.server_fin();
    c.client_fin();
    c.ack(Dir::ToClient);
    let (_, txs) = transactions_of(&c);
    assert!(
        !txs.iter().any(|t| t["request"]["path"] == "/smuggled"),
        "invented request: {txs:#?}"
    );
    let with_request: Vec<_> = pairs(&txs)
        .into_iter()
        .filter(|(p, _)| p.is_some())
        .collect();
    assert!(
        with_request.len() <= 1
            && with_request
                .iter()
                .all(|(path, status)| *path == p("/a") && matches!(status, None | Some(400))),
        "only /a may be reported, once: {txs:#?}"
    );
    if let Some(t) = txs.iter().find(|t| t["request"]["path"] == "/a") {
        assert_ne!(
            t["request"]["body_complete"], true,
            "an unframeable body has no hash: {t}"
        );
    }
}

#[test]
fn transfer_encoding_wins_over_content_length() {
    // RFC 9112 §6.3: with both, Transfer-Encoding decides and Content-Length is ignored.
    for request in [
        &b"POST /te HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
b\r\nhello world\r\n0\r\n\r\n"[..],
        b"POST /te HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n\
b\r\nhello world\r\n0\r\n\r\n",
    ] {
        let mut c = Conversation::v4();
        c.handshake();
        c.client_send(request);
        c.server_send(&response(200, "text/plain", b"done"));
        c.close();
        let (_, txs) = transactions_of(&c);
        assert_eq!(pairs(&txs), vec![(p("/te"), Some(200))], "{txs:#?}");
        assert_eq!(txs[0]["request"]["body_len"], 11);
        assert_eq!(txs[0]["request"]["body_sha256"], sha256_hex(b"hello world"));
        assert_eq!(txs[0]["request"]["body_complete"], true);
        assert_response(&txs[0], 200, b"done");
    }
}

#[test]
fn gzip_request_body_hashes_the_compressed_bytes_and_canonicalises_the_decompressed() {
    let plain =
        b"amount=1000 currency=eur note=the same words again and again and again".repeat(20);
    let compressed = gzip(&plain);
    let request = post(
        "/v1/notes",
        &[
            "Content-Type: text/plain",
            "Content-Encoding: gzip",
            "Idempotency-Key: gz-1",
        ],
        &compressed,
    );
    // The same compressed body, chunked: body_len counts after de-chunking.
    let mut chunked =
        b"POST /v1/notes-chunked HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: text/plain\r\n\
Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for part in compressed.chunks(40) {
        chunked.extend(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut c = Conversation::v4();
    keep_alive(
        &mut c,
        &[
            (&request, &response(201, "text/plain", b"stored")),
            (&chunked, &response(201, "text/plain", b"stored")),
        ],
    );
    let (_, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![
            (p("/v1/notes"), Some(201)),
            (p("/v1/notes-chunked"), Some(201))
        ]
    );
    for t in &txs {
        let r = &t["request"];
        assert_eq!(r["body_len"], compressed.len(), "{r}");
        assert_eq!(r["body_sha256"], sha256_hex(&compressed), "{r}");
        assert_eq!(r["body_canon_sha256"], sha256_hex(&plain), "{r}");
    }
}

#[test]
fn json_body_canonical_hash_follows_rfc_8785_and_plain_bodies_hash_as_sent() {
    let json_body = br#"{ "b": 1, "c": "x", "a": [1, 2] }"#;
    let text_body = b"b=1 c=x a=1,2";
    let mut c = Conversation::v4();
    keep_alive(
        &mut c,
        &[
            (
                &post("/v1/json", &["Content-Type: application/json"], json_body),
                &response(200, "text/plain", b"ok"),
            ),
            (
                &post("/v1/text", &["Content-Type: text/plain"], text_body),
                &response(200, "text/plain", b"ok"),
            ),
        ],
    );
    let (_, txs) = transactions_of(&c);
    assert_eq!(
        pairs(&txs),
        vec![(p("/v1/json"), Some(200)), (p("/v1/text"), Some(200))]
    );
    let json = &txs[0]["request"];
    assert_eq!(json["body_sha256"], sha256_hex(json_body));
    assert_eq!(
        json["body_canon_sha256"],
        sha256_hex(br#"{"a":[1,2],"b":1,"c":"x"}"#)
    );
    let text = &txs[1]["request"];
    assert_eq!(text["body_sha256"], sha256_hex(text_body));
    assert_eq!(text["body_canon_sha256"], sha256_hex(text_body));
}

/// Runs the conversation with tracing at its most verbose, so logs are checked too.
fn run_verbose(c: &Conversation) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.pcap");
    write_capture(&path, Format::PCAP, c.linktype(), c.packets());
    run_with(
        &["read", "--log-requests", "--stats", path.to_str().unwrap()],
        None,
        &[("RUST_LOG", "trace")],
    )
}

#[test]
fn credential_query_values_are_redacted_and_never_printed() {
    let target = "/v1/x?api_key=SECRETQ1&a=1&token=SECRETQ2&apikey=SECRETQ3&access_token=SECRETQ4\
&password=SECRETQ5&secret=SECRETQ6&client_secret=SECRETQ7&signature=SECRETQ8&sig=SECRETQ9&page=2";
    let expected = "/v1/x?api_key=REDACTED&a=1&token=REDACTED&apikey=REDACTED&access_token=REDACTED\
&password=REDACTED&secret=REDACTED&client_secret=REDACTED&signature=REDACTED&sig=REDACTED&page=2";
    let mut c = Conversation::v4();
    keep_alive(
        &mut c,
        &[
            (&get(target), &response(200, "text/plain", b"ok")),
            (
                &get("/v1/plain?page=2&sort=asc"),
                &response(200, "text/plain", b"ok"),
            ),
        ],
    );
    let run = run_verbose(&c);
    let txs = run.ok_transactions();
    assert_eq!(
        pairs(&txs),
        vec![
            (p(expected), Some(200)),
            (p("/v1/plain?page=2&sort=asc"), Some(200))
        ]
    );
    assert!(
        !run.stdout.contains("SECRETQ"),
        "a credential reached stdout:\n{}",
        run.stdout
    );
    assert!(
        !run.stderr.contains("SECRETQ"),
        "a credential reached stderr:\n{}",
        run.stderr
    );
}

#[test]
fn authorization_cookie_api_key_and_body_values_never_appear() {
    let body = br#"{"card":"BODYSECRET-4242","amount":1000}"#;
    let request = post(
        "/v1/charges",
        &[
            "Authorization: Bearer sk_live_AUTHSECRET",
            "Proxy-Authorization: Basic UFJPWFlTRUNSRVQ6eA==",
            "Cookie: session=COOKIESECRET; theme=dark",
            "X-Api-Key: APIKEYSECRET",
            "Content-Type: application/json",
            "Idempotency-Key: auth-1",
        ],
        body,
    );
    let reply = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=SETCOOKIESECRET; HttpOnly\r\n\
Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"id\":\"ch_a\"}";
    let mut c = Conversation::v4();
    keep_alive(&mut c, &[(&request, reply)]);
    let run = run_verbose(&c);
    let txs = run.ok_transactions();
    assert_eq!(pairs(&txs), vec![(p("/v1/charges"), Some(200))]);
    for secret in [
        "AUTHSECRET",
        "UFJPWFlTRUNSRVQ6eA",
        "COOKIESECRET",
        "APIKEYSECRET",
        "BODYSECRET",
    ] {
        assert!(
            !run.stdout.contains(secret),
            "{secret} reached stdout:\n{}",
            run.stdout
        );
        assert!(
            !run.stderr.contains(secret),
            "{secret} reached stderr:\n{}",
            run.stderr
        );
    }
}

#[test]
fn idempotency_key_bare_and_quoted_forms_give_the_same_key() {
    let exchanges: Vec<(Vec<u8>, Vec<u8>)> = [
        "Idempotency-Key: k1",
        "Idempotency-Key: \"k1\"",
        "X-Idempotency-Key: k1",
        "idempotency-key:   k1  ",
        "X-Request-Id: k1",
    ]
    .iter()
    .enumerate()
    .map(|(i, header)| {
        (
            post(&format!("/v1/charges/{i}"), &[header], b"amount=1"),
            response(200, "text/plain", b"ok"),
        )
    })
    .collect();
    let refs: Vec<(&[u8], &[u8])> = exchanges
        .iter()
        .map(|(a, b)| (a.as_slice(), b.as_slice()))
        .collect();
    let mut c = Conversation::v4();
    keep_alive(&mut c, &refs);
    let (_, txs) = transactions_of(&c);
    let keys: Vec<&Value> = txs
        .iter()
        .map(|t| &t["request"]["idempotency_key"])
        .collect();
    assert_eq!(
        keys,
        vec![
            &json!("k1"),
            &json!("k1"),
            &json!("k1"),
            &json!("k1"),
            &Value::Null
        ],
        "bare, quoted, X- and padded forms are the same key; another header is no key"
    );
    for t in &txs {
        assert_eq!(
            t["idempotency_key"], t["request"]["idempotency_key"],
            "top-level key in {t}"
        );
    }
}

#[test]
fn binary_garbage_on_an_http_port_gives_no_transaction() {
    let garbage: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(&garbage);
    c.server_send(&garbage[..1000]);
    c.close();
    let (run, txs) = transactions_of(&c);
    assert!(txs.is_empty(), "{txs:#?}");
    assert_eq!(run.stat("http_requests"), 0);
}

#[test]
fn bytes_after_a_protocol_upgrade_are_not_parsed_as_http() {
    let upgrade = b"GET /chat HTTP/1.1\r\nHost: api.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let switching =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    // Unmasked text frames whose payload looks like HTTP/1.1 messages.
    let frame = |text: &[u8]| {
        let mut f = vec![0x81, text.len() as u8];
        f.extend_from_slice(text);
        f
    };
    let mut c = Conversation::v4();
    c.handshake();
    c.client_send(upgrade);
    c.server_send(switching);
    c.client_send(&frame(
        b"POST /invented HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ));
    c.server_send(&frame(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    c.close();
    let (_, txs) = transactions_of(&c);
    assert!(
        !txs.iter().any(|t| t["request"]["path"] == "/invented"),
        "websocket payload parsed as a request: {txs:#?}"
    );
    assert_eq!(paths(&txs), vec![p("/chat")], "{txs:#?}");
    assert_eq!(txs[0]["response"]["status"], 101, "{}", txs[0]);
}

#[test]
fn each_request_object_carries_the_version_of_its_request_line() {
    // The same key on one connection, first in HTTP/1.0 (kept alive), then in HTTP/1.1 with
    // another body: a key_conflict whose `original` is the HTTP/1.0 request.
    let old = b"POST /v1/charges HTTP/1.0\r\nHost: api.example.com\r\nConnection: keep-alive\r\n\
Content-Type: application/json\r\nIdempotency-Key: v-1\r\nContent-Length: 12\r\n\r\n{\"amount\":1}";
    let new = post(
        "/v1/charges",
        &["Content-Type: application/json", "Idempotency-Key: v-1"],
        br#"{"amount":2}"#,
    );
    let mut c = Conversation::v4();
    keep_alive(
        &mut c,
        &[
            (&old[..], &json_ok("ch_1")),
            (&new, &response(400, "application/json", b"{}")),
        ],
    );
    let (run, txs) = transactions_of(&c);
    let protocols: Vec<&Value> = txs.iter().map(|t| &t["request"]["protocol"]).collect();
    assert_eq!(protocols, [&json!("HTTP/1.0"), &json!("HTTP/1.1")]);
    let alerts: Vec<&Value> = run
        .lines
        .iter()
        .filter(|l| l["event_type"] == "alert")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "key_conflict");
    assert_eq!(alerts[0]["request"]["protocol"], "HTTP/1.1");
    assert_eq!(alerts[0]["original"]["protocol"], "HTTP/1.0");
    // Written between `path` and the key, as a request line reads.
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains(r#""event_type":"alert""#))
        .unwrap_or_default();
    assert!(
        line.contains(r#""path":"/v1/charges","protocol":"HTTP/1.0","idempotency_key":"v-1""#),
        "{line}"
    );
}
