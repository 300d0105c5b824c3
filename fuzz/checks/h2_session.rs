//! A connection's HTTP (`HttpConn`: HTTP/1.1, or HTTP/2 by its preface or an h2c upgrade)
//! through `http_session`'s check: any bytes both ways at any split points with gaps, neither
//! panic nor stall; without gaps, the same bytes cut at other points give the same
//! transactions, how each stream ended included. A sender chooses its frame and segment
//! boundaries, and they must not change what idemwatch sees. The seeds are the HTTP/2
//! conversations of `captures/h2/`.

#[path = "http_session.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod base;

use idemwatch::http::{HttpConn, Sink};
use idemwatch::reassembly::{Side, StreamSink};

fn conn() -> HttpConn {
    let (info, cfg) = base::info();
    let mut c = HttpConn::new(cfg, &info);
    c.on_client_side(Side(0), &mut Sink::default());
    c
}

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    base::check_with(data, conn);
}
