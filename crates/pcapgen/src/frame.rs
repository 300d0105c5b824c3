//! Ethernet II / IPv4 frames built with etherparse's `PacketBuilder`: TCP segments and bare IPv4
//! fragments, lengths and checksums filled in.
//!
//! Takes the header fields a generator chooses (addresses, IP identification, TCP numbers,
//! flags, window, options) and gives the frame's bytes. Leaves out IPv6, VLAN tags, other link
//! layers and wrong checksums: the tests' own builder makes those.

use std::io;

use etherparse::{
    IpFragOffset, IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, PacketBuilder, TcpHeader,
};

/// TCP flag bits, as in the header's flags byte.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// Time to live of every IPv4 header built here.
pub const TTL: u8 = 64;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// One TCP segment in IPv4 (DF set, TTL 64, no options) in Ethernet II.
#[derive(Clone, Copy, Debug)]
pub struct TcpFrame<'a> {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: [u8; 4],
    pub dst: [u8; 4],
    /// IPv4 identification.
    pub ip_id: u16,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    /// Written as given, also when [`ACK`] is not in `flags`.
    pub ack: u32,
    /// [`FIN`], [`SYN`], ... or-ed together.
    pub flags: u8,
    pub window: u16,
    /// TCP options as bytes: a multiple of 4, at most 40.
    pub options: &'a [u8],
}

impl TcpFrame<'_> {
    /// Replaces the contents of `out` with the frame carrying `payload`.
    pub fn write(&self, out: &mut Vec<u8>, payload: &[u8]) -> io::Result<()> {
        let mut tcp = TcpHeader::new(self.src_port, self.dst_port, self.seq, self.window);
        tcp.acknowledgment_number = self.ack;
        tcp.fin = self.flags & FIN != 0;
        tcp.syn = self.flags & SYN != 0;
        tcp.rst = self.flags & RST != 0;
        tcp.psh = self.flags & PSH != 0;
        tcp.ack = self.flags & ACK != 0;
        tcp.urg = self.flags & URG != 0;
        tcp.ece = self.flags & ECE != 0;
        tcp.cwr = self.flags & CWR != 0;
        tcp.set_options_raw(self.options).map_err(invalid)?;
        let ip = ipv4(self.src, self.dst, self.ip_id, true, false, 0)?;
        out.clear();
        PacketBuilder::ethernet2(self.src_mac, self.dst_mac)
            .ip(IpHeaders::Ipv4(ip, Ipv4Extensions::default()))
            .tcp_header(tcp)
            .write_to_vec(out, payload)
            .map_err(invalid)
    }
}

/// An IPv4 header of protocol TCP; lengths and checksum are filled in when written.
fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    dont_fragment: bool,
    more_fragments: bool,
    offset_units: u16,
) -> io::Result<Ipv4Header> {
    let mut ip = Ipv4Header::new(0, TTL, IpNumber::TCP, src, dst).map_err(invalid)?;
    ip.identification = id;
    ip.dont_fragment = dont_fragment;
    ip.more_fragments = more_fragments;
    ip.fragment_offset = IpFragOffset::try_new(offset_units).map_err(invalid)?;
    Ok(ip)
}

/// Replaces the contents of `out` with an IPv4 fragment of a TCP datagram in Ethernet II:
/// `data` at `offset_units` × 8 bytes into the datagram, MF set when `more_fragments`.
#[allow(clippy::too_many_arguments)]
pub fn ipv4_fragment(
    out: &mut Vec<u8>,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    more_fragments: bool,
    offset_units: u16,
    data: &[u8],
) -> io::Result<()> {
    let ip = ipv4(src, dst, id, false, more_fragments, offset_units)?;
    out.clear();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ip(IpHeaders::Ipv4(ip, Ipv4Extensions::default()))
        .write_to_vec(out, IpNumber::TCP, data)
        .map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a SYN built field by field, as tcpdump shows them.
    #[test]
    fn syn_matches_a_frame_written_by_hand() {
        let mut out = Vec::new();
        TcpFrame {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 9],
            src: [10, 1, 1, 1],
            dst: [10, 0, 0, 9],
            ip_id: 0x1234,
            src_port: 40000,
            dst_port: 80,
            seq: 7,
            ack: 0,
            flags: SYN,
            window: 64240,
            options: &[2, 4, 0x05, 0xb4],
        }
        .write(&mut out, &[])
        .expect("valid frame");
        let mut want = vec![2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        want.extend_from_slice(&[0x45, 0, 0, 44, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
        want.extend_from_slice(&[10, 1, 1, 1, 10, 0, 0, 9]);
        want.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 7, 0, 0, 0, 0, 0x60, SYN]);
        want.extend_from_slice(&64240u16.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 0, 2, 4, 0x05, 0xb4]);
        // Checksums: compare with the ones computed over the frame as written.
        assert_eq!(out.len(), want.len());
        want[24..26].copy_from_slice(&out[24..26]);
        want[50..52].copy_from_slice(&out[50..52]);
        assert_eq!(out, want);
        assert_eq!(checksum(&out[14..34], 0), 0, "IPv4 header checksum");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&out[26..34]);
        pseudo.extend_from_slice(&[0, 6, 0, 24]);
        assert_eq!(checksum(&out[34..], sum(&pseudo)), 0, "TCP checksum");
    }

    fn sum(data: &[u8]) -> u32 {
        data.chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum()
    }

    fn checksum(data: &[u8], init: u32) -> u16 {
        let mut s = init + sum(data);
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn fragment_carries_its_offset_and_more_fragments() {
        let mut out = Vec::new();
        ipv4_fragment(
            &mut out,
            [2, 0, 0, 0, 0, 5],
            [2, 0, 0, 0, 0, 9],
            [10, 2, 0, 1],
            [10, 0, 0, 9],
            3,
            true,
            185,
            &[b'f'; 16],
        )
        .expect("valid fragment");
        assert_eq!(out.len(), 14 + 20 + 16);
        assert_eq!(&out[16..18], &36u16.to_be_bytes(), "total length");
        assert_eq!(
            u16::from_be_bytes([out[20], out[21]]),
            0x2000 | 185,
            "MF and offset"
        );
        assert_eq!(out[23], 6, "protocol TCP");
        assert_eq!(checksum(&out[14..34], 0), 0, "IPv4 header checksum");
    }
}
