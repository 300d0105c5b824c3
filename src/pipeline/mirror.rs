//! The mirror endpoint: a gateway (nginx `mirror`, Envoy `request_mirror_policies`) copies each
//! request here. Every connection is parsed by the same HTTP session code as captured traffic,
//! in requests-only mode, and each request is answered `204` at once; one thread judges the
//! requests of all connections with one tracker and writes the alerts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rustls::ServerConfig;

use super::{Judge, OrderKey, RunError};
use crate::config::Config;
use crate::http::{HttpEvent as HttpOut, Session, SessionSettings, Sink};
use crate::output::{Output, WriteOutcome};
use crate::reassembly::{Chunk, EndReason, Endpoint, FlowInfo, Side, StreamSink};
use crate::source::mirror::{HandshakeError, MirrorStream, is_timeout};
use crate::stats::Stats;
use crate::tracker::Tracker;
use crate::ts::Timestamp;

/// Everything `mirror` needs besides the pipeline's [`Config`].
pub struct MirrorSettings {
    pub listen: SocketAddr,
    /// None: plain TCP (`--insecure-plaintext`).
    pub tls: Option<Arc<ServerConfig>>,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// A request must be whole this long after its first byte (slowloris).
    pub request_timeout: Duration,
    /// Peers whose forwarding headers name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The 204 each mirrored request gets.
const ANSWER: &[u8] = b"HTTP/1.1 204 No Content\r\nServer: idemwatch\r\n\r\n";
/// How often blocked reads and the judge look at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// Requests waiting for the judge; connections wait when it is full.
const QUEUE: usize = 4096;

/// State shared by the acceptor, the connections and the judge.
struct Shared {
    stop: Arc<AtomicBool>,
    open: AtomicUsize,
    serial: AtomicU64,
    stats: Mutex<Stats>,
}

/// Binds the listener (errors say what to do).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Reads the certificates again on SIGHUP: the new TLS configuration, or why not.
pub type TlsReload<'a> = dyn FnMut() -> Result<Option<Arc<ServerConfig>>, String> + 'a;

/// A running mirror endpoint: the acceptor and connection threads, and the requests they hand
/// on, for one judge (the `mirror` command's own, or `live`'s when both run in one daemon).
pub struct MirrorServer {
    shared: Arc<Shared>,
    tls: Arc<RwLock<Option<Arc<ServerConfig>>>>,
    rx: Receiver<HttpOut>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl MirrorServer {
    /// Starts accepting on `listener`; stops when `stop` is set.
    pub fn start(
        config: &Config,
        settings: &MirrorSettings,
        listener: TcpListener,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<MirrorServer> {
        let mut session_settings = SessionSettings::with_hashing(
            &config.http,
            &config.limits,
            config.log_requests,
            config.tracker.watch_methods.clone(),
        );
        {
            let ss = Arc::make_mut(&mut session_settings);
            ss.requests_only = true;
            ss.trusted_proxies = settings.trusted_proxies.clone();
        }
        let shared = Arc::new(Shared {
            stop,
            open: AtomicUsize::new(0),
            serial: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
        });
        let (tx, rx) = crossbeam_channel::bounded::<HttpOut>(QUEUE);
        let tls = Arc::new(RwLock::new(settings.tls.clone()));
        let acceptor = {
            let shared = shared.clone();
            let tls = tls.clone();
            let s = MirrorSettingsCopy::from(settings);
            std::thread::Builder::new()
                .name("mirror-accept".into())
                .spawn(move || accept_loop(listener, tls, s, session_settings, tx, shared))?
        };
        Ok(MirrorServer {
            shared,
            tls,
            rx,
            acceptor: Some(acceptor),
        })
    }

    /// Mirrored requests received so far (each with its exchange), at most `max`.
    pub fn take(&self, max: usize) -> Vec<(OrderKey, HttpOut)> {
        self.rx.try_iter().take(max).map(|e| (order(), e)).collect()
    }

    /// Waits up to `timeout` for a mirrored request.
    fn wait(&self, timeout: Duration) -> Result<HttpOut, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// Uses `cfg` for the connections that follow.
    pub fn set_tls(&self, cfg: Option<Arc<ServerConfig>>) {
        if let Ok(mut t) = self.tls.write() {
            *t = cfg;
        }
    }

    /// The mirror's counters so far.
    pub fn stats(&self) -> Stats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Stops accepting, lets connections end, and returns what they handed on last.
    pub fn shutdown(&mut self) -> Vec<(OrderKey, HttpOut)> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        // Connection threads see the flag within a read timeout.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.shared.open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.take(usize::MAX)
    }
}

/// SIGHUP for the mirror: the certificates read again, for new connections.
pub fn reload_tls(server: &MirrorServer, reload: &mut TlsReload<'_>) {
    match reload() {
        Ok(cfg) => {
            server.set_tls(cfg);
            tracing::info!("SIGHUP: certificates reloaded");
        }
        Err(e) => tracing::error!("SIGHUP: certificates not reloaded, the old ones stay: {e}"),
    }
}

/// Serves until `stop` is set; returns the counters. Alerts go to `out` as they are judged.
/// When `hup` is set, `reload` gives the TLS configuration for the connections that follow.
pub fn run_mirror(
    config: &Config,
    settings: &MirrorSettings,
    listener: TcpListener,
    out: &mut Output,
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    reload: &mut TlsReload<'_>,
) -> Result<Stats, RunError> {
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
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        if let Some(m) = &metrics
            && last_metrics.elapsed() >= Duration::from_secs(1)
        {
            last_metrics = std::time::Instant::now();
            let mut st = server.stats();
            st.merge(&judge.counters());
            m.update(&st);
        }
        if hup.swap(false, Ordering::Relaxed) {
            reload_tls(&server, reload);
        }
        // Requests held for the shared store are written as soon as its answer comes: look
        // again within a millisecond while any is held.
        let held = judge.fleet.as_ref().is_some_and(|f| !f.is_empty());
        match server.wait(if held { Duration::from_millis(1) } else { POLL }) {
            Ok(ev) => {
                let mut batch = vec![(order(), ev)];
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

fn order() -> OrderKey {
    OrderKey {
        packet_no: 0,
        flow_serial: 0,
        sub: 0,
    }
}

/// The settings a connection thread needs (copied: threads outlive no borrow).
#[derive(Clone, Copy)]
struct MirrorSettingsCopy {
    local: SocketAddr,
    max_connections: usize,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    request_timeout: Duration,
}

impl From<&MirrorSettings> for MirrorSettingsCopy {
    fn from(s: &MirrorSettings) -> Self {
        MirrorSettingsCopy {
            local: s.listen,
            max_connections: s.max_connections.max(1),
            handshake_timeout: s.handshake_timeout,
            idle_timeout: s.idle_timeout,
            request_timeout: s.request_timeout,
        }
    }
}

fn count(shared: &Shared, f: impl FnOnce(&mut Stats)) {
    if let Ok(mut s) = shared.stats.lock() {
        f(&mut s);
    }
}

fn accept_loop(
    listener: TcpListener,
    tls: Arc<RwLock<Option<Arc<ServerConfig>>>>,
    s: MirrorSettingsCopy,
    session_settings: Arc<SessionSettings>,
    tx: Sender<HttpOut>,
    shared: Arc<Shared>,
) {
    while !shared.stop.load(Ordering::Relaxed) {
        let (sock, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if is_timeout(&e) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if shared.open.load(Ordering::Relaxed) >= s.max_connections {
            count(&shared, |st| st.mirror_refused += 1);
            drop(sock);
            continue;
        }
        shared.open.fetch_add(1, Ordering::Relaxed);
        count(&shared, |st| st.mirror_connections += 1);
        let (tls, tx, shared2, settings) = (
            tls.read().ok().and_then(|t| t.clone()),
            tx.clone(),
            shared.clone(),
            session_settings.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("mirror-conn".into())
            .spawn(move || {
                serve(sock, peer, tls, s, settings, &tx, &shared2);
                shared2.open.fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            shared.open.fetch_sub(1, Ordering::Relaxed);
            count(&shared, |st| st.mirror_refused += 1);
        }
    }
}

/// One connection: handshake, then requests parsed and answered until the peer closes, a
/// timeout passes, or the daemon stops.
fn serve(
    sock: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    s: MirrorSettingsCopy,
    settings: Arc<SessionSettings>,
    tx: &Sender<HttpOut>,
    shared: &Shared,
) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_nodelay(true);
    let mut stream = match MirrorStream::accept(sock, tls.as_ref(), s.handshake_timeout) {
        Ok(st) => st,
        Err(e) => {
            match e {
                HandshakeError::Timeout => count(shared, |st| st.mirror_timeouts += 1),
                HandshakeError::Tls(reason) => {
                    tracing::debug!(%peer, reason, "TLS handshake refused");
                    count(shared, |st| st.mirror_tls_errors += 1);
                }
                // The peer went away (a TCP health check): nothing to count.
                HandshakeError::Io(e) => tracing::debug!(%peer, "closed before TLS: {e}"),
            }
            return;
        }
    };
    let _ = stream.socket().set_read_timeout(Some(POLL));
    let serial = shared.serial.fetch_add(1, Ordering::Relaxed);
    let mut conn = MirrorConnection::new(settings, peer, s.local, serial);
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_read = Instant::now();
    // When the bytes of the request being received began (None: between requests).
    let mut request_started: Option<Instant> = None;
    let end = loop {
        if shared.stop.load(Ordering::Relaxed) {
            break EndReason::Fin;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => break EndReason::Fin,
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                let now = Instant::now();
                let slow = request_started.is_some_and(|t| now - t > s.request_timeout);
                if slow || now - last_read > s.idle_timeout {
                    count(shared, |st| st.mirror_timeouts += 1);
                    break EndReason::Rst;
                }
                continue;
            }
            Err(_) => break EndReason::Rst,
        };
        last_read = Instant::now();
        request_started.get_or_insert(last_read);
        let Some(bytes) = buf.get(..n) else {
            break EndReason::Rst;
        };
        let fed = conn.feed(bytes, Timestamp::now());
        for ev in fed.events {
            if tx.send(ev).is_err() {
                break;
            }
        }
        if fed.answers > 0 {
            // The request is whole: a new one starts with the next byte.
            request_started = None;
            count(shared, |st| st.mirror_requests += fed.answers as u64);
            let reply = ANSWER.repeat(fed.answers);
            if stream
                .write_all(&reply)
                .and_then(|()| stream.flush())
                .is_err()
            {
                break EndReason::Rst;
            }
        }
        if fed.bad {
            count(shared, |st| st.mirror_bad_requests += 1);
            break EndReason::Rst;
        }
    };
    let (events, st) = conn.end(end, Timestamp::now());
    for ev in events {
        let _ = tx.send(ev);
    }
    count(shared, |s| s.merge(&st));
}

/// What one read of a mirrored connection gave.
pub struct MirrorFed {
    /// Requests (and their events) finished by these bytes, in order.
    pub events: Vec<HttpOut>,
    /// Requests to answer `204`.
    pub answers: usize,
    /// Not HTTP, or a head over the limits: the connection must be closed.
    pub bad: bool,
}

/// The request path of one mirrored connection, without its socket: bytes in, requests out.
/// Apart from `serve` so that it can be fuzzed and tested on its own.
pub struct MirrorConnection {
    session: Session,
    em: Sink,
    offset: u64,
}

impl MirrorConnection {
    pub fn new(
        settings: Arc<SessionSettings>,
        peer: SocketAddr,
        local: SocketAddr,
        serial: u64,
    ) -> Self {
        let ep = |a: SocketAddr| Endpoint {
            ip: a.ip(),
            port: a.port(),
        };
        let info = FlowInfo::new(ep(peer), ep(local), Timestamp::now(), serial, 0);
        let mut session = Session::new(settings, &info);
        let mut em = Sink::default();
        session.on_client_side(CLIENT, &mut em);
        MirrorConnection {
            session,
            em,
            offset: 0,
        }
    }

    /// Feeds the next bytes the peer sent.
    pub fn feed(&mut self, bytes: &[u8], ts: Timestamp) -> MirrorFed {
        self.em.advance(ts);
        self.session.on_data(
            CLIENT,
            Chunk {
                offset: self.offset,
                bytes,
                ts,
                peer_ack: None,
                vlans: Default::default(),
            },
            &mut self.em,
        );
        self.offset += bytes.len() as u64;
        let events: Vec<HttpOut> = std::mem::take(&mut self.em.out)
            .into_iter()
            .map(|(_, ev)| ev)
            .collect();
        let answers = events
            .iter()
            .filter(|ev| matches!(ev, HttpOut::Request { .. }))
            .count();
        let st = &self.em.stats;
        let bad = st.http_parse_errors
            + st.http_resync_skipped_bytes
            + st.http_head_too_large
            + st.http_too_many_headers
            > 0;
        MirrorFed {
            events,
            answers,
            bad,
        }
    }

    /// Ends the connection: its last events and its counters.
    pub fn end(mut self, reason: EndReason, ts: Timestamp) -> (Vec<HttpOut>, Stats) {
        self.session.on_end(CLIENT, reason, ts, &mut self.em);
        self.session
            .on_end(CLIENT.other(), reason, ts, &mut self.em);
        let events = std::mem::take(&mut self.em.out)
            .into_iter()
            .map(|(_, ev)| ev)
            .collect();
        (events, std::mem::take(&mut self.em.stats))
    }
}

/// The mirror's peer is always the client.
const CLIENT: Side = Side(0);
