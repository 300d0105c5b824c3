//! Property: how a conversation is cut into segments, reordered or retransmitted on the wire
//! never changes the transactions idemwatch reports.
//!
//! For a generated keep-alive conversation of 1–4 request/response pairs with random bodies,
//! any re-segmentation (random split points, 1-byte segments included), any reordering within
//! a bounded window inside each flight (the segments of one message: a response is never seen
//! before the request it answers) and random duplication of segments must give exactly the
//! transactions of the plain in-order conversation, timestamps aside. A second property lets
//! the window span both directions, as a mirror port merging them may. Each case runs the
//! binary twice, so the case count is modest.

use crate::support;

use std::ops::Range;

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::json;
use support::*;

/// How one message is cut into segments.
#[derive(Clone, Debug)]
enum Split {
    /// Segments of this many bytes (1 gives 1-byte segments).
    Mss(usize),
    /// Cut at these offsets (those past the end are ignored).
    Cuts(Vec<usize>),
}

#[derive(Clone, Debug)]
struct Exchange {
    key: bool,
    request_body: Vec<u8>,
    status: u16,
    response_body: Vec<u8>,
    /// Chunk size when the response is chunked.
    chunked: Option<usize>,
    request_split: Split,
    response_split: Split,
}

impl Exchange {
    fn request(&self, i: usize) -> Vec<u8> {
        let mut head = format!("POST /v1/items/{i} HTTP/1.1\r\nHost: api.example.com\r\n");
        if self.key {
            head.push_str(&format!("Idempotency-Key: key-{i}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\n\r\n",
            self.request_body.len()
        ));
        let mut m = head.into_bytes();
        m.extend_from_slice(&self.request_body);
        m
    }

    fn response(&self) -> Vec<u8> {
        let status = self.status;
        match self.chunked {
            None => response(status, "application/octet-stream", &self.response_body),
            Some(size) => {
                let mut m = format!(
                    "HTTP/1.1 {status} {}\r\nTransfer-Encoding: chunked\r\n\r\n",
                    reason(status)
                )
                .into_bytes();
                for chunk in self.response_body.chunks(size) {
                    m.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
                    m.extend_from_slice(chunk);
                    m.extend_from_slice(b"\r\n");
                }
                m.extend_from_slice(b"0\r\n\r\n");
                m
            }
        }
    }
}

fn split_strategy() -> impl Strategy<Value = Split> {
    prop_oneof![
        1 => Just(Split::Mss(1)),
        2 => (2usize..40).prop_map(Split::Mss),
        2 => (40usize..700).prop_map(Split::Mss),
        3 => vec(0usize..1500, 0..8).prop_map(Split::Cuts),
    ]
}

fn exchange_strategy() -> impl Strategy<Value = Exchange> {
    (
        any::<bool>(),
        vec(any::<u8>(), 0..600),
        prop::sample::select(vec![200u16, 201, 202, 400, 404, 409, 500]),
        vec(any::<u8>(), 0..1500),
        prop::option::of(1usize..300),
        split_strategy(),
        split_strategy(),
    )
        .prop_map(
            |(key, request_body, status, response_body, chunked, request_split, response_split)| {
                Exchange {
                    key,
                    request_body,
                    status,
                    response_body,
                    chunked,
                    request_split,
                    response_split,
                }
            },
        )
}

/// Handshake, the exchanges, FIN/FIN/ACK; with `bent`, each message cut as its `Split` says,
/// otherwise in MSS-sized segments. Returns the packets and each message's index range.
fn conversation(exchanges: &[Exchange], bent: bool) -> (Vec<Packet>, Vec<Range<usize>>) {
    let mut c = Conversation::v4().with_isns(0xffff_f000, 0x7fff_fff0);
    c.handshake();
    let mut flights = Vec::new();
    let mut send = |c: &mut Conversation, dir: Dir, data: &[u8], split: &Split| {
        let range = match (bent, split) {
            (false, _) => c.send(dir, data),
            (true, Split::Mss(mss)) => {
                let cuts: Vec<usize> = (1..data.len().div_ceil(*mss)).map(|i| i * mss).collect();
                c.send_split(dir, data, &cuts)
            }
            (true, Split::Cuts(cuts)) => {
                let mut cuts = cuts.clone();
                cuts.sort_unstable();
                c.send_split(dir, data, &cuts)
            }
        };
        flights.push(range);
    };
    for (i, e) in exchanges.iter().enumerate() {
        send(&mut c, Dir::ToServer, &e.request(i), &e.request_split);
        send(&mut c, Dir::ToClient, &e.response(), &e.response_split);
    }
    c.close();
    (c.into_packets(), flights)
}

/// xorshift64*: the reorder and duplication choices, from the case's seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Moves each packet of a flight at most `window` places later, and adds a copy of some of them
/// at most `window` places after the original, never outside the flight. Restamps the result.
fn reorder_and_duplicate(
    packets: &[Packet],
    flights: &[Range<usize>],
    window: usize,
    dup_percent: u64,
    seed: u64,
) -> Vec<Packet> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(packets.len() * 2);
    let mut at = 0;
    for flight in flights {
        out.extend_from_slice(&packets[at..flight.start]);
        let mut keyed: Vec<(usize, Packet)> = Vec::new();
        for (i, p) in packets[flight.clone()].iter().enumerate() {
            let shift = rng.below(window as u64 + 1) as usize;
            keyed.push((i + shift, p.clone()));
            if rng.below(100) < dup_percent {
                let later = 1 + rng.below(window as u64) as usize;
                keyed.push((i + later, p.clone()));
            }
        }
        keyed.sort_by_key(|(k, _)| *k);
        out.extend(keyed.into_iter().map(|(_, p)| p));
        at = flight.end;
    }
    out.extend_from_slice(&packets[at..]);
    restamp(&mut out);
    out
}

/// Runs the plain conversation and the bent one and compares their transactions. With
/// `across_directions`, the reorder window spans everything between the handshake and the
/// close, so a response segment may be captured a few packets before the end of its request,
/// as on a mirror (SPAN) port merging both directions; otherwise each message is reordered
/// within itself.
fn check(
    exchanges: &[Exchange],
    window: usize,
    dup_percent: u64,
    seed: u64,
    across_directions: bool,
) -> Result<(), TestCaseError> {
    let (plain, _) = conversation(exchanges, false);
    let reference = read_packets(LINKTYPE_ETHERNET, &plain);
    prop_assert_eq!(reference.code, Some(0), "stderr: {}", reference.stderr);
    let expected = reference.comparable_transactions();
    // The reference itself must be right, or comparing with it proves nothing.
    prop_assert_eq!(
        expected.len(),
        exchanges.len(),
        "reference: {:#?}",
        expected
    );
    for (i, (t, e)) in expected.iter().zip(exchanges).enumerate() {
        prop_assert_eq!(&t["request"]["path"], &format!("/v1/items/{i}"));
        prop_assert_eq!(&t["request"]["body_len"], &json!(e.request_body.len()));
        prop_assert_eq!(
            &t["request"]["body_sha256"],
            &json!(sha256_hex(&e.request_body))
        );
        prop_assert_eq!(&t["response"]["status"], &json!(e.status));
        prop_assert_eq!(&t["response"]["body_len"], &json!(e.response_body.len()));
        prop_assert_eq!(
            &t["response"]["body_sha256"],
            &json!(sha256_hex(&e.response_body))
        );
    }

    let (cut, mut flights) = conversation(exchanges, true);
    if across_directions {
        let all = flights[0].start..flights[flights.len() - 1].end;
        flights = std::iter::once(all).collect();
    }
    let bent = reorder_and_duplicate(&cut, &flights, window, dup_percent, seed);
    let run = read_packets(LINKTYPE_ETHERNET, &bent);
    prop_assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let got = run.comparable_transactions();
    // (path, status) pairs first: a short message when requests and responses are mispaired.
    prop_assert_eq!(
        pairs(&got),
        pairs(&expected),
        "(request path, response status) pairs"
    );
    prop_assert_eq!(got, expected);
    prop_assert_eq!(run.stat("tcp_gaps"), 0);
    prop_assert_eq!(run.stat("tcp_overlap_mismatch"), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn segmentation_reordering_and_duplication_never_change_the_transactions(
        exchanges in vec(exchange_strategy(), 1..=4),
        window in 1usize..=4,
        dup_percent in 0u64..=40,
        seed in any::<u64>(),
    ) {
        check(&exchanges, window, dup_percent, seed, false)?;
    }

    #[test]
    fn reordering_across_directions_never_changes_the_transactions(
        exchanges in vec(exchange_strategy(), 1..=4),
        window in 1usize..=4,
        dup_percent in 0u64..=40,
        seed in any::<u64>(),
    ) {
        check(&exchanges, window, dup_percent, seed, true)?;
    }
}
