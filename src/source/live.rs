//! Live capture on a network interface through libpcap: promiscuous mode off unless asked,
//! a large snaplen and kernel buffer, immediate delivery, and a short read timeout so that the
//! daemon sees signals, sweeps idle flows and writes stats when no packets arrive.

use pcap::{Active, Capture, Device, Precision};

use super::Frame;
use super::capture::{pcap_message, ts_of};
use crate::decode::LinkType;

/// How long a read waits for packets before it returns [`LiveRead::Idle`].
pub const READ_TIMEOUT_MS: u16 = 100;

/// How to open the interface.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interface: String,
    pub promisc: bool,
    pub snaplen: i32,
    pub buffer_size: u64,
    pub filter: Option<String>,
}

/// Why capture could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot open {iface}: {reason}")]
    Open { iface: String, reason: String },
    #[error(
        "{iface}: link type {dlt} ({name}) is not supported; idemwatch reads {supported}",
        supported = LinkType::SUPPORTED
    )]
    LinkType {
        iface: String,
        dlt: i32,
        name: String,
    },
    #[error("{iface}: bad capture filter '{filter}': {reason}")]
    Filter {
        iface: String,
        filter: String,
        reason: String,
    },
    #[error("capture on {iface} failed: {reason}")]
    Read { iface: String, reason: String },
    #[error("cannot list interfaces: {0}")]
    List(String),
}

impl LiveError {
    /// Usage errors (a bad filter) exit 2; the rest 1.
    pub fn is_usage(&self) -> bool {
        matches!(self, LiveError::Filter { .. })
    }
}

/// libpcap's counters since the handle was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelStats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

/// What one read gave.
pub enum LiveRead<'a> {
    Frame(Frame<'a>),
    /// The read timeout passed without packets.
    Idle,
}

/// An open capture handle.
pub struct LiveCapture {
    cap: Capture<Active>,
    link: LinkType,
    iface: String,
    /// libpcap's counters are 32-bit and wrap; these widen them.
    last_raw: (u32, u32, u32),
    totals: KernelStats,
    /// Timestamps in nanoseconds (else microseconds).
    nano: bool,
    /// The last read gave a packet: try again before waiting.
    ready: bool,
}

impl LiveCapture {
    pub fn open(o: &LiveOptions) -> Result<LiveCapture, LiveError> {
        let open_err = |e: &pcap::Error| LiveError::Open {
            iface: o.interface.clone(),
            reason: open_reason(&o.interface, e),
        };
        let inactive = || -> Result<_, LiveError> {
            Ok(Capture::from_device(o.interface.as_str())
                .map_err(|e| open_err(&e))?
                .promisc(o.promisc)
                .snaplen(o.snaplen)
                .buffer_size(i32::try_from(o.buffer_size).unwrap_or(i32::MAX))
                .immediate_mode(true)
                .timeout(i32::from(READ_TIMEOUT_MS)))
        };
        // Nanosecond timestamps where the platform has them, else microseconds.
        let (cap, nano) = match inactive()?.precision(Precision::Nano).open() {
            Ok(c) => (c, true),
            Err(_) => (inactive()?.open().map_err(|e| open_err(&e))?, false),
        };
        if !nano {
            tracing::debug!(iface = %o.interface, "microsecond timestamps");
        }
        let cap = cap;
        let dlt = cap.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| LiveError::LinkType {
            iface: o.interface.clone(),
            dlt: dlt.0,
            name: dlt.get_name().unwrap_or_else(|_| "unknown".to_string()),
        })?;
        // Non-blocking, with our own poll: libpcap's read timeout does not fire on Linux while
        // no packet arrives, and the daemon must see signals and move time on a quiet link.
        let mut cap = cap.setnonblock().map_err(|e| open_err(&e))?;
        if let Some(f) = &o.filter {
            cap.filter(f, true).map_err(|e| LiveError::Filter {
                iface: o.interface.clone(),
                filter: f.clone(),
                reason: pcap_message(&e),
            })?;
        }
        Ok(LiveCapture {
            cap,
            link,
            iface: o.interface.clone(),
            last_raw: (0, 0, 0),
            totals: KernelStats::default(),
            nano,
            ready: false,
        })
    }

    /// Waits up to the read timeout for the next frame.
    pub fn read(&mut self) -> Result<LiveRead<'_>, LiveError> {
        self.read_within(READ_TIMEOUT_MS)
    }

    /// Waits up to `ms` milliseconds for the next frame (a caller with work of its own due
    /// soon waits less).
    pub fn read_within(&mut self, ms: u16) -> Result<LiveRead<'_>, LiveError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        if !self.ready {
            let mut fds = [PollFd::new(self.cap.as_fd(), PollFlags::POLLIN)];
            // A signal interrupts the wait (EINTR): the caller looks at its flags.
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(_) => return Ok(LiveRead::Idle),
                Ok(_) => {}
            }
        }
        match self.cap.next_packet() {
            Ok(p) => {
                self.ready = true;
                let ts = if self.nano {
                    ts_of(p.header)
                } else {
                    crate::ts::Timestamp::from_parts(
                        p.header.ts.tv_sec,
                        p.header.ts.tv_usec.saturating_mul(1000),
                    )
                };
                Ok(LiveRead::Frame(Frame {
                    ts,
                    link: self.link,
                    data: p.data,
                    wire_len: p.header.len,
                    file_index: 0,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                self.ready = false;
                Ok(LiveRead::Idle)
            }
            Err(e) => Err(LiveError::Read {
                iface: self.iface.clone(),
                reason: pcap_message(&e),
            }),
        }
    }

    /// libpcap's counters (received, dropped by the kernel buffer, dropped by the interface),
    /// widened past their 32-bit wrap.
    pub fn kernel_stats(&mut self) -> KernelStats {
        if let Ok(s) = self.cap.stats() {
            let delta = |now: u32, last: u32| u64::from(now.wrapping_sub(last));
            self.totals.received += delta(s.received, self.last_raw.0);
            self.totals.dropped += delta(s.dropped, self.last_raw.1);
            self.totals.if_dropped += delta(s.if_dropped, self.last_raw.2);
            self.last_raw = (s.received, s.dropped, s.if_dropped);
        }
        self.totals
    }

    pub fn interface(&self) -> &str {
        &self.iface
    }
}

/// The interfaces libpcap can open, with their descriptions and flags, one line each.
pub fn list_interfaces() -> Result<Vec<String>, LiveError> {
    let devs = Device::list().map_err(|e| LiveError::List(pcap_message(&e)))?;
    Ok(devs
        .into_iter()
        .map(|d| {
            let mut flags = Vec::new();
            if d.flags.is_up() {
                flags.push("up");
            }
            if d.flags.is_running() {
                flags.push("running");
            }
            if d.flags.is_loopback() {
                flags.push("loopback");
            }
            let desc = d.desc.unwrap_or_default();
            let addrs: Vec<String> = d.addresses.iter().map(|a| a.addr.to_string()).collect();
            format!(
                "{}\t{}\t{}\t{}",
                d.name,
                flags.join(","),
                addrs.join(" "),
                desc
            )
        })
        .collect())
}

/// libpcap's message, with what to do.
fn open_reason(iface: &str, e: &pcap::Error) -> String {
    let msg = pcap_message(e);
    let lower = msg.to_ascii_lowercase();
    if lower.contains("no such device") || lower.contains("doesn't exist") {
        return "no such device; try 'idemwatch live --list-interfaces'".to_string();
    }
    if lower.contains("permission") || lower.contains("operation not permitted") {
        return format!(
            "permission denied ({msg}); run as root, give the binary CAP_NET_RAW \
             ('setcap cap_net_raw+ep $(command -v idemwatch)'), or use the systemd unit"
        );
    }
    if lower.contains("not up") {
        return format!("{msg}; bring it up with 'ip link set {iface} up'");
    }
    msg
}
