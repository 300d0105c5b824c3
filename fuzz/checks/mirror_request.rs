//! The mirror's request path: arbitrary bytes from a peer (a trusted proxy, so forwarding
//! headers are parsed) fed in pieces. No panic; and until the connection would be closed for
//! bad bytes, the same bytes in other pieces give the same requests and the same answers.

use std::net::SocketAddr;

use idemwatch::http::{HttpEvent, Limits, SessionSettings, Settings};
use idemwatch::mirror::{MirrorConnection, mirrored};
use idemwatch::reassembly::EndReason;
use idemwatch::ts::Timestamp;

type Seen = (String, String, Option<String>, String, Vec<String>, u64);

/// Feeds `data` in pieces of `step` bytes until the connection would be closed: the requests
/// seen (method, path, host, client address, keys, body length) and the answers sent.
fn run(data: &[u8], step: usize) -> (Vec<Seen>, usize, bool) {
    let limits = Limits {
        max_head_bytes: 2048,
        max_headers: 16,
        ..Limits::default()
    };
    let mut s = SessionSettings::new(&Settings::default(), &limits);
    mirrored(
        &mut s,
        &[
            "127.0.0.0/8".parse().expect("net"),
            "::1/128".parse().expect("net"),
        ],
    );
    let peer: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
    let local: SocketAddr = "127.0.0.1:8443".parse().expect("addr");
    let mut conn = MirrorConnection::new(s, peer, local, 1);
    let mut seen = Vec::new();
    let mut answers = 0;
    let mut bad = false;
    let keep = |events: Vec<HttpEvent>, seen: &mut Vec<Seen>| {
        for ev in events {
            if let HttpEvent::Request { conn, request, .. } = ev {
                seen.push((
                    request.method.clone(),
                    request.path.clone(),
                    request.host.clone(),
                    conn.client.ip.to_string(),
                    request.keys.iter().map(|k| k.value.clone()).collect(),
                    request.body.len,
                ));
            }
        }
    };
    for piece in data.chunks(step.max(1)) {
        let fed = conn.feed(piece, Timestamp(1));
        answers += fed.answers;
        keep(fed.events, &mut seen);
        if fed.bad {
            bad = true;
            break;
        }
    }
    let (events, _) = conn.end(EndReason::Fin, Timestamp(2));
    keep(events, &mut seen);
    (seen, answers, bad)
}

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let whole = run(rest, rest.len());
    let cut = run(rest, usize::from(sel % 16) + 1);
    if !whole.2 && !cut.2 {
        assert_eq!(whole, cut, "piece boundaries changed the mirrored requests");
    }
}
