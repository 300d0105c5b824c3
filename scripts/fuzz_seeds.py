#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/TARGET/) from our own captures.

Each target reads its own input format (see the top of each check in fuzz/checks/); the
seeds are real traffic from captures/ in those formats, kept small:
    python3 scripts/fuzz_seeds.py
"""
import hashlib
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CAPTURES = os.path.join(ROOT, "captures")
sys.path.insert(0, CAPTURES)
import pcaputil  # noqa: E402

OUT = os.path.join(ROOT, "fuzz", "seeds")
MAX_SEEDS = 24
MAX_SEED_BYTES = 4096


def pcap_frames(path):
    """(capture, [frame bytes]) of a classic pcap file, or None for another format."""
    try:
        cap = pcaputil.open_capture(path)
    except ValueError:
        return None
    if cap.format != "pcap":
        return None
    return cap, [p.data for p in cap.packets()]


def tcp_of(linktype, frame):
    """(src, dst, sport, dport, seq, ack, flags, payload) of an Ethernet IPv4/IPv6 TCP frame."""
    if linktype != 1 or len(frame) < 14:
        return None
    ethertype, ip = struct.unpack("!H", frame[12:14])[0], frame[14:]
    if ethertype == 0x0800 and len(ip) >= 20 and ip[9] == 6:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        src, dst, tcp = ip[12:16], ip[16:20], ip[ihl:total]
    elif ethertype == 0x86DD and len(ip) >= 40 and ip[6] == 6:
        plen = struct.unpack("!H", ip[4:6])[0]
        src, dst, tcp = ip[8:24], ip[24:40], ip[40:40 + plen]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport, seq, ack = struct.unpack("!HHII", tcp[:12])
    off = (tcp[12] >> 4) * 4
    return src, dst, sport, dport, seq, ack, tcp[13], tcp[off:]


def connections(linktype, frames):
    """Per connection (in order of first packet): its segments as (side, tcp tuple)."""
    conns, order = {}, []
    for f in frames:
        t = tcp_of(linktype, f)
        if t is None:
            continue
        a, b = (t[0], t[2]), (t[1], t[3])
        key = (min(a, b), max(a, b))
        if key not in conns:
            conns[key] = {"client": a, "segs": []}
            order.append(key)
        c = conns[key]
        c["segs"].append((0 if a == c["client"] else 1, t))
    return [conns[k] for k in order]


def streams(conn):
    """The connection's payload as (side, bytes) in capture order, retransmissions dropped."""
    nxt, out = [None, None], []
    for side, t in conn["segs"]:
        seq, flags, payload = t[4], t[6], t[7]
        if flags & 0x02:
            nxt[side] = (seq + 1) & 0xFFFFFFFF
            continue
        if not payload:
            continue
        if nxt[side] is None:
            nxt[side] = seq
        if seq != nxt[side]:
            continue
        out.append((side, payload))
        nxt[side] = (seq + len(payload)) & 0xFFFFFFFF
    return out


def session_seed(conn):
    """http_session: a control byte (side in bit 0, length in bits 3..7) then the bytes; the
    lengths 14, 15, 30 and 31 would also set the gap bits, so pieces avoid them."""
    out = bytearray()
    for side, payload in streams(conn):
        pos = 0
        while pos < len(payload):
            n = min(29, len(payload) - pos)
            if n in (14, 15):
                n = 13
            out.append(side | (n << 3))
            out += payload[pos:pos + n]
            pos += n
    return bytes(out)


def mirror_seed(conn):
    """mirror_request: a byte choosing the piece size, then what the client sent."""
    return b"\x07" + b"".join(p for s, p in streams(conn) if s == 0)


def reassembly_seed(conn, flow):
    """reassembly: 8-byte records (see fuzz/checks/reassembly.rs) from the real segments."""
    cursor, out = [0xFFFFFF00, 0xFFFFFF00], bytearray()
    for side, t in conn["segs"]:
        seq, ack, flags, payload = t[4], t[5], t[6], t[7]
        b0 = flow | side << 2
        b0 |= 0x08 if flags & 0x02 else 0
        b0 |= 0x10 if flags & 0x10 else 0
        b0 |= 0x20 if flags & 0x01 else 0
        b0 |= 0x40 if flags & 0x04 else 0
        d_seq = ((seq - cursor[side] + 0x8000) & 0xFFFFFFFF) - 0x8000
        d_ack = ((ack - cursor[1 - side] + 0x8000) & 0xFFFFFFFF) - 0x8000
        d_seq = max(-0x8000, min(0x7FFF, d_seq))
        d_ack = max(-0x8000, min(0x7FFF, d_ack))
        n = min(255, len(payload))
        out += struct.pack("<BhhBBB", b0, d_seq, d_ack, n, 1, 0)
        cursor[side] = (cursor[side] + d_seq + n + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF
    return bytes(out)


def small_pcap(cap):
    """The start of a classic pcap file: its header and the packets that fit in the seed size."""
    pos = cap.header_len
    for p in cap.packets():
        if pos + p.size > MAX_SEED_BYTES:
            break
        pos += p.size
    return cap.data[:pos]


def write(target, seeds, limit=MAX_SEED_BYTES):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.remove(os.path.join(d, old))
    kept = 0
    for s in seeds:
        if not s or kept >= MAX_SEEDS:
            continue
        s = s[:limit]
        with open(os.path.join(d, hashlib.sha1(s).hexdigest()[:16]), "wb") as f:
            f.write(s)
        kept += 1
    print(f"{target}: {kept} seeds", file=sys.stderr)


def main():
    session, mirror, reasm, frames_out, files = [], [], [], [], []
    for name in sorted(os.listdir(CAPTURES)):
        if not name.endswith(".pcap"):
            continue
        parsed = pcap_frames(os.path.join(CAPTURES, name))
        if parsed is None:
            continue
        cap, frames = parsed
        linktype = cap.linktype
        files.append(small_pcap(cap))
        conns = connections(linktype, frames)
        # One connection per capture (its first that carries data), for variety within bounds.
        for i, c in enumerate(conns):
            if any(t[7] for _, t in c["segs"]):
                session.append(session_seed(c))
                mirror.append(mirror_seed(c))
                reasm.append(reassembly_seed(c, i % 4))
                break
        # decode_frame: a byte choosing the link type (0: Ethernet), then one frame.
        if linktype == 1:
            for f in frames[:3]:
                frames_out.append(b"\x00" + f)
    write("http_session", session)
    # h2_session: the cleartext HTTP/2 recordings (prior knowledge, h2c upgrade), each
    # connection that carries data.
    h2 = []
    h2dir = os.path.join(CAPTURES, "h2")
    for name in sorted(os.listdir(h2dir)):
        if not name.endswith(".pcap") or os.path.exists(os.path.join(h2dir, name[:-5] + ".keys")):
            continue
        parsed = pcap_frames(os.path.join(h2dir, name))
        if parsed is None:
            continue
        cap, frames = parsed
        for c in connections(cap.linktype, frames):
            if any(t[7] for _, t in c["segs"]):
                h2.append(session_seed(c))
    write("h2_session", h2, 16384)
    write("mirror_request", mirror)
    write("reassembly", reasm)
    write("decode_frame", frames_out)
    cfg = open(os.path.join(ROOT, "etc", "idemwatch.toml"), "rb").read()
    write("capture_file", files)
    write("config_file", [cfg, b'interface = "eth0"\nwindow = "24h"\nmax-keys = 1000\n'], 1 << 20)


if __name__ == "__main__":
    main()
