//! The HTTP stage's settings: what it extracts from messages and how much it keeps.
//!
//! Takes nothing; gives [`Settings`] (key headers, redacted query parameters) and [`Limits`]
//! (bounds on heads, headers, pending requests and kept bodies), each with its defaults. How
//! they are set (command line, configuration file) is the caller's business.
//!
//! [`SessionSettings`] is what every session of a run shares (built once, by `Arc`): those two,
//! which bodies to hash, and the mirror's mode (requests only, and who names the client behind
//! a proxy). It leaves out everything judged later (windows, kinds: the tracker's).

use std::net::IpAddr;

use crate::ts::Timestamp;
use std::sync::Arc;

/// Query parameters whose values never leave the process.
pub const DEFAULT_REDACTED_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "access_token",
    "token",
    "password",
    "secret",
    "client_secret",
    "signature",
    "sig",
];

/// Header names that carry an idempotency key.
pub const DEFAULT_KEY_HEADERS: &[&str] = &["idempotency-key", "x-idempotency-key"];

/// What the HTTP layer extracts from messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Lower-case header names carrying idempotency keys.
    pub key_headers: Vec<String>,
    /// Lower-case query parameter names whose values are replaced by `REDACTED`.
    pub redacted_params: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            key_headers: DEFAULT_KEY_HEADERS.iter().map(|s| s.to_string()).collect(),
            redacted_params: DEFAULT_REDACTED_PARAMS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Memory bounds of the HTTP layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest message head (start line and headers).
    pub max_head_bytes: usize,
    /// Most header lines in one message.
    pub max_headers: usize,
    /// Requests awaiting a response on one connection.
    pub max_pending_requests: usize,
    /// Content-decoded request body kept for the canonical hash; larger bodies fall back to the
    /// hash of the decoded bytes.
    pub max_canon_body_bytes: usize,
    /// Content-decoded bytes produced from one body at most (decompression bombs).
    pub max_decoded_body_bytes: u64,
    /// Response body kept to find a top-level JSON `id`.
    pub max_response_body_bytes: usize,
}

impl Limits {
    /// The defaults, as a constant so that the command line's help can show them.
    pub const DEFAULT: Limits = Limits {
        max_head_bytes: 64 * 1024,
        max_headers: 128,
        max_pending_requests: 256,
        max_canon_body_bytes: 64 * 1024,
        max_decoded_body_bytes: 16 << 20,
        max_response_body_bytes: 64 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Settings shared by all sessions.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub http: Settings,
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_pending: usize,
    pub max_canon_body: usize,
    pub max_decoded_body: u64,
    pub max_response_keep: usize,
    /// Hash every body (`--log-requests` prints them all).
    pub hash_all: bool,
    /// Otherwise hash the bodies of requests with these methods (upper case) or with a key
    /// header, and of their responses: only those can ever be compared.
    pub hash_methods: Vec<String>,
    /// Only requests flow (the mirror endpoint): an exchange ends with its request, its
    /// response unknowable.
    pub requests_only: bool,
    /// Who the client is when a proxy's forwarding headers name one (the mirror's
    /// `--trusted-proxies`); None: the peer is the client.
    pub forwarded: Option<Arc<dyn ForwardedClient>>,
}

/// Names the client behind a proxy. The session collects the forwarding headers as sent and
/// asks; whom to believe is the caller's policy (the mirror's trusted proxies).
pub trait ForwardedClient: std::fmt::Debug + Send + Sync {
    /// The client that `values` name, sent by `peer`, or None to keep the peer. `values` holds
    /// the `X-Forwarded-For` (rank 0), `X-Real-IP` (1) and `Forwarded` (2) values of a request
    /// in the order they came; a lower rank is the more trusted header.
    fn client(&self, peer: IpAddr, values: &[(u8, String)]) -> Option<IpAddr>;

    /// When `peer`, a gateway, received the request, from its `X-Request-Start` value, for a
    /// request that reached us at `arrival`; None to keep `arrival`. The gateway's time orders
    /// mirrored requests that raced each other on their way here.
    fn request_start(&self, peer: IpAddr, value: &str, arrival: Timestamp) -> Option<Timestamp>;
}

impl SessionSettings {
    /// Whether a request's body is measured (hashed, its response's too): every one when all
    /// are logged, a keyed one, one of a method whose keyless requests are judged.
    pub(crate) fn hashes(&self, method: &str, keyed: bool) -> bool {
        self.hash_all
            || keyed
            || self
                .hash_methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
    }

    /// How a request's body is read: `content_encoding` as sent, measured when `hashed`.
    pub(crate) fn request_body(
        &self,
        content_encoding: Option<&str>,
        hashed: bool,
    ) -> crate::http::body::BodyOptions {
        crate::http::body::BodyOptions {
            coding: crate::http::body::Coding::from_header(content_encoding),
            // Kept only for the canonical hash, which only a measured request carries.
            keep: if hashed { self.max_canon_body } else { 0 },
            decode_cap: self.max_decoded_body,
            hash: hashed,
        }
    }

    /// How a response's body is read: kept (up to its bound) only for `resource_id`, which
    /// only a measured exchange with a JSON (or untyped) body prints.
    pub(crate) fn response_body(
        &self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        hashed: bool,
    ) -> crate::http::body::BodyOptions {
        let json = content_type.is_none_or(|c| c.to_ascii_lowercase().contains("json"));
        crate::http::body::BodyOptions {
            coding: crate::http::body::Coding::from_header(content_encoding),
            keep: if json && hashed {
                self.max_response_keep
            } else {
                0
            },
            decode_cap: self.max_decoded_body,
            hash: hashed,
        }
    }

    /// The client a trusted proxy's forwarding headers name, for a request from `peer`, if
    /// the settings ask for one.
    pub(crate) fn forwarded_client(&self, peer: IpAddr, values: &[(u8, String)]) -> Option<IpAddr> {
        self.forwarded.as_ref()?.client(peer, values)
    }

    /// The gateway's clock against ours, from a trusted gateway's `X-Request-Start` (ns to
    /// add), for a request from `peer` that reached us at `arrival`; 0 when there is none to
    /// believe.
    pub(crate) fn gateway_shift(
        &self,
        peer: IpAddr,
        value: Option<&str>,
        arrival: Timestamp,
    ) -> i64 {
        let (Some(resolver), Some(v)) = (self.forwarded.as_ref(), value) else {
            return 0;
        };
        resolver
            .request_start(peer, v, arrival)
            .map_or(0, |g| g.0.saturating_sub(arrival.0))
    }

    pub fn new(http: &Settings, limits: &Limits) -> Arc<SessionSettings> {
        Self::with_hashing(http, limits, true, Vec::new())
    }

    pub fn with_hashing(
        http: &Settings,
        limits: &Limits,
        hash_all: bool,
        hash_methods: Vec<String>,
    ) -> Arc<SessionSettings> {
        Arc::new(SessionSettings {
            http: http.clone(),
            max_head_bytes: limits.max_head_bytes,
            max_headers: limits.max_headers.max(1),
            max_pending: limits.max_pending_requests.max(1),
            max_canon_body: limits.max_canon_body_bytes,
            max_decoded_body: limits.max_decoded_body_bytes,
            max_response_keep: limits.max_response_body_bytes,
            hash_all,
            hash_methods,
            requests_only: false,
            forwarded: None,
        })
    }
}
