//! Tracker tests on hand-built transactions: each kind's firing case next to its near misses.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::*;
use crate::http::canon::canonical_sha256;
use crate::http::{Body, KeyHeader, target};
use crate::net::{Endpoint, Vlans};

const SEC: i64 = 1_000_000_000;

/// Drives a tracker with requests and their exchanges at chosen times.
struct Sim {
    t: Tracker,
    stats: Stats,
    alerts: Vec<Alert>,
    next: u64,
}

/// A request to build.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: &'static str,
    keys: Vec<String>,
    body: Vec<u8>,
    content_type: &'static str,
    auth: &'static str,
    complete: bool,
    gzip_like: bool,
}

fn post(path: &'static str, key: Option<&str>, body: &str) -> Req {
    Req {
        method: "POST",
        path,
        keys: key.map(|k| vec![k.to_string()]).unwrap_or_default(),
        body: body.as_bytes().to_vec(),
        content_type: "application/json",
        auth: "Bearer sk_test_a",
        complete: true,
        gzip_like: false,
    }
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn resp(status: u16, id: Option<&str>, body: &str) -> Response {
    Response {
        ts: Timestamp(0),
        ts_end: Timestamp(0),
        status,
        interim: vec![],
        body: Body {
            len: body.len() as u64,
            sha256: Some(sha(body.as_bytes())),
            decoded_sha256: Some(sha(body.as_bytes())),
            canon_sha256: None,
            complete: true,
            missing: 0,
        },
        resource_id: id.map(str::to_string),
        replayed: false,
    }
}

fn ok(id: &str) -> Option<Response> {
    Some(resp(200, Some(id), &format!("{{\"id\":\"{id}\"}}")))
}

impl Sim {
    fn new() -> Sim {
        Sim::with(TrackerConfig::default())
    }

    fn with(cfg: TrackerConfig) -> Sim {
        Sim {
            t: Tracker::new(cfg),
            stats: Stats::default(),
            alerts: Vec::new(),
            next: 0,
        }
    }

    fn conn(&self) -> Conn {
        let ep = |p| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: p,
        };
        Conn {
            client: ep(40000),
            server: ep(443),
            flow_id: 1,
            community_id: Arc::from("1:x"),
            file_index: 0,
            tls: None,
        }
    }

    fn build(r: &Req, at: i64) -> Request {
        let body = &r.body;
        let canon = canonical_sha256(Some(r.content_type), body, None);
        // "Other bytes, same decoded content" stands for a gzip re-encoding in these tests.
        let decoded = sha(body);
        let raw = if r.gzip_like {
            let mut x = body.clone();
            x.push(0);
            sha(&x)
        } else {
            sha(body)
        };
        Request {
            ts: Timestamp(at),
            ts_end: Timestamp(at),
            method: r.method.to_string(),
            path: r.path.to_string(),
            target_identity: target::identity(r.path.as_bytes()),
            host: Some("api.example.com".into()),
            keys: r
                .keys
                .iter()
                .map(|k| KeyHeader {
                    name: "idempotency-key".into(),
                    value: k.clone(),
                })
                .collect(),
            credential: Some(sha(r.auth.as_bytes())),
            stripe_account: None,
            stripe_context: None,
            content_type: Some(r.content_type.into()),
            content_encoding: None,
            body: Body {
                len: body.len() as u64,
                sha256: r.complete.then_some(raw),
                decoded_sha256: r.complete.then_some(decoded),
                canon_sha256: r.complete.then_some(canon),
                complete: r.complete,
                missing: u64::from(!r.complete),
            },
            vlans: Vlans::default(),
            stream_start: 0,
            peer_ack_at_start: None,
            answered_at_start: 0,
            lost_before: false,
            protocol: Default::default(),
        }
    }

    /// The request arrives at `at` seconds.
    fn request(&mut self, r: &Req, at: f64) -> (TxId, Request) {
        let id = TxId {
            flow_id: 1,
            flow_serial: 0,
            n: self.next,
        };
        self.next += 1;
        let at = (at * SEC as f64) as i64;
        let req = Sim::build(r, at);
        let ev = HttpEvent::Request {
            id,
            conn: Arc::new(self.conn()),
            request: Box::new(req.clone()),
        };
        self.t
            .on_event(&ev, Timestamp(at), &mut self.stats, &mut self.alerts);
        (id, req)
    }

    /// Its exchange ends at `at` seconds with `response` (None: no answer; `server_seen` says
    /// whether the server's side was observed at all).
    fn done(
        &mut self,
        tx: &(TxId, Request),
        response: Option<Response>,
        at: f64,
        server_seen: bool,
    ) {
        self.end(tx, response, at, server_seen, false);
    }

    /// Its exchange ends at `at` seconds without being processed: an HTTP/2 stream refused
    /// (`REFUSED_STREAM`) or above a GOAWAY's last stream id.
    fn refused(&mut self, tx: &(TxId, Request), at: f64) {
        self.end(tx, None, at, true, true);
    }

    fn end(
        &mut self,
        tx: &(TxId, Request),
        response: Option<Response>,
        at: f64,
        server_seen: bool,
        not_processed: bool,
    ) {
        let at = Timestamp((at * SEC as f64) as i64);
        // The response arrives as its exchange ends, unless the test says otherwise.
        let response = response.map(|mut r| {
            if r.ts == Timestamp(0) {
                r.ts = at;
                r.ts_end = at;
            }
            r
        });
        let ev = HttpEvent::Transaction(Box::new(Transaction {
            id: tx.0,
            conn: Arc::new(self.conn()),
            request: Some(tx.1.clone()),
            response,
            ts_done: at,
            server_seen,
            response_lost: false,
            not_processed,
        }));
        self.t.on_event(&ev, at, &mut self.stats, &mut self.alerts);
    }

    /// Request and answer in one go.
    fn exchange(&mut self, r: &Req, response: Option<Response>, at: f64) {
        let tx = self.request(r, at);
        self.done(&tx, response, at + 0.1, true);
    }

    fn kinds(&self) -> Vec<AlertKind> {
        self.alerts.iter().map(|a| a.kind).collect()
    }
}

use AlertKind::*;

#[test]
fn plain_retry_is_no_alert_but_is_counted() {
    let mut s = Sim::new();
    let r = post("/v1/charges", Some("k1"), r#"{"amount":100}"#);
    s.exchange(&r, ok("ch_1"), 0.0);
    s.exchange(&r, ok("ch_1"), 5.0);
    assert_eq!(s.kinds(), vec![]);
    assert_eq!(s.stats.tracker_retries, 1);
}

#[test]
fn key_conflict_on_another_body_and_not_on_reordered_json() {
    let mut s = Sim::new();
    s.exchange(
        &post(
            "/v1/charges",
            Some("k1"),
            r#"{"amount":100,"currency":"usd"}"#,
        ),
        ok("ch_1"),
        0.0,
    );
    // The same members in another order: the same canonical request, other bytes.
    s.exchange(
        &post(
            "/v1/charges",
            Some("k1"),
            r#"{"currency":"usd","amount":100}"#,
        ),
        ok("ch_1"),
        1.0,
    );
    assert_eq!(s.kinds(), vec![KeyReencoded]);
    s.exchange(
        &post(
            "/v1/charges",
            Some("k1"),
            r#"{"amount":999,"currency":"usd"}"#,
        ),
        Some(resp(400, None, "{}")),
        2.0,
    );
    assert_eq!(s.kinds(), vec![KeyReencoded, KeyConflict]);
    let a = s.alerts.last().unwrap();
    assert_eq!(a.key.as_deref(), Some("k1"));
    assert!(a.original.is_some() && a.response.is_some() && a.original_response.is_some());
}

#[test]
fn same_key_on_another_path_or_scope() {
    let mut s = Sim::new();
    s.exchange(&post("/v1/charges", Some("k1"), "{}"), ok("ch_1"), 0.0);
    s.exchange(
        &post("/v1/refunds", Some("k1"), "{}"),
        Some(resp(400, None, "{}")),
        1.0,
    );
    assert_eq!(s.kinds(), vec![KeyConflict]);
    // Another credential is another scope: no conflict.
    let mut other = post("/v1/charges", Some("k1"), r#"{"amount":5}"#);
    other.auth = "Bearer sk_test_b";
    s.exchange(&other, ok("ch_2"), 2.0);
    assert_eq!(s.kinds(), vec![KeyConflict]);
}

#[test]
fn gzip_reencoding_with_the_same_decoded_bytes_is_a_plain_retry() {
    let mut s = Sim::new();
    let r = post("/v1/charges", Some("k1"), r#"{"a":1}"#);
    s.exchange(&r, ok("ch_1"), 0.0);
    let mut gz = r.clone();
    gz.gzip_like = true;
    s.exchange(&gz, ok("ch_1"), 1.0);
    assert_eq!(s.kinds(), vec![]);
}

#[test]
fn conflict_accepted_and_replayed_need_a_2xx() {
    let mut s = Sim::new();
    s.exchange(
        &post("/v1/charges", Some("k1"), r#"{"amount":1}"#),
        ok("ch_1"),
        0.0,
    );
    s.exchange(
        &post("/v1/charges", Some("k1"), r#"{"amount":2}"#),
        ok("ch_2"),
        1.0,
    );
    assert_eq!(s.kinds(), vec![KeyConflict, ConflictAccepted]);
    s.exchange(
        &post("/v1/charges", Some("k1"), r#"{"amount":3}"#),
        ok("ch_1"),
        2.0,
    );
    assert_eq!(s.kinds()[2..], [KeyConflict, ConflictReplayed]);
    let mut marked = resp(200, Some("ch_9"), "{}");
    marked.replayed = true;
    s.exchange(
        &post("/v1/charges", Some("k1"), r#"{"amount":4}"#),
        Some(marked),
        3.0,
    );
    assert_eq!(s.kinds()[4..], [KeyConflict, ConflictReplayed]);
    // A rejected conflict is only the conflict.
    s.exchange(
        &post("/v1/charges", Some("k1"), r#"{"amount":5}"#),
        Some(resp(422, None, "{}")),
        4.0,
    );
    assert_eq!(s.kinds()[6..], [KeyConflict]);
}

#[test]
fn conflict_answered_before_the_original_is_judged_when_the_result_is_stored() {
    let mut s = Sim::new();
    let first = s.request(&post("/v1/charges", Some("k1"), r#"{"amount":1}"#), 0.0);
    s.exchange(
        &post("/v1/charges", Some("k1"), r#"{"amount":2}"#),
        ok("ch_2"),
        0.5,
    );
    assert_eq!(s.kinds(), vec![KeyConflict]);
    s.done(&first, ok("ch_1"), 3.0, true);
    // It also arrived while the first was in flight.
    assert_eq!(
        s.kinds(),
        vec![KeyConflict, ConflictAccepted, ConcurrentReuse]
    );
}

#[test]
fn replay_mismatch_and_drift_only_against_a_stored_result() {
    let mut s = Sim::new();
    let r = post("/v1/charges", Some("k1"), "{}");
    // 409 and 503 are never stored: retries before the stored result are not compared.
    s.exchange(&r, Some(resp(503, None, "busy")), 0.0);
    s.exchange(&r, Some(resp(409, None, "in progress")), 1.0);
    s.exchange(&r, ok("ch_1"), 2.0);
    assert_eq!(s.kinds(), vec![]);
    // A transient answer on a later retry is not a mismatch either.
    s.exchange(&r, Some(resp(503, None, "busy")), 3.0);
    assert_eq!(s.kinds(), vec![]);
    s.exchange(&r, ok("ch_2"), 4.0);
    assert_eq!(s.kinds(), vec![ReplayMismatch]);
    s.exchange(
        &r,
        Some(resp(200, Some("ch_1"), "{\"id\":\"ch_1\",\"x\":2}")),
        5.0,
    );
    assert_eq!(s.kinds(), vec![ReplayMismatch, ReplayDrift]);
    s.exchange(&r, Some(resp(400, None, "{}")), 6.0);
    assert_eq!(s.kinds()[2..], [ReplayMismatch]);
}

#[test]
fn rejected_reencoding_belongs_to_key_reencoded_not_replay_mismatch() {
    let mut s = Sim::new();
    s.exchange(
        &post("/v1/charges", Some("k1"), r#"{"a":1,"b":2}"#),
        ok("ch_1"),
        0.0,
    );
    s.exchange(
        &post("/v1/charges", Some("k1"), r#"{"b":2,"a":1}"#),
        Some(resp(400, None, "{}")),
        1.0,
    );
    assert_eq!(s.kinds(), vec![KeyReencoded]);
    assert_eq!(s.alerts[0].response.as_ref().unwrap().status, 400);
}

#[test]
fn a_request_after_the_first_response_began_is_not_concurrent() {
    let mut s = Sim::new();
    let r = post("/v1/charges", Some("k1"), "{}");
    let a = s.request(&r, 0.0);
    let b = s.request(&r, 0.5);
    // The first's response began at 0.4 s, before the second; its end (a long body, or one
    // whose last segment the capture lost) is seen only at 2 s.
    let mut first = resp(200, Some("ch_1"), "{}");
    first.ts = Timestamp((0.4 * SEC as f64) as i64);
    s.done(&a, Some(first), 2.0, true);
    s.done(&b, Some(resp(200, Some("ch_1"), "{}")), 2.1, true);
    assert_eq!(s.kinds(), vec![]);
}

#[test]
fn concurrent_reuse_needs_an_observable_earlier_request() {
    let mut s = Sim::new();
    let r = post("/v1/charges", Some("k1"), "{}");
    let a = s.request(&r, 0.0);
    let b = s.request(&r, 0.2);
    s.done(&b, Some(resp(409, None, "{}")), 0.3, true);
    assert_eq!(s.kinds(), vec![], "decided when the first ends");
    s.done(&a, ok("ch_1"), 1.0, true);
    assert_eq!(s.kinds(), vec![ConcurrentReuse]);
    assert_eq!(s.alerts[0].response.as_ref().unwrap().status, 409);

    // The first ended before the second: no alert.
    let mut s = Sim::new();
    s.exchange(&r, ok("ch_1"), 0.0);
    s.exchange(&r, ok("ch_1"), 1.0);
    assert_eq!(s.kinds(), vec![]);

    // A capture of one direction only: whether the first still ran is unknowable.
    let mut s = Sim::new();
    let a = s.request(&r, 0.0);
    let b = s.request(&r, 0.2);
    s.done(&b, None, 5.0, false);
    s.done(&a, None, 5.0, false);
    assert_eq!(s.kinds(), vec![]);
    assert_eq!(s.stats.tracker_unobservable_skipped, 1);
}

#[test]
fn key_churn_while_in_flight_or_soon_after_a_bad_end() {
    let body = r#"{"amount":7}"#;
    // In flight: the app gave up and retried with a fresh key.
    let mut s = Sim::new();
    let a = s.request(&post("/v1/charges", Some("k1"), body), 0.0);
    s.exchange(&post("/v1/charges", Some("k2"), body), ok("ch_2"), 30.0);
    s.done(&a, ok("ch_1"), 31.0, true);
    assert_eq!(s.kinds(), vec![KeyChurn]);
    assert_eq!(s.alerts[0].key.as_deref(), Some("k2"));
    assert_eq!(
        s.alerts[0].original.as_ref().unwrap().key.as_deref(),
        Some("k1")
    );

    // After a 503, within the churn window.
    let mut s = Sim::new();
    s.exchange(
        &post("/v1/charges", Some("k1"), body),
        Some(resp(503, None, "")),
        0.0,
    );
    s.exchange(&post("/v1/charges", Some("k2"), body), ok("ch_2"), 10.0);
    assert_eq!(s.kinds(), vec![KeyChurn]);

    // After a 503 but later than the window; after a 200; another body: all quiet.
    let mut s = Sim::new();
    s.exchange(
        &post("/v1/charges", Some("k1"), body),
        Some(resp(503, None, "")),
        0.0,
    );
    s.exchange(&post("/v1/charges", Some("k2"), body), ok("ch_2"), 70.0);
    s.exchange(&post("/v1/charges", Some("k3"), body), ok("ch_3"), 80.0);
    s.exchange(
        &post("/v1/charges", Some("k4"), r#"{"amount":8}"#),
        ok("ch_4"),
        81.0,
    );
    assert_eq!(s.kinds(), vec![]);
}

#[test]
fn missing_key_only_on_endpoints_that_take_keys() {
    let mut s = Sim::new();
    s.exchange(&post("/search", None, r#"{"q":"x"}"#), ok("s"), 0.0);
    s.exchange(&post("/search", None, r#"{"q":"x"}"#), ok("s"), 1.0);
    assert_eq!(s.kinds(), vec![], "a search endpoint that never saw a key");
    s.exchange(
        &post("/v1/customers/cus_NffrFeUfNV2Hib", Some("k1"), "{}"),
        ok("cus_1"),
        2.0,
    );
    s.exchange(
        &post("/v1/customers/cus_OgqsGfVgOW3Ijc", None, r#"{"n":1}"#),
        ok("cus_2"),
        3.0,
    );
    assert_eq!(s.kinds(), vec![MissingKey], "path templates fold ids");
    let mut get = post("/v1/customers/cus_NffrFeUfNV2Hib", None, "");
    get.method = "GET";
    s.exchange(&get, ok("cus_1"), 4.0);
    assert_eq!(s.kinds(), vec![MissingKey], "GET is not watched");

    let mut all = Sim::with(TrackerConfig {
        missing_key: MissingKeyMode::All,
        ..TrackerConfig::default()
    });
    all.exchange(&post("/search", None, "{}"), ok("s"), 0.0);
    assert_eq!(all.kinds(), vec![MissingKey]);

    let mut prefix = Sim::with(TrackerConfig {
        require_key: vec!["/v1/charges".into()],
        ..TrackerConfig::default()
    });
    prefix.exchange(&post("/v1/charges", None, "{}"), ok("c"), 0.0);
    assert_eq!(prefix.kinds(), vec![MissingKey]);

    let mut off = Sim::with(TrackerConfig {
        missing_key: MissingKeyMode::Off,
        ..TrackerConfig::default()
    });
    off.exchange(&post("/v1/charges", Some("k"), "{}"), ok("c"), 0.0);
    off.exchange(&post("/v1/charges", None, "{}"), ok("c"), 1.0);
    off.exchange(&post("/v1/charges", None, "{}"), ok("c"), 2.0);
    assert_eq!(off.kinds(), vec![KeylessDuplicate]);
}

#[test]
fn keyless_duplicate_within_its_window() {
    let mut s = Sim::new();
    s.exchange(&post("/v1/charges", Some("k"), r#"{"a":0}"#), ok("c0"), 0.0);
    let r = post("/v1/charges", None, r#"{"amount":1}"#);
    s.exchange(&r, ok("c1"), 1.0);
    s.exchange(&r, ok("c2"), 30.0);
    assert_eq!(s.kinds(), vec![MissingKey, MissingKey, KeylessDuplicate]);
    s.exchange(&r, ok("c3"), 200.0);
    assert_eq!(
        s.kinds()[3..],
        [MissingKey],
        "later than the duplicate window"
    );
}

#[test]
fn late_retry_after_the_window_and_forgotten_after_two() {
    let cfg = TrackerConfig {
        window: Duration::from_secs(10),
        ..TrackerConfig::default()
    };
    let mut s = Sim::with(cfg.clone());
    let r = post("/v1/charges", Some("k1"), "{}");
    s.exchange(&r, ok("ch_1"), 0.0);
    s.exchange(&r, ok("ch_1"), 15.0);
    assert_eq!(s.kinds(), vec![LateRetry]);

    let mut s = Sim::with(cfg);
    s.exchange(&r, ok("ch_1"), 0.0);
    s.exchange(&r, ok("ch_2"), 25.0);
    assert_eq!(s.kinds(), vec![], "forgotten after twice the window");
    assert_eq!(s.stats.tracker_keys_expired, 1);
}

#[test]
fn invalid_keys() {
    let mut s = Sim::new();
    let mut r = post("/v1/charges", Some(""), "{}");
    s.exchange(&r, Some(resp(400, None, "{}")), 0.0);
    assert_eq!(s.kinds(), vec![InvalidKey]);
    assert_eq!(s.alerts[0].key.as_deref(), Some(""));
    r.keys = vec!["x".repeat(256)];
    s.exchange(&r, Some(resp(400, None, "{}")), 1.0);
    r.keys = vec!["x".repeat(255)];
    s.exchange(&r, ok("c"), 2.0);
    assert_eq!(s.kinds(), vec![InvalidKey, InvalidKey], "255 bytes is fine");
    r.keys = vec!["a b".into()];
    s.exchange(&r, ok("c"), 3.0);
    r.keys = vec!["\"a b\"".into()];
    s.exchange(&r, ok("c"), 4.0);
    assert_eq!(
        s.kinds().len(),
        3,
        "a space is fine inside a quoted key only"
    );
    r.keys = vec!["k1".into(), "k2".into()];
    s.exchange(&r, Some(resp(400, None, "{}")), 5.0);
    let a = s.alerts.last().unwrap();
    assert_eq!(a.kind, InvalidKey);
    assert_eq!(a.key.as_deref(), Some("k1"));
    assert_eq!(
        a.all_keys.as_deref(),
        Some(&["k1".to_string(), "k2".to_string()][..])
    );
}

#[test]
fn incomplete_bodies_are_never_compared() {
    let mut s = Sim::new();
    s.exchange(
        &post("/v1/charges", Some("k1"), r#"{"amount":1}"#),
        ok("ch_1"),
        0.0,
    );
    let mut cut = post("/v1/charges", Some("k1"), r#"{"amount":2}"#);
    cut.complete = false;
    s.exchange(&cut, ok("ch_1"), 1.0);
    assert_eq!(s.kinds(), vec![]);
    assert!(s.stats.tracker_incomplete_skipped >= 1);
}

#[test]
fn quoted_and_bare_forms_are_the_same_key() {
    let mut s = Sim::new();
    s.exchange(
        &post("/v1/charges", Some("k1"), r#"{"a":1}"#),
        ok("ch_1"),
        0.0,
    );
    s.exchange(
        &post("/v1/charges", Some("\"k1\""), r#"{"a":2}"#),
        Some(resp(400, None, "")),
        1.0,
    );
    assert_eq!(s.kinds(), vec![KeyConflict]);
}

#[test]
fn the_oldest_keys_are_evicted_past_the_limit() {
    let mut s = Sim::with(TrackerConfig {
        max_keys: 10,
        ..TrackerConfig::default()
    });
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        s.exchange(&post("/v1/charges", Some(k), "{}"), ok("c"), i as f64);
    }
    assert_eq!(s.t.tracked_keys(), 10);
    assert!(s.stats.tracker_keys_evicted >= 40);
}

#[test]
fn requests_waiting_on_an_in_flight_one_are_decided_when_it_ends() {
    let mut s = Sim::new();
    // Unrelated requests in flight (other keys, other bodies): they hold no waiters.
    let others: Vec<_> = (0..1000)
        .map(|i| {
            let (key, body) = (format!("other-{i}"), format!("{{\"n\":{i}}}"));
            s.request(&post("/v1/charges", Some(key.as_str()), &body), 0.0)
        })
        .collect();
    let r = post("/v1/charges", Some("k1"), "{}");
    let a = s.request(&r, 0.1);
    let b = s.request(&r, 0.2);
    let c = s.request(&r, 0.3);
    assert_eq!(s.t.waiting_count(b.0), 1, "b waits on a");
    assert_eq!(s.t.waiting_count(c.0), 1, "c waits on a");
    assert_eq!(s.t.waiting_count(a.0), 0);
    s.done(&c, Some(resp(409, None, "{}")), 0.4, true);
    s.done(&b, Some(resp(409, None, "{}")), 0.5, true);
    assert_eq!(s.kinds(), vec![], "decided when the first ends");
    assert_eq!(s.t.waiting_count(c.0), 1, "still waiting once ended itself");
    s.done(&a, ok("ch_1"), 1.0, true);
    assert_eq!(s.t.waiting_count(c.0), 0);
    assert_eq!(s.kinds(), vec![ConcurrentReuse, ConcurrentReuse]);
    for o in &others {
        s.done(o, None, 2.0, true);
    }
    assert!(s.t.in_flight.is_empty() && s.t.finished.is_empty());
    assert!(s.t.waited_on.is_empty(), "no count outlives its waiters");
}

/// A request as another instance filed it (fleet mode), seen at `at` seconds.
fn seen_elsewhere(s: &Sim, r: &Req, at: f64, instance: &str) -> ReqRec {
    let req = Sim::build(r, (at * SEC as f64) as i64);
    let id = TxId {
        flow_id: 9,
        flow_serial: 0,
        n: 0,
    };
    let mut rec = ReqRec::new(id, &Arc::new(s.conn()), &req);
    rec.origin = Origin::Remote(Arc::new(Observer {
        instance: instance.into(),
        file: None,
    }));
    rec
}

#[test]
fn a_keyless_request_filed_elsewhere_makes_the_same_one_here_a_duplicate() {
    let mut s = Sim::new();
    let r = post("/v1/charges", None, r#"{"amount":1}"#);
    let here = Sim::build(&r, 2 * SEC);
    let probe =
        s.t.keyless_probe(&here)
            .expect("a keyless POST is asked about");
    assert_eq!(
        probe.endpoint.as_deref(),
        Some(scope::endpoint(&here).as_str()),
        "an endpoint this instance never saw keyed is asked about"
    );
    let ident = probe.identity.expect("a complete body has an identity");
    // The store's answers: the endpoint took a key elsewhere; the same request came at 1 s.
    let deadline = Timestamp(100 * SEC);
    s.t.import_endpoints(
        &[(probe.endpoint.clone().unwrap_or_default(), deadline)],
        Timestamp(SEC),
    );
    let other = seen_elsewhere(&s, &r, 1.0, "gw1");
    assert!(s.t.import_keyless(probe.scope, ident, other.clone(), Timestamp(SEC)));
    s.exchange(&r, ok("c2"), 2.0);
    assert_eq!(s.kinds(), vec![MissingKey, KeylessDuplicate]);
    let dup = &s.alerts[1];
    let original = dup.original.as_ref().expect("the other gateway's request");
    assert_eq!(
        original.origin.observer().map(|o| &*o.instance),
        Some("gw1")
    );

    // Near misses: what is not asked about, and a remote use older than this instance's own.
    let now_watched = s.t.keyless_probe(&here).expect("still asked about");
    assert_eq!(
        now_watched.endpoint, None,
        "a watched endpoint is not asked again"
    );
    let mut keyed = r.clone();
    keyed.keys = vec!["k".into()];
    assert_eq!(s.t.keyless_probe(&Sim::build(&keyed, 3 * SEC)), None);
    let mut get = r.clone();
    get.method = "GET";
    assert_eq!(s.t.keyless_probe(&Sim::build(&get, 3 * SEC)), None);
    assert!(
        !s.t.import_keyless(probe.scope, ident, other, Timestamp(SEC)),
        "this instance's own later use stays the one compared with"
    );
}

#[test]
fn a_keyless_request_elsewhere_on_an_unwatched_endpoint_is_no_alert() {
    let mut s = Sim::new();
    let r = post("/search", None, r#"{"q":"x"}"#);
    let probe =
        s.t.keyless_probe(&Sim::build(&r, 2 * SEC))
            .expect("asked about");
    let other = seen_elsewhere(&s, &r, 1.0, "gw1");
    let ident = probe.identity.expect("identity");
    s.t.import_keyless(probe.scope, ident, other, Timestamp(SEC));
    s.exchange(&r, ok("s"), 2.0);
    assert_eq!(
        s.kinds(),
        vec![],
        "no endpoint learned anywhere: the search stays quiet"
    );
}

#[test]
fn later_uses_elsewhere_are_concurrent_when_they_began_before_an_observed_end() {
    let s = Sim::new();
    let r = post("/v1/charges", Some("k"), r#"{"amount":1}"#);
    let mut first = seen_elsewhere(&s, &r, 0.0, "gw1");
    first.origin = Origin::Local(TxId {
        flow_id: 1,
        flow_serial: 0,
        n: 0,
    });
    first.key = Some("k".into());
    let first = Arc::new(first);
    let uses = vec![
        seen_elsewhere(&s, &r, 1.0, "gw2"),
        // Began after the first's response began: not concurrent.
        seen_elsewhere(&s, &r, 4.0, "gw3"),
    ];
    let mut stats = Stats::default();
    let scope = Scope::of(&Sim::build(&r, 0), ScopeParts::default());
    let ended = |observed| shared::Ended {
        scope,
        first: first.clone(),
        response: None,
        at: Timestamp(3 * SEC),
        observed,
        not_processed: false,
    };
    let found =
        s.t.concurrent_uses_elsewhere(ended(true), uses.clone(), &mut stats);
    assert_eq!(found.len(), 1);
    let a = &found[0];
    assert_eq!(a.kind, ConcurrentReuse);
    assert_eq!(a.key.as_deref(), Some("k"));
    assert_eq!(
        a.request.key.as_deref(),
        Some("k"),
        "the key the store does not keep"
    );
    assert_eq!(
        a.request.origin.observer().map(|o| &*o.instance),
        Some("gw2")
    );
    assert!(Arc::ptr_eq(a.original.as_ref().expect("the first"), &first));
    // An end that was not observed decides nothing.
    let none =
        s.t.concurrent_uses_elsewhere(ended(false), uses.clone(), &mut stats);
    assert!(none.is_empty());
    assert_eq!(stats.tracker_unobservable_skipped, 2);

    // key_churn: the same request under another key, registered while the first attempt was
    // in flight, fires once it ended observably, however it ended.
    let waiters: Vec<shared::SharedAttempt> = uses
        .into_iter()
        .map(|mut rec| {
            rec.key = Some("k2".into());
            shared::SharedAttempt {
                key: KeyId::of("k2"),
                rec,
                end: Timestamp(0),
                response: None,
                bad: false,
            }
        })
        .collect();
    let churn =
        s.t.churn_elsewhere(ended(true), waiters.clone(), &mut stats);
    assert_eq!(churn.len(), 1, "only the one that began before the end");
    assert_eq!(churn[0].kind, KeyChurn);
    assert_eq!(churn[0].key.as_deref(), Some("k2"));
    assert!(
        s.t.churn_elsewhere(ended(false), waiters, &mut stats)
            .is_empty()
    );
}

#[test]
fn a_use_marked_concurrent_with_a_first_use_elsewhere_alerts_and_only_it() {
    let mut s = Sim::new();
    let r = post("/v1/charges", Some("k"), r#"{"amount":1}"#);
    let probe = Sim::build(&r, 2 * SEC);
    let (scope, kid, ident) = s.t.tracked_key(&probe).expect("a tracked key");
    let first = seen_elsewhere(&s, &r, 1.0, "gw1");
    s.t.import_shared(
        scope,
        kid,
        Some("k"),
        shared::SharedFirst {
            rec: first,
            identity: ident.expect("identity"),
            decoded: Some(sha(br#"{"amount":1}"#)),
            first_ts: Timestamp(SEC),
            first_response: None,
            stored: None,
        },
    );
    // The next request the simulation files gets id n = 0.
    s.t.mark_concurrent_elsewhere(TxId {
        flow_id: 1,
        flow_serial: 0,
        n: 0,
    });
    s.exchange(&r, ok("c"), 2.0);
    assert_eq!(s.kinds(), vec![ConcurrentReuse]);
    // Near miss: the same retry, not marked, is a plain retry.
    s.exchange(&r, ok("c"), 2.5);
    assert_eq!(s.kinds(), vec![ConcurrentReuse]);
}

// HTTP/2 requests the server did not process (RFC 9113 section 8.7): each rule beside the
// same traffic with the request processed.

#[test]
fn a_fresh_key_after_a_refused_attempt_is_not_key_churn() {
    let body = r#"{"amount":7}"#;
    // Processed, unanswered although the server was seen: ended badly, so churn.
    let mut s = Sim::new();
    let a = s.request(&post("/v1/charges", Some("k1"), body), 0.0);
    s.done(&a, None, 0.5, true);
    s.exchange(&post("/v1/charges", Some("k2"), body), ok("ch_2"), 10.0);
    assert_eq!(s.kinds(), vec![KeyChurn]);

    // Refused: the retry under a new key is safe, now and later in the churn window.
    let mut s = Sim::new();
    let a = s.request(&post("/v1/charges", Some("k1"), body), 0.0);
    s.refused(&a, 0.5);
    s.exchange(&post("/v1/charges", Some("k2"), body), ok("ch_2"), 10.0);
    s.exchange(&post("/v1/charges", Some("k3"), body), ok("ch_3"), 20.0);
    assert_eq!(s.kinds(), vec![]);
}

#[test]
fn a_fresh_key_while_the_attempt_is_in_flight_is_not_churn_once_it_is_refused() {
    let body = r#"{"amount":7}"#;
    let mut s = Sim::new();
    let a = s.request(&post("/v1/charges", Some("k1"), body), 0.0);
    s.exchange(&post("/v1/charges", Some("k2"), body), ok("ch_2"), 1.0);
    s.done(&a, ok("ch_1"), 2.0, true);
    assert_eq!(s.kinds(), vec![KeyChurn], "both ran");

    let mut s = Sim::new();
    let a = s.request(&post("/v1/charges", Some("k1"), body), 0.0);
    let b = s.request(&post("/v1/charges", Some("k2"), body), 1.0);
    s.refused(&a, 1.5);
    s.done(&b, ok("ch_2"), 2.0, true);
    assert_eq!(s.kinds(), vec![], "only the second ran");
    assert_eq!(s.stats.tracker_unobservable_skipped, 0, "not a guess");
    assert!(s.t.in_flight.is_empty() && s.t.finished.is_empty());
    assert!(s.t.waited_on.is_empty());
}

#[test]
fn a_refused_first_use_is_not_what_the_key_is_compared_with() {
    let (a_body, b_body) = (r#"{"amount":1}"#, r#"{"amount":2}"#);
    // Processed first use: another body under its key is a conflict.
    let mut s = Sim::new();
    s.exchange(&post("/v1/charges", Some("k1"), a_body), ok("ch_1"), 0.0);
    s.exchange(&post("/v1/charges", Some("k1"), b_body), ok("ch_2"), 1.0);
    assert_eq!(s.kinds(), vec![KeyConflict, ConflictAccepted]);

    // Refused first use: the next use is the key's first, whatever its body.
    let mut s = Sim::new();
    let a = s.request(&post("/v1/charges", Some("k1"), a_body), 0.0);
    s.refused(&a, 0.1);
    s.exchange(&post("/v1/charges", Some("k1"), b_body), ok("ch_2"), 1.0);
    assert_eq!(s.kinds(), vec![]);
    // That one is what the key is compared with from now on.
    s.exchange(&post("/v1/charges", Some("k1"), b_body), ok("ch_2"), 2.0);
    assert_eq!(s.stats.tracker_retries, 1);
    s.exchange(
        &post("/v1/charges", Some("k1"), a_body),
        Some(resp(400, None, "{}")),
        3.0,
    );
    assert_eq!(s.kinds(), vec![KeyConflict]);
    let original = s.alerts[0].original.as_ref().expect("an original");
    assert_eq!(original.body_sha256, Some(sha(b_body.as_bytes())));
}

#[test]
fn a_refused_first_use_is_no_retry_target_and_never_the_stored_result() {
    let r = post("/v1/charges", Some("k1"), r#"{"amount":1}"#);
    // The same body after a refusal: the first real use, not a retry.
    let mut s = Sim::new();
    let a = s.request(&r, 0.0);
    s.refused(&a, 0.1);
    s.exchange(&r, ok("ch_1"), 1.0);
    assert_eq!(s.stats.tracker_retries, 0);
    // Its answer is the stored result: a retry answered otherwise is a mismatch against it.
    s.exchange(&r, ok("ch_1"), 2.0);
    assert_eq!(s.stats.tracker_retries, 1);
    s.exchange(&r, ok("ch_2"), 3.0);
    assert_eq!(s.kinds(), vec![ReplayMismatch]);
    let a = &s.alerts[0];
    assert_eq!(
        a.original_response
            .as_ref()
            .and_then(|o| o.resource_id.as_deref()),
        Some("ch_1")
    );
    assert_eq!(
        a.original.as_ref().map(|o| o.ts),
        Some(Timestamp(SEC)),
        "the original is the request that stored the result, not the refused one"
    );

    // A refused retry of a stored result changes nothing: the next retry is compared with
    // the stored result as before.
    let mut s = Sim::new();
    s.exchange(&r, ok("ch_1"), 0.0);
    let b = s.request(&r, 1.0);
    s.refused(&b, 1.1);
    s.exchange(&r, ok("ch_1"), 2.0);
    assert_eq!(s.kinds(), vec![]);
    s.exchange(&r, ok("ch_2"), 3.0);
    assert_eq!(s.kinds(), vec![ReplayMismatch]);
}

#[test]
fn uses_in_flight_with_a_refused_first_are_not_judged_against_it() {
    let r = post("/v1/charges", Some("k1"), "{}");
    let other = post("/v1/charges", Some("k1"), r#"{"amount":2}"#);
    // Processed first: the same request is concurrent, another one a conflict as well.
    let mut s = Sim::new();
    let a = s.request(&r, 0.0);
    let b = s.request(&r, 0.2);
    let c = s.request(&other, 0.3);
    s.done(&a, ok("ch_1"), 1.0, true);
    s.done(&b, Some(resp(409, None, "{}")), 1.1, true);
    s.done(&c, Some(resp(400, None, "{}")), 1.2, true);
    assert_eq!(
        s.kinds(),
        vec![ConcurrentReuse, KeyConflict, ConcurrentReuse]
    );

    // Refused first: nothing ran alongside them, and nothing to conflict with.
    let mut s = Sim::new();
    let a = s.request(&r, 0.0);
    let b = s.request(&r, 0.2);
    let c = s.request(&other, 0.3);
    s.refused(&a, 0.4);
    s.done(&b, ok("ch_1"), 1.1, true);
    s.done(&c, ok("ch_2"), 1.2, true);
    assert_eq!(s.kinds(), vec![]);
    assert!(s.t.in_flight.is_empty() && s.t.finished.is_empty());

    // A use that ended first waits, then is released without an alert.
    let mut s = Sim::new();
    let a = s.request(&r, 0.0);
    let b = s.request(&r, 0.2);
    s.done(&b, Some(resp(409, None, "{}")), 0.3, true);
    s.refused(&a, 0.4);
    assert_eq!(s.kinds(), vec![]);
    assert!(s.t.finished.is_empty() && s.t.waited_on.is_empty());
}

#[test]
fn a_refused_request_keeps_the_alerts_about_what_the_client_sent() {
    // Its own alerts stand: missing_key, invalid_key, and a conflict with a processed first.
    let cfg = TrackerConfig {
        missing_key: MissingKeyMode::All,
        ..TrackerConfig::default()
    };
    let mut s = Sim::with(cfg.clone());
    let keyless = post("/v1/charges", None, r#"{"amount":1}"#);
    let a = s.request(&keyless, 0.0);
    s.refused(&a, 0.1);
    assert_eq!(s.kinds(), vec![MissingKey]);
    // But the same keyless request again is no duplicate of one that never ran.
    s.exchange(&keyless, ok("ch_1"), 1.0);
    assert_eq!(s.kinds(), vec![MissingKey, MissingKey]);
    // Processed, it would be.
    s.exchange(&keyless, ok("ch_2"), 2.0);
    assert_eq!(s.kinds()[2..], [MissingKey, KeylessDuplicate]);

    let mut s = Sim::with(cfg);
    // Keys on two header lines.
    let mut bad = post("/v1/charges", Some("k1"), "{}");
    bad.keys.push("k2".into());
    let b = s.request(&bad, 0.0);
    s.refused(&b, 0.1);
    assert_eq!(s.kinds(), vec![InvalidKey]);

    let mut s = Sim::new();
    s.exchange(&post("/v1/charges", Some("k1"), "{}"), ok("ch_1"), 0.0);
    let c = s.request(&post("/v1/charges", Some("k1"), r#"{"a":2}"#), 1.0);
    s.refused(&c, 1.1);
    assert_eq!(s.kinds(), vec![KeyConflict]);
    assert!(s.alerts[0].response.is_none());
}

#[test]
fn other_instances_learn_that_a_refused_attempt_ended_well_and_judge_nothing_against_it() {
    let body = r#"{"amount":7}"#;
    let mut s = Sim::new();
    s.t.enable_publishing();
    let a = s.request(&post("/v1/charges", Some("k1"), body), 0.0);
    s.refused(&a, 0.5);
    let published = s.t.take_published();
    let ended: Vec<_> = published
        .iter()
        .filter_map(|p| match p {
            shared::Publish::AttemptEnded {
                bad, not_processed, ..
            } => Some((*bad, *not_processed)),
            _ => None,
        })
        .collect();
    assert_eq!(ended, vec![(false, true)]);
    assert!(
        !published
            .iter()
            .any(|p| matches!(p, shared::Publish::Settle { .. })),
        "no first response nor stored result is filed for it"
    );
    assert!(
        published.iter().any(|p| matches!(
            p,
            shared::Publish::Release { first, .. } if *first == a.0
        )),
        "its key's claim is given up, so the next use anywhere is the first"
    );

    // The attempts and uses registered elsewhere while it was in flight: judged only when
    // it was processed.
    let r = post("/v1/charges", Some("k2"), body);
    let first = Arc::new(seen_elsewhere(&s, &r, 0.0, "gw0"));
    let scope = Scope::of(&Sim::build(&r, 0), ScopeParts::default());
    let ended = |not_processed| shared::Ended {
        scope,
        first: first.clone(),
        response: None,
        at: Timestamp(3 * SEC),
        observed: true,
        not_processed,
    };
    let waiter = shared::SharedAttempt {
        key: KeyId::of("k2"),
        rec: seen_elsewhere(&s, &r, 1.0, "gw1"),
        end: Timestamp(0),
        response: None,
        bad: false,
    };
    let mut stats = Stats::default();
    assert_eq!(
        s.t.churn_elsewhere(ended(false), vec![waiter.clone()], &mut stats)
            .len(),
        1
    );
    assert!(
        s.t.churn_elsewhere(ended(true), vec![waiter.clone()], &mut stats)
            .is_empty()
    );
    let use_elsewhere = seen_elsewhere(&s, &r, 1.0, "gw1");
    assert_eq!(
        s.t.concurrent_uses_elsewhere(ended(false), vec![use_elsewhere.clone()], &mut stats)
            .len(),
        1
    );
    assert!(
        s.t.concurrent_uses_elsewhere(ended(true), vec![use_elsewhere], &mut stats)
            .is_empty()
    );
    assert_eq!(stats.tracker_unobservable_skipped, 0);
}
