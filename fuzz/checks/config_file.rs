//! Arbitrary text as the configuration file of `live` and `check-config`: merged into the
//! command line against clap's definitions, then parsed and printed back as the effective
//! settings. Errors are fine (each must name a line when it has one); panics are not.

use std::ffi::OsString;
use std::path::Path;

use clap::{CommandFactory, FromArgMatches};
use idemwatch::cli::{Cli, Command, settings_defaults};
use idemwatch::config_file::{effective_toml_with_sources, merge};

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cmd = Cli::command();
    for sub in ["live", "check-config"] {
        let argv: Vec<OsString> = ["idemwatch", sub, "-i", "lo"]
            .iter()
            .map(OsString::from)
            .collect();
        let file = Path::new("/etc/idemwatch/idemwatch.toml");
        match merge(&cmd, sub, argv, file, text) {
            Ok(m) => {
                let Ok(matches) = cmd.clone().try_get_matches_from(m.argv.clone()) else {
                    continue;
                };
                // The defaults of the parsed configuration, as check-config shows them.
                let defaults = match Cli::from_arg_matches(&matches).map(|c| c.command) {
                    Ok(Command::Live(a) | Command::CheckConfig(a)) => {
                        settings_defaults(&a.config())
                    }
                    _ => Vec::new(),
                };
                if let Some((name, sub_m)) = matches.subcommand() {
                    let _ = effective_toml_with_sources(&cmd, name, sub_m, &defaults, &m);
                }
            }
            Err(e) => {
                let _ = e.to_string();
                if let Some(line) = e.line() {
                    assert!(
                        line >= 1 && line <= text.lines().count().max(1) + 1,
                        "line {line}"
                    );
                }
            }
        }
    }
}
