//! Secrets never reach idemwatch's output: canary values planted in Authorization, Cookie,
//! Proxy-Authorization, Set-Cookie, credential-like query parameters and request and response
//! bodies (JSON and form) must not appear in stdout, stderr, the output file or the state file
//! of any command, at any verbosity, on the normal path or an error path. Keys are printed by
//! contract, so the key canary is only looked for in `--redact-keys` runs. A TLS capture's
//! key log is a secret too: none of its secrets (hex in either case, raw or base64), good
//! lines or bad, may appear in what `read --tls-keylog` writes, nor when a pcapng carries it.
//!
//! `live` needs CAP_NET_RAW (CI runs as root), like tests/it/live.rs.

use crate::daemon;
use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use support::{
    BASE_TS_NS, Conversation, Format, LINKTYPE_ETHERNET, STEP_NS, capture_bytes, post,
    record_offsets, server_v4, v4,
};

use daemon::{Proc, alert_kinds, free_port, spawn_listening, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_idemwatch");

// ---------------------------------------------------------------------------------------------
// Canaries and the scan
// ---------------------------------------------------------------------------------------------

/// A secret planted in the traffic. Values are unique enough that any hit is a leak.
struct Canary {
    name: &'static str,
    value: &'static str,
    /// Sent as the password of a Basic credential of this user.
    basic_user: Option<&'static str>,
}

const fn canary(name: &'static str, value: &'static str) -> Canary {
    Canary {
        name,
        value,
        basic_user: None,
    }
}

const BEARER: Canary = canary("Authorization Bearer", "sk_live_cnryBearer4f1d");
const BASIC: Canary = Canary {
    name: "Authorization Basic",
    value: "cnryBasicPw9a2e",
    basic_user: Some("acct_user"),
};
const PROXY: Canary = Canary {
    name: "Proxy-Authorization",
    value: "cnryProxyPw77c0",
    basic_user: Some("proxyuser"),
};
const COOKIE: Canary = canary("Cookie", "cnryCookie3b8e");
const SET_COOKIE: Canary = canary("Set-Cookie", "cnrySetCookie5d21");
// Query values with characters that are percent-encoded on the wire.
const Q_API_KEY: Canary = canary("api_key query", "cnryApiKey/61+ab");
const Q_ACCESS_TOKEN: Canary = canary("access_token query", "cnryAccessTok/0c+9");
const Q_CLIENT_SECRET: Canary = canary("client_secret query", "cnryClientSec=7e");
// Redacted only because the runs pass --redact-param session_ref.
const Q_CUSTOM: Canary = canary("--redact-param query", "cnrySessionRef8d3");
const BODY_JSON: Canary = canary("JSON request body", "4242cnryCardJson1881");
const BODY_FORM: Canary = canary("form request body", "cnryFormPw/x+1");
const RESP_BODY: Canary = canary("response body", "cnryRespSecret6e0f");
/// The idempotency key: printed by contract, secret only with --redact-keys.
const KEY: Canary = canary("Idempotency-Key", "cnryIdemKey2c77");

const SECRETS: [&Canary; 12] = [
    &BEARER,
    &BASIC,
    &PROXY,
    &COOKIE,
    &SET_COOKIE,
    &Q_API_KEY,
    &Q_ACCESS_TOKEN,
    &Q_CLIENT_SECRET,
    &Q_CUSTOM,
    &BODY_JSON,
    &BODY_FORM,
    &RESP_BODY,
];

const REDACT_PARAM: [&str; 2] = ["--redact-param", "session_ref"];

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn pct(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn basic(c: &Canary) -> String {
    format!(
        "Basic {}",
        b64(&format!("{}:{}", c.basic_user.unwrap_or(""), c.value))
    )
}

impl Canary {
    /// The forms a leak could take: as sent, percent-encoded, base64, and the Basic token.
    fn forms(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![("raw", self.value.to_string())];
        let p = pct(self.value);
        if p != self.value {
            f.push(("percent-encoded", p));
        }
        f.push(("base64", b64(self.value)));
        if let Some(user) = self.basic_user {
            f.push(("Basic token", b64(&format!("{user}:{}", self.value))));
        }
        f
    }
}

/// What a run left behind: stdout, stderr, output files, state files.
struct Stream {
    name: String,
    bytes: Vec<u8>,
}

fn stream(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Stream {
    Stream {
        name: name.into(),
        bytes: bytes.into(),
    }
}

/// Every file under `dir`, as streams named by their path.
fn files_under(dir: &Path) -> Vec<Stream> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push(stream(p.display().to_string(), bytes));
            }
        }
    }
    out
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// One line per (canary, form, stream) found: which secret leaked where, with some context.
fn leaks(canaries: &[&Canary], streams: &[Stream]) -> Vec<String> {
    let mut found = Vec::new();
    for c in canaries {
        for (form, text) in c.forms() {
            for s in streams {
                if let Some(at) = find_ci(&s.bytes, text.as_bytes()) {
                    let from = at.saturating_sub(60);
                    let to = (at + text.len() + 60).min(s.bytes.len());
                    found.push(format!(
                        "{} ({form} {text:?}) in {} at byte {at}: …{}…",
                        c.name,
                        s.name,
                        String::from_utf8_lossy(&s.bytes[from..to]).escape_debug()
                    ));
                }
            }
        }
    }
    found
}

/// Fails, naming each leak, when any canary is in any stream.
fn assert_no_leaks(run: &str, canaries: &[&Canary], streams: &[Stream]) {
    let found = leaks(canaries, streams);
    assert!(
        found.is_empty(),
        "{run}: secrets leaked:\n  {}",
        found.join("\n  ")
    );
}

/// The secrets always, and the key too with --redact-keys.
fn canaries(redact_keys: bool) -> Vec<&'static Canary> {
    let mut v = SECRETS.to_vec();
    if redact_keys {
        v.push(&KEY);
    }
    v
}

/// Parsed JSON lines of a text (non-JSON lines skipped).
fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Guards against a vacuous pass: the run saw the traffic and alerted on it.
fn assert_alerted(run: &str, events: &[Value], expected: &[&str], streams: &[Stream]) {
    let kinds = alert_kinds(events);
    let stderr = streams
        .iter()
        .find(|s| s.name == "stderr")
        .map(|s| String::from_utf8_lossy(&s.bytes).into_owned())
        .unwrap_or_default();
    for k in expected {
        assert!(
            kinds.iter().any(|x| x == k),
            "{run}: no {k} alert (got {kinds:?}); stderr:\n{stderr}"
        );
    }
}

#[test]
fn the_scan_names_each_canary_form_and_stream() {
    let streams = [
        stream(
            "stdout",
            format!("{{\"path\":\"/x?api_key={}\"}}", pct(Q_API_KEY.value)),
        ),
        stream("stderr", format!("DEBUG header: {}", basic(&BASIC))),
        stream(
            "state",
            [b"\x00\x01".as_slice(), BODY_JSON.value.as_bytes()].concat(),
        ),
        stream("clean", "nothing to see"),
    ];
    let found = leaks(&SECRETS, &streams);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("Authorization Basic (Basic token"));
    assert!(found[0].contains(" in stderr "));
    assert!(found[1].starts_with("api_key query (percent-encoded"));
    assert!(found[1].contains(" in stdout "));
    assert!(found[2].starts_with("JSON request body (raw"));
    assert!(found[2].contains(" in state "));
    assert!(leaks(&[&KEY], &streams).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The traffic
// ---------------------------------------------------------------------------------------------

/// The query of the keyed requests: every redacted parameter, percent-encoded as sent.
fn secret_query() -> String {
    format!(
        "api_key={}&access_token={}&expand=customer&client_secret={}&session_ref={}",
        pct(Q_API_KEY.value),
        pct(Q_ACCESS_TOKEN.value),
        pct(Q_CLIENT_SECRET.value),
        pct(Q_CUSTOM.value),
    )
}

fn keyed_headers() -> Vec<String> {
    vec![
        format!("Authorization: Bearer {}", BEARER.value),
        format!("Cookie: theme=dark; session={}", COOKIE.value),
        format!("Proxy-Authorization: {}", basic(&PROXY)),
        format!("Idempotency-Key: {}", KEY.value),
        "Content-Type: application/json".to_string(),
    ]
}

fn keyless_headers() -> Vec<String> {
    vec![
        format!("Authorization: {}", basic(&BASIC)),
        format!("Cookie: session={}", COOKIE.value),
        "Content-Type: application/x-www-form-urlencoded".to_string(),
    ]
}

fn json_body(amount: u32) -> String {
    format!(
        r#"{{"amount":{amount},"currency":"usd","card":{{"number":"{}","cvc":"123"}}}}"#,
        BODY_JSON.value
    )
}

fn form_body() -> String {
    format!(
        "amount=7&currency=eur&password={}&card%5Bnumber%5D={}",
        pct(BODY_FORM.value),
        pct(BODY_JSON.value)
    )
}

fn response_body(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","object":"charge","client_secret":"{}"}}"#,
        RESP_BODY.value
    )
}

/// A response with a Set-Cookie canary and a body canary.
fn secret_response(status: u16, id: &str) -> Vec<u8> {
    let body = response_body(id);
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nSet-Cookie: sid={}; Path=/; HttpOnly\r\nContent-Length: {}\r\n\r\n{body}",
        support::reason(status),
        SET_COOKIE.value,
        body.len()
    )
    .into_bytes()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A capture: a keyed POST and its conflicting reuse on one connection, then keyless form
/// duplicates and a GET with the query canaries on another. Also: the index of the packet
/// carrying the first request.
fn secret_capture() -> (Vec<support::Packet>, usize) {
    let path = format!("/v1/charges?{}", secret_query());
    let keyed_owned = keyed_headers();
    let keyed = refs(&keyed_owned);
    let mut a = Conversation::v4();
    a.handshake();
    let first_request = a.len();
    a.client_send(&post(&path, &keyed, json_body(100).as_bytes()));
    a.server_send(&secret_response(200, "ch_1"));
    a.client_send(&post(&path, &keyed, json_body(250).as_bytes()));
    a.server_send(&secret_response(400, "err_1"));
    a.close();
    let mut packets = a.into_packets();

    let keyless_owned = keyless_headers();
    let keyless = refs(&keyless_owned);
    let mut b = Conversation::new(v4([10, 0, 0, 6], 40000), server_v4())
        .starting_at(BASE_TS_NS + 100 * STEP_NS);
    b.handshake();
    for id in ["ch_2", "ch_3"] {
        b.client_send(&post("/v1/charges", &keyless, form_body().as_bytes()));
        b.server_send(&secret_response(200, id));
    }
    b.client_send(
        format!(
            "GET /v1/customers?{} HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer {}\r\n\r\n",
            secret_query(),
            BEARER.value
        )
        .as_bytes(),
    );
    b.server_send(&secret_response(200, "cus_1"));
    b.close();
    packets.extend(b.into_packets());
    (packets, first_request)
}

// ---------------------------------------------------------------------------------------------
// read
// ---------------------------------------------------------------------------------------------

/// Runs `idemwatch ARGS` (stdin optional) and returns its streams and every JSON event of
/// stdout and of `out` (when given).
fn read_run(
    args: &[&str],
    stdin: Option<&[u8]>,
    out: Option<&Path>,
) -> (Option<i32>, Vec<Stream>, Vec<Value>) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start idemwatch");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let o = child.wait_with_output().expect("wait for idemwatch");
    let mut events = json_lines(&o.stdout);
    let mut streams = vec![stream("stdout", o.stdout), stream("stderr", o.stderr)];
    if let Some(p) = out {
        let bytes = std::fs::read(p).unwrap_or_default();
        events.extend(json_lines(&bytes));
        streams.push(stream(p.display().to_string(), bytes));
    }
    (o.status.code(), streams, events)
}

#[test]
fn read_prints_no_secret_at_any_verbosity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (packets, _) = secret_capture();
    let bytes = capture_bytes(Format::PCAP, LINKTYPE_ETHERNET, &packets);
    let file = dir.path().join("secrets.pcap");
    std::fs::write(&file, &bytes).expect("write capture");
    let f = file.to_str().expect("UTF-8 path");
    let expected = ["key_conflict", "keyless_duplicate", "missing_key"];

    for verbosity in ["-q", "-v", "-vv", "-vvv"] {
        let args = [
            verbosity,
            "read",
            "--log-requests",
            "--stats",
            REDACT_PARAM[0],
            REDACT_PARAM[1],
            f,
        ];
        let (code, streams, events) = read_run(&args, None, None);
        let run = format!("read {verbosity}");
        assert_eq!(code, Some(0), "{run}");
        assert_alerted(&run, &events, &expected, &streams);
        assert!(
            events.iter().filter(|e| e["event_type"] == "http").count() >= 5,
            "{run}: --log-requests wrote every transaction"
        );
        assert_no_leaks(&run, &canaries(false), &streams);
    }

    // To a file, on one thread and on several.
    for threads in ["1", "4"] {
        let out = dir.path().join(format!("out-{threads}.json"));
        let o = out.to_str().expect("UTF-8 path");
        let args = [
            "-vvv",
            "read",
            "--log-requests",
            "--stats",
            "--threads",
            threads,
            "-o",
            o,
            REDACT_PARAM[0],
            REDACT_PARAM[1],
            f,
        ];
        let (code, streams, events) = read_run(&args, None, Some(&out));
        let run = format!("read -vvv -o --threads {threads}");
        assert_eq!(code, Some(0), "{run}");
        assert_alerted(&run, &events, &expected, &streams);
        assert_no_leaks(&run, &canaries(false), &streams);
    }

    // --redact-keys: the key is a secret too, from a file and from stdin.
    let out = dir.path().join("redacted.json");
    let o = out.to_str().expect("UTF-8 path");
    for (input, stdin) in [(f, None), ("-", Some(bytes.as_slice()))] {
        let _ = std::fs::remove_file(&out);
        let args = [
            "-vvv",
            "read",
            "--log-requests",
            "--stats",
            "--redact-keys",
            "-o",
            o,
            REDACT_PARAM[0],
            REDACT_PARAM[1],
            input,
        ];
        let (code, streams, events) = read_run(&args, stdin, Some(&out));
        let run = format!("read -vvv --redact-keys {input}");
        assert_eq!(code, Some(0), "{run}");
        assert_alerted(&run, &events, &expected, &streams);
        let conflict = events
            .iter()
            .find(|e| e["kind"] == "key_conflict")
            .expect("a key_conflict");
        assert_eq!(
            conflict["key_sha256"],
            support::sha256_hex(KEY.value.as_bytes()),
            "{run}: the key is written as its hash"
        );
        assert_no_leaks(&run, &canaries(true), &streams);
    }
}

/// `report` on what `read` wrote (alerts, http events and stats of the secret capture): the
/// page, its stdout and stderr hold no secret, nor the key once `read --redact-keys` hashed it.
#[test]
fn report_prints_no_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (packets, _) = secret_capture();
    let file = dir.path().join("secrets.pcap");
    std::fs::write(
        &file,
        capture_bytes(Format::PCAP, LINKTYPE_ETHERNET, &packets),
    )
    .expect("write capture");
    let f = file.to_str().expect("UTF-8 path");
    for (redact, canaries) in [(false, canaries(false)), (true, canaries(true))] {
        let events = dir.path().join(format!("events-{redact}.json"));
        let e = events.to_str().expect("UTF-8 path");
        let mut args = vec!["read", "--log-requests", "--stats", "-o", e];
        if redact {
            args.push("--redact-keys");
        }
        args.extend([REDACT_PARAM[0], REDACT_PARAM[1], f]);
        let (code, _, alerts) = read_run(&args, None, Some(&events));
        assert_eq!(code, Some(0));
        let page = dir.path().join(format!("report-{redact}.html"));
        let p = page.to_str().expect("UTF-8 path");
        let (code, mut streams, _) = read_run(&["-vvv", "report", "-o", p, e], None, None);
        let run = format!("report (redact keys: {redact})");
        assert_eq!(code, Some(0), "{run}");
        let html = std::fs::read(&page).expect("the page is written");
        // Not vacuous: the page lists the alerts read found.
        let listed = String::from_utf8_lossy(&html)
            .matches("class=\"alert sev-")
            .count();
        assert_eq!(listed, alert_kinds(&alerts).len(), "{run}");
        assert!(listed >= 3, "{run}");
        streams.push(stream(p, html));
        assert_no_leaks(&run, &canaries, &streams);
    }
}

/// The text view (`--format text`) shows what the JSON holds and nothing more: no secret, and
/// with --redact-keys not the key either, only its hash.
#[test]
fn the_text_view_prints_no_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (packets, _) = secret_capture();
    let bytes = capture_bytes(Format::PCAP, LINKTYPE_ETHERNET, &packets);
    let file = dir.path().join("secrets.pcap");
    std::fs::write(&file, &bytes).expect("write capture");
    let f = file.to_str().expect("UTF-8 path");
    for (redact, threads) in [(false, "1"), (true, "4")] {
        let mut args = vec![
            "-vvv",
            "read",
            "--format",
            "text",
            "--log-requests",
            "--stats",
            "--threads",
            threads,
            REDACT_PARAM[0],
            REDACT_PARAM[1],
            f,
        ];
        if redact {
            args.insert(2, "--redact-keys");
        }
        let (code, streams, events) = read_run(&args, None, None);
        let run = format!("read --format text --threads {threads} (redact keys: {redact})");
        assert_eq!(code, Some(0), "{run}");
        assert!(events.is_empty(), "{run}: text, not JSON");
        let stdout = String::from_utf8_lossy(&streams[0].bytes).into_owned();
        for kind in ["key_conflict", "keyless_duplicate", "missing_key"] {
            assert!(
                stdout.contains(&format!(" {kind} ")),
                "{run}: {kind}\n{stdout}"
            );
        }
        assert!(stdout.contains(" http "), "{run}: http lines\n{stdout}");
        assert!(
            stdout.contains(" stats "),
            "{run}: the stats line\n{stdout}"
        );
        let hash = support::sha256_hex(KEY.value.as_bytes());
        assert_eq!(
            stdout.contains(&format!("key_sha256 {hash}")),
            redact,
            "{run}: the key's hash exactly where the JSON has it\n{stdout}"
        );
        assert_no_leaks(&run, &canaries(redact), &streams);
    }
}

#[test]
fn read_error_paths_print_no_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (packets, first_request) = secret_capture();
    let bytes = capture_bytes(Format::PCAP, LINKTYPE_ETHERNET, &packets);
    let at = record_offsets(Format::PCAP, &packets);

    // Cut inside the packet holding the first request (its headers), and inside a later one
    // (after transactions were written).
    let cuts = [
        ("cut in the request", at[first_request] + 16 + 54 + 200),
        ("cut in a later packet", at[packets.len() - 6] + 16 + 60),
    ];
    for (what, cut) in cuts {
        let file = dir.path().join("cut.pcap");
        std::fs::write(&file, &bytes[..cut]).expect("write");
        let f = file.to_str().expect("UTF-8 path");
        let args = [
            "-vvv",
            "read",
            "--log-requests",
            "--stats",
            REDACT_PARAM[0],
            REDACT_PARAM[1],
            "--redact-keys",
            f,
        ];
        let (code, streams, _) = read_run(&args, None, None);
        let stderr = String::from_utf8_lossy(&streams[1].bytes).into_owned();
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains("cut.pcap"),
            "{what}: the error names the file: {stderr}"
        );
        assert_no_leaks(what, &canaries(true), &streams);
    }

    // Not a capture at all: the HTTP text itself, as if a log file were given.
    let (plain, _) = secret_capture();
    let mut text = Vec::new();
    for p in &plain {
        text.extend_from_slice(p.data.get(54..).unwrap_or(&[]));
    }
    let file = dir.path().join("http.txt");
    std::fs::write(&file, &text).expect("write");
    let f = file.to_str().expect("UTF-8 path");
    let (code, streams, _) = read_run(&["-vvv", "read", "--log-requests", f], None, None);
    assert_eq!(code, Some(1));
    assert_no_leaks(
        "read of a file that is not a capture",
        &canaries(true),
        &streams,
    );

    // A bad option value next to a capture with secrets: a usage error, the file unread. (The
    // bad value itself is the user's own argument, echoed to say what is wrong with it.)
    let file = dir.path().join("secrets.pcap");
    std::fs::write(&file, &bytes).expect("write");
    let f = file.to_str().expect("UTF-8 path");
    let (code, streams, _) = read_run(&["-vvv", "read", "--window", "3parsecs", f], None, None);
    assert_eq!(code, Some(2));
    assert_no_leaks("read with a bad option value", &canaries(true), &streams);
}

// ---------------------------------------------------------------------------------------------
// read over TLS: the key log is a secret too
// ---------------------------------------------------------------------------------------------

/// The NSS key-log lines a rustls client writes (as SSLKEYLOGFILE would).
#[derive(Debug, Default)]
struct KeyLogText(std::sync::Mutex<String>);

impl rustls::KeyLog for KeyLogText {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if let Ok(mut t) = self.0.lock() {
            t.push_str(&format!(
                "{label} {} {}\n",
                support::hex(client_random),
                support::hex(secret)
            ));
        }
    }
}

/// Moves what `from` has to write to `to`, which takes it in: the bytes on the wire.
fn tls_pass<A, B>(
    from: &mut rustls::ConnectionCommon<A>,
    to: &mut rustls::ConnectionCommon<B>,
) -> Vec<u8> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).expect("write_tls");
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        assert!(to.read_tls(&mut rest).expect("read_tls") > 0);
        to.process_new_packets().expect("TLS records");
        let _ = to.reader().read_to_end(&mut Vec::new());
    }
    wire
}

/// A TCP conversation carrying TLS 1.3 between a rustls client and server in memory: each
/// write goes on the wire as the records it became.
struct TlsConversation {
    tcp: Conversation,
    client: rustls::ClientConnection,
    server: rustls::ServerConnection,
}

impl TlsConversation {
    fn new(tcp: Conversation, log: &std::sync::Arc<KeyLogText>) -> Self {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use std::sync::Arc;
        let cert = rcgen::generate_simple_self_signed(vec!["api.example.com".to_string()])
            .expect("certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .expect("server config");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).expect("root");
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.key_log = log.clone();
        let name = "api.example.com".try_into().expect("name");
        let mut t = TlsConversation {
            tcp,
            client: rustls::ClientConnection::new(Arc::new(client), name).expect("client"),
            server: rustls::ServerConnection::new(Arc::new(server)).expect("server"),
        };
        t.tcp.handshake();
        for _ in 0..8 {
            let c = tls_pass(&mut t.client, &mut t.server);
            if !c.is_empty() {
                t.tcp.client_send(&c);
            }
            let s = tls_pass(&mut t.server, &mut t.client);
            if !s.is_empty() {
                t.tcp.server_send(&s);
            }
            if c.is_empty() && s.is_empty() {
                break;
            }
        }
        assert!(!t.client.is_handshaking() && !t.server.is_handshaking());
        t
    }

    fn client_send(&mut self, data: &[u8]) {
        self.client.writer().write_all(data).expect("write");
        let c = tls_pass(&mut self.client, &mut self.server);
        self.tcp.client_send(&c);
    }

    fn server_send(&mut self, data: &[u8]) {
        self.server.writer().write_all(data).expect("write");
        let s = tls_pass(&mut self.server, &mut self.client);
        self.tcp.server_send(&s);
    }

    /// Each side's close_notify, then the FINs.
    fn close(mut self) -> Vec<support::Packet> {
        self.client.send_close_notify();
        let c = tls_pass(&mut self.client, &mut self.server);
        self.tcp.client_send(&c);
        self.server.send_close_notify();
        let s = tls_pass(&mut self.server, &mut self.client);
        self.tcp.server_send(&s);
        self.tcp.close();
        self.tcp.into_packets()
    }
}

/// [`secret_capture`]'s exchanges over TLS 1.3 to port 443, and the client's key log.
fn tls_secret_capture() -> (Vec<support::Packet>, String) {
    let log = std::sync::Arc::new(KeyLogText::default());
    let server = v4([10, 0, 0, 9], 443);
    let path = format!("/v1/charges?{}", secret_query());
    let keyed_owned = keyed_headers();
    let keyed = refs(&keyed_owned);
    let mut a = TlsConversation::new(Conversation::new(support::client_v4(), server), &log);
    a.client_send(&post(&path, &keyed, json_body(100).as_bytes()));
    a.server_send(&secret_response(200, "ch_1"));
    a.client_send(&post(&path, &keyed, json_body(250).as_bytes()));
    a.server_send(&secret_response(400, "err_1"));
    let mut packets = a.close();

    let keyless_owned = keyless_headers();
    let keyless = refs(&keyless_owned);
    let tcp =
        Conversation::new(v4([10, 0, 0, 6], 40000), server).starting_at(BASE_TS_NS + 100 * STEP_NS);
    let mut b = TlsConversation::new(tcp, &log);
    for id in ["ch_2", "ch_3"] {
        b.client_send(&post("/v1/charges", &keyless, form_body().as_bytes()));
        b.server_send(&secret_response(200, id));
    }
    b.client_send(
        format!(
            "GET /v1/customers?{} HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer {}\r\n\r\n",
            secret_query(),
            BEARER.value
        )
        .as_bytes(),
    );
    b.server_send(&secret_response(200, "cus_1"));
    packets.extend(b.close());
    let text = log.0.lock().expect("key log").clone();
    (packets, text)
}

/// Key-log lines that are skipped, each holding a secret-like value of its own (the reader
/// must not echo a bad line, since it may still hold a secret): bad hex, a short random, a
/// secret of a length no suite has, an unknown label, a lone secret, an extra field.
const BAD_KEYLOG_SECRETS: [&str; 6] = [
    "9f3c2a71d04e8b65c1a2f7e9d3b05c48a6e1f2d7c9b3a05e4d8c7f6a1b2e3d4c5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c",
    "b7e4c1d09a8f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d",
    "4d6c8e0a2b4f6e8d0c2a4b6f8e0d2c4a6b8f0e2d4c6a8b0f2e4d6c8a0b2f4e6d8c0a",
    "e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2",
    "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b",
    "5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d",
];

fn bad_keylog_lines() -> String {
    let random = "5a1d8a6ffc6e3fe3a1b0b6bd3a4a0b0c8f3dc6e7a9d4e3c2b1a0f9e8d7c6b5a4";
    let b = BAD_KEYLOG_SECRETS;
    [
        format!("CLIENT_TRAFFIC_SECRET_0 {random} {}zz", b[0]),
        format!("CLIENT_RANDOM 5a1d8a6f {}", b[1]),
        format!("SERVER_HANDSHAKE_TRAFFIC_SECRET {random} {}", b[2]),
        format!("CLIENT_TOTALLY_SECRET {random} {}", b[3]),
        b[4].to_string(),
        format!("SERVER_TRAFFIC_SECRET_0 {random} {} extra", b[5]),
    ]
    .join("\n")
}

/// Every secret of a key log (its third fields, valid or not), as bytes.
fn keylog_secrets(text: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .chain(BAD_KEYLOG_SECRETS)
        .filter_map(|h| {
            let h = h.trim_end_matches('z');
            (0..h.len() / 2)
                .map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One line per (secret, form, stream) found: hex (either case), raw bytes or base64.
fn keylog_leaks(secrets: &[Vec<u8>], streams: &[Stream]) -> Vec<String> {
    let mut found = Vec::new();
    for secret in secrets {
        let forms = [
            ("hex", support::hex(secret).into_bytes()),
            ("raw", secret.clone()),
            (
                "base64",
                base64::engine::general_purpose::STANDARD
                    .encode(secret)
                    .into_bytes(),
            ),
        ];
        for (form, needle) in &forms {
            for s in streams {
                if let Some(at) = find_ci(&s.bytes, needle) {
                    found.push(format!(
                        "key-log secret {}… ({form}) in {} at byte {at}",
                        &support::hex(secret)[..8],
                        s.name
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn the_key_log_scan_finds_a_planted_secret_in_any_form() {
    let (_, keylog) = tls_secret_capture();
    let secrets = keylog_secrets(&keylog);
    // Five lines a connection (two connections), and the planted ones.
    assert_eq!(secrets.len(), 10 + BAD_KEYLOG_SECRETS.len());
    let one = &secrets[3];
    let streams = [
        stream(
            "stderr",
            format!("DEBUG secret={}", support::hex(one).to_uppercase()),
        ),
        stream("out.json", [b"\x00".as_slice(), one, b"\x00"].concat()),
        stream(
            "stdout",
            base64::engine::general_purpose::STANDARD.encode(one),
        ),
        // Labels and client randoms (on the wire anyway) are not secrets.
        stream(
            "clean",
            keylog
                .lines()
                .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    ];
    let found = keylog_leaks(&secrets, &streams);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0].ends_with("(hex) in stderr at byte 13"),
        "{found:?}"
    );
    assert!(found[1].contains("(raw) in out.json"), "{found:?}");
    assert!(found[2].contains("(base64) in stdout"), "{found:?}");
    // A planted bad line's secret is found too.
    let bad = stream("stderr", bad_keylog_lines());
    assert_eq!(
        keylog_leaks(&secrets, &[bad]).len(),
        BAD_KEYLOG_SECRETS.len()
    );
}

/// Runs `idemwatch ARGS` in `cwd` (stdin closed, RUST_LOG as given): its streams and every
/// JSON event of stdout.
fn run_in(
    cwd: &Path,
    args: &[&str],
    rust_log: Option<&str>,
) -> (Option<i32>, Vec<Stream>, Vec<Value>) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if let Some(l) = rust_log {
        cmd.env("RUST_LOG", l);
    }
    let o = cmd.output().expect("run idemwatch");
    let events = json_lines(&o.stdout);
    (
        o.status.code(),
        vec![stream("stdout", o.stdout), stream("stderr", o.stderr)],
        events,
    )
}

#[test]
fn read_prints_no_key_log_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in");
    let work = dir.path().join("run");
    std::fs::create_dir_all(&input).expect("dir");
    std::fs::create_dir_all(&work).expect("dir");
    let (packets, keylog) = tls_secret_capture();
    // Bad lines first, among and after the good ones (CRLF on one).
    let (head, tail) = keylog.split_at(keylog.len() / 2);
    let keylog_file = format!(
        "{}\n{head}\r\n{}\n{tail}",
        bad_keylog_lines(),
        bad_keylog_lines()
    );
    let secrets = keylog_secrets(&keylog_file);
    assert!(secrets.len() > 10);
    // The scan finds every secret in the key log itself.
    let whole = [stream("keys.log", keylog_file.clone())];
    assert_eq!(keylog_leaks(&secrets, &whole).len(), secrets.len());
    let keys = input.join("keys.log");
    std::fs::write(&keys, &keylog_file).expect("key log");
    let pcap = input.join("tls.pcap");
    support::write_capture(&pcap, Format::PCAP, LINKTYPE_ETHERNET, &packets);
    let (k, p) = (keys.to_str().expect("path"), pcap.to_str().expect("path"));

    // The key log inside a pcapng, as editcap puts it (no --tls-keylog needed).
    let pcapng = input.join("tls.pcapng");
    let with_keys = input.join("tls-keys.pcapng");
    for args in [
        vec!["-F", "pcapng", p, pcapng.to_str().expect("path")],
        vec![
            "--inject-secrets",
            &format!("tls,{k}"),
            pcapng.to_str().expect("path"),
            with_keys.to_str().expect("path"),
        ],
    ] {
        let out = Command::new("editcap")
            .args(&args)
            .output()
            .expect("editcap runs (install Debian's wireshark-common)");
        assert!(out.status.success(), "editcap {args:?}");
    }
    let w = with_keys.to_str().expect("path");

    let expected = ["key_conflict", "keyless_duplicate", "missing_key"];
    let common = [
        "--log-requests",
        "--stats",
        REDACT_PARAM[0],
        REDACT_PARAM[1],
    ];
    let mut runs: Vec<(String, Vec<&str>, Option<&str>)> = Vec::new();
    for v in ["-q", "-v", "-vv", "-vvv"] {
        let mut a = vec![v, "read", "--tls-keylog", k];
        a.extend(common);
        runs.push((format!("read {v} --tls-keylog"), a, None));
    }
    for threads in ["1", "4"] {
        let mut a = vec!["-vvv", "read", "--tls-keylog", k, "--threads", threads];
        a.extend([
            "-o",
            if threads == "1" {
                "out-1.json"
            } else {
                "out-4.json"
            },
        ]);
        a.extend(common);
        runs.push((
            format!("read -vvv --tls-keylog -o, {threads} threads"),
            a,
            None,
        ));
    }
    let mut a = vec!["read", "--tls-keylog", k];
    a.extend(common);
    runs.push(("read RUST_LOG=trace --tls-keylog".into(), a, Some("trace")));
    let mut a = vec!["-vvv", "read", "-o", "out-pcapng.json"];
    a.extend(common);
    runs.push(("read -vvv of a pcapng with its secrets".into(), a, None));

    for (run, mut args, rust_log) in runs {
        args.push(if run.contains("pcapng") { w } else { p });
        let (code, mut streams, mut events) = run_in(&work, &args, rust_log);
        assert_eq!(
            code,
            Some(0),
            "{run}: {}",
            String::from_utf8_lossy(&streams[1].bytes)
        );
        // Files written in the run's directory (the -o output among them).
        for f in files_under(&work) {
            events.extend(json_lines(&f.bytes));
            streams.push(f);
        }
        assert_alerted(&run, &events, &expected, &streams);
        // Not a vacuous pass: the requests were decrypted, and the bad lines read.
        let http: Vec<&Value> = events
            .iter()
            .filter(|e| e["event_type"] == "http")
            .collect();
        assert!(http.len() >= 5, "{run}: {} requests", http.len());
        assert!(
            http.iter()
                .all(|e| e["request"]["tls"]["version"] == "TLS 1.3"),
            "{run}: requests read over TLS"
        );
        let stats = events
            .iter()
            .find(|e| e["event_type"] == "stats")
            .expect("a stats line");
        assert_eq!(
            stats["stats"]["tls_keylog_bad_lines"].as_u64(),
            Some(2 * BAD_KEYLOG_SECRETS.len() as u64),
            "{run}"
        );
        let found = keylog_leaks(&secrets, &streams);
        assert!(
            found.is_empty(),
            "{run}: key-log secrets leaked:\n  {}",
            found.join("\n  ")
        );
        assert_no_leaks(&run, &canaries(false), &streams);
        for f in files_under(&work) {
            std::fs::remove_file(&f.name).expect("remove");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes (live, mirror)
// ---------------------------------------------------------------------------------------------

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Starts `idemwatch ARGS` with stdout and stderr in `dir`, and waits for `ready` in stderr.
fn start_daemon(dir: &Path, args: &[String], ready: &str) -> Option<Proc> {
    let out = std::fs::File::create(dir.join("stdout")).expect("stdout file");
    let err = std::fs::File::create(dir.join("stderr")).expect("stderr file");
    let child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("idemwatch starts");
    let mut p = Proc(child);
    let up = wait_for(Duration::from_secs(10), || {
        text(&dir.join("stderr")).contains(ready) || matches!(p.0.try_wait(), Ok(Some(_)))
    });
    (up && text(&dir.join("stderr")).contains(ready)).then_some(p)
}

/// SIGTERM, then the exit status (within 5 s).
fn terminate(mut p: Proc) -> Option<i32> {
    let _ = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(s)) = p.0.try_wait() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The streams a daemon left in `dir`: stdout, stderr, the output file; and every file of
/// `state` when given.
fn daemon_streams(dir: &Path, state: Option<&Path>) -> Vec<Stream> {
    let mut s = vec![
        stream(
            "stdout",
            std::fs::read(dir.join("stdout")).unwrap_or_default(),
        ),
        stream(
            "stderr",
            std::fs::read(dir.join("stderr")).unwrap_or_default(),
        ),
        stream(
            "out.json",
            std::fs::read(dir.join("out.json")).unwrap_or_default(),
        ),
    ];
    if let Some(st) = state {
        s.extend(files_under(st));
    }
    s
}

fn out_events(dir: &Path) -> Vec<Value> {
    json_lines(&std::fs::read(dir.join("out.json")).unwrap_or_default())
}

/// An API that answers every request with the Set-Cookie and body canaries, and a key's
/// reuse with 400 (as Stripe does for a conflict).
const API: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
SEEN = set()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        key = self.headers.get("Idempotency-Key")
        status = 400 if key is not None and key in SEEN else 200
        if key is not None:
            SEEN.add(key)
        body = json.dumps({"id": "ch_%d" % len(SEEN), "client_secret": sys.argv[2]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "sid=%s; Path=/; HttpOnly" % sys.argv[3])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

fn start_api() -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        API,
        &port.to_string(),
        RESP_BODY.value,
        SET_COOKIE.value,
    ]);
    (spawn_listening(&mut cmd, port, "the canary API"), port)
}

/// The canary traffic with Python's http.client: the keyed POST and its conflicting reuse,
/// two keyless form duplicates, a GET with the query canaries.
fn python_client(port: u16) {
    let header_dict = |hs: Vec<String>| {
        let items: Vec<String> = hs
            .iter()
            .map(|h| {
                let (k, v) = h.split_once(": ").expect("header line");
                format!("{k:?}: {v:?}")
            })
            .collect();
        format!("{{{}}}", items.join(", "))
    };
    let script = format!(
        "import http.client\n\
         c = http.client.HTTPConnection('127.0.0.1', {port})\n\
         def send(method, path, headers, body):\n\
         \x20   c.request(method, path, body=body, headers=headers)\n\
         \x20   r = c.getresponse(); r.read(); return r.status\n\
         keyed = {keyed}\n\
         keyless = {keyless}\n\
         path = '/v1/charges?{query}'\n\
         print(send('POST', path, keyed, {b1:?}))\n\
         print(send('POST', path, keyed, {b2:?}))\n\
         print(send('POST', '/v1/charges', keyless, {form:?}))\n\
         print(send('POST', '/v1/charges', keyless, {form:?}))\n\
         print(send('GET', '/v1/customers?{query}', {{'Authorization': 'Bearer {bearer}'}}, None))\n",
        keyed = header_dict(keyed_headers()),
        keyless = header_dict(keyless_headers()),
        query = secret_query(),
        b1 = json_body(100),
        b2 = json_body(250),
        form = form_body(),
        bearer = BEARER.value,
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
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["200", "400", "200", "200", "200"],
        "the API's answers"
    );
}

// ---------------------------------------------------------------------------------------------
// live
// ---------------------------------------------------------------------------------------------

#[test]
fn live_writes_no_secret_to_its_output_logs_or_state() {
    for redact_keys in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let state = d.join("state");
        let (_api, port) = start_api();
        let mut args: Vec<String> = [
            "-vvv",
            "live",
            "-i",
            "lo",
            "--log-requests",
            "--stats-interval",
            "1s",
            REDACT_PARAM[0],
            REDACT_PARAM[1],
        ]
        .map(String::from)
        .to_vec();
        args.extend(["--state-dir".into(), state.display().to_string()]);
        args.extend(["-o".into(), d.join("out.json").display().to_string()]);
        if redact_keys {
            args.push("--redact-keys".into());
        }
        args.extend(["--", "tcp", "port", &port.to_string()].map(String::from));
        let live = start_daemon(d, &args, "capturing").unwrap_or_else(|| {
            panic!(
                "idemwatch live did not start capturing on lo (it needs CAP_NET_RAW: run the \
                 tests as root):\n{}",
                text(&d.join("stderr"))
            )
        });
        python_client(port);
        let expected = ["key_conflict", "keyless_duplicate", "missing_key"];
        let seen = wait_for(Duration::from_secs(10), || {
            let evs = out_events(d);
            let kinds = alert_kinds(&evs);
            expected.iter().all(|k| kinds.iter().any(|x| x == k))
                && evs.iter().filter(|e| e["event_type"] == "http").count() >= 5
                && evs.iter().any(|e| e["event_type"] == "stats")
        });
        let code = terminate(live);
        let run = format!("live -vvv (redact_keys: {redact_keys})");
        let streams = daemon_streams(d, Some(&state));
        assert!(
            seen,
            "{run}: alerts, transactions or stats missing:\n{:#?}\n{}",
            out_events(d),
            text(&d.join("stderr"))
        );
        assert_eq!(code, Some(0), "{run}: SIGTERM ends live with 0");
        assert!(
            state.join("tracker.state").exists(),
            "{run}: the state was saved"
        );
        assert_alerted(&run, &out_events(d), &expected, &streams);
        assert_no_leaks(&run, &canaries(redact_keys), &streams);
    }
}

// ---------------------------------------------------------------------------------------------
// mirror
// ---------------------------------------------------------------------------------------------

/// Starts `idemwatch -vvv mirror --listen 127.0.0.1:PORT -o DIR/out.json EXTRA`, taking another
/// port when another test took the chosen one.
fn start_mirror(dir: &Path, extra: &[&str]) -> (Proc, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut args: Vec<String> = ["-vvv", "mirror", "--listen"].map(String::from).to_vec();
        args.push(format!("127.0.0.1:{port}"));
        args.extend(["-o".into(), dir.join("out.json").display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        if let Some(p) = start_daemon(dir, &args, "mirror listening") {
            return (p, port);
        }
    }
    panic!("mirror could not listen: {}", text(&dir.join("stderr")));
}

/// curl: the canary requests of [`python_client`], over TLS when `tls`.
fn curl_requests(port: u16, tls: bool) {
    let base = if tls {
        format!("https://127.0.0.1:{port}")
    } else {
        format!("http://127.0.0.1:{port}")
    };
    let send = |method: &str, path: &str, headers: &[String], body: Option<&str>| {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-k",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
        ])
        .arg(format!("{base}{path}"))
        .args(["-H", "Host: api.example.com"]);
        for h in headers {
            c.args(["-H", h]);
        }
        if let Some(b) = body {
            c.args(["--data-binary", b]);
        }
        let out = c.output().expect("curl runs (install curl)");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "204",
            "{method} {path}"
        );
    };
    let path = format!("/v1/charges?{}", secret_query());
    send("POST", &path, &keyed_headers(), Some(&json_body(100)));
    send("POST", &path, &keyed_headers(), Some(&json_body(250)));
    send(
        "POST",
        "/v1/charges",
        &keyless_headers(),
        Some(&form_body()),
    );
    send(
        "POST",
        "/v1/charges",
        &keyless_headers(),
        Some(&form_body()),
    );
    send(
        "GET",
        &format!("/v1/customers?{}", secret_query()),
        &[format!("Authorization: Bearer {}", BEARER.value)],
        None,
    );
}

/// Writes `bytes` on a fresh connection and reads until the mirror closes it.
/// Writes `pieces` on a fresh connection, pausing between them so that each arrives in its
/// own read, then ends the connection and reads until the mirror closes it.
fn hostile(port: u16, pieces: &[&[u8]]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = s.write_all(p);
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// The count before `what` in the mirror's summary line ("3 not HTTP").
fn summary_count(err: &str, what: &str) -> u64 {
    err.lines()
        .filter(|l| l.contains("idemwatch: mirror:"))
        .find_map(|l| {
            let before = l.split(what).next()?;
            before
                .rsplit([' ', '('])
                .find(|w| !w.is_empty())?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn mirror_writes_no_secret_over_tls_nor_on_bad_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
    std::fs::write(d.join("server.pem"), cert.cert.pem()).expect("write");
    std::fs::write(d.join("server.key"), cert.signing_key.serialize_pem()).expect("write");
    let pem = d.join("server.pem").display().to_string();
    let key = d.join("server.key").display().to_string();
    let expected = ["key_conflict", "keyless_duplicate", "missing_key"];

    // TLS.
    let (p, port) = start_mirror(
        d,
        &[
            "--cert",
            &pem,
            "--key",
            &key,
            "--log-requests",
            REDACT_PARAM[0],
            REDACT_PARAM[1],
        ],
    );
    curl_requests(port, true);
    let seen = wait_for(Duration::from_secs(5), || {
        let kinds = alert_kinds(&out_events(d));
        expected.iter().all(|k| kinds.iter().any(|x| x == k))
    });
    let code = terminate(p);
    let streams = daemon_streams(d, None);
    assert!(
        seen,
        "mirror over TLS: alerts missing: {:#?}",
        out_events(d)
    );
    assert_eq!(code, Some(0));
    assert_alerted("mirror over TLS", &out_events(d), &expected, &streams);
    assert_no_leaks("mirror -vvv over TLS", &canaries(false), &streams);

    // Plain TCP with --redact-keys, then requests the mirror refuses.
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let (p, port) = start_mirror(
        d,
        &[
            "--insecure-plaintext",
            "--redact-keys",
            "--log-requests",
            "--max-head-bytes",
            "2048",
            REDACT_PARAM[0],
            REDACT_PARAM[1],
        ],
    );
    curl_requests(port, false);
    let secret_head = format!(
        "Authorization: Bearer {}\r\nCookie: session={}\r\nProxy-Authorization: {}\r\nIdempotency-Key: {}\r\n",
        BEARER.value,
        COOKIE.value,
        basic(&PROXY),
        KEY.value
    );
    // Not HTTP (a TLS record header), the secrets following.
    hostile(
        port,
        &[format!("\x16\x03\x01{secret_head}\r\n{}", json_body(1)).as_bytes()],
    );
    // A request line that is not HTTP/1.x.
    hostile(
        port,
        &[format!(
            "POST /v1/charges?{} HTTP/9.9 x\r\n{secret_head}\r\n",
            secret_query()
        )
        .as_bytes()],
    );
    // A head longer than --max-head-bytes, whole in one write and again in two.
    let long = format!(
        "POST /v1/charges?{} HTTP/1.1\r\nHost: api.example.com\r\n{secret_head}X-Pad: {}\r\n\r\n{}",
        secret_query(),
        "p".repeat(4000),
        json_body(1)
    );
    hostile(port, &[long.as_bytes()]);
    let (a, b) = long.as_bytes().split_at(3000);
    hostile(port, &[a, b]);
    // A bad Content-Length after a valid head.
    hostile(
        port,
        &[format!(
            "POST /v1/charges?{} HTTP/1.1\r\nHost: api.example.com\r\n{secret_head}Content-Length: {}\r\n\r\n",
            secret_query(),
            BODY_JSON.value
        )
        .as_bytes()],
    );
    let seen = wait_for(Duration::from_secs(5), || {
        let kinds = alert_kinds(&out_events(d));
        expected.iter().all(|k| kinds.iter().any(|x| x == k))
    });
    let code = terminate(p);
    let streams = daemon_streams(d, None);
    let err = text(&d.join("stderr"));
    assert!(
        seen,
        "plain mirror: alerts missing: {:#?}\n{err}",
        out_events(d)
    );
    assert_eq!(code, Some(0));
    assert_eq!(
        summary_count(&err, " not HTTP"),
        4,
        "garbage, HTTP/9.9 and the long head (twice) are refused: {err}"
    );
    assert_alerted("plain mirror", &out_events(d), &expected, &streams);
    assert_no_leaks(
        "mirror -vvv --redact-keys, bad requests",
        &canaries(true),
        &streams,
    );
}

#[test]
fn a_bad_private_key_file_is_not_echoed() {
    // The mirror's private key is a secret of its own: an error about its file must name the
    // file, not print what it holds.
    const PEM_BODY: Canary = canary("private key PEM", "cnryPemKeyMaterial0QkM");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
    std::fs::write(d.join("server.pem"), cert.cert.pem()).expect("write");
    let pem = d.join("server.pem").display().to_string();
    for (name, body) in [
        (
            "bad.key",
            format!(
                "-----BEGIN PRIVATE KEY-----\n{}%%\n-----END PRIVATE KEY-----\n",
                PEM_BODY.value
            ),
        ),
        ("notpem.key", format!("{}\n", PEM_BODY.value)),
    ] {
        std::fs::write(d.join(name), body).expect("write");
        let key = d.join(name).display().to_string();
        let port = format!("127.0.0.1:{}", free_port());
        let (code, streams, _) = read_run(
            &[
                "-vvv", "mirror", "--listen", &port, "--cert", &pem, "--key", &key,
            ],
            None,
            None,
        );
        let stderr = String::from_utf8_lossy(&streams[1].bytes).into_owned();
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(name),
            "{name}: the error names the file: {stderr}"
        );
        assert_no_leaks(name, &[&PEM_BODY], &streams);
    }
}

// ---------------------------------------------------------------------------------------------
// check-config
// ---------------------------------------------------------------------------------------------

#[test]
fn check_config_prints_the_key_file_path_not_the_key() {
    const PEM_BODY: Canary = canary("private key PEM", "cnryPemKeyMaterial1ZpR");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let key: PathBuf = d.join("mirror.key");
    std::fs::write(
        &key,
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            PEM_BODY.value
        ),
    )
    .expect("write");
    let conf = d.join("idemwatch.toml");
    std::fs::write(
        &conf,
        format!(
            "interface = \"lo\"\nmirror-listen = \"127.0.0.1:9443\"\nmirror-cert = \"{0}\"\nmirror-key = \"{0}\"\nredact-param = [\"session_ref\"]\n",
            key.display()
        ),
    )
    .expect("write");
    let c = conf.display().to_string();
    let (code, streams, _) = read_run(&["-vvv", "check-config", "--config", &c], None, None);
    let stdout = String::from_utf8_lossy(&streams[0].bytes).into_owned();
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains(&key.display().to_string()), "{stdout}");
    assert_no_leaks("check-config -vvv", &[&PEM_BODY], &streams);
}
