//! `idemwatch mirror` with real clients: curl over TLS (certificates made here with rcgen),
//! mutual TLS, and hostile peers (garbage, a sender that never finishes its head).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_idemwatch");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn make_certs(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // Distinct names: a leaf whose subject equals its issuer's looks self-signed.
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "idemwatch test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).expect("write");
    write("ca.pem", ca.pem());
    for name in ["server", "client"] {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        if name == "server" {
            params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().expect("ip"))];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            params.subject_alt_names = vec![SanType::DnsName("gateway".try_into().expect("name"))];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &issuer).expect("sign");
        write(&format!("{name}.pem"), cert.pem());
        write(&format!("{name}.key"), key.serialize_pem());
    }
}

fn start(dir: &Path, port: u16, extra: &[&str]) -> Proc {
    let err = std::fs::File::create(dir.join("err")).expect("stderr file");
    let child = Command::new(BIN)
        .args([
            "-v",
            "mirror",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "-o",
        ])
        .arg(dir.join("out.json"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("idemwatch starts");
    let p = Proc(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "mirror did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

/// Stops the mirror (SIGTERM) and returns its events and its stderr.
fn stop(mut p: Proc, dir: &Path) -> (Vec<Value>, String) {
    let _ = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(s)) = p.0.try_wait() {
            assert!(s.success(), "mirror exited with {s}");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = std::fs::read_to_string(dir.join("out.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        events,
        std::fs::read_to_string(dir.join("err")).unwrap_or_default(),
    )
}

/// curl POST; returns the HTTP status curl saw (0 when it failed).
fn curl(url: &str, key: Option<&str>, body: &str, tls: &[&str]) -> u16 {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        url,
    ])
    .args([
        "-H",
        "Host: api.example.com",
        "-H",
        "Authorization: Bearer sk_test_m",
    ])
    .args(["-H", "Content-Type: application/json", "--data", body])
    .args(tls);
    if let Some(k) = key {
        c.args(["-H", &format!("Idempotency-Key: {k}")]);
    }
    let out = c.output().expect("curl runs (install curl)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn kinds(events: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = events
        .iter()
        .filter(|e| e["event_type"] == "alert")
        .filter_map(|e| e["kind"].as_str().map(String::from))
        .collect();
    k.sort();
    k
}

#[test]
fn mirrored_requests_over_tls_raise_request_side_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let port = free_port();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let p = start(
        dir.path(),
        port,
        &["--cert", &d("server.pem"), "--key", &d("server.key")],
    );
    let url = format!("https://127.0.0.1:{port}/v1/charges");
    let tls = ["--cacert", &d("ca.pem")];
    assert_eq!(curl(&url, Some("m-1"), r#"{"amount":100}"#, &tls), 204);
    assert_eq!(curl(&url, Some("m-1"), r#"{"amount":200}"#, &tls), 204);
    assert_eq!(curl(&url, None, r#"{"amount":7}"#, &tls), 204);
    assert_eq!(curl(&url, None, r#"{"amount":7}"#, &tls), 204);
    // TLS 1.2 is served too.
    let tls12 = ["--cacert", &d("ca.pem"), "--tls-max", "1.2"];
    assert_eq!(curl(&url, Some("m-2"), r#"{"amount":1}"#, &tls12), 204);
    std::thread::sleep(Duration::from_millis(300));
    let (events, err) = stop(p, dir.path());
    assert_eq!(
        kinds(&events),
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
    assert!(
        conflict["response"].is_null(),
        "the mirror never sees responses"
    );
    let text = std::fs::read_to_string(dir.path().join("out.json")).unwrap_or_default();
    assert!(!text.contains("sk_test_m"), "no credential in the output");
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let port = free_port();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let p = start(
        dir.path(),
        port,
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
    let port = free_port();
    let p = start(
        dir.path(),
        port,
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
