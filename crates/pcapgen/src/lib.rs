//! Capture files and frames for idemwatch's tests, examples and benchmarks: the one pcap writer
//! they share.
//!
//! Takes packets (a capture time in nanoseconds, the captured bytes, the length on the wire)
//! and gives classic pcap (either byte order, µs or ns timestamps) or pcapng files, whole
//! ([`capture_bytes`]) or as a stream ([`PcapStream`]); the file layouts are the `pcap-file`
//! crate's. [`frame`] builds Ethernet/IPv4/TCP frames with etherparse's `PacketBuilder`.
//! Leaves out reading captures (idemwatch reads them with libpcap) and every link layer but
//! Ethernet in the frame builder (the tests' own builder covers the others, byte by byte).

pub mod frame;

use std::borrow::Cow;
use std::io::{self, Write};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::SectionHeaderBlock;
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

/// The snapshot length written in headers: tcpdump's default, larger than any frame here.
pub const SNAPLEN: u32 = 262_144;

/// One captured frame: capture time in ns since the epoch, the captured bytes and the length
/// the frame had on the wire (larger than `data.len()` when cut by a snaplen).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub ts_ns: u64,
    pub data: Vec<u8>,
    pub orig_len: usize,
}

impl Packet {
    pub fn new(ts_ns: u64, data: Vec<u8>) -> Self {
        let orig_len = data.len();
        Packet {
            ts_ns,
            data,
            orig_len,
        }
    }

    /// Keeps the first `snaplen` bytes, as a capture with that snaplen would.
    pub fn truncate(&mut self, snaplen: usize) {
        self.data.truncate(snaplen);
    }
}

/// Capture file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap, in the given byte order, with µs or ns timestamps.
    Pcap { big_endian: bool, nanos: bool },
    /// pcapng, little-endian: one SHB, one IDB (with `if_tsresol` 9 when `nanos`), EPBs.
    PcapNg { nanos: bool },
}

impl Format {
    /// Classic little-endian µs pcap, what tcpdump writes on x86.
    pub const PCAP: Format = Format::pcap(false, false);
    pub const PCAP_BE: Format = Format::pcap(true, false);
    pub const PCAP_NS: Format = Format::pcap(false, true);
    pub const PCAP_BE_NS: Format = Format::pcap(true, true);
    pub const PCAPNG: Format = Format::PcapNg { nanos: false };
    pub const PCAPNG_NS: Format = Format::PcapNg { nanos: true };

    const fn pcap(big_endian: bool, nanos: bool) -> Format {
        Format::Pcap { big_endian, nanos }
    }
}

/// A pcap-file error as an I/O error: the write failed, or a field does not fit the format.
fn io_error(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    }
}

fn u32_len(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length over 4 GiB"))
}

/// A classic pcap written packet by packet, for generators too large to hold in memory.
pub struct PcapStream<W: Write> {
    writer: PcapWriter<W>,
    bytes: u64,
}

impl<W: Write> PcapStream<W> {
    /// Writes the file header: byte order, timestamp resolution, `snaplen` and `linktype`.
    pub fn new(
        w: W,
        big_endian: bool,
        nanos: bool,
        snaplen: u32,
        linktype: u32,
    ) -> io::Result<Self> {
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen,
            datalink: DataLink::from(linktype),
            ts_resolution: if nanos {
                TsResolution::NanoSecond
            } else {
                TsResolution::MicroSecond
            },
            endianness: if big_endian {
                Endianness::Big
            } else {
                Endianness::Little
            },
        };
        let writer = PcapWriter::with_header(w, header).map_err(io_error)?;
        Ok(PcapStream { writer, bytes: 24 })
    }

    /// Little-endian, µs timestamps, Ethernet: what the workload and flood generators write.
    pub fn ethernet(w: W, snaplen: u32) -> io::Result<Self> {
        Self::new(w, false, false, snaplen, 1)
    }

    /// Appends one record: capture time `ts_ns` (cut to µs in a µs file), the captured bytes
    /// `data` and the length on the wire `orig_len` (at least `data.len()`).
    pub fn write(&mut self, ts_ns: u64, data: &[u8], orig_len: usize) -> io::Result<()> {
        let packet = PcapPacket {
            timestamp: Duration::from_nanos(ts_ns),
            orig_len: u32_len(orig_len)?,
            data: Cow::Borrowed(data),
        };
        let n = self.writer.write_packet(&packet).map_err(io_error)?;
        self.bytes += n as u64;
        Ok(())
    }

    /// Appends a whole frame (`orig_len` = its length) captured at `ts_us` µs.
    pub fn write_us(&mut self, ts_us: u64, frame: &[u8]) -> io::Result<()> {
        self.write(ts_us * 1000, frame, frame.len())
    }

    /// Bytes written so far, header included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The underlying writer (flush it when it buffers).
    pub fn into_inner(self) -> W {
        self.writer.into_writer()
    }
}

/// A writer that counts what goes through it: where the next pcapng block starts.
struct Counting<W> {
    inner: W,
    bytes: usize,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `packets` with link type `linktype` to `w`; returns the offset at which each record
/// (pcap) or Enhanced Packet Block (pcapng) starts.
pub fn write_capture_to<W: Write>(
    w: W,
    format: Format,
    linktype: u32,
    packets: &[Packet],
) -> io::Result<Vec<usize>> {
    let mut offsets = Vec::with_capacity(packets.len());
    match format {
        Format::Pcap { big_endian, nanos } => {
            let mut s = PcapStream::new(w, big_endian, nanos, SNAPLEN, linktype)?;
            for p in packets {
                offsets.push(s.bytes() as usize);
                s.write(p.ts_ns, &p.data, p.orig_len)?;
            }
        }
        Format::PcapNg { nanos } => {
            let section = SectionHeaderBlock {
                endianness: Endianness::Little,
                ..Default::default()
            };
            let mut writer =
                PcapNgWriter::with_section_header(Counting { inner: w, bytes: 0 }, section)
                    .map_err(io_error)?;
            // The IDB's link type field has 16 bits.
            let linktype16 = u16::try_from(linktype).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "pcapng link type is 16 bits")
            })?;
            let idb = InterfaceDescriptionBlock {
                linktype: DataLink::from(u32::from(linktype16)),
                snaplen: SNAPLEN,
                options: if nanos {
                    vec![InterfaceDescriptionOption::IfTsResol(9)]
                } else {
                    vec![]
                },
            };
            writer.write_pcapng_block(idb).map_err(io_error)?;
            for p in packets {
                offsets.push(writer.get_ref().bytes);
                // pcap-file 2 stores `timestamp.as_nanos()` in the EPB, whose unit is the
                // interface's if_tsresol: give it the count of those units.
                let units = if nanos { p.ts_ns } else { p.ts_ns / 1000 };
                let epb = EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: Duration::from_nanos(units),
                    original_len: u32_len(p.orig_len)?,
                    data: Cow::Borrowed(&p.data),
                    options: vec![],
                };
                writer.write_pcapng_block(epb).map_err(io_error)?;
            }
        }
    }
    Ok(offsets)
}

/// The bytes of a capture file holding `packets` with link type `linktype`.
///
/// Panics when a packet does not fit the format (a test's mistake, not input data).
pub fn capture_bytes(format: Format, linktype: u32, packets: &[Packet]) -> Vec<u8> {
    let mut out = Vec::new();
    write_capture_to(&mut out, format, linktype, packets)
        .unwrap_or_else(|e| panic!("writing a capture in memory: {e}"));
    out
}

/// The file offsets at which each record (pcap) or block (pcapng) starts, for tests that cut a
/// file in the middle of one.
pub fn record_offsets(format: Format, packets: &[Packet]) -> Vec<usize> {
    write_capture_to(io::sink(), format, 0, packets)
        .unwrap_or_else(|e| panic!("writing a capture: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28T08:00:01.123456789Z, 3 bytes captured of 5.
    fn packet() -> Packet {
        Packet {
            ts_ns: 1_795_852_801_123_456_789,
            data: vec![0xaa, 0xbb, 0xcc],
            orig_len: 5,
        }
    }

    fn le(v: u32) -> [u8; 4] {
        v.to_le_bytes()
    }

    /// The layouts are pinned byte by byte, so that an upgrade of pcap-file that changed them
    /// would show here rather than in a test that reads the files.
    #[test]
    fn classic_pcap_little_endian_microseconds() {
        let mut want = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(&le(SNAPLEN));
        want.extend_from_slice(&le(113));
        for v in [1_795_852_801, 123_456, 3, 5] {
            want.extend_from_slice(&le(v));
        }
        want.extend_from_slice(&[0xaa, 0xbb, 0xcc]);
        assert_eq!(capture_bytes(Format::PCAP, 113, &[packet()]), want);
        assert_eq!(
            record_offsets(Format::PCAP, &[packet(), packet()]),
            [24, 43]
        );
    }

    #[test]
    fn classic_pcap_big_endian_nanoseconds() {
        let mut want = vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(&SNAPLEN.to_be_bytes());
        want.extend_from_slice(&276u32.to_be_bytes());
        for v in [1_795_852_801u32, 123_456_789, 3, 5] {
            want.extend_from_slice(&v.to_be_bytes());
        }
        want.extend_from_slice(&[0xaa, 0xbb, 0xcc]);
        assert_eq!(capture_bytes(Format::PCAP_BE_NS, 276, &[packet()]), want);
    }

    fn pcapng(nanos: bool) -> Vec<u8> {
        // SHB: byte-order magic, version 1.0, section length unknown (-1), no options.
        let mut want = vec![
            0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
        ];
        want.extend_from_slice(&[0xff; 8]);
        want.extend_from_slice(&le(28));
        // IDB: link type, reserved, snaplen, then if_tsresol = 9 and the end of options.
        let idb_len: u32 = if nanos { 32 } else { 20 };
        want.extend_from_slice(&le(1));
        want.extend_from_slice(&le(idb_len));
        want.extend_from_slice(&[1, 0, 0, 0]);
        want.extend_from_slice(&le(SNAPLEN));
        if nanos {
            want.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
        }
        want.extend_from_slice(&le(idb_len));
        // EPB: interface 0, timestamp in the interface's unit, lengths, data padded to 4.
        let ts: u64 = if nanos {
            1_795_852_801_123_456_789
        } else {
            1_795_852_801_123_456
        };
        want.extend_from_slice(&le(6));
        want.extend_from_slice(&le(36));
        for v in [0, (ts >> 32) as u32, ts as u32, 3, 5] {
            want.extend_from_slice(&le(v));
        }
        want.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0]);
        want.extend_from_slice(&le(36));
        want
    }

    #[test]
    fn pcapng_microseconds_and_nanoseconds() {
        assert_eq!(capture_bytes(Format::PCAPNG, 1, &[packet()]), pcapng(false));
        assert_eq!(
            capture_bytes(Format::PCAPNG_NS, 1, &[packet()]),
            pcapng(true)
        );
        assert_eq!(
            record_offsets(Format::PCAPNG, &[packet(), packet()]),
            [48, 84]
        );
        assert_eq!(record_offsets(Format::PCAPNG_NS, &[packet()]), [60]);
    }

    #[test]
    fn stream_counts_the_bytes_it_wrote() {
        let mut s = PcapStream::ethernet(Vec::new(), 65535).expect("header");
        s.write_us(1_700_000_000_000_010, &[1, 2, 3, 4])
            .expect("record");
        assert_eq!(s.bytes(), 24 + 16 + 4);
        let out = s.into_inner();
        assert_eq!(out.len(), 44);
        assert_eq!(&out[24..28], &le(1_700_000_000));
        assert_eq!(&out[28..32], &le(10));
    }
}
