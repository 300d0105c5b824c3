//! The endpoint's threads: an acceptor, and a thread per connection that reads the peer's
//! bytes, answers each whole request `204` at once (HTTP/1.1, or HTTP/2 when TLS chose `h2` or
//! the peer sent the connection preface) and hands its events to a bounded queue.
//!
//! Takes a bound listener and the TLS configuration (reloaded for new connections on SIGHUP);
//! gives [`HttpEvent`]s, taken by whoever judges them (`pipeline`), and counters. A slow or
//! silent peer holds no more than its own thread, for no longer than the timeouts.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rustls::ServerConfig;

use super::connection::MirrorConnection;
use super::reorder::GatewayOrder;
use super::tls::{HandshakeError, MirrorStream, is_timeout};
use super::{MirrorBounds, MirrorSettings};
use crate::config::Config;
use crate::http::{HttpEvent, SessionSettings};
use crate::reassembly::EndReason;
use crate::stats::Stats;
use crate::ts::Timestamp;

/// How often blocked reads look at the stop flag.
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

/// Reads the certificates again on SIGHUP: the new TLS configuration, or why not.
pub type TlsReload<'a> = dyn FnMut() -> Result<Option<Arc<ServerConfig>>, String> + 'a;

/// A running mirror endpoint: the acceptor and connection threads, and the requests they hand
/// on, for one judge (the `mirror` command's own, or `live`'s when both run in one daemon).
pub struct MirrorServer {
    shared: Arc<Shared>,
    tls: Arc<RwLock<Option<Arc<ServerConfig>>>>,
    rx: Receiver<HttpEvent>,
    /// The gateways' order of what arrived (`reorder.rs`), and what is ready in it.
    order: Mutex<(GatewayOrder, VecDeque<HttpEvent>)>,
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
            &config.limits.http,
            config.log_requests,
            config.tracker.watch_methods.clone(),
        );
        super::mirrored(&mut session_settings, &settings.trusted_proxies);
        let shared = Arc::new(Shared {
            stop,
            open: AtomicUsize::new(0),
            serial: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
        });
        let (tx, rx) = crossbeam_channel::bounded::<HttpEvent>(QUEUE);
        let tls = Arc::new(RwLock::new(settings.tls.clone()));
        let acceptor = {
            let shared = shared.clone();
            let tls = tls.clone();
            let s = MirrorSettingsCopy::from(settings);
            std::thread::Builder::new()
                .name("mirror-accept".into())
                .spawn(move || accept_loop(listener, tls, s, session_settings, tx, shared))?
        };
        // The gateways' times are believed from trusted proxies only: without any, requests
        // go on as they arrive.
        let hold = if settings.trusted_proxies.is_empty() {
            Duration::ZERO
        } else {
            settings.bounds.reorder_window
        };
        Ok(MirrorServer {
            shared,
            tls,
            rx,
            order: Mutex::new((GatewayOrder::new(hold, QUEUE), VecDeque::new())),
            acceptor: Some(acceptor),
        })
    }

    /// Moves what arrived into the gateways' order, and what is due from there to the ready
    /// queue; how long until the next is due.
    fn sort_arrivals(&self, order: &mut (GatewayOrder, VecDeque<HttpEvent>)) -> Option<Duration> {
        let now = Instant::now();
        for ev in self.rx.try_iter() {
            order.0.push(ev, now);
        }
        order.1.extend(order.0.ready(now));
        order.0.next_due(now)
    }

    /// Mirrored requests due so far (each with its exchange), in their gateways' order, at
    /// most `max`.
    pub fn take(&self, max: usize) -> Vec<HttpEvent> {
        let Ok(mut order) = self.order.lock() else {
            return Vec::new();
        };
        self.sort_arrivals(&mut order);
        let n = max.min(order.1.len());
        order.1.drain(..n).collect()
    }

    /// Waits up to `timeout` for a mirrored request to be due.
    pub fn wait(&self, timeout: Duration) -> Result<HttpEvent, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        loop {
            let due = {
                let Ok(mut order) = self.order.lock() else {
                    return Err(RecvTimeoutError::Disconnected);
                };
                let due = self.sort_arrivals(&mut order);
                if let Some(ev) = order.1.pop_front() {
                    return Ok(ev);
                }
                due
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvTimeoutError::Timeout);
            }
            let wait = due.map_or(deadline - now, |d| d.min(deadline - now));
            match self.rx.recv_timeout(wait) {
                Ok(ev) => {
                    if let Ok(mut order) = self.order.lock() {
                        order.0.push(ev, Instant::now());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Nothing more will come: what is held is due.
                    let Ok(mut order) = self.order.lock() else {
                        return Err(RecvTimeoutError::Disconnected);
                    };
                    let rest = order.0.drain();
                    order.1.extend(rest);
                    return order.1.pop_front().ok_or(RecvTimeoutError::Disconnected);
                }
            }
        }
    }

    /// Uses `cfg` for the connections that follow.
    pub fn set_tls(&self, cfg: Option<Arc<ServerConfig>>) {
        if let Ok(mut t) = self.tls.write() {
            *t = cfg;
        }
    }

    /// The mirror's counters so far.
    pub fn stats(&self) -> Stats {
        let mut st = self
            .shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        if let Ok(order) = self.order.lock() {
            order.0.add_counters(&mut st);
        }
        st
    }

    /// Stops accepting, lets connections end, and returns what they handed on last.
    pub fn shutdown(&mut self) -> Vec<HttpEvent> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        // Connection threads see the flag within a read timeout.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.shared.open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let Ok(mut order) = self.order.lock() else {
            return Vec::new();
        };
        for ev in self.rx.try_iter() {
            order.0.push(ev, Instant::now());
        }
        let mut out: Vec<HttpEvent> = order.1.drain(..).collect();
        out.extend(order.0.drain());
        out
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

/// The settings a connection thread needs (copied: threads outlive no borrow).
#[derive(Clone, Copy)]
struct MirrorSettingsCopy {
    local: SocketAddr,
    bounds: MirrorBounds,
}

impl From<&MirrorSettings> for MirrorSettingsCopy {
    fn from(s: &MirrorSettings) -> Self {
        let mut bounds = s.bounds;
        bounds.max_connections = bounds.max_connections.max(1);
        MirrorSettingsCopy {
            local: s.listen,
            bounds,
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
    tx: Sender<HttpEvent>,
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
        if shared.open.load(Ordering::Relaxed) >= s.bounds.max_connections {
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
    tx: &Sender<HttpEvent>,
    shared: &Shared,
) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_nodelay(true);
    let mut stream = match MirrorStream::accept(sock, tls.as_ref(), s.bounds.handshake_timeout) {
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
    if stream.alpn_h2() {
        conn.set_h2();
    }
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
                let slow = request_started.is_some_and(|t| now - t > s.bounds.request_timeout);
                if slow || now - last_read > s.bounds.idle_timeout {
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
        if fed.answers > 0 || fed.idle {
            // The request is whole: a new one starts with the next byte.
            request_started = None;
            count(shared, |st| st.mirror_requests += fed.answers as u64);
        }
        if !fed.reply.is_empty()
            && stream
                .write_all(&fed.reply)
                .and_then(|()| stream.flush())
                .is_err()
        {
            break EndReason::Rst;
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
