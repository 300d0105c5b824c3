//! idemwatch: finds misuse of the `Idempotency-Key` header in HTTP/1.1 traffic.
//!
//! Data flows `source -> decode -> reassembly -> http -> output`; each stage is a module.
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
pub mod output;
pub mod pipeline;
pub mod reassembly;
pub mod source;
pub mod stats;
pub mod tracker;
pub mod ts;
