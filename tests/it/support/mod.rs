//! Test support: a packet builder, capture files (through pcapgen) and a runner for the binary.
//!
//! Takes hand-written TCP conversations and gives pcap/pcapng files (written by the shared
//! `pcapgen` crate), so each test shows the packets it feeds in. Frames are built byte by byte
//! here, so that a test can get them wrong on purpose: Ethernet with
//! 802.1Q/QinQ tags, Linux cooked SLL/SLL2, BSD null/loopback and raw IP; IPv4 (with fragments)
//! and IPv6; TCP with valid checksums unless asked to corrupt them. Leaves out IP options, IPv6
//! extension headers and anything but TCP.
//!
//! A [`Conversation`] keeps the sequence and acknowledgement numbers of one connection and
//! returns its packets as a `Vec<Packet>`, so a test can reorder, duplicate, drop or cut them
//! before writing the file with [`write_capture`]. [`read_capture`] runs
//! `idemwatch read --log-requests --stats FILE` and splits its stdout into transactions and stats.

#![allow(dead_code)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

/// 2026-11-28T08:00:00Z, the capture time of the first packet of every conversation.
pub const BASE_TS_NS: u64 = 1_795_852_800 * 1_000_000_000;
/// Time between two packets of a conversation: 1 ms.
pub const STEP_NS: u64 = 1_000_000;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

// Link types (https://www.tcpdump.org/linktypes.html).
pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW_12: u32 = 12;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_IEEE802_11: u32 = 105;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x05];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x09];

// ---------------------------------------------------------------------------------------------
// Packets and capture files
// ---------------------------------------------------------------------------------------------

// Packets, formats and the capture writer are pcapgen's, shared with the examples; each test
// binary uses its own part of them.
#[allow(unused_imports)]
pub use pcapgen::{Format, Packet, capture_bytes, record_offsets};

/// Cuts every packet to `snaplen` captured bytes (`caplen < len` in the record header).
pub fn apply_snaplen(packets: &mut [Packet], snaplen: usize) {
    for p in packets {
        p.truncate(snaplen);
    }
}

/// Gives the packets increasing timestamps in their current order, as a capture of reordered
/// traffic would show them (files are written in arrival order).
pub fn restamp(packets: &mut [Packet]) {
    for (i, p) in packets.iter_mut().enumerate() {
        p.ts_ns = BASE_TS_NS + i as u64 * STEP_NS;
    }
}

/// Writes a capture file; see [`capture_bytes`].
pub fn write_capture(path: &Path, format: Format, linktype: u32, packets: &[Packet]) {
    std::fs::write(path, capture_bytes(format, linktype, packets))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

// ---------------------------------------------------------------------------------------------
// Link layers
// ---------------------------------------------------------------------------------------------

/// The link layer a conversation's frames are wrapped in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Ethernet II; VLAN tags are set per direction on the [`Conversation`].
    Ethernet,
    /// Linux cooked capture v1 (linktype 113, 16-byte header).
    Sll,
    /// Linux cooked capture v2 (linktype 276, 20-byte header).
    Sll2,
    /// BSD null/loopback (linktype 0): a 4-byte address family in little-endian (the host order
    /// of the little-endian files written here); 2 for IPv4, `ipv6_family` (24, 28 or 30) for
    /// IPv6.
    Null { ipv6_family: u32 },
    /// Raw IP with the given link type: 101 or 12 (either version), 228 (IPv4), 229 (IPv6).
    Raw { linktype: u32 },
}

impl Link {
    /// BSD loopback as macOS writes it (AF_INET6 = 30).
    pub const NULL: Link = Link::Null { ipv6_family: 30 };
    pub const RAW: Link = Link::Raw {
        linktype: LINKTYPE_RAW,
    };

    pub fn linktype(&self) -> u32 {
        match self {
            Link::Ethernet => LINKTYPE_ETHERNET,
            Link::Sll => LINKTYPE_LINUX_SLL,
            Link::Sll2 => LINKTYPE_LINUX_SLL2,
            Link::Null { .. } => LINKTYPE_NULL,
            Link::Raw { linktype } => *linktype,
        }
    }
}

/// Wraps an IP packet in a link-layer header. `vlans` (outer first) apply to Ethernet only: one
/// tag is 802.1Q (0x8100); with two, the outer is 802.1ad (0x88a8) and the inner 0x8100.
/// `outgoing` says whether the capturing host sent the frame (SLL packet type).
pub fn frame(link: &Link, vlans: &[u16], outgoing: bool, ip: &[u8]) -> Vec<u8> {
    let ipv6 = ip.first().is_some_and(|b| b >> 4 == 6);
    let ethertype: u16 = if ipv6 { 0x86dd } else { 0x0800 };
    let (src_mac, dst_mac) = if outgoing {
        (CLIENT_MAC, SERVER_MAC)
    } else {
        (SERVER_MAC, CLIENT_MAC)
    };
    let mut out = Vec::with_capacity(ip.len() + 24);
    match link {
        Link::Ethernet => {
            out.extend_from_slice(&dst_mac);
            out.extend_from_slice(&src_mac);
            for (i, vid) in vlans.iter().enumerate() {
                let tpid: u16 = if vlans.len() >= 2 && i == 0 {
                    0x88a8
                } else {
                    0x8100
                };
                out.extend_from_slice(&tpid.to_be_bytes());
                out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
            }
            out.extend_from_slice(&ethertype.to_be_bytes());
        }
        Link::Sll => {
            let packet_type: u16 = if outgoing { 4 } else { 0 };
            out.extend_from_slice(&packet_type.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            out.extend_from_slice(&6u16.to_be_bytes());
            out.extend_from_slice(&src_mac);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&ethertype.to_be_bytes());
        }
        Link::Sll2 => {
            out.extend_from_slice(&ethertype.to_be_bytes());
            out.extend_from_slice(&0u16.to_be_bytes()); // reserved
            out.extend_from_slice(&3u32.to_be_bytes()); // interface index
            out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            out.push(if outgoing { 4 } else { 0 });
            out.push(6);
            out.extend_from_slice(&src_mac);
            out.extend_from_slice(&[0, 0]);
        }
        Link::Null { ipv6_family } => {
            let family = if ipv6 { *ipv6_family } else { 2 };
            out.extend_from_slice(&family.to_le_bytes());
        }
        Link::Raw { .. } => {}
    }
    out.extend_from_slice(ip);
    out
}

// ---------------------------------------------------------------------------------------------
// IP and TCP
// ---------------------------------------------------------------------------------------------

/// A TCP segment to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSegment {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: Vec<u8>,
    /// TCP options, padded to 4 bytes when built.
    pub options: Vec<u8>,
}

/// Which checksums to get wrong (offload on the capturing host does this).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Corrupt {
    pub tcp: bool,
    pub ipv4_header: bool,
}

fn ones_complement_sum(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The internet checksum (RFC 1071) of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    fold(ones_complement_sum(0, data))
}

/// The TCP header and payload of `seg`, with its checksum over the pseudo-header.
pub fn tcp_bytes(seg: &TcpSegment, corrupt: bool) -> Vec<u8> {
    let mut options = seg.options.clone();
    options.resize(pad4(options.len()), 0);
    let header_len = 20 + options.len();
    let mut tcp = Vec::with_capacity(header_len + seg.payload.len());
    tcp.extend_from_slice(&seg.src.port().to_be_bytes());
    tcp.extend_from_slice(&seg.dst.port().to_be_bytes());
    tcp.extend_from_slice(&seg.seq.to_be_bytes());
    tcp.extend_from_slice(&seg.ack.to_be_bytes());
    tcp.push(((header_len / 4) as u8) << 4);
    tcp.push(seg.flags);
    tcp.extend_from_slice(&65_535u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0]); // checksum
    tcp.extend_from_slice(&[0, 0]); // urgent pointer
    tcp.extend_from_slice(&options);
    tcp.extend_from_slice(&seg.payload);
    let mut pseudo = Vec::new();
    match (seg.src.ip(), seg.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 6]);
        }
        _ => panic!("mixed IPv4/IPv6 endpoints"),
    }
    let mut sum = fold(ones_complement_sum(ones_complement_sum(0, &pseudo), &tcp));
    if corrupt {
        sum ^= 0x5a5a;
    }
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    tcp
}

/// An IPv4 header for `payload_len` bytes of protocol 6, checksummed.
fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    flags_fragment: u16,
    payload_len: usize,
    corrupt: bool,
) -> Vec<u8> {
    let mut h = Vec::with_capacity(20);
    h.push(0x45);
    h.push(0);
    h.extend_from_slice(
        &u16::try_from(20 + payload_len)
            .expect("IPv4 packet too long")
            .to_be_bytes(),
    );
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&flags_fragment.to_be_bytes());
    h.push(64);
    h.push(6);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let mut sum = internet_checksum(&h);
    if corrupt {
        sum ^= 0x5a5a;
    }
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// The IP packet carrying `seg` (IPv4 with DF set unless `fragmentable`, or IPv6).
pub fn ip_packet(seg: &TcpSegment, ip_id: u16, fragmentable: bool, corrupt: Corrupt) -> Vec<u8> {
    let tcp = tcp_bytes(seg, corrupt.tcp);
    match (seg.src.ip(), seg.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let df = if fragmentable { 0 } else { 0x4000 };
            let mut p = ipv4_header(s, d, ip_id, df, tcp.len(), corrupt.ipv4_header);
            p.extend_from_slice(&tcp);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = Vec::with_capacity(40 + tcp.len());
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(
                &u16::try_from(tcp.len())
                    .expect("IPv6 payload too long")
                    .to_be_bytes(),
            );
            p.push(6);
            p.push(64);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&tcp);
            p
        }
        _ => panic!("mixed IPv4/IPv6 endpoints"),
    }
}

/// Splits an IPv4 packet (20-byte header, no options) into fragments: `offsets` are the
/// positions in the IP payload where a new fragment starts (ascending, multiples of 8, none 0).
/// Fragments come back in order; all but the last have MF set.
pub fn ipv4_fragments(packet: &[u8], offsets: &[usize]) -> Vec<Vec<u8>> {
    assert_eq!(packet[0], 0x45, "IPv4 without options expected");
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let id = u16::from_be_bytes([packet[4], packet[5]]);
    let payload = &packet[20..];
    let mut bounds = vec![0];
    for &o in offsets {
        assert!(o % 8 == 0, "fragment offset {o} is not a multiple of 8");
        assert!(
            o > *bounds.last().unwrap() && o < payload.len(),
            "bad fragment offset {o}"
        );
        bounds.push(o);
    }
    bounds.push(payload.len());
    bounds
        .windows(2)
        .map(|w| {
            let (start, end) = (w[0], w[1]);
            let more = if end < payload.len() { 0x2000 } else { 0 };
            let field = more | (start / 8) as u16;
            let mut f = ipv4_header(src, dst, id, field, end - start, false);
            f.extend_from_slice(&payload[start..end]);
            f
        })
        .collect()
}

/// The TCP payload length of an untagged Ethernet frame (IPv4 without fragments, or IPv6), as
/// built here; `None` for anything else.
pub fn tcp_payload_len(frame: &[u8]) -> Option<usize> {
    let ip = frame.get(14..)?;
    let (header_len, ip_len) = match frame.get(12..14)? {
        [0x08, 0x00] => (
            usize::from(ip.first()? & 0x0f) * 4,
            usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?])),
        ),
        [0x86, 0xdd] => (
            40,
            40 + usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?])),
        ),
        _ => return None,
    };
    let tcp_header_len = usize::from(ip.get(header_len + 12)? >> 4) * 4;
    ip_len.checked_sub(header_len + tcp_header_len)
}

// ---------------------------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------------------------

/// Direction of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// One TCP connection as a list of packets, with sequence and acknowledgement numbers kept.
///
/// Every segment acknowledges all the bytes sent so far by the peer. Methods that send return
/// the range of packet indices they added, so a test can drop or move exactly those.
#[derive(Clone, Debug)]
pub struct Conversation {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub link: Link,
    /// VLAN tags (outer first) of frames sent by the client, and by the server.
    pub vlans_to_server: Vec<u16>,
    pub vlans_to_client: Vec<u16>,
    /// Largest payload of one segment made by `client_send`/`server_send`.
    pub mss: usize,
    /// Checksums to corrupt in the segments built from now on.
    pub corrupt: Corrupt,
    client_next: u32,
    server_next: u32,
    client_synced: bool,
    server_synced: bool,
    ts_ns: u64,
    ip_id: u16,
    packets: Vec<Packet>,
}

pub fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port)
}

pub fn v6(a: &str, port: u16) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V6(a.parse::<Ipv6Addr>().expect("IPv6 address")),
        port,
    )
}

/// 10.0.0.5:51544, the usual client.
pub fn client_v4() -> SocketAddr {
    v4([10, 0, 0, 5], 51544)
}

/// 10.0.0.9:80, the usual server.
pub fn server_v4() -> SocketAddr {
    v4([10, 0, 0, 9], 80)
}

pub fn client_v6() -> SocketAddr {
    v6("2001:db8::5", 51544)
}

pub fn server_v6() -> SocketAddr {
    v6("2001:db8::9", 80)
}

impl Conversation {
    /// A connection from `client` to `server` over Ethernet, ISNs 1_000_000 and 5_000_000,
    /// MSS 1460, first packet at [`BASE_TS_NS`].
    pub fn new(client: SocketAddr, server: SocketAddr) -> Self {
        Conversation {
            client,
            server,
            link: Link::Ethernet,
            vlans_to_server: Vec::new(),
            vlans_to_client: Vec::new(),
            mss: 1460,
            corrupt: Corrupt::default(),
            client_next: 1_000_000,
            server_next: 5_000_000,
            client_synced: false,
            server_synced: false,
            ts_ns: BASE_TS_NS,
            ip_id: 0x1000,
            packets: Vec::new(),
        }
    }

    /// 10.0.0.5:51544 -> 10.0.0.9:80.
    pub fn v4() -> Self {
        Self::new(client_v4(), server_v4())
    }

    /// [2001:db8::5]:51544 -> [2001:db8::9]:80.
    pub fn v6() -> Self {
        Self::new(client_v6(), server_v6())
    }

    pub fn with_link(mut self, link: Link) -> Self {
        self.link = link;
        self
    }

    pub fn with_vlans(mut self, to_server: &[u16], to_client: &[u16]) -> Self {
        self.vlans_to_server = to_server.to_vec();
        self.vlans_to_client = to_client.to_vec();
        self
    }

    /// Initial sequence numbers of client and server (the SYN carries the ISN).
    pub fn with_isns(mut self, client: u32, server: u32) -> Self {
        self.client_next = client;
        self.server_next = server;
        self
    }

    pub fn with_mss(mut self, mss: usize) -> Self {
        self.mss = mss;
        self
    }

    /// Starts the clock at `ts_ns`.
    pub fn starting_at(mut self, ts_ns: u64) -> Self {
        self.ts_ns = ts_ns;
        self
    }

    /// Nothing on the wire for `ns`: the next packet comes that much later.
    pub fn wait_ns(&mut self, ns: u64) {
        self.ts_ns += ns;
    }

    /// The link type to write this conversation's file with.
    pub fn linktype(&self) -> u32 {
        self.link.linktype()
    }

    /// The next sequence number the client would send.
    pub fn client_seq(&self) -> u32 {
        self.client_next
    }

    /// The next sequence number the server would send.
    pub fn server_seq(&self) -> u32 {
        self.server_next
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn packets(&self) -> &[Packet] {
        &self.packets
    }

    pub fn into_packets(self) -> Vec<Packet> {
        self.packets
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> Range<usize> {
        let start = self.len();
        self.syn(&[]);
        self.syn_ack();
        self.ack(Dir::ToServer);
        start..self.len()
    }

    /// TCP Fast Open (RFC 7413): the SYN carries a cookie and `data`; the SYN-ACK acknowledges
    /// the data; then the client's ACK.
    pub fn handshake_fast_open(&mut self, data: &[u8]) -> Range<usize> {
        let start = self.len();
        self.syn(data);
        self.syn_ack();
        self.ack(Dir::ToServer);
        start..self.len()
    }

    fn syn(&mut self, data: &[u8]) {
        // MSS option; with data, a TFO cookie option (kind 34, 8-byte cookie).
        let mut options = vec![2, 4, 0x05, 0xb4];
        if !data.is_empty() {
            options.extend_from_slice(&[34, 10, 1, 2, 3, 4, 5, 6, 7, 8]);
        }
        let seg = TcpSegment {
            src: self.client,
            dst: self.server,
            seq: self.client_next,
            ack: 0,
            flags: SYN,
            payload: data.to_vec(),
            options,
        };
        self.push_segment(Dir::ToServer, &seg);
        self.client_next = self
            .client_next
            .wrapping_add(1)
            .wrapping_add(data.len() as u32);
        self.client_synced = true;
    }

    fn syn_ack(&mut self) {
        let seg = TcpSegment {
            src: self.server,
            dst: self.client,
            seq: self.server_next,
            ack: self.client_next,
            flags: SYN | ACK,
            payload: Vec::new(),
            options: vec![2, 4, 0x05, 0xb4],
        };
        self.push_segment(Dir::ToClient, &seg);
        self.server_next = self.server_next.wrapping_add(1);
        self.server_synced = true;
    }

    /// A bare ACK from `dir`'s sender.
    pub fn ack(&mut self, dir: Dir) -> Range<usize> {
        let start = self.len();
        self.send_flags(dir, ACK, &[]);
        start..self.len()
    }

    /// The client sends `data` in MSS-sized segments (PSH on the last).
    pub fn client_send(&mut self, data: &[u8]) -> Range<usize> {
        self.send(Dir::ToServer, data)
    }

    /// The server sends `data` in MSS-sized segments (PSH on the last).
    pub fn server_send(&mut self, data: &[u8]) -> Range<usize> {
        self.send(Dir::ToClient, data)
    }

    /// Sends `data` in MSS-sized segments from `dir`'s sender.
    pub fn send(&mut self, dir: Dir, data: &[u8]) -> Range<usize> {
        let cuts: Vec<usize> = (1..data.len().div_ceil(self.mss.max(1)))
            .map(|i| i * self.mss)
            .collect();
        self.send_split(dir, data, &cuts)
    }

    /// Sends `data` cut at the given offsets (ascending; empty pieces are skipped), one segment
    /// per piece, whatever the MSS.
    pub fn send_split(&mut self, dir: Dir, data: &[u8], cuts: &[usize]) -> Range<usize> {
        let start = self.len();
        let mut bounds: Vec<usize> = Vec::with_capacity(cuts.len() + 2);
        bounds.push(0);
        bounds.extend(cuts.iter().copied().filter(|&c| c < data.len()));
        bounds.push(data.len());
        bounds.sort_unstable();
        bounds.dedup();
        let pieces: Vec<&[u8]> = bounds.windows(2).map(|w| &data[w[0]..w[1]]).collect();
        let n = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            let flags = if i + 1 == n { ACK | PSH } else { ACK };
            self.send_flags(dir, flags, piece);
        }
        start..self.len()
    }

    /// The client sends `data` as one TCP segment, carried in IPv4 fragments split at
    /// `offsets` (positions in the IP payload, i.e. counted from the TCP header, multiples of 8).
    pub fn client_send_fragmented(&mut self, data: &[u8], offsets: &[usize]) -> Range<usize> {
        let start = self.len();
        let seg = self.next_segment(Dir::ToServer, ACK | PSH, data);
        let id = self.next_ip_id();
        let packet = ip_packet(&seg, id, true, self.corrupt);
        for f in ipv4_fragments(&packet, offsets) {
            let bytes = frame(&self.link, &self.vlans_to_server.clone(), true, &f);
            self.push_frame(bytes);
        }
        self.client_next = self.client_next.wrapping_add(data.len() as u32);
        start..self.len()
    }

    /// FIN (with ACK) from the client.
    pub fn client_fin(&mut self) -> Range<usize> {
        self.fin(Dir::ToServer)
    }

    /// FIN (with ACK) from the server.
    pub fn server_fin(&mut self) -> Range<usize> {
        self.fin(Dir::ToClient)
    }

    pub fn fin(&mut self, dir: Dir) -> Range<usize> {
        let start = self.len();
        self.send_flags(dir, FIN | ACK, &[]);
        match dir {
            Dir::ToServer => self.client_next = self.client_next.wrapping_add(1),
            Dir::ToClient => self.server_next = self.server_next.wrapping_add(1),
        }
        start..self.len()
    }

    /// Client FIN, server FIN, client ACK.
    pub fn close(&mut self) -> Range<usize> {
        let start = self.len();
        self.client_fin();
        self.server_fin();
        self.ack(Dir::ToServer);
        start..self.len()
    }

    /// RST (with ACK) from the client.
    pub fn client_rst(&mut self) -> Range<usize> {
        self.rst(Dir::ToServer)
    }

    /// RST (with ACK) from the server.
    pub fn server_rst(&mut self) -> Range<usize> {
        self.rst(Dir::ToClient)
    }

    pub fn rst(&mut self, dir: Dir) -> Range<usize> {
        let start = self.len();
        self.send_flags(dir, RST | ACK, &[]);
        start..self.len()
    }

    /// A segment from `dir`'s sender with any sequence number, acknowledging what the peer sent
    /// so far; it does not move the conversation's sequence numbers (for retransmissions and
    /// overlaps). It gets the next timestamp. Not added to the conversation: see
    /// [`Conversation::push`].
    pub fn segment_at(&mut self, dir: Dir, seq: u32, flags: u8, payload: &[u8]) -> Packet {
        let mut seg = self.next_segment(dir, flags, payload);
        seg.seq = seq;
        self.build(dir, &seg)
    }

    /// Adds a packet made by [`Conversation::segment_at`] (or anything else).
    pub fn push(&mut self, packet: Packet) -> Range<usize> {
        let start = self.len();
        self.packets.push(packet);
        start..self.len()
    }

    fn next_segment(&self, dir: Dir, flags: u8, payload: &[u8]) -> TcpSegment {
        let (src, dst, seq, ack, synced) = match dir {
            Dir::ToServer => (
                self.client,
                self.server,
                self.client_next,
                self.server_next,
                self.server_synced,
            ),
            Dir::ToClient => (
                self.server,
                self.client,
                self.server_next,
                self.client_next,
                self.client_synced,
            ),
        };
        TcpSegment {
            src,
            dst,
            seq,
            ack: if synced { ack } else { 0 },
            flags: if synced { flags } else { flags & !ACK },
            payload: payload.to_vec(),
            options: Vec::new(),
        }
    }

    fn send_flags(&mut self, dir: Dir, flags: u8, payload: &[u8]) {
        let seg = self.next_segment(dir, flags, payload);
        self.push_segment(dir, &seg);
        let n = payload.len() as u32;
        match dir {
            Dir::ToServer => self.client_next = self.client_next.wrapping_add(n),
            Dir::ToClient => self.server_next = self.server_next.wrapping_add(n),
        }
    }

    fn next_ip_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    fn build(&mut self, dir: Dir, seg: &TcpSegment) -> Packet {
        let id = self.next_ip_id();
        let ip = ip_packet(seg, id, false, self.corrupt);
        let (vlans, outgoing) = match dir {
            Dir::ToServer => (&self.vlans_to_server, true),
            Dir::ToClient => (&self.vlans_to_client, false),
        };
        let bytes = frame(&self.link, vlans, outgoing, &ip);
        let p = Packet::new(self.ts_ns, bytes);
        self.ts_ns += STEP_NS;
        p
    }

    fn push_segment(&mut self, dir: Dir, seg: &TcpSegment) {
        let p = self.build(dir, seg);
        self.packets.push(p);
    }

    fn push_frame(&mut self, bytes: Vec<u8>) {
        self.packets.push(Packet::new(self.ts_ns, bytes));
        self.ts_ns += STEP_NS;
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP messages and hashes
// ---------------------------------------------------------------------------------------------

/// `GET {path} HTTP/1.1` with Host `api.example.com`.
pub fn get(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: test/1\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

/// `POST {path} HTTP/1.1` with Host `api.example.com`, a Content-Length body and extra headers
/// (each given without CRLF).
pub fn post(path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut m = format!("POST {path} HTTP/1.1\r\nHost: api.example.com\r\n");
    for h in headers {
        m.push_str(h);
        m.push_str("\r\n");
    }
    m.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut m = m.into_bytes();
    m.extend_from_slice(body);
    m
}

/// `HTTP/1.1 {status}` with a Content-Length body.
pub fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

/// A `200 OK` with a JSON body whose top-level id is `id`.
pub fn json_ok(id: &str) -> Vec<u8> {
    response(
        200,
        "application/json",
        format!("{{\"id\":\"{id}\",\"object\":\"charge\",\"amount\":1000}}").as_bytes(),
    )
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Whatever",
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Community ID v1 (seed 0) of a TCP flow, as Zeek and Suricata compute it.
pub fn community_id(a: SocketAddr, b: SocketAddr) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let bytes = |ip: IpAddr| match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    let (a_ip, b_ip) = (bytes(a.ip()), bytes(b.ip()));
    let (first, second) = if (a_ip.as_slice(), a.port()) <= (b_ip.as_slice(), b.port()) {
        ((a_ip, a.port()), (b_ip, b.port()))
    } else {
        ((b_ip, b.port()), (a_ip, a.port()))
    };
    let mut data = vec![0u8, 0];
    data.extend_from_slice(&first.0);
    data.extend_from_slice(&second.0);
    data.extend_from_slice(&[6, 0]);
    data.extend_from_slice(&first.1.to_be_bytes());
    data.extend_from_slice(&second.1.to_be_bytes());
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha1::digest(&data))
    )
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/// What one run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Every stdout line, parsed.
    pub lines: Vec<Value>,
}

impl Run {
    /// The `"http"` events, in output order.
    pub fn transactions(&self) -> Vec<Value> {
        self.lines
            .iter()
            .filter(|l| l["event_type"] == "http")
            .cloned()
            .collect()
    }

    /// The `stats` object of the last `"stats"` event.
    pub fn stats(&self) -> Map<String, Value> {
        self.lines
            .iter()
            .rev()
            .find(|l| l["event_type"] == "stats")
            .and_then(|l| l["stats"].as_object().cloned())
            .unwrap_or_else(|| {
                panic!(
                    "no stats line in stdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            })
    }

    /// One stats counter; panics when it is missing.
    pub fn stat(&self, name: &str) -> u64 {
        let stats = self.stats();
        stats.get(name).and_then(Value::as_u64).unwrap_or_else(|| {
            panic!("stats counter {name:?} missing or not a number in {stats:?}")
        })
    }

    /// Panics, showing the output, unless the run exited with `code`.
    pub fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit status; stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Exit 0 and the transactions.
    pub fn ok_transactions(&self) -> Vec<Value> {
        self.assert_exit(0);
        self.transactions()
    }

    /// The transactions with `timestamp`/`ts` and `pcap_filename` removed, for comparing runs.
    pub fn comparable_transactions(&self) -> Vec<Value> {
        self.transactions()
            .into_iter()
            .map(strip_volatile)
            .collect()
    }
}

/// Removes `timestamp`, `ts` and `pcap_filename` at any depth.
pub fn strip_volatile(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("timestamp");
                m.remove("ts");
                m.remove("pcap_filename");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

pub(crate) use crate::schema;

fn parse_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v = serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("stdout line is not JSON ({e}): {l:?}\nstdout:\n{stdout}")
            });
            schema::check(&v);
            v
        })
        .collect()
}

/// Runs the binary with `args`, `stdin` as its standard input and extra environment variables.
pub fn run_with(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idemwatch"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start idemwatch");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        // Write from a thread so a binary that answers before reading all input can't block us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let out = child.wait_with_output().expect("wait for idemwatch");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = parse_lines(&stdout);
    Run {
        code: out.status.code(),
        stdout,
        stderr,
        lines,
    }
}

/// `idemwatch read --log-requests --stats FILE`.
pub fn read_file(path: &Path) -> Run {
    let p = path.to_str().expect("UTF-8 temp path");
    run_with(&["read", "--log-requests", "--stats", p], None, &[])
}

/// Writes `packets` to `name` in a fresh temp dir and runs `read --log-requests --stats` on it.
pub fn read_capture(name: &str, format: Format, linktype: u32, packets: &[Packet]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    write_capture(&path, format, linktype, packets);
    read_file(&path)
}

/// [`read_capture`] of a conversation's packets as a little-endian µs pcap.
pub fn read_packets(linktype: u32, packets: &[Packet]) -> Run {
    read_capture("test.pcap", Format::PCAP, linktype, packets)
}

// ---------------------------------------------------------------------------------------------
// Looking at transactions
// ---------------------------------------------------------------------------------------------

/// `request.path` of each transaction (`None` for a null request).
pub fn paths(transactions: &[Value]) -> Vec<Option<String>> {
    transactions
        .iter()
        .map(|t| t["request"]["path"].as_str().map(str::to_owned))
        .collect()
}

/// `(request.path, response.status)` of each transaction, with `None` for a null side.
pub fn pairs(transactions: &[Value]) -> Vec<(Option<String>, Option<u64>)> {
    transactions
        .iter()
        .map(|t| {
            (
                t["request"]["path"].as_str().map(str::to_owned),
                t["response"]["status"].as_u64(),
            )
        })
        .collect()
}

/// Asserts the request side of a transaction: method, host, path, and endpoints.
pub fn assert_request(
    t: &Value,
    method: &str,
    host: &str,
    path: &str,
    client: SocketAddr,
    server: SocketAddr,
) {
    let r = &t["request"];
    assert!(r.is_object(), "request missing in {t}");
    assert_eq!(r["method"], method, "method in {t}");
    assert_eq!(r["host"], host, "host in {t}");
    assert_eq!(r["path"], path, "path in {t}");
    assert_eq!(r["src_ip"], client.ip().to_string(), "src_ip in {t}");
    assert_eq!(r["src_port"], client.port(), "src_port in {t}");
    assert_eq!(r["dest_ip"], server.ip().to_string(), "dest_ip in {t}");
    assert_eq!(r["dest_port"], server.port(), "dest_port in {t}");
}

/// Asserts a complete response body: status, length and hash.
pub fn assert_response(t: &Value, status: u16, body: &[u8]) {
    let r = &t["response"];
    assert!(r.is_object(), "response missing in {t}");
    assert_eq!(r["status"], status, "status in {t}");
    assert_eq!(r["body_len"], body.len(), "response body_len in {t}");
    assert_eq!(
        r["body_sha256"],
        sha256_hex(body),
        "response body_sha256 in {t}"
    );
    assert_eq!(r["body_complete"], true, "response body_complete in {t}");
}

#[test]
fn community_id_matches_the_published_example() {
    // From the Community ID spec's baseline: TCP 128.232.110.120:34855 -> 66.35.250.204:80.
    let a = v4([128, 232, 110, 120], 34855);
    let b = v4([66, 35, 250, 204], 80);
    assert_eq!(community_id(a, b), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    assert_eq!(community_id(b, a), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
}

#[test]
fn built_tcp_segments_carry_valid_checksums() {
    for (client, server) in [(client_v4(), server_v4()), (client_v6(), server_v6())] {
        let seg = TcpSegment {
            src: client,
            dst: server,
            seq: 7,
            ack: 9,
            flags: ACK | PSH,
            payload: b"hello, odd length".to_vec(),
            options: Vec::new(),
        };
        let ip = ip_packet(&seg, 1, false, Corrupt::default());
        let (header_len, pseudo) = match (client.ip(), server.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                assert_eq!(internet_checksum(&ip[..20]), 0, "IPv4 header checksum");
                let mut p = [s.octets(), d.octets()].concat();
                p.extend_from_slice(&[0, 6, 0, (ip.len() - 20) as u8]);
                (20, p)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut p = [s.octets(), d.octets()].concat();
                p.extend_from_slice(&[0, 0, 0, (ip.len() - 40) as u8, 0, 0, 0, 6]);
                (40, p)
            }
            _ => unreachable!(),
        };
        let sum = fold(ones_complement_sum(
            ones_complement_sum(0, &pseudo),
            &ip[header_len..],
        ));
        assert_eq!(sum, 0, "TCP checksum verifies");
        let bad = ip_packet(
            &seg,
            1,
            false,
            Corrupt {
                tcp: true,
                ipv4_header: false,
            },
        );
        let sum = fold(ones_complement_sum(
            ones_complement_sum(0, &pseudo),
            &bad[header_len..],
        ));
        assert_ne!(sum, 0, "corrupted TCP checksum fails");
    }
}

#[test]
fn ipv4_fragments_reassemble_to_the_original_payload() {
    let seg = TcpSegment {
        src: client_v4(),
        dst: server_v4(),
        seq: 1,
        ack: 1,
        flags: ACK,
        payload: (0..100u8).collect(),
        options: Vec::new(),
    };
    let ip = ip_packet(&seg, 42, true, Corrupt::default());
    let frags = ipv4_fragments(&ip, &[24, 64]);
    assert_eq!(frags.len(), 3);
    let mut joined = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(internet_checksum(&f[..20]), 0);
        let field = u16::from_be_bytes([f[6], f[7]]);
        assert_eq!(usize::from(field & 0x1fff) * 8, joined.len());
        assert_eq!(field & 0x2000 != 0, i < 2, "MF flag");
        joined.extend_from_slice(&f[20..]);
    }
    assert_eq!(joined, ip[20..]);
}

#[test]
fn conversation_numbers_its_segments_and_measures_payloads() {
    for mut c in [Conversation::v4(), Conversation::v6()] {
        c = c.with_isns(u32::MAX - 1, 7).with_mss(4);
        c.handshake();
        let sent = c.client_send(b"0123456789");
        assert_eq!(sent.len(), 3);
        let sizes: Vec<_> = c
            .packets()
            .iter()
            .map(|p| tcp_payload_len(&p.data).unwrap())
            .collect();
        assert_eq!(sizes, vec![0, 0, 0, 4, 4, 2]);
        // ISN 2^32 - 2: the SYN takes it, data starts at 2^32 - 1, then wraps to 3 after 4 bytes.
        assert_eq!(c.client_seq(), 9);
        assert_eq!(c.server_seq(), 8);
    }
}
