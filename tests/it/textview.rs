//! The text view: what a person sees when stdout is a terminal (a pseudo-terminal from
//! util-linux `script`), and that every pipe still gets the JSON lines, byte for byte.

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_idemwatch");

fn demo() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("captures/demo.pcap")
        .display()
        .to_string()
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `idemwatch ARGS` with stdout (and stdin, stderr) on a pseudo-terminal; returns what
/// the terminal showed. `no_color`: NO_COLOR set, else unset with TERM=xterm.
fn on_terminal(args: &[&str], no_color: bool) -> String {
    let line = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(quoted)
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("RUST_LOG")
        .env("TERM", "xterm");
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let o = cmd.output().expect("run script(1) (util-linux)");
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n")
}

fn piped(args: &[&str]) -> Output {
    let o = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run idemwatch");
    assert!(o.status.success(), "{o:?}");
    o
}

#[test]
fn a_terminal_gets_the_text_view_in_colour_unless_no_color() {
    let d = demo();
    let shown = on_terminal(&["-q", "read", &d], false);
    assert!(!shown.contains("\"event_type\""), "{shown}");
    assert!(
        shown.contains("\x1b[1;31mCRITICAL\x1b[0m conflict_accepted key de300000-0002-"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "\n    first: 200 ch_32V0QvzkH5b… at 09:29:46.583; bodies differ (65 B vs 65 B); \
             now: 400 (280 B)\n"
        ),
        "{shown}"
    );
    for kind in [
        "key_conflict",
        "key_churn",
        "keyless_duplicate",
        "missing_key",
        "invalid_key",
        "replay_mismatch",
    ] {
        assert!(shown.contains(&format!(" {kind} ")), "{kind}: {shown}");
    }

    let plain = on_terminal(&["-q", "read", &d], true);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(
        plain.contains("09:29:46.591 CRITICAL conflict_accepted key de300000-0002-"),
        "{plain}"
    );
    // Each alert is one or two lines: 9 alerts.
    let heads = plain.lines().filter(|l| !l.starts_with("    ")).count();
    assert_eq!(heads, 9, "{plain}");
}

#[test]
fn format_json_and_an_output_file_keep_json_on_a_terminal() {
    let d = demo();
    let json = on_terminal(&["-q", "read", "--format", "json", &d], false);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 9, "{json}");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        assert_eq!(v["event_type"], "alert");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("alerts.json");
    let o = out.to_str().expect("UTF-8 path");
    let shown = on_terminal(&["-q", "read", "-o", o, &d], false);
    assert_eq!(shown, "");
    let file = std::fs::read(&out).expect("output file");
    assert_eq!(file, piped(&["-q", "read", &d]).stdout);
}

#[test]
fn a_pipe_gets_json_byte_identical_to_format_json() {
    let d = demo();
    let default = piped(&["read", "--log-requests", "--stats", &d]).stdout;
    let json = piped(&["read", "--format", "json", "--log-requests", "--stats", &d]).stdout;
    assert!(!default.is_empty());
    assert_eq!(default, json);
    let text = String::from_utf8_lossy(&default);
    for l in text.lines() {
        let _: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
    }
    // And text when asked, without colour (not a terminal).
    let text = piped(&["read", "--format", "text", &d]).stdout;
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.starts_with("09:29:46.587 HIGH     key_conflict key de300000-0001-"),
        "{text}"
    );
    assert!(!text.contains('\x1b'));
}

fn bulk() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("captures/bulk.pcap")
        .display()
        .to_string()
}

/// Runs a shell line under a pseudo-terminal (stdin, stdout and stderr on it unless the line
/// redirects them); returns what the terminal showed.
fn shell_on_terminal(line: &str) -> String {
    let o = Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .env_remove("RUST_LOG")
        .env("TERM", "xterm")
        .output()
        .expect("run script(1) (util-linux)");
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_progress_bar_stays_on_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.json");
    let (bin, b, o) = (
        quoted(BIN),
        quoted(&bulk()),
        quoted(out.to_str().expect("UTF-8")),
    );
    let want = piped(&["-q", "read", &bulk()]).stdout;
    assert!(!want.is_empty());

    // A file: the total, the rate, the time left and the alerts, on the terminal (stderr).
    let shown = shell_on_terminal(&format!("{bin} read {b} > {o}"));
    assert!(shown.contains("/4.50 MiB"), "{shown:?}");
    assert!(
        shown.contains("ETA") && shown.contains("alerts: "),
        "{shown:?}"
    );
    assert!(
        std::fs::read(&out).expect("stdout file") == want,
        "stdout: JSON only"
    );

    // Stdin: bytes and rate, no total.
    let want = Command::new(BIN)
        .args(["-q", "read", "-"])
        .stdin(std::fs::File::open(bulk()).expect("bulk.pcap"))
        .output()
        .expect("run idemwatch")
        .stdout;
    let shown = shell_on_terminal(&format!("{bin} read - < {b} > {o}"));
    assert!(shown.contains("/s"), "{shown:?}");
    assert!(!shown.contains("ETA"), "{shown:?}");
    assert!(
        std::fs::read(&out).expect("stdout file") == want,
        "stdout: JSON only"
    );

    // -q: no bar; stdout on the terminal too, and stderr a pipe: no bar either.
    let shown = shell_on_terminal(&format!("{bin} -q read {b} > {o}"));
    assert_eq!(shown, "", "{shown:?}");
    let shown = shell_on_terminal(&format!("{bin} read --format json {b} 2>/dev/null"));
    for l in shown.lines() {
        let _: serde_json::Value =
            serde_json::from_str(l.trim_end_matches('\r')).unwrap_or_else(|e| panic!("{e}: {l:?}"));
    }
}
