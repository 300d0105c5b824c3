//! Arbitrary text as the configuration file of `live`, `check-config` and `mirror`: checked
//! against clap's definitions, filled into the options by serde, merged with a command line, and
//! printed back as the effective settings. Errors are fine (each must name a line when it has one);
//! panics are not.

use std::ffi::OsString;
use std::path::Path;

use idemwatch::cli::{
    Command, ParseFail, check_config_text, mirror_check_config_text, parse_with_file,
};

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/etc/idemwatch/idemwatch.toml");
    for cli in [
        &["idemwatch", "live", "-i", "lo"][..],
        &["idemwatch", "check-config"],
        &[
            "idemwatch",
            "-v",
            "check-config",
            "--store-prefix",
            "x",
            "--",
            "tcp",
        ],
        &["idemwatch", "mirror", "--check-config"],
        &[
            "idemwatch",
            "mirror",
            "--listen",
            "127.0.0.1:1",
            "--max-connections",
            "2",
        ],
    ] {
        let argv: Vec<OsString> = cli.iter().map(OsString::from).collect();
        match parse_with_file(&argv, file, text) {
            Ok(parsed) => {
                if let Command::Live(a) | Command::CheckConfig(a) = &parsed.cli.command {
                    let _ = a.config();
                    let _ = a.mirror_endpoint();
                }
                if let Command::CheckConfig(a) = &parsed.cli.command {
                    let _ = check_config_text(a, &parsed);
                }
                if let Command::Mirror(a) = &parsed.cli.command {
                    let _ = a.config();
                    let _ = a.endpoint();
                    let _ = mirror_check_config_text(a, &parsed);
                }
            }
            Err(ParseFail::File(e)) => {
                let _ = e.to_string();
                if let Some(line) = e.line() {
                    assert!(
                        line >= 1 && line <= text.lines().count().max(1) + 1,
                        "line {line}"
                    );
                }
            }
            Err(ParseFail::Clap(e)) => {
                let _ = e.render();
            }
        }
    }
}
