//! Same story, every way: a client story told in plaintext and over TLS, over HTTP/1.1 and
//! over HTTP/2, gives the same alerts.
//! `captures/story-plain.pcap` and `captures/tls/story-tls.pcap` (with its key log) are one
//! `requests` story (`captures/clients/story.py`) recorded over http and over https; the
//! generated workload (`examples/workload.rs`) tells one story in both modes too.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::workload::workload::{self as generator, Target};

/// The alerts of `idemwatch read ARGS`, in output order.
fn alerts(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_idemwatch"))
        .arg("read")
        .args(args)
        .output()
        .expect("run idemwatch");
    assert!(
        out.status.success(),
        "idemwatch read {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .filter(|v| v["event_type"] == "alert")
        .collect()
}

/// What may differ between two recordings of one story: times, addresses and ports (and what
/// is made of them: flow ids, the Host header with its port, the scope that hashes it, the
/// file name), the `tls` object, the HTTP version (`protocol`), and what the server made up
/// for each response (resource ids, so the response bodies).
const NOT_THE_STORY: [&str; 14] = [
    "timestamp",
    "ts",
    "flow_id",
    "community_id",
    "src_ip",
    "dest_ip",
    "src_port",
    "dest_port",
    "host",
    "scope",
    "pcap_filename",
    "tls",
    "protocol",
    "resource_id",
];

/// An alert without what may differ; of the responses only status, completeness and the
/// replayed flag are kept.
fn story(alert: &Value) -> Value {
    fn strip(v: &mut Value) {
        if let Value::Object(m) = v {
            for k in NOT_THE_STORY {
                m.remove(k);
            }
            for (_, x) in m.iter_mut() {
                strip(x);
            }
        }
    }
    let mut a = alert.clone();
    strip(&mut a);
    for r in ["response", "original_response"] {
        if let Some(m) = a.get_mut(r).and_then(Value::as_object_mut) {
            m.retain(|k, _| matches!(k.as_str(), "status" | "body_complete" | "replayed"));
        }
    }
    a
}

/// Every request object of an alert (`request` and `original`).
fn requests(alert: &Value) -> impl Iterator<Item = &Value> {
    ["request", "original"]
        .into_iter()
        .filter_map(|r| alert.get(r))
        .filter(|r| r.is_object())
}

fn captures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

#[test]
fn a_story_recorded_over_http_and_over_https_gives_the_same_alerts() {
    let plain_file = captures().join("story-plain.pcap");
    let tls_file = captures().join("tls/story-tls.pcap");
    let keys = captures().join("tls/story-tls.keys");
    let plain = alerts(&[plain_file.to_str().expect("path")]);
    let tls = alerts(&[
        "--tls-keylog",
        keys.to_str().expect("path"),
        tls_file.to_str().expect("path"),
    ]);

    let kinds: Vec<&str> = plain.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "key_conflict",
            "missing_key",
            "missing_key",
            "keyless_duplicate"
        ],
        "the story's alerts"
    );
    assert_eq!(plain[0]["key"], "5707e1a5-0b0e-4a7d-9c55-7a1e5b07e000");
    assert_eq!(plain[0]["response"]["status"], 400);
    let plain_story: Vec<Value> = plain.iter().map(story).collect();
    let tls_story: Vec<Value> = tls.iter().map(story).collect();
    assert_eq!(tls_story, plain_story, "over TLS, other alerts");

    for a in &tls {
        for r in requests(a) {
            assert_eq!(r["tls"]["version"], "TLS 1.3", "{a}");
            assert_eq!(r["tls"]["sni"], "api.example.com", "{a}");
        }
    }
    for a in &plain {
        for r in requests(a) {
            assert!(r.get("tls").is_none(), "a plaintext request with tls: {a}");
        }
    }

    // Without its key log the TLS recording is not read as HTTP: no alert at all.
    assert!(alerts(&[tls_file.to_str().expect("path")]).is_empty());
}

/// One Python `httpx` story (`captures/clients/httpx-h2-story.py`) recorded over HTTP/1.1,
/// over HTTP/2 with prior knowledge, and over HTTP/2 in TLS (ALPN h2), through nginx to
/// `captures/server.py` (`captures/record_h2.sh`).
#[test]
fn a_story_recorded_over_http1_and_over_http2_gives_the_same_alerts() {
    let h2 = captures().join("h2");
    let path = |n: &str| h2.join(n).display().to_string();
    let h1 = alerts(&[&path("httpx-story-h1.pcap")]);
    let h2c = alerts(&[&path("httpx-story-h2.pcap")]);
    let h2tls = alerts(&[
        "--tls-keylog",
        &path("httpx-story-h2-tls.keys"),
        &path("httpx-story-h2-tls.pcap"),
    ]);
    let kinds: Vec<&str> = h1.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "key_conflict",
            "missing_key",
            "missing_key",
            "keyless_duplicate"
        ],
        "the story's alerts"
    );
    let h1_story: Vec<Value> = h1.iter().map(story).collect();
    assert_eq!(
        h2c.iter().map(story).collect::<Vec<_>>(),
        h1_story,
        "over HTTP/2 with prior knowledge, other alerts"
    );
    assert_eq!(
        h2tls.iter().map(story).collect::<Vec<_>>(),
        h1_story,
        "over HTTP/2 in TLS, other alerts"
    );
}

#[test]
fn the_generated_story_gives_the_same_alerts_in_both_modes() {
    let target = Target::Transactions(600);
    let (plain_pcap, truth) = generator::generate(9, target);
    let (tls_pcap, keys, _) = generator::generate_tls(9, target).expect("TLS workload");
    let dir = tempfile::tempdir().expect("temp dir");
    let (p, t, k) = (
        dir.path().join("plain.pcap"),
        dir.path().join("tls.pcap"),
        dir.path().join("tls.keys"),
    );
    std::fs::write(&p, plain_pcap).expect("write");
    std::fs::write(&t, tls_pcap).expect("write");
    std::fs::write(&k, keys).expect("write");
    let plain = alerts(&[p.to_str().expect("path")]);
    let tls = alerts(&[
        "--tls-keylog",
        k.to_str().expect("path"),
        t.to_str().expect("path"),
    ]);
    assert_eq!(
        plain.len() as u64,
        truth["total_alerts"].as_u64().expect("n")
    );
    // The generator keeps clients' addresses and ports: only the server's port (80, 443)
    // and times differ, and the scope and response bodies stay the same too.
    let plain_story: Vec<Value> = plain.iter().map(story).collect();
    let tls_story: Vec<Value> = tls.iter().map(story).collect();
    assert_eq!(tls_story, plain_story, "over TLS, other alerts");
    for (a, b) in plain.iter().zip(&tls) {
        assert_eq!(a["request"]["src_port"], b["request"]["src_port"]);
        assert_eq!(a["scope"], b["scope"]);
        assert_eq!(a["response"]["body_sha256"], b["response"]["body_sha256"]);
        assert_eq!(b["request"]["tls"]["sni"], "api.example.com");
        assert!(a["request"].get("tls").is_none());
    }
}
