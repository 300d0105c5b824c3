//! `idemwatch mirror` with real clients: curl over TLS (certificates made here with rcgen),
//! HTTP/2 (by ALPN, and by its preface in cleartext), mutual TLS, and hostile peers (garbage, a sender that never finishes its head); its
//! configuration file, SIGHUP, and what it tells systemd.

use crate::daemon;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use daemon::{
    alert_kinds, curl, curl_on_one_connection, make_certs, start_api, start_mirror as start,
    start_nginx, stop_mirror as stop, via_nginx,
};

#[test]
fn mirrored_requests_over_tls_raise_request_side_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let d = |f: &str| dir.path().join(f).display().to_string();
    let (p, port) = start(
        dir.path(),
        &["--cert", &d("server.pem"), "--key", &d("server.key")],
    );
    let url = format!("https://127.0.0.1:{port}/v1/charges");
    // curl takes h2 by ALPN unless told otherwise: the key's first use over HTTP/1.1, its
    // conflicting reuse over HTTP/2.
    let tls = ["--cacert", &d("ca.pem")];
    let tls11 = ["--cacert", &d("ca.pem"), "--http1.1"];
    assert_eq!(curl(&url, Some("m-1"), r#"{"amount":100}"#, &tls11), 204);
    assert_eq!(curl(&url, Some("m-1"), r#"{"amount":200}"#, &tls), 204);
    let tls10 = ["--cacert", &d("ca.pem"), "--http1.0"];
    assert_eq!(curl(&url, None, r#"{"amount":7}"#, &tls10), 204);
    assert_eq!(curl(&url, None, r#"{"amount":7}"#, &tls), 204);
    // TLS 1.2 is served too.
    let tls12 = ["--cacert", &d("ca.pem"), "--tls-max", "1.2"];
    assert_eq!(curl(&url, Some("m-2"), r#"{"amount":1}"#, &tls12), 204);
    std::thread::sleep(Duration::from_millis(300));
    let (events, err) = stop(p, dir.path());
    assert_eq!(
        alert_kinds(&events),
        [
            "key_conflict",
            "keyless_duplicate",
            "missing_key",
            "missing_key"
        ],
        "{err}"
    );
    let conflict = events
        .iter()
        .find(|e| e["kind"] == "key_conflict")
        .expect("a conflict");
    assert_eq!(conflict["request"]["host"], "api.example.com");
    // Mirrored requests go through the same HTTP reading: each with its own version.
    assert_eq!(conflict["request"]["protocol"], "HTTP/2");
    assert_eq!(conflict["original"]["protocol"], "HTTP/1.1");
    let dup = events
        .iter()
        .find(|e| e["kind"] == "keyless_duplicate")
        .expect("a keyless duplicate");
    assert_eq!(dup["original"]["protocol"], "HTTP/1.0", "{dup}");
    assert_eq!(dup["request"]["protocol"], "HTTP/2", "{dup}");
    assert!(
        conflict["response"].is_null(),
        "the mirror never sees responses"
    );
    let text = std::fs::read_to_string(dir.path().join("out.json")).unwrap_or_default();
    assert!(!text.contains("sk_test_m"), "no credential in the output");
}

#[test]
fn an_http2_peer_is_read_and_answered_in_http2_by_alpn_and_by_its_preface() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let d = |f: &str| dir.path().join(f).display().to_string();
    let (p, port) = start(
        dir.path(),
        &["--cert", &d("server.pem"), "--key", &d("server.key")],
    );
    let url = format!("https://127.0.0.1:{port}/v1/charges");
    // A body past the 64 KiB initial window: the mirror must give the credit back.
    let big = format!(r#"{{"amount":5,"note":"{}"}}"#, "x".repeat(300_000));
    std::fs::write(dir.path().join("big.json"), big).expect("write body");
    let big = format!("@{}", d("big.json"));
    let answers = curl_on_one_connection(
        &url,
        &["--http2", "--cacert", &d("ca.pem")],
        &[
            (Some("h2-1"), r#"{"amount":100}"#),
            (Some("h2-1"), r#"{"amount":200}"#),
            (Some("h2-big"), &big),
            (Some("h2-big"), &big),
            (None, r#"{"amount":7}"#),
        ],
    );
    assert_eq!(
        answers,
        vec!["204 2"; 5],
        "answered over HTTP/2, one connection"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (events, err) = stop(p, dir.path());
    assert_eq!(
        alert_kinds(&events),
        ["key_conflict", "missing_key"],
        "{err}"
    );
    let conflict = &events[0];
    assert_eq!(conflict["request"]["protocol"], "HTTP/2", "{conflict}");
    assert_eq!(conflict["original"]["protocol"], "HTTP/2");
    assert_eq!(conflict["request"]["host"], "api.example.com");

    // In cleartext, by the client's preface; HTTP/1.1 on the same port still works.
    let plain = tempfile::tempdir().expect("tempdir");
    let (p, port) = start(plain.path(), &["--insecure-plaintext"]);
    let url = format!("http://127.0.0.1:{port}/v1/charges");
    // A keyed request first, so that the endpoint is known to take keys.
    assert_eq!(curl(&url, Some("h1-1"), "{}", &[]), 204);
    for _ in 0..2 {
        let a = curl_on_one_connection(
            &url,
            &["--http2-prior-knowledge"],
            &[(None, r#"{"amount":9}"#)],
        );
        assert_eq!(a, ["204 2"]);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (events, err) = stop(p, plain.path());
    assert_eq!(
        alert_kinds(&events),
        ["keyless_duplicate", "missing_key", "missing_key"],
        "{err}"
    );
    let dup = events
        .iter()
        .find(|e| e["kind"] == "keyless_duplicate")
        .expect("a keyless duplicate");
    assert_eq!(dup["request"]["protocol"], "HTTP/2", "{dup}");
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let d = |f: &str| dir.path().join(f).display().to_string();
    let (p, port) = start(
        dir.path(),
        &[
            "--cert",
            &d("server.pem"),
            "--key",
            &d("server.key"),
            "--client-ca",
            &d("ca.pem"),
        ],
    );
    let url = format!("https://127.0.0.1:{port}/v1/charges");
    let no_cert = ["--cacert", &d("ca.pem")];
    assert_eq!(curl(&url, Some("t-1"), "{}", &no_cert), 0, "refused");
    let with_cert = [
        "--cacert",
        &d("ca.pem"),
        "--cert",
        &d("client.pem"),
        "--key",
        &d("client.key"),
    ];
    assert_eq!(curl(&url, Some("t-1"), "{}", &with_cert), 204);
    let (_, err) = stop(p, dir.path());
    assert!(err.contains("1 TLS failures"), "{err}");
}

#[test]
fn garbage_and_slow_senders_are_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (p, port) = start(
        dir.path(),
        &["--insecure-plaintext", "--request-timeout", "1s"],
    );
    // Not HTTP: closed at once, no answer.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"\x16\x03\x01garbage that is not a request line\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed without an answer");
    // Half a head, then silence: closed after the request timeout, not held.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"POST /v1/charges HTTP/1.1\r\nHost: api.example.com\r\n")
        .expect("write");
    let t = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed");
    assert!(
        t.elapsed() < Duration::from_secs(9),
        "closed by the request timeout"
    );
    let (_, err) = stop(p, dir.path());
    assert!(err.contains("1 timeouts"), "{err}");
    assert!(err.contains("1 not HTTP"), "{err}");
}

#[test]
fn nginx_mirrors_requests_to_idemwatch_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let d = |f: &str| dir.path().join(f).display().to_string();
    let api = start_api(dir.path());
    let api_port = api.port;
    let (p, mirror_port) = start(
        dir.path(),
        &[
            "--cert",
            &d("server.pem"),
            "--key",
            &d("server.key"),
            "--client-ca",
            &d("ca.pem"),
            // nginx's X-Request-Start is believed: its mirrored copies are judged in the order
            // nginx received the requests, whatever order they arrive in.
            "--trusted-proxies",
            "127.0.0.1/32",
        ],
    );
    let ngx = start_nginx(dir.path(), api_port, mirror_port);
    // The API's own answers come back through nginx; the mirror's 204s are dropped by it.
    assert_eq!(
        via_nginx(ngx.port, Some("ngx-1"), r#"{"amount":100}"#).0,
        200
    );
    assert_eq!(
        via_nginx(ngx.port, Some("ngx-1"), r#"{"amount":300}"#).0,
        400
    );
    assert_eq!(via_nginx(ngx.port, None, r#"{"amount":5}"#).0, 200);
    assert_eq!(via_nginx(ngx.port, None, r#"{"amount":5}"#).0, 200);
    // A Python client too, with an empty key (invalid_key).
    let py = format!(
        "import http.client\nc = http.client.HTTPConnection('127.0.0.1', {})\n\
         c.request('POST', '/v1/charges', body='{{}}', headers={{'Host': 'api.example.com', \
         'Idempotency-Key': '', 'Content-Type': 'application/json'}})\n\
         print(c.getresponse().status)\n",
        ngx.port
    );
    let out = Command::new("python3")
        .args(["-c", &py])
        .output()
        .expect("python3");
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(500));
    let (events, err) = stop(p, dir.path());
    assert_eq!(
        alert_kinds(&events),
        [
            "invalid_key",
            "key_conflict",
            "keyless_duplicate",
            "missing_key",
            "missing_key"
        ],
        "{err}\n{events:#?}"
    );
    let conflict = events
        .iter()
        .find(|e| e["kind"] == "key_conflict")
        .expect("a conflict");
    assert_eq!(conflict["request"]["host"], "api.example.com");
    assert_eq!(conflict["request"]["path"], "/v1/charges");

    // idemwatch stopped: requests through nginx still succeed, without waiting on it.
    let (status, secs) = via_nginx(ngx.port, Some("ngx-2"), r#"{"amount":1}"#);
    assert_eq!(status, 200);
    assert!(
        secs < 2.0,
        "a stopped mirror delayed the request by {secs:.2} s"
    );
}

#[test]
fn a_trusted_proxy_names_the_client_an_untrusted_one_does_not() {
    for (trust, expected) in [(true, "203.0.113.7"), (false, "127.0.0.1")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec!["--insecure-plaintext"];
        if trust {
            args.extend(["--trusted-proxies", "10.0.0.0/8,127.0.0.1"]);
        }
        let (p, port) = start(dir.path(), &args);
        let url = format!("http://127.0.0.1:{port}/v1/charges");
        let xff = ["-H", "X-Forwarded-For: 203.0.113.7, 10.1.2.3"];
        assert_eq!(curl(&url, Some("p-1"), r#"{"a":1}"#, &xff), 204);
        assert_eq!(curl(&url, Some("p-1"), r#"{"a":2}"#, &xff), 204);
        std::thread::sleep(Duration::from_millis(300));
        let (events, err) = stop(p, dir.path());
        let conflict = events
            .iter()
            .find(|e| e["kind"] == "key_conflict")
            .unwrap_or_else(|| panic!("no conflict: {err}"));
        assert_eq!(conflict["request"]["src_ip"], expected, "trusted: {trust}");
    }
}

#[test]
fn sighup_reloads_renewed_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let renewed = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    make_certs(renewed.path());
    let d = |f: &str| dir.path().join(f).display().to_string();
    let r = |f: &str| renewed.path().join(f).display().to_string();
    let (p, port) = start(
        dir.path(),
        &["--cert", &d("server.pem"), "--key", &d("server.key")],
    );
    let url = format!("https://127.0.0.1:{port}/v1/charges");
    assert_eq!(
        curl(&url, Some("h-1"), "{}", &["--cacert", &d("ca.pem")]),
        204
    );
    // The certificate is renewed in place (by another CA here, to tell them apart).
    std::fs::copy(r("server.pem"), d("server.pem")).expect("copy");
    std::fs::copy(r("server.key"), d("server.key")).expect("copy");
    let _ = Command::new("kill")
        .args(["-HUP", &p.0.id().to_string()])
        .status();
    let start = Instant::now();
    while curl(&url, Some("h-2"), "{}", &["--cacert", &r("ca.pem")]) != 204 {
        assert!(start.elapsed() < Duration::from_secs(5), "not reloaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        curl(&url, Some("h-3"), "{}", &["--cacert", &d("ca.pem")]),
        0
    );
    let (_, err) = stop(p, dir.path());
    assert!(err.contains("certificates reloaded"), "{err}");
}

#[test]
fn the_mirror_reads_its_file_and_sighup_reopens_the_output_and_reloads_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("mirror.toml");
    std::fs::write(
        &conf,
        "insecure-plaintext = true\nmissing-key = \"off\"\nrequest-timeout = \"1s\"\n",
    )
    .expect("write config");
    let (p, port) = start(dir.path(), &["--config", &conf.display().to_string()]);
    // request-timeout from the file: half a head is closed after 1 s, not the default 30 s.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"POST /v1/charges HTTP/1.1\r\nHost: api.example.com\r\n")
        .expect("write");
    let t = Instant::now();
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed");
    assert!(t.elapsed() < Duration::from_secs(9), "the file's timeout");
    let url = format!("http://127.0.0.1:{port}/v1/charges");
    assert_eq!(curl(&url, None, r#"{"amount":1}"#, &[]), 204);
    // logrotate moves the file away; the policy changes; SIGHUP.
    std::fs::rename(dir.path().join("out.json"), dir.path().join("out.json.1")).expect("rename");
    std::fs::write(
        &conf,
        "insecure-plaintext = true\nmissing-key = \"all\"\nrequest-timeout = \"1s\"\n",
    )
    .expect("write config");
    daemon::signal(&p, "-HUP");
    let err = || std::fs::read_to_string(dir.path().join("err")).unwrap_or_default();
    assert!(
        daemon::wait_for(Duration::from_secs(5), || err()
            .contains("policy options reloaded")),
        "{}",
        err()
    );
    assert_eq!(curl(&url, None, r#"{"amount":2}"#, &[]), 204);
    std::thread::sleep(Duration::from_millis(300));
    let (events, err) = stop(p, dir.path());
    assert_eq!(alert_kinds(&events), ["missing_key"], "{err}");
    assert!(err.contains("output reopened"), "{err}");
    let old = std::fs::read_to_string(dir.path().join("out.json.1")).unwrap_or_default();
    assert!(
        !old.contains("\"alert\""),
        "no alert before the reload: {old}"
    );
}

#[test]
fn the_mirror_tells_systemd_it_is_ready_alive_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // As systemd does: WATCHDOG_PID names the service's own process, which exec keeps.
    let child = Command::new("sh")
        .args([
            "-c",
            "WATCHDOG_PID=$$ exec \"$0\" mirror --listen 127.0.0.1:0 --insecure-plaintext -o \"$1\"",
            env!("CARGO_BIN_EXE_idemwatch"),
        ])
        .arg(dir.path().join("out.json"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("idemwatch starts");
    let mut p = daemon::Proc(child);
    let next = || {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
    };
    assert_eq!(next(), "READY=1");
    assert_eq!(next(), "WATCHDOG=1");
    daemon::signal(&p, "-TERM");
    let mut last = next();
    while last == "WATCHDOG=1" {
        last = next();
    }
    assert_eq!(last, "STOPPING=1");
    assert_eq!(daemon::wait_exit(&mut p, Duration::from_secs(5)), Some(0));
}
