//! Fleet mode on a Redis Cluster with replicas: a primary is killed under two running mirrors
//! and its replica is promoted. Each mirror keeps judging on its own keys, counts the outage,
//! invents nothing, and shares keys again once the cluster has healed.

use crate::daemon;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use daemon::{Proc, curl, start_mirror, stop_mirror, wait_for};
use idemwatch::tracker::KeyId;

/// How long a node may be silent before the others mark it failed and its replica takes over.
const NODE_TIMEOUT_MS: u64 = 1000;

/// One node of the test cluster.
struct Node {
    proc: Option<Proc>,
    port: u16,
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A line of `CLUSTER NODES`: (id, port, is a primary, its primary's id, its slot ranges).
struct Seen {
    id: String,
    port: u16,
    primary: bool,
    primary_id: String,
    slots: Vec<(u16, u16)>,
}

fn cluster_nodes(port: u16) -> Vec<Seen> {
    cli(port, &["cluster", "nodes"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let addr = f.get(1)?.split('@').next()?;
            let port = addr.rsplit(':').next()?.parse().ok()?;
            let flags = f.get(2)?;
            let slots = f
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(Seen {
                id: f.first()?.to_string(),
                port,
                primary: flags.contains("master") && !flags.contains("fail"),
                primary_id: f.get(3)?.to_string(),
                slots,
            })
        })
        .collect()
}

/// Three primaries and three replicas on loopback; returns once every node sees the cluster
/// whole and every replica is in sync with its primary.
fn start_cluster(dir: &Path) -> Vec<Node> {
    let nodes: Vec<Node> = daemon::redis_cluster(dir, 1, NODE_TIMEOUT_MS)
        .into_iter()
        .map(|(p, port)| Node {
            proc: Some(p),
            port,
        })
        .collect();
    // Beyond what the builder waits for: each primary holds slots and each replica is in sync.
    let whole = || {
        nodes.iter().all(|n| {
            let info = cli(n.port, &["cluster", "info"]);
            let seen = cluster_nodes(n.port);
            info.contains("cluster_state:ok")
                && info.contains("cluster_known_nodes:6")
                && seen
                    .iter()
                    .filter(|s| s.primary && !s.slots.is_empty())
                    .count()
                    == 3
                && seen.iter().filter(|s| !s.primary).count() == 3
        }) && nodes.iter().all(|n| {
            let r = cli(n.port, &["info", "replication"]);
            r.contains("role:master") && r.contains("connected_slaves:1")
                || r.contains("master_link_status:up")
        })
    };
    assert!(
        wait_for(Duration::from_secs(30), whole),
        "cluster not ready: {}",
        cli(nodes[0].port, &["cluster", "nodes"])
    );
    nodes
}

fn mirror_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/v1/charges")
}

fn post(port: u16, key: &str, amount: u32) {
    let body = format!("{{\"amount\":{amount}}}");
    assert_eq!(curl(&mirror_url(port), Some(key), &body, &[]), 204);
}

fn conflicts_in(path: &Path, key: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "key_conflict" && v["key"] == key)
        .collect()
}

fn log(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The `outage_ms` of each "reachable again" line of a mirror's log.
fn outages_logged(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.contains("shared store reachable again"))
        .filter_map(|l| l.split("outage_ms=").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_primary_killed_under_running_mirrors_is_failed_over_and_ridden_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_cluster(dir.path());
    let seeds = nodes
        .iter()
        .map(|n| format!("redis://127.0.0.1:{}", n.port))
        .collect::<Vec<_>>()
        .join(",");
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let opts = |name: &str| {
        vec![
            "--insecure-plaintext".to_string(),
            "--store".into(),
            seeds.clone(),
            "--store-instance".into(),
            name.into(),
            "--store-timeout".into(),
            "100ms".into(),
        ]
    };
    let (oa, ob) = (opts("gw-a"), opts("gw-b"));
    let (pa, port_a) = start_mirror(
        da.path(),
        &oa.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (pb, port_b) = start_mirror(
        db.path(),
        &ob.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (out_a, out_b) = (da.path().join("out.json"), db.path().join("out.json"));
    let (err_a, err_b) = (da.path().join("err"), db.path().join("err"));

    // A key used at A, then reused at B with another body: B's conflict names A's request.
    let share = |key: &str, when: &str| {
        post(port_a, key, 1);
        std::thread::sleep(Duration::from_millis(300));
        post(port_b, key, 2);
        assert!(
            wait_for(Duration::from_secs(5), || !conflicts_in(&out_b, key)
                .is_empty()),
            "no conflict across mirrors {when}: {}",
            log(&err_b)
        );
        assert_eq!(conflicts_in(&out_b, key)[0]["original"]["observer"], "gw-a");
    };
    share("fo-first", "before the failover");

    // The record's name is the scope's hash then the key's: with the scope read off the
    // record just filed, the slot of any other key of these requests is known.
    let any = nodes[0].port;
    let records: Vec<String> = nodes
        .iter()
        .flat_map(|n| {
            cli(n.port, &["--scan", "--pattern", "idemwatch:k:*"])
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let key_hex = hex(KeyId::of("fo-first").bytes());
    let scope_hex = records[0]
        .strip_prefix("idemwatch:k:")
        .and_then(|r| r.strip_suffix(&key_hex))
        .unwrap_or_else(|| panic!("unexpected record name {}", records[0]))
        .to_string();
    let slot_of = |key: &str| -> u16 {
        let name = format!("idemwatch:k:{scope_hex}{}", hex(KeyId::of(key).bytes()));
        cli(any, &["cluster", "keyslot", &name])
            .parse()
            .expect("a slot")
    };

    // The victim: the primary holding the first key; its replica will take its slots over.
    let seen = cluster_nodes(any);
    let first_slot = slot_of("fo-first");
    let victim = seen
        .iter()
        .find(|s| s.primary && s.slots.iter().any(|(a, b)| (*a..=*b).contains(&first_slot)))
        .expect("a primary for the slot");
    let (victim_port, victim_id) = (victim.port, victim.id.clone());
    let on_victim = |s: u16| victim.slots.iter().any(|(a, b)| (*a..=*b).contains(&s));
    let replica_port = seen
        .iter()
        .find(|s| s.primary_id == victim_id)
        .map(|s| s.port)
        .expect("the victim's replica");
    // Keys whose records live on the victim, one per role in the story.
    let mut n = 0;
    let mut victim_key = |role: &str| loop {
        n += 1;
        let k = format!("fo-{role}-{n}");
        if on_victim(slot_of(&k)) {
            break k;
        }
    };
    let (k_pre, k_out_a, k_out_b, k_after) = (
        victim_key("pre"),
        victim_key("out-a"),
        victim_key("out-b"),
        victim_key("after"),
    );

    // Filed at A before the kill, and copied to the replica before it.
    post(port_a, &k_pre, 1);
    let dbsize = |p: u16| cli(p, &["dbsize"]).parse::<u64>().unwrap_or(0);
    assert!(
        wait_for(Duration::from_secs(5), || {
            let d = dbsize(victim_port);
            d >= 2 && dbsize(replica_port) == d
        }),
        "the replica did not catch up"
    );

    // The primary dies. Both mirrors keep judging what each sees itself.
    let killed = Instant::now();
    let victim_index = nodes
        .iter()
        .position(|n| n.port == victim_port)
        .expect("victim");
    nodes[victim_index].proc = None;
    post(port_a, &k_out_a, 1);
    post(port_a, &k_out_a, 3);
    post(port_b, &k_out_b, 1);
    post(port_b, &k_out_b, 3);
    for (out, key) in [(&out_a, &k_out_a), (&out_b, &k_out_b)] {
        assert!(
            wait_for(Duration::from_secs(5), || !conflicts_in(out, key)
                .is_empty()),
            "a mirror without its store stopped judging"
        );
    }
    for e in [&err_a, &err_b] {
        assert!(
            wait_for(Duration::from_secs(5), || log(e)
                .contains("shared store failed")),
            "the outage is not logged: {}",
            log(e)
        );
    }

    // Traffic goes on (each key once, so no alert may come of it) until the replica has
    // taken over and every survivor sees the cluster whole again.
    let survivors: Vec<u16> = nodes
        .iter()
        .filter(|n| n.proc.is_some())
        .map(|n| n.port)
        .collect();
    let mut filler = 0;
    let healed = wait_for(Duration::from_secs(20), || {
        filler += 1;
        post(
            if filler % 2 == 0 { port_a } else { port_b },
            &format!("fo-fill-{filler}"),
            1,
        );
        cluster_nodes(replica_port)
            .iter()
            .any(|s| s.port == replica_port && s.primary)
            && survivors
                .iter()
                .all(|p| cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
    });
    assert!(healed, "the replica was not promoted");
    let promoted = killed.elapsed();

    // Each mirror finds the store whole again at its next reconnection (backoff: 100 ms
    // doubling), and from then on keys are shared: a key first used after the failover, and
    // the record filed before the kill, which the promoted replica holds.
    for e in [&err_a, &err_b] {
        assert!(
            wait_for(Duration::from_secs(10), || log(e)
                .contains("shared store reachable again")),
            "no reconnection: {}",
            log(e)
        );
    }
    let resumed = killed.elapsed();
    share(&k_after, "after the failover");
    post(port_b, &k_pre, 2);
    assert!(
        wait_for(Duration::from_secs(5), || !conflicts_in(&out_b, &k_pre)
            .is_empty()),
        "the record filed before the failover was lost"
    );
    assert_eq!(
        conflicts_in(&out_b, &k_pre)[0]["original"]["observer"],
        "gw-a"
    );

    let (events_a, log_a) = stop_mirror(pa, da.path());
    let (events_b, log_b) = stop_mirror(pb, db.path());
    let alerts = |events: &[Value]| -> Vec<(String, String, String)> {
        let mut v: Vec<(String, String, String)> = events
            .iter()
            .filter(|e| e["event_type"] == "alert")
            .map(|e| {
                let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
                (s(&e["kind"]), s(&e["key"]), s(&e["original"]["observer"]))
            })
            .collect();
        v.sort();
        v
    };
    let conflict = |k: &str, by: &str| ("key_conflict".to_string(), k.to_string(), by.to_string());
    // Nothing invented: each mirror raised exactly the expected alerts, once each.
    assert_eq!(alerts(&events_a), vec![conflict(&k_out_a, "-")]);
    let mut want_b = vec![
        conflict("fo-first", "gw-a"),
        conflict(&k_pre, "gw-a"),
        conflict(&k_out_b, "-"),
        conflict(&k_after, "gw-a"),
    ];
    want_b.sort();
    assert_eq!(alerts(&events_b), want_b);

    // The outage was counted: the summary line's numbers are operations, round trips, keys
    // first used elsewhere, outages, ms without the store, requests judged locally, operations
    // failed, skipped; each "reachable again" line is one reconnection.
    for (who, text) in [("gw-a", &log_a), ("gw-b", &log_b)] {
        let line = text
            .lines()
            .find(|l| l.starts_with("idemwatch: shared store:"))
            .unwrap_or_else(|| panic!("{who}: no store summary: {text}"));
        let n: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|t| t.parse().ok())
            .collect();
        let &[_, _, _, outages, degraded_ms, judged_locally, ops_failed, _] = n.as_slice() else {
            panic!("{who}: {line}");
        };
        let reconnects = outages_logged(text);
        eprintln!(
            "{who}: node timeout {NODE_TIMEOUT_MS} ms; promoted after {} ms, shared again \
             after {} ms; store_outages {outages} store_ops_failed {ops_failed} \
             store_judged_locally {judged_locally} store_degraded_ms {degraded_ms} \
             store_reconnects {} (outage_ms {reconnects:?})",
            promoted.as_millis(),
            resumed.as_millis(),
            reconnects.len(),
        );
        // One failover is one outage: the store is not "back" while the slot map still
        // names the dead primary.
        assert_eq!((outages, reconnects.len()), (1, 1), "{who}: {line}\n{text}");
        assert!(degraded_ms > 0, "{who}: {line}");
        // Both uses of the key sent during the outage, at least, were judged locally.
        assert!(judged_locally >= 2 && ops_failed >= 2, "{who}: {line}");
    }
}
