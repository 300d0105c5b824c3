//! Alerts of the built binary on our own recordings, against `captures/ALERTS.json`.
//!
//! Takes every capture in `captures/` with the options ALERTS.json gives it, runs
//! `idemwatch read -q`, and compares the alert lines with the alerts the spec requires, zero
//! included; checks the shape of the alert contract (SPEC.md, "The alert contract"),
//! `--redact-keys`, and that the alerts do not depend on the link layer, the file format,
//! duplicated segments or segments out of order by one. Rewritten captures keep the IP/TCP bytes
//! of the recording and are written with the pcap/pcapng writers of `tests/it/support`.
//! Leaves out the HTTP details of each transaction (tests/it/captures.rs) and hand-built traffic
//! (tests/it/reassembly.rs, tests/it/decode_encapsulations.rs).

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{Format, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, Link, Packet, Run, run_with};

/// Every kind of the contract with its severity word (SPEC.md, "Kinds").
const KINDS: [(&str, &str); 12] = [
    ("key_conflict", "high"),
    ("key_reencoded", "low"),
    ("key_churn", "high"),
    ("keyless_duplicate", "high"),
    ("missing_key", "low"),
    ("late_retry", "medium"),
    ("invalid_key", "medium"),
    ("conflict_accepted", "critical"),
    ("conflict_replayed", "medium"),
    ("replay_mismatch", "critical"),
    ("replay_drift", "low"),
    ("concurrent_reuse", "medium"),
];

/// Captures with alerts (every Ethernet one raising alerts with default options) whose
/// rewritten forms must raise the same alerts.
const REWRITTEN: [&str; 13] = [
    "demo.pcap",
    "requests-key-conflict.pcap",
    "requests-concurrent.pcap",
    "requests-key-churn.pcap",
    "requests-keyless-duplicate.pcap",
    "requests-conflict-accepted.pcap",
    "requests-conflict-replayed.pcap",
    "requests-key-reencoded.pcap",
    "requests-no-idempotency.pcap",
    "requests-replay-drift.pcap",
    "requests-invalid-keys.pcap",
    "raw-pipelined-chunked.pcap",
    "ipv6.pcap",
];

const VLAN_ID: u16 = 42;

// ---------------------------------------------------------------------------------------------
// Captures, ALERTS.json and runs
// ---------------------------------------------------------------------------------------------

fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures")
}

/// `captures/ALERTS.json`, parsed.
fn alerts_json() -> Value {
    let path = captures_dir().join("ALERTS.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Name, options and expected alerts of every capture in ALERTS.json.
fn expected_captures() -> Vec<(String, Vec<String>, Vec<Value>)> {
    let doc = alerts_json();
    let captures = doc["captures"]
        .as_object()
        .expect("ALERTS.json has a captures object");
    captures
        .iter()
        .map(|(name, c)| {
            let options = c["options"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: options is a list"))
                .iter()
                .map(|o| o.as_str().expect("options are strings").to_owned())
                .collect();
            let alerts = c["alerts"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: alerts is a list"))
                .clone();
            (name.clone(), options, alerts)
        })
        .collect()
}

/// `idemwatch read -q OPTIONS FILE`.
fn read(file: &Path, options: &[&str]) -> Run {
    let file = file.to_str().expect("UTF-8 path");
    let mut args = vec!["read", "-q"];
    args.extend_from_slice(options);
    args.push(file);
    run_with(&args, None, &[])
}

/// [`read`] of a capture in `captures/`, with its options given as owned strings.
fn read_capture(name: &str, options: &[String]) -> Run {
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    read(&captures_dir().join(name), &options)
}

fn alert_lines(run: &Run) -> Vec<&Value> {
    run.lines
        .iter()
        .filter(|l| l["event_type"] == "alert")
        .collect()
}

fn http_lines(run: &Run) -> Vec<&Value> {
    run.lines
        .iter()
        .filter(|l| l["event_type"] == "http")
        .collect()
}

/// What identifies an HTTP transaction across runs.
type TransactionId = (Option<String>, Option<String>, Option<String>, Option<u64>);

/// `(method, path, idempotency key, response status)` of every `"http"` line, as a multiset.
fn transactions(run: &Run) -> BTreeMap<TransactionId, usize> {
    multiset(http_lines(run).into_iter().map(|t| {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        (
            text(&t["request"]["method"]),
            text(&t["request"]["path"]),
            text(&t["request"]["idempotency_key"]),
            t["response"]["status"].as_u64(),
        )
    }))
}

fn run_failure(name: &str, run: &Run) -> Option<String> {
    (run.code != Some(0)).then(|| {
        format!(
            "{name}: exit status {:?}, stderr:\n{}",
            run.code, run.stderr
        )
    })
}

/// What identifies an alert across runs: kind, key, the request's method, path and source port,
/// and `all_keys` where several key header lines were sent.
type AlertId = (
    String,
    Option<String>,
    String,
    String,
    u64,
    Option<Vec<String>>,
);

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_owned))
            .collect()
    })
}

fn id_of_alert(a: &Value) -> AlertId {
    let r = &a["request"];
    (
        a["kind"].as_str().unwrap_or("<no kind>").to_owned(),
        a["key"].as_str().map(str::to_owned),
        r["method"].as_str().unwrap_or("<no method>").to_owned(),
        r["path"].as_str().unwrap_or("<no path>").to_owned(),
        r["src_port"].as_u64().unwrap_or(0),
        strings(&a["all_keys"]),
    )
}

fn id_of_expected(a: &Value) -> AlertId {
    (
        a["kind"].as_str().expect("expected kind").to_owned(),
        a["key"].as_str().map(str::to_owned),
        a["method"].as_str().expect("expected method").to_owned(),
        a["path"].as_str().expect("expected path").to_owned(),
        a["src_port"].as_u64().expect("expected src_port"),
        strings(&a["all_keys"]),
    )
}

fn multiset<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// What `a` holds beyond `b`, with counts.
fn excess<T: Ord + std::fmt::Debug>(a: &BTreeMap<T, usize>, b: &BTreeMap<T, usize>) -> String {
    let lines: Vec<String> = a
        .iter()
        .filter_map(|(k, n)| {
            let extra = n.saturating_sub(b.get(k).copied().unwrap_or(0));
            (extra > 0).then(|| format!("\n    {extra} x {k:?}"))
        })
        .collect();
    if lines.is_empty() {
        " none".into()
    } else {
        lines.concat()
    }
}

/// `(kind, key)` of every alert of a run, as a multiset.
fn kinds_and_keys(run: &Run) -> BTreeMap<(String, Option<String>), usize> {
    multiset(alert_lines(run).into_iter().map(|a| {
        (
            a["kind"].as_str().unwrap_or("<no kind>").to_owned(),
            a["key"].as_str().map(str::to_owned),
        )
    }))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: RFC 3339, UTC, microseconds.
fn is_rfc3339_micros_utc(s: &str) -> bool {
    const PATTERN: &[u8] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    s.len() == PATTERN.len()
        && s.bytes().zip(PATTERN).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == *p,
        })
}

fn sha256_hex(data: &[u8]) -> String {
    support::hex(&Sha256::digest(data))
}

// ---------------------------------------------------------------------------------------------
// Reading and rewriting a recording
// ---------------------------------------------------------------------------------------------

/// The packets of a little-endian µs pcap with Ethernet frames (what tcpdump on Linux loopback
/// writes); panics on anything else.
fn read_ethernet_pcap(path: &Path) -> Vec<Packet> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let u32_at = |at: usize| -> u32 {
        let b: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .unwrap_or_else(|| panic!("{}: truncated at byte {at}", path.display()));
        u32::from_le_bytes(b)
    };
    assert_eq!(
        u32_at(0),
        0xa1b2_c3d4,
        "{}: little-endian µs pcap expected",
        path.display()
    );
    assert_eq!(
        u32_at(20),
        LINKTYPE_ETHERNET,
        "{}: Ethernet link type expected",
        path.display()
    );
    let mut packets = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let (secs, micros) = (u64::from(u32_at(at)), u64::from(u32_at(at + 4)));
        let caplen = u32_at(at + 8) as usize;
        let orig_len = u32_at(at + 12) as usize;
        let data = bytes
            .get(at + 16..at + 16 + caplen)
            .unwrap_or_else(|| panic!("{}: record at {at} cut short", path.display()))
            .to_vec();
        packets.push(Packet {
            ts_ns: secs * 1_000_000_000 + micros * 1000,
            data,
            orig_len,
        });
        at += 16 + caplen;
    }
    packets
}

/// One end of a TCP connection: IP address bytes and port.
type Endpoint = (Vec<u8>, u16);

/// The TCP facts of an Ethernet frame that rewriting needs.
struct TcpFacts {
    src: Endpoint,
    dst: Endpoint,
    flags: u8,
    payload_len: usize,
}

/// Source, destination, flags and payload length of an untagged Ethernet frame carrying
/// IPv4 (without fragments) or IPv6 (without extension headers) and TCP.
fn tcp_facts(frame: &[u8]) -> Option<TcpFacts> {
    let ip = frame.get(14..)?;
    let (header_len, total_len, src, dst) = match frame.get(12..14)? {
        [0x08, 0x00] => {
            if *ip.get(9)? != 6 {
                return None;
            }
            (
                usize::from(ip.first()? & 0x0f) * 4,
                usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?])),
                ip.get(12..16)?,
                ip.get(16..20)?,
            )
        }
        [0x86, 0xdd] => {
            if *ip.get(6)? != 6 {
                return None;
            }
            (
                40,
                40 + usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?])),
                ip.get(8..24)?,
                ip.get(24..40)?,
            )
        }
        _ => return None,
    };
    let tcp = ip.get(header_len..)?;
    let port = |at: usize| Some(u16::from_be_bytes([*tcp.get(at)?, *tcp.get(at + 1)?]));
    let tcp_header_len = usize::from(tcp.get(12)? >> 4) * 4;
    Some(TcpFacts {
        src: (src.to_vec(), port(0)?),
        dst: (dst.to_vec(), port(2)?),
        flags: *tcp.get(13)?,
        payload_len: total_len.checked_sub(header_len + tcp_header_len)?,
    })
}

fn facts(p: &Packet) -> TcpFacts {
    tcp_facts(&p.data).unwrap_or_else(|| {
        panic!(
            "not an Ethernet/IP/TCP frame: {}",
            support::hex(&p.data[..p.data.len().min(64)])
        )
    })
}

/// The same frames with an 802.1Q tag (VLAN 42) after the MAC addresses.
fn vlan_tagged(packets: &[Packet]) -> Vec<Packet> {
    packets
        .iter()
        .map(|p| {
            let (macs, rest) = p.data.split_at(12);
            let mut data = macs.to_vec();
            data.extend_from_slice(&0x8100u16.to_be_bytes());
            data.extend_from_slice(&VLAN_ID.to_be_bytes());
            data.extend_from_slice(rest);
            Packet {
                ts_ns: p.ts_ns,
                data,
                orig_len: p.orig_len + 4,
            }
        })
        .collect()
}

/// The same IP packets behind a Linux cooked v2 header; packets from the side that opened the
/// connection are marked outgoing.
fn sll2_framed(packets: &[Packet]) -> Vec<Packet> {
    let clients: BTreeSet<Endpoint> = packets
        .iter()
        .map(facts)
        .filter(|f| f.flags & support::SYN != 0 && f.flags & support::ACK == 0)
        .map(|f| f.src)
        .collect();
    packets
        .iter()
        .map(|p| {
            let outgoing = clients.contains(&facts(p).src);
            let data = support::frame(&Link::Sll2, &[], outgoing, &p.data[14..]);
            Packet {
                ts_ns: p.ts_ns,
                orig_len: p.orig_len - p.data.len() + data.len(),
                data,
            }
        })
        .collect()
}

/// Every pair of adjacent payload-carrying segments (no other payload-carrying segment between
/// them) of the same flow and direction swapped, each pair once, keeping the capture times in
/// file order; then every payload-carrying segment followed by a copy of itself. Returns the
/// packets, the number of pairs swapped and the number of copies.
fn reordered_and_duplicated(packets: &[Packet]) -> (Vec<Packet>, usize, usize) {
    let all: Vec<TcpFacts> = packets.iter().map(facts).collect();
    let with_payload: Vec<usize> = (0..packets.len())
        .filter(|&i| all[i].payload_len > 0)
        .collect();
    let mut swapped = packets.to_vec();
    let mut swaps = 0;
    let mut i = 0;
    while i + 1 < with_payload.len() {
        let (a, b) = (with_payload[i], with_payload[i + 1]);
        if all[a].src == all[b].src && all[a].dst == all[b].dst {
            let first = std::mem::replace(&mut swapped[a].data, packets[b].data.clone());
            swapped[b].data = first;
            swapped[a].orig_len = packets[b].orig_len;
            swapped[b].orig_len = packets[a].orig_len;
            swaps += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(swapped.len() + with_payload.len());
    let mut copies = 0;
    for p in swapped {
        let has_payload = facts(&p).payload_len > 0;
        out.push(p.clone());
        if has_payload {
            out.push(p);
            copies += 1;
        }
    }
    (out, swaps, copies)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_capture_raises_exactly_its_expected_alerts() {
    let expected = expected_captures();
    let listed: BTreeSet<String> = expected.iter().map(|(n, _, _)| n.clone()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(captures_dir())
        .expect("captures/ is readable")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    assert_eq!(
        on_disk, listed,
        "ALERTS.json must list exactly the captures in captures/"
    );
    let total: usize = expected.iter().map(|(_, _, a)| a.len()).sum();
    assert!(
        total > 0 && expected.iter().any(|(_, _, a)| a.is_empty()),
        "ALERTS.json holds captures with alerts and captures without"
    );

    let mut failures = Vec::new();
    for (name, options, alerts) in &expected {
        let run = read_capture(name, options);
        failures.extend(run_failure(name, &run));
        let want = multiset(alerts.iter().map(id_of_expected));
        let got = multiset(alert_lines(&run).into_iter().map(id_of_alert));
        if got != want {
            failures.push(format!(
                "{name} {options:?}: {} alerts expected, {} raised\n  missing:{}\n  extra:{}",
                alerts.len(),
                got.values().sum::<usize>(),
                excess(&want, &got),
                excess(&got, &want)
            ));
        }
    }

    // With the default 24 h window the retry 1.5 s later is a plain retry: no alert at all.
    let run = read_capture("late-retry.pcap", &[]);
    failures.extend(run_failure("late-retry.pcap (default window)", &run));
    let raised: Vec<AlertId> = alert_lines(&run).into_iter().map(id_of_alert).collect();
    if !raised.is_empty() {
        failures.push(format!(
            "late-retry.pcap with the default window must raise nothing, raised {raised:?}"
        ));
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Everything wrong with the shape of one alert line, per the contract.
fn contract_violations(a: &Value) -> Vec<String> {
    const REQUIRED: [&str; 9] = [
        "timestamp",
        "event_type",
        "kind",
        "severity",
        "key",
        "scope",
        "message",
        "alert",
        "request",
    ];
    const OPTIONAL: [&str; 4] = ["original", "response", "original_response", "all_keys"];
    let mut bad = Vec::new();
    let Some(fields) = a.as_object() else {
        return vec!["not an object".into()];
    };
    for f in REQUIRED {
        if !fields.contains_key(f) {
            bad.push(format!("missing field {f}"));
        }
    }
    for f in fields.keys() {
        if !REQUIRED.contains(&f.as_str()) && !OPTIONAL.contains(&f.as_str()) {
            bad.push(format!("field {f} is not in the contract"));
        }
    }
    if !a["timestamp"].as_str().is_some_and(is_rfc3339_micros_utc) {
        bad.push(format!(
            "timestamp {} is not RFC 3339 UTC with µs",
            a["timestamp"]
        ));
    }
    let kind = a["kind"].as_str().unwrap_or("");
    let severity = a["severity"].as_str().unwrap_or("");
    match KINDS.iter().find(|(k, _)| *k == kind) {
        None => bad.push(format!("kind {} is not a kind of the contract", a["kind"])),
        Some((_, word)) if *word != severity => {
            bad.push(format!("severity {severity:?}, the spec gives {word:?}"))
        }
        Some(_) => {}
    }
    let severity_int = match severity {
        "critical" => Some(1),
        "high" => Some(2),
        "medium" => Some(3),
        "low" => Some(4),
        _ => None,
    };
    if severity_int.is_none() {
        bad.push(format!(
            "severity {} is not critical/high/medium/low",
            a["severity"]
        ));
    }
    if !(a["key"].is_string() || a["key"].is_null()) {
        bad.push(format!("key {} is neither a string nor null", a["key"]));
    }
    if !a["scope"].as_str().is_some_and(|s| is_hex(s, 8)) {
        bad.push(format!("scope {} is not 8 hex characters", a["scope"]));
    }
    let message = a["message"].as_str().unwrap_or("");
    if message.is_empty() {
        bad.push(format!(
            "message {} is not a non-empty string",
            a["message"]
        ));
    }
    let alert = &a["alert"];
    let alert_fields: BTreeSet<&str> = alert
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let contract_fields = BTreeSet::from(["signature_id", "signature", "category", "severity"]);
    if alert_fields != contract_fields {
        bad.push(format!(
            "alert object has fields {alert_fields:?}, the contract {contract_fields:?}"
        ));
    }
    if !alert["signature_id"].is_u64() {
        bad.push(format!(
            "alert.signature_id {} is not an integer",
            alert["signature_id"]
        ));
    }
    if alert["signature"] != message {
        bad.push(format!(
            "alert.signature {} differs from message {message:?}",
            alert["signature"]
        ));
    }
    if alert["category"] != "idempotency" {
        bad.push(format!(
            "alert.category {} is not \"idempotency\"",
            alert["category"]
        ));
    }
    if alert["severity"].as_u64() != severity_int {
        bad.push(format!(
            "alert.severity {} does not match severity {severity:?}",
            alert["severity"]
        ));
    }
    let r = &a["request"];
    if !r.is_object() {
        bad.push("request is not an object".into());
    } else {
        for f in ["method", "path"] {
            if !r[f].is_string() {
                bad.push(format!("request.{f} {} is not a string", r[f]));
            }
        }
        if !r["src_port"].is_u64() {
            bad.push(format!(
                "request.src_port {} is not a number",
                r["src_port"]
            ));
        }
        if !r["ts"].as_str().is_some_and(is_rfc3339_micros_utc) {
            bad.push(format!(
                "request.ts {} is not RFC 3339 UTC with µs",
                r["ts"]
            ));
        }
        match r.get("idempotency_key") {
            None => bad.push("request.idempotency_key is absent".into()),
            Some(k) if *k != a["key"] => bad.push(format!(
                "request.idempotency_key {k} differs from key {}",
                a["key"]
            )),
            Some(_) => {}
        }
    }
    // SPEC "HTTP/2": request objects carry `protocol`, on every protocol.
    for f in ["request", "original"] {
        let p = fields.get(f).map(|r| &r["protocol"]);
        if p.is_some_and(|p| {
            !["HTTP/1.0", "HTTP/1.1", "HTTP/2"].contains(&p.as_str().unwrap_or(""))
        }) {
            bad.push(format!("{f}.protocol {:?} is not an HTTP version", p));
        }
    }
    for f in ["original", "response", "original_response"] {
        if let Some(v) = fields.get(f).filter(|v| !v.is_object()) {
            bad.push(format!("{f} is present but not an object: {v}"));
        }
    }
    if let Some(v) = fields.get("all_keys") {
        let ok = v
            .as_array()
            .is_some_and(|keys| keys.len() >= 2 && keys.iter().all(Value::is_string));
        if !ok {
            bad.push(format!("all_keys {v} is not a list of several keys"));
        }
    }
    match kind {
        "key_conflict" | "conflict_accepted" => {
            for f in ["original", "response"] {
                if !a[f].is_object() {
                    bad.push(format!("{kind} carries no {f}"));
                }
            }
        }
        "missing_key" if fields.contains_key("original") => {
            bad.push("missing_key carries an original".into());
        }
        _ => {}
    }
    bad
}

#[test]
fn alerts_follow_the_contract_shape() {
    let mut failures = Vec::new();

    let demo = read_capture("demo.pcap", &[]);
    failures.extend(run_failure("demo.pcap", &demo));
    let demo_alerts = alert_lines(&demo);
    let demo_kinds: BTreeSet<&str> = demo_alerts
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    for kind in ["key_conflict", "conflict_accepted", "missing_key"] {
        assert!(
            demo_kinds.contains(kind),
            "demo.pcap must raise {kind} for this test to mean anything; raised {demo_kinds:?}"
        );
    }
    // Each violation once per capture, with how many alerts show it and which came first.
    let mut violations: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut note = |capture: &str, a: &Value| {
        for v in contract_violations(a) {
            let seen = violations
                .entry(format!("{capture}: {v}"))
                .or_insert_with(|| {
                    let r = &a["request"];
                    let which = format!("{} for the request at {}", a["kind"], r["ts"]);
                    (0, which)
                });
            seen.0 += 1;
        }
    };
    for a in &demo_alerts {
        note("demo.pcap", a);
    }

    // signature_id is fixed per kind: the same in every capture, different between kinds.
    let mut ids: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (name, options, _) in expected_captures() {
        let run = read_capture(&name, &options);
        failures.extend(run_failure(&name, &run));
        for a in alert_lines(&run) {
            note(&name, a);
            if let (Some(kind), Some(id)) =
                (a["kind"].as_str(), a["alert"]["signature_id"].as_u64())
            {
                ids.entry(kind.to_owned()).or_default().insert(id);
            }
        }
    }
    failures.extend(
        violations
            .into_iter()
            .map(|(v, (n, first))| format!("{v} ({n} alerts; first: {first})")),
    );
    let all_kinds: BTreeSet<&str> = KINDS.iter().map(|(k, _)| *k).collect();
    let seen: BTreeSet<&str> = ids.keys().map(String::as_str).collect();
    assert_eq!(
        seen, all_kinds,
        "the captures together raise every kind of the contract"
    );
    for (kind, set) in &ids {
        if set.len() != 1 {
            failures.push(format!("{kind}: several signature_ids {set:?}"));
        }
    }
    let mut owner: BTreeMap<u64, &str> = BTreeMap::new();
    for (kind, set) in &ids {
        for id in set {
            if let Some(other) = owner.insert(*id, kind) {
                failures.push(format!("signature_id {id} is shared by {other} and {kind}"));
            }
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every non-empty key string in a run: alert keys, `all_keys`, and the `idempotency_key` of
/// every request object.
fn key_strings(run: &Run) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for a in alert_lines(run) {
        let mut candidates = vec![&a["key"]];
        if let Some(all) = a["all_keys"].as_array() {
            candidates.extend(all);
        }
        for r in ["request", "original"] {
            candidates.push(&a[r]["idempotency_key"]);
        }
        keys.extend(
            candidates
                .into_iter()
                .filter_map(Value::as_str)
                .filter(|k| !k.is_empty())
                .map(str::to_owned),
        );
    }
    keys
}

#[test]
fn redact_keys_writes_hashes_and_never_a_key() {
    let path = captures_dir().join("demo.pcap");
    let plain = read(&path, &[]);
    let redacted = read(&path, &["--redact-keys"]);
    plain.assert_exit(0);
    redacted.assert_exit(0);
    let plain_alerts = alert_lines(&plain);
    let redacted_alerts = alert_lines(&redacted);
    assert!(
        plain_alerts.iter().any(|a| a["key"].is_string()),
        "demo.pcap must raise alerts with keys for this test to mean anything"
    );
    assert_eq!(
        plain_alerts.len(),
        redacted_alerts.len(),
        "--redact-keys changes how keys are written, not which alerts are raised"
    );

    let mut failures = Vec::new();
    for (p, r) in plain_alerts.iter().zip(&redacted_alerts) {
        if (&p["kind"], &p["request"]["ts"]) != (&r["kind"], &r["request"]["ts"]) {
            failures.push(format!(
                "alerts in another order: {} at {} vs {} at {}",
                p["kind"], p["request"]["ts"], r["kind"], r["request"]["ts"]
            ));
            continue;
        }
        if r.get("key").is_some() {
            failures.push(format!("redacted alert carries key {}: {r}", r["key"]));
        }
        match (p["key"].as_str(), r.get("key_sha256")) {
            (_, None) => failures.push(format!("redacted alert has no key_sha256: {r}")),
            (Some(key), Some(hash)) => {
                let want = sha256_hex(key.as_bytes());
                if !hash.as_str().is_some_and(|h| is_hex(h, 64)) || *hash != want.as_str() {
                    failures.push(format!(
                        "{}: key_sha256 {hash}, SHA-256 of the key {key:?} is {want}",
                        p["kind"]
                    ));
                }
            }
            // No key, nothing to hash.
            (None, Some(hash)) if !hash.is_null() => failures.push(format!(
                "{}: keyless request, yet key_sha256 is {hash}",
                p["kind"]
            )),
            (None, Some(_)) => {}
        }
    }
    let keys = key_strings(&plain);
    assert!(!keys.is_empty(), "the plain run shows keys");
    for key in &keys {
        if redacted.stdout.contains(key.as_str()) {
            failures.push(format!("key {key:?} appears in the --redact-keys output"));
        }
        if redacted.stderr.contains(key.as_str()) {
            failures.push(format!("key {key:?} appears on stderr with --redact-keys"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn same_alerts_after_rewriting_the_link_layer_and_the_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for name in REWRITTEN {
        let source = captures_dir().join(name);
        let packets = read_ethernet_pcap(&source);
        // The reader and the support writer agree: writing the packets back gives the file.
        assert!(
            support::capture_bytes(Format::PCAP, LINKTYPE_ETHERNET, &packets)
                == std::fs::read(&source).expect("capture is readable"),
            "{name}: read and written back, the capture must be byte-identical"
        );
        let original = read(&source, &["--log-requests"]);
        failures.extend(run_failure(name, &original));
        let want = kinds_and_keys(&original);
        assert!(!want.is_empty(), "{name} must raise alerts");
        let want_http = transactions(&original);

        let (shuffled, swaps, copies) = reordered_and_duplicated(&packets);
        assert!(
            swaps > 0 && copies > 0,
            "{name}: the rewrite must swap and copy segments (swapped {swaps}, copied {copies})"
        );
        let variants = [
            (
                "vlan.pcap",
                support::capture_bytes(Format::PCAP, LINKTYPE_ETHERNET, &vlan_tagged(&packets)),
            ),
            (
                "sll2.pcap",
                support::capture_bytes(Format::PCAP, LINKTYPE_LINUX_SLL2, &sll2_framed(&packets)),
            ),
            (
                "pcapng",
                support::capture_bytes(Format::PCAPNG, LINKTYPE_ETHERNET, &packets),
            ),
            (
                "reordered-duplicated.pcap",
                support::capture_bytes(Format::PCAP, LINKTYPE_ETHERNET, &shuffled),
            ),
        ];
        for (suffix, bytes) in variants {
            let label = format!("{name} as {suffix}");
            let path = dir.path().join(format!("{name}.{suffix}"));
            std::fs::write(&path, bytes).expect("writing the rewritten capture");
            let run = read(&path, &["--log-requests"]);
            failures.extend(run_failure(&label, &run));
            let got = kinds_and_keys(&run);
            if got != want {
                failures.push(format!(
                    "{label}: (kind, key) differ from the original's\n  missing:{}\n  extra:{}",
                    excess(&want, &got),
                    excess(&got, &want)
                ));
            }
            if suffix == "vlan.pcap" {
                for a in alert_lines(&run) {
                    if a["request"]["vlan"] != serde_json::json!([VLAN_ID]) {
                        failures.push(format!(
                            "{label}: request.vlan is {}, not [{VLAN_ID}]",
                            a["request"]["vlan"]
                        ));
                    }
                }
            }
            if suffix.starts_with("reordered") {
                let got_http = transactions(&run);
                let got_n: usize = got_http.values().sum();
                let want_n: usize = want_http.values().sum();
                // Same count, and the same requests paired with the same responses.
                if got_n != want_n || got_http != want_http {
                    failures.push(format!(
                        "{label} ({swaps} pairs swapped, {copies} segments copied): \
                         {got_n} http transactions, the original has {want_n}\n  \
                         missing:{}\n  extra:{}",
                        excess(&want_http, &got_http),
                        excess(&got_http, &want_http)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn output_is_byte_identical_between_runs() {
    for name in ["demo.pcap", "bulk.pcap"] {
        let path = captures_dir().join(name);
        for options in [&[][..], &["--log-requests"][..]] {
            let first = read(&path, options);
            let second = read(&path, options);
            first.assert_exit(0);
            second.assert_exit(0);
            assert!(
                !alert_lines(&first).is_empty(),
                "{name} must raise alerts for this test to mean anything"
            );
            let differing = first
                .stdout
                .lines()
                .zip(second.stdout.lines())
                .enumerate()
                .find(|(_, (a, b))| a != b);
            assert!(
                first.stdout == second.stdout,
                "{name} {options:?}: stdout differs between two runs ({} and {} lines); \
                 first differing line (index, first run, second run): {differing:?}",
                first.stdout.lines().count(),
                second.stdout.lines().count(),
            );
        }
    }
}
