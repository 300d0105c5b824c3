//! The daemon: live capture -> decode -> reassembly -> http -> tracker -> output, until
//! SIGTERM or SIGINT. Capture time comes from the packets; when none arrive the wall clock
//! moves it on, so idle flows end and their alerts are written on a quiet link too.
//!
//! With one worker (`--threads 1`) everything runs on the capture thread. With more, the flow
//! stages run on flow-sharded workers ([`Shards`], as `read` does) and their events come back
//! here in capture order, to be judged with the mirror's: the tracker, the output, stats,
//! SIGHUP and the saved state stay on this thread either way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::parallel::{Ordered, PROGRESS_EVERY, Shards};
use super::signals::Signals;
use super::{FlowWorker, Judge, RunError, SWEEP_INTERVAL_NS};
use crate::config::Config;
use crate::decode::{Decoded, Decoder, Segment};
use crate::http::HttpEvent as HttpOut;
use crate::output::{Output, StatsEvent, WriteOutcome};
use crate::source::live::READ_TIMEOUT_MS;
use crate::source::{KernelStats, LiveCapture, LiveError, LiveOptions, LiveRead};
use crate::stats::Stats;
use crate::tracker::Tracker;
use crate::tracker::persist::{self, LoadOutcome};
use crate::ts::Timestamp;

/// Everything `live` needs besides the pipeline's [`Config`].
pub struct LiveSettings {
    pub capture: LiveOptions,
    /// Zero: no stats lines.
    pub stats_interval: Duration,
    pub drop_warn_ratio: f64,
    pub state_dir: Option<PathBuf>,
    pub state_interval: Duration,
    /// Run as this user once the handle is open.
    pub user: Option<String>,
    /// A mirror endpoint in the same daemon, feeding the same tracker.
    pub mirror: Option<(crate::mirror::MirrorSettings, std::net::TcpListener)>,
    /// Key logs followed into `config.tls.keys` (which must then be a followed store).
    pub tls_keylog: Vec<PathBuf>,
}

/// Re-reads the configuration on SIGHUP: the new policy, or why it was refused.
pub type Reload<'a> = dyn FnMut() -> Result<Config, String> + 'a;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LiveRunError {
    #[error(transparent)]
    Capture(#[from] LiveError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("cannot run as user {user}: {reason}")]
    User { user: String, reason: String },
}

impl LiveRunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            LiveRunError::Capture(e) if e.is_usage() => 2,
            LiveRunError::User { .. } => 2,
            LiveRunError::Run(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// Drops root for `user` (its uid, gid and only that group).
fn become_user(user: &str) -> Result<(), LiveRunError> {
    use nix::unistd::{User, setgid, setgroups, setuid};
    let err = |reason: String| LiveRunError::User {
        user: user.to_string(),
        reason,
    };
    let u = User::from_name(user)
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("no such user; create it or name another with --user".into()))?;
    setgroups(&[u.gid]).map_err(|e| err(format!("setgroups: {e}; start as root")))?;
    setgid(u.gid).map_err(|e| err(format!("setgid: {e}; start as root")))?;
    setuid(u.uid).map_err(|e| err(format!("setuid: {e}; start as root")))?;
    tracing::info!(user, uid = u.uid.as_raw(), "running as user");
    Ok(())
}

pub(super) fn notify(state: &[sd_notify::NotifyState]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Loads tracked keys saved by an earlier run; never fatal.
fn load_state(tracker: &mut Tracker, dir: &Path, stats: &mut Stats) {
    match persist::load(tracker, dir) {
        Ok(LoadOutcome::Loaded {
            keys,
            endpoints,
            dropped,
        }) => {
            stats.state_keys_loaded += keys as u64;
            tracing::info!(keys, endpoints, dropped, dir = %dir.display(), "tracked keys loaded");
        }
        Ok(LoadOutcome::Missing) => {
            tracing::info!(dir = %dir.display(), "no saved state; starting empty")
        }
        Ok(LoadOutcome::SetAside { reason, moved_to }) => tracing::warn!(
            moved_to = %moved_to.display(),
            "saved state not used ({reason}); set aside, starting empty"
        ),
        Err(e) => tracing::error!("cannot load saved state: {e}; starting empty"),
    }
}

fn save_state(tracker: &Tracker, dir: &Path, stats: &mut Stats) {
    match persist::save(tracker, dir) {
        Ok(r) => {
            stats.state_saves += 1;
            tracing::debug!(keys = r.keys, bytes = r.bytes, path = %r.path.display(), "state saved");
        }
        Err(e) => {
            stats.state_save_errors += 1;
            tracing::error!("cannot save state: {e}");
        }
    }
}

/// Runs until SIGTERM/SIGINT (Ok) or a capture error.
pub fn run_live(
    config: &Config,
    settings: LiveSettings,
    out: &mut Output,
    reload: &mut Reload<'_>,
    tls_reload: &mut crate::mirror::TlsReload<'_>,
) -> Result<Stats, LiveRunError> {
    let signals = Signals::register().map_err(|e| {
        LiveRunError::Run(RunError::Output(std::io::Error::other(format!(
            "cannot install signal handlers: {e}"
        ))))
    })?;
    let mut cap = LiveCapture::open(&settings.capture)?;
    if let Some(u) = &settings.user {
        become_user(u)?;
    }
    let names: Vec<String> = Vec::new();
    // Read as the user the capture runs as: the key log needs no more privilege than that.
    let _follower = match &config.tls.keys {
        Some(keys) if !settings.tls_keylog.is_empty() => Some(
            crate::tls::follow::Follower::start(&settings.tls_keylog, keys.clone()).map_err(
                |e| {
                    LiveRunError::Run(RunError::Setup(format!(
                        "cannot start the key-log thread: {e}"
                    )))
                },
            )?,
        ),
        _ => None,
    };
    let mut keys_seen = config.tls.keys.as_ref().map_or(0, |k| k.generation());
    let mirror_stop = Arc::new(AtomicBool::new(false));
    let mut mirror = match settings.mirror {
        Some((ref ms, ref listener)) => {
            let l = listener
                .try_clone()
                .map_err(|e| LiveRunError::Run(RunError::Output(e)))?;
            tracing::info!(listen = %ms.listen, tls = ms.tls.is_some(), "mirror listening");
            Some(
                crate::mirror::MirrorServer::start(config, ms, l, mirror_stop.clone())
                    .map_err(|e| LiveRunError::Run(RunError::Output(e)))?,
            )
        }
        None => None,
    };
    let metrics = match config.metrics_listen {
        Some(addr) => Some(
            crate::output::metrics::Metrics::serve(addr)
                .map_err(|e| LiveRunError::Run(RunError::Setup(e)))?,
        ),
        None => None,
    };
    let mut last_metrics = Instant::now();
    let mut decoder = Decoder::new(&config.limits.decode);
    // TLS 1.2 resumptions whose own key-log line is missing: fed below before the worker
    // sees each segment, as `read` does.
    let sessions = config
        .tls
        .keys
        .is_some()
        .then(|| Arc::new(crate::tls::sessions::SessionCache::default()));
    let mut judge = Judge::new(
        config,
        Tracker::with_key_headers(config.tracker.clone(), &config.http.key_headers),
        false,
    )?;
    if let Some(dir) = &settings.state_dir {
        load_state(&mut judge.tracker, dir, &mut judge.stats);
    }
    tracing::info!(
        iface = cap.interface(),
        filter = settings.capture.filter.as_deref().unwrap_or(""),
        "capturing"
    );
    notify(&[sd_notify::NotifyState::Ready]);
    let mut watchdog_usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec)
        .then(|| Duration::from_micros(watchdog_usec / 2));
    let workers = super::worker_count(config.threads);
    tracing::info!(workers, "flow workers");

    // Scoped: the workers borrow the configuration, and are joined before it is dropped.
    std::thread::scope(|scope| {
        let mut flows = Flows::start(scope, config, workers, sessions.clone());
        let mut packet_no = 0u64;
        let mut last_ts = Timestamp::default();
        let mut next_sweep: Option<Timestamp> = None;
        let mut last_ping = Instant::now();
        let mut last_stats = Instant::now();
        let mut last_save = Instant::now();
        let mut last_kernel = KernelStats::default();
        let mut closed = false;
        let mut dirty = false;

        while !signals.stop.load(Ordering::Relaxed) && !closed {
            // Requests held for the shared store are written as soon as its answer comes: look
            // again within a millisecond while any is held.
            let held = judge.fleet.as_ref().is_some_and(|f| !f.is_empty());
            // Likewise while the workers may be handing back what the link's last packets
            // finished.
            let soon = held || flows.returning();
            let now = match cap.read_within(if soon { 1 } else { READ_TIMEOUT_MS })? {
                LiveRead::Frame(frame) => {
                    last_ts = last_ts.max(frame.ts);
                    flows.set_packet(packet_no, frame.ts);
                    if let Decoded::Segment(seg) = decoder.decode(
                        frame.ts,
                        frame.link,
                        frame.data,
                        frame.wire_len,
                        flows.decode_stats(),
                    ) {
                        if let Some(cache) = &sessions {
                            super::observe_hellos(cache, &seg);
                        }
                        flows.segment(&seg, packet_no);
                    }
                    packet_no += 1;
                    frame.ts
                }
                // A quiet link: the wall clock moves capture time on.
                LiveRead::Idle => {
                    last_ts = last_ts.max(Timestamp::now());
                    flows.quiet();
                    last_ts
                }
            };
            if next_sweep.is_none_or(|t| now >= t) {
                next_sweep = Some(now.add_nanos(SWEEP_INTERVAL_NS));
                flows.tick(packet_no, now);
                decoder.expire(now, flows.decode_stats());
            }
            flows.progress();
            // A followed key log grew: connections that wait for their secrets try again now.
            if let Some(k) = &config.tls.keys
                && k.generation() != keys_seen
            {
                keys_seen = k.generation();
                flows.wake(packet_no, now);
            }
            if let Some(events) = flows.events() {
                closed = judge.write(config, &names, events, out)?;
                dirty = true;
            }
            if let Some(m) = &mirror {
                let evs = m.take(256);
                if !evs.is_empty() && !closed {
                    closed = judge.write(config, &names, evs, out)?;
                    dirty = true;
                }
            }
            // Fleet mode: requests whose answer from the shared store came since.
            if judge.fleet.as_ref().is_some_and(|f| !f.is_empty()) && !closed {
                closed = judge.pump(config, &names, out)?;
                dirty = true;
            }
            // Alerts reach the file (and whoever tails it) at once, not when a buffer fills.
            if dirty {
                closed |= out.flush().map_err(RunError::Output)? == WriteOutcome::Closed;
                dirty = false;
            }
            if let Some(every) = watchdog
                && last_ping.elapsed() >= every
            {
                notify(&[sd_notify::NotifyState::Watchdog]);
                last_ping = Instant::now();
            }
            if let Some(m) = &metrics
                && last_metrics.elapsed() >= METRICS_EVERY
            {
                last_metrics = Instant::now();
                let mut st = snapshot(config, sessions.as_deref(), &mut cap, flows.stats(), &judge);
                if let Some(mx) = &mirror {
                    st.merge(&mx.stats());
                }
                m.update(&st);
            }
            if !settings.stats_interval.is_zero() && last_stats.elapsed() >= settings.stats_interval
            {
                last_stats = Instant::now();
                let mut st = snapshot(config, sessions.as_deref(), &mut cap, flows.stats(), &judge);
                if let Some(m) = &mirror {
                    st.merge(&m.stats());
                }
                warn_drops(&st, &mut last_kernel, settings.drop_warn_ratio);
                let ev = StatsEvent {
                    timestamp: last_ts,
                    event_type: "stats",
                    stats: &st,
                };
                closed |= out.write(&ev).map_err(RunError::Output)? == WriteOutcome::Closed;
                dirty = true;
            }
            if let Some(dir) = &settings.state_dir
                && last_save.elapsed() >= settings.state_interval
            {
                last_save = Instant::now();
                save_state(&judge.tracker, dir, &mut judge.stats);
            }
            if signals.hup.swap(false, Ordering::Relaxed) {
                on_hup(config, out, &mut judge.tracker, reload);
                if let Some(m) = &mirror {
                    crate::mirror::reload_tls(m, tls_reload);
                }
            }
        }
        notify(&[sd_notify::NotifyState::Stopping]);
        tracing::info!(packets = packet_no, "stopping");
        // What is complete is written; a last sweep hands on exchanges held for pairing.
        let now = last_ts.max(Timestamp::now());
        flows.tick(packet_no, now);
        let (events, flow_stats) = flows.finish()?;
        if !closed && !events.is_empty() {
            closed = judge.write(config, &names, events, out)?;
        }
        let mut mirror_stats = Stats::default();
        if let Some(m) = &mut mirror {
            let rest = m.shutdown();
            if !closed {
                closed = judge.write(config, &names, rest, out)?;
            }
            mirror_stats = m.stats();
        }
        if !closed {
            closed = judge.finish(config, &names, out)?;
        }
        if let Some(dir) = &settings.state_dir {
            save_state(&judge.tracker, dir, &mut judge.stats);
        }
        let mut st = snapshot(config, sessions.as_deref(), &mut cap, flow_stats, &judge);
        st.merge(&mirror_stats);
        if !closed && !settings.stats_interval.is_zero() {
            let ev = StatsEvent {
                timestamp: now,
                event_type: "stats",
                stats: &st,
            };
            out.write(&ev).map_err(RunError::Output)?;
        }
        out.flush().map_err(RunError::Output)?;
        Ok(st)
    })
}

/// How often `/metrics` gets a fresh snapshot.
const METRICS_EVERY: Duration = Duration::from_secs(1);

/// Every counter now: the flow workers' (`flows`), the tracker's and libpcap's.
fn snapshot(
    config: &Config,
    sessions: Option<&crate::tls::sessions::SessionCache>,
    cap: &mut LiveCapture,
    flows: Stats,
    judge: &Judge,
) -> Stats {
    let mut st = flows;
    st.merge(&judge.counters());
    config.tls.add_counters(&mut st);
    if let Some(c) = sessions {
        c.add_counters(&mut st);
    }
    let k = cap.kernel_stats();
    st.capture_kernel_packets = k.received;
    st.capture_kernel_drops = k.dropped;
    st.capture_kernel_ifdrops = k.if_dropped;
    st.tracker_keys_tracked = judge.tracker.tracked_keys() as u64;
    st
}

/// A warning when the kernel or the interface dropped more than `ratio` of the packets since
/// the last stats line.
fn warn_drops(st: &Stats, last: &mut KernelStats, ratio: f64) {
    let received = st.capture_kernel_packets.saturating_sub(last.received);
    let dropped = st.capture_kernel_drops.saturating_sub(last.dropped)
        + st.capture_kernel_ifdrops.saturating_sub(last.if_dropped);
    let seen = received.max(1) as f64;
    if dropped > 0 && dropped as f64 / seen > ratio {
        tracing::warn!(
            received,
            dropped,
            "packets dropped before idemwatch saw them: {:.2} % of this interval; raise \
             --buffer-size, narrow the capture filter, or give idemwatch a less busy core",
            100.0 * dropped as f64 / seen
        );
    }
    *last = KernelStats {
        received: st.capture_kernel_packets,
        dropped: st.capture_kernel_drops,
        if_dropped: st.capture_kernel_ifdrops,
    };
}

/// SIGHUP: reopen the output (logrotate) and take the configuration file's policy options;
/// options that need a restart are named in a warning and keep their running values.
pub(super) fn on_hup(
    running: &Config,
    out: &mut Output,
    tracker: &mut Tracker,
    reload: &mut Reload<'_>,
) {
    match out.reopen() {
        Ok(()) => tracing::info!("SIGHUP: output reopened"),
        Err(e) => {
            tracing::error!("SIGHUP: cannot reopen the output: {e}; still writing the old one")
        }
    }
    match reload() {
        Ok(new) => {
            let mut restart = tracker.reconfigure(new.tracker.clone());
            if new.http != running.http {
                restart.push("key-header/redact-param");
            }
            if new.limits != running.limits {
                restart.push("limits");
            }
            if new.log_requests != running.log_requests {
                restart.push("log-requests");
            }
            if new.threads != running.threads {
                restart.push("threads");
            }
            if restart.is_empty() {
                tracing::info!("SIGHUP: policy options reloaded");
            } else {
                tracing::warn!(
                    "SIGHUP: policy options reloaded; changes to {} take effect after a restart",
                    restart.join(", ")
                );
            }
        }
        Err(e) => tracing::error!("SIGHUP: configuration not reloaded: {e}"),
    }
}

/// How long events may wait in a worker's batch or behind an idle worker's watermark while
/// packets keep coming (when they stop, the workers are told at once).
const PROGRESS_WAIT: Duration = Duration::from_millis(20);
/// How long after telling the workers to move on the capture thread looks for their events
/// every millisecond rather than every read timeout.
const RETURN_WAIT: Duration = Duration::from_millis(50);

/// The flow stages of the daemon: one worker on the capture thread (`--threads 1`, as before
/// there were several), or flow-sharded workers whose events the merger hands back here.
enum Flows<'scope> {
    Inline(FlowWorker),
    Sharded {
        shards: Shards<'scope, Returned>,
        events: Receiver<Vec<HttpOut>>,
        /// Decoding counters (this thread's).
        front: Stats,
        last_progress: Instant,
    },
}

/// The merger's end in `live`: events, in capture order, back to the capture thread.
struct Returned(Sender<Vec<HttpOut>>);

impl Ordered for Returned {
    fn take(&mut self, events: Vec<HttpOut>) -> Result<bool, RunError> {
        // Unbounded: the capture thread both feeds the workers and drains this, so a bound
        // here could block it on itself. What waits is no more than the packets it sent.
        Ok(self.0.send(events).is_err())
    }
}

impl<'scope> Flows<'scope> {
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        config: &'scope Config,
        workers: usize,
        sessions: Option<Arc<crate::tls::sessions::SessionCache>>,
    ) -> Flows<'scope> {
        if workers <= 1 {
            return Flows::Inline(FlowWorker::new(config, 1).with_sessions(sessions));
        }
        let (tx, rx) = unbounded();
        Flows::Sharded {
            shards: Shards::start(scope, config, workers, sessions, Returned(tx)),
            events: rx,
            front: Stats::default(),
            last_progress: Instant::now(),
        }
    }

    /// Where the decoder counts.
    fn decode_stats(&mut self) -> &mut Stats {
        match self {
            Flows::Inline(w) => &mut w.sink.stats,
            Flows::Sharded { front, .. } => front,
        }
    }

    /// The frame being decoded (one worker: its clock).
    fn set_packet(&mut self, packet_no: u64, ts: Timestamp) {
        if let Flows::Inline(w) = self {
            w.set_packet(packet_no, ts);
        }
    }

    fn segment(&mut self, seg: &Segment<'_>, packet_no: u64) {
        match self {
            Flows::Inline(w) => w.segment(seg, packet_no, 0),
            Flows::Sharded { shards, .. } => {
                shards.segment(seg, packet_no, 0);
                if (packet_no + 1).is_multiple_of(PROGRESS_EVERY) {
                    shards.progress(packet_no);
                }
            }
        }
    }

    /// A sweep at `now`, `packets` frames read. Workers sweep after the last frame read, as
    /// `read`'s do, so the merger can pass everything up to it.
    fn tick(&mut self, packets: u64, now: Timestamp) {
        match self {
            Flows::Inline(w) => w.tick(packets, now),
            Flows::Sharded { shards, .. } => {
                // Before the first frame there are no flows to sweep.
                if let Some(last) = packets.checked_sub(1) {
                    shards.tick(last, now);
                }
            }
        }
    }

    fn wake(&mut self, packets: u64, now: Timestamp) {
        match self {
            Flows::Inline(w) => w.wake(packets, now),
            Flows::Sharded { shards, .. } => {
                if let Some(last) = packets.checked_sub(1) {
                    shards.wake(last, now);
                }
            }
        }
    }

    /// The link went quiet: what the workers hold is theirs to finish now, and idle workers
    /// must not hold the others' events back.
    fn quiet(&mut self) {
        if let Flows::Sharded {
            shards,
            last_progress,
            ..
        } = self
            && let Some(p) = shards.untold()
        {
            shards.progress(p);
            *last_progress = Instant::now();
        }
    }

    /// Workers were told to move on a moment ago: their events may be on their way back.
    fn returning(&self) -> bool {
        matches!(self, Flows::Sharded { last_progress, .. }
            if last_progress.elapsed() < RETURN_WAIT)
    }

    /// On a busy link, batches and watermarks move on at least every [`PROGRESS_WAIT`].
    fn progress(&mut self) {
        let due = matches!(self, Flows::Sharded { last_progress, .. }
            if last_progress.elapsed() >= PROGRESS_WAIT);
        if due {
            self.quiet();
        }
    }

    /// The events finished so far, in capture order, if any.
    fn events(&mut self) -> Option<Vec<HttpOut>> {
        match self {
            Flows::Inline(w) => w.has_events().then(|| w.drain_events().collect()),
            Flows::Sharded { events, .. } => {
                let mut all: Vec<HttpOut> = Vec::new();
                for mut evs in events.try_iter() {
                    all.append(&mut evs);
                }
                (!all.is_empty()).then_some(all)
            }
        }
    }

    /// The counters of decoding, reassembly and HTTP (the workers' as of their last sweep or
    /// progress).
    fn stats(&self) -> Stats {
        match self {
            Flows::Inline(w) => w.sink.stats.clone(),
            Flows::Sharded { shards, front, .. } => {
                let mut st = front.clone();
                st.merge(&shards.worker_stats());
                st
            }
        }
    }

    /// Stops the workers (flows are left as the last sweep left them, as with one worker) and
    /// gives the events not yet taken and the final counters.
    fn finish(self) -> Result<(Vec<HttpOut>, Stats), RunError> {
        match self {
            Flows::Inline(mut w) => {
                let evs = w.drain_events().collect();
                Ok((evs, w.sink.stats))
            }
            Flows::Sharded {
                shards,
                events,
                mut front,
                ..
            } => {
                let merged = shards.finish(None)?;
                front.merge(&merged.stats);
                let evs = events.try_iter().flatten().collect();
                Ok((evs, front))
            }
        }
    }
}
