//! The idemwatch binary: parse arguments (and the configuration file for `live`), start logging
//! (stderr only), run, map errors to exit codes. 0: ran to the end; 1: input or output error;
//! 2: usage or configuration error.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// Many small allocations per request (strings, events): mimalloc halves their cost against
// glibc's allocator on this workload.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches};
use idemwatch::cli::{Cli, Command, DEFAULT_CONFIG, LiveArgs};
use idemwatch::config_file;
use idemwatch::output::Output;
use idemwatch::pipeline::{LiveSettings, print_summary, run_live, run_read};
use idemwatch::source::LiveOptions;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if config_subcommand(&argv) == Some("live") {
        tune_allocator_for_live(&argv);
    }
    let (cli, matches, config_path) = match parse(&argv) {
        Ok(x) => x,
        Err(code) => return code,
    };
    init_logging(cli.verbose);
    match cli.command {
        Command::Read(args) => {
            let config = args.config();
            let mut out = match open_output(args.output.as_deref()) {
                Ok(o) => o,
                Err(code) => return code,
            };
            let filter = args.filter();
            match run_read(&config, &args.files, filter.as_deref(), &mut out) {
                Ok(summary) => {
                    // A closed stdout (`| head`) ends quietly.
                    if !cli.quiet && !summary.output_closed {
                        print_summary(&summary);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("idemwatch: {e}");
                    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
                }
            }
        }
        Command::Generate(what) => {
            let mut out = std::io::stdout().lock();
            let written = match what {
                idemwatch::cli::Generate::Man => {
                    idemwatch::manpage::render(Cli::command(), &mut out)
                }
                idemwatch::cli::Generate::Completions { shell } => {
                    idemwatch::manpage::completions(shell, Cli::command(), &mut out);
                    Ok(())
                }
            };
            match written.and_then(|()| std::io::Write::flush(&mut out)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("idemwatch: cannot write: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::CheckConfig(_) => {
            let cmd = Cli::command();
            let sub = matches
                .subcommand_matches("check-config")
                .unwrap_or(&matches);
            if let Some(p) = &config_path {
                println!("# configuration file: {}", p.display());
            } else {
                println!("# no configuration file; defaults and command line");
            }
            // A store URL may carry a password: never printed.
            print!(
                "{}",
                idemwatch::fleet::redact_passwords(&config_file::effective_toml(
                    &cmd,
                    "check-config",
                    sub
                ))
            );
            ExitCode::SUCCESS
        }
        Command::Live(args) => live(&argv, &args, config_path.as_deref()),
        Command::Mirror(args) => mirror(&args, cli.quiet),
    }
}

/// The mirror endpoint.
fn mirror(args: &idemwatch::cli::MirrorArgs, quiet: bool) -> ExitCode {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("idemwatch: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    }
    let hup = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup)) {
        eprintln!("idemwatch: cannot install signal handlers: {e}");
        return ExitCode::from(1);
    }
    match idemwatch::pipeline::run_mirror(args, stop, hup) {
        Ok(st) => {
            if !quiet {
                idemwatch::pipeline::print_mirror_summary(&st);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("idemwatch: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The `live` daemon.
fn live(argv: &[OsString], args: &LiveArgs, config_path: Option<&Path>) -> ExitCode {
    if args.list_interfaces {
        return match idemwatch::source::live::list_interfaces() {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("idemwatch: {e}; run as root or with CAP_NET_RAW");
                ExitCode::from(1)
            }
        };
    }
    let Some(interface) = args.interface.clone() else {
        eprintln!("idemwatch: live needs --interface (or 'interface' in the configuration file)");
        return ExitCode::from(2);
    };
    if let Some(p) = config_path {
        tracing::info!(file = %p.display(), "configuration file read");
    }
    let config = args.config();
    let mut out = match open_output(args.output.as_deref()) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let settings = LiveSettings {
        capture: LiveOptions {
            interface,
            promisc: args.promisc,
            snaplen: args.snaplen,
            buffer_size: args.buffer_size,
            filter: args.filter(),
        },
        stats_interval: args.stats_interval,
        drop_warn_ratio: args.drop_warn_ratio,
        state_dir: args.state_dir.clone(),
        state_interval: args.state_interval,
        user: args.user.clone(),
        mirror: None,
    };
    let mut settings = settings;
    let mirror_files = (!args.mirror_insecure_plaintext)
        .then(|| args.mirror_cert.as_deref().zip(args.mirror_key.as_deref()))
        .flatten();
    if let Some(listen) = args.mirror_listen {
        if mirror_files.is_none() && !args.mirror_insecure_plaintext {
            eprintln!(
                "idemwatch: --mirror-listen needs --mirror-cert and --mirror-key (or --mirror-insecure-plaintext)"
            );
            return ExitCode::from(2);
        }
        let tls =
            match idemwatch::mirror::tls_config(mirror_files, args.mirror_client_ca.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("idemwatch: mirror: {e}");
                    return ExitCode::from(2);
                }
            };
        let listener = match idemwatch::mirror::bind(listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("idemwatch: {e}");
                return ExitCode::from(1);
            }
        };
        let defaults = idemwatch::mirror::MirrorSettings {
            listen,
            tls,
            max_connections: 1024,
            handshake_timeout: std::time::Duration::from_secs(5),
            idle_timeout: std::time::Duration::from_secs(60),
            request_timeout: std::time::Duration::from_secs(30),
            trusted_proxies: args.mirror_trusted_proxies.clone(),
        };
        settings.mirror = Some((defaults, listener));
    }
    let mut tls_reload =
        || idemwatch::mirror::tls_config(mirror_files, args.mirror_client_ca.as_deref());
    // SIGHUP: the file again, merged with the same command line; only the policy is taken.
    let mut reload = || -> Result<idemwatch::config::Config, String> {
        let (cli, _, _) = parse_quiet(argv)?;
        match cli.command {
            Command::Live(a) => Ok(a.config()),
            _ => Err("not a live command line".into()),
        }
    };
    match run_live(&config, settings, &mut out, &mut reload, &mut tls_reload) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idemwatch: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn open_output(path: Option<&Path>) -> Result<Output, ExitCode> {
    match path {
        Some(p) => Output::file(p).map_err(|e| {
            eprintln!(
                "idemwatch: cannot open {} for writing: {e}; check the directory exists and is writable",
                p.display()
            );
            ExitCode::from(1)
        }),
        None => Ok(Output::stdout()),
    }
}

/// A daemon idles between bursts, and mimalloc returns freed memory to the kernel after 10 ms
/// by default, so each burst page-faults (and zeroes) its memory again: at 1 Gbit/s on a veth
/// pair that cost a tenth of the packets to kernel drops (`scripts/live_replay.sh`). mimalloc
/// reads its options from the environment only when the process starts, so `live` starts
/// itself again (same PID, same arguments) with them set, unless the user set them.
fn tune_allocator_for_live(argv: &[OsString]) {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = argv.first() {
        cmd.arg0(arg0);
    }
    // Only returns on failure; then run with mimalloc's defaults.
    let _ = cmd
        .args(argv.iter().skip(1))
        .env("MIMALLOC_PURGE_DELAY", "1000")
        .env("MIMALLOC_ARENA_EAGER_COMMIT", "1")
        .exec();
}

/// The subcommand named on the command line, if it reads a configuration file.
fn config_subcommand(argv: &[OsString]) -> Option<&'static str> {
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

type Parsed = (Cli, clap::ArgMatches, Option<PathBuf>);

/// Why parsing stopped.
enum ParseFail {
    /// clap's (help and version included), with where a bad value came from when it was
    /// the configuration file's.
    Clap(clap::Error, Option<String>),
    Config(String),
}

impl ParseFail {
    fn message(&self) -> String {
        match self {
            ParseFail::Clap(e, Some(blame)) if e.use_stderr() => {
                format!("{}({blame})", e.render())
            }
            ParseFail::Clap(e, _) => e.render().to_string(),
            ParseFail::Config(m) => m.clone(),
        }
    }
}

/// Parses the command line, merged with the configuration file for `live` and `check-config`.
/// Errors are printed; the exit code is returned.
fn parse(argv: &[OsString]) -> Result<Parsed, ExitCode> {
    parse_quiet_inner(argv).map_err(|fail| match &fail {
        ParseFail::Clap(e, _) if !e.use_stderr() => {
            // --help and --version: stdout, success.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{}", fail.message().trim_end());
            ExitCode::from(2)
        }
    })
}

fn parse_quiet(argv: &[OsString]) -> Result<Parsed, String> {
    parse_quiet_inner(argv).map_err(|f| f.message().trim_end().to_string())
}

fn parse_quiet_inner(argv: &[OsString]) -> Result<Parsed, ParseFail> {
    let mut cmd = Cli::command().version(idemwatch::source::version_line());
    let mut argv = argv.to_vec();
    let mut used = None;
    let mut merged = None;
    if let Some(sub) = config_subcommand(&argv) {
        let explicit = config_arg(&argv);
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        if let Some(text) = config_file::read_config(&path, explicit.is_some())
            .map_err(|e| ParseFail::Config(format!("idemwatch: {e}")))?
        {
            let m = config_file::merge(&cmd, sub, argv, &path, &text)
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
    Ok((cli, matches, used))
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
