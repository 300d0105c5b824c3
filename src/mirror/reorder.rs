//! The gateway's order of mirrored requests. A gateway answers its client before its mirror
//! copy has arrived here (nginx opens a connection, often a TLS handshake, per mirrored
//! request), so two requests a client sent back to back can arrive in either order. With the
//! time the gateway received each (`X-Request-Start`, believed from trusted proxies), the
//! mirror holds each request a short while and hands them on by that time.
//!
//! Takes the endpoint's events as they arrive, each stamped with its request's time (the
//! gateway's when it gave one); gives them in that time's order once held `hold`, or at once
//! past `max` held (counted). It leaves out where the time came from (`forwarded.rs`, the HTTP
//! session) and what the events say.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::http::HttpEvent;
use crate::stats::Stats;
use crate::ts::Timestamp;

/// Events held until their turn.
#[derive(Debug)]
pub struct GatewayOrder {
    hold: Duration,
    max: usize,
    /// By (request time, arrival rank): an exchange's events keep their order.
    held: BTreeMap<(Timestamp, u64), (Instant, HttpEvent)>,
    rank: u64,
    /// The latest request time handed on.
    last_out: Option<Timestamp>,
    /// Requests put back in the gateway's order, and those that came too late to be.
    reordered: u64,
    late: u64,
}

/// The time an event is ordered by: its request's.
fn request_time(ev: &HttpEvent) -> Timestamp {
    match ev {
        HttpEvent::Request { request, .. } => request.ts,
        HttpEvent::Transaction(tx) => tx.request.as_ref().map_or(tx.ts_done, |r| r.ts),
    }
}

impl GatewayOrder {
    /// Holds each event `hold` (zero: hands each on as it comes), `max` events at most.
    pub fn new(hold: Duration, max: usize) -> GatewayOrder {
        GatewayOrder {
            hold,
            max: max.max(1),
            held: BTreeMap::new(),
            rank: 0,
            last_out: None,
            reordered: 0,
            late: 0,
        }
    }

    /// An event arrived at `now`.
    pub fn push(&mut self, ev: HttpEvent, now: Instant) {
        let t = request_time(&ev);
        if matches!(ev, HttpEvent::Request { .. }) {
            if self.last_out.is_some_and(|l| t < l) {
                self.late += 1;
            } else if self.held.keys().next_back().is_some_and(|(l, _)| t < *l) {
                self.reordered += 1;
            }
        }
        self.held.insert((t, self.rank), (now, ev));
        self.rank += 1;
    }

    /// The events whose turn came by `now`: each held `hold`, in request time order; the
    /// earliest at once while more than `max` are held.
    pub fn ready(&mut self, now: Instant) -> Vec<HttpEvent> {
        let mut out = Vec::new();
        loop {
            let over = self.held.len() > self.max;
            let Some(entry) = self.held.first_entry() else {
                break;
            };
            let (arrived, _) = entry.get();
            if !over && now.saturating_duration_since(*arrived) < self.hold {
                break;
            }
            let ((t, _), (_, ev)) = entry.remove_entry();
            self.last_out = Some(self.last_out.map_or(t, |l| l.max(t)));
            out.push(ev);
        }
        out
    }

    /// How long until the next event's turn, if one is held.
    pub fn next_due(&self, now: Instant) -> Option<Duration> {
        let (arrived, _) = self.held.values().next()?;
        Some(
            self.hold
                .saturating_sub(now.saturating_duration_since(*arrived)),
        )
    }

    /// Adds the counters to `st`.
    pub fn add_counters(&self, st: &mut Stats) {
        st.mirror_reordered += self.reordered;
        st.mirror_reorder_late += self.late;
    }

    /// Every event held, in order (the endpoint is stopping).
    pub fn drain(&mut self) -> Vec<HttpEvent> {
        std::mem::take(&mut self.held)
            .into_values()
            .map(|(_, ev)| ev)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Conn, Request, TxId};
    use crate::net::Endpoint;
    use std::sync::Arc;

    fn request(n: u64, at_ms: i64) -> HttpEvent {
        let ep = Endpoint {
            ip: "10.0.0.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
            port: 1,
        };
        HttpEvent::Request {
            id: TxId {
                flow_id: n,
                flow_serial: n,
                n: 0,
            },
            conn: Arc::new(Conn {
                client: ep,
                server: ep,
                flow_id: n,
                community_id: Arc::from("1:x"),
                file_index: 0,
                tls: None,
            }),
            request: Box::new(Request {
                ts: Timestamp(at_ms * 1_000_000),
                ts_end: Timestamp(at_ms * 1_000_000),
                method: "POST".into(),
                path: "/".into(),
                ..Request::default()
            }),
        }
    }

    fn ids(v: &[HttpEvent]) -> Vec<u64> {
        v.iter()
            .map(|e| match e {
                HttpEvent::Request { id, .. } => id.flow_id,
                HttpEvent::Transaction(tx) => tx.id.flow_id,
            })
            .collect()
    }

    #[test]
    fn requests_that_raced_are_handed_on_in_the_gateways_order_after_the_hold() {
        let mut o = GatewayOrder::new(Duration::from_millis(100), 100);
        let t0 = Instant::now();
        // Received by the gateway at 10 ms and 12 ms, arrived here the other way round.
        o.push(request(2, 12), t0);
        o.push(request(1, 10), t0 + Duration::from_millis(3));
        assert!(o.ready(t0 + Duration::from_millis(50)).is_empty(), "held");
        // The earliest by the gateway's time arrived 3 ms after the other.
        assert_eq!(
            o.next_due(t0 + Duration::from_millis(50)),
            Some(Duration::from_millis(53))
        );
        assert_eq!(ids(&o.ready(t0 + Duration::from_millis(103))), vec![1, 2]);
        // One that comes after a later one was handed on cannot be put back: counted.
        o.push(request(3, 11), t0 + Duration::from_millis(200));
        assert_eq!(ids(&o.drain()), vec![3]);
        let mut st = Stats::default();
        o.add_counters(&mut st);
        assert_eq!((st.mirror_reordered, st.mirror_reorder_late), (1, 1));
    }

    #[test]
    fn without_a_hold_each_event_goes_at_once_and_past_the_bound_the_earliest_goes() {
        let t0 = Instant::now();
        let mut o = GatewayOrder::new(Duration::ZERO, 100);
        o.push(request(1, 10), t0);
        assert_eq!(ids(&o.ready(t0)), vec![1]);
        let mut o = GatewayOrder::new(Duration::from_secs(60), 2);
        for (n, at) in [(1, 30), (2, 10), (3, 20)] {
            o.push(request(n, at), t0);
        }
        assert_eq!(ids(&o.ready(t0)), vec![2], "only past the bound");
        assert_eq!(ids(&o.drain()), vec![3, 1]);
    }
}
