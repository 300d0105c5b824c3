//! The floor for `idemwatch read`: a bare libpcap loop (`pcap_next_ex` through the `pcap`
//! crate) that only counts packets and bytes. `scripts/bench.sh` times idemwatch against it.
//!
//! With `--sha256`, the loop also takes the SHA-256 of every packet's bytes past the first 54
//! (Ethernet, IPv4 and TCP headers without options): about the bytes of every HTTP head and
//! body, each hashed once. That is a yardstick for the hashing the contract asks for (bodies
//! as SHA-256), not a program that does it.
//!
//! Usage: pcap_count [--sha256] FILE (or - for stdin)

use sha2::{Digest, Sha256};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let sha = args.first().is_some_and(|a| a == "--sha256");
    if sha {
        args.remove(0);
    }
    let Some(path) = args.first().cloned() else {
        eprintln!("usage: pcap_count [--sha256] FILE");
        std::process::exit(2);
    };
    let mut cap = match pcap::Capture::from_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pcap_count: {path}: {e}");
            std::process::exit(1);
        }
    };
    let (mut packets, mut bytes, mut hashed) = (0u64, 0u64, 0u64);
    let mut h = Sha256::new();
    let mut digest = [0u8; 32];
    loop {
        match cap.next_packet() {
            Ok(p) => {
                packets += 1;
                bytes += p.data.len() as u64;
                if sha && let Some(payload) = p.data.get(54..) {
                    h.update(payload);
                    hashed += payload.len() as u64;
                    // One digest per packet, as bodies end about that often.
                    if payload.len() < 1400 {
                        digest = h.finalize_reset().into();
                    }
                }
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                eprintln!("pcap_count: {path}: {e}");
                std::process::exit(1);
            }
        }
    }
    if sha {
        println!(
            "{packets} packets, {bytes} bytes, {hashed} bytes hashed ({:02x}{:02x}...)",
            digest[0], digest[1]
        );
    } else {
        println!("{packets} packets, {bytes} bytes");
    }
}
