//! Command line: clap definitions and all help text. Turns arguments into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Limits};

#[derive(Debug, Parser)]
#[command(
    name = "idemwatch",
    version,
    about = "idemwatch - find Idempotency-Key misuse in HTTP/1.1 traffic",
    long_about = "idemwatch - find Idempotency-Key misuse in HTTP/1.1 traffic.\n\n\
        Alerts: JSON lines on stdout. Logs: stderr. 'idemwatch <COMMAND> --help' shows options \
        and examples."
)]
pub struct Cli {
    /// More log output on stderr (-v, -vv, -vvv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No end-of-run summary on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse pcap/pcapng files (- for stdin), print events, exit.
    #[command(after_long_help = READ_EXAMPLES)]
    Read(ReadArgs),
}

const READ_EXAMPLES: &str = "\
Examples:
  idemwatch read --log-requests gw1.pcap | jq 'select(.event_type==\"http\")'
  tcpdump -i eth0 -w - 'tcp port 80' | idemwatch read -
  idemwatch read day1.pcap day2.pcapng -- 'tcp port 8080'";

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Capture files (pcap or pcapng, any link type idemwatch decodes); - reads stdin. Several
    /// files are merged by capture time.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// BPF capture filter applied to every file (after --), e.g. -- tcp port 8080.
    #[arg(last = true, value_name = "FILTER")]
    pub filter: Vec<String>,

    /// Write one "event_type":"http" line per HTTP transaction.
    #[arg(long)]
    pub log_requests: bool,

    /// Write a final "event_type":"stats" line with every counter.
    #[arg(long)]
    pub stats: bool,

    /// Write events to FILE (appended) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Memory and time bounds shared by the commands that capture.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Most TCP flows tracked at once; the least recently active are evicted past it
    /// [default: 200000].
    #[arg(long, value_name = "N")]
    pub max_flows: Option<usize>,

    /// Out-of-order bytes buffered per flow direction before a hole is declared, in bytes
    /// [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_ooo_bytes: Option<usize>,

    /// A flow without packets for this long (capture time) is closed [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub flow_timeout: Option<Duration>,

    /// Largest HTTP head (start line and headers), in bytes [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub max_head_bytes: Option<usize>,

    /// Most header lines in one HTTP message [default: 128].
    #[arg(long, value_name = "N")]
    pub max_headers: Option<usize>,

    /// Most requests awaiting a response on one connection [default: 256].
    #[arg(long, value_name = "N")]
    pub max_pending: Option<usize>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration like 90s, 10m, 24h or 500ms"))
}

impl LimitArgs {
    pub fn apply(&self, l: &mut Limits) {
        if let Some(v) = self.max_flows {
            l.max_flows = v;
        }
        if let Some(v) = self.max_ooo_bytes {
            l.max_ooo_bytes_per_flow = v;
        }
        if let Some(v) = self.flow_timeout {
            l.flow_idle_timeout = v;
        }
        if let Some(v) = self.max_head_bytes {
            l.max_head_bytes = v;
        }
        if let Some(v) = self.max_headers {
            l.max_headers = v;
        }
        if let Some(v) = self.max_pending {
            l.max_pending_requests = v;
        }
    }
}

impl ReadArgs {
    pub fn config(&self) -> Config {
        let mut c = Config {
            log_requests: self.log_requests,
            stats_event: self.stats,
            ..Config::default()
        };
        self.limits.apply(&mut c.limits);
        c
    }

    /// The BPF filter words joined, if any.
    pub fn filter(&self) -> Option<String> {
        (!self.filter.is_empty()).then(|| self.filter.join(" "))
    }
}
