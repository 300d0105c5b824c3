#!/usr/bin/env python3
"""lossy_link: a point-to-point IP link between two network namespaces that loses one TCP
segment once, for recordings of a loss and its retransmission where the kernel has neither
netem nor iptables (record_tls.sh's `*-lost-segment` scenarios).

usage: lossy_link.py CLIENT_NS SERVER_NS N
Creates the tun device `iwtun` in each namespace (configured by the caller once this prints
"ready"), relays IP packets between them, and drops the Nth server-to-client TCP segment that
carries payload, once; prints "dropped ..." when it does. Runs until killed.
"""
import ctypes
import fcntl
import os
import select
import struct
import sys

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
libc = ctypes.CDLL(None, use_errno=True)


def tun_in(ns):
    """Opens iwtun in namespace `ns` (the device lives in the namespace it was made in)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/" + ns, os.O_RDONLY)
    if libc.setns(target, CLONE_NEWNET) != 0:
        sys.exit("lossy_link: setns %s: errno %d" % (ns, ctypes.get_errno()))
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"iwtun", IFF_TUN | IFF_NO_PI))
    libc.setns(home, CLONE_NEWNET)
    os.close(target)
    os.close(home)
    return fd


def tcp_payload_len(pkt):
    """IPv4 TCP payload length, or -1 for anything else."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return -1
    ihl = (pkt[0] & 15) * 4
    total = struct.unpack("!H", pkt[2:4])[0]
    if len(pkt) < ihl + 13:
        return -1
    doff = (pkt[ihl + 12] >> 4) * 4
    return total - ihl - doff


def main():
    client_ns, server_ns, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client, server = tun_in(client_ns), tun_in(server_ns)
    print("ready", flush=True)
    seen = 0
    dropped = False
    while True:
        ready, _, _ = select.select([client, server], [], [])
        for fd in ready:
            pkt = os.read(fd, 65535)
            if fd == server and not dropped and tcp_payload_len(pkt) > 0:
                seen += 1
                if seen == nth:
                    dropped = True
                    print("dropped server segment %d (%d bytes)" % (nth, len(pkt)), flush=True)
                    continue
            os.write(client if fd == server else server, pkt)


if __name__ == "__main__":
    main()
