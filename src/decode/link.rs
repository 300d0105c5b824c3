//! Link layers: which header sits before the IP packet, and how long it is.
//!
//! Values are libpcap's DLT numbers as `pcap_datalink()` reports them (libpcap maps the file's
//! LINKTYPE_ values to these). Link types we do not decode are refused when the capture is
//! opened, so a capture never silently yields nothing.

/// Link types idemwatch decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// DLT_EN10MB: Ethernet II, with 802.1Q / QinQ tags.
    Ethernet,
    /// DLT_NULL: BSD loopback, 4-byte address family in the capturing host's byte order.
    Null,
    /// DLT_LOOP: as DLT_NULL, in network byte order (OpenBSD).
    Loop,
    /// DLT_LINUX_SLL: Linux cooked capture v1 (16-byte header).
    LinuxSll,
    /// DLT_LINUX_SLL2: Linux cooked capture v2 (20-byte header), written by `tcpdump -i any`.
    LinuxSll2,
    /// DLT_RAW (12 on most systems, 14 on OpenBSD; LINKTYPE_RAW 101 in files): IPv4 or IPv6.
    Raw,
    /// DLT_IPV4 (228).
    Ipv4,
    /// DLT_IPV6 (229).
    Ipv6,
}

impl LinkType {
    /// The link type of a libpcap DLT value, or `None` when it is not decoded.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            _ => return None,
        })
    }

    /// What the link layers we decode are called, for error messages.
    pub const SUPPORTED: &'static str = "Ethernet (with 802.1Q/QinQ), Linux cooked SLL and SLL2, \
        BSD loopback (NULL, LOOP) and raw IP (DLT 12/14/101, 228, 229)";
}

/// Where the network layer starts in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetStart {
    /// An EtherType follows (Ethernet-like headers: VLAN tags may follow).
    EtherType(u16, usize),
    /// An IP packet (version from its first nibble) starts at this offset.
    Ip(usize),
    /// Not IP (ARP, a non-IP address family, ...).
    NotIp,
}

/// Finds the network layer in a frame, or `None` when the frame is too short for its link
/// header.
pub fn net_start(link: LinkType, frame: &[u8]) -> Option<NetStart> {
    match link {
        LinkType::Ethernet => {
            let t = frame.get(12..14)?;
            Some(NetStart::EtherType(u16::from_be_bytes([t[0], t[1]]), 14))
        }
        LinkType::Null | LinkType::Loop => {
            // The family is in the capturing host's byte order (NULL) or network order (LOOP);
            // rather than guess the writer's endianness, accept every IPv4/IPv6 family value
            // of the BSDs and Linux and let the IP version nibble decide.
            let fam = frame.get(0..4)?;
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let known = |v: u32| matches!(v, 2 | 10 | 24 | 28 | 30);
            if known(le) || known(be) {
                Some(NetStart::Ip(4))
            } else {
                Some(NetStart::NotIp)
            }
        }
        LinkType::LinuxSll => {
            let t = frame.get(14..16)?;
            Some(NetStart::EtherType(u16::from_be_bytes([t[0], t[1]]), 16))
        }
        LinkType::LinuxSll2 => {
            let t = frame.get(0..2)?;
            if frame.len() < 20 {
                return None;
            }
            Some(NetStart::EtherType(u16::from_be_bytes([t[0], t[1]]), 20))
        }
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => Some(NetStart::Ip(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_dlt_is_refused() {
        assert_eq!(LinkType::from_dlt(105), None);
        assert_eq!(LinkType::from_dlt(127), None);
        assert_eq!(LinkType::from_dlt(276), Some(LinkType::LinuxSll2));
    }

    #[test]
    fn short_frames_have_no_network_layer() {
        assert_eq!(net_start(LinkType::Ethernet, &[0; 13]), None);
        assert_eq!(net_start(LinkType::LinuxSll2, &[8, 0, 0]), None);
        assert_eq!(net_start(LinkType::Null, &[2, 0]), None);
    }

    #[test]
    fn null_accepts_both_byte_orders() {
        assert_eq!(
            net_start(LinkType::Null, &[2, 0, 0, 0]),
            Some(NetStart::Ip(4))
        );
        assert_eq!(
            net_start(LinkType::Null, &[0, 0, 0, 30]),
            Some(NetStart::Ip(4))
        );
        assert_eq!(
            net_start(LinkType::Null, &[7, 0, 0, 0]),
            Some(NetStart::NotIp)
        );
    }
}
