//! Our own recordings (captures/, made by captures/record.sh with curl, Python requests and
//! the stripe library against captures/server.py): every transaction the server logged must
//! come out of `idemwatch read --log-requests`, with its key, status, resource id and replay
//! flag, and the output must be the same byte for byte on every run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures")
}

fn run(file: &PathBuf) -> (String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_idemwatch"))
        .args(["read", "-q", "--log-requests"])
        .arg(file)
        .output()
        .unwrap();
    (String::from_utf8(out.stdout).unwrap(), out.status.success())
}

type Key = (
    String,
    String,
    String,
    u64,
    u64,
    u64,
    Option<String>,
    Option<String>,
    bool,
    Vec<u64>,
    u64,
);

#[test]
fn every_recorded_transaction_is_found_with_its_key_and_result() {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(captures().join("EXPECTED.json")).unwrap()).unwrap();
    let caps = expected["captures"].as_object().unwrap();
    assert!(caps.len() >= 10, "EXPECTED.json lists the captures");
    for (name, c) in caps {
        let (stdout, ok) = run(&captures().join(name));
        assert!(ok, "{name}: exit status");
        let mut got: BTreeMap<Key, usize> = BTreeMap::new();
        for line in stdout.lines() {
            let e: Value = serde_json::from_str(line).unwrap();
            if e["event_type"] != "http" {
                continue;
            }
            let (q, r) = (&e["request"], &e["response"]);
            let k: Key = (
                q["method"].as_str().unwrap_or("").into(),
                q["host"].as_str().unwrap_or("").into(),
                q["path"].as_str().unwrap_or("").into(),
                q["body_len"].as_u64().unwrap_or(u64::MAX),
                r["status"].as_u64().unwrap_or(0),
                r["body_len"].as_u64().unwrap_or(u64::MAX),
                q["idempotency_key"].as_str().map(str::to_string),
                r["resource_id"].as_str().map(str::to_string),
                r["replayed"].as_bool().unwrap_or(false),
                r["interim_statuses"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default(),
                q["src_port"].as_u64().unwrap_or(0),
            );
            *got.entry(k).or_insert(0) += 1;
        }
        let mut want: BTreeMap<Key, usize> = BTreeMap::new();
        for t in c["transactions"].as_array().unwrap() {
            let k: Key = (
                t["method"].as_str().unwrap().into(),
                t["host"].as_str().unwrap_or("").into(),
                t["uri"].as_str().unwrap().into(),
                t["request_body_len"].as_u64().unwrap(),
                t["status"].as_u64().unwrap_or(0),
                t["response_body_len"].as_u64().unwrap_or(u64::MAX),
                t["idempotency_key"].as_str().map(str::to_string),
                t["resource_id"].as_str().map(str::to_string),
                t["replayed"].as_bool().unwrap_or(false),
                t["interim_statuses"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default(),
                t["client_port"].as_u64().unwrap(),
            );
            *want.entry(k).or_insert(0) += 1;
        }
        assert_eq!(
            got, want,
            "{name}: transactions differ from the server's log"
        );
    }
}

#[test]
fn output_is_the_same_byte_for_byte_on_every_run() {
    let bulk = captures().join("bulk.pcap");
    let (a, _) = run(&bulk);
    let (b, _) = run(&bulk);
    assert!(a.lines().count() > 1000);
    assert_eq!(a, b);
}

#[test]
fn pcapng_and_pcap_of_the_same_traffic_agree() {
    let (a, _) = run(&captures().join("requests-retry-same-key.pcap"));
    let (b, _) = run(&captures().join("requests-retry-same-key.pcapng"));
    let strip = |s: &str| -> Vec<Value> {
        s.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v["request"]["pcap_filename"] = Value::Null;
                v
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert!(!a.is_empty());
}

#[test]
fn stdin_reads_like_a_file() {
    use std::io::Write;
    use std::process::Stdio;
    let file = captures().join("curl-basic.pcap");
    let mut child = Command::new(env!("CARGO_BIN_EXE_idemwatch"))
        .args(["read", "-q", "--log-requests", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let (from_file, _) = run(&file);
    let norm = |s: &str| {
        s.replace("\"pcap_filename\":\"-\"", "")
            .replace(&format!("\"pcap_filename\":\"{}\"", file.display()), "")
    };
    assert_eq!(
        norm(&String::from_utf8(out.stdout).unwrap()),
        norm(&from_file)
    );
}

#[test]
fn several_files_are_merged_in_capture_time_order() {
    let a = captures().join("curl-basic.pcap");
    let b = captures().join("ipv6.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_idemwatch"))
        .args(["read", "-q", "--log-requests"])
        .arg(&b)
        .arg(&a)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (one, _) = run(&a);
    let (two, _) = run(&b);
    assert_eq!(
        stdout.lines().count(),
        one.lines().count() + two.lines().count()
    );
    let ts: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["timestamp"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut sorted = ts.clone();
    sorted.sort();
    assert_eq!(ts, sorted, "events follow capture time across files");
}
