#!/usr/bin/env python3
"""Convert a classic pcap file to pcapng (SHB, one IDB, one EPB per packet).

Used by record.sh only when Wireshark's editcap is not installed. Reads with pcaputil.py;
writes the blocks itself, keeping each packet's original length and exact timestamp.
usage: pcap2pcapng.py IN.pcap OUT.pcapng
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil  # noqa: E402


def opt(code, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def block(btype, body):
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def main():
    try:
        cap = pcaputil.open_capture(sys.argv[1])
    except ValueError:
        cap = None
    if cap is None or cap.format != "pcap":
        sys.exit("not a pcap file")
    res = 9 if cap.nanos else 6
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                 + opt(3, b"idemwatch captures/pcap2pcapng.py") + opt(0, b""))]
    out.append(block(1, struct.pack("<HHI", cap.linktype, 0, cap.snaplen)
                     + opt(2, b"lo") + opt(9, bytes([res])) + opt(0, b"")))
    for p in cap.packets():
        ts = p.ts_sec * p.ts_units + p.ts_frac
        pad = b"\0" * ((4 - p.caplen % 4) % 4)
        out.append(block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, p.caplen, p.orig_len)
                         + p.data + pad))
    open(sys.argv[2], "wb").write(b"".join(out))


if __name__ == "__main__":
    main()
