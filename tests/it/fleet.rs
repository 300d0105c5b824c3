//! Fleet mode against a real Redis (Debian's `redis-server`, started here on loopback, one per
//! test): instances that share one store judge a retry that reached another gateway; two
//! instances claiming the same keys at the same moment agree on one original each time; a Redis
//! killed and restarted under running mirrors is ridden out and sharing resumes.

use crate::daemon;
use crate::support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::Value;

use daemon::{Redis, curl, make_certs, start_mirror, stop_mirror, wait_for};
use idemwatch::fleet::worker::{Outcome, Reply, StoreHandle};
use idemwatch::fleet::{Claim, Op, RecordKey, StoreConfig, StoreSpec};
use idemwatch::tracker::{KeyId, Scope};
use support::{Conversation, Format, json_ok, post, run_with, write_capture};

const FLEET_PCAP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/fleet.pcap");
const K_RETRY: &str = "f1ee7000-0001-4000-8000-000000000001";
const K_CONFLICT: &str = "f1ee7000-0002-4000-8000-000000000002";
const K_REPLAY: &str = "f1ee7000-0003-4000-8000-000000000003";

fn alerts(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|v| v["event_type"] == "alert")
        .collect()
}

fn stats(lines: &[Value]) -> &Value {
    lines
        .iter()
        .find(|v| v["event_type"] == "stats")
        .map(|v| &v["stats"])
        .expect("a stats line")
}

/// `read` of one gateway's half of `captures/fleet.pcap` (by its port), sharing `redis`.
fn read_gateway(redis: Option<&Redis>, instance: &str, port: u16, threads: &str) -> Vec<Value> {
    let url = redis.map(Redis::url);
    let mut args = vec!["read", "--stats", "--threads", threads];
    if let Some(u) = &url {
        args.extend(["--store", u, "--store-instance", instance]);
    }
    let filter = format!("tcp port {port}");
    args.extend([FLEET_PCAP, "--", &filter]);
    let run = run_with(&args, None, &[]);
    assert_eq!(run.code, Some(0), "read failed: {}", run.stderr);
    run.lines
}

#[test]
fn a_retry_that_reached_another_gateway_is_judged_against_the_first() {
    let redis = Redis::start();
    // Gateway 1 first, as the client's first attempts went there.
    let gw1 = read_gateway(Some(&redis), "gw1", 18081, "1");
    assert!(
        alerts(&gw1).is_empty(),
        "gateway 1 saw first uses only: {gw1:?}"
    );
    assert_eq!(stats(&gw1)["store_ops_failed"], 0);

    let gw2 = read_gateway(Some(&redis), "gw2", 18082, "1");
    let a = alerts(&gw2);
    let kinds: Vec<(&str, &str)> = a
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap_or(""),
                v["key"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("key_conflict", K_CONFLICT),
            ("replay_mismatch", K_REPLAY),
            ("missing_key", "-"),
        ],
        "{gw2:?}"
    );
    // The original is gateway 1's request, named by the instance that saw it.
    for v in &a[..2] {
        assert_eq!(v["original"]["observer"], "gw1");
        assert_eq!(v["original"]["dest_port"], 18081);
        assert_eq!(v["original"]["protocol"], "HTTP/1.1", "filed with it");
        assert_eq!(v["request"]["dest_port"], 18082);
        assert!(v["request"].get("observer").is_none());
        assert_eq!(
            v["original"]["idempotency_key"], v["key"],
            "the original prints the key although the store does not keep it"
        );
    }
    let mismatch = a[1];
    assert_ne!(
        mismatch["response"]["resource_id"],
        mismatch["original_response"]["resource_id"]
    );
    assert!(mismatch["original_response"]["resource_id"].is_string());
    // The plain retry across gateways: nothing, counted as a retry.
    assert!(a.iter().all(|v| v["key"] != K_RETRY));
    let st = stats(&gw2);
    assert_eq!(st["tracker_retries"], 1, "{st}");
    assert_eq!(st["store_shared_originals"], 3, "{st}");
    assert_eq!(st["store_judged_locally"], 0, "{st}");

    // The same half with four workers gives the same alerts in the same order (the store now
    // holds gateway 2's own first uses too: it must not change what is judged).
    let again = read_gateway(Some(&redis), "gw2", 18082, "4");
    let strip = |v: &[&Value]| -> Vec<Value> {
        v.iter()
            .map(|x| support::strip_volatile((*x).clone()))
            .collect()
    };
    assert_eq!(strip(&alerts(&again)), strip(&a));

    // Without the store, gateway 2 alone has nothing to compare with.
    let alone = read_gateway(None, "gw2", 18082, "1");
    assert!(alerts(&alone).is_empty(), "{alone:?}");

    // What Redis holds: one record per key, under hashes only: no key value, no credential.
    let names = redis.cli(&["--scan", "--pattern", "idemwatch:*"]);
    assert_eq!(
        names
            .lines()
            .filter(|l| l.starts_with("idemwatch:k:"))
            .count(),
        4,
        "{names}"
    );
    assert!(names.lines().any(|l| l == "idemwatch:endpoints"));
    let dump = redis.cli(&[
        "--no-raw",
        "hgetall",
        names
            .lines()
            .find(|l| l.starts_with("idemwatch:k:"))
            .unwrap_or(""),
    ]);
    for secret in ["f1ee7000", "sk_test", "Bearer", "amount"] {
        assert!(!dump.contains(secret), "{secret} stored in Redis: {dump}");
    }
    let ttl: i64 = redis
        .cli(&[
            "pttl",
            names
                .lines()
                .find(|l| l.starts_with("idemwatch:k:"))
                .unwrap_or(""),
        ])
        .parse()
        .unwrap_or(-1);
    assert!(ttl > 0 && ttl <= 2 * 24 * 3600 * 1000, "TTL {ttl}");
}

#[test]
fn two_instances_claiming_the_same_key_at_once_agree_on_one_original() {
    let redis = Redis::start();
    const KEYS: usize = 2000;
    let barrier = Arc::new(Barrier::new(2));
    let run = |name: &'static str| {
        let barrier = barrier.clone();
        let url = redis.url();
        std::thread::spawn(move || {
            let cfg = StoreConfig::new(StoreSpec::Redis(url));
            let store = StoreHandle::start(cfg.backend().expect("backend"), &cfg);
            // The first reply is the endpoint list read at start.
            let mut won = Vec::with_capacity(KEYS);
            for i in 0..KEYS {
                let rk = RecordKey {
                    scope: Scope([7; 16]),
                    key: KeyId::of(&format!("race-{i}")),
                };
                let claim = Claim {
                    claim_id: format!("{name}/{i}"),
                    first_us: 1_000_000,
                    window_us: 86_400_000_000,
                    ttl_ms: 60_000,
                    record: Vec::new(),
                };
                barrier.wait();
                assert!(store.submit(Op::Claim {
                    ticket: i as u64,
                    rk,
                    claim: Some(claim),
                }));
                let outcome = loop {
                    match store.recv_timeout(Duration::from_secs(5)) {
                        Some(Reply::Claim { ticket, outcome }) if ticket == i as u64 => {
                            break outcome;
                        }
                        Some(_) => continue,
                        None => panic!("no answer for key {i}"),
                    }
                };
                won.push(match outcome {
                    Outcome::Free => true,
                    // An empty record cannot be decoded: the store held it, so not ours.
                    Outcome::Failed | Outcome::Held(_) => false,
                    Outcome::Replaced(_) => panic!("replaced within the window"),
                });
            }
            won
        })
    };
    let (a, b) = (run("a"), run("b"));
    let (a, b) = (a.join().expect("a"), b.join().expect("b"));
    // Every record's claimer, in one pipeline (a redis-cli per key took half a minute).
    let mut hgets = redis::pipe();
    for i in 0..KEYS {
        let rk = RecordKey {
            scope: Scope([7; 16]),
            key: KeyId::of(&format!("race-{i}")),
        };
        hgets.hget(rk.name("idemwatch:"), "c");
    }
    let mut conn = redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .expect("connect to redis");
    let claimers: Vec<Option<String>> = hgets.query(&mut conn).expect("hget every record");
    let mut wins = (0, 0);
    for i in 0..KEYS {
        assert!(a[i] != b[i], "key {i}: a won {}, b won {}", a[i], b[i]);
        if a[i] {
            wins.0 += 1
        } else {
            wins.1 += 1
        }
        // The record names the winner.
        let claimer = claimers[i].clone().unwrap_or_default();
        assert_eq!(claimer, format!("{}/{i}", if a[i] { "a" } else { "b" }));
    }
    assert_eq!(wins.0 + wins.1, KEYS);
}

/// A capture of `n` keyed POSTs, one connection each, all at the same capture times in every
/// capture made with it; `amount` makes the bodies differ between instances.
fn same_keys_capture(path: &Path, n: usize, amount: u32, client_octet: u8) {
    let mut packets = Vec::new();
    for i in 0..n {
        let mut c = Conversation::new(
            support::v4([10, 0, 0, client_octet], 40000 + i as u16),
            support::server_v4(),
        )
        .starting_at(support::BASE_TS_NS + i as u64 * 10_000_000);
        c.handshake();
        let key = format!("Idempotency-Key: race-{i:04}");
        c.client_send(&post(
            "/v1/charges",
            &[
                &key,
                "Content-Type: application/json",
                "Authorization: Bearer sk_test_race",
            ],
            format!("{{\"amount\":{amount}}}").as_bytes(),
        ));
        c.server_send(&json_ok(&format!("ch_{client_octet}_{i}")));
        c.close();
        packets.extend(c.into_packets());
    }
    packets.sort_by_key(|p| p.ts_ns);
    write_capture(
        path,
        Format::Pcap {
            big_endian: false,
            nanos: true,
        },
        1,
        &packets,
    );
}

#[test]
fn two_gateways_racing_on_the_same_keys_raise_one_conflict_per_key() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    const N: usize = 300;
    let caps: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("gw{i}.pcap")))
        .collect();
    same_keys_capture(&caps[0], N, 1000, 5);
    same_keys_capture(&caps[1], N, 2000, 6);
    let url = redis.url();
    let spawn = |i: usize| {
        Command::new(env!("CARGO_BIN_EXE_idemwatch"))
            .args([
                "-q",
                "read",
                "--store",
                &url,
                "--store-instance",
                &format!("gw{i}"),
            ])
            .arg(&caps[i])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("idemwatch starts")
    };
    // Both at once: each key is claimed by both instances within the same moment.
    let (a, b) = (spawn(0), spawn(1));
    let outs = [a, b].map(|c| c.wait_with_output().expect("idemwatch ends"));
    let mut per_key: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut concurrent: BTreeMap<String, usize> = BTreeMap::new();
    for (i, o) in outs.iter().enumerate() {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let v: Value = serde_json::from_str(l).expect("JSON line");
            support::schema::check(&v);
            // Both servers ran their request: conflict_accepted follows where the winner's
            // result was filed before the loser's response was judged.
            if v["kind"] == "conflict_accepted" {
                continue;
            }
            // Both requests of a key were in flight at once: one instance judges the later
            // use concurrent, whichever learned both facts (see below).
            if v["kind"] == "concurrent_reuse" {
                *concurrent
                    .entry(v["key"].as_str().unwrap_or("").to_string())
                    .or_insert(0) += 1;
                continue;
            }
            assert_eq!(v["kind"], "key_conflict", "{v}");
            let observer = v["original"]["observer"].as_str().unwrap_or("").to_string();
            per_key
                .entry(v["key"].as_str().unwrap_or("").to_string())
                .or_default()
                .push((i, observer));
        }
    }
    assert_eq!(per_key.len(), N, "every key has its conflict");
    let mut wins = HashMap::new();
    for (key, v) in &per_key {
        assert_eq!(v.len(), 1, "{key}: {v:?}");
        let (loser, observer) = &v[0];
        // The conflict is raised by the instance that lost, against the other's request.
        assert_eq!(observer, &format!("gw{}", 1 - loser), "{key}");
        *wins.entry(1 - loser).or_insert(0) += 1;
    }
    assert_eq!(wins.values().sum::<usize>(), N);
    // Each key's later use is concurrent with its first (same capture time), and is judged
    // so exactly once in the fleet, by one of the two instances.
    assert_eq!(
        concurrent.len(),
        N,
        "every key's concurrent use: {concurrent:?}"
    );
    assert!(concurrent.values().all(|n| *n == 1), "{concurrent:?}");
}

/// The mirrored API path on a mirror.
fn mirror_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/v1/charges")
}

#[test]
fn redis_killed_and_restarted_under_running_mirrors_is_ridden_out() {
    let mut redis = Redis::start();
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let url = redis.url();
    let opts = |name: &'static str| {
        vec![
            "--insecure-plaintext".to_string(),
            "--store".into(),
            url.clone(),
            "--store-instance".into(),
            name.into(),
            "--store-timeout".into(),
            "100ms".into(),
        ]
    };
    let oa = opts("gw-a");
    let ob = opts("gw-b");
    let (pa, port_a) = start_mirror(
        da.path(),
        &oa.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (pb, port_b) = start_mirror(
        db.path(),
        &ob.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let out_b = db.path().join("out.json");
    let conflicts_in = |path: &Path, key: &str| -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .inspect(support::schema::check)
            .filter(|v| v["kind"] == "key_conflict" && v["key"] == key)
            .collect()
    };

    let post = |port: u16, key: &str, amount: u32| {
        let body = format!("{{\"amount\":{amount}}}");
        assert_eq!(curl(&mirror_url(port), Some(key), &body, &[]), 204);
    };
    // A key used at A, then reused at B with another body: B's conflict names A's request.
    let share = |key: &str, when: &str| {
        post(port_a, key, 1);
        std::thread::sleep(Duration::from_millis(300));
        post(port_b, key, 2);
        assert!(
            wait_for(Duration::from_secs(5), || !conflicts_in(&out_b, key)
                .is_empty()),
            "no conflict across mirrors {when}"
        );
        assert_eq!(conflicts_in(&out_b, key)[0]["original"]["observer"], "gw-a");
    };

    // Sharing works: a conflict across the two mirrors.
    share("fleet-k1", "before the outage");

    // Redis dies: both keep judging what each sees itself.
    redis.kill();
    let out_a = da.path().join("out.json");
    post(port_a, "fleet-k2", 1);
    post(port_a, "fleet-k2", 3);
    assert!(
        wait_for(Duration::from_secs(5), || !conflicts_in(&out_a, "fleet-k2")
            .is_empty()),
        "a mirror without its store stopped judging"
    );
    let err_a = da.path().join("err");
    let log = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(5), || log(&err_a)
            .contains("shared store failed")
            || log(&err_a).contains("cannot reach the shared store")),
        "the outage is not logged: {}",
        log(&err_a)
    );

    // Redis comes back (empty): both reconnect and sharing resumes.
    redis.restart();
    let err_b = db.path().join("err");
    for e in [&err_a, &err_b] {
        assert!(
            wait_for(Duration::from_secs(20), || log(e)
                .contains("shared store reachable again")),
            "no reconnection: {}",
            log(e)
        );
    }
    share("fleet-k3", "after the restart");

    let (_, err) = stop_mirror(pa, da.path());
    let line = err
        .lines()
        .find(|l| l.contains("idemwatch: shared store:"))
        .unwrap_or_else(|| panic!("no store summary: {err}"));
    assert!(!line.contains(" 0 outages"), "{line}");
    let (events_b, _) = stop_mirror(pb, db.path());
    // Nothing invented: the only conflicts at B are the two shared ones.
    let kinds: Vec<&str> = events_b
        .iter()
        .filter(|v| v["event_type"] == "alert" && v["kind"] == "key_conflict")
        .filter_map(|v| v["key"].as_str())
        .collect();
    assert_eq!(kinds, vec!["fleet-k1", "fleet-k3"]);
}

#[test]
fn keys_are_shared_over_tls_with_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let redis = Redis::start_tls(dir.path());
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let f = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let tls = [
        "--store-ca".to_string(),
        f("ca.pem"),
        "--store-cert".into(),
        f("client.pem"),
        "--store-key".into(),
        f("client.key"),
    ];
    let read = |instance: &str, port: u16, tls: &[String]| {
        let filter = format!("tcp port {port}");
        let mut args = vec![
            "read",
            "--stats",
            "--store",
            &url,
            "--store-instance",
            instance,
        ];
        args.extend(tls.iter().map(String::as_str));
        args.extend([FLEET_PCAP, "--", &filter]);
        let run = run_with(&args, None, &[]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run
    };
    let gw1 = read("gw1", 18081, &tls);
    assert_eq!(stats(&gw1.lines)["store_ops_failed"], 0, "{}", gw1.stderr);
    let gw2 = read("gw2", 18082, &tls);
    let kinds: Vec<&str> = alerts(&gw2.lines)
        .iter()
        .filter_map(|v| v["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        vec!["key_conflict", "replay_mismatch", "missing_key"]
    );

    // Without the client certificate the store refuses the handshake: the run goes on, on its
    // own keys, and says so.
    let alone = read("gw2", 18082, &tls[..2]);
    assert!(alerts(&alone.lines).is_empty(), "{:?}", alone.lines);
    assert!(
        alone.stderr.contains("cannot reach the shared store"),
        "{}",
        alone.stderr
    );
    assert_eq!(stats(&alone.lines)["store_judged_locally"], 3);
}

#[test]
fn a_store_password_never_reaches_output_or_logs() {
    let redis = Redis::start_with(&["--requirepass", "canary-pw-7f3a"]);
    let good = format!("redis://:canary-pw-7f3a@127.0.0.1:{}/0", redis.port);
    let bad = format!("redis://:canary-wrong-9c1d@127.0.0.1:{}/0", redis.port);
    let gw1 = run_with(
        &[
            "-vv",
            "read",
            "--stats",
            "--store",
            &good,
            "--store-instance",
            "gw1",
            FLEET_PCAP,
            "--",
            "tcp port 18081",
        ],
        None,
        &[],
    );
    assert_eq!(stats(&gw1.lines)["store_ops_failed"], 0, "{}", gw1.stderr);
    let denied = run_with(
        &["-vv", "read", "--stats", "--store", &bad, FLEET_PCAP],
        None,
        &[],
    );
    assert!(
        denied.stderr.contains("cannot reach the shared store"),
        "{}",
        denied.stderr
    );
    let dir = tempfile::tempdir().expect("tmp");
    let conf = dir.path().join("c.toml");
    std::fs::write(&conf, format!("interface = \"lo\"\nstore = \"{good}\"\n")).expect("write");
    let check = Command::new(env!("CARGO_BIN_EXE_idemwatch"))
        .args(["check-config", "--config"])
        .arg(&conf)
        .output()
        .expect("check-config runs");
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(
        shown.contains("store = \"redis://:REDACTED@127.0.0.1"),
        "{shown}"
    );
    for run in [
        &gw1.stdout,
        &gw1.stderr,
        &denied.stdout,
        &denied.stderr,
        &shown.to_string(),
    ] {
        assert!(
            !run.contains("canary-pw") && !run.contains("canary-wrong"),
            "{run}"
        );
    }
}

#[test]
fn keys_are_shared_through_a_redis_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Three primaries, no replicas: every slot covered, keys spread over the nodes.
    let nodes = daemon::redis_cluster(dir.path(), 0, 15_000);
    let addrs: Vec<String> = nodes
        .iter()
        .map(|(_, p)| format!("127.0.0.1:{p}"))
        .collect();
    let seeds = addrs
        .iter()
        .map(|a| format!("redis://{a}"))
        .collect::<Vec<_>>()
        .join(",");
    let read = |instance: &str, port: u16| {
        let filter = format!("tcp port {port}");
        let args = [
            "read",
            "--stats",
            "--store",
            &seeds,
            "--store-instance",
            instance,
            FLEET_PCAP,
            "--",
            &filter,
        ];
        let run = run_with(&args, None, &[]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run
    };
    let gw1 = read("gw1", 18081);
    assert_eq!(stats(&gw1.lines)["store_ops_failed"], 0, "{}", gw1.stderr);
    let gw2 = read("gw2", 18082);
    let got: Vec<(&str, &str)> = alerts(&gw2.lines)
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap_or(""),
                v["original"]["observer"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("key_conflict", "gw1"),
            ("replay_mismatch", "gw1"),
            ("missing_key", "-")
        ]
    );
    // The records went to several nodes (by slot), the endpoints hash to one: four keys, the
    // endpoints, gateway 2's keyless request and the last attempt at each of the five keyed
    // requests (kept for the churn window).
    let sizes: Vec<u64> = nodes
        .iter()
        .map(|(_, p)| {
            let o = Command::new("redis-cli")
                .args(["-p", &p.to_string(), "dbsize"])
                .output()
                .expect("redis-cli");
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), 11, "{sizes:?}");
    assert!(sizes.iter().filter(|n| **n > 0).count() >= 2, "{sizes:?}");
}

/// One keyed POST on its own connection, answered `status`.
fn one_attempt(path: &Path, client: u8, at_ns: u64, key: &str, status: u16, amount: u32) {
    let mut c = Conversation::new(support::v4([10, 0, 0, client], 40000), support::server_v4())
        .starting_at(at_ns);
    c.handshake();
    let key = format!("Idempotency-Key: {key}");
    c.client_send(&post(
        "/v1/charges",
        &[
            &key,
            "Content-Type: application/json",
            "Authorization: Bearer sk_test_churn",
        ],
        format!("{{\"amount\":{amount},\"currency\":\"usd\"}}").as_bytes(),
    ));
    if status == 200 {
        c.server_send(&json_ok("ch_churn_2"));
    } else {
        c.server_send(&support::response(
            status,
            "application/json",
            br#"{"error":{"type":"api_error"}}"#,
        ));
    }
    c.close();
    write_capture(
        path,
        Format::Pcap {
            big_endian: false,
            nanos: true,
        },
        1,
        c.packets(),
    );
}

#[test]
fn a_fresh_key_on_another_gateway_after_a_failed_attempt_is_key_churn() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("gw1.pcap"), dir.path().join("gw2.pcap"));
    // Gateway 1: the first attempt gets a 503; the SDK retries 5 s later with a new key, and
    // the load balancer sends it to gateway 2.
    one_attempt(&a, 5, support::BASE_TS_NS, "churn-first", 503, 4200);
    one_attempt(
        &b,
        6,
        support::BASE_TS_NS + 5_000_000_000,
        "churn-second",
        200,
        4200,
    );
    let url = redis.url();
    let read = |path: &Path, instance: &str, store: bool| {
        let p = path.to_string_lossy().into_owned();
        let mut args = vec!["read", "--stats"];
        if store {
            args.extend(["--store", &url, "--store-instance", instance]);
        }
        args.push(&p);
        let run = run_with(&args, None, &[]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run.lines
    };
    assert!(alerts(&read(&a, "gw1", true)).is_empty());
    let gw2 = read(&b, "gw2", true);
    let churn: Vec<&Value> = alerts(&gw2)
        .into_iter()
        .filter(|v| v["kind"] == "key_churn")
        .collect();
    assert_eq!(churn.len(), 1, "{gw2:?}");
    let c = churn[0];
    assert_eq!(c["key"], "churn-second");
    assert_eq!(c["original"]["idempotency_key"], "churn-first");
    assert_eq!(c["original"]["observer"], "gw1");
    assert_eq!(c["original"]["src_ip"], "10.0.0.5");
    assert_eq!(c["original_response"]["status"], 503);
    assert_eq!(stats(&gw2)["store_shared_attempts"], 1);
    // Alone, gateway 2 sees one successful first use.
    assert!(alerts(&read(&b, "gw2", false)).is_empty());
    // A successful first attempt files nothing: a new key later is a new request.
    let ok = dir.path().join("ok.pcap");
    let later = dir.path().join("later.pcap");
    one_attempt(
        &ok,
        7,
        support::BASE_TS_NS + 10_000_000_000,
        "fine-first",
        200,
        77,
    );
    one_attempt(
        &later,
        8,
        support::BASE_TS_NS + 15_000_000_000,
        "fine-second",
        200,
        77,
    );
    read(&ok, "gw1", true);
    assert!(alerts(&read(&later, "gw2", true)).is_empty());
}

#[test]
fn a_stalled_redis_delays_alerts_by_the_store_wait_at_most() {
    let redis = Redis::start_with(&["--enable-debug-command", "yes"]);
    let dir = tempfile::tempdir().expect("tmp");
    let url = redis.url();
    let (p, port) = start_mirror(
        dir.path(),
        &[
            "--insecure-plaintext",
            "--store",
            &url,
            "--store-instance",
            "gw-a",
            "--store-timeout",
            "200ms",
            "--store-wait",
            "300ms",
        ],
    );
    let out = dir.path().join("out.json");
    let conflict_seen = |key: &str| {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("key_conflict") && l.contains(key))
    };
    // Redis answers nothing for 4 s (one command blocks the whole server).
    let port_s = redis.port.to_string();
    let sleeper = std::thread::spawn(move || {
        Command::new("redis-cli")
            .args(["-p", &port_s, "debug", "sleep", "4"])
            .output()
    });
    std::thread::sleep(Duration::from_millis(200));
    let start = std::time::Instant::now();
    assert_eq!(
        curl(&mirror_url(port), Some("stall-k"), r#"{"amount":1}"#, &[]),
        204
    );
    assert_eq!(
        curl(&mirror_url(port), Some("stall-k"), r#"{"amount":2}"#, &[]),
        204
    );
    assert!(
        wait_for(Duration::from_secs(3), || conflict_seen("stall-k")),
        "no alert while Redis stalled"
    );
    let took = start.elapsed();
    eprintln!("alert {took:?} after the pair was sent to a stalled Redis");
    // Two requests, each held at most --store-wait, and the round trip that failed first:
    // far less than the 4 s stall.
    assert!(took < Duration::from_millis(2500), "alert after {took:?}");
    let _ = sleeper.join();
    // After the stall the store is used again.
    let err = dir.path().join("err");
    assert!(
        wait_for(Duration::from_secs(15), || std::fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("shared store reachable again")),
        "no reconnection after the stall"
    );
    let (_, log) = stop_mirror(p, dir.path());
    let line = log
        .lines()
        .find(|l| l.contains("idemwatch: shared store:"))
        .unwrap_or_default();
    assert!(!line.contains(" 0 requests judged"), "{line}");
}

/// The keyless uses of a request, on one backend: a lookup finds the latest use captured
/// before it and within the window, whatever order the uses reached the store in, and the
/// store keeps a bounded number of them.
fn keyless_contract(b: &mut dyn idemwatch::fleet::Backend, what: &str) {
    use idemwatch::fleet::{KEYLESS_KEPT, KeylessKey, RawReply};
    use idemwatch::tracker::Identity;
    b.connect().expect("connects");
    let dk = KeylessKey {
        scope: Scope([7; 16]),
        identity: Identity([9; 16]),
    };
    let filed = |at_us: i64, tag: &str| Op::KeylessUse {
        dk,
        at_us,
        ttl_ms: 60_000,
        record: tag.as_bytes().to_vec(),
    };
    let look = |at_us: i64| Op::KeylessLookup {
        ticket: 0,
        dk,
        at_us,
        window_us: 1_000_000,
    };
    let found = |b: &mut dyn idemwatch::fleet::Backend, at_us: i64| -> Option<String> {
        match b.run(&[look(at_us)]).expect("a round trip").pop() {
            Some(RawReply::Keyless(r)) => r.map(|v| String::from_utf8_lossy(&v).into_owned()),
            other => panic!("{what}: not a keyless reply: {other:?}"),
        }
    };
    assert_eq!(found(b, 5_000_000), None, "{what}: nothing filed yet");
    // Gateway B's use (captured at 5.0 s) reaches the store before gateway A's (4.5 s).
    b.run(&[filed(5_000_000, "b")]).expect("files");
    b.run(&[filed(4_500_000, "a")]).expect("files");
    assert_eq!(found(b, 4_900_000).as_deref(), Some("a"), "{what}");
    assert_eq!(found(b, 5_200_000).as_deref(), Some("b"), "{what}");
    assert_eq!(
        found(b, 5_000_000).as_deref(),
        Some("a"),
        "{what}: not itself"
    );
    assert_eq!(
        found(b, 4_500_000),
        None,
        "{what}: nothing earlier than the first"
    );
    assert_eq!(found(b, 6_600_000), None, "{what}: past the window");
    // A flood of one request keeps only the latest few.
    for i in 0..(KEYLESS_KEPT as i64 + 5) {
        b.run(&[filed(10_000_000 + i, &format!("f{i}"))])
            .expect("files");
    }
    assert_eq!(found(b, 4_900_000), None, "{what}: the oldest uses went");
    assert_eq!(
        found(b, 10_500_000).as_deref(),
        Some(format!("f{}", KEYLESS_KEPT + 4).as_str()),
        "{what}"
    );
}

#[test]
fn keyless_uses_are_found_by_capture_time_on_redis_and_in_memory() {
    let redis = Redis::start();
    let mut r = idemwatch::fleet::redis_store::RedisBackend::single(
        &redis.url(),
        "t:",
        Duration::from_secs(2),
        None,
    )
    .expect("a backend");
    keyless_contract(&mut r, "redis");
    let mut m = idemwatch::fleet::memory::MemoryBackend::new(
        idemwatch::fleet::memory::MemoryStore::default(),
        "t:",
    );
    keyless_contract(&mut m, "memory");
    // What Redis holds for them: hashes and the records only.
    let names = redis.cli(&["--scan", "--pattern", "t:d:*"]);
    assert_eq!(names.lines().count(), 1, "{names}");
    let ttl: i64 = redis.cli(&["pttl", names.trim()]).parse().unwrap_or(-1);
    assert!(ttl > 0 && ttl <= 60_000, "TTL {ttl}");
}

/// One request of the multi-gateway story and its answer, as a gateway captured it.
fn story_exchange(client: u8, at_ns: u64, key: Option<&str>, amount: u32) -> Vec<support::Packet> {
    let mut c = Conversation::new(
        support::v4([10, 0, 0, client], 41000 + u16::from(client)),
        support::server_v4(),
    )
    .starting_at(at_ns);
    c.handshake();
    let key_line = key.map(|k| format!("Idempotency-Key: {k}"));
    let mut headers = vec![
        "Content-Type: application/json",
        "Authorization: Bearer sk_test_story",
    ];
    headers.extend(key_line.as_deref());
    c.client_send(&post(
        "/v1/charges",
        &headers,
        format!("{{\"amount\":{amount},\"currency\":\"usd\"}}").as_bytes(),
    ));
    if key.is_some() && amount != 100 {
        // The server rejects the conflicting reuse: no conflict_accepted to add.
        c.server_send(&support::response(
            409,
            "application/json",
            br#"{"error":{"type":"idempotency_error"}}"#,
        ));
    } else {
        c.server_send(&json_ok(&format!("ch_story_{client}")));
    }
    c.close();
    c.into_packets()
}

/// The story of the determinism tests, one capture per gateway. Gateway 1: a keyed charge,
/// then a keyless one. Half a second later, gateway 2: the key reused with another amount,
/// then the same keyless charge.
fn story_captures(dir: &Path) -> (PathBuf, PathBuf) {
    let t0 = support::BASE_TS_NS;
    let ms = 1_000_000;
    let gw1: Vec<_> = [
        story_exchange(21, t0, Some("story-key"), 100),
        story_exchange(22, t0 + 100 * ms, None, 5),
    ]
    .concat();
    let gw2: Vec<_> = [
        story_exchange(23, t0 + 600 * ms, Some("story-key"), 200),
        story_exchange(24, t0 + 700 * ms, None, 5),
    ]
    .concat();
    let (a, b) = (dir.join("story-gw1.pcap"), dir.join("story-gw2.pcap"));
    let fmt = Format::Pcap {
        big_endian: false,
        nanos: true,
    };
    write_capture(&a, fmt, 1, &gw1);
    write_capture(&b, fmt, 1, &gw2);
    (a, b)
}

/// The alerts of a run, as (instance, kind, key) in output order, and the alerts themselves
/// without what changes from run to run (times of the run, file names).
type Verdicts = (Vec<(String, String, String)>, Vec<Value>);

fn verdicts(per_gateway: &[(&str, &[Value])]) -> Verdicts {
    let mut short = Vec::new();
    let mut full = Vec::new();
    for (gw, lines) in per_gateway {
        for v in alerts(lines) {
            short.push((
                (*gw).to_string(),
                v["kind"].as_str().unwrap_or("").to_string(),
                v["key"].as_str().unwrap_or("-").to_string(),
            ));
            full.push(support::strip_volatile(v.clone()));
        }
    }
    (short, full)
}

fn story_expected() -> Vec<(String, String, String)> {
    [
        ("gw1", "missing_key", "-"),
        ("gw2", "key_conflict", "story-key"),
        ("gw2", "missing_key", "-"),
        ("gw2", "keyless_duplicate", "-"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect()
}

#[test]
fn the_multi_gateway_story_gives_the_same_verdicts_in_20_runs_of_read() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = story_captures(dir.path());
    let url = redis.url();
    let read = |path: &Path, instance: &str, prefix: &str, threads: &str| {
        let p = path.to_string_lossy().into_owned();
        let run = run_with(
            &[
                "read",
                "--stats",
                "--threads",
                threads,
                "--store",
                &url,
                "--store-instance",
                instance,
                "--store-prefix",
                prefix,
                &p,
            ],
            None,
            &[],
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run.lines
    };
    let mut first: Option<Verdicts> = None;
    for run in 0..20 {
        // A fleet of its own for each run; one worker or two, alternately.
        let prefix = format!("story{run}:");
        let threads = if run % 2 == 0 { "1" } else { "2" };
        let gw1 = read(&a, "gw1", &prefix, threads);
        let gw2 = read(&b, "gw2", &prefix, threads);
        let v = verdicts(&[("gw1", &gw1), ("gw2", &gw2)]);
        assert_eq!(v.0, story_expected(), "run {run}: {gw2:?}");
        let dup = alerts(&gw2)
            .into_iter()
            .find(|x| x["kind"] == "keyless_duplicate")
            .cloned()
            .unwrap_or_default();
        assert_eq!(dup["original"]["observer"], "gw1", "run {run}");
        assert_eq!(dup["original"]["src_ip"], "10.0.0.22", "run {run}");
        assert_eq!(stats(&gw2)["store_shared_keyless"], 1, "run {run}");
        assert_eq!(stats(&gw2)["store_judged_locally"], 0, "run {run}");
        match &first {
            None => first = Some(v),
            Some(f) => assert_eq!(f.1, v.1, "run {run} differs from run 0"),
        }
    }
    // The keyless uses in Redis: hashes, never the body or the credential.
    let names = redis.cli(&["--scan", "--pattern", "story0:d:*"]);
    let name = names.lines().next().unwrap_or("");
    let dump = redis.cli(&["--no-raw", "zrange", name, "0", "-1"]);
    assert!(!dump.is_empty(), "no keyless use filed: {names}");
    for secret in ["sk_test", "Bearer", "amount", "usd"] {
        assert!(!dump.contains(secret), "{secret} stored in Redis: {dump}");
    }
}

#[test]
fn the_multi_gateway_story_gives_the_same_verdicts_in_20_runs_through_nginx_and_mirrors() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let d = |f: &str| dir.path().join(f).display().to_string();
    let api = daemon::start_api(dir.path());
    let url = redis.url();
    let mut first: Option<Verdicts> = None;
    for run in 0..20 {
        let prefix = format!("story{run}:");
        let mut gateways = Vec::new();
        for gw in ["gw1", "gw2"] {
            let gdir = dir.path().join(format!("{gw}-{run}"));
            std::fs::create_dir_all(&gdir).expect("dir");
            for f in ["ca.pem", "client.pem", "client.key"] {
                std::fs::copy(dir.path().join(f), gdir.join(f)).expect("copy certs");
            }
            let (p, port) = start_mirror(
                &gdir,
                &[
                    "--cert",
                    &d("server.pem"),
                    "--key",
                    &d("server.key"),
                    "--client-ca",
                    &d("ca.pem"),
                    "--store",
                    &url,
                    "--store-instance",
                    gw,
                    "--store-prefix",
                    &prefix,
                    "--trusted-proxies",
                    "127.0.0.1/32",
                ],
            );
            let ngx = daemon::start_nginx(&gdir, api.port, port);
            gateways.push((gw, gdir, p, ngx));
        }
        let amount = |a: u32| format!("{{\"amount\":{a},\"currency\":\"usd\"}}");
        // Gateway 1: a keyed charge, then a keyless one (its amount is the run's, so that no
        // run's keyless charge repeats another's).
        let keyless = amount(1000 + run);
        let key = format!("story-key-{run}");
        let at = |i: usize| gateways[i].3.port;
        // Back to back: nginx answers the client before its mirrored copy (a connection and
        // a TLS handshake of its own) has arrived, so the two can reach the mirror in either
        // order; the mirror puts them back in the gateway's (its X-Request-Start).
        assert_eq!(daemon::via_nginx(at(0), Some(&key), &amount(100)).0, 200);
        assert_eq!(daemon::via_nginx(at(0), None, &keyless).0, 200);
        std::thread::sleep(Duration::from_millis(500));
        // Gateway 2: the key with another amount, then the same keyless charge.
        assert_eq!(daemon::via_nginx(at(1), Some(&key), &amount(200)).0, 400);
        assert_eq!(daemon::via_nginx(at(1), None, &keyless).0, 200);
        // nginx mirrors after it answered: give the last mirrored request time to arrive.
        let last = gateways[1].1.join("out.json");
        assert!(
            wait_for(Duration::from_secs(5), || std::fs::read_to_string(&last)
                .unwrap_or_default()
                .contains("keyless_duplicate")),
            "run {run}: no keyless_duplicate at gateway 2: {}\n{}\n{}",
            {
                let names = redis.cli(&["--scan", "--pattern", &format!("{prefix}d:*")]);
                let scores: Vec<String> = names
                    .lines()
                    .map(|n| redis.cli(&["zrange", n, "0", "-1", "withscores"]))
                    .collect();
                format!("{names}: {scores:?}")
            },
            std::fs::read_to_string(&last).unwrap_or_default(),
            std::fs::read_to_string(gateways[1].1.join("err")).unwrap_or_default()
        );
        let mut per = Vec::new();
        for (gw, gdir, p, ngx) in gateways {
            drop(ngx);
            let (events, _) = stop_mirror(p, &gdir);
            per.push((gw, events));
        }
        // A mirror writes an alert when its connection's exchange ends, and nginx decides
        // when its mirror connections end: the order within a gateway is not the verdict.
        for (_, events) in per.iter_mut() {
            events.sort_by_key(|e| e["kind"].as_str().unwrap_or("").to_string());
        }
        let v = verdicts(
            &per.iter()
                .map(|(g, e)| (*g, e.as_slice()))
                .collect::<Vec<_>>(),
        );
        let mut expected: Vec<_> = story_expected()
            .into_iter()
            .map(|(g, k, key)| {
                let key = if key == "-" {
                    key
                } else {
                    format!("story-key-{run}")
                };
                (g, k, key)
            })
            .collect();
        expected.sort();
        assert_eq!(v.0, expected, "run {run}");
        // The alerts themselves, but for the run's key and amount, are the same every run.
        let norm: Vec<Value> =
            v.1.iter()
                .map(|x| {
                    let mut x = x.clone();
                    for k in ["key", "request", "original"] {
                        strip_run(&mut x[k]);
                    }
                    x
                })
                .collect();
        match &first {
            None => first = Some((v.0, norm)),
            Some(f) => assert_eq!(f.1, norm, "run {run} differs from run 0"),
        }
    }
}

/// Removes what differs between runs of the nginx story by design: the run's key, the body
/// digests of its amounts, ports and flow ids of its connections.
fn strip_run(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in [
                "idempotency_key",
                "idempotency_key_sha256",
                "body_sha256",
                "body_canon_sha256",
                "body_len",
                "src_port",
                "dest_port",
                "flow_id",
                "community_id",
            ] {
                m.remove(k);
            }
            for (_, x) in m.iter_mut() {
                strip_run(x);
            }
        }
        Value::String(s) if s.starts_with("story-key-") => *s = "story-key".into(),
        _ => {}
    }
}

/// Later uses of a key while its first use is in flight, on one backend: each is handed to
/// exactly one instance. Registered while the first is in flight, the first's claimer gets
/// them with its end; after the end, the later use's own claim reads the end mark.
fn in_flight_contract(b: &mut dyn idemwatch::fleet::Backend, what: &str) {
    use idemwatch::fleet::{EndMark, RawClaim, RawReply};
    b.connect().expect("connects");
    let rk = RecordKey {
        scope: Scope([3; 16]),
        key: KeyId::of("in-flight"),
    };
    let claim = |id: &str, at: i64| Op::Claim {
        ticket: 0,
        rk,
        claim: Some(Claim {
            claim_id: id.into(),
            first_us: at,
            window_us: 60_000_000,
            ttl_ms: 60_000,
            record: format!("rec-{id}").into_bytes(),
        }),
    };
    let settle = |id: &str, end: Option<EndMark>| Op::Settle {
        ticket: 0,
        rk,
        claim_id: id.into(),
        first_response: Some(b"resp".to_vec()),
        stored: None,
        end,
    };
    let end = EndMark {
        at_us: 5_000_000,
        observed: true,
    };
    let held_end = |r: Option<RawReply>| match r {
        Some(RawReply::Claim(RawClaim::Held(raw))) => raw.end,
        other => panic!("{what}: not held: {other:?}"),
    };
    assert!(matches!(
        b.run(&[claim("a", 1_000_000)]).expect("rt").pop(),
        Some(RawReply::Claim(RawClaim::Free))
    ));
    // Two later uses while A is in flight: registered, no end to read yet.
    assert_eq!(
        held_end(b.run(&[claim("b", 2_000_000)]).expect("rt").pop()),
        None
    );
    assert_eq!(
        held_end(b.run(&[claim("c", 3_000_000)]).expect("rt").pop()),
        None
    );
    // Someone else's settle (not the claimer) neither files an end nor takes the uses.
    match b.run(&[settle("b", Some(end))]).expect("rt").pop() {
        Some(RawReply::Settled(u)) => assert!(u.is_empty(), "{what}: {u:?}"),
        other => panic!("{what}: {other:?}"),
    }
    // A's end comes back with both, once.
    match b.run(&[settle("a", Some(end))]).expect("rt").pop() {
        Some(RawReply::Settled(mut u)) => {
            u.sort();
            assert_eq!(u, vec![b"rec-b".to_vec(), b"rec-c".to_vec()], "{what}")
        }
        other => panic!("{what}: {other:?}"),
    }
    match b.run(&[settle("a", Some(end))]).expect("rt").pop() {
        Some(RawReply::Settled(u)) => assert!(u.is_empty(), "{what}: handed over twice"),
        other => panic!("{what}: {other:?}"),
    }
    // A use after the end reads it, and is not registered.
    assert_eq!(
        held_end(b.run(&[claim("d", 6_000_000)]).expect("rt").pop()),
        Some(end),
        "{what}"
    );
    // A settle without an end is not answered with uses.
    assert_eq!(
        b.run(&[settle("a", None)]).expect("rt").pop(),
        Some(RawReply::Done),
        "{what}"
    );
}

#[test]
fn later_uses_while_the_first_is_in_flight_go_to_one_instance_on_redis_and_in_memory() {
    let redis = Redis::start();
    let mut r = idemwatch::fleet::redis_store::RedisBackend::single(
        &redis.url(),
        "t:",
        Duration::from_secs(2),
        None,
    )
    .expect("a backend");
    in_flight_contract(&mut r, "redis");
    let mut m = idemwatch::fleet::memory::MemoryBackend::new(
        idemwatch::fleet::memory::MemoryStore::default(),
        "t:",
    );
    in_flight_contract(&mut m, "memory");
}

/// `read --stats` of one gateway's capture, sharing `redis` as `instance`.
fn read_shared(redis: &Redis, instance: &str, path: &Path) -> Vec<Value> {
    let url = redis.url();
    let p = path.to_string_lossy().into_owned();
    let run = run_with(
        &[
            "read",
            "--stats",
            "--store",
            &url,
            "--store-instance",
            instance,
            &p,
        ],
        None,
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.lines
}

/// A capture at `path` of one keyed POST on its own connection, answered `status` after
/// `answer_after_ms`.
fn slow_attempt(path: &Path, client: u8, at_ns: u64, key: &str, status: u16, answer_after_ms: u64) {
    let mut c = Conversation::new(
        support::v4([10, 0, 0, client], 42000 + u16::from(client)),
        support::server_v4(),
    )
    .starting_at(at_ns);
    c.handshake();
    let key = format!("Idempotency-Key: {key}");
    c.client_send(&post(
        "/v1/charges",
        &[
            &key,
            "Content-Type: application/json",
            "Authorization: Bearer sk_test_conc",
        ],
        br#"{"amount":4200,"currency":"usd"}"#,
    ));
    c.wait_ns(answer_after_ms * 1_000_000);
    if status == 200 {
        c.server_send(&json_ok("ch_conc_1"));
    } else {
        c.server_send(&support::response(
            status,
            "application/json",
            br#"{"error":{"type":"idempotency_error","message":"in progress"}}"#,
        ));
    }
    c.close();
    write_capture(
        path,
        Format::Pcap {
            big_endian: false,
            nanos: true,
        },
        1,
        c.packets(),
    );
}

#[test]
fn a_retry_on_another_gateway_while_the_first_is_in_flight_is_concurrent_reuse() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("gw1.pcap"), dir.path().join("gw2.pcap"));
    let t0 = support::BASE_TS_NS;
    // Gateway 1: the first attempt takes 3 s. The client times out after 1 s and retries;
    // the retry reaches gateway 2, which answers 409 (still in progress).
    slow_attempt(&a, 31, t0, "conc-k", 200, 3000);
    slow_attempt(&b, 32, t0 + 1_000_000_000, "conc-k", 409, 10);
    // Near miss: a retry after the first was answered is no concurrent use.
    let c = dir.path().join("gw2-late.pcap");
    slow_attempt(&c, 33, t0 + 5_000_000_000, "conc-k", 200, 10);
    let read = |path: &Path, instance: &str| read_shared(&redis, instance, path);
    assert!(alerts(&read(&a, "gw1")).is_empty());
    let gw2 = read(&b, "gw2");
    let got = alerts(&gw2);
    assert_eq!(got.len(), 1, "{gw2:?}");
    let v = got[0];
    assert_eq!(v["kind"], "concurrent_reuse");
    assert_eq!(v["key"], "conc-k");
    assert_eq!(v["original"]["observer"], "gw1");
    assert_eq!(v["original"]["src_ip"], "10.0.0.31");
    assert_eq!(v["original_response"]["status"], 200);
    assert_eq!(v["response"]["status"], 409);
    let late = read(&c, "gw2");
    assert!(
        alerts(&late)
            .iter()
            .all(|v| v["kind"] != "concurrent_reuse"),
        "{late:?}"
    );
}

/// Attempts at one request under other keys while its attempt is in flight, on one backend:
/// each is handed to exactly one instance.
fn churn_contract(b: &mut dyn idemwatch::fleet::Backend, what: &str) {
    use idemwatch::fleet::{AttemptKey, RawReply};
    use idemwatch::tracker::Identity;
    b.connect().expect("connects");
    let ak = AttemptKey {
        scope: Scope([4; 16]),
        identity: Identity([5; 16]),
    };
    let start = |id: &str, key: &str| Op::AttemptStarted {
        ak,
        claim_id: id.into(),
        key: KeyId::of(key),
        record: format!("att-{id}").into_bytes(),
        ttl_ms: 60_000,
    };
    let look = |id: &str, key: &str| Op::AttemptLookup {
        ticket: 0,
        ak,
        claim_id: id.into(),
        key: KeyId::of(key),
        waiter: format!("wait-{id}").into_bytes(),
        ttl_ms: 60_000,
    };
    let end = |id: &str, bad: bool| Op::AttemptEnded {
        ticket: 0,
        ak,
        claim_id: id.into(),
        bad,
        record: format!("ended-{id}").into_bytes(),
        ttl_ms: 60_000,
    };
    let one = |b: &mut dyn idemwatch::fleet::Backend, op: Op| b.run(&[op]).expect("rt").pop();
    assert_eq!(
        one(b, look("a", "k1")),
        Some(RawReply::Attempt(None)),
        "{what}"
    );
    one(b, start("a", "k1"));
    // The same key elsewhere is no churn: not registered. Another key is.
    assert_eq!(
        one(b, look("b", "k1")),
        Some(RawReply::Attempt(None)),
        "{what}"
    );
    assert_eq!(
        one(b, look("c", "k2")),
        Some(RawReply::Attempt(None)),
        "{what}"
    );
    // Another instance's start does not displace the attempt in flight.
    one(b, start("d", "k3"));
    assert_eq!(
        one(b, end("d", true)),
        Some(RawReply::Settled(vec![])),
        "{what}: not d's"
    );
    assert_eq!(
        one(b, end("a", false)),
        Some(RawReply::Settled(vec![b"wait-c".to_vec()])),
        "{what}"
    );
    // Ended well: kept, for requests that began while it was in flight; the lookup under
    // another key gets it and is filed as the attempt in flight in the same round trip.
    assert_eq!(
        one(b, look("e", "k4")),
        Some(RawReply::Attempt(Some((false, b"ended-a".to_vec())))),
        "{what}"
    );
    assert_eq!(
        one(b, look("f", "k5")),
        Some(RawReply::Attempt(None)),
        "{what}: e is in flight"
    );
    assert_eq!(
        one(b, end("e", true)),
        Some(RawReply::Settled(vec![b"wait-f".to_vec()])),
        "{what}"
    );
    assert_eq!(
        one(b, look("g", "k6")),
        Some(RawReply::Attempt(Some((true, b"ended-e".to_vec())))),
        "{what}"
    );
}

#[test]
fn attempts_under_other_keys_while_one_is_in_flight_go_to_one_instance_on_redis_and_in_memory() {
    let redis = Redis::start();
    let mut r = idemwatch::fleet::redis_store::RedisBackend::single(
        &redis.url(),
        "t:",
        Duration::from_secs(2),
        None,
    )
    .expect("a backend");
    churn_contract(&mut r, "redis");
    let mut m = idemwatch::fleet::memory::MemoryBackend::new(
        idemwatch::fleet::memory::MemoryStore::default(),
        "t:",
    );
    churn_contract(&mut m, "memory");
}

#[test]
fn a_fresh_key_on_another_gateway_while_the_first_attempt_is_in_flight_is_key_churn() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = support::BASE_TS_NS;
    // Gateway 1: the first attempt takes 31 s and succeeds. At 30 s the app gave up and sent
    // the same charge under a fresh key, through gateway 2: both ran.
    let (a, b) = (dir.path().join("gw1.pcap"), dir.path().join("gw2.pcap"));
    slow_attempt(&a, 41, t0, "churn-k1", 200, 31_000);
    slow_attempt(&b, 42, t0 + 30_000_000_000, "churn-k2", 200, 100);
    // Near miss: a fresh key after the first attempt succeeded is a new request.
    let c = dir.path().join("gw2-later.pcap");
    slow_attempt(&c, 43, t0 + 40_000_000_000, "churn-k3", 200, 100);
    let read = |path: &Path, instance: &str| read_shared(&redis, instance, path);
    assert!(alerts(&read(&a, "gw1")).is_empty());
    let gw2 = read(&b, "gw2");
    let got = alerts(&gw2);
    assert_eq!(got.len(), 1, "{gw2:?}");
    let v = got[0];
    assert_eq!(v["kind"], "key_churn");
    assert_eq!(v["key"], "churn-k2");
    assert_eq!(v["original"]["idempotency_key"], "churn-k1");
    assert_eq!(v["original"]["observer"], "gw1");
    assert_eq!(v["original_response"]["status"], 200);
    assert!(alerts(&read(&c, "gw3")).is_empty());
}
