//! Configuration of a run: every knob with its default, chosen once here.
//!
//! The CLI (`cli.rs`) fills a `Config`; the stages read their part of it. Limits bound memory:
//! each stage counts what it drops when a limit is hit (see `stats.rs`).

use std::time::Duration;

/// Memory and time bounds of the mechanism stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Flows tracked at once; the least recently active are evicted beyond it.
    pub max_flows: usize,
    /// Out-of-order bytes buffered per direction of a flow before a hole is declared; each held
    /// segment also counts its bookkeeping (about 130 bytes), so tiny segments fill it sooner.
    pub max_ooo_bytes_per_flow: usize,
    /// A flow without packets for this long (capture time) is closed.
    pub flow_idle_timeout: Duration,
    /// Incomplete IPv4 fragment sets kept at once.
    pub max_fragment_sets: usize,
    /// Largest IPv4 packet rebuilt from fragments.
    pub max_fragment_bytes: usize,
    /// Fragment sets older than this (capture time) are dropped.
    pub fragment_timeout: Duration,
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

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_flows: 200_000,
            max_ooo_bytes_per_flow: 1 << 20,
            flow_idle_timeout: Duration::from_secs(600),
            max_fragment_sets: 4096,
            max_fragment_bytes: 65_535,
            fragment_timeout: Duration::from_secs(30),
            max_head_bytes: 64 * 1024,
            max_headers: 128,
            max_pending_requests: 256,
            max_canon_body_bytes: 64 * 1024,
            max_decoded_body_bytes: 16 << 20,
            max_response_body_bytes: 64 * 1024,
        }
    }
}

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
pub struct HttpConfig {
    /// Lower-case header names carrying idempotency keys.
    pub key_headers: Vec<String>,
    /// Lower-case query parameter names whose values are replaced by `REDACTED`.
    pub redacted_params: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            key_headers: DEFAULT_KEY_HEADERS.iter().map(|s| s.to_string()).collect(),
            redacted_params: DEFAULT_REDACTED_PARAMS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub limits: Limits,
    pub http: HttpConfig,
    /// Write one `http` event per transaction.
    pub log_requests: bool,
    /// Write a final `stats` event.
    pub stats_event: bool,
    /// Worker threads for flow processing (0: the cores available).
    pub threads: usize,
    /// The idempotency policy.
    pub tracker: crate::tracker::TrackerConfig,
    /// Fleet mode: the shared key store (`None`: this instance's keys only).
    pub store: Option<crate::fleet::StoreConfig>,
    /// Daemons: serve the counters at `/metrics` (Prometheus text format) on this address.
    pub metrics_listen: Option<std::net::SocketAddr>,
}
