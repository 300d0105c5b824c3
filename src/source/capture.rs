//! pcap and pcapng files read with libpcap (the `pcap` crate), with nanosecond timestamps.
//!
//! Several files are merged by timestamp into one stream (ties go to the earlier file). A file
//! that libpcap cannot open, whose link type idemwatch does not decode, or that is damaged
//! part-way, gives a [`SourceError`] naming the file and what to do; frames read before the
//! damage have already been handed on.

use std::path::{Path, PathBuf};

use pcap::{Capture, Offline, Precision};

use crate::decode::LinkType;
use crate::ts::Timestamp;

/// A captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub link: LinkType,
    pub data: &'a [u8],
    /// Length on the wire (larger than `data.len()` when the snaplen cut the frame).
    pub wire_len: u32,
    /// Which input file it came from.
    pub file_index: usize,
}

/// Why reading stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{file}: {reason}")]
    Open { file: String, reason: String },
    #[error(
        "{file}: link type {dlt} ({name}) is not supported; idemwatch reads {supported}",
        supported = LinkType::SUPPORTED
    )]
    LinkType {
        file: String,
        dlt: i32,
        name: String,
    },
    #[error("{file}: bad capture filter '{filter}': {reason}")]
    Filter {
        file: String,
        filter: String,
        reason: String,
    },
    #[error(
        "{file}: {reason} after packet {packet} of this file; the capture is damaged or was cut short"
    )]
    Corrupt {
        file: String,
        packet: u64,
        reason: String,
    },
}

impl SourceError {
    /// Usage errors (a bad filter) exit 2; input errors exit 1.
    pub fn is_usage(&self) -> bool {
        matches!(self, SourceError::Filter { .. })
    }
}

struct Input {
    name: String,
    cap: Capture<Offline>,
    link: LinkType,
    /// The next frame, copied out when several files are merged.
    head: Option<OwnedFrame>,
    done: bool,
    packets: u64,
}

struct OwnedFrame {
    ts: Timestamp,
    data: Vec<u8>,
    wire_len: u32,
}

/// The input files, read as one stream ordered by capture time.
pub struct CaptureSet {
    inputs: Vec<Input>,
    /// Index of the input whose head frame was handed out last (refilled on the next call).
    taken: Option<usize>,
    /// Bytes read: each record's 16-byte header and captured bytes (a pcapng's other blocks
    /// are not counted), and records read.
    bytes: u64,
    records: u64,
    /// Told the bytes read every [`PROGRESS_EVERY`] records (a progress bar).
    on_read: Option<Box<dyn FnMut(u64) + Send>>,
}

/// Records between two calls of the progress hook: rare enough to cost nothing.
const PROGRESS_EVERY: u64 = 256;

fn display_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "-".to_string()
    } else {
        path.display().to_string()
    }
}

impl CaptureSet {
    /// Opens every file (`-` is stdin) and applies the BPF `filter` to each.
    pub fn open(paths: &[PathBuf], filter: Option<&str>) -> Result<CaptureSet, SourceError> {
        let mut inputs = Vec::with_capacity(paths.len());
        for path in paths {
            let name = display_name(path);
            let mut cap =
                Capture::from_file_with_precision(path, Precision::Nano).map_err(|e| {
                    SourceError::Open {
                        file: name.clone(),
                        reason: open_reason(path, &e),
                    }
                })?;
            let dlt = cap.get_datalink();
            let link = LinkType::from_dlt(dlt.0).ok_or_else(|| SourceError::LinkType {
                file: name.clone(),
                dlt: dlt.0,
                name: dlt.get_name().unwrap_or_else(|_| "unknown".to_string()),
            })?;
            if let Some(f) = filter {
                cap.filter(f, true).map_err(|e| SourceError::Filter {
                    file: name.clone(),
                    filter: f.to_string(),
                    reason: pcap_message(&e),
                })?;
            }
            tracing::info!(file = %name, link = ?link, "reading capture");
            inputs.push(Input {
                name,
                cap,
                link,
                head: None,
                done: false,
                packets: 0,
            });
        }
        Ok(CaptureSet {
            inputs,
            taken: None,
            bytes: 0,
            records: 0,
            on_read: None,
        })
    }

    /// The size of every file together; `None` when one is stdin (or cannot be measured).
    pub fn total_bytes(&self, paths: &[PathBuf]) -> Option<u64> {
        paths.iter().try_fold(0u64, |sum, p| {
            if p.as_os_str() == "-" {
                return None;
            }
            let m = std::fs::metadata(p).ok()?;
            m.is_file().then(|| sum.saturating_add(m.len()))
        })
    }

    /// Calls `hook` with the bytes read so far as reading goes on (record headers and captured bytes).
    pub fn on_read(&mut self, hook: Box<dyn FnMut(u64) + Send>) {
        self.on_read = Some(hook);
    }

    /// File names as given, by index (for `pcap_filename`).
    pub fn names(&self) -> Vec<String> {
        self.inputs.iter().map(|i| i.name.clone()).collect()
    }

    /// The next frame in capture-time order, `None` at the end of every file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        if self.inputs.len() == 1 {
            let Some(input) = self.inputs.first_mut() else {
                return Ok(None);
            };
            if input.done {
                return Ok(None);
            }
            let link = input.link;
            return match input.cap.next_packet() {
                Ok(p) => {
                    input.packets += 1;
                    self.bytes = self.bytes.saturating_add(16 + p.data.len() as u64);
                    self.records += 1;
                    if self.records.is_multiple_of(PROGRESS_EVERY)
                        && let Some(hook) = self.on_read.as_mut()
                    {
                        hook(self.bytes);
                    }
                    Ok(Some(Frame {
                        ts: ts_of(p.header),
                        link,
                        data: p.data,
                        wire_len: p.header.len,
                        file_index: 0,
                    }))
                }
                Err(pcap::Error::NoMorePackets) => {
                    input.done = true;
                    Ok(None)
                }
                Err(e) => {
                    input.done = true;
                    Err(SourceError::Corrupt {
                        file: input.name.clone(),
                        packet: input.packets,
                        reason: pcap_message(&e),
                    })
                }
            };
        }
        // Several files: keep one frame of each, hand out the earliest.
        if let Some(i) = self.taken.take()
            && let Some(input) = self.inputs.get_mut(i)
        {
            input.head = None;
        }
        for input in &mut self.inputs {
            if input.head.is_none() && !input.done {
                match input.cap.next_packet() {
                    Ok(p) => {
                        input.packets += 1;
                        self.bytes = self.bytes.saturating_add(16 + p.data.len() as u64);
                        self.records += 1;
                        if self.records.is_multiple_of(PROGRESS_EVERY)
                            && let Some(hook) = self.on_read.as_mut()
                        {
                            hook(self.bytes);
                        }
                        input.head = Some(OwnedFrame {
                            ts: ts_of(p.header),
                            data: p.data.to_vec(),
                            wire_len: p.header.len,
                        });
                    }
                    Err(pcap::Error::NoMorePackets) => input.done = true,
                    Err(e) => {
                        input.done = true;
                        return Err(SourceError::Corrupt {
                            file: input.name.clone(),
                            packet: input.packets,
                            reason: pcap_message(&e),
                        });
                    }
                }
            }
        }
        let best = self
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(i, inp)| inp.head.as_ref().map(|h| (h.ts, i)))
            .min();
        let Some((_, i)) = best else {
            return Ok(None);
        };
        self.taken = Some(i);
        let Some(input) = self.inputs.get(i) else {
            return Ok(None);
        };
        Ok(input.head.as_ref().map(|h| Frame {
            ts: h.ts,
            link: input.link,
            data: &h.data,
            wire_len: h.wire_len,
            file_index: i,
        }))
    }
}

/// libpcap's own words, without the crate's prefix.
pub(crate) fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m.trim().to_string(),
        other => other.to_string(),
    }
}

pub(crate) fn ts_of(h: &pcap::PacketHeader) -> Timestamp {
    // Opened with nanosecond precision: tv_usec holds nanoseconds.
    Timestamp::from_parts(h.ts.tv_sec, h.ts.tv_usec)
}

/// libpcap's message, with a hint of what to do.
fn open_reason(path: &Path, e: &pcap::Error) -> String {
    let msg = e.to_string();
    if path.as_os_str() != "-" && !path.exists() {
        return "no such file; check the path".to_string();
    }
    if msg.contains("unknown file format") || msg.contains("bad dump file format") {
        return format!(
            "not a pcap or pcapng capture ({}); write captures with 'tcpdump -w FILE'",
            pcap_message(e)
        );
    }
    if msg.contains("ermission denied") {
        return "permission denied; check the file's owner and mode".to_string();
    }
    msg
}
