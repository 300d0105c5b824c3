//! The idemwatch binary: parse arguments, start logging (stderr only), run, map errors to exit
//! codes. 0: ran to the end; 1: input or output error; 2: usage or configuration error.

use std::process::ExitCode;

// Many small allocations per request (strings, events): mimalloc halves their cost against
// glibc's allocator on this workload.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use idemwatch::cli::{Cli, Command};
use idemwatch::output::Output;
use idemwatch::pipeline::{print_summary, run_read};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.command {
        Command::Read(args) => {
            let config = args.config();
            let mut out = match &args.output {
                Some(p) => match Output::file(p) {
                    Ok(o) => o,
                    Err(e) => {
                        eprintln!(
                            "idemwatch: cannot open {} for writing: {e}; check the directory exists and is writable",
                            p.display()
                        );
                        return ExitCode::from(1);
                    }
                },
                None => Output::stdout(),
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
    }
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
