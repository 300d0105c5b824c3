//! Flow identity: the connection's two endpoints, normalised so both directions share a key,
//! and the identifiers written with every event (`flow_id`, Community ID).
//!
//! The VLAN tag is not part of the key: mirror ports often tag the two directions differently.

use std::net::IpAddr;

use sha1::Digest;

use crate::ts::Timestamp;

pub use crate::net::{Endpoint, community_id};

/// The two endpoints, lower first, so both directions map to the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl FlowKey {
    pub fn new(a: Endpoint, b: Endpoint) -> FlowKey {
        if a <= b {
            FlowKey { lo: a, hi: b }
        } else {
            FlowKey { lo: b, hi: a }
        }
    }

    /// A hash that is the same for every run of one binary and every thread count, to shard
    /// flows across workers.
    pub fn shard_hash(&self) -> u64 {
        use std::hash::BuildHasher;
        // A fixed seed: deterministic within a build. foldhash, not SipHash: the reading
        // thread hashes every packet's key, and nothing here needs to resist chosen keys
        // (a skewed shard costs balance, never correctness: output is put back in order).
        foldhash::fast::FixedState::with_seed(0x1de3_7a7c_4d5e_2b19).hash_one(self)
    }
}

/// Which end sent a byte stream: side 0 is the source of the flow's first packet, side 1 the
/// other. Roles (client, server) are learnt later from the handshake or the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Side(pub u8);

impl Side {
    pub fn other(self) -> Side {
        Side(1 - (self.0 & 1))
    }

    pub fn index(self) -> usize {
        usize::from(self.0 & 1)
    }
}

/// What every event of a flow carries about it.
#[derive(Debug, Clone)]
pub struct FlowInfo {
    /// Endpoints by side.
    pub ends: [Endpoint; 2],
    pub flow_id: u64,
    pub community_id: String,
    pub first_ts: Timestamp,
    /// Index of the flow's first packet in the input: orders flows across workers.
    pub serial: u64,
    /// Index of the source file the flow was first seen in.
    pub file_index: usize,
}

impl FlowInfo {
    pub fn new(
        a: Endpoint,
        b: Endpoint,
        first_ts: Timestamp,
        serial: u64,
        file_index: usize,
    ) -> FlowInfo {
        FlowInfo {
            ends: [a, b],
            flow_id: flow_id(a, b, first_ts),
            community_id: community_id(a, b),
            first_ts,
            serial,
            file_index,
        }
    }
}

/// A 51-bit flow id (exact in a JSON double), stable across runs: a hash of the endpoints and
/// the first packet's time, so a reused port pair gives a new id.
fn flow_id(a: Endpoint, b: Endpoint, first_ts: Timestamp) -> u64 {
    let key = FlowKey::new(a, b);
    let mut h = sha2::Sha256::new();
    for e in [key.lo, key.hi] {
        match e.ip {
            IpAddr::V4(ip) => h.update(ip.octets()),
            IpAddr::V6(ip) => h.update(ip.octets()),
        }
        h.update(e.port.to_be_bytes());
    }
    h.update(first_ts.0.to_be_bytes());
    let d = h.finalize();
    let mut eight = [0u8; 8];
    eight.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(eight) & ((1 << 51) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: s.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn both_directions_share_key_and_ids() {
        let a = ep("10.0.0.5", 51544);
        let b = ep("10.0.0.9", 80);
        assert_eq!(FlowKey::new(a, b), FlowKey::new(b, a));
        assert_eq!(community_id(a, b), community_id(b, a));
        assert_eq!(flow_id(a, b, Timestamp(5)), flow_id(b, a, Timestamp(5)));
        assert_ne!(flow_id(a, b, Timestamp(5)), flow_id(a, b, Timestamp(6)));
    }
}
