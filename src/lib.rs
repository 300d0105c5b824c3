//! idemwatch: finds misuse of the `Idempotency-Key` header in HTTP traffic (HTTP/1.x and HTTP/2).
//!
//! Data flows `source -> decode -> reassembly -> http -> tracker -> output`; each stage is a
//! module, wired by `pipeline`. A `tls` stage goes between reassembly and http as `src/tls/`,
//! wired in one place (the pipeline's flow stages); HTTP/2 goes beside HTTP/1.1 as `http/h2/`.
//! The mirror endpoint (`mirror`) joins at `http`, so both paths share one parser.
//!
//! Mechanism (what was on the wire) ends at `http`; judging what is worth an alert is the
//! tracker's, which sees transactions only.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod config_file;
pub mod decode;
pub mod fleet;
pub mod http;
pub mod manpage;
pub mod mirror;
pub mod net;
pub mod output;
pub mod pipeline;
pub mod reassembly;
pub mod report;
pub mod source;
pub mod stats;
pub mod tls;
pub mod tracker;
pub mod ts;
