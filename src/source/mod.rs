//! Where frames come from: capture files (pcap, pcapng, stdin) and live interfaces, through
//! libpcap.
//!
//! Gives [`Frame`]s in capture-time order, several files merged into one stream. It leaves
//! out decoding: a frame is bytes, a link type and a time.

pub mod capture;
pub mod live;
pub mod mirror;

pub use capture::{CaptureSet, Frame, SourceError};
pub use live::{KernelStats, LiveCapture, LiveError, LiveOptions, LiveRead};
