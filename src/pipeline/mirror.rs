//! The `mirror` command's pipeline: the endpoint's requests (`crate::mirror`) judged by one
//! tracker, alerts written as they come; SIGHUP reopens the output, reloads the policy and the
//! certificates, as `live` does. Tells systemd READY=1 once listening, WATCHDOG=1 while the
//! judge runs, STOPPING=1 on the way out.
//!
//! Takes the endpoint's options, the configuration and where to write; gives the counters, or
//! the error that stopped it. The endpoint itself (TLS, connections, parsing) is the mirror's.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;

use super::live::{Reload, notify, on_hup};
use super::{Judge, RunError, Signals};
use crate::config::Config;
use crate::mirror::MirrorEndpoint;
use crate::mirror::{BindError, MirrorServer, MirrorSettings, TlsReload, reload_tls};
use crate::output::{Output, WriteOutcome};
use crate::stats::Stats;
use crate::tracker::Tracker;

/// How often the judge looks at the stop and reload flags while no request comes.
const POLL: Duration = Duration::from_millis(100);

/// Why the `mirror` command stopped.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The certificate, key or client CA files.
    #[error("{0}")]
    Tls(String),
    #[error(
        "cannot open {} for writing: {source}; check the directory exists and is writable",
        path.display()
    )]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Run(#[from] RunError),
}

impl MirrorError {
    /// The exit status: 2 for files that do not give a TLS configuration, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            MirrorError::Tls(_) => 2,
            _ => 1,
        }
    }
}

/// The `mirror` command: reads the certificates, opens the output (only then, so that a run
/// that cannot start leaves an existing file alone), binds, and serves until SIGTERM or SIGINT.
/// SIGHUP reopens the output, takes the policy options of what `reload` reads (the
/// configuration file again) and reads the certificates again for new connections. Returns the
/// counters.
pub fn run_mirror(
    config: &Config,
    endpoint: &MirrorEndpoint,
    output: Option<&Path>,
    reload: &mut Reload<'_>,
) -> Result<Stats, MirrorError> {
    let tls = endpoint.tls().map_err(MirrorError::Tls)?;
    let mut out = match output {
        Some(p) => Output::file(p).map_err(|source| MirrorError::Output {
            path: p.to_path_buf(),
            source,
        })?,
        None => Output::stdout(),
    }
    .with_format(config.format);
    let listener = crate::mirror::bind(endpoint.listen)?;
    let signals = Signals::register().map_err(MirrorError::Signals)?;
    tracing::info!(listen = %endpoint.listen, tls = tls.is_some(), "mirror listening");
    let settings = endpoint.settings(tls);
    // SIGHUP: the same files read again (renewed certificates), for new connections.
    let mut tls_reload = || endpoint.tls();
    let served = serve(
        config,
        &settings,
        listener,
        &mut out,
        signals,
        reload,
        &mut tls_reload,
    );
    Ok(served?)
}

/// The end-of-run lines on stderr.
pub fn print_mirror_summary(st: &Stats) {
    eprintln!(
        "idemwatch: mirror: {} connections ({} refused, {} TLS failures, {} timeouts, {} not HTTP), {} requests, {} alerts",
        st.mirror_connections,
        st.mirror_refused,
        st.mirror_tls_errors,
        st.mirror_timeouts,
        st.mirror_bad_requests,
        st.mirror_requests,
        st.alerts
    );
    super::print_store_summary(st);
}

/// Serves until SIGTERM or SIGINT; returns the counters. Alerts go to `out` as they are
/// judged. On SIGHUP, `reload` gives the configuration whose policy is taken and `tls_reload`
/// the TLS configuration for the connections that follow.
fn serve(
    config: &Config,
    settings: &MirrorSettings,
    listener: TcpListener,
    out: &mut Output,
    signals: Signals,
    reload: &mut Reload<'_>,
    tls_reload: &mut TlsReload<'_>,
) -> Result<Stats, RunError> {
    let Signals { stop, hup } = signals;
    let mut server =
        MirrorServer::start(config, settings, listener, stop.clone()).map_err(RunError::Output)?;
    let mut judge = Judge::new(
        config,
        Tracker::with_key_headers(config.tracker.clone(), &config.http.key_headers),
        false,
    )?;
    let metrics = match config.metrics_listen {
        Some(addr) => Some(crate::output::metrics::Metrics::serve(addr).map_err(RunError::Setup)?),
        None => None,
    };
    let mut last_metrics = std::time::Instant::now();
    // Listening, and the judge about to take requests: what systemd waits for (Type=notify).
    notify(&[sd_notify::NotifyState::Ready]);
    let mut watchdog_usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec)
        .then(|| Duration::from_micros(watchdog_usec / 2));
    let mut last_ping = std::time::Instant::now();
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        if let Some(every) = watchdog
            && last_ping.elapsed() >= every
        {
            notify(&[sd_notify::NotifyState::Watchdog]);
            last_ping = std::time::Instant::now();
        }
        if let Some(m) = &metrics
            && last_metrics.elapsed() >= Duration::from_secs(1)
        {
            last_metrics = std::time::Instant::now();
            let mut st = server.stats();
            st.merge(&judge.counters());
            m.update(&st);
        }
        if hup.swap(false, Ordering::Relaxed) {
            on_hup(config, out, &mut judge.tracker, reload);
            reload_tls(&server, tls_reload);
        }
        // Requests held for the shared store are written as soon as its answer comes: look
        // again within a millisecond while any is held.
        let held = judge.fleet.as_ref().is_some_and(|f| !f.is_empty());
        match server.wait(if held { Duration::from_millis(1) } else { POLL }) {
            Ok(ev) => {
                let mut batch = vec![ev];
                batch.extend(server.take(255));
                match judge.write(config, &[], batch, out) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
                match out.flush() {
                    Ok(WriteOutcome::Closed) => break,
                    Ok(_) => {}
                    Err(e) => {
                        result = Err(RunError::Output(e));
                        break;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Fleet mode: requests whose answer from the shared store came since.
        if judge.fleet.as_ref().is_some_and(|f| !f.is_empty()) {
            match judge
                .pump(config, &[], out)
                .and_then(|c| Ok(c || out.flush()? == WriteOutcome::Closed))
            {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    let rest = server.shutdown();
    if !judge.write(config, &[], rest, out)? {
        judge.finish(config, &[], out)?;
    }
    out.flush()?;
    result?;
    let mut st = server.stats();
    st.merge(&judge.counters());
    Ok(st)
}
