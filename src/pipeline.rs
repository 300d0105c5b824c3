//! The offline run: source -> decode -> reassembly -> http -> output, in capture order.
//!
//! One worker owns the decoder, the flow table and the sessions; every event carries an
//! [`OrderKey`](crate::http::session::OrderKey) (packet index, flow, rank) so that sharding
//! flows over several workers can merge their output into the same order.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::decode::{Decoded, Decoder};
use crate::http::session::{Emitter, SessionSettings};
use crate::http::{HttpEvent as HttpOut, Session};
use crate::output::{AlertEvent, HttpEvent, Output, StatsEvent, WriteOutcome};
use crate::reassembly::FlowTable;
use crate::source::{CaptureSet, SourceError};
use crate::stats::Stats;
use crate::tracker::{Alert, Tracker};
use crate::ts::Timestamp;

/// How often (capture time) idle flows and stale fragments are swept.
const SWEEP_INTERVAL_NS: u64 = 1_000_000_000;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl RunError {
    /// The exit status: 2 for usage errors, 1 for input and output errors.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Source(e) if e.is_usage() => 2,
            _ => 1,
        }
    }
}

/// What a run did, for the end-of-run summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub stats: Stats,
    pub files: usize,
    pub elapsed_secs: f64,
    pub last_ts: Timestamp,
    /// The reader of the output went away before the end.
    pub output_closed: bool,
}

/// The flow-processing half of the pipeline: everything after the source.
pub struct Worker {
    decoder: Decoder,
    table: FlowTable<Session>,
    settings: Arc<SessionSettings>,
    pub emitter: Emitter,
    next_sweep: Option<Timestamp>,
}

impl Worker {
    pub fn new(config: &Config) -> Worker {
        Worker {
            decoder: Decoder::new(&config.limits),
            table: FlowTable::new(&config.limits),
            settings: SessionSettings::new(&config.http, &config.limits),
            emitter: Emitter::default(),
            next_sweep: None,
        }
    }

    /// Takes one frame, the `packet_no`th of the input.
    pub fn frame(&mut self, frame: &crate::source::Frame<'_>, packet_no: u64) {
        self.emitter.set_packet(packet_no, frame.ts);
        let settings = &self.settings;
        let mut new_session =
            |info: &crate::reassembly::FlowInfo| Session::new(settings.clone(), info);
        if let Decoded::Segment(seg) = self.decoder.decode(
            frame.ts,
            frame.link,
            frame.data,
            frame.wire_len,
            &mut self.emitter.stats,
        ) {
            self.table.on_segment(
                &seg,
                packet_no,
                frame.file_index,
                &mut new_session,
                &mut self.emitter,
            );
        }
        match self.next_sweep {
            None => self.next_sweep = Some(frame.ts.add_nanos(SWEEP_INTERVAL_NS)),
            Some(t) if frame.ts >= t => {
                self.table.sweep(frame.ts, &mut self.emitter);
                self.decoder.expire(frame.ts, &mut self.emitter.stats);
                self.next_sweep = Some(frame.ts.add_nanos(SWEEP_INTERVAL_NS));
            }
            Some(_) => {}
        }
    }

    /// End of input: ends every flow.
    pub fn finish(&mut self, last_ts: Timestamp) {
        self.emitter.set_packet(u64::MAX, last_ts);
        self.table.finish_all(last_ts, &mut self.emitter);
    }

    /// Takes the transactions finished so far, in order.
    pub fn drain(&mut self) -> Vec<(crate::http::session::OrderKey, HttpOut)> {
        let mut out = std::mem::take(&mut self.emitter.out);
        out.sort_by_key(|(k, _)| *k);
        out
    }
}

/// Reads capture files and writes events; returns the summary, or the error that stopped the
/// run after everything found before it was written.
pub fn run_read(
    config: &Config,
    files: &[PathBuf],
    filter: Option<&str>,
    out: &mut Output,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let mut source = CaptureSet::open(files, filter)?;
    let names = source.names();
    let mut worker = Worker::new(config);
    let mut judge = Judge {
        tracker: Tracker::new(config.tracker.clone()),
        stats: Stats::default(),
        alerts: Vec::new(),
    };
    let mut packet_no = 0u64;
    let mut last_ts = Timestamp::default();
    let mut failure = None;
    let mut closed = false;
    loop {
        match source.next_frame() {
            Ok(Some(frame)) => {
                last_ts = last_ts.max(frame.ts);
                worker.frame(&frame, packet_no);
                packet_no += 1;
            }
            Ok(None) => break,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        if !worker.emitter.out.is_empty()
            && write_all(config, &names, &mut worker, &mut judge, out)?
        {
            closed = true;
            break;
        }
    }
    if !closed {
        worker.finish(last_ts);
        closed = write_all(config, &names, &mut worker, &mut judge, out)?;
    }
    tracing::info!(packets = packet_no, "end of input");
    let mut stats = worker.emitter.stats.clone();
    stats.merge(&judge.stats);
    let mut summary = Summary {
        stats,
        files: files.len(),
        elapsed_secs: started.elapsed().as_secs_f64(),
        last_ts,
        output_closed: closed,
    };
    if config.stats_event && !closed {
        let ev = StatsEvent {
            timestamp: last_ts,
            event_type: "stats",
            stats: &summary.stats,
        };
        out.write(&ev)?;
    }
    out.flush()?;
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    match failure {
        // Exactly one line on stderr says what stopped the run (the caller prints it).
        Some(e) => Err(RunError::Source(e)),
        None => Ok(summary),
    }
}

/// The policy stage: the tracker and its counters.
struct Judge {
    tracker: Tracker,
    stats: Stats,
    alerts: Vec<Alert>,
}

/// Judges finished HTTP events and writes them and their alerts; true when the reader closed
/// the output.
fn write_all(
    config: &Config,
    names: &[String],
    worker: &mut Worker,
    judge: &mut Judge,
    out: &mut Output,
) -> Result<bool, RunError> {
    let redact = config.tracker.redact_keys;
    for (_, ev) in worker.drain() {
        let now = match &ev {
            HttpOut::Request { request, .. } => request.ts_end,
            HttpOut::Transaction(tx) => tx.ts_done,
        };
        judge.alerts.clear();
        judge
            .tracker
            .on_event(&ev, now, &mut judge.stats, &mut judge.alerts);
        crate::tracker::count_alerts(&mut judge.stats, &judge.alerts);
        if let HttpOut::Transaction(tx) = &ev
            && config.log_requests
        {
            let name = names.get(tx.conn.file_index).map(String::as_str);
            if out.write(&HttpEvent::new(tx, name, redact))? == WriteOutcome::Closed {
                return Ok(true);
            }
        }
        for a in &judge.alerts {
            if out.write(&AlertEvent::new(a, names, redact))? == WriteOutcome::Closed {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The short human summary on stderr.
pub fn print_summary(s: &Summary) {
    let st = &s.stats;
    let mb = st.bytes as f64 / 1e6;
    let rate = if s.elapsed_secs > 0.0 {
        mb / s.elapsed_secs
    } else {
        0.0
    };
    eprintln!(
        "idemwatch: read {} file{}: {} packets, {:.1} MB, {} flows, {} transactions ({} requests, {} responses), {} retries, {} alerts{}, {} gaps ({} bytes), {} flows evicted, {} fragments dropped, in {:.2} s ({:.1} MB/s)",
        s.files,
        if s.files == 1 { "" } else { "s" },
        st.packets,
        mb,
        st.flows_created,
        st.http_transactions,
        st.http_requests,
        st.http_responses,
        st.tracker_retries,
        st.alerts,
        alerts_by_kind(st),
        st.tcp_gaps,
        st.tcp_gap_bytes,
        st.flows_evicted,
        st.fragments_dropped,
        s.elapsed_secs,
        rate
    );
}

/// " (key_conflict 2, missing_key 1)" for the summary, or nothing.
fn alerts_by_kind(st: &Stats) -> String {
    let parts: Vec<String> = st
        .entries()
        .into_iter()
        .filter(|(name, n)| *n > 0 && name.starts_with("alerts_"))
        .map(|(name, n)| format!("{} {n}", name.trim_start_matches("alerts_")))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}
