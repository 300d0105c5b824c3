//! The mirror endpoint: a gateway (nginx `mirror`, Envoy `request_mirror_policies`) copies each
//! request here, over TLS. Each connection's bytes go through the same HTTP session code as
//! captured traffic, in requests-only mode, and each request is answered `204` at once.
//!
//! Data flows `listener (tls.rs) -> connection (connection.rs) -> http`: the mirror joins the
//! pipeline at `http`, so both paths share one parser, and hands on [`HttpEvent`]s
//! (`server.rs`) for the tracker. Taking them from there to the tracker and the output is the
//! pipeline's, as for captures: `pipeline::run_mirror` for the `mirror` command, `run_live` for
//! `live --mirror-listen`. Forwarding headers are believed from trusted proxies only
//! (`forwarded.rs`). The mirror never sees the API's answer.
//!
//! [`HttpEvent`]: crate::http::HttpEvent

mod connection;
mod forwarded;
mod reorder;
mod server;
mod tls;

pub use connection::{MirrorConnection, MirrorFed};
pub use forwarded::TrustedProxies;
pub use reorder::GatewayOrder;
pub use server::{MirrorServer, TlsReload, reload_tls};
pub use tls::{TlsSetupError, server_config};

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;

use crate::http::SessionSettings;

/// Everything the endpoint needs besides the pipeline's [`Config`](crate::config::Config).
pub struct MirrorSettings {
    pub listen: SocketAddr,
    /// None: plain TCP (`--insecure-plaintext`).
    pub tls: Option<Arc<ServerConfig>>,
    pub bounds: MirrorBounds,
    /// Peers whose forwarding headers name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// How many connections the endpoint holds and how long it waits: the defaults of both
/// commands that run it (`mirror`'s options, and `live --mirror-listen`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MirrorBounds {
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// A TLS handshake must complete within this.
    pub handshake_timeout: Duration,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// A request must be whole this long after its first byte (slowloris).
    pub request_timeout: Duration,
    /// How long a request that carries its gateway's time (from a trusted proxy) is held, so
    /// that one the gateway received earlier but that arrived later is judged first.
    pub reorder_window: Duration,
}

impl MirrorBounds {
    pub const DEFAULT: MirrorBounds = MirrorBounds {
        max_connections: 1024,
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(30),
        reorder_window: Duration::from_millis(100),
    };
}

/// The endpoint as either command describes it (`mirror`, or `live --mirror-*`): its files,
/// not yet read.
#[derive(Debug, Clone)]
pub struct MirrorEndpoint {
    pub listen: SocketAddr,
    /// The certificate chain and private key (PEM); `None`: plain TCP.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// Mutual TLS: the CAs client certificates must be signed by.
    pub client_ca: Option<PathBuf>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub bounds: MirrorBounds,
}

impl MirrorEndpoint {
    /// The TLS configuration from [`Self::tls_files`] (`None`: plain TCP), at start and again
    /// on SIGHUP.
    pub fn tls(&self) -> Result<Option<Arc<ServerConfig>>, String> {
        let files = self
            .tls_files
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path()));
        tls_config(files, self.client_ca.as_deref())
    }

    /// The endpoint's settings, with `tls` read by [`Self::tls`].
    pub fn settings(&self, tls: Option<Arc<ServerConfig>>) -> MirrorSettings {
        MirrorSettings {
            listen: self.listen,
            tls,
            bounds: self.bounds,
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

/// Makes `settings` those of mirrored connections: requests only, forwarding headers believed
/// from `trusted_proxies`.
pub fn mirrored(settings: &mut Arc<SessionSettings>, trusted_proxies: &[ipnet::IpNet]) {
    let s = Arc::make_mut(settings);
    s.requests_only = true;
    s.forwarded = Some(Arc::new(TrustedProxies(trusted_proxies.to_vec())));
}

/// The TLS configuration from the certificate and key files (`None`: plain TCP), at start and
/// again on SIGHUP.
pub fn tls_config(
    files: Option<(&Path, &Path)>,
    client_ca: Option<&Path>,
) -> Result<Option<Arc<ServerConfig>>, String> {
    match files {
        Some((cert, key)) => server_config(cert, key, client_ca)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

/// Why the endpoint could not listen.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {listen}: {source}; check no other process uses that port and the address is local"
)]
pub struct BindError {
    listen: SocketAddr,
    source: std::io::Error,
}

/// Binds the listener.
pub fn bind(listen: SocketAddr) -> Result<TcpListener, BindError> {
    let bound = TcpListener::bind(listen).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    });
    bound.map_err(|source| BindError { listen, source })
}
