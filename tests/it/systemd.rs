//! The systemd units and the example configurations of the daemons (`idemwatch live`,
//! `idemwatch mirror`).
//!
//! For `systemd/idemwatch.service`, `systemd/idemwatch@.service` and
//! `systemd/idemwatch-mirror.service`: a copy whose `ExecStart=` runs the freshly built binary
//! must pass `systemd-analyze verify` without a warning about the unit, and
//! `systemd-analyze security --offline=true` must rate its exposure 1.5 or lower (docs/LIVE.md,
//! "Hardening"; docs/MIRROR.md, "systemd"). `etc/idemwatch.toml` and `etc/mirror.toml` must be
//! valid TOML, with every commented-out example valid too, name every option of their command,
//! and pass `idemwatch check-config` (`idemwatch mirror --check-config`), as must the command
//! line of each unit.
//!
//! Needs `systemd-analyze` (Debian package `systemd`): when it is missing the tests fail, they
//! do not skip.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::CommandFactory;

/// Where the units expect the binary (README: `install -m 755 ... /usr/local/bin/`).
const INSTALLED_BINARY: &str = "/usr/local/bin/idemwatch";
/// The units of `live`.
const UNITS: [&str; 2] = ["idemwatch.service", "idemwatch@.service"];
const MIRROR_UNIT: &str = "idemwatch-mirror.service";
const MAX_EXPOSURE: f64 = 1.5;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_idemwatch")
}

/// Runs `systemd-analyze args`; fails the test, with the remedy, when it is not installed.
fn systemd_analyze(args: &[&str]) -> Output {
    match Command::new("systemd-analyze")
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_LOG_COLOR", "0")
        .env("SYSTEMD_PAGER", "cat")
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "systemd-analyze is not installed, and these tests need it: install the `systemd` \
             package (apt-get install -y systemd; .ci/run does)"
        ),
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Copies `systemd/<unit>` into `dir` with the binary of every `ExecStart=` line replaced by
/// the freshly built one, so that `verify` finds an executable; returns the copy's path.
fn unit_with_built_binary(unit: &str, dir: &Path) -> PathBuf {
    let original = std::fs::read_to_string(root().join("systemd").join(unit))
        .unwrap_or_else(|e| panic!("cannot read systemd/{unit}: {e}"));
    let mut exec_starts = 0;
    let mut out = String::new();
    for line in original.lines() {
        if let Some(command) = line.strip_prefix("ExecStart=") {
            let (program, rest) = command.split_once(' ').unwrap_or((command, ""));
            assert_eq!(
                program, INSTALLED_BINARY,
                "systemd/{unit}: ExecStart= must run {INSTALLED_BINARY}, where the README installs it"
            );
            let command = if unit == MIRROR_UNIT {
                "mirror"
            } else {
                "live"
            };
            assert!(
                rest.starts_with(&format!("{command} ")),
                "systemd/{unit}: ExecStart= must run `idemwatch {command}`: {line}"
            );
            out.push_str(&format!("ExecStart={} {rest}\n", binary()));
            exec_starts += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_eq!(
        exec_starts, 1,
        "systemd/{unit}: expected exactly one ExecStart= line"
    );
    let path = dir.join(unit);
    std::fs::write(&path, out).unwrap();
    path
}

/// `systemd-analyze verify` must succeed and say nothing about the unit (lines about other
/// units, those it is ordered after as this machine has them, are shown, not judged);
/// `systemd-analyze security --offline=true` must rate it [`MAX_EXPOSURE`] or lower.
fn check_unit(unit: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = unit_with_built_binary(unit, dir.path());
    let path_str = path.to_str().unwrap();

    let out = systemd_analyze(&["verify", "--man=no", "--recursive-errors=no", path_str]);
    let stderr = text(&out.stderr);
    let dir_str = dir.path().to_str().unwrap();
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("idemwatch") || l.contains(dir_str))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify systemd/{unit}: {}\n--- stderr ---\n{stderr}--- stdout ---\n{}",
        out.status,
        text(&out.stdout)
    );
    if !stderr.trim().is_empty() {
        eprintln!("systemd-analyze verify {unit}, about other units:\n{stderr}");
    }

    let out = systemd_analyze(&["security", "--offline=true", "--no-pager", path_str]);
    let report = text(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze security --offline=true systemd/{unit}: {}\n{report}{}",
        out.status,
        text(&out.stderr)
    );
    let figure = overall_exposure(&report).unwrap_or_else(|| {
        panic!(
            "no \"Overall exposure level\" in the report on systemd/{unit}:\n{report}{}",
            text(&out.stderr)
        )
    });
    assert!(
        figure <= MAX_EXPOSURE,
        "systemd/{unit}: exposure {figure} is over {MAX_EXPOSURE}; what costs what:\n{report}"
    );
    eprintln!("systemd/{unit}: overall exposure {figure}");
}

/// The figure of `→ Overall exposure level for idemwatch.service: 1.5 OK 🙂`.
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    let (_, after) = line.rsplit_once(": ")?;
    after.split_whitespace().next()?.parse().ok()
}

#[test]
fn service_unit_verifies_and_is_hardened() {
    check_unit("idemwatch.service");
}

#[test]
fn template_unit_verifies_and_is_hardened() {
    check_unit("idemwatch@.service");
}

#[test]
fn mirror_unit_verifies_and_is_hardened() {
    check_unit(MIRROR_UNIT);
}

#[test]
fn exposure_line_parses() {
    let report = "  NAME  DESCRIPTION  EXPOSURE\n\
                  ✗ PrivateNetwork=  Service has access to the host's network  0.5\n\n\
                  → Overall exposure level for idemwatch@i.service: 1.5 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some(1.5));
    assert_eq!(overall_exposure("nothing"), None);
}

fn parse_toml(what: &str, text: &str) -> toml::Table {
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{what} is not valid TOML: {e}"))
}

/// `#key = value` lines (the commented-out examples) with the `#` taken off.
fn uncommented(config: &str) -> String {
    let mut out = String::new();
    for line in config.lines() {
        let example = line.strip_prefix('#').filter(|rest| {
            rest.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_')
            })
        });
        out.push_str(example.unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Options that exclude each other, each shown in the examples as the other's alternative.
const ALTERNATIVES: &[(&str, &str)] = &[("max-keys", "max-key-memory")];

/// [`uncommented`], keeping the first option of each pair of [`ALTERNATIVES`]: what a user
/// who uncomments every example may keep.
fn uncommented_valid(config: &str) -> String {
    uncommented(config)
        .lines()
        .filter(|l| {
            !ALTERNATIVES
                .iter()
                .any(|(_, second)| l.starts_with(&format!("{second} = ")))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn example_config() -> (PathBuf, String) {
    example("idemwatch.toml")
}

fn example(name: &str) -> (PathBuf, String) {
    let path = root().join("etc").join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read etc/{name}: {e}"));
    (path, text)
}

#[test]
fn example_config_is_valid_toml() {
    let (_, text) = example_config();
    let table = parse_toml("etc/idemwatch.toml", &text);
    // What a daemon must have set; the rest is commented out at its default.
    for key in ["interface", "filter", "output", "state-dir"] {
        assert!(
            table.contains_key(key),
            "etc/idemwatch.toml: `{key}` is not set"
        );
    }
    // The commented-out examples are valid too, each key given once.
    let all = parse_toml(
        "etc/idemwatch.toml with every example uncommented",
        &uncommented(&text),
    );
    assert!(
        all.len() > table.len() + 20,
        "too few commented-out examples: {all:?}"
    );
}

#[test]
fn example_config_shows_every_option() {
    let (_, text) = example_config();
    let all = parse_toml("etc/idemwatch.toml, uncommented", &uncommented(&text));
    let missing = options_not_shown("live", &all);
    assert!(
        missing.is_empty(),
        "etc/idemwatch.toml does not show these options of `idemwatch live`: {missing:?}"
    );
}

fn check_config(args: &[&str]) -> String {
    let out = Command::new(binary())
        .arg("check-config")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "idemwatch check-config {}: {}\n{}{}",
        args.join(" "),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn example_config_passes_check_config() {
    let (path, text) = example_config();
    check_config(&["--config", path.to_str().unwrap()]);
    // Every example value is one the options accept.
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.toml");
    std::fs::write(&all, uncommented_valid(&text)).unwrap();
    check_config(&["--config", all.to_str().unwrap()]);
}

/// The command line of each unit, with the example configuration, is one `live` accepts.
#[test]
fn unit_command_lines_pass_check_config() {
    let (config, _) = example_config();
    for unit in UNITS {
        let text = std::fs::read_to_string(root().join("systemd").join(unit)).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("systemd/{unit} has no ExecStart="));
        let words: Vec<String> = line
            .split_whitespace()
            .skip(2) // the binary, `live`
            .map(|w| {
                w.replace("/etc/idemwatch/idemwatch.toml", config.to_str().unwrap())
                    .replace("%i", "eth7")
            })
            .collect();
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let effective = check_config(&args);
        if unit.contains('@') {
            assert!(
                effective.contains("eth7"),
                "systemd/{unit}: the instance name does not reach the configuration:\n{effective}"
            );
        }
    }
}

/// The options of `subcommand` that `etc/<name>` does not show.
fn options_not_shown(subcommand: &str, shown: &toml::Table) -> Vec<String> {
    let mut cmd = idemwatch::cli::Cli::command();
    cmd.build();
    let sub = cmd
        .find_subcommand(subcommand)
        .unwrap_or_else(|| panic!("no `{subcommand}` subcommand"));
    // Not settings: the file itself, and actions.
    let not_keys = [
        "help",
        "version",
        "config",
        "list-interfaces",
        "check-config",
    ];
    sub.get_arguments()
        .map(|a| {
            a.get_long()
                .map_or_else(|| a.get_id().to_string(), str::to_owned)
        })
        .filter(|k| !not_keys.contains(&k.as_str()) && !shown.contains_key(k))
        .collect()
}

#[test]
fn mirror_example_config_is_valid_and_shows_every_option() {
    let (_, text) = example("mirror.toml");
    let table = parse_toml("etc/mirror.toml", &text);
    // What the unit needs from the file; the rest is commented out at its default.
    for key in ["listen", "output", "cert", "key"] {
        assert!(
            table.contains_key(key),
            "etc/mirror.toml: `{key}` is not set"
        );
    }
    let all = parse_toml(
        "etc/mirror.toml with every example uncommented",
        &uncommented(&text),
    );
    let missing = options_not_shown("mirror", &all);
    assert!(
        missing.is_empty(),
        "etc/mirror.toml does not show these options of `idemwatch mirror`: {missing:?}"
    );
}

fn mirror_check_config(args: &[&str]) -> String {
    let out = Command::new(binary())
        .args(["mirror", "--check-config"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "idemwatch mirror --check-config {}: {}\n{}{}",
        args.join(" "),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn mirror_example_config_passes_check_config() {
    let (path, text) = example("mirror.toml");
    let effective = mirror_check_config(&["--config", path.to_str().unwrap()]);
    assert!(
        effective.contains("listen = \"127.0.0.1:9443\""),
        "{effective}"
    );
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.toml");
    std::fs::write(&all, uncommented_valid(&text)).unwrap();
    mirror_check_config(&["--config", all.to_str().unwrap()]);
}

/// The mirror unit's command line, with the example configuration: the certificate and key of
/// its credentials win over the file's.
#[test]
fn mirror_unit_command_line_passes_check_config() {
    let (config, _) = example("mirror.toml");
    let text = std::fs::read_to_string(root().join("systemd").join(MIRROR_UNIT)).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("systemd/{MIRROR_UNIT} has no ExecStart="));
    // What LoadCredential= names must be what the command line reads.
    for cred in ["mirror.pem", "mirror.key"] {
        assert!(
            text.contains(&format!("LoadCredential={cred}:/etc/idemwatch/{cred}\n"))
                && line.contains(&format!("${{CREDENTIALS_DIRECTORY}}/{cred}")),
            "systemd/{MIRROR_UNIT}: credential {cred} is not loaded and used"
        );
    }
    let words: Vec<String> = line
        .split_whitespace()
        .skip(2) // the binary, `mirror`
        .map(|w| {
            w.replace("/etc/idemwatch/mirror.toml", config.to_str().unwrap())
                .replace("${CREDENTIALS_DIRECTORY}", "/run/credentials/m")
        })
        .collect();
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    let effective = mirror_check_config(&args);
    assert!(
        effective.contains("cert = \"/run/credentials/m/mirror.pem\"")
            && effective.contains("key = \"/run/credentials/m/mirror.key\""),
        "the unit's certificate and key do not win over the file's:\n{effective}"
    );
}
