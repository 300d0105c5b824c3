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
mod server;
mod tls;

pub use connection::{MirrorConnection, MirrorFed};
pub use forwarded::TrustedProxies;
pub use server::{MirrorServer, TlsReload, reload_tls};
pub use tls::{TlsSetupError, server_config};

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;

use crate::http::SessionSettings;

/// Everything the endpoint needs besides the pipeline's [`Config`](crate::config::Config).
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
