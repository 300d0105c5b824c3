//! TLS decryption's inputs, against Wireshark's own tools (Debian's wireshark-common):
//! secrets that `editcap --inject-secrets` puts into a pcapng file are found there.

use std::path::Path;
use std::process::Command;

use idemwatch::source::secrets::tls_secrets;

fn editcap(args: &[&str]) {
    let out = Command::new("editcap")
        .args(args)
        .output()
        .expect("editcap runs (install Debian's wireshark-common)");
    assert!(
        out.status.success(),
        "editcap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_that_editcap_injects_into_a_pcapng_are_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |f: &str| dir.path().join(f).display().to_string();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/demo.pcap");
    // Random secrets, two lines, the second without its newline, CRLF in the first.
    let keylog = "CLIENT_RANDOM 5a1d8a6ffc6e3fe3a1b0b6bd3a4a0b0c8f3dc6e7a9d4e3c2b1a0f9e8d7c6b5a4 \
                  0ddba11c0ffee1234567890abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234\r\n\
                  CLIENT_TRAFFIC_SECRET_0 5a1d8a6ffc6e3fe3a1b0b6bd3a4a0b0c8f3dc6e7a9d4e3c2b1a0f9e8d7c6b5a4 \
                  00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    std::fs::write(d("keys.log"), keylog).expect("key log");
    editcap(&[
        "-F",
        "pcapng",
        &demo.display().to_string(),
        &d("demo.pcapng"),
    ]);
    editcap(&[
        "--inject-secrets",
        &format!("tls,{}", d("keys.log")),
        &d("demo.pcapng"),
        &d("with-keys.pcapng"),
    ]);
    let s = tls_secrets(std::fs::File::open(d("with-keys.pcapng")).expect("open"));
    assert_eq!(s.blocks, 1);
    let text = String::from_utf8(s.keylog).expect("text");
    // editcap keeps the lines as they were; the key log's reader takes CRLF and LF alike.
    assert_eq!(text.trim_end(), keylog.trim_end(), "{text:?}");
    // Without injection, and in the classic pcap: none.
    let none = tls_secrets(std::fs::File::open(d("demo.pcapng")).expect("open"));
    assert_eq!((none.blocks, none.keylog.len()), (0, 0));
    let pcap = tls_secrets(std::fs::File::open(&demo).expect("open"));
    assert_eq!(pcap.blocks, 0);
}

mod oracle {
    //! Every TLS recording of `captures/tls/` (curl and Python `requests` against
    //! `captures/server.py`, each with its client's key log), through reassembly and
    //! `tls::conn`: the requests decrypted (method, path, key) are the ones tshark decrypts
    //! with the same key log (`captures/tls/TSHARK.json`), connection by connection.

    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::rc::Rc;
    use std::sync::Arc;

    use idemwatch::decode::{Decoded, Decoder, DefragSettings};
    use idemwatch::http::Sink;
    use idemwatch::reassembly::{
        Chunk, EndReason, FlowInfo, FlowTable, Settings, Side, StreamSink,
    };
    use idemwatch::source::CaptureSet;
    use idemwatch::stats::Stats;
    use idemwatch::tls::conn::{TlsConn, TlsEvent};
    use idemwatch::tls::keylog::KeyLog;
    use idemwatch::tls::sessions::{Endpoint, SessionCache};
    use idemwatch::ts::Timestamp;
    use serde_json::Value;

    /// Each connection's client port, and what came out of it.
    type Seen = Rc<RefCell<BTreeMap<u16, Vec<TlsEvent>>>>;

    struct Probe {
        conn: TlsConn,
        ends: [u16; 2],
        client: Option<Side>,
        keys: Rc<KeyLog>,
        seen: Seen,
        events: Vec<TlsEvent>,
    }

    impl Probe {
        fn client_port(&self) -> u16 {
            self.ends[self.client.map_or(0, Side::index)]
        }
    }

    impl StreamSink for Probe {
        type Ctx = Sink;
        fn on_client_side(&mut self, side: Side, _: &mut Sink) {
            self.client = Some(side);
        }
        fn on_data(&mut self, side: Side, chunk: Chunk<'_>, _: &mut Sink) {
            let from_client = Some(side) == self.client;
            self.conn
                .on_data(from_client, chunk.bytes, &self.keys, &mut self.events);
        }
        fn on_gap(&mut self, side: Side, _: u64, _: u64, _: Timestamp, _: &mut Sink) {
            self.conn.on_gap(Some(side) == self.client);
        }
        fn on_end(&mut self, side: Side, _: EndReason, _: Timestamp, _: &mut Sink) {
            if Some(side) == self.client {
                return;
            }
            self.conn.finish(&mut self.events);
            let port = self.client_port();
            self.seen
                .borrow_mut()
                .entry(port)
                .or_default()
                .extend(std::mem::take(&mut self.events));
        }
    }

    /// The requests in a client's plaintext: (method, path, Idempotency-Key).
    fn requests(mut plain: &[u8]) -> Vec<(String, String, Option<String>)> {
        let mut out = Vec::new();
        while !plain.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let Ok(httparse::Status::Complete(head)) = req.parse(plain) else {
                break;
            };
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            let len: usize = header("content-length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            out.push((
                req.method.unwrap_or("").to_string(),
                req.path.unwrap_or("").to_string(),
                header("idempotency-key"),
            ));
            plain = plain.get(head + len..).unwrap_or(&[]);
        }
        out
    }

    /// What `tls::conn` decrypts of one recording, per client port; the session cache is
    /// shown every segment first, as the reading thread does.
    fn decrypt(pcap: &Path, keys: KeyLog) -> BTreeMap<u16, Vec<TlsEvent>> {
        let sessions = Arc::new(SessionCache::default());
        let seen: Seen = Rc::default();
        let keys = Rc::new(keys);
        let mut caps = CaptureSet::open(&[pcap.to_path_buf()], None).expect("capture");
        let mut decoder = Decoder::new(&DefragSettings::default());
        let mut table: FlowTable<Probe> = FlowTable::new(&Settings::default());
        let mut sink = Sink::default();
        let mut stats = Stats::default();
        let mut n = 0u64;
        let mut last = Timestamp::default();
        loop {
            let frame = match caps.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => panic!("{}: {e}", pcap.display()),
            };
            n += 1;
            last = frame.ts;
            let file_index = frame.file_index;
            if let Decoded::Segment(seg) =
                decoder.decode(frame.ts, frame.link, frame.data, frame.wire_len, &mut stats)
            {
                let end = |ip, port| Endpoint { ip, port };
                sessions.observe(
                    seg.ts,
                    end(seg.src, seg.src_port),
                    end(seg.dst, seg.dst_port),
                    seg.payload,
                );
                let mut new_flow = |info: &FlowInfo| Probe {
                    conn: TlsConn::with_sessions(Some(sessions.clone())),
                    ends: [info.ends[0].port, info.ends[1].port],
                    client: None,
                    keys: keys.clone(),
                    seen: seen.clone(),
                    events: Vec::new(),
                };
                table.on_segment(&seg, n, file_index, &mut new_flow, &mut sink);
            }
        }
        table.finish_all(last, &mut sink);
        seen.take()
    }

    #[test]
    fn every_tls_recording_decrypts_to_the_requests_tshark_decrypts() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures/tls");
        let oracle: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("TSHARK.json")).expect("TSHARK.json"),
        )
        .expect("JSON");
        let captures = oracle["captures"].as_object().expect("captures");
        assert!(captures.len() >= 10, "{}", captures.len());
        let (mut total, mut tshark_total) = (0, 0);
        let mut full_only = 0;
        // Each capture with its key log, and the resumed ones also with the first
        // connection's lines only (tshark decrypts the same through its session cache).
        let runs = captures.iter().flat_map(|(name, c)| {
            let alt = c.get("full_only").map(|f| (name, c, f));
            std::iter::once((name, c, c)).chain(alt)
        });
        for (name, c, with) in runs {
            tshark_total += with["tshark_decrypted"].as_u64().expect("count");
            full_only += u64::from(!std::ptr::eq(c, with));
            let mut keys = KeyLog::new(1024);
            let text = std::fs::read(dir.join(with["keys"].as_str().expect("keys"))).expect("keys");
            assert!(keys.add_text(&text).is_empty(), "{name}: bad key-log lines");
            let got = decrypt(&dir.join(name), keys);
            // tshark's requests, by client port (with the full-handshake key log, the same:
            // tshark_requests.py checks it).
            let mut want: BTreeMap<u16, Vec<(String, String, Option<String>)>> = BTreeMap::new();
            for r in c["requests"].as_array().expect("requests") {
                let port = u16::try_from(r["client_port"].as_u64().expect("port")).expect("port");
                want.entry(port).or_default().push((
                    r["method"].as_str().unwrap_or("").to_string(),
                    r["path"].as_str().unwrap_or("").to_string(),
                    r["idempotency_key"].as_str().map(str::to_string),
                ));
            }
            for conn in c["connections"].as_array().expect("connections") {
                let port =
                    u16::try_from(conn["client_port"].as_u64().expect("port")).expect("port");
                let events = got.get(&port).cloned().unwrap_or_default();
                let plain: Vec<u8> = events
                    .iter()
                    .filter_map(|e| match e {
                        TlsEvent::Data {
                            from_client: true,
                            bytes,
                        } => Some(bytes.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                let mine = requests(&plain);
                total += mine.len() as u64;
                assert_eq!(
                    mine,
                    want.get(&port).cloned().unwrap_or_default(),
                    "{name}, client port {port}: {events:?}"
                );
                // A connection tshark could not decrypt is said to be lost, not empty.
                if conn["keys_in_log"] == false {
                    assert!(
                        events.iter().any(|e| matches!(e, TlsEvent::Lost { .. })),
                        "{name}: {events:?}"
                    );
                }
                // The hello: the suite tshark names.
                let suite = events.iter().find_map(|e| match e {
                    TlsEvent::Hello { suite, .. } => Some(*suite),
                    _ => None,
                });
                assert!(suite.is_some(), "{name} {port}: no hello");
            }
        }
        assert_eq!(
            total, tshark_total,
            "every request tshark decrypted, and no other"
        );
        assert!(total >= 28, "{total}");
        assert!(
            full_only >= 3,
            "{full_only} recordings with full-handshake key logs"
        );
    }
}

mod read {
    //! `read --tls-keylog` on the recordings of `captures/tls/`: the alerts of the story each
    //! client played (a keyed charge, the key reused with another amount, a keyless charge),
    //! with the connection's TLS; without the key log, nothing is read as HTTP and stderr says
    //! how to give it; with the secrets injected into the pcapng, no option is needed. The key
    //! log's secrets never reach stdout or stderr.

    use std::path::PathBuf;

    use crate::support::{self, run_with};

    fn tls_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures/tls")
    }

    fn kinds(lines: &[serde_json::Value]) -> Vec<(String, Option<String>)> {
        lines
            .iter()
            .filter(|v| v["event_type"] == "alert")
            .map(|v| {
                (
                    v["kind"].as_str().unwrap_or("").to_string(),
                    v["request"]["tls"]["version"].as_str().map(str::to_string),
                )
            })
            .collect()
    }

    /// Every secret (hex) of a key log.
    fn secrets(keys: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(keys)
            .expect("key log")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_lowercase))
            .filter(|s| s.len() >= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect()
    }

    #[test]
    fn each_recording_gives_its_story_s_alerts_with_its_tls_and_no_secret() {
        for (name, version) in [
            ("curl-tls13-aes128", "TLS 1.3"),
            ("curl-tls13-aes256", "TLS 1.3"),
            ("curl-tls13-chacha", "TLS 1.3"),
            ("curl-tls12-aes128", "TLS 1.2"),
            ("curl-tls12-aes256", "TLS 1.2"),
            ("curl-tls12-chacha", "TLS 1.2"),
            ("curl-tls12-rsa-kex", "TLS 1.2"),
            ("requests-tls13", "TLS 1.3"),
            ("requests-tls12", "TLS 1.2"),
            ("curl-tls12-resumed", "TLS 1.2"),
            ("python-tls12-ticket-resumed", "TLS 1.2"),
            ("python-tls12-id-resumed", "TLS 1.2"),
            ("curl-tls13-lost-segment", "TLS 1.3"),
        ] {
            let pcap = tls_dir().join(format!("{name}.pcap"));
            let keys = tls_dir().join(format!("{name}.keys"));
            let (p, k) = (pcap.display().to_string(), keys.display().to_string());
            for threads in ["1", "2"] {
                let run = run_with(
                    &[
                        "read",
                        "--stats",
                        "--threads",
                        threads,
                        "--tls-keylog",
                        &k,
                        &p,
                    ],
                    None,
                    &[],
                );
                assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
                run.lines.iter().for_each(support::schema::check);
                assert_eq!(
                    kinds(&run.lines),
                    vec![
                        ("key_conflict".to_string(), Some(version.to_string())),
                        ("missing_key".to_string(), Some(version.to_string())),
                    ],
                    "{name}"
                );
                let st = &run.lines.last().expect("stats")["stats"];
                assert_eq!(st["tls_sessions_undecrypted"], 0, "{name}");
                assert_eq!(st["tls_sessions_decrypted"], st["tls_sessions"], "{name}");
                // The conflict's responses came through the same connections: they say so.
                let conflict = &run.lines[0];
                for r in ["response", "original_response"] {
                    assert_eq!(conflict[r]["tls"]["version"], version, "{name} {r}");
                }
                if name.ends_with("-lost-segment") {
                    // The segments after the lost one came before its retransmission.
                    assert_eq!(st["tcp_out_of_order_segments"], 1, "{name}: {st}");
                    assert_eq!(st["tcp_gaps"], 0, "{name}: {st}");
                }
                let text = format!("{}{}", run.stdout, run.stderr).to_lowercase();
                let secrets = secrets(&keys);
                assert!(!secrets.is_empty(), "{name}");
                for s in secrets {
                    assert!(!text.contains(&s), "{name}: a secret reached the output");
                }
            }
        }
    }

    #[test]
    fn resumed_sessions_decrypt_from_full_handshake_lines_alike_with_one_worker_or_two() {
        // Resumed by session ID (curl, Python against a server without tickets) and by ticket
        // (Python): the key log holds the first connection's line only.
        for name in [
            "curl-tls12-resumed",
            "python-tls12-id-resumed",
            "python-tls12-ticket-resumed",
        ] {
            let p = tls_dir().join(format!("{name}.pcap")).display().to_string();
            let all = tls_dir().join(format!("{name}.keys")).display().to_string();
            let full = tls_dir().join(format!("{name}.full-only.keys"));
            assert_eq!(
                std::fs::read_to_string(&full)
                    .expect("keys")
                    .lines()
                    .count(),
                1,
                "{name}"
            );
            let full = full.display().to_string();
            let read = |keys: &str, threads: &str| {
                let run = run_with(
                    &["read", "--threads", threads, "--tls-keylog", keys, &p],
                    None,
                    &[],
                );
                assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
                run
            };
            let want = read(&all, "1");
            assert_eq!(kinds(&want.lines).len(), 2, "{name}");
            for threads in ["1", "2"] {
                let got = read(&full, threads);
                // Byte for byte what the key log of every connection gives.
                assert_eq!(got.stdout, want.stdout, "{name}, {threads} threads");
            }
            let stats = |keys: &str| {
                let run = run_with(&["read", "--stats", "--tls-keylog", keys, &p], None, &[]);
                run.lines.last().expect("stats")["stats"].clone()
            };
            let st = stats(&full);
            assert_eq!(st["tls_sessions_decrypted"], 3, "{name}: {st}");
            assert_eq!(st["tls_sessions_resumed_by_cache"], 2, "{name}: {st}");
            assert_eq!(st["tls_session_cache_evicted"], 0, "{name}: {st}");
            // Near miss: each connection logged, the cache is not asked.
            let st = stats(&all);
            assert_eq!(st["tls_sessions_resumed_by_cache"], 0, "{name}: {st}");
        }
    }

    #[test]
    fn a_request_sent_as_0rtt_early_data_is_read_and_judged() {
        // openssl s_client: a keyed POST, then the same key with another amount as early
        // data on the resumed session.
        let p = tls_dir().join("openssl-tls13-early-data.pcap");
        let keys = tls_dir().join("openssl-tls13-early-data.keys");
        let (p, k) = (p.display().to_string(), keys.display().to_string());
        let mut outputs = Vec::new();
        for threads in ["1", "2"] {
            let run = run_with(
                &["read", "--threads", threads, "--tls-keylog", &k, &p],
                None,
                &[],
            );
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            assert_eq!(
                kinds(&run.lines),
                vec![("key_conflict".to_string(), Some("TLS 1.3".to_string()))]
            );
            outputs.push(run.stdout);
        }
        assert_eq!(outputs[0], outputs[1]);
        // Near miss: without CLIENT_EARLY_TRAFFIC_SECRET the early request is skipped, the
        // first still read.
        let dir = tempfile::tempdir().expect("tempdir");
        let no_early = dir.path().join("keys.log");
        let text = std::fs::read_to_string(&keys).expect("keys");
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("CLIENT_EARLY_TRAFFIC_SECRET"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&no_early, kept).expect("write");
        let n = no_early.display().to_string();
        let run = run_with(&["read", "--stats", "--tls-keylog", &n, &p], None, &[]);
        assert!(kinds(&run.lines).is_empty());
        let st = &run.lines.last().expect("stats")["stats"];
        assert_eq!(st["http_requests"], 1, "{st}");
        // The second connection's only plaintext was its early data (s_server answers
        // nothing): its keys were made, its early data skipped and counted.
        assert_eq!(st["tls_sessions_decrypted"], 2, "{st}");
        assert!(st["tls_early_data_skipped"].as_u64() >= Some(1), "{st}");
    }

    #[test]
    fn without_the_key_log_nothing_is_read_as_http_and_stderr_says_what_to_give() {
        let p = tls_dir()
            .join("curl-tls13-aes128.pcap")
            .display()
            .to_string();
        let run = run_with(&["read", "--stats", &p], None, &[]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(kinds(&run.lines).is_empty());
        let st = &run.lines.last().expect("stats")["stats"];
        assert_eq!(st["tls_sessions"], 2);
        assert_eq!(st["tls_undecrypted_no_secret"], 2);
        assert_eq!(st["http_requests"], 0, "never parsed as HTTP");
        assert!(
            run.stderr.contains("2 TLS connections were not decrypted")
                && run.stderr.contains("--tls-keylog"),
            "{}",
            run.stderr
        );
        // A key log that lacks one connection: that one alone is not decrypted.
        let p = tls_dir()
            .join("curl-tls13-missing-key.pcap")
            .display()
            .to_string();
        let k = tls_dir()
            .join("curl-tls13-missing-key.keys")
            .display()
            .to_string();
        let run = run_with(&["read", "--stats", "--tls-keylog", &k, &p], None, &[]);
        let st = &run.lines.last().expect("stats")["stats"];
        assert_eq!(
            (
                st["tls_sessions_decrypted"].as_u64(),
                st["tls_undecrypted_no_secret"].as_u64()
            ),
            (Some(1), Some(1)),
            "{st}"
        );
        // A bad line is skipped and counted, by its number only at -v, never its text.
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("keys.log");
        let mut text = std::fs::read(&k).expect("keys");
        text.extend_from_slice(b"CLIENT_RANDOM deadbeef not-a-secret-c0ffee\n");
        std::fs::write(&bad, &text).expect("write");
        let b = bad.display().to_string();
        let run = run_with(
            &["-v", "read", "--stats", "--tls-keylog", &b, &p],
            None,
            &[],
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let st = &run.lines.last().expect("stats")["stats"];
        assert_eq!(st["tls_keylog_bad_lines"], 1, "{st}");
        assert!(st["tls_keylog_secrets"].as_u64() > Some(0), "{st}");
        let lines = String::from_utf8_lossy(&text).lines().count();
        assert!(
            run.stderr.contains(&format!("line {lines}")),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("c0ffee"), "{}", run.stderr);
        // A key log that cannot be read: exit 2, naming it.
        let run = run_with(
            &["read", "--tls-keylog", "/nonexistent/keys.log", &p],
            None,
            &[],
        );
        assert_eq!(run.code, Some(2));
        assert!(
            run.stderr.contains("/nonexistent/keys.log"),
            "{}",
            run.stderr
        );
    }

    #[test]
    fn secrets_injected_into_the_pcapng_need_no_option() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = |f: &str| dir.path().join(f).display().to_string();
        let pcap = tls_dir()
            .join("curl-tls12-aes128.pcap")
            .display()
            .to_string();
        let keys = tls_dir()
            .join("curl-tls12-aes128.keys")
            .display()
            .to_string();
        super::editcap(&["-F", "pcapng", &pcap, &d("plain.pcapng")]);
        super::editcap(&[
            "--inject-secrets",
            &format!("tls,{keys}"),
            &d("plain.pcapng"),
            &d("keyed.pcapng"),
        ]);
        let run = run_with(&["read", &d("keyed.pcapng")], None, &[]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(
            kinds(&run.lines),
            vec![
                ("key_conflict".to_string(), Some("TLS 1.2".to_string())),
                ("missing_key".to_string(), Some("TLS 1.2".to_string())),
            ]
        );
        let none = run_with(&["read", &d("plain.pcapng")], None, &[]);
        assert!(kinds(&none.lines).is_empty());
    }
}

mod h2 {
    //! HTTP/2 over TLS (`captures/record_tls_h2.sh`: curl --http2 against nginx, three POSTs
    //! on one connection, two with one key and different amounts; tshark decrypts all three
    //! as HTTP/2 with the key log): the connection is decrypted and read as HTTP/2 from its
    //! first byte, in TLS 1.3 (ALPN in the encrypted EncryptedExtensions) and TLS 1.2 (ALPN in
    //! the ServerHello). Without the key log it is counted undecrypted.
    //!
    //! nginx answers these requests (`return 200`) before reading their bodies, then resets
    //! each stream with NO_ERROR (RFC 9113 section 8.1): the bodies were never whole for the
    //! server, so they are incomplete and no key_conflict is judged; the keyless POST is still
    //! missing_key.

    use crate::support::run_with;

    #[test]
    fn an_h2_connection_is_decrypted_and_read_as_http2() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/tls");
        for name in ["curl-h2-tls13", "curl-h2-tls12"] {
            let pcap = dir.join(format!("{name}.pcap")).display().to_string();
            let keys = dir.join(format!("{name}.keys")).display().to_string();
            let run = run_with(
                &["read", "--stats", "--tls-keylog", &keys, &pcap],
                None,
                &[],
            );
            assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
            let st = &run.lines.last().expect("stats")["stats"];
            assert_eq!(st["tls_sessions"], 1, "{name}: {st}");
            assert_eq!(st["tls_sessions_h2"], 1, "{name}");
            assert_eq!(st["tls_sessions_decrypted"], 1, "{name}");
            assert_eq!(st["tls_sessions_undecrypted"], 0, "{name}");
            assert_eq!(st["http2_connections"], 1, "{name}");
            assert_eq!(st["http2_streams"], 3, "{name}");
            assert_eq!(st["http_responses"], 3, "{name}");
            for zero in [
                "http_parse_errors",
                "http_resync_skipped_bytes",
                "http2_headers_undecodable",
                "http2_directions_lost",
            ] {
                assert_eq!(st[zero], 0, "{name}: {zero}");
            }
            let kinds: Vec<&str> = run
                .lines
                .iter()
                .filter(|l| l["event_type"] == "alert")
                .filter_map(|l| l["kind"].as_str())
                .collect();
            assert_eq!(kinds, ["missing_key"], "{name}");

            let blind = run_with(&["read", "--stats", &pcap], None, &[]);
            let st = &blind.lines.last().expect("stats")["stats"];
            assert_eq!(st["tls_sessions_undecrypted"], 1, "{name}: {st}");
            assert_eq!(st["tls_undecrypted_no_secret"], 1, "{name}");
            assert_eq!(st["http_requests"], 0, "{name}");
        }
    }
}
