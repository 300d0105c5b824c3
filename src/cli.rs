//! Command line: clap definitions and all help text. Turns arguments (merged with the
//! configuration file for `live` and `check-config`) into a [`Config`] and the settings of each
//! command. Defaults are the stages' own (see [`settings_defaults`]), shown in the help from
//! there. Running the commands is left to `main.rs` and the pipeline.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{Config, Limits};
use crate::mirror::{MirrorBounds, MirrorEndpoint};

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

Response-side kinds stay silent: the mirror never sees the API's answers.";

#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Address and port to listen on, e.g. 127.0.0.1:9443.
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,

    /// Server certificate chain (PEM).
    #[arg(
        long,
        value_name = "PEM",
        required_unless_present = "insecure_plaintext"
    )]
    pub cert: Option<PathBuf>,

    /// Server private key (PEM).
    #[arg(
        long,
        value_name = "PEM",
        required_unless_present = "insecure_plaintext"
    )]
    pub key: Option<PathBuf>,

    /// Require client certificates signed by these CAs (PEM): mutual TLS. A client without a
    /// valid certificate is refused and counted (mirror_tls_errors).
    #[arg(long, value_name = "PEM")]
    pub client_ca: Option<PathBuf>,

    /// Plain TCP, no TLS: only where the path to idemwatch is already private.
    #[arg(long, conflicts_with_all = ["cert", "key", "client_ca"])]
    pub insecure_plaintext: bool,

    /// Peers (gateways) whose X-Forwarded-For, X-Real-IP or Forwarded header names the client,
    /// comma-separated CIDRs or addresses; from other peers these headers are ignored and the
    /// peer is the client.
    #[arg(long, value_name = "CIDRS", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    #[command(flatten)]
    pub bounds: MirrorBoundArgs,

    /// Serve the counters at http://ADDR/metrics in the Prometheus text format, e.g.
    /// 127.0.0.1:9464 [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Write one "event_type":"http" line per mirrored request.
    #[arg(long)]
    pub log_requests: bool,

    /// Write events to FILE (appended) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub store: StoreArgs,
}

/// The mirror endpoint's bounds as options: one definition for both commands that run the
/// endpoint. `mirror` takes them as options; the endpoint of `live --mirror-listen` runs with
/// their defaults, the mirror's own [`mirror::MirrorBounds::DEFAULT`].
#[derive(Debug, Clone, PartialEq, Args)]
pub struct MirrorBoundArgs {
    /// Most connections open at once; more are closed at once and counted (mirror_refused).
    #[arg(long, value_name = "N", default_value_t = MirrorBounds::DEFAULT.max_connections)]
    pub max_connections: usize,

    /// A TLS handshake must complete within this.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          default_value = duration_text(MirrorBounds::DEFAULT.handshake_timeout))]
    pub handshake_timeout: Duration,

    /// A connection silent this long is closed.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          default_value = duration_text(MirrorBounds::DEFAULT.idle_timeout))]
    pub idle_timeout: Duration,

    /// A request must be whole this long after its first byte (slow senders are closed).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          default_value = duration_text(MirrorBounds::DEFAULT.request_timeout))]
    pub request_timeout: Duration,
}

impl MirrorBoundArgs {
    pub fn bounds(&self) -> MirrorBounds {
        MirrorBounds {
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
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
    /// The endpoint these options describe (clap requires both TLS files unless
    /// --insecure-plaintext).
    pub fn endpoint(&self) -> MirrorEndpoint {
        MirrorEndpoint {
            listen: self.listen,
            tls_files: tls_files(self.insecure_plaintext, &self.cert, &self.key),
            client_ca: self.client_ca.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            bounds: self.bounds.bounds(),
        }
    }

    pub fn config(&self) -> Config {
        let mut c = Config {
            log_requests: self.log_requests,
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

#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE",
          help = format!("Configuration file (TOML) [default: {DEFAULT_CONFIG} when it exists]"))]
    pub config: Option<PathBuf>,

    /// Interface to capture on (any: every interface, Linux cooked capture).
    #[arg(
        short,
        long,
        value_name = "IFACE",
        required_unless_present = "list_interfaces"
    )]
    pub interface: Option<String>,

    /// List the interfaces that can be captured on, and exit.
    #[arg(long)]
    pub list_interfaces: bool,

    /// BPF capture filter (after --), e.g. -- tcp port 80.
    #[arg(last = true, value_name = "FILTER")]
    pub filter: Vec<String>,

    /// Put the interface in promiscuous mode (needed on a SPAN port that is not the host's own
    /// traffic).
    #[arg(long)]
    pub promisc: bool,

    /// Bytes captured per packet; whole packets are needed to see whole requests.
    #[arg(long, value_name = "BYTES", default_value_t = 262_144,
          value_parser = clap::value_parser!(i32).range(1514..))]
    pub snaplen: i32,

    /// Kernel capture buffer, in bytes (suffixes K, M, G); bursts overflow a small one.
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = parse_bytes)]
    pub buffer_size: u64,

    /// Write an "event_type":"stats" line this often (0: never).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub stats_interval: Duration,

    /// Serve the counters of the stats lines at http://ADDR/metrics in the Prometheus text
    /// format, e.g. 127.0.0.1:9464 [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Log a warning when more than this share of packets was dropped in a stats interval.
    #[arg(long, value_name = "RATIO", default_value_t = 0.001)]
    pub drop_warn_ratio: f64,

    /// Directory where tracked keys are saved (on shutdown and every --state-interval) and
    /// loaded from at start, so that a restart forgets nothing [default: none, not saved].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// How often tracked keys are saved to --state-dir.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
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

    /// Also run the mirror endpoint on ADDR, feeding the same tracker (see `idemwatch mirror`).
    #[arg(
        long,
        value_name = "ADDR",
        help_heading = "Mirror endpoint in the same daemon"
    )]
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
    pub mirror_trusted_proxies: Vec<ipnet::IpNet>,

    #[command(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub store: StoreArgs,
}

impl LiveArgs {
    /// The mirror endpoint of `--mirror-listen`, if any, with the mirror's default bounds; an
    /// error when it lacks its certificate and key.
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
            bounds: MirrorBounds::DEFAULT,
        }))
    }

    pub fn config(&self) -> Config {
        let mut c = Config {
            log_requests: self.log_requests,
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

    /// Flow workers (reassembly and HTTP run on this many threads; the output is the same
    /// whatever the number) [default: the cores available].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    #[command(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub store: StoreArgs,
}

/// The idempotency policy: windows, watched endpoints, key headers, scope.
#[derive(Debug, Args)]
#[command(next_help_heading = "Policy", mut_args = with_settings_default)]
pub struct PolicyArgs {
    /// How long a key is remembered; a retry after it is late_retry (keys are kept one more
    /// window to see that).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub window: Option<Duration>,

    /// Identical keyless requests within this are keyless_duplicate.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duplicate_window: Option<Duration>,

    /// A new key for the same request within this after the first attempt ended unanswered,
    /// aborted, 5xx or 409 is key_churn.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub churn_window: Option<Duration>,

    /// Methods whose keyless requests are judged, comma-separated.
    #[arg(long, value_name = "METHODS", value_delimiter = ',', value_parser = parse_method)]
    pub watch_methods: Option<Vec<String>>,

    /// Path prefix where every watched request must carry a key (repeatable), e.g.
    /// --require-key /v1/charges.
    #[arg(long, value_name = "PREFIX")]
    pub require_key: Vec<String>,

    /// Which keyless requests raise missing_key: learned (endpoints that earlier saw a key, and
    /// --require-key prefixes), all (every watched method), off (never; keyless_duplicate still
    /// runs on learned endpoints).
    #[arg(long, value_enum, value_name = "MODE")]
    pub missing_key: Option<crate::tracker::MissingKeyMode>,

    /// Another header that carries idempotency keys (repeatable), e.g. PayPal-Request-Id;
    /// Idempotency-Key and X-Idempotency-Key are always read.
    #[arg(long, value_name = "NAME", value_parser = parse_header_name)]
    pub key_header: Vec<String>,

    /// Statuses that reject a request, comma-separated.
    #[arg(long, value_name = "CODES", value_delimiter = ',', value_parser = parse_status)]
    pub reject_statuses: Option<Vec<u16>>,

    /// 5xx responses become a key's stored result (as Stripe API v1 does).
    #[arg(long)]
    pub store_errors: bool,

    /// Write key_sha256 (a SHA-256 of the key) instead of keys: keys may carry personal data.
    #[arg(long)]
    pub redact_keys: bool,

    /// Most keys tracked; the oldest are evicted past it (tracker_keys_evicted).
    #[arg(long, value_name = "N")]
    pub max_keys: Option<usize>,

    /// What keys are scoped by, comma-separated from host, credential, account (or none).
    #[arg(long, value_name = "PARTS", value_parser = parse_scope)]
    pub scope: Option<crate::tracker::ScopeParts>,

    /// Another query parameter whose value is replaced by REDACTED in paths (repeatable).
    #[arg(long, value_name = "NAME")]
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
#[derive(Debug, Args)]
#[command(next_help_heading = "Fleet mode (shared key store)")]
pub struct StoreArgs {
    /// Share keys with other instances through this store: redis://HOST:PORT/DB,
    /// rediss://HOST:PORT/DB (TLS), several redis:// URLs comma-separated (the seed nodes of a
    /// Redis Cluster), or memory (this process only) [default: none, this instance's keys
    /// only].
    #[arg(long, value_name = "URL", value_parser = parse_store)]
    pub store: Option<crate::fleet::StoreSpec>,

    /// Prefix of every name this fleet uses in the store (several fleets can share one Redis).
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = store_defaults().prefix,
        requires = "store"
    )]
    pub store_prefix: String,

    /// This instance's name in the store, printed as `observer` in alerts whose original it saw
    /// [default: the host name]. Instances of one fleet need distinct names.
    #[arg(long, value_name = "NAME", requires = "store")]
    pub store_instance: Option<String>,

    /// A round trip to the store (or a connection attempt) taking longer fails.
    #[arg(long, value_name = "DURATION", default_value = duration_text(store_defaults().timeout),
          value_parser = parse_duration, requires = "store")]
    pub store_timeout: Duration,

    /// How long a keyed request waits for the store's answer before it is judged on this
    /// instance's keys alone (counted in store_judged_locally). Alerts are delayed by the
    /// store's round trip, never longer than this.
    #[arg(long, value_name = "DURATION", default_value = duration_text(store_defaults().wait),
          value_parser = parse_duration, requires = "store")]
    pub store_wait: Duration,

    /// Operations queued for the store at most; past it they are skipped (store_ops_skipped),
    /// and a daemon judges the oldest held request without waiting.
    #[arg(long, value_name = "N", default_value_t = store_defaults().max_inflight, requires = "store")]
    pub store_max_inflight: usize,

    /// With rediss://: trust the CAs in this file (PEM) instead of the system's.
    #[arg(long, value_name = "PEM", requires = "store")]
    pub store_ca: Option<PathBuf>,

    /// With rediss://: present this client certificate (PEM) to a store that asks for one.
    #[arg(long, value_name = "PEM", requires_all = ["store", "store_key"])]
    pub store_cert: Option<PathBuf>,

    /// The private key of --store-cert (PEM).
    #[arg(long, value_name = "PEM", requires_all = ["store", "store_cert"])]
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
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits", mut_args = with_settings_default)]
pub struct LimitArgs {
    /// Most TCP flows tracked at once, split evenly among the workers; the least recently
    /// active are evicted past it.
    #[arg(long, value_name = "N")]
    pub max_flows: Option<usize>,

    /// Out-of-order bytes buffered per flow direction before a hole is declared, in bytes; each
    /// held segment also counts its bookkeeping (about 130 bytes).
    #[arg(long, value_name = "BYTES")]
    pub max_ooo_bytes: Option<usize>,

    /// A flow without packets for this long (capture time) is closed.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub flow_timeout: Option<Duration>,

    /// Largest HTTP head (start line and headers), in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_head_bytes: Option<usize>,

    /// Most header lines in one HTTP message.
    #[arg(long, value_name = "N")]
    pub max_headers: Option<usize>,

    /// Most requests awaiting a response on one connection.
    #[arg(long, value_name = "N")]
    pub max_pending: Option<usize>,

    /// Most incomplete IPv4 fragment sets kept at once; the oldest are dropped past it
    /// (fragments_dropped).
    #[arg(long, value_name = "N")]
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

/// The command line, parsed: what to run, clap's matches (for `check-config`), and the
/// configuration file that was read, if any.
pub struct Parsed {
    pub cli: Cli,
    pub matches: clap::ArgMatches,
    pub config_file: Option<PathBuf>,
}

/// Why parsing stopped.
pub enum ParseFail {
    /// clap's (help and version included), with where a bad value came from when it was the
    /// configuration file's.
    Clap(clap::Error, Option<String>),
    /// The configuration file cannot be read or used.
    Config(String),
}

impl ParseFail {
    /// What to print: on stdout with exit 0 for help and version (see [`Self::is_usage_error`]),
    /// else on stderr with exit 2.
    pub fn message(&self) -> String {
        match self {
            ParseFail::Clap(e, Some(blame)) if e.use_stderr() => {
                format!("{}({blame})", e.render())
            }
            ParseFail::Clap(e, _) => e.render().to_string(),
            ParseFail::Config(m) => m.clone(),
        }
    }

    /// False for `--help` and `--version`, which are not errors.
    pub fn is_usage_error(&self) -> bool {
        match self {
            ParseFail::Clap(e, _) => e.use_stderr(),
            ParseFail::Config(_) => true,
        }
    }

    /// Prints the message where it belongs (help and version: stdout).
    pub fn print(&self) {
        match self {
            ParseFail::Clap(e, _) if !e.use_stderr() => {
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
    match first.as_ref() {
        "live" => Some("live"),
        "check-config" => Some("check-config"),
        _ => None,
    }
}

/// `--config FILE` or `--config=FILE` from the command line.
fn config_arg(argv: &[OsString]) -> Option<PathBuf> {
    let mut it = argv.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// Parses the command line (argv\[0\] first), merged with the configuration file for `live`
/// and `check-config`: the command line wins. Also what a SIGHUP re-reads.
pub fn parse(argv: &[OsString]) -> Result<Parsed, ParseFail> {
    let mut cmd = Cli::command().version(crate::source::version_line());
    let mut argv = argv.to_vec();
    let mut used = None;
    let mut merged = None;
    if let Some(sub) = config_subcommand(&argv) {
        let explicit = config_arg(&argv);
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        if let Some(text) = crate::config_file::read_config(&path, explicit.is_some())
            .map_err(|e| ParseFail::Config(format!("idemwatch: {e}")))?
        {
            let m = crate::config_file::merge(&cmd, sub, argv, &path, &text)
                .map_err(|e| ParseFail::Config(format!("idemwatch: {e}")))?;
            argv = m.argv.clone();
            merged = Some(m);
            used = Some(path);
        }
    }
    let fail = |e: clap::Error| {
        let blame = merged.as_ref().and_then(|m| m.blame(&e));
        ParseFail::Clap(e, blame)
    };
    let matches = cmd.try_get_matches_from_mut(argv).map_err(fail)?;
    let cli = Cli::from_arg_matches(&matches).map_err(fail)?;
    Ok(Parsed {
        cli,
        matches,
        config_file: used,
    })
}

/// What `check-config` prints: the effective settings of `live` as TOML, every option with its
/// value (from the command line, the file, or its default), passwords in store URLs hidden.
pub fn check_config_text(args: &LiveArgs, parsed: &Parsed) -> String {
    let sub = parsed
        .matches
        .subcommand_matches("check-config")
        .unwrap_or(&parsed.matches);
    let mut out = match &parsed.config_file {
        Some(p) => format!("# configuration file: {}\n", p.display()),
        None => "# no configuration file; defaults and command line\n".to_owned(),
    };
    let effective = crate::config_file::effective_toml(
        &Cli::command(),
        "check-config",
        sub,
        &settings_defaults(&args.config()),
    );
    // A store URL may carry a password: never printed.
    out.push_str(&crate::fleet::redact_passwords(&effective));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
