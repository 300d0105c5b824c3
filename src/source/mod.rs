//! Where frames come from: capture files (pcap, pcapng, stdin) and live interfaces, through
//! libpcap.
//!
//! Gives [`Frame`]s in capture-time order, several files merged into one stream. It leaves
//! out decoding: a frame is bytes, a link type and a time.

pub mod capture;
pub mod live;
pub mod secrets;

pub use capture::{CaptureSet, Frame, SourceError};
pub use live::{KernelStats, LiveCapture, LiveError, LiveOptions, LiveRead};

/// The libpcap this process runs with, as "1.10.3", read from the file the dynamic linker
/// mapped (`/proc/self/maps`, the versioned name its symlinks lead to); `None` where that
/// cannot be told.
pub fn libpcap_version() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let path = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("libpcap.so"))?;
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
    let name = real.file_name()?.to_str()?;
    let v = name.split_once(".so.")?.1;
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')).then(|| v.to_string())
}

/// `idemwatch --version`: this version and the libpcap it runs with.
pub fn version_line() -> String {
    format!(
        "{} (libpcap {})",
        env!("CARGO_PKG_VERSION"),
        libpcap_version().unwrap_or_else(|| "version unknown".into())
    )
}
