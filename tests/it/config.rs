//! The configuration file of `live`, through the binary: `check-config` prints what the
//! daemon would run with, the command line winning over the file; mistakes name the key and
//! the line and exit 2.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_idemwatch");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("idemwatch runs")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p.display().to_string()
}

#[test]
fn the_command_line_wins_over_the_file_and_the_file_over_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "c.toml",
        "interface = \"lo\"\nmax-keys = 5000\nwatch_methods = [\"POST\", \"PUT\"]\n\
         filter = \"tcp port 8080\"\nstate-dir = \"/var/lib/idemwatch\"\n",
    );
    let out = run(&["check-config", "--config", &f, "--max-keys", "7"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: toml::Table = text.parse().expect("check-config prints TOML");
    assert_eq!(v["interface"].as_str(), Some("lo"));
    assert_eq!(v["max-keys"].as_integer(), Some(7));
    assert_eq!(v["filter"].as_str(), Some("tcp port 8080"));
    assert_eq!(v["state-dir"].as_str(), Some("/var/lib/idemwatch"));
    let methods: Vec<&str> = v["watch-methods"]
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert_eq!(methods, ["POST", "PUT"]);
    // A default stays a default.
    assert_eq!(v["snaplen"].as_integer(), Some(262_144));
}

#[test]
fn an_unknown_key_names_itself_and_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "c.toml", "interface = \"lo\"\n\nmax-key = 5\n");
    let out = run(&["check-config", "--config", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("'max-key'"), "{err}");
    assert!(err.contains("max-keys"), "a suggestion: {err}");
}

#[test]
fn a_bad_value_from_the_file_is_blamed_on_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "c.toml",
        "interface = \"lo\"\nwindow = \"forever\"\n",
    );
    let out = run(&["check-config", "--config", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("forever"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    let f = write(
        dir.path(),
        "t.toml",
        "interface = \"lo\"\nmax-keys = \"many\n",
    );
    let out = run(&["check-config", "--config", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 2"),
        "a TOML syntax error has its line: {err}"
    );
}

#[test]
fn a_missing_explicit_file_is_an_error_and_live_needs_an_interface() {
    let out = run(&["live", "--config", "/nonexistent/idemwatch.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/idemwatch.toml"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "c.toml", "max-keys = 10\n");
    let out = run(&["check-config", "--config", &f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interface"));
}

#[test]
fn the_example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/idemwatch.toml");
    let out = run(&["check-config", "--config", &example.display().to_string()]);
    assert!(
        out.status.success(),
        "etc/idemwatch.toml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
