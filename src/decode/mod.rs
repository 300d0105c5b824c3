//! Frames to TCP segments: link layer, VLAN tags, IPv4/IPv6, IPv4 fragments, TCP.
//!
//! Takes a captured frame and its link type; gives a [`Segment`] borrowing the frame's bytes
//! (or the rebuilt packet's, after defragmentation), or says why the frame was skipped. It
//! leaves out everything above TCP, and does not drop packets with bad checksums: it counts
//! them, since checksum offload makes them wrong on the capturing host.

pub mod defrag;
pub mod ip;
pub mod link;

use std::net::IpAddr;

use crate::ts::Timestamp;

pub use defrag::{DefragSettings, Defragmenter};
pub use ip::{Decoded, Decoder};
pub use link::LinkType;

/// TCP flags that reassembly acts upon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

pub use crate::net::Vlans;

/// One TCP segment as seen on the wire.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    pub ts: Timestamp,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// Payload bytes that were captured.
    pub payload: &'a [u8],
    /// Payload bytes that were on the wire but cut by the snaplen: a hole right after `payload`.
    pub missing_tail: u32,
    pub vlans: Vlans,
}
