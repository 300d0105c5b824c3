//! Plain network values that several stages name: one end of a TCP connection, the VLAN tags
//! of a packet, and a connection's Community ID.
//!
//! A leaf: it imports no stage. `decode` and `reassembly` produce these values, `http` carries
//! them in a `Conn`, and `tracker` and `fleet` keep and rebuild them, without any of those
//! depending on the stage that first made them (the tracker imports no packet stage, and the
//! fleet none either). Parsing and flow keys stay in their stages.

use std::net::IpAddr;

use base64::Engine;
use sha1::Digest;

/// One end of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// VLAN ids of a frame, outer first (802.1Q: one; QinQ: two). Reported, never part of a flow key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Vlans {
    ids: [u16; 2],
    len: u8,
}

impl Vlans {
    /// No tag.
    pub const NONE: Vlans = Vlans {
        ids: [0; 2],
        len: 0,
    };

    /// Adds a tag; a third and later tags are dropped (only two are reported).
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

/// Community ID v1 (seed 0) of a TCP flow, as Zeek and Suricata write it, so alerts join their
/// logs: base64 of SHA-1 over seed, ordered addresses, protocol, padding and ports.
pub fn community_id(a: Endpoint, b: Endpoint) -> String {
    let (x, y) = if (a.ip, a.port) <= (b.ip, b.port) {
        (a, b)
    } else {
        (b, a)
    };
    let mut h = sha1::Sha1::new();
    h.update(0u16.to_be_bytes());
    match (x.ip, y.ip) {
        (IpAddr::V4(p), IpAddr::V4(q)) => {
            h.update(p.octets());
            h.update(q.octets());
        }
        (p, q) => {
            h.update(to_v6(p).octets());
            h.update(to_v6(q).octets());
        }
    }
    h.update([6u8, 0u8]);
    h.update(x.port.to_be_bytes());
    h.update(y.port.to_be_bytes());
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
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
    fn community_id_matches_the_specification_example() {
        // From the Community ID spec's baseline (tcp.pcap): 128.232.110.120:34855 -> 66.35.250.204:80
        assert_eq!(
            community_id(ep("128.232.110.120", 34855), ep("66.35.250.204", 80)),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
    }

    #[test]
    fn community_id_is_the_same_both_ways() {
        let a = ep("10.0.0.5", 51544);
        let b = ep("10.0.0.9", 80);
        assert_eq!(community_id(a, b), community_id(b, a));
    }

    #[test]
    fn a_third_vlan_tag_is_dropped() {
        let mut v = Vlans::default();
        for id in [10, 20, 30] {
            v.push(id);
        }
        assert_eq!(v.as_slice(), &[10, 20]);
    }
}
