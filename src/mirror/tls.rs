//! The mirror endpoint's transport: a TCP listener with TLS (rustls, TLS 1.2 and 1.3, mutual
//! TLS with a client CA) or, only when asked, plain TCP. Connections are read with timeouts so
//! that a slow or silent peer cannot hold a thread.
//!
//! Takes PEM files and accepted sockets; gives streams of the peer's plaintext bytes. It leaves
//! out what the bytes say (`connection.rs`).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {reason}; give a PEM file")]
    Pem { path: String, reason: String },
    #[error("{path} holds no {what}; give a PEM file with one")]
    Empty { path: String, what: &'static str },
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let name = path.display().to_string();
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsSetupError::Pem {
            path: name.clone(),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsSetupError::Pem {
            path: name.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Empty {
            path: name,
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The server's TLS configuration from PEM files; with `client_ca`, clients must present a
/// certificate it signed.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Pem {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsSetupError::Config(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsSetupError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
    // Envoy mirrors over HTTP/2 when its cluster speaks it; nginx over HTTP/1.x. A client
    // that offers ALPN must find its protocol here, or rustls refuses the handshake.
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(Arc::new(cfg))
}

/// One accepted connection, TLS or plain.
pub enum MirrorStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

/// Why a connection was closed before it carried anything.
#[derive(Debug)]
pub enum HandshakeError {
    Timeout,
    Tls(String),
    Io(io::Error),
}

impl MirrorStream {
    /// Completes the TLS handshake within `timeout` (plain streams pass through).
    pub fn accept(
        sock: TcpStream,
        tls: Option<&Arc<ServerConfig>>,
        timeout: Duration,
    ) -> Result<MirrorStream, HandshakeError> {
        let Some(cfg) = tls else {
            return Ok(MirrorStream::Plain(sock));
        };
        let mut conn =
            ServerConnection::new(cfg.clone()).map_err(|e| HandshakeError::Tls(e.to_string()))?;
        let deadline = Instant::now() + timeout;
        let mut sock = sock;
        while conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HandshakeError::Timeout);
            }
            sock.set_read_timeout(Some(left))
                .map_err(HandshakeError::Io)?;
            match conn.complete_io(&mut sock) {
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(HandshakeError::Timeout),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(HandshakeError::Tls(e.to_string()));
                }
                Err(e) => return Err(HandshakeError::Io(e)),
            }
        }
        Ok(MirrorStream::Tls(Box::new(StreamOwned::new(conn, sock))))
    }

    /// TLS chose HTTP/2 by ALPN.
    pub fn alpn_h2(&self) -> bool {
        match self {
            MirrorStream::Plain(_) => false,
            MirrorStream::Tls(s) => s.conn.alpn_protocol() == Some(b"h2"),
        }
    }

    pub fn socket(&self) -> &TcpStream {
        match self {
            MirrorStream::Plain(s) => s,
            MirrorStream::Tls(s) => &s.sock,
        }
    }
}

impl Read for MirrorStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MirrorStream::Plain(s) => s.read(buf),
            MirrorStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for MirrorStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MirrorStream::Plain(s) => s.write(buf),
            MirrorStream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            MirrorStream::Plain(s) => s.flush(),
            MirrorStream::Tls(s) => s.flush(),
        }
    }
}

/// A read that waited past the socket's timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
