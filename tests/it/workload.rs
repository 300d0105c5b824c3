//! The workload generator (`examples/workload.rs`) against idemwatch: on a generated capture,
//! idemwatch must see every transaction, count every plain retry and raise exactly the alerts
//! of the ground truth, by kind, and nothing else. The generator must be deterministic. Its TLS
//! mode tells the same story, and idemwatch must read it through the key log to the same truth.
//! Its HTTP/2 mode (cleartext, or TLS with ALPN h2) reads to the same truth too, and carries
//! the same exchanges, as idemwatch's frame reader and HPACK decoder and tshark read them.

// The example, included under its own name inside the `workload` test module (and used by
// `tls_story` too).
#[allow(dead_code, clippy::module_inception)]
#[path = "../../examples/workload.rs"]
pub(crate) mod workload;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use workload::Target;

/// Runs `idemwatch read --stats FILE`: alert counts by kind, and the stats object.
fn read(path: &Path) -> (BTreeMap<String, u64>, Value) {
    let (alerts, stats, _) = read_with(path, &[]);
    (alerts, stats)
}

/// Runs `idemwatch read --stats ARGS FILE`: alert counts by kind, the stats object, and stdout.
fn read_with(path: &Path, args: &[&str]) -> (BTreeMap<String, u64>, Value, Vec<u8>) {
    let out = Command::new(env!("CARGO_BIN_EXE_idemwatch"))
        .args(["read", "--stats"])
        .args(args)
        .arg(path)
        .output()
        .expect("run idemwatch");
    assert!(
        out.status.success(),
        "idemwatch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut alerts = BTreeMap::new();
    let mut stats = None;
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("one JSON object per line");
        match v["event_type"].as_str() {
            Some("alert") => {
                let kind = v["kind"].as_str().expect("kind").to_string();
                *alerts.entry(kind).or_insert(0) += 1;
            }
            Some("stats") => stats = Some(v["stats"].clone()),
            _ => {}
        }
    }
    (alerts, stats.expect("a stats line"), text.into_bytes())
}

fn count(v: &Value) -> u64 {
    v.as_u64().expect("a count")
}

#[test]
fn idemwatch_matches_the_ground_truth() {
    let (pcap, truth) = workload::generate(1, Target::Transactions(2000));
    assert_eq!(pcap.len() as u64, count(&truth["bytes"]));
    assert_eq!(count(&truth["transactions"]), 2000);
    // The capture exercises every kind it promises (and plain retries).
    for kind in ["key_conflict", "missing_key", "keyless_duplicate"] {
        assert!(count(&truth["alerts"][kind]) > 0, "no {kind} generated");
    }
    assert!(count(&truth["retries"]) > 0);

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("gen.pcap");
    std::fs::write(&file, &pcap).expect("write capture");
    let (alerts, stats) = read(&file);

    let expected: BTreeMap<String, u64> = truth["alerts"]
        .as_object()
        .expect("alerts object")
        .iter()
        .map(|(k, v)| (k.clone(), count(v)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(alerts, expected, "alerts by kind");
    assert_eq!(
        alerts.values().sum::<u64>(),
        count(&truth["total_alerts"]),
        "total alerts"
    );
    assert_eq!(
        count(&stats["http_transactions"]),
        count(&truth["transactions"])
    );
    assert_eq!(count(&stats["tracker_retries"]), count(&truth["retries"]));
    assert_eq!(count(&stats["tcp_gaps"]), 0);
    assert_eq!(count(&stats["packets"]), count(&truth["packets"]));
    assert_eq!(count(&stats["flows_created"]), count(&truth["connections"]));
    assert_eq!(count(&stats["bad_checksums"]), 0);
    assert_eq!(count(&stats["http_parse_errors"]), 0);
}

/// The sidecar less what TLS changes: the file's size, its packets and its last timestamp.
fn story(sidecar: &Value) -> Value {
    let mut v = sidecar.clone();
    let fields = v.as_object_mut().expect("sidecar object");
    for k in ["bytes", "packets", "capture_end_us", "tls"] {
        fields.remove(k);
    }
    v
}

#[test]
fn tls_mode_tells_the_same_story_and_reads_to_the_same_truth() {
    let target = Target::Transactions(1500);
    let (plain_pcap, plain) = workload::generate(4, target);
    let (pcap, keys, truth) = workload::generate_tls(4, target).expect("TLS workload");
    assert_eq!(story(&truth), story(&plain), "TLS changed the story");
    assert_eq!(count(&truth["tls"]["plain_bytes"]), count(&plain["bytes"]));
    assert_eq!(pcap.len() as u64, count(&truth["bytes"]));
    assert!(pcap.len() > plain_pcap.len());
    // Handshakes and close_notify: more packets, and a key log with five lines a connection.
    assert!(count(&truth["packets"]) > count(&plain["packets"]));
    assert_eq!(
        count(&truth["tls"]["keylog_lines"]),
        5 * count(&truth["connections"])
    );
    let resumed = count(&truth["tls"]["resumed_connections"]);
    assert!(resumed > 0 && resumed < count(&truth["connections"]));

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("gen-tls.pcap");
    let keylog = dir.path().join("gen-tls.keys");
    std::fs::write(&file, &pcap).expect("write capture");
    std::fs::write(&keylog, &keys).expect("write key log");
    let keylog = keylog.to_str().expect("UTF-8 path");

    // Without the key log, nothing is read as HTTP.
    let (alerts, stats, _) = read_with(&file, &[]);
    assert!(alerts.is_empty(), "{alerts:?}");
    assert_eq!(count(&stats["http_transactions"]), 0);
    assert_eq!(
        count(&stats["tls_undecrypted_no_secret"]),
        count(&truth["connections"])
    );

    let (alerts, stats, one) = read_with(&file, &["--tls-keylog", keylog, "--threads", "1"]);
    let expected: BTreeMap<String, u64> = truth["alerts"]
        .as_object()
        .expect("alerts object")
        .iter()
        .map(|(k, v)| (k.clone(), count(v)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(expected.len(), 3, "every kind generated: {expected:?}");
    assert_eq!(alerts, expected, "alerts by kind");
    assert_eq!(
        count(&stats["http_transactions"]),
        count(&truth["transactions"])
    );
    assert_eq!(count(&stats["tracker_retries"]), count(&truth["retries"]));
    assert_eq!(count(&stats["packets"]), count(&truth["packets"]));
    assert_eq!(count(&stats["flows_created"]), count(&truth["connections"]));
    assert_eq!(count(&stats["tls_sessions"]), count(&truth["connections"]));
    assert_eq!(count(&stats["tls_undecrypted_broken"]), 0);
    assert_eq!(count(&stats["tls_keylog_bad_lines"]), 0);
    assert_eq!(count(&stats["tcp_gaps"]), 0);
    assert_eq!(count(&stats["bad_checksums"]), 0);
    assert_eq!(count(&stats["http_parse_errors"]), 0);
    // Every request says it came over TLS 1.3 to api.example.com.
    for line in String::from_utf8_lossy(&one).lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        if v["event_type"] == "alert" {
            assert_eq!(v["request"]["tls"]["version"], "TLS 1.3", "{line}");
            assert_eq!(v["request"]["tls"]["sni"], "api.example.com", "{line}");
        }
    }

    let (_, _, two) = read_with(&file, &["--tls-keylog", keylog, "--threads", "2"]);
    assert!(one == two, "two workers gave other output than one");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, ta) = workload::generate(1, Target::Transactions(2000));
    let (b, tb) = workload::generate(1, Target::Transactions(2000));
    assert!(a == b, "same seed, different captures");
    assert_eq!(ta, tb);
    let (c, _) = workload::generate(2, Target::Transactions(2000));
    assert!(a != c, "another seed, same capture");
}

#[test]
fn size_target_is_reached_and_not_overshot_much() {
    let target = 3 << 20;
    let (a, truth) = workload::generate(5, Target::Bytes(target));
    let (b, _) = workload::generate(5, Target::Bytes(target));
    assert!(a == b);
    let len = a.len() as u64;
    assert_eq!(len, count(&truth["bytes"]));
    assert!(len >= target && len < target + (1 << 20), "{len} bytes");
    assert_eq!(count(&truth["size_target"]), target);
}

/// A size target counts the plaintext capture's bytes in both modes: the same transactions.
#[test]
fn tls_mode_size_target_is_the_plaintext_story() {
    let target = Target::Bytes(2 << 20);
    let (_, plain) = workload::generate(6, target);
    let (pcap, _, truth) = workload::generate_tls(6, target).expect("TLS workload");
    assert_eq!(story(&truth), story(&plain));
    assert_eq!(truth["tls"]["plain_bytes"], plain["bytes"]);
    assert!(pcap.len() as u64 > count(&plain["bytes"]));
}

#[test]
fn sizes_parse_with_suffixes() {
    assert_eq!(workload::parse_size("1G"), Some(1 << 30));
    assert_eq!(workload::parse_size("500m"), Some(500 << 20));
    assert_eq!(workload::parse_size("64KiB"), Some(64 << 10));
    assert_eq!(workload::parse_size("2MB"), Some(2 << 20));
    assert_eq!(workload::parse_size("1000"), Some(1000));
    assert_eq!(workload::parse_size("G"), None);
    assert_eq!(workload::parse_size("1X"), None);
}

/// Alerts of `idemwatch read FILE`, each identified by kind, key, client port and request time.
fn alert_ids(path: &Path) -> std::collections::BTreeSet<(String, String, u64, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_idemwatch"))
        .args(["read", "-q"])
        .arg(path)
        .output()
        .expect("run idemwatch");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event_type"] == "alert")
        .map(|v| {
            (
                v["kind"].as_str().unwrap_or("").to_string(),
                v["key"].as_str().unwrap_or("").to_string(),
                v["request"]["src_port"].as_u64().unwrap_or(0),
                v["request"]["ts"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The capture without a pseudo-random share of its packets (classic pcap, little-endian).
fn drop_packets(pcap: &[u8], per_mille: u64, seed: u64) -> Vec<u8> {
    let mut out = pcap[..24].to_vec();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        let end = (at + 16 + incl).min(pcap.len());
        // xorshift64*: a fixed sequence, independent of any crate.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33;
        if r % 1000 >= per_mille {
            out.extend_from_slice(&pcap[at..end]);
        }
        at = end;
    }
    out
}

/// A capture that lost packets (2 to 5 %: a busy SPAN port, a full kernel buffer) gives fewer alerts,
/// never other ones: every alert on the lossy capture is one the whole capture raises.
#[test]
fn packet_loss_hides_alerts_but_invents_none() {
    let (pcap, _) = workload::generate(3, Target::Transactions(4000));
    let dir = tempfile::tempdir().expect("temp dir");
    let whole = dir.path().join("whole.pcap");
    std::fs::write(&whole, &pcap).expect("write capture");
    let truth = alert_ids(&whole);
    assert!(truth.len() > 50);
    for (per_mille, seed) in [(20, 1), (50, 2), (50, 3)] {
        let lossy = dir.path().join(format!("lossy-{per_mille}-{seed}.pcap"));
        std::fs::write(&lossy, drop_packets(&pcap, per_mille, seed)).expect("write capture");
        let seen = alert_ids(&lossy);
        let invented: Vec<_> = seen.difference(&truth).collect();
        assert!(
            invented.is_empty(),
            "{} of {} alerts invented with {per_mille}‰ of packets lost (seed {seed}): {invented:#?}",
            invented.len(),
            seen.len()
        );
        assert!(seen.len() * 2 > truth.len(), "most alerts are still found");
    }
}

/// The sidecar less what HTTP/2 (and TLS) change.
fn h2_story(sidecar: &Value) -> Value {
    let mut v = story(sidecar);
    v.as_object_mut().expect("sidecar object").remove("h2");
    v
}

/// Each connection's two byte streams (client's, server's), in the order the connections
/// opened, from a generated capture (classic pcap, Ethernet, IPv4, in order and lossless).
fn tcp_streams(pcap: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut flows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut open: BTreeMap<([u8; 4], u16), usize> = BTreeMap::new();
    let mut at = 24;
    while let Some(rec) = pcap.get(at..at + 16) {
        let incl = u32::from_le_bytes(rec[8..12].try_into().expect("4 bytes")) as usize;
        let frame = &pcap[at + 16..at + 16 + incl];
        at += 16 + incl;
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let tcp = &ip[ihl..];
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let (sport, dport) = (
            u16::from_be_bytes([tcp[0], tcp[1]]),
            u16::from_be_bytes([tcp[2], tcp[3]]),
        );
        let from_client = dport == 80 || dport == 443;
        let client: ([u8; 4], u16) = if from_client {
            (ip[12..16].try_into().expect("4 bytes"), sport)
        } else {
            (ip[16..20].try_into().expect("4 bytes"), dport)
        };
        let payload = &tcp[usize::from(tcp[12] >> 4) * 4..total - ihl];
        if tcp[13] & 0x12 == 0x02 {
            open.insert(client, flows.len());
            flows.push((Vec::new(), Vec::new()));
        }
        let f = &mut flows[open[&client]];
        if from_client {
            f.0.extend_from_slice(payload);
        } else {
            f.1.extend_from_slice(payload);
        }
    }
    flows
}

/// One exchange as both protocols must show it: method, path, Authorization,
/// Idempotency-Key, request body; status and response body.
type Exchange = (String, String, String, String, Vec<u8>, String, Vec<u8>);

/// The exchanges of a plaintext HTTP/1.1 connection (the generator's own framing: heads,
/// then Content-Length or chunked bodies).
fn h1_exchanges(client: &[u8], server: &[u8]) -> Vec<Exchange> {
    /// First line, fields (lower-case names), body.
    type Message = (String, Vec<(String, String)>, Vec<u8>);
    fn messages(mut rest: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        while !rest.is_empty() {
            let end = rest
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("head end");
            let head = std::str::from_utf8(&rest[..end]).expect("UTF-8 head");
            rest = &rest[end + 4..];
            let mut lines = head.split("\r\n");
            let first = lines.next().expect("first line").to_string();
            let fields: Vec<(String, String)> = lines
                .map(|l| l.split_once(": ").expect("field"))
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect();
            let field = |n: &str| fields.iter().find(|f| f.0 == n).map(|f| f.1.clone());
            let mut body = Vec::new();
            if let Some(n) = field("content-length") {
                let n: usize = n.parse().expect("length");
                body = rest[..n].to_vec();
                rest = &rest[n..];
            } else if field("transfer-encoding").is_some() {
                loop {
                    let eol = rest
                        .windows(2)
                        .position(|w| w == b"\r\n")
                        .expect("size line");
                    let size = std::str::from_utf8(&rest[..eol]).expect("hex");
                    let n = usize::from_str_radix(size, 16).expect("chunk size");
                    rest = &rest[eol + 2..];
                    body.extend_from_slice(&rest[..n]);
                    rest = &rest[n + 2..];
                    if n == 0 {
                        break;
                    }
                }
            }
            out.push((first, fields, body));
        }
        out
    }
    let get = |fields: &[(String, String)], n: &str| {
        fields
            .iter()
            .find(|f| f.0 == n)
            .map_or(String::new(), |f| f.1.clone())
    };
    messages(client)
        .into_iter()
        .zip(messages(server))
        .map(|((line, rq, body), (status, _, rbody))| {
            let mut parts = line.split(' ');
            let method = parts.next().expect("method").to_string();
            let path = parts.next().expect("path").to_string();
            let status = status.split(' ').nth(1).expect("status").to_string();
            let (auth, key) = (get(&rq, "authorization"), get(&rq, "idempotency-key"));
            (method, path, auth, key, body, status, rbody)
        })
        .collect()
}

/// The exchanges of an HTTP/2 connection, read with idemwatch's own frame reader and HPACK
/// decoder (one per direction, the dynamic table carried over): stream by stream, in order.
fn h2_exchanges(client: &[u8], server: &[u8]) -> Vec<Exchange> {
    use idemwatch::http::h2::frame::{Event, FrameReader, Side};
    use idemwatch::http::h2::hpack::Decoder;
    type Streams = BTreeMap<u32, (Vec<(String, String)>, Vec<u8>)>;
    fn read(side: Side, bytes: &[u8]) -> Streams {
        let mut reader = FrameReader::new(side, 1 << 20);
        let mut decoder = Decoder::new();
        let mut streams = Streams::new();
        reader.push(bytes, |e| match e {
            Event::HeaderBlock { stream, block, .. } => {
                let s = streams.entry(stream).or_default();
                decoder
                    .decode(block, 1 << 20, |n, v, _| {
                        s.0.push((
                            String::from_utf8(n.to_vec()).expect("UTF-8 name"),
                            String::from_utf8(v.to_vec()).expect("UTF-8 value"),
                        ))
                    })
                    .expect("header block decodes");
            }
            Event::Data {
                stream, payload, ..
            } => streams
                .entry(stream)
                .or_default()
                .1
                .extend_from_slice(payload),
            Event::Error(e) => panic!("framing error: {e:?}"),
            _ => {}
        });
        assert!(reader.failed().is_none());
        streams
    }
    let get = |fields: &[(String, String)], n: &str| {
        fields
            .iter()
            .find(|f| f.0 == n)
            .map_or(String::new(), |f| f.1.clone())
    };
    let (requests, responses) = (read(Side::Client, client), read(Side::Server, server));
    assert_eq!(
        requests.keys().collect::<Vec<_>>(),
        responses.keys().collect::<Vec<_>>()
    );
    let ids: Vec<u32> = requests.keys().copied().collect();
    let expected: Vec<u32> = (0..ids.len() as u32).map(|k| 1 + 2 * k).collect();
    assert_eq!(ids, expected, "stream ids 1, 3, 5...");
    requests
        .into_values()
        .zip(responses.into_values())
        .map(|((rq, body), (rs, rbody))| {
            assert!(
                rq.iter()
                    .all(|(n, _)| n.bytes().all(|b| !b.is_ascii_uppercase()))
            );
            assert!(!rq.iter().any(|(n, _)| n == "connection" || n == "host"));
            (
                get(&rq, ":method"),
                get(&rq, ":path"),
                get(&rq, "authorization"),
                get(&rq, "idempotency-key"),
                body,
                get(&rs, ":status"),
                rbody,
            )
        })
        .collect()
}

/// HTTP/2 mode: the same story and, connection by connection, the same exchanges (method,
/// path, credential, key, bodies, status), read back through idemwatch's HPACK decoder; the
/// same bytes for the same seed.
#[test]
fn h2_mode_carries_the_same_exchanges_deterministically() {
    let target = Target::Transactions(1500);
    let (plain_pcap, plain) = workload::generate(4, target);
    let (pcap, truth) = workload::generate_h2(4, target).expect("HTTP/2 workload");
    let (again, _) = workload::generate_h2(4, target).expect("HTTP/2 workload");
    assert!(pcap == again, "same seed, other bytes");
    assert_eq!(h2_story(&truth), story(&plain), "HTTP/2 changed the story");
    assert_eq!(pcap.len() as u64, count(&truth["bytes"]));
    assert_eq!(count(&truth["h2"]["plain_bytes"]), count(&plain["bytes"]));
    assert_eq!(
        count(&truth["h2"]["streams"]),
        count(&truth["transactions"])
    );
    // The dynamic table at work: blocks well under the HTTP/1.1 heads.
    assert!(
        2 * count(&truth["h2"]["header_block_bytes"]) < count(&truth["h2"]["http1_head_bytes"])
    );

    let h1: Vec<Vec<Exchange>> = tcp_streams(&plain_pcap)
        .iter()
        .map(|(c, s)| h1_exchanges(c, s))
        .collect();
    let h2: Vec<Vec<Exchange>> = tcp_streams(&pcap)
        .iter()
        .map(|(c, s)| h2_exchanges(c, s))
        .collect();
    let total: usize = h2.iter().map(Vec::len).sum();
    assert_eq!(total as u64, count(&truth["transactions"]));
    assert_eq!(h1.len(), h2.len(), "connections");
    for (k, (a, b)) in h1.iter().zip(&h2).enumerate() {
        assert!(a == b, "connection {k}: the exchanges differ");
    }
}

/// A header block over the frame size goes on in CONTINUATION frames, END_STREAM on the
/// HEADERS frame and END_HEADERS on the last.
#[test]
fn long_header_blocks_continue_within_the_frame_size() {
    let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let mut out = Vec::new();
    let framed = workload::h2_headers(&mut out, 5, &block, true);
    assert_eq!((framed.frames, framed.continuation), (3, 2));
    let mut rest = &out[..];
    let mut frames = Vec::new();
    let mut payload = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        let stream = u32::from_be_bytes(rest[5..9].try_into().expect("4 bytes"));
        frames.push((len, rest[3], rest[4], stream));
        payload.extend_from_slice(&rest[9..9 + len]);
        rest = &rest[9 + len..];
    }
    assert_eq!(
        frames,
        [
            (16_384, 0x1, 0x1, 5),
            (16_384, 0x9, 0, 5),
            (7_232, 0x9, 0x4, 5)
        ]
    );
    assert_eq!(payload, block);

    let mut out = Vec::new();
    let framed = workload::h2_headers(&mut out, 1, b"\x82", false);
    assert_eq!((framed.frames, framed.continuation), (1, 0));
    assert_eq!(out, b"\0\0\x01\x01\x04\0\0\0\x01\x82");
}

/// A body over the frame size is cut into DATA frames of at most 16 KiB, only the last
/// ending the stream.
#[test]
fn long_bodies_are_cut_into_data_frames() {
    let body = vec![b'x'; 20_000];
    let mut out = Vec::new();
    let framed = workload::h2_data(&mut out, 3, &body, Some(&[0, 100, 20_000]));
    assert_eq!(framed.frames, 3);
    let (mut rest, mut seen) = (&out[..], Vec::new());
    while !rest.is_empty() {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        seen.push((len, rest[3], rest[4]));
        rest = &rest[9 + len..];
    }
    assert_eq!(seen, [(100, 0, 0), (16_384, 0, 0), (3_516, 0, 1)]);
}

/// tshark, an independent reader, sees one HTTP/2 request and one response per transaction,
/// in cleartext and through the key log over TLS with ALPN h2, and nothing malformed.
#[test]
fn tshark_reads_every_h2_exchange() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("tshark not installed: skipped");
        return;
    }
    let target = Target::Transactions(600);
    let dir = tempfile::tempdir().expect("temp dir");
    let (pcap, truth) = workload::generate_h2(8, target).expect("HTTP/2 workload");
    let clear = dir.path().join("h2.pcap");
    std::fs::write(&clear, &pcap).expect("write capture");
    let (pcap, keys, tls_truth) = workload::generate_h2_tls(8, target).expect("h2 over TLS");
    assert_eq!(h2_story(&tls_truth), h2_story(&truth));
    assert_eq!(tls_truth["tls"]["alpn"], "h2");
    let tls = dir.path().join("h2-tls.pcap");
    let keylog = dir.path().join("h2-tls.keys");
    std::fs::write(&tls, &pcap).expect("write capture");
    std::fs::write(&keylog, &keys).expect("write key log");
    let keylog = format!("tls.keylog_file:{}", keylog.display());
    // The header values of the packets `filter` selects, a line a packet.
    let tshark = |file: &Path, opts: &[&str], filter: &str| -> String {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(file)
            .args(opts)
            .args(["-Y", filter, "-T", "fields", "-e", "http2.header.value"])
            .args(["-E", "aggregator=|"])
            .output()
            .expect("run tshark");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let n = count(&truth["transactions"]);
    for (file, opts) in [
        (clear.as_path(), vec!["-d", "tcp.port==80,http2"]),
        (tls.as_path(), vec!["-o", keylog.as_str()]),
    ] {
        // A packet may hold more than one HEADERS frame: count the values that are in every
        // request's block (`:authority`) and every response's (`server`).
        let requests = tshark(
            file,
            &opts,
            "http2.type == 1 && http2.header.name == \":method\"",
        )
        .matches("|api.example.com|")
        .count() as u64;
        let responses = tshark(
            file,
            &opts,
            "http2.type == 1 && http2.header.name == \":status\"",
        )
        .matches("|nginx|")
        .count() as u64;
        assert_eq!((requests, responses), (n, n), "{}", file.display());
        let faults = "_ws.malformed || _ws.expert.severity >= 0x00600000";
        assert_eq!(tshark(file, &opts, faults).lines().count(), 0, "warnings");
    }
}

/// idemwatch reads the HTTP/2 workload, in cleartext and over TLS with ALPN h2, to the same
/// truth as the HTTP/1.1 one: every stream a transaction, the same retries and alerts.
#[test]
fn idemwatch_reads_the_h2_workload_to_the_same_truth() {
    let target = Target::Transactions(1500);
    let (pcap, truth) = workload::generate_h2(5, target).expect("HTTP/2 workload");
    let (tls_pcap, keys, tls_truth) = workload::generate_h2_tls(5, target).expect("h2 over TLS");
    let dir = tempfile::tempdir().expect("temp dir");
    let clear = dir.path().join("h2.pcap");
    let tls = dir.path().join("h2-tls.pcap");
    let keylog = dir.path().join("h2-tls.keys");
    std::fs::write(&clear, &pcap).expect("write capture");
    std::fs::write(&tls, &tls_pcap).expect("write capture");
    std::fs::write(&keylog, &keys).expect("write key log");
    let keylog = keylog.to_str().expect("UTF-8 path");
    let expected: BTreeMap<String, u64> = truth["alerts"]
        .as_object()
        .expect("alerts object")
        .iter()
        .map(|(k, v)| (k.clone(), count(v)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(expected.len(), 3, "every kind generated: {expected:?}");
    for (file, args, truth) in [
        (&clear, vec![], &truth),
        (&tls, vec!["--tls-keylog", keylog], &tls_truth),
    ] {
        let (alerts, stats, _) = read_with(file, &args);
        assert_eq!(alerts, expected, "{}: alerts by kind", file.display());
        let n = count(&truth["transactions"]);
        assert_eq!(count(&stats["http_transactions"]), n);
        assert_eq!(count(&stats["http2_streams"]), n);
        assert_eq!(
            count(&stats["http2_connections"]),
            count(&truth["connections"])
        );
        assert_eq!(count(&stats["tracker_retries"]), count(&truth["retries"]));
        assert_eq!(count(&stats["packets"]), count(&truth["packets"]));
        for zero in [
            "http2_hpack_errors",
            "http2_frame_errors",
            "http2_directions_lost",
            "http2_headers_undecodable",
            "http_parse_errors",
            "tcp_gaps",
        ] {
            assert_eq!(count(&stats[zero]), 0, "{zero}");
        }
    }
}
