//! Command line: clap definitions and all help text. Turns arguments (merged with the
//! configuration file for `live` and `check-config`) into a [`Config`] and the settings of each
//! command. Defaults are the stages' own (see [`settings_defaults`]), shown in the help from
//! there, or clap's, which the structs' `Default` (what the file leaves out) takes too. The
//! relations between options live in [`RELATIONS`]. The option structs derive `Deserialize`
//! for the configuration file (see `config_file`), their adapters calling the parsers of their
//! `value_parser`s. Running the commands is left to `main.rs` and the pipeline.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use clap::{Arg, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::Deserialize;

use crate::config::{Config, Limits};
use crate::mirror::{MirrorBounds, MirrorEndpoint};

#[derive(Debug, Parser)]
#[command(
    name = "idemwatch",
    version,
    about = "idemwatch - find Idempotency-Key misuse in HTTP traffic (HTTP/1.x and HTTP/2)",
    long_about = "idemwatch - find Idempotency-Key misuse in HTTP traffic: HTTP/1.x and HTTP/2, \
        in cleartext or decrypted from TLS with its key log.\n\n\
        Alerts: JSON lines on stdout (a text view on a terminal; --format). Logs: stderr. \
        'idemwatch <COMMAND> --help' shows options and examples."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The options of every command, given before or after its name (and keys of the
/// configuration file too).
#[derive(Debug, Args, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct GlobalArgs {
    /// More log output on stderr (-v, -vv, -vvv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    #[serde(deserialize_with = "from_file::count")]
    pub verbose: u8,
    /// No end-of-run summary on stderr (nor read's progress bar).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse pcap/pcapng files (- for stdin), print alerts, exit.
    #[command(after_long_help = READ_EXAMPLES)]
    Read(ReadArgs),
    /// Capture on a network interface and print alerts until stopped (the daemon).
    #[command(after_long_help = LIVE_EXAMPLES)]
    Live(LiveArgs),
    /// Check the configuration file (and options) of `live`, print the effective settings.
    CheckConfig(LiveArgs),
    /// Receive requests a gateway mirrors (nginx `mirror`, Envoy `request_mirror_policies`)
    /// over TLS, answer each 204 at once, print alerts until stopped.
    #[command(after_long_help = MIRROR_EXAMPLES)]
    Mirror(MirrorArgs),
    /// Write a self-contained HTML incident report (counts, timeline, top endpoints, each
    /// alert beside the request it is compared with) from alert JSON lines.
    #[command(after_long_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Write the manual page or a shell completion script to stdout (made from these very
    /// definitions, so they match --help).
    #[command(subcommand)]
    Generate(Generate),
}

/// What `idemwatch generate` writes.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// idemwatch(1) in roff: `idemwatch generate man > idemwatch.1; man -l idemwatch.1`.
    Man,
    /// A completion script: `idemwatch generate completions bash >
    /// /usr/share/bash-completion/completions/idemwatch`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const MIRROR_EXAMPLES: &str = "\
Examples:
  idemwatch mirror --listen 127.0.0.1:9443 --cert mirror.pem --key mirror.key
  idemwatch mirror --listen 10.0.0.5:9443 --cert mirror.pem --key mirror.key --client-ca gateways.pem
  idemwatch mirror --listen 127.0.0.1:9080 --insecure-plaintext
  idemwatch mirror --check-config --config /etc/idemwatch/mirror.toml

Every option can also be set in the configuration file (TOML, keys named as the long options:
listen = \"127.0.0.1:9443\", max-connections = 256); the command line wins.
Response-side kinds stay silent: the mirror never sees the API's answers.
Signals: SIGTERM/SIGINT judge what was received and exit 0; SIGHUP reopens the output file,
reloads the policy options of the configuration file and reads the certificate files again.";

#[derive(Debug, Args, Deserialize)]
#[command(mut_args = with_relations)]
#[serde(default, rename_all = "kebab-case")]
pub struct MirrorArgs {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE",
          help = format!("Configuration file (TOML) [default: {MIRROR_DEFAULT_CONFIG} when it exists]"))]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Check the configuration file and options, print the effective settings and exit (0:
    /// valid; 2: not, and why). The certificate files are not read.
    #[arg(long)]
    #[serde(skip)]
    pub check_config: bool,

    /// Address and port to listen on, e.g. 127.0.0.1:9443.
    // An `Option` only so that the struct has a default; [`RELATIONS`] makes it required.
    #[arg(long, value_name = "ADDR")]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub listen: Option<std::net::SocketAddr>,

    /// Server certificate chain (PEM).
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,

    /// Server private key (PEM).
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,

    /// Require client certificates signed by these CAs (PEM): mutual TLS. A client without a
    /// valid certificate is refused and counted (mirror_tls_errors).
    #[arg(long, value_name = "PEM")]
    pub client_ca: Option<PathBuf>,

    /// Plain TCP, no TLS: only where the path to idemwatch is already private.
    #[arg(long)]
    pub insecure_plaintext: bool,

    /// Peers (gateways) whose X-Forwarded-For, X-Real-IP or Forwarded header names the client,
    /// comma-separated CIDRs or addresses; from other peers these headers are ignored and the
    /// peer is the client.
    #[arg(long, value_name = "CIDRS", value_delimiter = ',', value_parser = parse_net)]
    #[serde(deserialize_with = "from_file::nets")]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    #[command(flatten)]
    #[serde(flatten)]
    pub bounds: MirrorBoundArgs,

    /// Serve the counters at http://ADDR/metrics in the Prometheus text format, e.g.
    /// 127.0.0.1:9464 [default: off].
    #[arg(long, value_name = "ADDR")]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Write one "event_type":"http" line per mirrored request.
    #[arg(long)]
    pub log_requests: bool,

    /// Write events to FILE (appended) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// How events are written: json (JSON lines, the alert contract) or text (lines for a
    /// person, times in UTC) [default: text when stdout is a terminal and no --output, else
    /// json].
    #[arg(long, value_enum, value_name = "FORMAT")]
    #[serde(deserialize_with = "from_file::some_value_enum")]
    pub format: Option<crate::output::Format>,

    #[command(flatten)]
    #[serde(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub store: StoreArgs,
}

/// The mirror endpoint's bounds as options: one definition for both commands that run the
/// endpoint. `mirror` takes them as they are (`--max-connections`); `live` as the options of
/// its endpoint (`--mirror-max-connections`, see [`LIVE_MIRROR_PREFIX`]). Defaults: the
/// mirror's own [`MirrorBounds::DEFAULT`].
#[derive(Debug, Clone, PartialEq, Args, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct MirrorBoundArgs {
    /// Most connections open at once; more are closed at once and counted (mirror_refused).
    #[arg(long, value_name = "N", default_value_t = MirrorBounds::DEFAULT.max_connections)]
    #[serde(deserialize_with = "from_file::parsed")]
    pub max_connections: usize,

    /// A TLS handshake must complete within this.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          default_value = duration_text(MirrorBounds::DEFAULT.handshake_timeout))]
    #[serde(deserialize_with = "from_file::duration")]
    pub handshake_timeout: Duration,

    /// A connection silent this long is closed.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          default_value = duration_text(MirrorBounds::DEFAULT.idle_timeout))]
    #[serde(deserialize_with = "from_file::duration")]
    pub idle_timeout: Duration,

    /// A request must be whole this long after its first byte (slow senders are closed).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          default_value = duration_text(MirrorBounds::DEFAULT.request_timeout))]
    #[serde(deserialize_with = "from_file::duration")]
    pub request_timeout: Duration,

    /// With --trusted-proxies: how long a request that carries its gateway's X-Request-Start
    /// is held, so that requests the gateway received in one order but that reached the
    /// mirror in another (each mirrored copy is a connection of its own) are judged in the
    /// gateway's order (mirror_reordered; later ones: mirror_reorder_late). 0 turns it off.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          default_value = duration_text(MirrorBounds::DEFAULT.reorder_window))]
    #[serde(deserialize_with = "from_file::duration")]
    pub reorder_window: Duration,
}

impl MirrorBoundArgs {
    pub fn bounds(&self) -> MirrorBounds {
        MirrorBounds {
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            reorder_window: self.reorder_window,
        }
    }
}

/// The certificate and key of a mirror endpoint: none for plain TCP, or when either is missing.
fn tls_files(
    insecure_plaintext: bool,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Option<(PathBuf, PathBuf)> {
    (!insecure_plaintext)
        .then(|| cert.clone().zip(key.clone()))
        .flatten()
}

impl MirrorArgs {
    /// The endpoint these options describe; `None` without --listen (which [`RELATIONS`] makes
    /// clap require, as it requires both TLS files unless --insecure-plaintext).
    pub fn endpoint(&self) -> Option<MirrorEndpoint> {
        Some(MirrorEndpoint {
            listen: self.listen?,
            tls_files: tls_files(self.insecure_plaintext, &self.cert, &self.key),
            client_ca: self.client_ca.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            bounds: self.bounds.bounds(),
        })
    }

    pub fn config(&self) -> Config {
        let mut c = Config {
            log_requests: self.log_requests,
            format: self.format,
            stats_event: false,
            threads: 1,
            ..Config::default()
        };
        self.limits.apply(&mut c.limits);
        self.policy.apply(&mut c);
        c.store = self.store.config();
        c.metrics_listen = self.metrics_listen;
        c
    }
}

/// Where `live` and `check-config` look for the configuration file by default.
pub const DEFAULT_CONFIG: &str = crate::config_file::DEFAULT_PATH;

/// Where `mirror` looks for its configuration file by default.
pub const MIRROR_DEFAULT_CONFIG: &str = crate::config_file::MIRROR_DEFAULT_PATH;

/// What the long names of [`MirrorBoundArgs`] take in front in `live`, whose other mirror
/// options are `--mirror-*` too: `--mirror-max-connections`, key `mirror-max-connections`.
/// Their clap ids stay the struct's (`max_connections`), which its derived code reads.
pub const LIVE_MIRROR_PREFIX: &str = "mirror-";

/// The clap ids of [`MirrorBoundArgs`].
fn mirror_bound_ids() -> &'static [String] {
    static IDS: LazyLock<Vec<String>> = LazyLock::new(|| {
        MirrorBoundArgs::augment_args(clap::Command::new("bounds"))
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect()
    });
    &IDS
}

/// An option of `live`: its relations, and the mirror's bounds under the names of the other
/// `--mirror-*` options.
fn live_option(arg: Arg) -> Arg {
    let arg = with_relations(arg);
    if !mirror_bound_ids()
        .iter()
        .any(|id| arg.get_id() == id.as_str())
    {
        return arg;
    }
    let Some(long) = arg.get_long().map(str::to_owned) else {
        return arg;
    };
    // Applied once per command (the struct's), but a second pass must not prefix again.
    if long.starts_with(LIVE_MIRROR_PREFIX) {
        return arg;
    }
    arg.long(format!("{LIVE_MIRROR_PREFIX}{long}"))
        .help_heading("Mirror endpoint in the same daemon")
}

const LIVE_EXAMPLES: &str = "\
Examples:
  idemwatch live -i eth0 -o /var/log/idemwatch/alerts.json -- tcp port 80
  idemwatch live -i any --state-dir /var/lib/idemwatch --stats-interval 10s
  idemwatch live --list-interfaces
  idemwatch check-config --config /etc/idemwatch/idemwatch.toml

Every option can also be set in the configuration file (TOML, keys named as the long options:
max-keys = 500000, window = \"24h\", filter = \"tcp port 80\"); the command line wins.
Signals: SIGTERM/SIGINT finish what is complete and exit 0; SIGHUP reopens the output file and
reloads the policy options of the configuration file.";

#[derive(Debug, Args, Deserialize)]
#[command(mut_args = live_option)]
#[serde(default, rename_all = "kebab-case")]
pub struct LiveArgs {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE",
          help = format!("Configuration file (TOML) [default: {DEFAULT_CONFIG} when it exists]"))]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Interface to capture on (any: every interface, Linux cooked capture).
    #[arg(short, long, value_name = "IFACE")]
    pub interface: Option<String>,

    /// List the interfaces that can be captured on, and exit.
    #[arg(long)]
    pub list_interfaces: bool,

    /// BPF capture filter (after --), e.g. -- tcp port 80.
    #[arg(last = true, value_name = "FILTER")]
    #[serde(deserialize_with = "from_file::words")]
    pub filter: Vec<String>,

    /// Put the interface in promiscuous mode (needed on a SPAN port that is not the host's own
    /// traffic).
    #[arg(long)]
    pub promisc: bool,

    /// Bytes captured per packet; whole packets are needed to see whole requests.
    #[arg(long, value_name = "BYTES", default_value_t = 262_144, value_parser = parse_snaplen)]
    #[serde(deserialize_with = "from_file::snaplen")]
    pub snaplen: i32,

    /// Kernel capture buffer, in bytes (suffixes K, M, G); bursts overflow a small one.
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = parse_bytes)]
    #[serde(deserialize_with = "from_file::bytes")]
    pub buffer_size: u64,

    /// Write an "event_type":"stats" line this often (0: never).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    #[serde(deserialize_with = "from_file::duration")]
    pub stats_interval: Duration,

    /// Serve the counters of the stats lines at http://ADDR/metrics in the Prometheus text
    /// format, e.g. 127.0.0.1:9464 [default: off].
    #[arg(long, value_name = "ADDR")]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Log a warning when more than this share of packets was dropped in a stats interval.
    #[arg(long, value_name = "RATIO", default_value_t = 0.001)]
    #[serde(deserialize_with = "from_file::parsed")]
    pub drop_warn_ratio: f64,

    /// Directory where tracked keys are saved (on shutdown and every --state-interval) and
    /// loaded from at start, so that a restart forgets nothing [default: none, not saved].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// How often tracked keys are saved to --state-dir.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    #[serde(deserialize_with = "from_file::duration")]
    pub state_interval: Duration,

    /// After opening the interface as root, run as this user (not needed under systemd).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Write one "event_type":"http" line per HTTP transaction.
    #[arg(long)]
    pub log_requests: bool,

    /// Write events to FILE (appended; reopened on SIGHUP) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// How events are written: json (JSON lines, the alert contract) or text (lines for a
    /// person, times in UTC) [default: text when stdout is a terminal and no --output, else
    /// json].
    #[arg(long, value_enum, value_name = "FORMAT")]
    #[serde(deserialize_with = "from_file::some_value_enum")]
    pub format: Option<crate::output::Format>,

    /// Flow workers (reassembly and HTTP run on this many threads; capture, decoding and the
    /// tracker stay on the capture thread; the alerts are the same whatever the number; 1 runs
    /// everything on the capture thread) [default: the cores available].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    #[serde(deserialize_with = "from_file::some_threads")]
    pub threads: Option<u16>,

    /// A TLS key log (NSS format, as SSLKEYLOGFILE writes) to follow as the application
    /// appends to it (repeatable): TLS connections whose secrets it holds are decrypted, also
    /// when a secret is written after the connection's first records. A missing file is
    /// waited for; a truncated or rotated one is read again. Its contents are never printed.
    #[arg(long, value_name = "FILE")]
    #[serde(deserialize_with = "from_file::paths")]
    pub tls_keylog: Vec<PathBuf>,

    /// Also run the mirror endpoint on ADDR, feeding the same tracker (see `idemwatch mirror`).
    #[arg(
        long,
        value_name = "ADDR",
        help_heading = "Mirror endpoint in the same daemon"
    )]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub mirror_listen: Option<std::net::SocketAddr>,

    /// The mirror's certificate chain (PEM).
    #[arg(
        long,
        value_name = "PEM",
        help_heading = "Mirror endpoint in the same daemon"
    )]
    pub mirror_cert: Option<PathBuf>,

    /// The mirror's private key (PEM).
    #[arg(
        long,
        value_name = "PEM",
        help_heading = "Mirror endpoint in the same daemon"
    )]
    pub mirror_key: Option<PathBuf>,

    /// Mutual TLS for the mirror: client certificates must be signed by these CAs (PEM).
    #[arg(
        long,
        value_name = "PEM",
        help_heading = "Mirror endpoint in the same daemon"
    )]
    pub mirror_client_ca: Option<PathBuf>,

    /// The mirror on plain TCP, no TLS.
    #[arg(long, help_heading = "Mirror endpoint in the same daemon")]
    pub mirror_insecure_plaintext: bool,

    /// Gateways whose forwarding headers name the client, comma-separated CIDRs.
    #[arg(long, value_name = "CIDRS", value_delimiter = ',', value_parser = parse_net,
          help_heading = "Mirror endpoint in the same daemon")]
    #[serde(deserialize_with = "from_file::nets")]
    pub mirror_trusted_proxies: Vec<ipnet::IpNet>,

    /// The bounds of `mirror`, as --mirror-max-connections, --mirror-handshake-timeout,
    /// --mirror-idle-timeout and --mirror-request-timeout (see `live_option`).
    #[command(flatten)]
    #[serde(flatten, deserialize_with = "from_file::live_mirror_bounds")]
    pub mirror_bounds: MirrorBoundArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub store: StoreArgs,
}

impl LiveArgs {
    /// The mirror endpoint of `--mirror-listen`, if any; an error when it lacks its
    /// certificate and key.
    pub fn mirror_endpoint(&self) -> Result<Option<MirrorEndpoint>, &'static str> {
        let Some(listen) = self.mirror_listen else {
            return Ok(None);
        };
        let tls_files = tls_files(
            self.mirror_insecure_plaintext,
            &self.mirror_cert,
            &self.mirror_key,
        );
        if tls_files.is_none() && !self.mirror_insecure_plaintext {
            return Err(
                "--mirror-listen needs --mirror-cert and --mirror-key (or --mirror-insecure-plaintext)",
            );
        }
        Ok(Some(MirrorEndpoint {
            listen,
            tls_files,
            client_ca: self.mirror_client_ca.clone(),
            trusted_proxies: self.mirror_trusted_proxies.clone(),
            bounds: self.mirror_bounds.bounds(),
        }))
    }

    pub fn config(&self) -> Config {
        let mut c = Config {
            log_requests: self.log_requests,
            format: self.format,
            stats_event: false,
            threads: self.threads.map_or(0, usize::from),
            ..Config::default()
        };
        self.limits.apply(&mut c.limits);
        self.policy.apply(&mut c);
        c.store = self.store.config();
        c.metrics_listen = self.metrics_listen;
        c
    }

    /// The BPF filter words joined, if any.
    pub fn filter(&self) -> Option<String> {
        (!self.filter.is_empty()).then(|| self.filter.join(" "))
    }
}

fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let t = s.trim();
    t.parse::<ipnet::IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("'{s}' is not an address or CIDR; write e.g. 10.0.0.0/8,127.0.0.1"))
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let unit = t[i..]
                .trim()
                .trim_end_matches(['B', 'b'])
                .trim_end_matches('i');
            let m = match unit.to_ascii_uppercase().as_str() {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                _ => return Err(format!("'{s}' is not a size; write e.g. 65536, 64M or 1G")),
            };
            (&t[..i], m)
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("'{s}' is not a size; write e.g. 65536, 64M or 1G"))
}

const READ_EXAMPLES: &str = "\
Examples:
  idemwatch read gw1.pcap | jq -c 'select(.event_type==\"alert\") | {kind, key, path: .request.path}'
  idemwatch read --log-requests gw1.pcap | jq 'select(.event_type==\"http\")'
  tcpdump -i eth0 -w - 'tcp port 80' | idemwatch read -
  idemwatch read day1.pcap day2.pcapng -- 'tcp port 8080'";

const REPORT_EXAMPLES: &str = "\
Examples:
  idemwatch read gw1.pcap | idemwatch report -o report.html
  idemwatch report day1.jsonl day2.jsonl -o incident.html
  idemwatch report --max-listed 200 alerts.jsonl > report.html

Lines that are not alerts (stats, http events) are skipped and counted; lines that are not JSON
are counted and named on stderr with their line number. The page holds only what the alerts
hold (no bodies, no credentials), needs no network and runs no script but its own.";

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Alert JSON lines, as read, live and mirror write them; - or none reads stdin. Other
    /// event types are skipped.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Write the page to FILE (replaced) [default: stdout].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// List at most N alerts in detail (the first in time order); the counts, timeline and
    /// top lists always take every alert.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_listed: usize,
}

#[derive(Debug, Args)]
#[command(mut_args = with_relations)]
pub struct ReadArgs {
    /// Capture files (pcap or pcapng, any link type idemwatch decodes); - reads stdin. Several
    /// files are merged by capture time.
    #[arg(value_name = "FILE")]
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

    /// How events are written: json (JSON lines, the alert contract) or text (lines for a
    /// person, times in UTC) [default: text when stdout is a terminal and no --output, else
    /// json].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<crate::output::Format>,

    /// Flow workers (reassembly and HTTP run on this many threads; the output is the same
    /// whatever the number) [default: the cores available].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// A TLS key log (NSS format, as SSLKEYLOGFILE writes): TLS connections whose secrets it
    /// holds are decrypted (repeatable). Secrets in pcapng Decryption Secrets Blocks are used
    /// without it. A key log is a credential: its contents are never printed.
    #[arg(long, value_name = "FILE")]
    pub tls_keylog: Vec<PathBuf>,

    #[command(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub store: StoreArgs,
}

/// The idempotency policy: windows, watched endpoints, key headers, scope.
#[derive(Debug, Args, Deserialize)]
#[command(next_help_heading = "Policy", mut_args = with_settings_default)]
#[serde(default, rename_all = "kebab-case")]
pub struct PolicyArgs {
    /// How long a key is remembered; a retry after it is late_retry (keys are kept one more
    /// window to see that).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(deserialize_with = "from_file::some_duration")]
    pub window: Option<Duration>,

    /// Identical keyless requests within this are keyless_duplicate.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(deserialize_with = "from_file::some_duration")]
    pub duplicate_window: Option<Duration>,

    /// A new key for the same request within this after the first attempt ended unanswered,
    /// aborted, 5xx or 409 is key_churn.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(deserialize_with = "from_file::some_duration")]
    pub churn_window: Option<Duration>,

    /// Methods whose keyless requests are judged, comma-separated.
    #[arg(long, value_name = "METHODS", value_delimiter = ',', value_parser = parse_method)]
    #[serde(deserialize_with = "from_file::methods")]
    pub watch_methods: Option<Vec<String>>,

    /// Path prefix where every watched request must carry a key (repeatable), e.g.
    /// --require-key /v1/charges.
    #[arg(long, value_name = "PREFIX")]
    #[serde(deserialize_with = "from_file::words")]
    pub require_key: Vec<String>,

    /// Which keyless requests raise missing_key: learned (endpoints that earlier saw a key, and
    /// --require-key prefixes), all (every watched method), off (never; keyless_duplicate still
    /// runs on learned endpoints).
    #[arg(long, value_enum, value_name = "MODE")]
    #[serde(deserialize_with = "from_file::some_value_enum")]
    pub missing_key: Option<crate::tracker::MissingKeyMode>,

    /// Another header that carries idempotency keys (repeatable), e.g. PayPal-Request-Id;
    /// Idempotency-Key and X-Idempotency-Key are always read.
    #[arg(long, value_name = "NAME", value_parser = parse_header_name)]
    #[serde(deserialize_with = "from_file::header_names")]
    pub key_header: Vec<String>,

    /// Statuses that reject a request, comma-separated.
    #[arg(long, value_name = "CODES", value_delimiter = ',', value_parser = parse_status)]
    #[serde(deserialize_with = "from_file::statuses")]
    pub reject_statuses: Option<Vec<u16>>,

    /// 5xx responses become a key's stored result (as Stripe API v1 does).
    #[arg(long)]
    pub store_errors: bool,

    /// Write key_sha256 (a SHA-256 of the key) instead of keys: keys may carry personal data.
    #[arg(long)]
    pub redact_keys: bool,

    /// Most keys tracked; the oldest are evicted past it (tracker_keys_evicted). Default
    /// 1000000, about 0.5-0.7 GB (docs/MEMORY.md).
    #[arg(long, value_name = "N")]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub max_keys: Option<usize>,

    /// Instead of --max-keys: as many keys as this much memory holds (suffixes K, M, G), at
    /// 704 bytes a key, the most one costs (docs/MEMORY.md).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    #[serde(deserialize_with = "from_file::some_bytes")]
    pub max_key_memory: Option<u64>,

    /// What keys are scoped by, comma-separated from host, credential, account (or none).
    #[arg(long, value_name = "PARTS", value_parser = parse_scope)]
    #[serde(deserialize_with = "from_file::scope")]
    pub scope: Option<crate::tracker::ScopeParts>,

    /// Another query parameter whose value is replaced by REDACTED in paths (repeatable).
    #[arg(long, value_name = "NAME")]
    #[serde(deserialize_with = "from_file::words")]
    pub redact_param: Vec<String>,
}

fn parse_method(s: &str) -> Result<String, String> {
    let m = s.trim().to_ascii_uppercase();
    if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
        Ok(m)
    } else {
        Err(format!(
            "'{s}' is not an HTTP method; write e.g. POST,PATCH"
        ))
    }
}

fn parse_status(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(n) if (100..=599).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not an HTTP status; write codes from 100 to 599, e.g. 400,409,422"
        )),
    }
}

fn parse_header_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "'{s}' is not a header name; write e.g. PayPal-Request-Id"
        ))
    }
}

fn parse_scope(s: &str) -> Result<crate::tracker::ScopeParts, String> {
    crate::tracker::ScopeParts::parse(s)
}

impl PolicyArgs {
    pub fn apply(&self, c: &mut Config) {
        let t = &mut c.tracker;
        if let Some(v) = self.window {
            t.window = v;
        }
        if let Some(v) = self.duplicate_window {
            t.duplicate_window = v;
        }
        if let Some(v) = self.churn_window {
            t.churn_window = v;
        }
        if let Some(v) = &self.watch_methods {
            t.watch_methods = v.clone();
        }
        t.require_key = self.require_key.clone();
        if let Some(v) = self.missing_key {
            t.missing_key = v;
        }
        if let Some(v) = &self.reject_statuses {
            t.reject_statuses = v.clone();
        }
        t.store_errors = self.store_errors;
        t.redact_keys = self.redact_keys;
        if let Some(v) = self.max_keys {
            t.max_keys = v;
        }
        if let Some(m) = self.max_key_memory {
            t.max_keys = crate::tracker::keys_for_memory(m);
        }
        if let Some(v) = self.scope {
            t.scope = v;
        }
        for h in &self.key_header {
            if !c.http.key_headers.contains(h) {
                c.http.key_headers.push(h.clone());
            }
        }
        for p in &self.redact_param {
            let p = p.to_ascii_lowercase();
            if !c.http.redacted_params.contains(&p) {
                c.http.redacted_params.push(p);
            }
        }
    }
}

/// Fleet mode: the key store shared by the idemwatch instances of several gateways.
#[derive(Debug, Args, Deserialize)]
#[command(next_help_heading = "Fleet mode (shared key store)")]
#[serde(default, rename_all = "kebab-case")]
pub struct StoreArgs {
    /// Share keys with other instances through this store: redis://HOST:PORT/DB,
    /// rediss://HOST:PORT/DB (TLS), several redis:// URLs comma-separated (the seed nodes of a
    /// Redis Cluster), or memory (this process only) [default: none, this instance's keys
    /// only].
    #[arg(long, value_name = "URL", value_parser = parse_store)]
    #[serde(deserialize_with = "from_file::store")]
    pub store: Option<crate::fleet::StoreSpec>,

    /// Prefix of every name this fleet uses in the store (several fleets can share one Redis).
    #[arg(long, value_name = "PREFIX", default_value = store_defaults().prefix)]
    pub store_prefix: String,

    /// This instance's name in the store, printed as `observer` in alerts whose original it saw
    /// [default: the host name]. Instances of one fleet need distinct names.
    #[arg(long, value_name = "NAME")]
    pub store_instance: Option<String>,

    /// A round trip to the store (or a connection attempt) taking longer fails.
    #[arg(long, value_name = "DURATION", default_value = duration_text(store_defaults().timeout),
          value_parser = parse_duration)]
    #[serde(deserialize_with = "from_file::duration")]
    pub store_timeout: Duration,

    /// How long a keyed request waits for the store's answer before it is judged on this
    /// instance's keys alone (counted in store_judged_locally). Alerts are delayed by the
    /// store's round trip, never longer than this.
    #[arg(long, value_name = "DURATION", default_value = duration_text(store_defaults().wait),
          value_parser = parse_duration)]
    #[serde(deserialize_with = "from_file::duration")]
    pub store_wait: Duration,

    /// Operations queued for the store at most; past it they are skipped (store_ops_skipped),
    /// and a daemon judges the oldest held request without waiting.
    #[arg(long, value_name = "N", default_value_t = store_defaults().max_inflight)]
    #[serde(deserialize_with = "from_file::parsed")]
    pub store_max_inflight: usize,

    /// With rediss://: trust the CAs in this file (PEM) instead of the system's.
    #[arg(long, value_name = "PEM")]
    pub store_ca: Option<PathBuf>,

    /// With rediss://: present this client certificate (PEM) to a store that asks for one.
    #[arg(long, value_name = "PEM")]
    pub store_cert: Option<PathBuf>,

    /// The private key of --store-cert (PEM).
    #[arg(long, value_name = "PEM")]
    pub store_key: Option<PathBuf>,
}

fn parse_store(s: &str) -> Result<crate::fleet::StoreSpec, String> {
    crate::fleet::StoreSpec::parse(s)
}

impl StoreArgs {
    pub fn config(&self) -> Option<crate::fleet::StoreConfig> {
        let spec = self.store.clone()?;
        let mut c = crate::fleet::StoreConfig::new(spec);
        c.prefix = self.store_prefix.clone();
        if let Some(i) = &self.store_instance {
            c.instance = i.clone();
        }
        c.timeout = self.store_timeout;
        c.wait = self.store_wait;
        c.max_inflight = self.store_max_inflight.max(1);
        c.tls = crate::fleet::StoreTls {
            ca: self.store_ca.clone(),
            cert: self.store_cert.clone(),
            key: self.store_key.clone(),
        };
        Some(c)
    }
}

/// Memory and time bounds shared by the commands that capture.
#[derive(Debug, Args, Deserialize)]
#[command(next_help_heading = "Limits", mut_args = with_settings_default)]
#[serde(default, rename_all = "kebab-case")]
pub struct LimitArgs {
    /// Most TCP flows tracked at once, split evenly among the workers; the least recently
    /// active are evicted past it.
    #[arg(long, value_name = "N")]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub max_flows: Option<usize>,

    /// Out-of-order bytes buffered per flow direction before a hole is declared, in bytes; each
    /// held segment also counts its bookkeeping (about 130 bytes).
    #[arg(long, value_name = "BYTES")]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub max_ooo_bytes: Option<usize>,

    /// A flow without packets for this long (capture time) is closed.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(deserialize_with = "from_file::some_duration")]
    pub flow_timeout: Option<Duration>,

    /// Largest HTTP head (start line and headers), in bytes.
    #[arg(long, value_name = "BYTES")]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub max_head_bytes: Option<usize>,

    /// Most header lines in one HTTP message.
    #[arg(long, value_name = "N")]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub max_headers: Option<usize>,

    /// Most requests awaiting a response on one connection.
    #[arg(long, value_name = "N")]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub max_pending: Option<usize>,

    /// Most incomplete IPv4 fragment sets kept at once; the oldest are dropped past it
    /// (fragments_dropped).
    #[arg(long, value_name = "N")]
    #[serde(deserialize_with = "from_file::some_parsed")]
    pub max_fragment_sets: Option<usize>,
}

/// The store settings' defaults, shown as the defaults of the store options (which the options
/// then set, every one).
fn store_defaults() -> crate::fleet::StoreConfig {
    crate::fleet::StoreConfig::new(crate::fleet::StoreSpec::Memory)
}

/// The defaults of the options whose fields are `Option`s: an option left unset keeps the value
/// of its stage's settings (`tracker::TrackerConfig`, `config::Limits`), so these are the values
/// of `c`'s fields, written as on the command line. Keyed by the option's id. With the default
/// `Config` they are the "[default: X]" of the help; with a parsed one, what `check-config`
/// shows for the options not set.
pub fn settings_defaults(c: &Config) -> Vec<(&'static str, String)> {
    let t = &c.tracker;
    let l = &c.limits;
    let list = |v: &[String]| v.join(",");
    let missing_key = clap::ValueEnum::to_possible_value(&t.missing_key)
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default();
    let scope = [
        (t.scope.host, "host"),
        (t.scope.credential, "credential"),
        (t.scope.account, "account"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(",");
    let statuses: Vec<String> = t.reject_statuses.iter().map(u16::to_string).collect();
    vec![
        ("window", duration_text(t.window)),
        ("duplicate_window", duration_text(t.duplicate_window)),
        ("churn_window", duration_text(t.churn_window)),
        ("watch_methods", list(&t.watch_methods)),
        ("missing_key", missing_key),
        ("reject_statuses", list(&statuses)),
        ("max_keys", t.max_keys.to_string()),
        (
            "scope",
            if scope.is_empty() {
                "none".into()
            } else {
                scope
            },
        ),
        ("max_flows", l.reassembly.max_flows.to_string()),
        (
            "max_ooo_bytes",
            l.reassembly.max_ooo_bytes_per_flow.to_string(),
        ),
        (
            "flow_timeout",
            duration_text(l.reassembly.flow_idle_timeout),
        ),
        ("max_head_bytes", l.http.max_head_bytes.to_string()),
        ("max_headers", l.http.max_headers.to_string()),
        ("max_pending", l.http.max_pending_requests.to_string()),
        ("max_fragment_sets", l.decode.max_fragment_sets.to_string()),
    ]
}

/// Appends "[default: X]" to the help of an option listed by [`settings_defaults`], X from the
/// default `Config`: the help shows the value the settings use, written nowhere else.
fn with_settings_default(arg: clap::Arg) -> clap::Arg {
    // Computed once: clap calls this for every option of every command it builds.
    static DEFAULTS: LazyLock<Vec<(&'static str, String)>> =
        LazyLock::new(|| settings_defaults(&Config::default()));
    let Some((_, d)) = DEFAULTS.iter().find(|(k, _)| *k == arg.get_id()) else {
        return arg;
    };
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    // Each flattened group runs this over every option of its command so far: once is enough.
    if help.contains("[default: ") {
        return arg;
    }
    arg.help(format!("{help} [default: {d}]"))
}

/// A duration as the options take it: "500ms" when not whole seconds, seconds under two
/// minutes ("60s"), else whole hours ("24h") or minutes ("10m").
pub fn duration_text(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{}ns", d.as_nanos());
    }
    if d.subsec_millis() != 0 {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    if s < 120 || !s.is_multiple_of(60) {
        format!("{s}s")
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else {
        format!("{}m", s / 60)
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration like 90s, 10m, 24h or 500ms"))
}

impl LimitArgs {
    pub fn apply(&self, l: &mut Limits) {
        if let Some(v) = self.max_flows {
            l.reassembly.max_flows = v;
        }
        if let Some(v) = self.max_ooo_bytes {
            l.reassembly.max_ooo_bytes_per_flow = v;
        }
        if let Some(v) = self.flow_timeout {
            l.reassembly.flow_idle_timeout = v;
        }
        if let Some(v) = self.max_head_bytes {
            l.http.max_head_bytes = v;
        }
        if let Some(v) = self.max_headers {
            l.http.max_headers = v;
        }
        if let Some(v) = self.max_pending {
            l.http.max_pending_requests = v;
        }
        if let Some(v) = self.max_fragment_sets {
            l.decode.max_fragment_sets = v;
        }
    }
}

impl ReadArgs {
    pub fn config(&self) -> Config {
        let mut c = Config {
            log_requests: self.log_requests,
            format: self.format,
            stats_event: self.stats,
            threads: self.threads.map_or(0, usize::from),
            ..Config::default()
        };
        self.limits.apply(&mut c.limits);
        self.policy.apply(&mut c);
        c.store = self.store.config();
        c
    }

    /// The BPF filter words joined, if any.
    pub fn filter(&self) -> Option<String> {
        (!self.filter.is_empty()).then(|| self.filter.join(" "))
    }
}

fn parse_snaplen(s: &str) -> Result<i32, String> {
    // The words of clap's ranged integer parser, which this replaced so that the configuration
    // file can run it too.
    let n = s.parse::<i64>().map_err(|e| e.to_string())?;
    match i32::try_from(n) {
        Ok(v) if v >= 1514 => Ok(v),
        _ => Err(format!("{n} is not in 1514..={}", i32::MAX)),
    }
}

// ---------------------------------------------------------------------------------------------
// Relations between options.

/// How an option relates to another. Every relation lives in [`RELATIONS`], and only there:
/// clap applies them to the command line (its own checks and messages), and [`parse`] checks
/// them on the command line merged with the configuration file, which clap never sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The option must be given.
    Required,
    /// The option must be given unless this one is.
    RequiredUnless(&'static str),
    /// The option needs this one.
    Requires(&'static str),
    /// The option cannot be given with this one.
    ConflictsWith(&'static str),
}

/// Every relation between options, by clap id (ids are per command: `cert` is the mirror's).
pub const RELATIONS: &[(&str, Relation)] = &[
    ("files", Relation::Required),
    ("listen", Relation::Required),
    ("cert", Relation::RequiredUnless("insecure_plaintext")),
    ("key", Relation::RequiredUnless("insecure_plaintext")),
    ("insecure_plaintext", Relation::ConflictsWith("cert")),
    ("insecure_plaintext", Relation::ConflictsWith("key")),
    ("insecure_plaintext", Relation::ConflictsWith("client_ca")),
    ("interface", Relation::RequiredUnless("list_interfaces")),
    ("max_key_memory", Relation::ConflictsWith("max_keys")),
    ("store_prefix", Relation::Requires("store")),
    ("store_instance", Relation::Requires("store")),
    ("store_timeout", Relation::Requires("store")),
    ("store_wait", Relation::Requires("store")),
    ("store_max_inflight", Relation::Requires("store")),
    ("store_ca", Relation::Requires("store")),
    ("store_cert", Relation::Requires("store")),
    ("store_cert", Relation::Requires("store_key")),
    ("store_key", Relation::Requires("store")),
    ("store_key", Relation::Requires("store_cert")),
];

impl Relation {
    fn apply(self, arg: Arg) -> Arg {
        match self {
            Relation::Required => arg.required(true),
            Relation::RequiredUnless(other) => arg.required_unless_present(other),
            Relation::Requires(other) => arg.requires(other),
            Relation::ConflictsWith(other) => arg.conflicts_with(other),
        }
    }
}

/// The relations of [`RELATIONS`] that concern `arg`, applied to it.
fn with_relations(arg: Arg) -> Arg {
    apply_relations(arg, RELATIONS.iter())
}

fn apply_relations<'a>(arg: Arg, relations: impl Iterator<Item = &'a (&'a str, Relation)>) -> Arg {
    let id = arg.get_id().clone();
    relations
        .filter(|(r_id, _)| id == *r_id)
        .fold(arg, |a, (_, r)| r.apply(a))
}

/// `arg` without the relations of [`RELATIONS`] (which are its only ones).
fn relations_off(arg: Arg) -> Arg {
    if !RELATIONS.iter().any(|(id, _)| arg.get_id() == *id) {
        return arg;
    }
    use clap::builder::Resettable::Reset;
    arg.required(false)
        .required_unless_present(Reset)
        .requires(Reset)
        .conflicts_with(Reset)
}

/// The subcommands that read a configuration file: `live` and `check-config` the daemon's,
/// `mirror` its own (see [`crate::config_file::default_path`]).
const CONFIG_SUBCOMMANDS: [&str; 3] = ["live", "check-config", "mirror"];

/// `cmd` with the relations of the subcommands that read the configuration file off, so that
/// the command line parses even where only the file completes it.
fn relaxed(cmd: clap::Command) -> clap::Command {
    CONFIG_SUBCOMMANDS.iter().fold(cmd, |c, name| {
        c.mut_subcommand(name, |s| s.mut_args(relations_off))
    })
}

/// A violated relation: in the file (said with its line), or among command-line options only
/// (which clap says, as it does without a file). That one comes with every relation the file
/// has no part in, for clap to check on the command line: all those, so that its usage line is
/// the one it prints without a file.
enum Violation {
    File(crate::config_file::ConfigFileError),
    CommandLine(Vec<(&'static str, Relation)>),
}

impl Relation {
    /// The other option of the relation, if any.
    fn other(self) -> Option<&'static str> {
        match self {
            Relation::Required => None,
            Relation::RequiredUnless(o) | Relation::Requires(o) | Relation::ConflictsWith(o) => {
                Some(o)
            }
        }
    }
}

/// Checks [`RELATIONS`] on what the command line (`on_cli`, ids) and the file set together.
fn check_relations(
    sub: &clap::Command,
    on_cli: &[String],
    file: &crate::config_file::Settings,
) -> Result<(), Violation> {
    use crate::config_file::ConfigFileError;
    let cli_sets = |id: &str| on_cli.iter().any(|c| c == id);
    // A setting the command line gives too is the command line's.
    let file_sets = |id: &str| file.get(id).filter(|s| s.present && !cli_sets(id));
    let present = |id: &str| cli_sets(id) || file_sets(id).is_some();
    let long = |id: &str| {
        sub.get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(Arg::get_long)
            .unwrap_or(id)
            .to_owned()
    };
    let error = |line, message| ConfigFileError::Relation {
        path: file.path.display().to_string(),
        line,
        message,
    };
    let mut file_errors = Vec::new();
    let mut cli_only = false;
    for &(id, rel) in RELATIONS {
        if !sub.get_arguments().any(|a| a.get_id() == id) {
            continue;
        }
        match rel {
            Relation::Required if !present(id) => cli_only = true,
            Relation::RequiredUnless(other) if !present(id) && !present(other) => cli_only = true,
            Relation::Requires(other) if present(id) && !present(other) => match file_sets(id) {
                Some(s) => {
                    let other = long(other);
                    file_errors.push(error(
                        s.line,
                        format!("'{}' needs '{other}' (in the file or as --{other})", s.key),
                    ));
                }
                None => cli_only = true,
            },
            // The command line wins over a file setting it conflicts with (see [`merge`]), so
            // a conflict is the file's alone or the command line's alone.
            Relation::ConflictsWith(other) if present(id) && present(other) => {
                match (file_sets(id), file_sets(other)) {
                    (Some(a), Some(b)) => {
                        let (first, last) = if a.line <= b.line { (a, b) } else { (b, a) };
                        file_errors.push(error(
                            last.line,
                            format!(
                                "'{}' cannot be used with '{}' (line {})",
                                last.key, first.key, first.line
                            ),
                        ));
                    }
                    _ => cli_only = true,
                }
            }
            _ => {}
        }
    }
    if let Some(e) = file_errors.into_iter().min_by_key(ConfigFileError::line) {
        return Err(Violation::File(e));
    }
    if !cli_only {
        return Ok(());
    }
    let untouched = RELATIONS
        .iter()
        .filter(|(id, rel)| file_sets(id).is_none() && rel.other().and_then(file_sets).is_none())
        .copied()
        .collect();
    Err(Violation::CommandLine(untouched))
}

/// The command line wins over a file setting it conflicts with: that setting is dropped.
fn drop_conflicting(file: &mut crate::config_file::Settings, on_cli: &[String]) {
    let cli_sets = |id: &str| on_cli.iter().any(|c| c == id);
    file.retain(|s| {
        !RELATIONS.iter().any(|&(a, r)| match r {
            Relation::ConflictsWith(b) => {
                (s.arg_id == a && cli_sets(b)) || (s.arg_id == b && cli_sets(a))
            }
            _ => false,
        })
    });
}

// ---------------------------------------------------------------------------------------------
// Defaults, and the configuration file's values.

/// An options struct as an empty command line leaves it: clap's defaults, as the definitions
/// write them, so that a key missing from the configuration file means what a missing option
/// means. Panics only if the definitions have a required option without a default, which the
/// tests would show.
fn clap_defaults<T: Args + FromArgMatches>() -> T {
    let cmd = T::augment_args(clap::Command::new("defaults").no_binary_name(true))
        .mut_args(|a| relations_off(a).required(false));
    cmd.try_get_matches_from(std::iter::empty::<OsString>())
        .and_then(|m| T::from_arg_matches(&m))
        .unwrap_or_else(|e| panic!("{} has no defaults: {e}", std::any::type_name::<T>()))
}

macro_rules! defaults_from_clap {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                clap_defaults()
            }
        }
    )*};
}
defaults_from_clap!(
    GlobalArgs,
    LiveArgs,
    MirrorArgs,
    MirrorBoundArgs,
    PolicyArgs,
    LimitArgs,
    StoreArgs
);

/// The serde adapters of the options, for the configuration file: each hands the file's value,
/// as text, to the parser clap runs on the same option. Numbers may be written as integers or
/// strings ("64M"), lists as arrays or delimited strings, a single value for a list.
/// `config_file::load` has already refused the TOML types an option does not take; these judge
/// the values.
mod from_file {
    use std::convert::Infallible;
    use std::fmt::Display;
    use std::str::FromStr;
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    /// One value as the command line would write it.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Str(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }

    impl Text {
        fn into_string(self) -> String {
            match self {
                Text::Str(s) => s,
                Text::Int(n) => n.to_string(),
                Text::Float(x) => x.to_string(),
                Text::Bool(b) => b.to_string(),
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Texts {
        One(Text),
        Many(Vec<Text>),
    }

    fn invalid<E: serde::de::Error>(text: &str, why: impl Display) -> E {
        E::custom(format!("invalid value '{text}': {why}"))
    }

    /// One value through `parse`.
    fn one<'de, D, T, E>(d: D, parse: impl Fn(&str) -> Result<T, E>) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        E: Display,
    {
        let t = Text::deserialize(d)?.into_string();
        parse(&t).map_err(|e| invalid(&t, e))
    }

    /// A list, each value split at `delimiter` as clap splits the option's, through `parse`.
    fn list<'de, D, T, E>(
        d: D,
        delimiter: Option<char>,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        E: Display,
    {
        let texts = match Texts::deserialize(d)? {
            Texts::One(t) => vec![t.into_string()],
            Texts::Many(v) => v.into_iter().map(Text::into_string).collect(),
        };
        let split = |t: &String| match delimiter {
            Some(c) => t.split(c).map(str::to_owned).collect(),
            None => vec![t.clone()],
        };
        texts
            .iter()
            .flat_map(split)
            .map(|t| parse(&t).map_err(|e| invalid(&t, e)))
            .collect()
    }

    /// [`list`] for an option whose default is its settings' (an `Option`): an empty list sets
    /// nothing, as on the command line.
    fn some_list<'de, D, T, E>(
        d: D,
        delimiter: Option<char>,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<Vec<T>>, D::Error>
    where
        D: Deserializer<'de>,
        E: Display,
    {
        list(d, delimiter, parse).map(|v| (!v.is_empty()).then_some(v))
    }

    /// A count (`-vv`): an integer from 0 to 255, or a boolean (true is 1).
    pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        match Text::deserialize(d)? {
            Text::Bool(b) => Ok(u8::from(b)),
            t => {
                let t = t.into_string();
                t.parse()
                    .map_err(|_| D::Error::custom(format!("{t} is not a count from 0 to 255")))
            }
        }
    }

    pub fn parsed<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<T, D::Error>
    where
        T::Err: Display,
    {
        one(d, T::from_str)
    }

    pub fn some_parsed<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error>
    where
        T::Err: Display,
    {
        one(d, T::from_str).map(Some)
    }

    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        one(d, super::parse_duration)
    }

    pub fn some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        duration(d).map(Some)
    }

    pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        one(d, super::parse_bytes)
    }

    pub fn some_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        bytes(d).map(Some)
    }

    /// `threads`: 1 to 256, as on the command line.
    pub fn some_threads<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        one(d, |s: &str| match s.trim().parse::<u16>() {
            Ok(n @ 1..=256) => Ok(n),
            _ => Err("write a number of threads from 1 to 256"),
        })
        .map(Some)
    }

    pub fn snaplen<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        one(d, super::parse_snaplen)
    }

    /// A `ValueEnum` option: one of its names.
    pub fn some_value_enum<'de, D: Deserializer<'de>, T: clap::ValueEnum>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        let names = || -> Vec<String> {
            T::value_variants()
                .iter()
                .filter_map(T::to_possible_value)
                .filter(|p| !p.is_hide_set())
                .map(|p| p.get_name().to_owned())
                .collect()
        };
        let parse = |s: &str| {
            T::from_str(s, false).map_err(|_| format!("possible values: {}", names().join(", ")))
        };
        one(d, parse).map(Some)
    }

    pub fn scope<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<crate::tracker::ScopeParts>, D::Error> {
        one(d, super::parse_scope).map(Some)
    }

    pub fn store<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<crate::fleet::StoreSpec>, D::Error> {
        one(d, super::parse_store).map(Some)
    }

    /// Words (the filter) or a repeatable option's values: an array, or one string.
    pub fn words<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        list(d, None, |s| Ok::<_, Infallible>(s.to_owned()))
    }

    /// Paths of a repeatable option: an array, or one string.
    pub fn paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<std::path::PathBuf>, D::Error> {
        list(d, None, |s| {
            Ok::<_, Infallible>(std::path::PathBuf::from(s))
        })
    }

    pub fn header_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        list(d, None, super::parse_header_name)
    }

    pub fn nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
        list(d, Some(','), super::parse_net)
    }

    pub fn methods<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        some_list(d, Some(','), super::parse_method)
    }

    pub fn statuses<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u16>>, D::Error> {
        some_list(d, Some(','), super::parse_status)
    }

    /// The mirror's bounds under `live`'s keys (`mirror-max-connections`): each key with
    /// [`super::LIVE_MIRROR_PREFIX`] taken off, so that the struct reads its own names.
    /// serde's `flatten` hands every key of the file to each flattened field; the struct
    /// ignores those not its own.
    pub fn live_mirror_bounds<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<super::MirrorBoundArgs, D::Error> {
        let mine: toml::Table = toml::Table::deserialize(d)?
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(super::LIVE_MIRROR_PREFIX)?.to_owned(), v)))
            .collect();
        super::MirrorBoundArgs::deserialize(toml::Value::Table(mine))
            .map_err(|e| D::Error::custom(e.message()))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// The command line, parsed: what to run, clap's matches of the command line alone (for
/// `check-config`), and the configuration file that was read, if any.
pub struct Parsed {
    pub cli: Cli,
    pub matches: clap::ArgMatches,
    pub file: Option<crate::config_file::Settings>,
}

impl Parsed {
    /// The configuration file that was read, if any.
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }
}

/// Why parsing stopped.
#[derive(Debug)]
pub enum ParseFail {
    /// clap's (help and version included): about the command line.
    Clap(clap::Error),
    /// The configuration file cannot be read or used.
    File(crate::config_file::ConfigFileError),
}

impl ParseFail {
    /// What to print: on stdout with exit 0 for help and version (see [`Self::is_usage_error`]),
    /// else on stderr with exit 2.
    pub fn message(&self) -> String {
        match self {
            ParseFail::Clap(e) => e.render().to_string(),
            ParseFail::File(e) => format!("idemwatch: {e}"),
        }
    }

    /// False for `--help` and `--version`, which are not errors.
    pub fn is_usage_error(&self) -> bool {
        match self {
            ParseFail::Clap(e) => e.use_stderr(),
            ParseFail::File(_) => true,
        }
    }

    /// Prints the message where it belongs (help and version: stdout).
    pub fn print(&self) {
        match self {
            ParseFail::Clap(e) if !e.use_stderr() => {
                let _ = e.print();
            }
            _ => eprintln!("{}", self.message().trim_end()),
        }
    }
}

/// The subcommand named on the command line, if it reads a configuration file.
pub fn config_subcommand(argv: &[OsString]) -> Option<&'static str> {
    let first = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy())
        .find(|a| !a.starts_with('-'))?;
    CONFIG_SUBCOMMANDS
        .into_iter()
        .find(|name| *name == first.as_ref())
}

fn command() -> clap::Command {
    Cli::command().version(crate::source::version_line())
}

/// Parses the command line (argv\[0\] first), merged with the configuration file for `live`
/// and `check-config`: the command line wins. Also what a SIGHUP re-reads.
pub fn parse(argv: &[OsString]) -> Result<Parsed, ParseFail> {
    let cmd = command();
    if config_subcommand(argv).is_none() {
        return parse_alone(cmd, argv);
    }
    // The command line first, so that clap reads --config, relations off (the file may
    // complete them). If it fails even so, clap says what it says without a file.
    let Ok(cli) = relaxed(cmd.clone()).try_get_matches_from(argv) else {
        return parse_alone(cmd, argv);
    };
    let explicit = cli
        .subcommand()
        .and_then(|(_, m)| m.get_one::<PathBuf>("config"))
        .cloned();
    let path = explicit.clone().unwrap_or_else(|| {
        PathBuf::from(crate::config_file::default_path(
            cli.subcommand_name().unwrap_or_default(),
        ))
    });
    match crate::config_file::read_config(&path, explicit.is_some()).map_err(ParseFail::File)? {
        Some(text) => merge(cmd, argv, cli, &path, &text),
        None => parse_alone(cmd, argv),
    }
}

/// [`parse`] with `text` as the configuration file at `path`, whatever `--config` says: for
/// tests and the fuzzer.
pub fn parse_with_file(argv: &[OsString], path: &Path, text: &str) -> Result<Parsed, ParseFail> {
    let cmd = command();
    match relaxed(cmd.clone()).try_get_matches_from(argv) {
        Ok(cli) => merge(cmd, argv, cli, path, text),
        Err(_) => parse_alone(cmd, argv),
    }
}

/// The command line alone, as clap parses it.
fn parse_alone(mut cmd: clap::Command, argv: &[OsString]) -> Result<Parsed, ParseFail> {
    let matches = cmd
        .try_get_matches_from_mut(argv)
        .map_err(ParseFail::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(ParseFail::Clap)?;
    Ok(Parsed {
        cli,
        matches,
        file: None,
    })
}

/// The file's settings filled into the option structs by serde, then the command line's
/// (`cli`, parsed with relations off) over them by clap: the options it gave, and only those,
/// replace the file's.
fn merge(
    cmd: clap::Command,
    argv: &[OsString],
    cli: clap::ArgMatches,
    path: &Path,
    text: &str,
) -> Result<Parsed, ParseFail> {
    let Some(name) = cli
        .subcommand_name()
        .and_then(|n| CONFIG_SUBCOMMANDS.into_iter().find(|c| *c == n))
    else {
        return parse_alone(cmd, argv);
    };
    let mut root = cmd.clone();
    root.build();
    let Some(sub) = root.find_subcommand(name) else {
        return parse_alone(cmd, argv);
    };
    let mut file = crate::config_file::load(&root, name, path, text).map_err(ParseFail::File)?;
    let mut root_m = cli.clone();
    let Some((_, mut sub_m)) = root_m.remove_subcommand() else {
        return parse_alone(cmd, argv);
    };
    let given = |m: &clap::ArgMatches, id: &str| {
        matches!(
            m.value_source(id),
            Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
        )
    };
    let on_cli: Vec<String> = sub
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .filter(|id| given(&sub_m, id))
        .collect();
    drop_conflicting(&mut file, &on_cli);
    let mut global: GlobalArgs = file.values().map_err(ParseFail::File)?;
    let mut command = match name {
        "live" => Command::Live(file.values().map_err(ParseFail::File)?),
        "mirror" => Command::Mirror(file.values().map_err(ParseFail::File)?),
        _ => Command::CheckConfig(file.values().map_err(ParseFail::File)?),
    };
    match check_relations(sub, &on_cli, &file) {
        Ok(()) => {}
        Err(Violation::File(e)) => return Err(ParseFail::File(e)),
        Err(Violation::CommandLine(untouched)) => {
            // clap's own error: the command line again, with the relations the file has no
            // part in (among which the broken ones).
            let strict = relaxed(cmd).mut_subcommand(name, |s| {
                s.mut_args(|a| apply_relations(a, untouched.iter()))
            });
            return Err(match strict.try_get_matches_from(argv) {
                Err(e) => ParseFail::Clap(e),
                Ok(_) => ParseFail::Clap(clap::Error::raw(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "the options given break a relation between them\n",
                )),
            });
        }
    }
    // What clap filled in itself is not the command line's: the file's (or the same default)
    // stays.
    for m in [&mut root_m, &mut sub_m] {
        let defaulted: Vec<String> = m
            .ids()
            .map(|id| id.to_string())
            .filter(|id| !given(m, id))
            .collect();
        for id in defaulted {
            let _ = m.try_clear_id(&id);
        }
    }
    global
        .update_from_arg_matches(&root_m)
        .map_err(ParseFail::Clap)?;
    match &mut command {
        Command::Live(a) | Command::CheckConfig(a) => a.update_from_arg_matches(&sub_m),
        Command::Mirror(a) => a.update_from_arg_matches(&sub_m),
        Command::Read(_) | Command::Report(_) | Command::Generate(_) => Ok(()),
    }
    .map_err(ParseFail::Clap)?;
    Ok(Parsed {
        cli: Cli { global, command },
        matches: cli,
        file: Some(file),
    })
}

/// What `check-config` prints: the effective settings of `live` as TOML, every option with its
/// value (from the command line, the file, or its default), passwords in store URLs hidden.
pub fn check_config_text(args: &LiveArgs, parsed: &Parsed) -> String {
    effective_text("check-config", &args.config(), parsed)
}

/// What `mirror --check-config` prints: [`check_config_text`] for the mirror.
pub fn mirror_check_config_text(args: &MirrorArgs, parsed: &Parsed) -> String {
    effective_text("mirror", &args.config(), parsed)
}

fn effective_text(subcommand: &str, config: &Config, parsed: &Parsed) -> String {
    let sub = parsed
        .matches
        .subcommand_matches(subcommand)
        .unwrap_or(&parsed.matches);
    let mut out = match parsed.config_file() {
        Some(p) => format!("# configuration file: {}\n", p.display()),
        None => "# no configuration file; defaults and command line\n".to_owned(),
    };
    let effective = crate::config_file::effective_toml(
        &Cli::command(),
        subcommand,
        sub,
        parsed.file.as_ref(),
        &settings_defaults(config),
    );
    // A store URL may carry a password: never printed.
    out.push_str(&crate::fleet::redact_passwords(&effective));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value, other than the default, for every option `live` and `mirror` share (policy,
    /// limits, store, globals).
    const SHARED_SAMPLES: &[(&str, &str)] = &[
        ("window", "\"1h\""),
        ("duplicate-window", "\"1s\""),
        ("churn-window", "\"1s\""),
        ("watch-methods", "\"PUT\""),
        ("require-key", "\"/x\""),
        ("missing-key", "\"off\""),
        ("key-header", "\"X-Id\""),
        ("reject-statuses", "[400]"),
        ("store-errors", "true"),
        ("redact-keys", "true"),
        ("max-keys", "5"),
        ("max-key-memory", "\"64M\""),
        ("scope", "\"host\""),
        ("redact-param", "\"t\""),
        ("max-flows", "5"),
        ("max-ooo-bytes", "5"),
        ("flow-timeout", "\"1s\""),
        ("max-head-bytes", "5"),
        ("max-headers", "5"),
        ("max-pending", "5"),
        ("max-fragment-sets", "5"),
        ("store", "\"redis://127.0.0.1:6379/0\""),
        ("store-prefix", "\"p\""),
        ("store-instance", "\"i\""),
        ("store-timeout", "\"1s\""),
        ("store-wait", "\"1s\""),
        ("store-max-inflight", "5"),
        ("store-ca", "\"/ca\""),
        ("store-cert", "\"/c\""),
        ("store-key", "\"/k\""),
        ("verbose", "2"),
        ("quiet", "true"),
    ];

    #[test]
    fn durations_are_written_as_the_help_always_wrote_them() {
        for (d, text) in [
            (Duration::from_secs(24 * 3600), "24h"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(200), "200ms"),
            (Duration::from_secs(90 * 60), "90m"),
            (Duration::from_nanos(1500), "1500ns"),
        ] {
            assert_eq!(duration_text(d), text);
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
    }

    fn help_of(sub: &str, id: &str) -> String {
        let mut cmd = Cli::command();
        cmd.build();
        let sub = cmd.find_subcommand(sub).expect("a subcommand");
        let arg = sub
            .get_arguments()
            .find(|a| a.get_id() == id)
            .expect("an option");
        arg.get_help().map(ToString::to_string).unwrap_or_default()
    }

    #[test]
    fn the_help_shows_the_settings_defaults_once() {
        for sub in ["read", "live", "check-config", "mirror"] {
            let h = help_of(sub, "window");
            assert!(h.ends_with("see that) [default: 24h]"), "{sub}: {h}");
            assert_eq!(h.matches("[default: ").count(), 1, "{sub}: {h}");
            let h = help_of(sub, "max_fragment_sets");
            assert!(
                h.ends_with("(fragments_dropped) [default: 4096]"),
                "{sub}: {h}"
            );
        }
        let h = help_of("live", "scope");
        assert!(h.ends_with("[default: host,credential,account]"), "{h}");
        let h = help_of("live", "missing_key");
        assert!(h.ends_with("[default: learned]"), "{h}");
    }

    #[test]
    fn the_live_mirror_has_the_mirror_commands_default_bounds() {
        let cli = Cli::try_parse_from([
            "idemwatch",
            "mirror",
            "--listen",
            "127.0.0.1:9080",
            "--insecure-plaintext",
        ])
        .expect("parses");
        let Command::Mirror(m) = cli.command else {
            panic!("not mirror")
        };
        assert_eq!(m.bounds.bounds(), MirrorBounds::DEFAULT);
        let cli = Cli::try_parse_from([
            "idemwatch",
            "live",
            "-i",
            "lo",
            "--mirror-listen",
            "127.0.0.1:9080",
            "--mirror-insecure-plaintext",
        ])
        .expect("parses");
        let Command::Live(l) = cli.command else {
            panic!("not live")
        };
        let e = l.mirror_endpoint().expect("complete").expect("a mirror");
        assert_eq!(e.bounds, MirrorBounds::DEFAULT);
        assert_eq!(e.tls_files, None);
    }

    #[test]
    fn the_live_mirror_takes_the_mirror_commands_bounds() {
        let bounds = MirrorBounds {
            max_connections: 3,
            handshake_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_millis(500),
            reorder_window: Duration::from_millis(20),
        };
        let cli = Cli::try_parse_from([
            "idemwatch",
            "mirror",
            "--listen",
            "127.0.0.1:9080",
            "--insecure-plaintext",
            "--max-connections",
            "3",
            "--handshake-timeout",
            "1s",
            "--idle-timeout",
            "2s",
            "--request-timeout",
            "500ms",
            "--reorder-window",
            "20ms",
        ])
        .expect("parses");
        let Command::Mirror(m) = cli.command else {
            panic!("not mirror")
        };
        assert_eq!(m.bounds.bounds(), bounds);
        let live = |cli: &[&str], text: &str| {
            let (_, l) = merged(cli, text);
            l.mirror_endpoint()
                .expect("complete")
                .expect("a mirror")
                .bounds
        };
        let on_cli = [
            "idemwatch",
            "live",
            "-i",
            "lo",
            "--mirror-listen",
            "127.0.0.1:9080",
            "--mirror-insecure-plaintext",
            "--mirror-max-connections",
            "3",
            "--mirror-handshake-timeout",
            "1s",
            "--mirror-idle-timeout",
            "2s",
            "--mirror-request-timeout",
            "500ms",
            "--mirror-reorder-window",
            "20ms",
        ];
        assert_eq!(live(&on_cli, ""), bounds);
        let in_file = "interface = \"lo\"\nmirror-listen = \"127.0.0.1:9080\"\n\
                       mirror-insecure-plaintext = true\nmirror-max-connections = 3\n\
                       mirror-handshake-timeout = \"1s\"\nmirror-idle-timeout = \"2s\"\n\
                       mirror-request-timeout = \"500ms\"\nmirror-reorder-window = \"20ms\"\n";
        assert_eq!(live(&["idemwatch", "live"], in_file), bounds);
        // The command line wins, option by option.
        let b = live(
            &["idemwatch", "live", "--mirror-max-connections", "9"],
            in_file,
        );
        assert_eq!(b.max_connections, 9);
        assert_eq!(b.request_timeout, Duration::from_millis(500));
        // The mirror's own names are no options of live.
        assert!(
            Cli::try_parse_from(["idemwatch", "live", "-i", "lo", "--max-connections", "3"])
                .is_err()
        );
        assert!(
            file_error(
                &["idemwatch", "live"],
                "interface = \"lo\"\nidle-timeout = \"1s\"\n"
            )
            .contains("unknown key 'idle-timeout'")
        );
        assert_eq!(
            file_error(
                &["idemwatch", "live"],
                "interface = \"lo\"\nmirror-idle-timeout = \"soon\"\n"
            ),
            "/etc/idemwatch/idemwatch.toml line 2: 'mirror-idle-timeout': invalid value 'soon': \
             expected number at 0; write a duration like 90s, 10m, 24h or 500ms"
        );
    }

    /// The merged `mirror` options, from its own file.
    fn merged_mirror(cli: &[&str], text: &str) -> MirrorArgs {
        let p = parse_with_file(&os(cli), Path::new(MIRROR_FILE), text)
            .unwrap_or_else(|f| panic!("{cli:?}: {}", f.message()));
        match p.cli.command {
            Command::Mirror(a) => a,
            other => panic!("not mirror: {other:?}"),
        }
    }

    const MIRROR_FILE: &str = "/etc/idemwatch/mirror.toml";

    #[test]
    fn the_mirror_reads_its_own_file_and_the_command_line_wins() {
        let text = "listen = \"127.0.0.1:9443\"\ncert = \"/etc/idemwatch/mirror.pem\"\n\
                    key = \"/etc/idemwatch/mirror.key\"\nmax-connections = 7\nwindow = \"1h\"\n\
                    output = \"/var/log/idemwatch/mirror.json\"\n";
        let m = merged_mirror(&["idemwatch", "mirror"], text);
        let e = m.endpoint().expect("an endpoint");
        assert_eq!(e.listen.port(), 9443);
        assert_eq!(e.bounds.max_connections, 7);
        assert_eq!(
            e.tls_files,
            Some((
                PathBuf::from("/etc/idemwatch/mirror.pem"),
                PathBuf::from("/etc/idemwatch/mirror.key")
            ))
        );
        assert_eq!(m.config().tracker.window, Duration::from_secs(3600));
        // The unit's command line: the certificate and key of its credentials win.
        let m = merged_mirror(
            &[
                "idemwatch",
                "mirror",
                "--cert",
                "/run/credentials/m/mirror.pem",
                "--key",
                "/run/credentials/m/mirror.key",
                "--max-connections",
                "9",
            ],
            text,
        );
        let e = m.endpoint().expect("an endpoint");
        assert_eq!(
            e.tls_files.map(|(c, _)| c),
            Some(PathBuf::from("/run/credentials/m/mirror.pem"))
        );
        assert_eq!(e.bounds.max_connections, 9);
        // --insecure-plaintext on the command line drops the file's certificate and key.
        let m = merged_mirror(&["idemwatch", "mirror", "--insecure-plaintext"], text);
        assert_eq!(m.endpoint().expect("an endpoint").tls_files, None);
    }

    #[test]
    fn mistakes_in_the_mirrors_file_name_their_line() {
        let error = |text: &str| match parse_with_file(
            &os(&["idemwatch", "mirror"]),
            Path::new(MIRROR_FILE),
            text,
        ) {
            Err(ParseFail::File(e)) => e.to_string(),
            Err(ParseFail::Clap(e)) => panic!("clap's error: {e}"),
            Ok(_) => panic!("{text:?} parsed"),
        };
        let base = "listen = \"127.0.0.1:9443\"\ninsecure-plaintext = true\n";
        assert_eq!(
            error(&format!("{base}max-conections = 5\n")),
            "/etc/idemwatch/mirror.toml line 3: unknown key 'max-conections'; 'idemwatch mirror \
             --help' lists the options (did you mean 'max-connections'?)"
        );
        assert_eq!(
            error(&format!("{base}request-timeout = \"later\"\n")),
            "/etc/idemwatch/mirror.toml line 3: 'request-timeout': invalid value 'later': \
             expected number at 0; write a duration like 90s, 10m, 24h or 500ms"
        );
        assert_eq!(
            error(&format!("{base}check-config = true\n")),
            "/etc/idemwatch/mirror.toml line 3: 'check-config' cannot be set in the \
             configuration file; give it on the command line"
        );
        assert_eq!(
            error(&format!("{base}cert = \"c.pem\"\n")),
            "/etc/idemwatch/mirror.toml line 3: 'cert' cannot be used with \
             'insecure-plaintext' (line 2)"
        );
        // live's keys are not the mirror's.
        assert!(error(&format!("{base}interface = \"lo\"\n")).contains("unknown key 'interface'"));
        // And the mirror's --check-config is no key of live's file, nor an option of live.
        assert!(
            file_error(
                &["idemwatch", "live"],
                "interface = \"lo\"\ncheck-config = true\n"
            )
            .contains("unknown key 'check-config'")
        );
    }

    // -----------------------------------------------------------------------------------------
    // The configuration file merged with the command line.

    const FILE: &str = "/etc/idemwatch/idemwatch.toml";

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn with_file(cli: &[&str], text: &str) -> Result<Parsed, ParseFail> {
        parse_with_file(&os(cli), Path::new(FILE), text)
    }

    /// The merged `live` (or `check-config`) options and the global ones.
    fn merged(cli: &[&str], text: &str) -> (GlobalArgs, LiveArgs) {
        let p = with_file(cli, text).unwrap_or_else(|f| panic!("{cli:?}: {}", f.message()));
        match p.cli.command {
            Command::Live(a) | Command::CheckConfig(a) => (p.cli.global, a),
            other => panic!("not live: {other:?}"),
        }
    }

    fn file_error(cli: &[&str], text: &str) -> String {
        match with_file(cli, text) {
            Err(ParseFail::File(e)) => e.to_string(),
            Err(ParseFail::Clap(e)) => panic!("clap's error: {e}"),
            Ok(_) => panic!("{cli:?} {text:?} parsed"),
        }
    }

    fn clap_error(cli: &[&str], text: &str) -> String {
        match with_file(cli, text) {
            Err(ParseFail::Clap(e)) => e.render().to_string(),
            Err(ParseFail::File(e)) => panic!("the file's error: {e}"),
            Ok(_) => panic!("{cli:?} {text:?} parsed"),
        }
    }

    #[test]
    fn a_key_memory_budget_sets_the_key_limit_at_the_most_a_key_costs() {
        let limit = |cli: &[&str], text: &str| {
            let (_, a) = merged(cli, text);
            let mut c = Config::default();
            a.policy.apply(&mut c);
            c.tracker.max_keys
        };
        let per_key = crate::tracker::BYTES_PER_KEY as usize;
        assert_eq!(limit(&["idemwatch", "live", "-i", "lo"], ""), 1_000_000);
        assert_eq!(
            limit(
                &["idemwatch", "live", "-i", "lo", "--max-key-memory", "1G"],
                ""
            ),
            (1 << 30) / per_key
        );
        assert_eq!(
            limit(
                &["idemwatch", "live", "-i", "lo"],
                "max-key-memory = \"64M\"\n"
            ),
            (64 << 20) / per_key
        );
        // A budget too small for one key still tracks one.
        assert_eq!(
            limit(
                &["idemwatch", "live", "-i", "lo", "--max-key-memory", "10"],
                ""
            ),
            1
        );
        // Both say how many keys: the command line's wins over the file's other one...
        assert_eq!(
            limit(
                &["idemwatch", "live", "-i", "lo", "--max-key-memory", "1G"],
                "max-keys = 5\n"
            ),
            (1 << 30) / per_key
        );
        assert_eq!(
            limit(
                &["idemwatch", "live", "-i", "lo", "--max-keys", "5"],
                "max-key-memory = \"1G\"\n"
            ),
            5
        );
        // ...and both on the command line is clap's error.
        let e = clap_error(
            &[
                "idemwatch",
                "live",
                "-i",
                "lo",
                "--max-key-memory",
                "1G",
                "--max-keys",
                "5",
            ],
            "",
        );
        assert!(e.contains("cannot be used with"), "{e}");
    }

    #[test]
    fn the_file_supplies_a_required_option() {
        let (_, a) = merged(&["idemwatch", "live"], "interface = \"eth0\"\n");
        assert_eq!(a.interface.as_deref(), Some("eth0"));
    }

    #[test]
    fn the_command_line_wins_over_a_single_value() {
        let text = "interface = \"eth0\"\nwindow = \"24h\"\nmax-keys = 500000\n";
        for cli in [
            &["idemwatch", "live", "-i", "eth1"][..],
            &["idemwatch", "live", "--interface", "eth1"],
            &["idemwatch", "live", "--interface=eth1"],
            &["idemwatch", "live", "-ieth1"],
            &["idemwatch", "-v", "live", "-qieth1"],
        ] {
            let (_, a) = merged(cli, text);
            assert_eq!(a.interface.as_deref(), Some("eth1"), "{cli:?}");
            assert_eq!(a.policy.window, Some(Duration::from_secs(24 * 3600)));
            assert_eq!(a.policy.max_keys, Some(500_000));
        }
        let (_, a) = merged(&["idemwatch", "live", "--window", "1h"], text);
        assert_eq!(a.interface.as_deref(), Some("eth0"));
        assert_eq!(a.policy.window, Some(Duration::from_secs(3600)));
        // A default of clap's is no command-line setting: the file's value stays.
        let (_, a) = merged(
            &["idemwatch", "live"],
            "interface = \"eth0\"\nsnaplen = 9000\nstats-interval = \"10s\"\n",
        );
        assert_eq!(a.snaplen, 9000);
        assert_eq!(a.stats_interval, Duration::from_secs(10));
        let (_, a) = merged(
            &["idemwatch", "live", "--snaplen", "262144"],
            "interface = \"eth0\"\nsnaplen = 9000\n",
        );
        assert_eq!(a.snaplen, 262_144);
    }

    #[test]
    fn the_command_line_wins_over_a_flag_and_a_count() {
        let text = "interface = \"eth0\"\npromisc = false\nlog-requests = true\nverbose = 3\n\
                    quiet = true\n";
        let (g, a) = merged(&["idemwatch", "live"], text);
        assert!(!a.promisc);
        assert!(a.log_requests);
        assert_eq!(g.verbose, 3);
        assert!(g.quiet);
        let (_, a) = merged(&["idemwatch", "live", "--promisc"], text);
        assert!(a.promisc);
        // -v on the command line, before or after the subcommand, wins over the file's count.
        for cli in [
            &["idemwatch", "-v", "live"][..],
            &["idemwatch", "live", "-v"],
        ] {
            let (g, _) = merged(cli, text);
            assert_eq!(g.verbose, 1, "{cli:?}");
            assert!(g.quiet, "{cli:?}");
        }
    }

    #[test]
    fn the_command_line_wins_over_a_list() {
        let text = "interface = \"eth0\"\nwatch-methods = [\"POST\", \"PUT\"]\n\
                    require-key = [\"/v1/charges\", \"/v1/refunds\"]\n\
                    mirror-trusted-proxies = \"10.0.0.0/8,127.0.0.1\"\n";
        let (_, a) = merged(&["idemwatch", "live"], text);
        assert_eq!(
            a.policy.watch_methods,
            Some(vec!["POST".to_owned(), "PUT".to_owned()])
        );
        assert_eq!(a.policy.require_key, ["/v1/charges", "/v1/refunds"]);
        assert_eq!(a.mirror_trusted_proxies.len(), 2);
        // The command line's list replaces the file's, repeatable or delimited.
        let (_, a) = merged(
            &[
                "idemwatch",
                "live",
                "--require-key",
                "/z",
                "--watch-methods",
                "PATCH",
                "--mirror-trusted-proxies=192.0.2.0/24",
            ],
            text,
        );
        assert_eq!(a.policy.require_key, ["/z"]);
        assert_eq!(a.policy.watch_methods, Some(vec!["PATCH".to_owned()]));
        assert_eq!(
            a.mirror_trusted_proxies,
            ["192.0.2.0/24".parse::<ipnet::IpNet>().expect("a net")]
        );
    }

    #[test]
    fn the_command_line_wins_over_the_filter() {
        let text = "interface = \"eth0\"\nfilter = \"tcp port 80\"\n";
        let (_, a) = merged(&["idemwatch", "live"], text);
        assert_eq!(a.filter().as_deref(), Some("tcp port 80"));
        // An empty `--` sets no filter: the file's stays.
        let (_, a) = merged(&["idemwatch", "live", "--"], text);
        assert_eq!(a.filter().as_deref(), Some("tcp port 80"));
        let (_, a) = merged(&["idemwatch", "live", "--", "port", "8080"], text);
        assert_eq!(a.filter, ["port", "8080"]);
        let (_, a) = merged(
            &["idemwatch", "live"],
            "interface = \"eth0\"\nfilter = [\"tcp\", \"port\", \"80\"]\n",
        );
        assert_eq!(a.filter().as_deref(), Some("tcp port 80"));
    }

    #[test]
    fn file_values_go_through_the_options_own_parsers() {
        let (g, a) = merged(
            &["idemwatch", "live"],
            "interface = \"eth0\"\nbuffer-size = \"128M\"\nmax-keys = \"10\"\n\
             max-flows = 0x10\nmax-headers = 1_0\nwatch-methods = \"post,PUT\"\n\
             reject-statuses = [\"400,409\", 422]\nkey-header = \"PayPal-Request-Id\"\n\
             missing-key = \"off\"\nscope = \"host\"\ndrop-warn-ratio = 1\nverbose = true\n",
        );
        assert_eq!(a.buffer_size, 128 << 20);
        assert_eq!(a.policy.max_keys, Some(10));
        assert_eq!(a.limits.max_flows, Some(16));
        assert_eq!(a.limits.max_headers, Some(10));
        assert_eq!(
            a.policy.watch_methods,
            Some(vec!["POST".to_owned(), "PUT".to_owned()])
        );
        assert_eq!(a.policy.reject_statuses, Some(vec![400, 409, 422]));
        assert_eq!(a.policy.key_header, ["paypal-request-id"]);
        assert_eq!(
            a.policy.missing_key,
            Some(crate::tracker::MissingKeyMode::Off)
        );
        assert_eq!(a.policy.scope, parse_scope("host").ok());
        assert!((a.drop_warn_ratio - 1.0).abs() < f64::EPSILON);
        assert_eq!(g.verbose, 1);
        let (_, a) = merged(
            &["idemwatch", "live"],
            "interface = \"eth0\"\nbuffer-size = 1048576\nwatch-methods = []\n",
        );
        assert_eq!(a.buffer_size, 1 << 20);
        // An empty list sets nothing: the settings' default stays.
        assert_eq!(a.policy.watch_methods, None);
        assert_eq!(
            file_error(
                &["idemwatch", "live"],
                "interface = \"eth0\"\nmissing-key = \"sometimes\"\n"
            ),
            "/etc/idemwatch/idemwatch.toml line 2: 'missing-key': invalid value 'sometimes': \
             possible values: learned, all, off"
        );
        assert_eq!(
            file_error(&["idemwatch", "live"], "\nmax-keys = -1\n"),
            "/etc/idemwatch/idemwatch.toml line 2: 'max-keys': invalid value '-1': invalid \
             digit found in string"
        );
    }

    #[test]
    fn the_file_satisfies_a_relation_the_command_line_needs() {
        let (_, a) = merged(
            &["idemwatch", "check-config", "--store-prefix", "y"],
            "interface = \"lo\"\nstore = \"memory\"\n",
        );
        let store = a.store.config().expect("a store");
        assert_eq!(store.prefix, "y");
        // And the other way round.
        let (_, a) = merged(
            &["idemwatch", "live", "-i", "lo", "--store", "memory"],
            "store-prefix = \"x\"\nstore-cert = \"c.pem\"\nstore-key = \"k.pem\"\n",
        );
        assert_eq!(a.store.store_prefix, "x");
        assert_eq!(a.store.store_key.as_deref(), Some(Path::new("k.pem")));
        // --list-interfaces in the file stands for the interface.
        let (_, a) = merged(&["idemwatch", "live"], "list-interfaces = true\n");
        assert!(a.list_interfaces);
    }

    #[test]
    fn a_relation_the_file_breaks_names_the_line() {
        assert_eq!(
            file_error(
                &["idemwatch", "check-config"],
                "interface = \"lo\"\nstore-prefix = \"x\"\n"
            ),
            "/etc/idemwatch/idemwatch.toml line 2: 'store-prefix' needs 'store' (in the file \
             or as --store)"
        );
        assert_eq!(
            file_error(
                &["idemwatch", "live", "-i", "lo", "--store", "memory"],
                "\nstore-cert = \"c.pem\"\n"
            ),
            "/etc/idemwatch/idemwatch.toml line 2: 'store-cert' needs 'store-key' (in the file \
             or as --store-key)"
        );
        // A setting the command line gives too is the command line's: clap says it.
        let e = clap_error(
            &[
                "idemwatch",
                "check-config",
                "-i",
                "lo",
                "--store-prefix",
                "y",
            ],
            "store-prefix = \"x\"\n",
        );
        assert!(e.contains("--store <URL>"), "{e}");
    }

    #[test]
    fn a_relation_the_command_line_breaks_is_claps_own_error() {
        for cli in [
            &["idemwatch", "check-config", "-i", "lo", "--store-cert", "c"][..],
            &["idemwatch", "live", "--store-prefix", "y"],
            &["idemwatch", "check-config"],
        ] {
            let alone = match parse_alone(command(), &os(cli)) {
                Err(ParseFail::Clap(e)) => e.render().to_string(),
                _ => panic!("{cli:?} parsed"),
            };
            assert_eq!(clap_error(cli, "max-keys = 5\n"), alone, "{cli:?}");
        }
        // What the file sets is not in the usage line.
        let e = clap_error(
            &["idemwatch", "check-config", "--store-prefix", "y"],
            "interface = \"lo\"\n",
        );
        assert!(
            e.contains("the following required arguments were not provided:\n  --store <URL>\n"),
            "{e}"
        );
        assert!(
            e.contains("Usage: idemwatch check-config --store <URL> --store-prefix <PREFIX>"),
            "{e}"
        );
    }

    #[test]
    fn a_file_setting_conflicting_with_the_command_line_is_dropped() {
        // The mirror's options have conflicts: checked as `live` would, were they its own.
        let mut root = Cli::command();
        root.build();
        let mirror = root.find_subcommand("mirror").expect("mirror");
        let text = "listen = \"127.0.0.1:9443\"\ninsecure-plaintext = true\ncert = \"c.pem\"\n";
        let load =
            || crate::config_file::load(&root, "mirror", Path::new(FILE), text).expect("loads");
        let mut file = load();
        let on_cli = vec!["key".to_owned()];
        drop_conflicting(&mut file, &on_cli);
        let kept: Vec<&str> = file.settings.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(kept, ["listen", "cert"]);
        assert!(check_relations(mirror, &on_cli, &file).is_ok());
        let m: MirrorArgs = file.values().expect("values");
        assert!(!m.insecure_plaintext);
        // Both in the file: the later line is at fault.
        let file = load();
        match check_relations(mirror, &[], &file) {
            Err(Violation::File(e)) => assert_eq!(
                e.to_string(),
                "/etc/idemwatch/idemwatch.toml line 3: 'cert' cannot be used with \
                 'insecure-plaintext' (line 2)"
            ),
            _ => panic!("no conflict"),
        }
    }

    #[test]
    fn a_bad_value_in_the_file_names_its_line_and_the_command_line_values_are_claps() {
        assert_eq!(
            file_error(
                &["idemwatch", "check-config"],
                "interface = \"lo\"\nsnaplen = 100\n"
            ),
            "/etc/idemwatch/idemwatch.toml line 2: 'snaplen': invalid value '100': 100 is not \
             in 1514..=2147483647"
        );
        let e = clap_error(
            &["idemwatch", "check-config", "--snaplen", "100"],
            "interface = \"lo\"\n",
        );
        assert!(
            e.starts_with(
                "error: invalid value '100' for '--snaplen <BYTES>': 100 is not in \
                 1514..=2147483647\n"
            ),
            "{e}"
        );
        // An unknown key is an error even when the command line sets everything.
        let e = file_error(&["idemwatch", "live", "-i", "eth0"], "promisk = true\n");
        assert!(e.contains("did you mean 'promisc'?"), "{e}");
    }

    #[test]
    fn help_and_other_subcommands_pass_the_file_by() {
        let text = "interface = \"eth0\"\nbogus = 1\n";
        assert!(matches!(
            with_file(&["idemwatch", "live", "--help"], text),
            Err(ParseFail::Clap(e)) if !e.use_stderr()
        ));
        assert!(matches!(
            with_file(&["idemwatch", "--version"], text),
            Err(ParseFail::Clap(e)) if !e.use_stderr()
        ));
        let p = with_file(&["idemwatch", "read", "x.pcap"], text).expect("read parses");
        assert!(p.file.is_none());
        assert!(matches!(p.cli.command, Command::Read(_)));
    }

    #[test]
    fn the_snaplen_parser_says_what_claps_ranged_parser_said() {
        assert_eq!(parse_snaplen("1514"), Ok(1514));
        assert_eq!(
            parse_snaplen("100"),
            Err("100 is not in 1514..=2147483647".to_owned())
        );
        assert_eq!(
            parse_snaplen("3000000000"),
            Err("3000000000 is not in 1514..=2147483647".to_owned())
        );
        assert_eq!(
            parse_snaplen("x"),
            Err("invalid digit found in string".to_owned())
        );
    }

    #[test]
    fn the_definitions_and_relations_hold_together() {
        Cli::command().debug_assert();
        let mut root = Cli::command();
        root.build();
        for (id, rel) in RELATIONS {
            let in_cmds: Vec<&clap::Command> = root
                .get_subcommands()
                .filter(|c| c.get_arguments().any(|a| a.get_id() == *id))
                .collect();
            assert!(!in_cmds.is_empty(), "{id} is no option");
            for c in in_cmds {
                if let Some(o) = rel.other() {
                    assert!(c.get_arguments().any(|a| a.get_id() == o), "{id}: {o}");
                }
            }
        }
    }

    #[test]
    fn the_structs_defaults_are_claps() {
        let a = LiveArgs::default();
        assert_eq!(a.snaplen, 262_144);
        assert_eq!(a.buffer_size, 64 << 20);
        assert_eq!(a.stats_interval, Duration::from_secs(60));
        assert_eq!(a.interface, None);
        assert_eq!(a.store.store_prefix, store_defaults().prefix);
        assert_eq!(a.store.store_timeout, store_defaults().timeout);
        assert_eq!(a.policy.window, None);
        assert_eq!(MirrorArgs::default().bounds.bounds(), MirrorBounds::DEFAULT);
        assert_eq!(MirrorArgs::default().listen, None);
        assert_eq!(GlobalArgs::default().verbose, 0);
        // The file's keys are serde's names of the fields: the long option is the field's
        // name in kebab case.
        let mut root = Cli::command();
        root.build();
        for sub in ["live", "mirror"] {
            let name = sub;
            let sub = root.find_subcommand(sub).expect("a subcommand");
            for a in sub.get_arguments() {
                if let Some(long) = a.get_long() {
                    let id = a.get_id().as_str();
                    // live's names of the mirror's bounds are prefixed; their ids are not.
                    let prefix = if name == "live" && mirror_bound_ids().iter().any(|b| b == id) {
                        LIVE_MIRROR_PREFIX
                    } else {
                        ""
                    };
                    assert_eq!(long, format!("{prefix}{}", id.replace('_', "-")));
                }
            }
        }
        assert_eq!(mirror_bound_ids().len(), 5);
    }

    /// A value, other than the default, for every option of `live`: each reaches the options
    /// from the file.
    #[test]
    fn every_option_of_live_can_be_set_in_the_file() {
        let samples: &[(&str, &str)] = &[
            ("interface", "\"eth9\""),
            ("list-interfaces", "true"),
            ("filter", "\"tcp\""),
            ("promisc", "true"),
            ("snaplen", "9000"),
            ("buffer-size", "\"1M\""),
            ("stats-interval", "\"1s\""),
            ("metrics-listen", "\"127.0.0.1:9464\""),
            ("drop-warn-ratio", "0.5"),
            ("state-dir", "\"/s\""),
            ("state-interval", "\"1s\""),
            ("user", "\"nobody\""),
            ("log-requests", "true"),
            ("output", "\"/o\""),
            ("format", "\"text\""),
            ("threads", "3"),
            ("tls-keylog", "[\"/run/app/sslkeys.log\", \"/k2\"]"),
            ("mirror-listen", "\"127.0.0.1:1\""),
            ("mirror-cert", "\"/c\""),
            ("mirror-key", "\"/k\""),
            ("mirror-client-ca", "\"/ca\""),
            ("mirror-insecure-plaintext", "true"),
            ("mirror-trusted-proxies", "\"10.0.0.0/8\""),
            ("mirror-max-connections", "5"),
            ("mirror-handshake-timeout", "\"1s\""),
            ("mirror-idle-timeout", "\"1s\""),
            ("mirror-request-timeout", "\"1s\""),
            ("mirror-reorder-window", "\"7ms\""),
        ];
        let samples: Vec<(&str, &str)> = samples.iter().chain(SHARED_SAMPLES).copied().collect();
        let mut root = Cli::command();
        root.build();
        let live = root.find_subcommand("live").expect("live");
        for a in live.get_arguments() {
            let key = a
                .get_long()
                .map_or_else(|| a.get_id().to_string(), str::to_owned);
            let set = samples.iter().any(|(k, _)| *k == key);
            assert!(
                set || ["config", "help"].contains(&key.as_str()),
                "no sample: {key}"
            );
        }
        // What some options need, then each sample in turn over it.
        let base = [
            ("interface", "\"lo\""),
            ("store", "\"memory\""),
            ("store-cert", "\"/c0\""),
            ("store-key", "\"/k0\""),
        ];
        let text = |sample: Option<(&str, &str)>| -> String {
            let mut lines: Vec<(&str, &str)> = base
                .iter()
                .copied()
                .filter(|(k, _)| sample.is_none_or(|(s, _)| s != *k))
                .collect();
            lines.extend(sample);
            lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
        };
        let plain = format!("{:?}", merged(&["idemwatch", "live"], &text(None)));
        for &(key, value) in &samples {
            let set = format!(
                "{:?}",
                merged(&["idemwatch", "live"], &text(Some((key, value))))
            );
            assert_ne!(set, plain, "{key} = {value} changes nothing");
        }
    }

    /// The same for `mirror` and its own file.
    #[test]
    fn every_option_of_mirror_can_be_set_in_the_file() {
        let samples: &[(&str, &str)] = &[
            ("listen", "\"127.0.0.1:2\""),
            ("cert", "\"/c\""),
            ("key", "\"/k\""),
            ("client-ca", "\"/ca\""),
            ("insecure-plaintext", "true"),
            ("trusted-proxies", "\"10.0.0.0/8\""),
            ("max-connections", "5"),
            ("handshake-timeout", "\"1s\""),
            ("idle-timeout", "\"1s\""),
            ("request-timeout", "\"1s\""),
            ("reorder-window", "\"7ms\""),
            ("metrics-listen", "\"127.0.0.1:9465\""),
            ("log-requests", "true"),
            ("output", "\"/o\""),
            ("format", "\"text\""),
        ];
        let samples: Vec<(&str, &str)> = samples.iter().chain(SHARED_SAMPLES).copied().collect();
        let mut root = Cli::command();
        root.build();
        let mirror = root.find_subcommand("mirror").expect("mirror");
        for a in mirror.get_arguments() {
            let key = a
                .get_long()
                .map_or_else(|| a.get_id().to_string(), str::to_owned);
            let set = samples.iter().any(|(k, _)| *k == key);
            assert!(
                set || ["config", "check-config", "help"].contains(&key.as_str()),
                "no sample: {key}"
            );
        }
        let base = [
            ("listen", "\"127.0.0.1:1\""),
            ("cert", "\"/c0\""),
            ("key", "\"/k0\""),
            ("store", "\"memory\""),
            ("store-cert", "\"/c0\""),
            ("store-key", "\"/k0\""),
        ];
        let text = |sample: Option<(&str, &str)>| -> String {
            let plaintext = sample.is_some_and(|(k, _)| k == "insecure-plaintext");
            let mut lines: Vec<(&str, &str)> = base
                .iter()
                .copied()
                .filter(|(k, _)| sample.is_none_or(|(s, _)| s != *k))
                // Plain TCP takes no certificate.
                .filter(|(k, _)| !(plaintext && ["cert", "key"].contains(k)))
                .collect();
            lines.extend(sample);
            lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
        };
        let run = |t: &str| -> String {
            let p = parse_with_file(&os(&["idemwatch", "mirror"]), Path::new(MIRROR_FILE), t)
                .unwrap_or_else(|f| panic!("{t}: {}", f.message()));
            format!("{:?}", (p.cli.global, p.cli.command))
        };
        let plain = run(&text(None));
        for &(key, value) in &samples {
            assert_ne!(
                run(&text(Some((key, value)))),
                plain,
                "{key} = {value} changes nothing"
            );
        }
    }
}
