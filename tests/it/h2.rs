//! HTTP/2 recordings of real clients (`captures/h2/`, made by `captures/record_h2.sh`: curl,
//! Go `net/http`, Python `httpx` and `h2`, Node's `http2`, against nginx or an `h2` server in
//! front of `captures/server.py`): every stream tshark dissects is one transaction of
//! idemwatch's, with the same method, path, key, status and HTTP version, connection by
//! connection; and a connection picked up after its start invents nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/h2")
}

/// The JSON lines of `idemwatch read --log-requests` on `pcap` (with its key log if any).
fn read(pcap: &Path, keys: Option<&Path>) -> Vec<Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idemwatch"));
    cmd.args(["read", "--log-requests", "--stats"]);
    if let Some(k) = keys {
        cmd.arg("--tls-keylog").arg(k);
    }
    let out = cmd.arg(pcap).output().expect("run idemwatch");
    assert!(
        out.status.success(),
        "idemwatch read {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .collect()
}

/// One exchange as both sides can tell it: method, path, key, final status, HTTP version.
type Exchange = (String, String, Option<String>, Option<u64>, String);

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

mod oracle {
    use super::*;

    /// tshark's streams (and HTTP/1.1 requests), per client port.
    fn tshark(capture: &Value) -> BTreeMap<u64, Vec<Exchange>> {
        let mut out = BTreeMap::new();
        for c in capture["connections"].as_array().expect("connections") {
            let port = c["client_port"].as_u64().expect("client_port");
            let list = c["streams"]
                .as_array()
                .or_else(|| c["requests"].as_array())
                .cloned()
                .unwrap_or_default();
            let h2 = matches!(c["protocol"].as_str(), Some("h2" | "h2c-upgrade"));
            let mut ex: Vec<Exchange> = list
                .iter()
                .map(|s| {
                    // The upgrading request of h2c was sent as HTTP/1.1.
                    let version = if h2 && s["upgraded_from_http1"] != true {
                        "HTTP/2"
                    } else {
                        "HTTP/1.1"
                    };
                    (
                        text(&s["method"]).expect("method"),
                        text(&s["path"]).expect("path"),
                        text(&s["idempotency_key"]),
                        s["status"].as_u64(),
                        version.to_string(),
                    )
                })
                .collect();
            ex.sort();
            out.insert(port, ex);
        }
        out
    }

    /// idemwatch's transactions, per client port.
    fn ours(lines: &[Value]) -> BTreeMap<u64, Vec<Exchange>> {
        let mut out: BTreeMap<u64, Vec<Exchange>> = BTreeMap::new();
        for e in lines.iter().filter(|e| e["event_type"] == "http") {
            let r = &e["request"];
            out.entry(r["src_port"].as_u64().expect("src_port"))
                .or_default()
                .push((
                    text(&r["method"]).expect("method"),
                    text(&r["path"]).expect("path"),
                    text(&r["idempotency_key"]),
                    e["response"]["status"].as_u64(),
                    text(&r["protocol"]).expect("protocol"),
                ));
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }

    #[test]
    fn every_stream_tshark_dissects_is_one_transaction_with_the_same_request_and_status() {
        let oracle: Value = serde_json::from_str(
            &std::fs::read_to_string(dir().join("TSHARK.json")).expect("TSHARK.json"),
        )
        .expect("JSON");
        let captures = oracle["captures"].as_object().expect("captures");
        assert!(captures.len() >= 10, "the h2 recordings are there");
        let mut streams = 0;
        for (name, capture) in captures {
            let keys = capture["keys"].as_str().map(|k| dir().join(k));
            let lines = read(&dir().join(name), keys.as_deref());
            let mut want = tshark(capture);
            // Connections with nothing on them (a spare TLS connection) have no transactions.
            want.retain(|_, v| !v.is_empty());
            let got = ours(&lines);
            assert_eq!(got, want, "{name}: idemwatch's exchanges against tshark's");
            streams += want.values().map(Vec::len).sum::<usize>();
            let stats = lines
                .iter()
                .find(|e| e["event_type"] == "stats")
                .expect("stats");
            let h2 = capture["connections"]
                .as_array()
                .expect("connections")
                .iter()
                .filter(|c| matches!(c["protocol"].as_str(), Some("h2" | "h2c-upgrade")))
                .count() as u64;
            // A TLS connection that chose h2 counts even when no frame followed (Go opens
            // spare ones and closes them after the handshake); tshark names no protocol then.
            let conns = capture["connections"].as_array().map_or(0, Vec::len) as u64;
            let ours_h2 = stats["stats"]["http2_connections"].as_u64().unwrap_or(0);
            assert!(
                h2 <= ours_h2 && ours_h2 <= conns,
                "{name}: {ours_h2} h2 connections"
            );
            for counter in [
                "http2_headers_undecodable",
                "http2_directions_lost",
                "http_parse_errors",
                "tcp_gaps",
            ] {
                assert_eq!(stats["stats"][counter], 0, "{name}: {counter}");
            }
        }
        assert!(streams >= 50, "{streams} exchanges compared");
    }
}

mod pickup {
    use super::*;

    /// `src` without its packets up to and including the first one that carries the client's
    /// connection preface: the capture starts after the connection did.
    fn cut_after_preface(src: &Path, dst: &Path) -> usize {
        let mut cap = pcap::Capture::from_file(src).expect("open pcap");
        let mut save = cap.savefile(dst).expect("savefile");
        let mut seen = false;
        let mut kept = 0;
        while let Ok(p) = cap.next_packet() {
            if !seen {
                seen = p
                    .data
                    .windows(b"PRI * HTTP/2.0".len())
                    .any(|w| w == b"PRI * HTTP/2.0");
                continue;
            }
            save.write(&p);
            kept += 1;
        }
        kept
    }

    #[test]
    fn a_connection_picked_up_after_its_preface_gives_no_transaction_and_no_alert() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cut = tmp.path().join("late.pcap");
        let kept = cut_after_preface(&dir().join("httpx-story-h2.pcap"), &cut);
        assert!(kept > 20, "{kept} packets after the preface");
        let lines = read(&cut, None);
        let events: Vec<&Value> = lines
            .iter()
            .filter(|e| matches!(e["event_type"].as_str(), Some("http" | "alert")))
            .collect();
        assert!(events.is_empty(), "nothing invented: {events:?}");
        // The whole capture has the story (the near miss).
        let whole = read(&dir().join("httpx-story-h2.pcap"), None);
        assert!(whole.iter().any(|e| e["event_type"] == "alert"));
    }
}
