//! The integration tests: one test binary whose files are modules, so that the helpers
//! (`support`, `daemon`, `schema`) and the dependencies are compiled and linked once rather
//! than into one executable per file. A test's path names its area: `alerts::...`,
//! `fleet::...`. Tests run in parallel threads of one process: each keeps to its own temporary
//! files, ports and child processes, and none changes the environment or the working directory.
//! `cargo test --test it fleet::` runs one area.

mod daemon;
mod schema;
mod support;

mod alerts;
mod captures;
mod config;
mod conformance;
mod decode_encapsulations;
mod evasion;
mod events_schema;
mod failover;
mod fleet;
mod floods;
mod fuzz_seeds;
mod h2;
mod http_framing;
mod live;
mod manual;
mod mirror;
mod reassembly;
mod report;
mod secrets;
mod segmentation_props;
mod shipping;
mod systemd;
mod textview;
mod threads;
mod tls;
mod tls_story;
mod workload;
