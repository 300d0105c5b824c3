//! `idemwatch live` on the loopback interface with real traffic: the fake API of
//! `captures/server.py`, Python's http.client as the client, libpcap capturing. Needs
//! CAP_NET_RAW (CI runs as root); without it the tests fail and say so.

use crate::daemon;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use daemon::{Proc, curl_on_one_connection, run_nginx, signal, start_api, wait_exit, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_idemwatch");

fn stderr_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("idemwatch.err")).unwrap_or_default()
}

/// Starts `idemwatch live` on lo for the API's port and waits until it captures.
fn start_live(dir: &Path, port: u16, extra: &[&str]) -> Proc {
    let err = std::fs::File::create(dir.join("idemwatch.err")).expect("stderr file");
    let child = Command::new(BIN)
        .args(["live", "-v", "-i", "lo", "--stats-interval", "1s", "-o"])
        .arg(dir.join("out.json"))
        .args(extra)
        .args(["--", "tcp", "port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("idemwatch starts");
    let mut p = Proc(child);
    let up = wait_for(Duration::from_secs(10), || {
        stderr_text(dir).contains("capturing") || matches!(p.0.try_wait(), Ok(Some(_)))
    });
    let text = stderr_text(dir);
    assert!(
        up && text.contains("capturing"),
        "idemwatch live did not start capturing on lo (it needs CAP_NET_RAW: run the tests as \
         root):\n{text}"
    );
    p
}

/// Runs a Python http.client script against the API; `{port}` is replaced. Returns stdout.
fn client(port: u16, script: &str) -> String {
    let script = format!(
        "import http.client, json, sys\nPORT = {port}\n\
         def post(c, path, body, key=None, auth='Bearer sk_test_live'):\n\
         \x20   h = {{'Content-Type': 'application/json', 'Authorization': auth}}\n\
         \x20   if key is not None: h['Idempotency-Key'] = key\n\
         \x20   c.request('POST', path, body=json.dumps(body), headers=h)\n\
         \x20   r = c.getresponse(); r.read(); return r.status\n\
         {script}"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .inspect(daemon::schema::check)
        .collect()
}

fn alerts_of(evs: &[Value], kind: &str) -> Vec<Value> {
    evs.iter()
        .filter(|e| e["event_type"] == "alert" && e["kind"] == kind)
        .cloned()
        .collect()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

#[test]
fn live_capture_raises_alerts_and_writes_stats() {
    let dir = tempdir();
    let api = start_api(dir.path());
    let mut live = start_live(dir.path(), api.port, &[]);
    client(
        api.port,
        "c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         print(post(c, '/v1/charges', {'amount': 100, 'currency': 'usd'}, key='live-k1'))\n\
         print(post(c, '/v1/charges', {'amount': 250, 'currency': 'usd'}, key='live-k1'))\n\
         print(post(c, '/v1/charges', {'amount': 7, 'currency': 'eur'}))\n\
         print(post(c, '/v1/charges', {'amount': 7, 'currency': 'eur'}))\n",
    );
    // An alert is written within a second or so of its exchange, also on a now quiet link.
    let seen = wait_for(Duration::from_secs(10), || {
        let evs = events(dir.path());
        alerts_of(&evs, "key_conflict").len() == 1
            && alerts_of(&evs, "keyless_duplicate").len() == 1
            && evs.iter().any(|e| e["event_type"] == "stats")
    });
    let evs = events(dir.path());
    assert!(
        seen,
        "alerts or stats missing: {evs:#?}\n{}",
        stderr_text(dir.path())
    );
    let conflict = &alerts_of(&evs, "key_conflict")[0];
    assert_eq!(conflict["key"], "live-k1");
    assert_eq!(conflict["request"]["path"], "/v1/charges");
    assert_eq!(conflict["original"]["idempotency_key"], "live-k1");
    assert_ne!(
        conflict["request"]["body_canon_sha256"],
        conflict["original"]["body_canon_sha256"]
    );
    assert_eq!(alerts_of(&evs, "missing_key").len(), 2);
    let stats = evs
        .iter()
        .find(|e| e["event_type"] == "stats")
        .expect("a stats line");
    assert!(
        stats["stats"]["capture_kernel_packets"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert!(stats["stats"]["tcp_segments"].as_u64().unwrap_or(0) > 0);
    // No credential in the output.
    let text = std::fs::read_to_string(dir.path().join("out.json")).unwrap_or_default();
    assert!(!text.contains("sk_test_live"));
    signal(&live, "-TERM");
    assert_eq!(
        wait_exit(&mut live, Duration::from_secs(2)),
        Some(0),
        "SIGTERM must end live with status 0 within 2 s"
    );
}

/// curl with HTTP/2 prior knowledge, one connection per request (curl 7.88 cannot reuse
/// one): the status and HTTP version (`201 2`).
fn curl_h2(port: u16, key: Option<&str>, body: &str) -> String {
    let url = format!("http://127.0.0.1:{port}/v1/charges");
    curl_on_one_connection(&url, &["--http2-prior-knowledge"], &[(key, body)]).concat()
}

#[test]
fn live_reads_cleartext_http2_through_nginx() {
    let dir = tempdir();
    let api = start_api(dir.path());
    // nginx speaks HTTP/2 with prior knowledge to the clients, HTTP/1.1 to the API.
    let nginx = run_nginx(
        dir.path(),
        "http2",
        &format!(
            "    location / {{\n      proxy_pass http://127.0.0.1:{};\n    }}\n",
            api.port
        ),
    );
    let mut live = start_live(dir.path(), nginx.port, &[]);
    let answers = [
        curl_h2(nginx.port, Some("live-h2"), r#"{"amount":100}"#),
        curl_h2(nginx.port, Some("live-h2"), r#"{"amount":250}"#),
        curl_h2(nginx.port, None, r#"{"amount":7}"#),
        curl_h2(nginx.port, None, r#"{"amount":7}"#),
    ];
    assert!(answers.iter().all(|a| a.ends_with(" 2")), "{answers:?}");
    let seen = wait_for(Duration::from_secs(10), || {
        let evs = events(dir.path());
        alerts_of(&evs, "key_conflict").len() == 1
            && alerts_of(&evs, "keyless_duplicate").len() == 1
    });
    let evs = events(dir.path());
    assert!(
        seen,
        "alerts missing: {evs:#?}\n{}",
        stderr_text(dir.path())
    );
    let conflict = &alerts_of(&evs, "key_conflict")[0];
    assert_eq!(conflict["request"]["protocol"], "HTTP/2");
    assert_eq!(conflict["original"]["protocol"], "HTTP/2");
    assert_eq!(conflict["response"]["status"], 400, "{conflict}");
    assert_eq!(alerts_of(&evs, "missing_key").len(), 2);
    signal(&live, "-TERM");
    assert_eq!(wait_exit(&mut live, Duration::from_secs(2)), Some(0));
}

#[test]
fn sigterm_mid_traffic_loses_no_completed_exchange() {
    let dir = tempdir();
    let api = start_api(dir.path());
    let mut live = start_live(dir.path(), api.port, &[]);
    // Conflicting pairs, one connection each, until told to stop; each finished pair is printed.
    let script = format!(
        "import os, time\n\
         n = 0\n\
         while not os.path.exists({stop:?}) and n < 400:\n\
         \x20   c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         \x20   post(c, '/v1/charges', {{'amount': 1, 'n': n}}, key='mid-%d' % n)\n\
         \x20   post(c, '/v1/charges', {{'amount': 2, 'n': n}}, key='mid-%d' % n)\n\
         \x20   c.close()\n\
         \x20   with open({done:?}, 'a') as f: f.write('%d\\n' % n)\n\
         \x20   n += 1\n",
        stop = dir.path().join("stop").display().to_string(),
        done = dir.path().join("done").display().to_string(),
    );
    let port = api.port;
    let t = std::thread::spawn(move || client(port, &script));
    let done_file = dir.path().join("done");
    let count = |p: &PathBuf| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(20), || count(&done_file) >= 20),
        "the client made no progress"
    );
    // Pairs finished before the signal: every one must have its alert.
    let finished = count(&done_file);
    signal(&live, "-TERM");
    let code = wait_exit(&mut live, Duration::from_secs(2));
    std::fs::write(dir.path().join("stop"), b"").expect("stop file");
    let _ = t.join();
    assert_eq!(code, Some(0), "{}", stderr_text(dir.path()));
    let keys: std::collections::HashSet<String> = alerts_of(&events(dir.path()), "key_conflict")
        .iter()
        .filter_map(|a| a["key"].as_str().map(String::from))
        .collect();
    for n in 0..finished {
        assert!(
            keys.contains(&format!("mid-{n}")),
            "no key_conflict for pair {n} of {finished} finished before SIGTERM"
        );
    }
}

#[test]
fn keys_survive_a_restart_through_the_state_directory() {
    let dir = tempdir();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let api = start_api(dir.path());
    let state_arg = state.display().to_string();
    let mut live = start_live(dir.path(), api.port, &["--state-dir", &state_arg]);
    client(
        api.port,
        "c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         print(post(c, '/v1/payment_intents', {'amount': 500}, key='restart-k'))\n",
    );
    // Let the exchange be seen before stopping.
    std::thread::sleep(Duration::from_millis(500));
    signal(&live, "-TERM");
    assert_eq!(wait_exit(&mut live, Duration::from_secs(2)), Some(0));
    assert!(state.join("tracker.state").exists(), "no state saved");
    drop(live);

    let mut live = start_live(dir.path(), api.port, &["--state-dir", &state_arg]);
    client(
        api.port,
        "c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         print(post(c, '/v1/payment_intents', {'amount': 900}, key='restart-k'))\n",
    );
    let seen = wait_for(Duration::from_secs(10), || {
        !alerts_of(&events(dir.path()), "key_conflict").is_empty()
    });
    signal(&live, "-TERM");
    let code = wait_exit(&mut live, Duration::from_secs(2));
    assert!(
        seen,
        "no key_conflict across the restart:\n{}",
        stderr_text(dir.path())
    );
    let a = &alerts_of(&events(dir.path()), "key_conflict")[0];
    assert_eq!(a["key"], "restart-k");
    assert_eq!(a["original"]["path"], "/v1/payment_intents");
    assert_eq!(code, Some(0));
}

#[test]
fn a_corrupt_state_file_is_set_aside_and_capture_goes_on() {
    let dir = tempdir();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    std::fs::write(state.join("tracker.state"), b"this is not a state file\n").expect("write");
    let api = start_api(dir.path());
    let state_arg = state.display().to_string();
    let mut live = start_live(dir.path(), api.port, &["--state-dir", &state_arg]);
    let text = stderr_text(dir.path());
    assert!(
        text.contains("set aside"),
        "no warning about the state file:\n{text}"
    );
    let aside: Vec<_> = std::fs::read_dir(&state)
        .expect("read state dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tracker.state.bad"))
        .collect();
    assert_eq!(aside.len(), 1, "the bad file was not set aside");
    let mut kept = String::new();
    std::fs::File::open(state.join(&aside[0]))
        .and_then(|mut f| f.read_to_string(&mut kept))
        .expect("read the set-aside file");
    assert_eq!(kept, "this is not a state file\n");
    client(
        api.port,
        "c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         post(c, '/v1/charges', {'amount': 1}, key='after-bad')\n\
         post(c, '/v1/charges', {'amount': 2}, key='after-bad')\n",
    );
    assert!(wait_for(Duration::from_secs(10), || {
        !alerts_of(&events(dir.path()), "key_conflict").is_empty()
    }));
    signal(&live, "-TERM");
    assert_eq!(wait_exit(&mut live, Duration::from_secs(2)), Some(0));
}

#[test]
fn an_unknown_interface_says_what_to_do() {
    let out = Command::new(BIN)
        .args(["live", "-i", "nosuchif0"])
        .output()
        .expect("idemwatch runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nosuchif0"), "{err}");
    assert!(err.contains("--list-interfaces"), "{err}");
}

#[test]
fn sighup_reopens_the_output_file_after_rotation() {
    let dir = tempdir();
    let api = start_api(dir.path());
    let mut live = start_live(dir.path(), api.port, &[]);
    client(
        api.port,
        "c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         post(c, '/v1/charges', {'amount': 1}, key='before-rotate')\n\
         post(c, '/v1/charges', {'amount': 2}, key='before-rotate')\n",
    );
    assert!(wait_for(Duration::from_secs(10), || {
        !alerts_of(&events(dir.path()), "key_conflict").is_empty()
    }));
    // logrotate: move the file away, then SIGHUP.
    std::fs::rename(dir.path().join("out.json"), dir.path().join("out.json.1")).expect("rotate");
    signal(&live, "-HUP");
    assert!(
        wait_for(Duration::from_secs(5), || stderr_text(dir.path())
            .contains("output reopened")),
        "{}",
        stderr_text(dir.path())
    );
    client(
        api.port,
        "c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         post(c, '/v1/charges', {'amount': 1}, key='after-rotate')\n\
         post(c, '/v1/charges', {'amount': 2}, key='after-rotate')\n",
    );
    let seen = wait_for(Duration::from_secs(10), || {
        alerts_of(&events(dir.path()), "key_conflict")
            .iter()
            .any(|a| a["key"] == "after-rotate")
    });
    signal(&live, "-TERM");
    assert_eq!(wait_exit(&mut live, Duration::from_secs(2)), Some(0));
    assert!(seen, "no alert in the reopened file");
    let old = std::fs::read_to_string(dir.path().join("out.json.1")).unwrap_or_default();
    assert!(old.contains("before-rotate") && !old.contains("after-rotate"));
}

#[test]
fn live_and_mirror_in_one_daemon_share_the_tracker() {
    let dir = tempdir();
    let api = start_api(dir.path());
    let mirror_port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let listen = format!("127.0.0.1:{mirror_port}");
    let mut live = start_live(
        dir.path(),
        api.port,
        &["--mirror-listen", &listen, "--mirror-insecure-plaintext"],
    );
    // First use of the key: captured on the wire.
    // The same Host both ways, as a gateway passes the original one (keys are scoped by it).
    let send = |port: u16, amount: u32| {
        client(
            port,
            &format!(
                "c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
                 c.request('POST', '/v1/charges', body=json.dumps({{'amount': {amount}}}), \
                 headers={{'Host': 'api.example.com', 'Authorization': 'Bearer sk_test_live', \
                 'Idempotency-Key': 'both-k', 'Content-Type': 'application/json'}})\n\
                 print(c.getresponse().status)\n"
            ),
        )
    };
    send(api.port, 10);
    std::thread::sleep(Duration::from_millis(300));
    // Its reuse with another body: mirrored by a gateway.
    send(mirror_port, 99);
    let seen = wait_for(Duration::from_secs(10), || {
        !alerts_of(&events(dir.path()), "key_conflict").is_empty()
    });
    signal(&live, "-TERM");
    assert_eq!(wait_exit(&mut live, Duration::from_secs(3)), Some(0));
    assert!(
        seen,
        "no key_conflict across capture and mirror:\n{}",
        stderr_text(dir.path())
    );
    let a = &alerts_of(&events(dir.path()), "key_conflict")[0];
    assert_eq!(a["original"]["dest_port"], api.port);
    assert_eq!(a["request"]["dest_port"], mirror_port);
}

#[test]
fn sighup_reloads_the_policy_from_the_configuration_file() {
    let dir = tempdir();
    let api = start_api(dir.path());
    let conf = dir.path().join("idemwatch.toml");
    std::fs::write(&conf, "missing-key = \"off\"\n").expect("write config");
    let conf_arg = conf.display().to_string();
    let mut live = start_live(dir.path(), api.port, &["--config", &conf_arg]);
    let keyless = "c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
                   post(c, '/v1/charges', {'amount': 1}, key='reload-k')\n\
                   post(c, '/v1/charges', {'amount': %d})\n";
    client(api.port, &keyless.replace("%d", "2"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        alerts_of(&events(dir.path()), "missing_key").is_empty(),
        "off"
    );
    // Policy back on, and a change that needs a restart (named in a warning, not applied).
    std::fs::write(&conf, "missing-key = \"learned\"\nmax-keys = 10\n").expect("write config");
    signal(&live, "-HUP");
    assert!(
        wait_for(Duration::from_secs(5), || stderr_text(dir.path())
            .contains("policy options reloaded")),
        "{}",
        stderr_text(dir.path())
    );
    assert!(stderr_text(dir.path()).contains("max-keys"));
    client(api.port, &keyless.replace("%d", "3"));
    let seen = wait_for(Duration::from_secs(10), || {
        alerts_of(&events(dir.path()), "missing_key").len() == 1
    });
    signal(&live, "-TERM");
    assert_eq!(wait_exit(&mut live, Duration::from_secs(2)), Some(0));
    assert!(seen, "missing_key after the reload");
}

#[test]
fn live_judges_a_retry_against_the_first_use_another_gateway_filed() {
    let dir = tempdir();
    let redis = daemon::Redis::start();
    let url = redis.url();
    // Gateway 1's half of captures/fleet.pcap files its first uses in the store.
    let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/fleet.pcap");
    let gw1 = Command::new(BIN)
        .args(["-q", "read", "--store", &url, "--store-instance", "gw1"])
        .arg(&fleet)
        .args(["--", "tcp port 18081"])
        .output()
        .expect("idemwatch read runs");
    assert!(gw1.status.success());
    // Gateway 2 runs live; a client reuses a key of gateway 1 with another amount. This API
    // has its own store, so it runs the request: the conflict was accepted.
    let api = start_api(dir.path());
    let mut live = start_live(
        dir.path(),
        api.port,
        &["--store", &url, "--store-instance", "gw2"],
    );
    let status = client(
        api.port,
        "c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         c.request('POST', '/v1/charges', body=json.dumps({'amount': 2600, 'currency': 'usd'}), \
         headers={'Host': 'api.example.test', \
         'Authorization': 'Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc', \
         'Idempotency-Key': 'f1ee7000-0002-4000-8000-000000000002', \
         'Content-Type': 'application/json'})\n\
         print(c.getresponse().status)\n",
    );
    assert_eq!(status.trim(), "200");
    let seen = wait_for(Duration::from_secs(10), || {
        !alerts_of(&events(dir.path()), "conflict_accepted").is_empty()
    });
    signal(&live, "-TERM");
    assert_eq!(wait_exit(&mut live, Duration::from_secs(3)), Some(0));
    assert!(
        seen,
        "no conflict across gateways:\n{}",
        stderr_text(dir.path())
    );
    let evs = events(dir.path());
    let conflict = &alerts_of(&evs, "key_conflict")[0];
    assert_eq!(conflict["original"]["observer"], "gw1");
    assert_eq!(conflict["original"]["dest_port"], 18081);
    assert_eq!(conflict["request"]["dest_port"], api.port);
    let accepted = &alerts_of(&evs, "conflict_accepted")[0];
    assert_ne!(
        accepted["response"]["resource_id"],
        accepted["original_response"]["resource_id"]
    );
    // The stats lines carry the store's counters.
    let last = evs
        .iter()
        .rev()
        .find(|v| v["event_type"] == "stats")
        .expect("a stats line");
    assert_eq!(last["stats"]["store_shared_originals"], 1, "{last}");
    assert_eq!(last["stats"]["store_down"], 0);
    assert!(last["stats"]["store_round_trips"].as_u64().unwrap_or(0) >= 1);
}

/// `GET /metrics` from a daemon: the body, parsed as the Prometheus text format.
fn scrape(port: u16) -> prometheus_parse::Scrape {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics listens");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    assert!(
        text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200"),
        "{text}"
    );
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format")
}

fn metric(s: &prometheus_parse::Scrape, name: &str, kind: Option<&str>) -> f64 {
    s.samples
        .iter()
        .find(|x| x.metric == name && kind.is_none_or(|k| x.labels.get("kind") == Some(k)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or(f64::NAN)
}

#[test]
fn metrics_are_scraped_while_capturing_and_match_the_traffic() {
    let dir = tempdir();
    let api = start_api(dir.path());
    let mport = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let listen = format!("127.0.0.1:{mport}");
    let mut live = start_live(dir.path(), api.port, &["--metrics-listen", &listen]);
    // Five POSTs on one connection: a key, its retry, a conflicting reuse, two keyless.
    client(
        api.port,
        "c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         post(c, '/v1/charges', {'amount': 1}, key='m-1')\n\
         post(c, '/v1/charges', {'amount': 1}, key='m-1')\n\
         post(c, '/v1/charges', {'amount': 2}, key='m-1')\n\
         post(c, '/v1/charges', {'amount': 3})\n\
         post(c, '/v1/charges', {'amount': 4})\n",
    );
    let done = wait_for(Duration::from_secs(10), || {
        let s = scrape(mport);
        metric(&s, "idemwatch_http_transactions_total", None) >= 5.0
    });
    let s = scrape(mport);
    signal(&live, "-TERM");
    assert_eq!(wait_exit(&mut live, Duration::from_secs(3)), Some(0));
    assert!(
        done,
        "transactions never reached 5:\n{}",
        stderr_text(dir.path())
    );
    assert_eq!(metric(&s, "idemwatch_http_requests_total", None), 5.0);
    assert_eq!(metric(&s, "idemwatch_http_responses_total", None), 5.0);
    assert_eq!(metric(&s, "idemwatch_tracker_retries_total", None), 1.0);
    // The alerts the output file holds, kind by kind.
    let evs = events(dir.path());
    for kind in ["key_conflict", "missing_key"] {
        let n = alerts_of(&evs, kind).len() as f64;
        assert!(n > 0.0, "no {kind} in the output");
        assert_eq!(
            metric(&s, "idemwatch_alerts_by_kind_total", Some(kind)),
            n,
            "{kind}"
        );
    }
    assert!(metric(&s, "idemwatch_capture_kernel_packets_total", None) > 0.0);
    assert_eq!(metric(&s, "idemwatch_tracker_keys_tracked", None), 1.0);
}

#[test]
fn the_live_mirror_takes_its_bounds_from_the_configuration_file() {
    let dir = tempdir();
    let api = start_api(dir.path());
    let mirror_port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let conf = dir.path().join("idemwatch.toml");
    std::fs::write(
        &conf,
        format!(
            "mirror-listen = \"127.0.0.1:{mirror_port}\"\nmirror-insecure-plaintext = true\n\
             mirror-request-timeout = \"1s\"\n"
        ),
    )
    .expect("write config");
    let mut live = start_live(
        dir.path(),
        api.port,
        &["--config", &conf.display().to_string()],
    );
    // Half a head, then silence: closed after the file's 1 s, not the default 30 s.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", mirror_port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    std::io::Write::write_all(
        &mut s,
        b"POST /v1/charges HTTP/1.1\r\nHost: api.example.com\r\n",
    )
    .expect("write");
    let t = std::time::Instant::now();
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed");
    assert!(
        t.elapsed() < Duration::from_secs(9),
        "closed by the configured request timeout"
    );
    signal(&live, "-TERM");
    assert_eq!(wait_exit(&mut live, Duration::from_secs(3)), Some(0));
}

/// `live --tls-keylog`: a client over TLS writes its key log while idemwatch captures on lo;
/// the file does not exist when idemwatch starts, and the secrets of the conflicting request's
/// connection are written only after that connection is over. The key_conflict alert still
/// comes, decrypted, within 1.5 s of the last request; no secret reaches any output.
#[test]
fn live_decrypts_tls_with_a_key_log_written_after_the_records() {
    let dir = tempdir();
    daemon::make_certs(dir.path());
    let port = daemon::free_port();
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/server.py");
    let d = |f: &str| dir.path().join(f);
    let _api = daemon::spawn_listening(
        Command::new("python3")
            .arg(server)
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--log"])
            .arg(d("api.log"))
            .arg("--tls")
            .args([d("server.pem"), d("server.key")]),
        port,
        "python3 captures/server.py --tls",
    );
    let followed = d("follow.keys");
    let mut live = start_live(
        dir.path(),
        port,
        &["-v", "--tls-keylog", &followed.display().to_string()],
    );
    // The client logs its secrets to client.keys; what idemwatch follows gets them copied:
    // the first connection's at once, the second's 0.4 s after its response was read.
    let script = format!(
        "import http.client, json, os, ssl, time\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         ctx.keylog_filename = {client:?}\n\
         done = 0\n\
         def copy():\n\
         \x20   global done\n\
         \x20   data = open({client:?}, 'rb').read()\n\
         \x20   fd = os.open({followed:?}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)\n\
         \x20   os.write(fd, data[done:]); os.close(fd); done = len(data)\n\
         def post(key, amount):\n\
         \x20   c = http.client.HTTPSConnection('localhost', {port}, context=ctx)\n\
         \x20   h = {{'Content-Type': 'application/json', 'Authorization': 'Bearer sk_test_tls',\n\
         \x20        'Idempotency-Key': key}}\n\
         \x20   c.request('POST', '/v1/charges', body=json.dumps({{'amount': amount}}), headers=h)\n\
         \x20   r = c.getresponse(); r.read(); c.close(); return r.status\n\
         time.sleep(0.3)\n\
         s1 = post('k-tls-live', 100)\n\
         copy()\n\
         time.sleep(0.5)\n\
         s2 = post('k-tls-live', 999)\n\
         last = time.time()\n\
         time.sleep(0.4)\n\
         copy()\n\
         print(s1, s2, last, time.time())\n",
        ca = d("ca.pem").display().to_string(),
        client = d("client.keys").display().to_string(),
        followed = followed.display().to_string(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let f: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(f.get(..2), Some(&["200", "400"][..]), "{printed}");
    let last: f64 = f
        .get(2)
        .and_then(|s| s.parse().ok())
        .expect("time of the last request");
    let mut seen_at = None;
    daemon::wait_for(Duration::from_secs(10), || {
        let found = !alerts_of(&events(dir.path()), "key_conflict").is_empty();
        if found {
            seen_at = Some(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_secs_f64(),
            );
        }
        found
    });
    assert!(
        matches!(live.0.try_wait(), Ok(None)),
        "idemwatch exited: {}",
        stderr_text(dir.path())
    );
    std::thread::sleep(Duration::from_millis(1500));
    signal(&live, "-TERM");
    assert_eq!(wait_exit(&mut live, Duration::from_secs(10)), Some(0));
    let evs = events(dir.path());
    let err = stderr_text(dir.path());
    let conflicts = alerts_of(&evs, "key_conflict");
    assert_eq!(conflicts.len(), 1, "{evs:?}\n{err}");
    let req = &conflicts[0]["request"];
    assert_eq!(req["tls"]["version"], "TLS 1.3", "{req}");
    assert_eq!(req["tls"]["sni"], "localhost", "{req}");
    let latency = seen_at.expect("seen") - last;
    eprintln!("live late-key alert latency: {latency:.3} s after the last request");
    assert!(
        latency <= 1.5,
        "key_conflict came {latency:.3} s after the last request"
    );
    // The file was missing at start: said once, then followed.
    assert!(err.contains("cannot open the TLS key log"), "{err}");
    assert!(err.contains("following the TLS key log"), "{err}");
    // The second connection was over before its secrets came: its end waited for them.
    assert!(err.contains("ended before its secrets were read"), "{err}");
    let stats = evs
        .iter()
        .rev()
        .find(|e| e["event_type"] == "stats")
        .expect("a stats line");
    assert_eq!(stats["stats"]["tls_sessions_decrypted"], 2, "{stats}");
    assert_eq!(stats["stats"]["tls_sessions_undecrypted"], 0, "{stats}");
    // No secret of the key log in the alerts or the log.
    let keylog = std::fs::read_to_string(d("client.keys")).expect("key log");
    let all = format!(
        "{}\n{err}",
        std::fs::read_to_string(d("out.json")).unwrap_or_default()
    );
    let mut checked = 0;
    for line in keylog.lines().filter(|l| !l.starts_with('#')) {
        if let Some(secret) = line.split_whitespace().nth(2) {
            checked += 1;
            assert!(
                !all.to_ascii_lowercase()
                    .contains(&secret.to_ascii_lowercase()),
                "a secret reached the output"
            );
        }
    }
    assert_eq!(checked, 10, "five TLS 1.3 secrets per connection");
}

/// Alert lines of an output file, in order, without the one field that names the input
/// (`read` gives each request its capture file, `pcap_filename`; `live` has none), and with
/// their times taken out: each libpcap handle stamps its own copy of a packet, so two captures
/// of the same traffic (two `live`s, or `live` and tcpdump) differ by a few microseconds; and
/// `flow_id`, a hash of the connection's first time, with them.
fn alert_lines(text: &str) -> (Vec<Value>, Vec<f64>) {
    let mut times = Vec::new();
    let alerts = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event_type"] == "alert")
        .map(|mut e| {
            take_times(&mut e, &mut times);
            e
        })
        .collect();
    (alerts, times)
}

/// Removes `pcap_filename` and `flow_id`; replaces each `ts` and `timestamp` by null, its seconds into the
/// day onto `times`.
fn take_times(v: &mut Value, times: &mut Vec<f64>) {
    match v {
        Value::Object(m) => {
            m.remove("pcap_filename");
            m.remove("flow_id");
            for (k, x) in m.iter_mut() {
                if k == "ts" || k == "timestamp" {
                    let t = x.as_str().unwrap_or_default();
                    let secs = t
                        .split_once('T')
                        .map(|(_, hms)| hms.trim_end_matches('Z'))
                        .map(|hms| {
                            hms.split(':')
                                .filter_map(|p| p.parse::<f64>().ok())
                                .fold(0.0, |acc, p| acc * 60.0 + p)
                        });
                    times.push(secs.unwrap_or(f64::NAN));
                    *x = Value::Null;
                } else {
                    take_times(x, times);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| take_times(x, times)),
        _ => {}
    }
}

/// The same alerts, in the same order, at the same times give or take a millisecond.
fn assert_same_alerts(a: &(Vec<Value>, Vec<f64>), b: &(Vec<Value>, Vec<f64>), what: &str) {
    assert_eq!(a.0.len(), b.0.len(), "{what}: {:#?}\n{:#?}", a.0, b.0);
    for (n, (x, y)) in a.0.iter().zip(&b.0).enumerate() {
        assert_eq!(x.to_string(), y.to_string(), "{what}: alert {n}");
    }
    assert_eq!(a.1.len(), b.1.len(), "{what}");
    for (x, y) in a.1.iter().zip(&b.1) {
        assert!((x - y).abs() < 0.001, "{what}: times {x} and {y}");
    }
}

/// Several workers in `live` write the alerts one would, and the alerts `read` writes on the
/// same packets (saved by tcpdump alongside): flows from concurrent connections land on
/// different workers, and a key reused on another connection is judged across them.
#[test]
fn live_with_two_workers_writes_what_one_worker_and_read_write() {
    let dir = tempdir();
    let api = start_api(dir.path());
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    std::fs::create_dir(&one).expect("dir");
    std::fs::create_dir(&two).expect("dir");
    let pcap = dir.path().join("saved.pcap");
    let port = api.port.to_string();
    let tcpdump_err = dir.path().join("tcpdump.err");
    let mut tcpdump = Proc(
        Command::new("tcpdump")
            .args([
                "-i",
                "lo",
                "--immediate-mode",
                "-B",
                "65536",
                "-U",
                "-s",
                "0",
                "-w",
            ])
            .arg(&pcap)
            .args(["tcp", "port", &port])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&tcpdump_err).expect("stderr file"))
            .spawn()
            .expect("tcpdump starts (install tcpdump)"),
    );
    assert!(
        wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&tcpdump_err)
                .unwrap_or_default()
                .contains("listening on")
        }),
        "tcpdump did not start"
    );
    let mut live1 = start_live(&one, api.port, &["--threads", "1"]);
    let mut live2 = start_live(&two, api.port, &["--threads", "2"]);
    // Eight clients at once, each on its own connections: keyed POSTs with a plain retry and
    // keyless duplicates; then (all first uses done) each reuses another client's key with
    // another body on a new connection.
    client(
        api.port,
        "import threading\n\
         b = threading.Barrier(8)\n\
         def run(i):\n\
         \x20   c = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         \x20   post(c, '/v1/charges', {'amount': 100 + i}, key='par-%d' % i)\n\
         \x20   post(c, '/v1/charges', {'amount': 100 + i}, key='par-%d' % i)\n\
         \x20   post(c, '/v1/charges', {'amount': 7, 'ref': i})\n\
         \x20   post(c, '/v1/charges', {'amount': 7, 'ref': i})\n\
         \x20   c.close()\n\
         \x20   b.wait()\n\
         \x20   d = http.client.HTTPConnection('127.0.0.1', PORT)\n\
         \x20   post(d, '/v1/charges', {'amount': 900 + i}, key='par-%d' % ((i + 1) % 8))\n\
         \x20   d.close()\n\
         ts = [threading.Thread(target=run, args=(i,)) for i in range(8)]\n\
         [t.start() for t in ts]\n\
         [t.join() for t in ts]\n",
    );
    // Every alert comes out while the link is quiet, not only at shutdown.
    let conflicts = |d: &Path| alerts_of(&events(d), "key_conflict").len();
    let dupes = |d: &Path| alerts_of(&events(d), "keyless_duplicate").len();
    let seen = wait_for(Duration::from_secs(10), || {
        conflicts(&one) == 8 && conflicts(&two) == 8 && dupes(&one) == 8 && dupes(&two) == 8
    });
    assert!(
        seen,
        "alerts missing: one worker {:#?}\ntwo workers {:#?}\n{}",
        events(&one),
        events(&two),
        stderr_text(&two)
    );
    signal(&live1, "-TERM");
    signal(&live2, "-TERM");
    assert_eq!(wait_exit(&mut live1, Duration::from_secs(2)), Some(0));
    assert_eq!(wait_exit(&mut live2, Duration::from_secs(2)), Some(0));
    signal(&tcpdump, "-INT");
    assert!(
        wait_exit(&mut tcpdump, Duration::from_secs(5)).is_some(),
        "tcpdump did not stop"
    );

    let text = |d: &Path| std::fs::read_to_string(d.join("out.json")).unwrap_or_default();
    let (live_one, live_two) = (alert_lines(&text(&one)), alert_lines(&text(&two)));
    let read = Command::new(BIN)
        .args(["read", "--threads", "1"])
        .arg(&pcap)
        .output()
        .expect("idemwatch read runs");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let read_alerts = alert_lines(&String::from_utf8_lossy(&read.stdout));
    let why = || {
        format!(
            "read: {}\ntcpdump: {}",
            String::from_utf8_lossy(&read.stderr),
            std::fs::read_to_string(&tcpdump_err).unwrap_or_default()
        )
    };
    // A packet tcpdump missed would make the comparison say nothing about idemwatch.
    assert!(
        std::fs::read_to_string(&tcpdump_err)
            .unwrap_or_default()
            .contains("\n0 packets dropped by kernel"),
        "{}",
        why()
    );
    assert_eq!(
        alerts_of(&read_alerts.0, "key_conflict").len(),
        8,
        "{}",
        why()
    );
    assert_eq!(
        alerts_of(&read_alerts.0, "keyless_duplicate").len(),
        8,
        "{}",
        why()
    );
    assert_same_alerts(&live_two, &read_alerts, "live --threads 2 and read differ");
    assert_same_alerts(&live_one, &read_alerts, "live --threads 1 and read differ");
    assert_same_alerts(
        &live_two,
        &live_one,
        "live --threads 2 and --threads 1 differ",
    );
    // Both counted the same traffic, summed over the workers.
    let last_stats = |d: &Path| {
        events(d)
            .into_iter()
            .rfind(|e| e["event_type"] == "stats")
            .map(|e| e["stats"].clone())
            .unwrap_or_default()
    };
    let (s1, s2) = (last_stats(&one), last_stats(&two));
    assert_eq!(s1["capture_kernel_drops"], 0, "{s1}");
    assert_eq!(s2["capture_kernel_drops"], 0, "{s2}");
    for counter in [
        "tcp_segments",
        "flows_created",
        "http_transactions",
        "alerts",
    ] {
        assert!(s1[counter].as_u64().unwrap_or(0) > 0, "{counter}: {s1}");
        assert_eq!(s1[counter], s2[counter], "{counter}");
    }
}
