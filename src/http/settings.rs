//! The settings every HTTP session shares: the key headers and redactions, the limits on heads,
//! pending requests and kept bodies, which bodies to hash, and the mirror's mode (requests
//! only, and who names the client behind a proxy).
//!
//! Built once per run (or per mirror endpoint) and shared by `Arc`; it leaves out everything
//! that is judged later (windows, kinds: the tracker's).

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{HttpConfig, Limits};

/// Settings shared by all sessions.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub http: HttpConfig,
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
}

impl SessionSettings {
    pub fn new(http: &HttpConfig, limits: &Limits) -> Arc<SessionSettings> {
        Self::with_hashing(http, limits, true, Vec::new())
    }

    pub fn with_hashing(
        http: &HttpConfig,
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
