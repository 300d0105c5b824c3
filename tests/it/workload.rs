//! The workload generator (`examples/workload.rs`) against idemwatch: on a generated capture,
//! idemwatch must see every transaction, count every plain retry and raise exactly the alerts
//! of the ground truth, by kind, and nothing else. The generator must be deterministic. Its TLS
//! mode tells the same story, and idemwatch must read it through the key log to the same truth.

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
