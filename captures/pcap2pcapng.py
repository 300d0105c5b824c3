#!/usr/bin/env python3
"""Convert a classic pcap file to pcapng (SHB, one IDB, one EPB per packet).

Used by record.sh only when Wireshark's editcap is not installed.
usage: pcap2pcapng.py IN.pcap OUT.pcapng
"""
import struct
import sys


def opt(code, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def block(btype, body):
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def main():
    data = open(sys.argv[1], "rb").read()
    for endian, res in (("<", 6), (">", 6), ("<", 9), (">", 9)):
        m = struct.unpack(endian + "I", data[:4])[0]
        if m == (0xA1B2C3D4 if res == 6 else 0xA1B23C4D):
            break
    else:
        sys.exit("not a pcap file")
    snaplen, linktype = struct.unpack(endian + "II", data[16:24])
    linktype &= 0x0FFFFFFF
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                 + opt(3, b"idemwatch captures/pcap2pcapng.py") + opt(0, b""))]
    out.append(block(1, struct.pack("<HHI", linktype, 0, snaplen)
                     + opt(2, b"lo") + opt(9, bytes([res])) + opt(0, b"")))
    off, mult = 24, 10 ** 6 if res == 6 else 10 ** 9
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        pkt = data[off:off + incl]
        off += incl
        ts = sec * mult + frac
        pad = b"\0" * ((4 - incl % 4) % 4)
        out.append(block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, incl, orig) + pkt + pad))
    open(sys.argv[2], "wb").write(b"".join(out))


if __name__ == "__main__":
    main()
