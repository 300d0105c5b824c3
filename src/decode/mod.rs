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

/// VLAN ids of a frame, outer first (802.1Q: one; QinQ: two). Reported, never part of a flow key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Vlans {
    ids: [u16; 2],
    len: u8,
}

impl Vlans {
    pub fn push(&mut self, id: u16) {
        if let Some(slot) = self.ids.get_mut(usize::from(self.len)) {
            *slot = id;
            self.len += 1;
        }
    }

    pub fn as_slice(&self) -> &[u16] {
        self.ids.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

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
