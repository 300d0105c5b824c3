//! The idemwatch binary: parse arguments (and the configuration file for `live` and `mirror`),
//! start logging (stderr only), run, map errors to exit codes. 0: ran to the end; 1: input or
//! output error; 2: usage or configuration error.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

// Many small allocations per request (strings, events): mimalloc halves their cost against
// glibc's allocator on this workload.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::CommandFactory;
use idemwatch::cli::{Cli, Command, LiveArgs, Parsed};
use idemwatch::output::Output;
use idemwatch::pipeline::{LiveSettings, print_summary, run_live, run_read};
use idemwatch::source::LiveOptions;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if idemwatch::cli::config_subcommand(&argv) == Some("live") {
        tune_allocator_for_live(&argv);
    }
    let parsed = match idemwatch::cli::parse(&argv) {
        Ok(p) => p,
        Err(fail) => {
            fail.print();
            return if fail.is_usage_error() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(parsed.cli.global.verbose);
    match &parsed.cli.command {
        Command::Read(args) => read(args, parsed.cli.global.quiet),
        Command::Report(args) => report(args, parsed.cli.global.quiet),
        Command::Generate(what) => generate(what),
        Command::CheckConfig(args) => {
            print!("{}", idemwatch::cli::check_config_text(args, &parsed));
            ExitCode::SUCCESS
        }
        Command::Live(args) => live(&argv, args, &parsed),
        Command::Mirror(args) if args.check_config => {
            print!(
                "{}",
                idemwatch::cli::mirror_check_config_text(args, &parsed)
            );
            ExitCode::SUCCESS
        }
        Command::Mirror(args) => mirror(&argv, args, &parsed),
    }
}

/// `read`: the files, then the summary.
fn read(args: &idemwatch::cli::ReadArgs, quiet: bool) -> ExitCode {
    let mut config = args.config();
    match idemwatch::tls::load(&args.tls_keylog, &args.files) {
        Ok((tls, warnings)) => {
            for w in warnings {
                eprintln!("idemwatch: warning: {w}");
            }
            config.tls = tls;
        }
        Err(e) => {
            eprintln!("idemwatch: {e}; check the path given with --tls-keylog");
            return ExitCode::from(2);
        }
    }
    let mut out = match open_output(args.output.as_deref(), args.format) {
        Ok(o) => o,
        Err(code) => return code,
    };
    // A progress bar where a person watches stderr and did not ask for quiet.
    config.progress = !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let filter = args.filter();
    match run_read(&config, &args.files, filter.as_deref(), &mut out) {
        Ok(summary) => {
            // A closed stdout (`| head`) ends quietly.
            if !quiet && !summary.output_closed {
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

/// `report`: alert lines from the files (or stdin) to one HTML page. Exit 1 when an input
/// cannot be read or the page cannot be written; malformed lines are named on stderr, not
/// fatal.
fn report(args: &idemwatch::cli::ReportArgs, quiet: bool) -> ExitCode {
    use idemwatch::report::{Input, html};
    use std::io::{BufReader, Write};
    let mut input = Input::new(args.max_listed);
    let stdin = [std::path::PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin[..]
    } else {
        &args.files[..]
    };
    for f in files {
        let name = f.display().to_string();
        let read = if name == "-" {
            input.read_events("stdin", std::io::stdin().lock())
        } else {
            std::fs::File::open(f).and_then(|file| input.read_events(&name, BufReader::new(file)))
        };
        if let Err(e) = read {
            eprintln!("idemwatch: cannot read {name}: {e}");
            return ExitCode::from(1);
        }
    }
    for (source, line, why) in &input.malformed_lines {
        eprintln!("idemwatch: {source}:{line}: not a JSON event, skipped: {why}");
    }
    let unnamed = input.malformed - input.malformed_lines.len() as u64;
    if unnamed > 0 {
        eprintln!("idemwatch: {unnamed} more malformed lines skipped");
    }
    let meta = html::Meta {
        sources: files.iter().map(|f| f.display().to_string()).collect(),
        max_listed: args.max_listed,
    };
    let page = html::render(&input, &meta);
    let written = match &args.output {
        Some(p) => std::fs::write(p, page.as_bytes()).map_err(|e| (p.display().to_string(), e)),
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(page.as_bytes()).and_then(|()| out.flush()) {
                // A closed stdout (`| head`) ends quietly.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.map_err(|e| ("stdout".to_string(), e)),
            }
        }
    };
    if let Err((what, e)) = written {
        eprintln!("idemwatch: cannot write {what}: {e}");
        return ExitCode::from(1);
    }
    if !quiet {
        eprintln!(
            "idemwatch: report: {} alerts ({} listed), {} other events skipped, {} malformed lines",
            input.tally.summary().total,
            input.alerts.len(),
            input.skipped_events,
            input.malformed
        );
    }
    ExitCode::SUCCESS
}

/// `generate`: the manual page or a completion script on stdout.
fn generate(what: &idemwatch::cli::Generate) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let written = match what {
        idemwatch::cli::Generate::Man => idemwatch::manpage::render(Cli::command(), &mut out),
        idemwatch::cli::Generate::Completions { shell } => {
            idemwatch::manpage::completions(*shell, Cli::command(), &mut out);
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

/// The mirror endpoint.
fn mirror(argv: &[OsString], args: &idemwatch::cli::MirrorArgs, parsed: &Parsed) -> ExitCode {
    let output = args.output.as_deref();
    let Some(endpoint) = args.endpoint() else {
        eprintln!("idemwatch: mirror needs --listen (or 'listen' in the configuration file)");
        return ExitCode::from(2);
    };
    if let Some(p) = parsed.config_file() {
        tracing::info!(file = %p.display(), "configuration file read");
    }
    // SIGHUP: the file again, merged with the same command line; only the policy is taken.
    let mut reload = || -> Result<idemwatch::config::Config, String> {
        let parsed = idemwatch::cli::parse(argv).map_err(|f| f.message().trim_end().to_string())?;
        match parsed.cli.command {
            Command::Mirror(a) => Ok(a.config()),
            _ => Err("not a mirror command line".into()),
        }
    };
    match idemwatch::pipeline::run_mirror(&args.config(), &endpoint, output, &mut reload) {
        Ok(st) => {
            if !parsed.cli.global.quiet {
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
fn live(argv: &[OsString], args: &LiveArgs, parsed: &Parsed) -> ExitCode {
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
    if let Some(p) = parsed.config_file() {
        tracing::info!(file = %p.display(), "configuration file read");
    }
    let mut config = args.config();
    if !args.tls_keylog.is_empty() {
        config.tls.keys = Some(std::sync::Arc::new(idemwatch::tls::Keys::followed(
            idemwatch::tls::keylog::KeyLog::new(idemwatch::tls::MAX_RANDOMS),
        )));
    }
    let mut out = match open_output(args.output.as_deref(), args.format) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let mut settings = LiveSettings {
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
        tls_keylog: args.tls_keylog.clone(),
    };
    let endpoint = match args.mirror_endpoint() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("idemwatch: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(endpoint) = &endpoint {
        let tls = match endpoint.tls() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("idemwatch: mirror: {e}");
                return ExitCode::from(2);
            }
        };
        let listener = match idemwatch::mirror::bind(endpoint.listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("idemwatch: {e}");
                return ExitCode::from(1);
            }
        };
        settings.mirror = Some((endpoint.settings(tls), listener));
    }
    let mut tls_reload = || match &endpoint {
        Some(e) => e.tls(),
        None => Ok(None),
    };
    // SIGHUP: the file again, merged with the same command line; only the policy is taken.
    let mut reload = || -> Result<idemwatch::config::Config, String> {
        let parsed = idemwatch::cli::parse(argv).map_err(|f| f.message().trim_end().to_string())?;
        match parsed.cli.command {
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

fn open_output(
    path: Option<&Path>,
    format: Option<idemwatch::output::Format>,
) -> Result<Output, ExitCode> {
    let out = match path {
        Some(p) => Output::file(p).map_err(|e| {
            eprintln!(
                "idemwatch: cannot open {} for writing: {e}; check the directory exists and is writable",
                p.display()
            );
            ExitCode::from(1)
        }),
        None => Ok(Output::stdout()),
    };
    out.map(|o| o.with_format(format))
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
