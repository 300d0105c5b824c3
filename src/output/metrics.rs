//! `--metrics-listen`: the counters of the stats lines at `/metrics`, in the Prometheus text
//! format (prometheus-client), served by a small HTTP server (tiny_http) on its own thread. The
//! daemon hands it a snapshot of its counters about once a second; a scrape reads the latest.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::stats::{HELP, Stats};

/// Values that go up and down: gauges; every other counter only grows.
const GAUGES: &[&str] = &["tracker_keys_tracked", "store_down", "store_last_rtt_us"];

#[derive(Debug)]
struct StatsCollector(Arc<Mutex<Stats>>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let st = self.0.lock().map(|s| s.clone()).unwrap_or_default();
        let help = |name: &str| {
            HELP.iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, h)| h)
                .trim()
                .to_string()
        };
        for (name, value) in st.entries() {
            // Alerts by kind are one family with a label, below.
            if name.starts_with("alerts_") {
                continue;
            }
            if GAUGES.contains(&name) {
                let g = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                g.encode(encoder.encode_descriptor(name, &help(name), None, g.metric_type())?)?;
            } else {
                let c = ConstCounter::new(value);
                c.encode(encoder.encode_descriptor(name, &help(name), None, c.metric_type())?)?;
            }
        }
        let c = ConstCounter::new(st.alerts);
        let mut family = encoder.encode_descriptor(
            "alerts_by_kind",
            "Alerts raised, by kind.",
            None,
            c.metric_type(),
        )?;
        for (name, value) in st.entries() {
            if let Some(kind) = name.strip_prefix("alerts_") {
                let labels = [("kind", kind)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The metrics endpoint; stops when dropped.
pub struct Metrics {
    latest: Arc<Mutex<Stats>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl Metrics {
    /// Listens on `addr` and serves `/metrics` until dropped.
    pub fn serve(addr: SocketAddr) -> Result<Metrics, String> {
        let server = tiny_http::Server::http(addr).map_err(|e| {
            format!(
                "cannot listen on {addr} for --metrics-listen: {e}; choose a free address and port"
            )
        })?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let latest = Arc::new(Mutex::new(Stats::default()));
        let mut registry = Registry::with_prefix("idemwatch");
        registry.register_collector(Box::new(StatsCollector(latest.clone())));
        let s = server.clone();
        let thread = std::thread::Builder::new()
            .name("idemwatch-metrics".into())
            .spawn(move || {
                for req in s.incoming_requests() {
                    let path = req.url().split('?').next().unwrap_or("");
                    let resp = if path == "/metrics" {
                        let mut body = String::new();
                        match prometheus_client::encoding::text::encode(&mut body, &registry) {
                            Ok(()) => {
                                let r = tiny_http::Response::from_string(body);
                                match tiny_http::Header::from_bytes(
                                    &b"Content-Type"[..],
                                    &b"text/plain; version=0.0.4; charset=utf-8"[..],
                                ) {
                                    Ok(h) => r.with_header(h),
                                    Err(()) => r,
                                }
                            }
                            Err(_) => tiny_http::Response::from_string("encoding failed\n")
                                .with_status_code(500),
                        }
                    } else {
                        tiny_http::Response::from_string("idemwatch: see /metrics\n")
                            .with_status_code(404)
                    };
                    let _ = req.respond(resp);
                }
            })
            .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
        tracing::info!(listen = %bound, "metrics at /metrics");
        Ok(Metrics {
            latest,
            server,
            thread: Some(thread),
            addr: bound,
        })
    }

    /// What the next scrape shows.
    pub fn update(&self, st: &Stats) {
        if let Ok(mut l) = self.latest.lock() {
            *l = st.clone();
        }
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
