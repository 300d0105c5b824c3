//! The configuration files of `live` and `mirror`, through the binary: `check-config` (and
//! `mirror --check-config`) prints what the daemon would run with, the command line winning
//! over the file; mistakes name the key and the line and exit 2.

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

/// The exact words of `check-config` for the file's mistakes: what a user reads is pinned, so
/// that a change in how the file is applied cannot change it unnoticed. `FILE` stands for the
/// file's path.
#[test]
fn the_messages_about_the_file_are_exactly_these() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "interface = \"lo\"\n\nmax-key = 5\n",
            &[],
            "idemwatch: FILE line 3: unknown key 'max-key'; 'idemwatch check-config --help' \
             lists the options (did you mean 'max-keys'?)\n",
        ),
        (
            "\n[live]\nmax-keys = 5\n",
            &[],
            "idemwatch: FILE line 2: unknown key 'live'; 'idemwatch check-config --help' lists \
             the options; the file has no [sections] or dotted keys: write each option at the \
             top level, e.g. max-keys = 500000\n",
        ),
        (
            "interface = \"lo\"\nmax-keys = = 5\n",
            &[],
            "idemwatch: FILE line 2, column 12: TOML syntax error: extra `=`, expected nothing\n",
        ),
        (
            "interface = \"lo\"\n\nwindow = 24\n",
            &[],
            "idemwatch: FILE line 3: 'window' must be a string like \"24h\", not an integer\n",
        ),
        (
            "watch-methods = [\n  \"POST\",\n  7,\n]\n",
            &[],
            "idemwatch: FILE line 3: 'watch-methods' must be an array of strings like \
             [\"POST\", \"PATCH\"], or a string with the values separated by ',', and this \
             element is an integer\n",
        ),
        (
            "interface = \"lo\"\nverbose = 300\n",
            &[],
            "idemwatch: FILE line 2: 'verbose' must be an integer from 0 to 255 (how many times \
             --verbose is given), not 300\n",
        ),
        (
            "max-keys = 1\nmax_keys = 2\n",
            &[],
            "idemwatch: FILE line 2: 'max_keys' sets the same option as 'max-keys' on line 1\n",
        ),
        // A value of the file that the option's parser refuses: the file's line, the key.
        (
            "interface = \"lo\"\n\nmax_keys = \"lots\"\n",
            &[],
            "idemwatch: FILE line 3: 'max_keys': invalid value 'lots': invalid digit found in \
             string\n",
        ),
        (
            "interface = \"lo\"\nsnaplen = 100\n",
            &[],
            "idemwatch: FILE line 2: 'snaplen': invalid value '100': 100 is not in \
             1514..=2147483647\n",
        ),
        (
            "interface = \"lo\"\nwindow = \"forever\"\n",
            &[],
            "idemwatch: FILE line 2: 'window': invalid value 'forever': expected number at 0; \
             write a duration like 90s, 10m, 24h or 500ms\n",
        ),
        // The command line's own mistakes are clap's, as without a file, and come first.
        (
            "interface = \"lo\"\n\nmax_keys = \"lots\"\n",
            &["--frobnicate", "x"],
            // (clap suggests --format, and names it in the usage line.)
            "error: unexpected argument '--frobnicate' found\n\n  \
             tip: a similar argument exists: '--format'\n  \
             tip: to pass '--frobnicate' as a value, use '-- --frobnicate'\n\n\
             Usage: idemwatch check-config --config <FILE> --format <FORMAT> [-- <FILTER>...]\n\n\
             For more information, try '--help'.\n",
        ),
        (
            "interface = \"lo\"\n",
            &["--snaplen", "100"],
            "error: invalid value '100' for '--snaplen <BYTES>': 100 is not in \
             1514..=2147483647\n\n\
             For more information, try '--help'.\n",
        ),
        // A relation neither side of which the file sets: clap's check, and its usage line
        // (which does not list what the file sets).
        (
            "max-keys = 10\n",
            &[],
            "error: the following required arguments were not provided:\n  \
             --interface <IFACE>\n\n\
             Usage: idemwatch check-config --config <FILE> --interface <IFACE> \
             [-- <FILTER>...]\n\n\
             For more information, try '--help'.\n",
        ),
        (
            "max-keys = 10\n",
            &["-i", "lo", "--store-cert", "c.pem"],
            "error: the following required arguments were not provided:\n  --store <URL>\n  \
             --store-key <PEM>\n\n\
             Usage: idemwatch check-config --store <URL> --store-cert <PEM> --store-key <PEM> \
             --config <FILE> --interface <IFACE> [-- <FILTER>...]\n\n\
             For more information, try '--help'.\n",
        ),
        // A relation the file breaks: the file's line.
        (
            "interface = \"lo\"\nstore-prefix = \"x\"\n",
            &[],
            "idemwatch: FILE line 2: 'store-prefix' needs 'store' (in the file or as --store)\n",
        ),
        (
            "interface = \"lo\"\nstore = \"memory\"\nstore-key = \"k.pem\"\n",
            &[],
            "idemwatch: FILE line 3: 'store-key' needs 'store-cert' (in the file or as \
             --store-cert)\n",
        ),
    ];
    for (n, (text, args, want)) in cases.iter().enumerate() {
        let f = write(dir.path(), &format!("c{n}.toml"), text);
        let mut argv = vec!["check-config", "--config", &f];
        argv.extend_from_slice(args);
        let out = run(&argv);
        let err = String::from_utf8_lossy(&out.stderr).replace(&f, "FILE");
        assert_eq!(out.status.code(), Some(2), "{text:?}: {err}");
        assert_eq!(err, *want, "{text:?}");
        assert!(out.stdout.is_empty(), "{text:?}");
    }
}

#[test]
fn the_file_and_the_command_line_each_set_their_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "c.toml",
        "interface = \"lo\"\nverbose = 2\nquiet = true\nfilter = [\"tcp\", \"port\", \"80\"]\n\
         store = \"redis://user:s3cret@127.0.0.1:6379/0\"\nstore-prefix = \"x\"\n\
         buffer-size = \"128M\"\nmax-keys = 0x10\n",
    );
    let out = run(&["-v", "check-config", "--config", &f, "--store-prefix", "y"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "interface = \"lo\"\n",
        "filter = \"tcp port 80\"\n",
        "buffer-size = \"128M\"\n",
        "max-keys = 16\n",
        "store = \"redis://user:REDACTED@127.0.0.1:6379/0\"\n",
        "store-prefix = \"y\"\n",
        "verbose = 1\n",
        "quiet = true\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert!(!text.contains("s3cret"), "{text}");
}

#[test]
fn the_file_completes_what_the_command_line_needs_and_the_command_line_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "c.toml",
        "interface = \"lo\"\nstore = \"memory\"\npromisc = true\nverbose = 3\n\
         require-key = [\"/a\", \"/b\"]\nfilter = \"tcp port 80\"\nwindow = \"1h\"\n",
    );
    let out = run(&[
        "check-config",
        "--config",
        &f,
        "--store-prefix",
        "fleet",
        "-v",
        "--require-key",
        "/z",
        "--window",
        "2h",
        "--",
        "port",
        "8080",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "interface = \"lo\"\n",
        "store = \"memory\"\n",
        "store-prefix = \"fleet\"\n",
        "promisc = true\n",
        "verbose = 1\n",
        "require-key = [\"/z\"]\n",
        "filter = \"port 8080\"\n",
        "window = \"2h\"\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
}

/// `mirror` reads a file of its own: `mirror --check-config` prints its effective settings, the
/// command line winning; a mistake names the file, the line and the key, and exits 2.
#[test]
fn the_mirror_checks_its_own_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "mirror.toml",
        "listen = \"127.0.0.1:9443\"\ninsecure-plaintext = true\nmax-connections = 64\n\
         window = \"1h\"\n",
    );
    let out = run(&[
        "mirror",
        "--check-config",
        "--config",
        &f,
        "--idle-timeout",
        "5s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: toml::Table = String::from_utf8_lossy(&out.stdout)
        .parse()
        .expect("mirror --check-config prints TOML");
    assert_eq!(v["listen"].as_str(), Some("127.0.0.1:9443"));
    assert_eq!(v["max-connections"].as_integer(), Some(64));
    assert_eq!(v["idle-timeout"].as_str(), Some("5s"));
    assert_eq!(v["window"].as_str(), Some("1h"));
    assert_eq!(v["request-timeout"].as_str(), Some("30s"));
    // live's file is not the mirror's: its keys are unknown here.
    let f = write(
        dir.path(),
        "bad.toml",
        "listen = \"127.0.0.1:9443\"\ninsecure-plaintext = true\n\ninterfac = \"lo\"\n\
         idle-timeot = \"1s\"\n",
    );
    let out = run(&["mirror", "--check-config", "--config", &f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "idemwatch: {f} line 4: unknown key 'interfac'; 'idemwatch mirror --help' lists the \
             options"
        )
    );
    let f = write(
        dir.path(),
        "bad.toml",
        "listen = \"127.0.0.1:9443\"\ninsecure-plaintext = true\nidle-timeot = \"1s\"\n",
    );
    let out = run(&["mirror", "--check-config", "--config", &f]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3: unknown key 'idle-timeot'")
            && err.contains("(did you mean 'idle-timeout'?)"),
        "{err}"
    );
    // The file is read by `mirror` itself too, not only by the check.
    let out = run(&["mirror", "--config", &f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown key 'idle-timeot'"),
        "mirror ran with a bad file"
    );
    let out = run(&[
        "mirror",
        "--check-config",
        "--config",
        &dir.path().join("none.toml").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("check the path given with --config"));
}
