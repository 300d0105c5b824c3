//! Where sessions hand on what they finish: each event with the flow it came from, in the order
//! the events were finished, and the counters of the worker that runs them.
//!
//! It leaves out ordering across flows and workers: the pipeline stamps each event with its
//! place in the capture when it takes it (`pipeline/order.rs`).

use super::transaction::HttpEvent;
use crate::stats::{HasStats, Stats};
use crate::ts::Timestamp;

/// Finished events, and the counters of everything the worker runs (decode, reassembly, HTTP).
#[derive(Default)]
pub struct Sink {
    pub stats: Stats,
    /// Events in the order they were finished, each with its flow's serial number.
    pub out: Vec<(u64, HttpEvent)>,
    /// Capture time of the packet (or tick) being processed: never goes back.
    pub now: Timestamp,
}

impl Sink {
    /// Capture time moved to `now` (an earlier time leaves it where it is).
    pub fn advance(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
    }

    /// Hands on an event finished on the flow numbered `flow_serial`.
    pub(crate) fn push(&mut self, flow_serial: u64, ev: HttpEvent) {
        if matches!(ev, HttpEvent::Transaction(_)) {
            self.stats.http_transactions += 1;
        }
        self.out.push((flow_serial, ev));
    }
}

impl HasStats for Sink {
    fn stats(&mut self) -> &mut Stats {
        &mut self.stats
    }
}
