//! Where each event goes in the output: its place in the capture.
//!
//! Takes the events a flow worker's sessions hand to their [`Sink`], in the order they were
//! finished, after each packet (or tick); gives each an [`OrderKey`]. Merging the workers'
//! events by key puts them in the order one worker would have written them, so the output is
//! the same byte for byte whatever the number of workers (`parallel.rs`). It leaves out what
//! the events say.

use crate::http::{HttpEvent, Sink};

/// Orders output across flows and workers: the packet that completed an event, then the flow
/// (by its first packet), then the event's rank within that packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey {
    pub packet_no: u64,
    pub flow_serial: u64,
    pub sub: u32,
}

/// Stamps events with their keys: the packet being processed, and a rank that counts on
/// across every call for the same packet (a segment and the sweep after it).
#[derive(Debug, Default)]
pub struct Order {
    packet_no: u64,
    sub: u32,
}

impl Order {
    /// The packet (or tick) being processed.
    pub fn set_packet(&mut self, packet_no: u64) {
        if packet_no != self.packet_no {
            self.packet_no = packet_no;
            self.sub = 0;
        }
    }

    /// Takes the events in `sink`, in the order they were finished, onto `out` with their keys.
    pub fn stamp(&mut self, sink: &mut Sink, out: &mut Vec<(OrderKey, HttpEvent)>) {
        for (flow_serial, ev) in sink.out.drain(..) {
            let key = OrderKey {
                packet_no: self.packet_no,
                flow_serial,
                sub: self.sub,
            };
            self.sub += 1;
            out.push((key, ev));
        }
    }
}
