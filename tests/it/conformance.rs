//! Conformance against the shared corpus of public captures (../shared/corpus), when present:
//! every transaction that Zeek, Suricata or tshark (hand-corrected at capture holes) found must
//! come out of `idemwatch read --log-requests`, and nothing more.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The rate reached so far; raise these as the reader improves, never lower them.
const MIN_MATCHED_TRANSACTIONS: usize = 1104;
const MIN_WHOLE_FILES: usize = 39;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// What a transaction must agree on.
type Key = (
    Option<String>, // method
    Option<String>, // host
    Option<String>, // uri
    Option<u64>,    // request body length
    Option<u64>,    // status
    Option<u64>,    // response body length
    Option<u64>,    // request body bytes missing (incomplete)
    Option<u64>,    // response body bytes missing (incomplete)
    Vec<u64>,       // interim statuses
);

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn expected_key(t: &Value) -> Key {
    (
        s(&t["method"]),
        s(&t["host"]),
        s(&t["uri"]),
        t["request_body_len"].as_u64(),
        t["status"].as_u64(),
        t["response_body_len"].as_u64(),
        t["request_body_missing_bytes"].as_u64(),
        t["response_body_missing_bytes"].as_u64(),
        t["interim_status"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
    )
}

fn actual_key(e: &Value) -> Key {
    let q = &e["request"];
    let r = &e["response"];
    (
        s(&q["method"]),
        s(&q["host"]),
        s(&q["path"]),
        q["body_len"].as_u64(),
        r["status"].as_u64(),
        r["body_len"].as_u64(),
        q["body_missing_bytes"].as_u64(),
        r["body_missing_bytes"].as_u64(),
        r["interim_statuses"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
    )
}

fn multiset(keys: Vec<Key>) -> BTreeMap<Key, usize> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

#[test]
fn corpus_transactions_match_the_reference_tools() {
    let dir = corpus_dir();
    let manifest = dir.join("MANIFEST.json");
    if !manifest.exists() {
        eprintln!("skipped: no corpus at {}", dir.display());
        return;
    }
    let m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let files = m["files"].as_array().expect("files");
    let (mut expected_total, mut matched_total, mut whole_files) = (0usize, 0usize, 0usize);
    let mut report = Vec::new();
    for f in files {
        let name = f["name"].as_str().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_idemwatch"))
            .args(["read", "-q", "--log-requests"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
        let actual: Vec<Key> = stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("every stdout line is JSON"))
            .filter(|e| e["event_type"] == "http")
            .map(|e| actual_key(&e))
            .collect();
        let expected: Vec<Key> = f["expected"]["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(expected_key)
            .collect();
        let (n_exp, n_act) = (expected.len(), actual.len());
        let (e, a) = (multiset(expected), multiset(actual));
        let matched: usize = e
            .iter()
            .map(|(k, n)| (*n).min(a.get(k).copied().unwrap_or(0)))
            .sum();
        expected_total += n_exp;
        matched_total += matched;
        let whole = matched == n_exp && n_act == n_exp && out.status.success();
        whole_files += usize::from(whole);
        if !whole {
            let missing: Vec<&Key> = e
                .iter()
                .filter(|(k, n)| a.get(*k).copied().unwrap_or(0) < **n)
                .map(|(k, _)| k)
                .take(3)
                .collect();
            let extra: Vec<&Key> = a
                .iter()
                .filter(|(k, n)| e.get(*k).copied().unwrap_or(0) < **n)
                .map(|(k, _)| k)
                .take(3)
                .collect();
            report.push(format!(
                "{name}: {matched}/{n_exp} matched, {n_act} written, exit {:?}\n  missing {missing:?}\n  extra {extra:?}",
                out.status.code()
            ));
        }
    }
    eprintln!(
        "corpus: {matched_total}/{expected_total} transactions ({:.1} %), {whole_files}/{} files whole",
        100.0 * matched_total as f64 / expected_total.max(1) as f64,
        files.len()
    );
    for r in &report {
        eprintln!("{r}");
    }
    assert!(
        matched_total >= MIN_MATCHED_TRANSACTIONS && whole_files >= MIN_WHOLE_FILES,
        "corpus conformance fell: {matched_total} transactions (need {MIN_MATCHED_TRANSACTIONS}), {whole_files} whole files (need {MIN_WHOLE_FILES})"
    );
}
