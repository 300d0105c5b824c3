//! IP and TCP: from a frame to a [`Segment`].
//!
//! Uses etherparse's lax slicing, which reads what was captured even when the snaplen cut the
//! packet short; the bytes that were cut are reported as `missing_tail`, never guessed.

use std::net::IpAddr;

use etherparse::{EtherType, IpNumber, LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket, TcpSlice};

use super::defrag::{DefragSettings, Defragmenter, FragOutcome, Fragment};
use super::link::{LinkType, NetStart, net_start};
use super::{Segment, TcpFlags, Vlans};
use crate::stats::Stats;
use crate::ts::Timestamp;

/// The result of decoding one frame.
#[derive(Debug)]
pub enum Decoded<'a> {
    Segment(Segment<'a>),
    /// Nothing to hand on (counted in stats): not IP, not TCP, malformed, or a fragment kept for
    /// later.
    Skip,
}

/// Decodes frames; owns the fragment table and the buffer of the last rebuilt packet.
pub struct Decoder {
    defrag: Defragmenter,
    rebuilt: Vec<u8>,
}

struct IpInfo {
    src: IpAddr,
    dst: IpAddr,
}

impl Decoder {
    pub fn new(settings: &DefragSettings) -> Self {
        Decoder {
            defrag: Defragmenter::new(
                settings.max_fragment_sets,
                settings.max_fragment_bytes,
                settings.fragment_timeout,
            ),
            rebuilt: Vec::new(),
        }
    }

    /// Drops fragment sets that timed out (capture time).
    pub fn expire(&mut self, now: Timestamp, stats: &mut Stats) {
        self.defrag.expire(now);
        stats.fragments_dropped += self.defrag.take_dropped();
    }

    /// Decodes one frame. `wire_len` is the frame's length on the wire (`len` of the pcap
    /// record), which is larger than `frame.len()` when the snaplen cut it.
    pub fn decode<'a>(
        &'a mut self,
        ts: Timestamp,
        link: LinkType,
        frame: &'a [u8],
        wire_len: u32,
        stats: &mut Stats,
    ) -> Decoded<'a> {
        stats.packets += 1;
        stats.bytes += frame.len() as u64;
        if (wire_len as usize) > frame.len() {
            stats.truncated_packets += 1;
        }
        let sliced = match net_start(link, frame) {
            None => {
                stats.decode_errors += 1;
                return Decoded::Skip;
            }
            Some(NetStart::NotIp) => {
                stats.non_ip_packets += 1;
                return Decoded::Skip;
            }
            Some(NetStart::EtherType(t, off)) => match frame.get(off..) {
                Some(rest) => LaxSlicedPacket::from_ether_type(EtherType(t), rest),
                None => {
                    stats.decode_errors += 1;
                    return Decoded::Skip;
                }
            },
            Some(NetStart::Ip(off)) => match frame.get(off..).map(LaxSlicedPacket::from_ip) {
                Some(Ok(p)) => p,
                _ => {
                    stats.decode_errors += 1;
                    return Decoded::Skip;
                }
            },
        };
        let mut vlans = Vlans::default();
        for ext in &sliced.link_exts {
            if let LaxLinkExtSlice::Vlan(v) = ext {
                vlans.push(v.vlan_identifier().value());
            }
        }
        let net = match &sliced.net {
            Some(n @ (LaxNetSlice::Ipv4(_) | LaxNetSlice::Ipv6(_))) => n,
            Some(LaxNetSlice::Arp(_)) => {
                stats.non_ip_packets += 1;
                return Decoded::Skip;
            }
            None => {
                if sliced.stop_err.is_some() {
                    stats.decode_errors += 1;
                } else {
                    stats.non_ip_packets += 1;
                }
                return Decoded::Skip;
            }
        };
        match net {
            LaxNetSlice::Ipv4(v4) => {
                let h = v4.header();
                let info = IpInfo {
                    src: IpAddr::V4(h.source_addr()),
                    dst: IpAddr::V4(h.destination_addr()),
                };
                if !ipv4_checksum_matches(h.slice(), h.header_checksum()) {
                    stats.bad_checksums += 1;
                }
                let payload = v4.payload();
                if payload.fragmented {
                    stats.ipv4_fragments += 1;
                    if payload.incomplete {
                        // A cut fragment cannot be placed safely.
                        stats.fragments_dropped += 1;
                        return Decoded::Skip;
                    }
                    let frag = Fragment {
                        src: h.source_addr(),
                        dst: h.destination_addr(),
                        protocol: payload.ip_number.0,
                        id: h.identification(),
                        offset_units: h.fragments_offset().value(),
                        more_fragments: h.more_fragments(),
                    };
                    let outcome = self.defrag.add(ts, frag, payload.payload);
                    stats.fragments_dropped += self.defrag.take_dropped();
                    return match outcome {
                        FragOutcome::Complete(data) => {
                            stats.ipv4_reassembled += 1;
                            if payload.ip_number != IpNumber::TCP {
                                stats.non_tcp_packets += 1;
                                return Decoded::Skip;
                            }
                            self.rebuilt = data;
                            tcp_segment(ts, info, &self.rebuilt, 0, vlans, false, stats)
                        }
                        FragOutcome::Pending | FragOutcome::Dropped => Decoded::Skip,
                    };
                }
                if payload.ip_number != IpNumber::TCP {
                    stats.non_tcp_packets += 1;
                    return Decoded::Skip;
                }
                let declared = usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4);
                let missing = declared.saturating_sub(payload.payload.len());
                tcp_segment(
                    ts,
                    info,
                    payload.payload,
                    missing,
                    vlans,
                    !payload.incomplete,
                    stats,
                )
            }
            LaxNetSlice::Ipv6(v6) => {
                let h = v6.header();
                let info = IpInfo {
                    src: IpAddr::V6(h.source_addr()),
                    dst: IpAddr::V6(h.destination_addr()),
                };
                let payload = v6.payload();
                if payload.fragmented {
                    stats.ipv6_fragments += 1;
                    return Decoded::Skip;
                }
                if payload.ip_number != IpNumber::TCP {
                    stats.non_tcp_packets += 1;
                    return Decoded::Skip;
                }
                let declared =
                    usize::from(h.payload_length()).saturating_sub(v6.extensions().slice().len());
                let missing = declared.saturating_sub(payload.payload.len());
                tcp_segment(
                    ts,
                    info,
                    payload.payload,
                    missing,
                    vlans,
                    !payload.incomplete,
                    stats,
                )
            }
            LaxNetSlice::Arp(_) => Decoded::Skip,
        }
    }
}

/// Parses the TCP header of an IP payload. `missing` is how many IP payload bytes the snaplen
/// cut off.
fn tcp_segment<'a>(
    ts: Timestamp,
    ip: IpInfo,
    ip_payload: &'a [u8],
    missing: usize,
    vlans: Vlans,
    verify_checksum: bool,
    stats: &mut Stats,
) -> Decoded<'a> {
    let tcp = match TcpSlice::from_slice(ip_payload) {
        Ok(t) => t,
        Err(_) => {
            stats.decode_errors += 1;
            return Decoded::Skip;
        }
    };
    if verify_checksum && missing == 0 {
        let sum = match (ip.src, ip.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => tcp.calc_checksum_ipv4(s.octets(), d.octets()).ok(),
            (IpAddr::V6(s), IpAddr::V6(d)) => tcp.calc_checksum_ipv6(s.octets(), d.octets()).ok(),
            _ => None,
        };
        if sum != Some(tcp.checksum()) {
            stats.bad_checksums += 1;
        }
    }
    Decoded::Segment(Segment {
        ts,
        src: ip.src,
        dst: ip.dst,
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: TcpFlags {
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
        },
        payload: tcp.payload(),
        missing_tail: u32::try_from(missing).unwrap_or(u32::MAX),
        vlans,
    })
}

/// Whether an IPv4 header's checksum is the one etherparse's `Ipv4Header::calc_header_checksum`
/// gives, computed on the header bytes in place (building the owned header cost more than the
/// sum). As there, the reserved flag bit is left out of the sum.
fn ipv4_checksum_matches(header: &[u8], stored: u16) -> bool {
    let mut sum = 0u32;
    for (i, word) in header.chunks_exact(2).enumerate() {
        let (hi, lo) = match word {
            [hi, lo] => (*hi, *lo),
            _ => continue,
        };
        let hi = match i {
            // The checksum itself.
            5 => continue,
            // Flags and fragment offset: the reserved bit is not part of the header etherparse sums.
            3 => hi & 0x7f,
            _ => hi,
        };
        sum += u32::from(u16::from_be_bytes([hi, lo]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16) == stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The in-place IPv4 checksum check agrees with etherparse's owned header, with a
        /// right or a wrong checksum, reserved flag bit and options included.
        #[test]
        fn ipv4_checksum_check_agrees_with_etherparse(
            mut bytes in proptest::collection::vec(any::<u8>(), 60),
            ihl in 5u8..16,
            fix in any::<bool>(),
        ) {
            let len = usize::from(ihl) * 4;
            bytes[0] = 0x40 | ihl;
            bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            if fix {
                let h = etherparse::Ipv4HeaderSlice::from_slice(&bytes).unwrap().to_header();
                bytes[10..12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
            }
            let h = etherparse::Ipv4HeaderSlice::from_slice(&bytes).unwrap();
            let theirs = h.to_header().calc_header_checksum() == h.header_checksum();
            prop_assert_eq!(ipv4_checksum_matches(h.slice(), h.header_checksum()), theirs);
            if fix {
                prop_assert!(theirs);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// No frame, whatever its bytes and claimed length, panics the decoder.
        #[test]
        fn arbitrary_frames_never_panic(
            frame in proptest::collection::vec(any::<u8>(), 0..200),
            wire_extra in 0u32..100,
            link in 0usize..8,
        ) {
            let links = [
                LinkType::Ethernet, LinkType::Null, LinkType::Loop, LinkType::LinuxSll,
                LinkType::LinuxSll2, LinkType::Raw, LinkType::Ipv4, LinkType::Ipv6,
            ];
            let mut d = Decoder::new(&DefragSettings::default());
            let mut st = Stats::default();
            let wire = frame.len() as u32 + wire_extra;
            let _ = d.decode(Timestamp(0), links[link], &frame, wire, &mut st);
            prop_assert_eq!(st.packets, 1);
        }

        /// The same for IPv4 packets with a plausible start, where most of the decoder runs
        /// (fragments included).
        #[test]
        fn arbitrary_ipv4_tcp_packets_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..120),
            flags in any::<u16>(),
            total_len in any::<u16>(),
            ihl in 5u8..16,
        ) {
            let mut p = vec![0x40 | ihl, 0];
            p.extend_from_slice(&total_len.to_be_bytes());
            p.extend_from_slice(&[0, 1]);
            p.extend_from_slice(&flags.to_be_bytes());
            p.extend_from_slice(&[64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
            p.extend_from_slice(&tail);
            let mut d = Decoder::new(&DefragSettings::default());
            let mut st = Stats::default();
            for _ in 0..3 {
                let _ = d.decode(Timestamp(0), LinkType::Raw, &p, p.len() as u32, &mut st);
            }
            prop_assert_eq!(st.packets, 3);
        }
    }
}
