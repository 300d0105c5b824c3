//! Memory per tracked key: feeds N first uses of distinct keys (a keyed POST with a JSON body
//! and its 200 answer, as the HTTP layer hands them on) to the tracker and reports the growth
//! of the process's resident memory per key.
//!
//! Usage: key_memory [N] [--own-connections]   (default 1000000, one shared connection)
//!
//! `--own-connections` gives every key's request a connection of its own (a client that does
//! not keep connections alive): the connection a kept request holds is then part of its cost.

use std::sync::Arc;

// The binary's allocator: its size classes are what a kept key costs in `idemwatch`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use idemwatch::decode::Vlans;
use idemwatch::http::{Body, Conn, HttpEvent, KeyHeader, Request, Response, Transaction, TxId};
use idemwatch::reassembly::Endpoint;
use idemwatch::stats::Stats;
use idemwatch::tracker::{Tracker, TrackerConfig};
use idemwatch::ts::Timestamp;
use sha2::{Digest, Sha256};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let ep = |ip: &str, port| Endpoint {
        ip: ip.parse().unwrap(),
        port,
    };
    let own = std::env::args().any(|a| a == "--own-connections");
    let conn_of = |i: u64| {
        Arc::new(Conn {
            client: ep("10.1.2.3", 1024 + (i % 60_000) as u16),
            server: ep("10.0.0.9", 80),
            flow_id: i,
            community_id: Arc::from(format!("1:{i:026}=").as_str()),
            file_index: 0,
            tls: None,
        })
    };
    let shared = conn_of(0);
    let mut t = Tracker::new(TrackerConfig {
        max_keys: n as usize + 1,
        ..TrackerConfig::default()
    });
    let mut stats = Stats::default();
    let mut alerts = Vec::new();
    let before = rss_bytes();
    for i in 0..n {
        let conn = if own { conn_of(i) } else { shared.clone() };
        let ts = Timestamp(1_700_000_000_000_000_000 + i as i64 * 1_000_000);
        let body = format!(r#"{{"amount":{i},"currency":"usd"}}"#);
        let h: [u8; 32] = Sha256::digest(body.as_bytes()).into();
        let req = Request {
            ts,
            ts_end: ts,
            method: "POST".into(),
            path: "/v1/charges".into(),
            target_identity: idemwatch::http::target::identity(b"/v1/charges"),
            host: Some("api.example.com".into()),
            keys: vec![KeyHeader {
                name: "idempotency-key".into(),
                value: format!("8f14e45f-ceea-467f-a0e6-{i:012x}"),
            }],
            credential: Some([7; 32]),
            stripe_account: None,
            stripe_context: None,
            content_type: Some("application/json".into()),
            content_encoding: None,
            body: Body {
                len: body.len() as u64,
                sha256: Some(h),
                decoded_sha256: Some(h),
                canon_sha256: Some(h),
                complete: true,
                missing: 0,
            },
            vlans: Vlans::default(),
            stream_start: 0,
            peer_ack_at_start: None,
            answered_at_start: 0,
            lost_before: false,
            protocol: Default::default(),
        };
        let id = TxId {
            flow_id: 1,
            flow_serial: 0,
            n: i,
        };
        let ev = HttpEvent::Request {
            id,
            conn: conn.clone(),
            request: Box::new(req.clone()),
        };
        t.on_event(&ev, ts, &mut stats, &mut alerts);
        let resp = Response {
            ts,
            ts_end: ts,
            status: 200,
            interim: vec![],
            body: Body {
                len: 300,
                sha256: Some([9; 32]),
                decoded_sha256: Some([9; 32]),
                canon_sha256: None,
                complete: true,
                missing: 0,
            },
            resource_id: Some(format!("ch_3Nx{i:020}")),
            replayed: false,
        };
        let done = HttpEvent::Transaction(Box::new(Transaction {
            id,
            conn: conn.clone(),
            request: Some(req),
            response: Some(resp),
            ts_done: ts,
            server_seen: true,
            response_lost: false,
            not_processed: false,
        }));
        t.on_event(&done, ts, &mut stats, &mut alerts);
    }
    let after = rss_bytes();
    println!(
        "{} keys tracked, {} alerts; resident memory grew {:.1} MB: {:.0} bytes per key",
        t.tracked_keys(),
        alerts.len(),
        (after.saturating_sub(before)) as f64 / 1e6,
        (after.saturating_sub(before)) as f64 / n as f64
    );
}
