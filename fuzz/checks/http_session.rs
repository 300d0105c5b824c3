//! The HTTP session fed arbitrary bytes in both directions, at arbitrary split points, with
//! gaps: it must neither panic nor stall. Without gaps, the same bytes cut at other points (each
//! piece cut again into pieces of 1 to 8 bytes, the interleaving of the two directions kept) must
//! give the same transactions: a sender chooses its segment boundaries, and they must not change
//! what idemwatch sees. The runner is generic over what reads the connection: `h2_session` runs
//! it on `HttpConn`.

use idemwatch::decode::Vlans;
use idemwatch::http::{HttpEvent, Limits, Session, SessionSettings, Settings, Sink};
use idemwatch::reassembly::{Chunk, EndReason, Endpoint, FlowInfo, Side, StreamSink};
use idemwatch::ts::Timestamp;

/// The connection every run reads, and the settings.
pub fn info() -> (FlowInfo, std::sync::Arc<SessionSettings>) {
    let ep = |p| Endpoint {
        ip: "10.0.0.1".parse().unwrap(),
        port: p,
    };
    let info = FlowInfo::new(ep(40000), ep(80), Timestamp(0), 0, 0);
    (
        info,
        SessionSettings::new(&Settings::default(), &Limits::default()),
    )
}

fn session() -> Session {
    let (info, cfg) = info();
    let mut s = Session::new(cfg, &info);
    s.on_client_side(Side(0), &mut Sink::default());
    s
}

/// What a transaction shows, for comparing runs.
type Seen = (
    Option<(
        String,
        String,
        Option<String>,
        Vec<String>,
        u64,
        Option<[u8; 32]>,
    )>,
    Option<(u16, u64, Option<[u8; 32]>)>,
    (u64, bool, bool, &'static str),
);

/// Runs the pieces; returns the transactions.
fn run<S: StreamSink<Ctx = Sink>>(
    make: fn() -> S,
    pieces: &[(u8, &[u8])],
    with_gaps: bool,
) -> Vec<Seen> {
    let mut s = make();
    let mut em = Sink::default();
    let mut off = [0u64; 2];
    for (ctl, bytes) in pieces {
        let side = Side(ctl & 1);
        let i = side.index();
        if with_gaps && ctl & 0x70 == 0x70 {
            let len = u64::from(ctl >> 7) + 1;
            s.on_gap(side, off[i], len, Timestamp(1), &mut em);
            off[i] += len;
        }
        let ack = off[1 - i];
        s.on_data(
            side,
            Chunk {
                offset: off[i],
                bytes,
                ts: Timestamp(1),
                peer_ack: Some(ack),
                vlans: Vlans::default(),
            },
            &mut em,
        );
        off[i] += bytes.len() as u64;
    }
    s.on_end(Side(0), EndReason::Fin, Timestamp(2), &mut em);
    s.on_end(Side(1), EndReason::Fin, Timestamp(2), &mut em);
    em.out
        .iter()
        .filter_map(|(_, e)| match e {
            HttpEvent::Transaction(t) => Some((
                t.request.as_ref().map(|r| {
                    (
                        r.method.clone(),
                        r.path.clone(),
                        r.host.clone(),
                        r.keys.iter().map(|k| k.value.clone()).collect(),
                        r.body.len,
                        r.body.sha256,
                    )
                }),
                t.response
                    .as_ref()
                    .map(|r| (r.status, r.body.len, r.body.sha256)),
                (
                    t.id.n,
                    t.not_processed,
                    t.response_lost,
                    t.request.as_ref().map_or("", |r| r.protocol.as_str()),
                ),
            )),
            _ => None,
        })
        .collect()
}

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    check_with(data, session);
}

/// One input through what `make` makes.
pub fn check_with<S: StreamSink<Ctx = Sink>>(data: &[u8], make: fn() -> S) {
    // Pieces: a control byte (side, gap) then up to 31 bytes.
    let mut pieces = Vec::new();
    let mut rest = data;
    while let Some((&ctl, r)) = rest.split_first() {
        let n = usize::from(ctl >> 3 & 0x1f).min(r.len());
        let (piece, r2) = r.split_at(n);
        pieces.push((ctl, piece));
        rest = r2;
    }
    let _ = run(make, &pieces, true);

    let whole = run(make, &pieces, false);
    let step = usize::from(data.first().copied().unwrap_or(0) % 8) + 1;
    let mut cut = Vec::new();
    for (ctl, bytes) in &pieces {
        if bytes.is_empty() {
            cut.push((*ctl, *bytes));
        }
        for part in bytes.chunks(step) {
            cut.push((*ctl, part));
        }
    }
    assert_eq!(
        whole,
        run(make, &cut, false),
        "segment boundaries changed the transactions"
    );
}
