//! The offline run: source -> decode -> reassembly -> http -> tracker -> output, in capture
//! order. The stages after reassembly are wired in one place, [`FlowWorker`]'s flow stages.
//!
//! One thread reads and decodes; flows are sharded by their key over flow workers (reassembly
//! and HTTP); every event gets an [`OrderKey`] (packet index, flow, rank, `order.rs`), so the
//! merge before the tracker puts them back in capture order: the output is the same byte for
//! byte whatever the number of workers (`parallel.rs`).

mod live;
mod mirror;
mod order;
mod parallel;
pub mod progress;
mod signals;

pub use live::{LiveRunError, LiveSettings, Reload, run_live};
pub use mirror::{MirrorError, print_mirror_summary, run_mirror};
pub use order::{Order, OrderKey};
pub use signals::Signals;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::decode::{Decoded, Decoder, Segment};
use crate::http::{HttpConn, HttpEvent as HttpOut, SessionSettings, Sink};
use crate::output::{AlertEvent, HttpEvent, Output, StatsEvent, WriteOutcome};
use crate::reassembly::{FlowInfo, FlowTable};
use crate::source::{CaptureSet, SourceError};
use crate::stats::Stats;
use crate::tls::sessions::SessionCache;
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
    #[error("{0}")]
    Setup(String),
}

impl RunError {
    /// The exit status: 2 for usage errors, 1 for input and output errors.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Source(e) if e.is_usage() => 2,
            RunError::Setup(_) => 2,
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

/// The stages after reassembly for one connection: the sink of its ordered bytes. This is the
/// one place they are wired: the `tls` stage (`src/tls/stage.rs`), which hands a TLS
/// connection's plaintext, and any other connection's bytes, to the HTTP session it wraps.
type FlowStages = crate::tls::stage::TlsStage;

/// A new connection's stages.
fn flow_stages(
    settings: &Arc<SessionSettings>,
    keys: &Arc<crate::tls::Keys>,
    sessions: &Option<Arc<SessionCache>>,
    info: &FlowInfo,
) -> FlowStages {
    crate::tls::stage::TlsStage::new(HttpConn::new(settings.clone(), info), keys.clone())
        .with_sessions(sessions.clone())
}

/// Reassembly and HTTP for the flows of one shard: everything between decoding and the
/// tracker. One per worker thread (or one in all when single-threaded).
pub struct FlowWorker {
    table: FlowTable<FlowStages>,
    settings: Arc<SessionSettings>,
    /// TLS secrets (empty when none were given).
    tls_keys: Arc<crate::tls::Keys>,
    /// The TLS 1.2 session cache the reading thread fills (`read` with a key log).
    sessions: Option<Arc<SessionCache>>,
    /// What the sessions finish, and the counters of decode, reassembly and HTTP.
    pub sink: Sink,
    order: Order,
    /// Finished events with their place in the output.
    out: Vec<(OrderKey, HttpOut)>,
}

impl FlowWorker {
    pub fn new(config: &Config, shards: usize) -> FlowWorker {
        let mut limits = config.limits.reassembly.clone();
        // The flow budget is shared by the shards.
        limits.max_flows = (limits.max_flows / shards.max(1)).max(1);
        FlowWorker {
            table: FlowTable::new(&limits),
            settings: SessionSettings::with_hashing(
                &config.http,
                &config.limits.http,
                config.log_requests,
                config.tracker.watch_methods.clone(),
            ),
            tls_keys: config.tls.keys.clone().unwrap_or_else(|| {
                Arc::new(crate::tls::Keys::fixed(crate::tls::keylog::KeyLog::new(1)))
            }),
            sessions: None,
            sink: Sink::default(),
            order: Order::default(),
            out: Vec::new(),
        }
    }

    /// Its TLS connections look resumed TLS 1.2 sessions up in `sessions`, which the reading
    /// thread fills ([`Front`]).
    pub fn with_sessions(mut self, sessions: Option<Arc<SessionCache>>) -> FlowWorker {
        self.sessions = sessions;
        self
    }

    /// The packet (or tick) being processed, and its capture time.
    pub fn set_packet(&mut self, packet_no: u64, now: Timestamp) {
        self.order.set_packet(packet_no);
        self.sink.advance(now);
    }

    /// Takes one segment, from the `packet_no`th frame of the input.
    pub fn segment(&mut self, seg: &Segment<'_>, packet_no: u64, file_index: usize) {
        self.set_packet(packet_no, seg.ts);
        let (settings, keys, sessions) = (&self.settings, &self.tls_keys, &self.sessions);
        let mut new_flow = |info: &FlowInfo| flow_stages(settings, keys, sessions, info);
        self.table
            .on_segment(seg, packet_no, file_index, &mut new_flow, &mut self.sink);
        self.order.stamp(&mut self.sink, &mut self.out);
    }

    /// Capture time passed: idle flows end, proven holes become gaps.
    pub fn tick(&mut self, packet_no: u64, now: Timestamp) {
        self.set_packet(packet_no, now);
        self.table.sweep(now, &mut self.sink);
        self.order.stamp(&mut self.sink, &mut self.out);
    }

    /// A followed TLS key log grew: connections holding for secrets try again at once.
    pub fn wake(&mut self, packet_no: u64, now: Timestamp) {
        self.set_packet(packet_no, now);
        self.table.wake(now, &mut self.sink);
        self.order.stamp(&mut self.sink, &mut self.out);
    }

    /// End of input: ends every flow.
    pub fn finish(&mut self, last_ts: Timestamp) {
        self.set_packet(u64::MAX, last_ts);
        self.table.finish_all(last_ts, &mut self.sink);
        self.order.stamp(&mut self.sink, &mut self.out);
    }

    /// Whether events are waiting to be drained.
    pub fn has_events(&self) -> bool {
        !self.out.is_empty()
    }

    /// Takes the events finished so far, in order, with their keys (for merging workers).
    pub fn drain(&mut self) -> Vec<(OrderKey, HttpOut)> {
        let mut out = std::mem::take(&mut self.out);
        out.sort_by_key(|(k, _)| *k);
        out
    }

    /// Takes the events finished so far, in order.
    pub fn drain_events(&mut self) -> impl Iterator<Item = HttpOut> + use<> {
        self.drain().into_iter().map(|(_, ev)| ev)
    }
}

/// Feeds a segment's TLS hellos to the session cache, before any worker takes the segment.
fn observe_hellos(cache: &SessionCache, seg: &Segment<'_>) {
    let end = |ip, port| crate::tls::sessions::Endpoint { ip, port };
    cache.observe(
        seg.ts,
        end(seg.src, seg.src_port),
        end(seg.dst, seg.dst_port),
        seg.payload,
    );
}

/// Decides when capture time has moved on enough for a sweep.
struct Clock {
    next_sweep: Option<Timestamp>,
}

impl Clock {
    /// True when a sweep is due at `ts`.
    fn due(&mut self, ts: Timestamp) -> bool {
        match self.next_sweep {
            None => {
                self.next_sweep = Some(ts.add_nanos(SWEEP_INTERVAL_NS));
                false
            }
            Some(t) if ts >= t => {
                self.next_sweep = Some(ts.add_nanos(SWEEP_INTERVAL_NS));
                true
            }
            Some(_) => false,
        }
    }
}

/// The number of flow workers for a configured thread count (0: the cores available).
pub fn worker_count(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
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
    // A file can wait for the shared store: nothing is lost while it answers.
    let mut judge = Judge::new(config, Tracker::new(config.tracker.clone()), true)?;
    // The bar hooks onto the reader and the judge, the same on one worker or many.
    let progress = config.progress.then(|| {
        let p = progress::ReadProgress::new(source.total_bytes(files));
        let seen = Arc::clone(&p);
        source.on_read(Box::new(move |bytes| seen.read(bytes)));
        judge.progress = Some(Arc::clone(&p));
        out.draw_around(Some(p.bar().clone()));
        p
    });
    let workers = worker_count(config.threads);
    // Filled by the reading thread, in capture order, so the same whatever `workers` is.
    let sessions = config
        .tls
        .keys
        .is_some()
        .then(|| Arc::new(SessionCache::default()));
    let run = if workers <= 1 {
        run_single(config, source, &names, judge, out, sessions.clone())?
    } else {
        parallel::run(
            config,
            source,
            &names,
            judge,
            out,
            workers,
            sessions.clone(),
        )?
    };
    if let Some(p) = progress {
        p.clear();
        out.draw_around(None);
    }
    tracing::info!(packets = run.packets, "end of input");
    let mut stats = run.stats;
    config.tls.add_counters(&mut stats);
    if let Some(c) = &sessions {
        c.add_counters(&mut stats);
    }
    let mut summary = Summary {
        stats,
        files: files.len(),
        elapsed_secs: started.elapsed().as_secs_f64(),
        last_ts: run.last_ts,
        output_closed: run.closed,
    };
    if config.stats_event && !run.closed {
        let ev = StatsEvent {
            timestamp: run.last_ts,
            event_type: "stats",
            stats: &summary.stats,
        };
        out.write(&ev)?;
    }
    out.flush()?;
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    match run.failure {
        // Exactly one line on stderr says what stopped the run (the caller prints it).
        Some(e) => Err(RunError::Source(e)),
        None => Ok(summary),
    }
}

/// What the reading loop ended with.
struct RunEnd {
    stats: Stats,
    packets: u64,
    last_ts: Timestamp,
    closed: bool,
    failure: Option<SourceError>,
}

/// The head of the pipeline, the same for one worker or many: frames read and decoded in
/// order, numbered, with the capture-time clock that decides sweeps.
struct Front {
    source: CaptureSet,
    decoder: Decoder,
    clock: Clock,
    packet_no: u64,
    last_ts: Timestamp,
    failure: Option<SourceError>,
    /// A sweep came with the last frame: its fragment sets age before the next frame.
    expire_at: Option<Timestamp>,
    /// The TLS 1.2 session cache, shown every segment here, before any worker gets it.
    sessions: Option<Arc<SessionCache>>,
}

/// What one frame gave.
enum Step<'a> {
    Frame {
        segment: Option<Segment<'a>>,
        packet_no: u64,
        file_index: usize,
        /// A sweep is due after this frame.
        sweep: Option<Timestamp>,
    },
    /// No more frames (or a damaged input: `failure` says).
    End,
}

impl Front {
    fn new(config: &Config, source: CaptureSet, sessions: Option<Arc<SessionCache>>) -> Front {
        Front {
            sessions,
            source,
            decoder: Decoder::new(&config.limits.decode),
            clock: Clock { next_sweep: None },
            packet_no: 0,
            last_ts: Timestamp::default(),
            failure: None,
            expire_at: None,
        }
    }

    /// Reads and decodes the next frame; decoding counters go to `stats`.
    fn step(&mut self, stats: &mut Stats) -> Step<'_> {
        // The previous frame's segment no longer borrows the decoder.
        if let Some(ts) = self.expire_at.take() {
            self.decoder.expire(ts, stats);
        }
        let frame = match self.source.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return Step::End,
            Err(e) => {
                self.failure = Some(e);
                return Step::End;
            }
        };
        self.last_ts = self.last_ts.max(frame.ts);
        let packet_no = self.packet_no;
        self.packet_no += 1;
        let sweep = self.clock.due(frame.ts).then_some(frame.ts);
        self.expire_at = sweep;
        let segment =
            match self
                .decoder
                .decode(frame.ts, frame.link, frame.data, frame.wire_len, stats)
            {
                Decoded::Segment(seg) => Some(seg),
                Decoded::Skip => None,
            };
        if let (Some(cache), Some(seg)) = (&self.sessions, &segment) {
            // Reading order is capture order: the cache is ahead of every worker.
            observe_hellos(cache, seg);
        }
        Step::Frame {
            segment,
            packet_no,
            file_index: frame.file_index,
            sweep,
        }
    }
}

/// One thread: decode, reassemble, parse, judge and write, frame by frame.
fn run_single(
    config: &Config,
    source: CaptureSet,
    names: &[String],
    mut judge: Judge,
    out: &mut Output,
    sessions: Option<Arc<SessionCache>>,
) -> Result<RunEnd, RunError> {
    let mut front = Front::new(config, source, sessions.clone());
    let mut worker = FlowWorker::new(config, 1).with_sessions(sessions);
    let mut closed = false;
    while let Step::Frame {
        segment,
        packet_no,
        file_index,
        sweep,
    } = front.step(&mut worker.sink.stats)
    {
        if let Some(seg) = segment {
            worker.segment(&seg, packet_no, file_index);
        }
        if let Some(ts) = sweep {
            worker.tick(packet_no, ts);
        }
        if worker.has_events() && judge.write(config, names, worker.drain_events(), out)? {
            closed = true;
            break;
        }
    }
    if !closed {
        worker.finish(front.last_ts);
        closed = judge.write(config, names, worker.drain_events(), out)?;
    }
    if !closed {
        closed = judge.finish(config, names, out)?;
    }
    let mut stats = worker.sink.stats.clone();
    stats.merge(&judge.counters());
    // A gauge, read once at the end: the store's size shows `--max-keys` holding.
    stats.tracker_keys_tracked = judge.tracker.tracked_keys() as u64;
    Ok(RunEnd {
        stats,
        packets: front.packet_no,
        last_ts: front.last_ts,
        closed,
        failure: front.failure,
    })
}

/// The policy stage: the tracker and its counters, and in fleet mode the stage that asks the
/// shared store before the tracker judges.
struct Judge {
    tracker: Tracker,
    stats: Stats,
    alerts: Vec<Alert>,
    fleet: Option<crate::fleet::stage::Fleet>,
    /// `read` on a terminal: counts the alerts for the progress bar.
    progress: Option<Arc<progress::ReadProgress>>,
}

impl Judge {
    /// `patient`: in fleet mode, wait for the store rather than judge without it when much is
    /// held (files); a daemon never waits.
    fn new(config: &Config, tracker: Tracker, patient: bool) -> Result<Judge, RunError> {
        let mut j = Judge {
            tracker,
            stats: Stats::default(),
            alerts: Vec::new(),
            fleet: None,
            progress: None,
        };
        if let Some(sc) = &config.store {
            j.fleet = Some(
                crate::fleet::stage::Fleet::start(sc, patient, &mut j.tracker, &mut j.stats)
                    .map_err(RunError::Setup)?,
            );
        }
        Ok(j)
    }

    /// The tracker's counters, and the shared store's in fleet mode.
    fn counters(&self) -> Stats {
        let mut st = self.stats.clone();
        if let Some(f) = &self.fleet {
            f.add_counters(&mut st);
        }
        st
    }

    /// Judges finished HTTP events, in order, and writes them and their alerts; true when the
    /// reader closed the output. In fleet mode events may be held for the store: they are
    /// written by a later call, [`Judge::pump`] or [`Judge::finish`].
    fn write(
        &mut self,
        config: &Config,
        names: &[String],
        events: impl IntoIterator<Item = HttpOut>,
        out: &mut Output,
    ) -> Result<bool, RunError> {
        if let Some(f) = &mut self.fleet {
            for ev in events {
                f.admit(ev, &self.tracker, names);
            }
            return self.release(config, names, out, false);
        }
        for ev in events {
            if self.judge_one(config, names, &ev, out)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes the held events whose answer came (or whose wait ended).
    fn pump(
        &mut self,
        config: &Config,
        names: &[String],
        out: &mut Output,
    ) -> Result<bool, RunError> {
        self.release(config, names, out, false)
    }

    /// Writes every held event, waiting for the store up to `--store-wait` each.
    fn finish(
        &mut self,
        config: &Config,
        names: &[String],
        out: &mut Output,
    ) -> Result<bool, RunError> {
        let closed = self.release(config, names, out, true)?;
        if let Some(f) = self.fleet.as_mut() {
            f.flush(&mut self.tracker, &mut self.stats);
        }
        Ok(closed || self.write_store_alerts(config, names, out)?)
    }

    /// Writes the alerts the fleet stage judged on the store's answers alone (later uses of
    /// this instance's first uses, seen by other instances).
    fn write_store_alerts(
        &mut self,
        config: &Config,
        names: &[String],
        out: &mut Output,
    ) -> Result<bool, RunError> {
        let Some(f) = self.fleet.as_mut() else {
            return Ok(false);
        };
        for a in f.take_alerts() {
            let ev = AlertEvent::new(&a, names, config.tracker.redact_keys);
            if out.write(&ev)? == WriteOutcome::Closed {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn release(
        &mut self,
        config: &Config,
        names: &[String],
        out: &mut Output,
        finishing: bool,
    ) -> Result<bool, RunError> {
        loop {
            let Some(f) = self.fleet.as_mut() else {
                return Ok(false);
            };
            let Some(ev) = f.next_ready(&mut self.tracker, &mut self.stats, finishing) else {
                return self.write_store_alerts(config, names, out);
            };
            let closed = self.judge_one(config, names, &ev, out)?;
            if let Some(f) = self.fleet.as_mut() {
                f.publish(&mut self.tracker, names);
            }
            if closed {
                return Ok(true);
            }
        }
    }

    fn judge_one(
        &mut self,
        config: &Config,
        names: &[String],
        ev: &HttpOut,
        out: &mut Output,
    ) -> Result<bool, RunError> {
        let redact = config.tracker.redact_keys;
        let now = match ev {
            HttpOut::Request { request, .. } => request.ts_end,
            HttpOut::Transaction(tx) => tx.ts_done,
        };
        self.alerts.clear();
        self.tracker
            .on_event(ev, now, &mut self.stats, &mut self.alerts);
        crate::tracker::count_alerts(&mut self.stats, &self.alerts);
        if let Some(p) = &self.progress {
            p.alerted(&self.alerts);
        }
        if let HttpOut::Transaction(tx) = ev
            && config.log_requests
        {
            let name = names.get(tx.conn.file_index).map(String::as_str);
            if out.write(&HttpEvent::new(tx, name, redact))? == WriteOutcome::Closed {
                return Ok(true);
            }
        }
        for a in &self.alerts {
            if out.write(&AlertEvent::new(a, names, redact))? == WriteOutcome::Closed {
                return Ok(true);
            }
        }
        Ok(false)
    }
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
    print_store_summary(st);
    if st.tls_sessions_undecrypted > 0 {
        eprintln!(
            "idemwatch: {} TLS connection{} not decrypted ({} without a secret in the key log, {} \
             with a suite not decrypted, {} with Encrypted Client Hello, {} broken), so not read \
             as HTTP; give the key log their client wrote (SSLKEYLOGFILE) with --tls-keylog FILE",
            st.tls_sessions_undecrypted,
            if st.tls_sessions_undecrypted == 1 {
                " was"
            } else {
                "s were"
            },
            st.tls_undecrypted_no_secret,
            st.tls_undecrypted_unsupported_suite,
            st.tls_undecrypted_ech,
            st.tls_undecrypted_broken
        );
    }
}

/// Fleet mode: one line on the shared store, when it was used.
pub fn print_store_summary(st: &Stats) {
    if st.store_round_trips == 0 && st.store_ops_failed == 0 && st.store_ops_skipped == 0 {
        return;
    }
    eprintln!(
        "idemwatch: shared store: {} operations in {} round trips, {} keys first used elsewhere, {} outages ({} ms without it), {} requests judged on this instance's keys alone, {} operations failed, {} skipped",
        st.store_ops,
        st.store_round_trips,
        st.store_shared_originals,
        st.store_outages,
        st.store_degraded_ms,
        st.store_judged_locally,
        st.store_ops_failed,
        st.store_ops_skipped
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
