#!/usr/bin/env python3
"""Writes N copies of a little-endian microsecond pcap of Ethernet/IPv4 loopback traffic one after
another in time, each copy's 127.0.0.1 addresses moved to 127.K_HI.K_LO.1 so every copy is a new
set of flows. Used to measure throughput on larger inputs:

    python3 scripts/replicate_pcap.py captures/bulk.pcap /tmp/bulk40.pcap 40
    /usr/bin/time -f '%e s %M KB' idemwatch read /tmp/bulk40.pcap

(TCP checksums are left as they were, so they count as bad checksums; idemwatch does not drop
such packets.) Reads with captures/pcaputil.py; writes the input's header and records itself.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "captures"))
import pcaputil  # noqa: E402

src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cap = pcaputil.open_capture(src)
if cap.format != "pcap" or cap.big_endian:
    sys.exit("%s: a little-endian pcap is expected" % src)
recs = [(p.ts_sec, p.ts_frac, p.caplen, p.orig_len, p.data) for p in cap.packets()]
span = recs[-1][0] - recs[0][0] + 2


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


with open(dst, 'wb') as f:
    f.write(cap.data[:cap.header_len])
    for k in range(n):
        for ts, tu, cl, ol, p in recs:
            p = bytearray(p)
            if len(p) >= 34 and p[12:14] == b'\x08\x00':
                # rewrite 127.0.0.1 -> 127.k_hi.k_lo.1 for both addresses
                for o in (26, 30):
                    if p[o] == 127:
                        p[o + 1] = k >> 8
                        p[o + 2] = k & 255
                p[24:26] = b'\0\0'
                ihl = (p[14] & 15) * 4
                p[24:26] = struct.pack('!H', csum(bytes(p[14:14 + ihl])))
            f.write(struct.pack('<IIII', ts + k * span, tu, cl, ol))
            f.write(p)
