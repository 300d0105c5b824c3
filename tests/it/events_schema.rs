//! docs/alert.schema.json against real output: every capture in captures/ (and the shared
//! corpus when it is there) read with --log-requests --stats, with and without --redact-keys;
//! each line is validated as it is parsed (tests/it/support). The other integration tests validate
//! what they read the same way.

use crate::support;

use std::path::PathBuf;

use serde_json::Value;
use support::run_with;

fn captures() -> Vec<PathBuf> {
    let mut v = Vec::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in [root.join("captures"), root.join("../shared/corpus")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng")
            ) {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

#[test]
fn every_event_of_every_capture_follows_the_schema() {
    let files = captures();
    assert!(
        files.len() >= 20,
        "captures/ holds {} captures",
        files.len()
    );
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for f in &files {
        let p = f.to_string_lossy();
        for extra in [&[][..], &["--redact-keys"][..]] {
            let mut args = vec!["read", "--log-requests", "--stats"];
            args.extend_from_slice(extra);
            args.push(&p);
            let run = run_with(&args, None, &[]);
            // Some corpus files are damaged on purpose: what was written before still counts.
            assert!(matches!(run.code, Some(0 | 1)), "{p}: {}", run.stderr);
            for v in &run.lines {
                // The schema leaves `protocol` optional for older lines; this build writes it
                // on every request object.
                for field in ["request", "original"] {
                    let r = &v[field];
                    if r.is_object() {
                        assert!(
                            r["protocol"].is_string(),
                            "{p}: {field} without protocol: {v}"
                        );
                        *seen
                            .entry(format!("protocol {}", r["protocol"]))
                            .or_default() += 1;
                    }
                }
                let t = v["event_type"].as_str().unwrap_or("").to_string();
                let t = match v.get("key_sha256") {
                    Some(_) => format!("{t} (redacted)"),
                    None => t,
                };
                *seen.entry(t).or_default() += 1;
            }
        }
    }
    for t in [
        "alert",
        "alert (redacted)",
        "http",
        "stats",
        "protocol \"HTTP/1.1\"",
    ] {
        assert!(
            seen.get(t).copied().unwrap_or(0) > 0,
            "no {t} event validated: {seen:?}"
        );
    }
    // A schema that accepted anything would pass the above: it must refuse a broken event.
    let good = run_with(&["read", captures_demo().as_str()], None, &[]);
    let mut bad: Value = good.lines[0].clone();
    bad["kind"] = Value::from("not_a_kind");
    assert!(
        std::panic::catch_unwind(|| support::schema::check(&bad)).is_err(),
        "the schema accepted an unknown kind"
    );
    let mut version = good.lines[0].clone();
    version["original"]["protocol"] = Value::from("HTTP/3");
    assert!(
        std::panic::catch_unwind(|| support::schema::check(&version)).is_err(),
        "the schema accepted an unknown protocol"
    );
    let mut extra = good.lines[0].clone();
    extra["request"]["authorization"] = Value::from("Bearer x");
    assert!(
        std::panic::catch_unwind(|| support::schema::check(&extra)).is_err(),
        "the schema accepted an undocumented field"
    );
}

fn captures_demo() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/captures/demo.pcap").to_string()
}
