//! Configuration of a run: the settings of every stage, composed.
//!
//! Each stage owns its settings type and their defaults (`decode::DefragSettings`,
//! `reassembly::Settings`, `http::Settings` and `http::Limits`, `tracker::TrackerConfig`,
//! `fleet::StoreConfig`); this module only puts them together, and no stage imports it. The CLI
//! (`cli.rs`) fills a `Config`; the pipeline hands each stage its part. Limits bound memory:
//! each stage counts what it drops when a limit is hit (see `stats.rs`).

/// Memory and time bounds of the mechanism stages, each stage's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// IPv4 fragment reassembly.
    pub decode: crate::decode::DefragSettings,
    /// The TCP flow table.
    pub reassembly: crate::reassembly::Settings,
    /// HTTP heads, pending requests and kept bodies.
    pub http: crate::http::Limits,
}

/// Everything a run needs.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub limits: Limits,
    /// What the HTTP layer extracts (key headers, redacted parameters).
    pub http: crate::http::Settings,
    /// Write one `http` event per transaction.
    pub log_requests: bool,
    /// `--format`: JSON lines or text (`None`: text on a terminal).
    pub format: Option<crate::output::Format>,
    /// `read`: a progress bar on stderr (set where stderr is a terminal and not `-q`).
    pub progress: bool,
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
    /// TLS decryption's secrets.
    pub tls: crate::tls::TlsSettings,
}
