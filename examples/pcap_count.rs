//! The floor for `idemwatch read`: a bare libpcap loop (`pcap_next_ex` through the `pcap`
//! crate) that only counts packets and bytes. `scripts/bench.sh` times idemwatch against it.
//!
//! Usage: pcap_count FILE (or - for stdin)

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: pcap_count FILE");
        std::process::exit(2);
    };
    let mut cap = match pcap::Capture::from_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pcap_count: {path}: {e}");
            std::process::exit(1);
        }
    };
    let (mut packets, mut bytes) = (0u64, 0u64);
    loop {
        match cap.next_packet() {
            Ok(p) => {
                packets += 1;
                bytes += p.data.len() as u64;
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                eprintln!("pcap_count: {path}: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{packets} packets, {bytes} bytes");
}
