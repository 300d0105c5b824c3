//! Plain data: what one HTTP exchange looked like on the wire.
//!
//! Never holds a credential or a body: credentials only as a hash of their stable part, bodies
//! only as lengths and SHA-256 digests.

use std::sync::Arc;

use crate::net::{Endpoint, Vlans};
use crate::ts::Timestamp;

/// A body as measured on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    /// Bytes after removing chunked framing, before content decoding. When incomplete: the
    /// declared length (Content-Length), else the bytes seen plus the bytes lost.
    pub len: u64,
    /// SHA-256 of those bytes; `None` when incomplete.
    pub sha256: Option<[u8; 32]>,
    /// SHA-256 after content decoding (gzip, deflate); equals `sha256` without a coding.
    pub decoded_sha256: Option<[u8; 32]>,
    /// SHA-256 of the canonical form (requests only; see `canon.rs`).
    pub canon_sha256: Option<[u8; 32]>,
    pub complete: bool,
    /// Bytes lost in capture gaps (or never seen before the connection ended).
    pub missing: u64,
}

/// One idempotency key header line, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHeader {
    /// Lower-case header name.
    pub name: String,
    /// The value as sent (may be a quoted structured-field string).
    pub value: String,
}

impl KeyHeader {
    /// The key itself: the value unquoted when sent as an RFC 8941 string (`"k1"` is `k1`).
    pub fn key(&self) -> String {
        unquote_sf_string(&self.value)
    }
}

/// The unquoted form of an RFC 8941 sf-string, or the value itself when it is not one.
pub fn unquote_sf_string(v: &str) -> String {
    let t = v.trim();
    match t.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) if t.len() >= 2 => {
            let mut out = String::with_capacity(inner.len());
            let mut esc = false;
            for c in inner.chars() {
                if esc {
                    out.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => t.to_string(),
    }
}

/// The HTTP version a request was sent in, as EVE's `http.protocol` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http10,
    #[default]
    Http11,
    Http2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http10 => "HTTP/1.0",
            Protocol::Http11 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
        }
    }
}

/// A request as seen. The default is an empty request at time 0 (a base for fixtures).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Capture time of its first byte.
    pub ts: Timestamp,
    /// Capture time of its last byte.
    pub ts_end: Timestamp,
    pub method: String,
    /// The request-target as sent, credential-like query values replaced by `REDACTED`.
    pub path: String,
    /// SHA-256 of the request-target with query parameters sorted (raw values; identity only).
    pub target_identity: [u8; 32],
    /// The Host header as sent.
    pub host: Option<String>,
    /// Idempotency key header lines, in order.
    pub keys: Vec<KeyHeader>,
    /// SHA-256 of the stable part of the Authorization credential (never the credential).
    pub credential: Option<[u8; 32]>,
    pub stripe_account: Option<String>,
    pub stripe_context: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub body: Body,
    /// VLAN ids of the packet that carried its first byte.
    pub vlans: Vlans,
    /// Offsets of the request in the client's byte stream.
    pub stream_start: u64,
    /// What the client had acknowledged of the server's stream when it sent the request.
    pub peer_ack_at_start: Option<u64>,
    /// Offset in the server's stream where the last response paired with a known request
    /// ended, when this request started.
    pub answered_at_start: u64,
    /// Bytes that belong to no known message were lost in the client's stream just before this
    /// request: a request may have been lost there.
    pub lost_before: bool,
    pub protocol: Protocol,
}

impl Request {
    /// The first key, unquoted.
    pub fn idempotency_key(&self) -> Option<String> {
        self.keys.first().map(KeyHeader::key)
    }
}

/// A final response as seen.
#[derive(Debug, Clone)]
pub struct Response {
    pub ts: Timestamp,
    pub ts_end: Timestamp,
    pub status: u16,
    /// Interim (1xx) statuses seen before it.
    pub interim: Vec<u16>,
    pub body: Body,
    /// Top-level JSON `id` of the body, else the Location header.
    pub resource_id: Option<String>,
    /// `Idempotent-Replayed: true`.
    pub replayed: bool,
}

/// The connection an exchange travelled on.
#[derive(Debug, Clone)]
pub struct Conn {
    pub client: Endpoint,
    pub server: Endpoint,
    pub flow_id: u64,
    pub community_id: Arc<str>,
    pub file_index: usize,
    /// The TLS it was decrypted from, if it was.
    pub tls: Option<Arc<TlsInfo>>,
}

impl Conn {
    /// The connection as an exchange's events carry it: with the client a trusted proxy
    /// named, if any (its own port is not forwarded).
    pub fn with_client(self: &Arc<Conn>, forwarded: Option<std::net::IpAddr>) -> Arc<Conn> {
        match forwarded {
            Some(ip) => {
                let mut c = (**self).clone();
                c.client = Endpoint { ip, port: 0 };
                Arc::new(c)
            }
            None => self.clone(),
        }
    }
}

/// What the output says of a connection read through TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// "TLS 1.3", "TLS 1.2".
    pub version: &'static str,
    /// The server name the client asked for, if it sent one.
    pub sni: Option<Box<str>>,
}

/// Identifies an exchange: its connection and its rank on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId {
    pub flow_id: u64,
    pub flow_serial: u64,
    pub n: u64,
}

/// One exchange: a request and its final response; either may be missing (lost in a capture
/// gap, or never answered).
#[derive(Debug, Clone)]
pub struct Transaction {
    pub id: TxId,
    pub conn: Arc<Conn>,
    pub request: Option<Request>,
    pub response: Option<Response>,
    /// Capture time when the exchange ended: its response ended, or its connection did.
    pub ts_done: Timestamp,
    /// Whether the server's side of the connection was seen at all (bytes, FIN or RST from
    /// it). When not, a missing response says nothing about the server.
    pub server_seen: bool,
    /// There is no response, and it may have been lost in a capture gap in the server's
    /// stream: its absence says nothing about the server either.
    pub response_lost: bool,
    /// The server said it did not process the request: an HTTP/2 stream refused
    /// (`REFUSED_STREAM`) or above a GOAWAY's last stream id (RFC 9113 section 8.7). A
    /// retry of it is safe, and it never stored a result.
    pub not_processed: bool,
}

/// What the HTTP layer hands on, in capture order.
#[derive(Debug, Clone)]
pub enum HttpEvent {
    /// A request was fully received (its body ended, complete or not). Its exchange follows
    /// later as a [`Transaction`] with the same id.
    Request {
        id: TxId,
        conn: Arc<Conn>,
        request: Box<Request>,
    },
    Transaction(Box<Transaction>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_bare_keys_are_the_same_key() {
        assert_eq!(unquote_sf_string("\"k1\""), "k1");
        assert_eq!(unquote_sf_string("k1"), "k1");
        assert_eq!(unquote_sf_string(" \"a\\\"b\" "), "a\"b");
        assert_eq!(unquote_sf_string("\""), "\"");
    }
}
