"""The one capture-file reader of the Python tools in captures/ and scripts/.

Takes a classic pcap (either byte order, microsecond or nanosecond timestamps) or a pcapng file
(any number of sections and interfaces; Enhanced and Simple Packet Blocks). Gives the file's
format, link type, timestamp precision and header length, and its packets with their raw
timestamp fields, lengths and bytes. The record layouts are dpkt's (Debian's python3-dpkt,
installed by scripts/setup.sh); this module only walks the file and keeps the exact integers a
converter needs. Leaves out decoding the frames, pcapng's obsolete Packet Block and the blocks
that carry no packet (they are skipped).
"""
import collections
import sys

try:
    from dpkt import pcap, pcapng
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("these tools read captures with dpkt: run scripts/setup.sh "
             "(or apt-get install python3-dpkt, or pip install dpkt)")

# One packet. ts: seconds as a float. The exact time is ts_sec * ts_units + ts_frac units of
# 1/ts_units s: a classic pcap's two fields (ts_units 10**6 or 10**9), or a pcapng's 64-bit
# timestamp in ts_frac with ts_sec 0. size: the bytes of its record or block in the file.
Packet = collections.namedtuple(
    "Packet", "linktype ts ts_sec ts_frac ts_units caplen orig_len data size")

LINKTYPE_NAMES = {0: "NULL", 1: "EN10MB", 12: "RAW", 101: "RAW", 113: "LINUX_SLL", 276: "LINUX_SLL2"}

_BOM_LE = b"\x4d\x3c\x2b\x1a"  # pcapng byte-order magic as a little-endian file stores it
_SHB_MAGIC = b"\x0a\x0d\x0d\x0a"


class Capture:
    """A capture file read whole.

    format: "pcap" or "pcapng"; linktype: the link type of the file (pcap) or of its first
    interface (pcapng), FCS bits masked off; nanos: nanosecond timestamps (pcap: the magic;
    pcapng: the first interface's if_tsresol is 9); snaplen; big_endian (pcap, or the first
    section of a pcapng); header_len: bytes before the first record (classic pcap)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = f.read()
        if self.data[:4] == _SHB_MAGIC:
            self.format = "pcapng"
            self._open_pcapng()
        else:
            self.format = "pcap"
            self._open_pcap()

    @property
    def precision(self):
        return "ns" if self.nanos else "us"

    def packets(self):
        """Yield a Packet for each packet record, in file order; a record cut short by the end of
        the file gives the bytes that are there."""
        if self.format == "pcap":
            return self._pcap_packets()
        return self._pcapng_packets()

    # -- classic pcap ------------------------------------------------------------------
    def _open_pcap(self):
        head = self.data[:pcap.FileHdr.__hdr_len__]
        if len(head) < pcap.FileHdr.__hdr_len__:
            raise ValueError("%s: not a pcap file" % self.path)
        hdr = pcap.FileHdr(head)  # big-endian view first: the magic tells the byte order
        if hdr.magic in (pcap.TCPDUMP_MAGIC, pcap.TCPDUMP_MAGIC_NANO):
            self.big_endian, self._pkthdr = True, pcap.PktHdr
        elif hdr.magic in (pcap.PMUDPCT_MAGIC, pcap.PMUDPCT_MAGIC_NANO):
            self.big_endian, self._pkthdr = False, pcap.LEPktHdr
            hdr = pcap.LEFileHdr(head)
        else:
            raise ValueError("%s: not a pcap file" % self.path)
        self.nanos = hdr.magic == pcap.TCPDUMP_MAGIC_NANO
        self.linktype = hdr.linktype & 0x0FFFFFFF
        self.snaplen = hdr.snaplen
        self.header_len = pcap.FileHdr.__hdr_len__

    def _pcap_packets(self):
        data, hlen = self.data, self._pkthdr.__hdr_len__
        units = 10 ** 9 if self.nanos else 10 ** 6
        div = 1e9 if self.nanos else 1e6
        off = self.header_len
        while off + hlen <= len(data):
            h = self._pkthdr(data[off:off + hlen])
            frame = data[off + hlen:off + hlen + h.caplen]
            yield Packet(self.linktype, h.tv_sec + h.tv_usec / div, h.tv_sec, h.tv_usec, units,
                         h.caplen, h.len, frame, hlen + h.caplen)
            off += hlen + h.caplen

    # -- pcapng ------------------------------------------------------------------------
    def _open_pcapng(self):
        self.header_len = None
        first = next(self._pcapng_interfaces(), None)
        if first is None:
            raise ValueError("%s: no interface in the pcapng file" % self.path)
        (self.linktype, tsres, self.snaplen, self.big_endian) = first
        self.nanos = tsres == 9

    def _blocks(self):
        """Yield (block type, block bytes, big_endian) of every block."""
        data, off, big = self.data, 0, False
        while off + 12 <= len(data):
            if data[off:off + 4] == _SHB_MAGIC:
                big = data[off + 8:off + 12] != _BOM_LE
            blen = int.from_bytes(data[off + 4:off + 8], "big" if big else "little")
            btype = int.from_bytes(data[off:off + 4], "big" if big else "little")
            yield btype, data[off:off + blen], big
            if blen < 12:
                break  # a corrupt length would loop forever
            off += blen

    @staticmethod
    def _interface(block, big):
        idb = (pcapng.InterfaceDescriptionBlock if big else pcapng.InterfaceDescriptionBlockLE)(block)
        tsres = 6
        for opt in idb.opts:
            if opt.code == pcapng.PCAPNG_OPT_IF_TSRESOL:
                tsres = opt.data[0]
        return idb.linktype, tsres, idb.snaplen, big

    def _pcapng_interfaces(self):
        for btype, block, big in self._blocks():
            if btype == pcapng.PCAPNG_BT_IDB:
                yield self._interface(block, big)

    def _pcapng_packets(self):
        ifaces = []
        for btype, block, big in self._blocks():
            if btype == pcapng.PCAPNG_BT_SHB:
                ifaces = []  # interface ids are per section
            elif btype == pcapng.PCAPNG_BT_IDB:
                ifaces.append(self._interface(block, big))
            elif btype == pcapng.PCAPNG_BT_EPB:
                epb = (pcapng.EnhancedPacketBlock if big else pcapng.EnhancedPacketBlockLE)(block)
                lt, tsres = ifaces[epb.iface_id][:2]
                units = 10 ** tsres if tsres < 128 else 2 ** (tsres & 127)
                ts = epb.ts_high << 32 | epb.ts_low
                yield Packet(lt, ts / units, 0, ts, units, epb.caplen, epb.pkt_len, epb.pkt_data,
                             len(block))
            elif btype == pcapng.PCAPNG_BT_SPB:
                # Simple Packet Block: original length, then the bytes; no timestamp.
                lt = ifaces[0][0]
                orig = int.from_bytes(block[8:12], "big" if big else "little")
                frame = block[12:len(block) - 4][:orig]
                yield Packet(lt, 0.0, 0, 0, 1, len(frame), orig, frame, len(block))


def open_capture(path):
    """The Capture of the file at path; ValueError when it is neither pcap nor pcapng."""
    return Capture(path)


def read_frames(path):
    """Yield (linktype, ts_float, frame bytes) of every packet of a capture file."""
    for p in Capture(path).packets():
        yield p.linktype, p.ts, p.data
