//! `idemwatch report`: `read` on the demo capture piped into `report`, the page's counts against
//! the alerts; malformed and hostile input; and the page as headless Chromium renders it (the
//! demo, and 10,000 generated alerts), skipped with a message where `chromium` is missing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_idemwatch");
const HOSTILE_PATH: &str = "/x\"><script>alert(1)</script>";

fn demo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures/demo.pcap")
}

/// Runs idemwatch with `stdin` fed to it.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start idemwatch");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    let input = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for idemwatch");
    let _ = feeder.join();
    out
}

/// The demo capture's events, as `read` writes them.
fn demo_events() -> Vec<u8> {
    let out = run(&["read", demo().to_str().expect("UTF-8 path")], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn alerts_of(lines: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(lines)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event_type"] == "alert")
        .collect()
}

/// The counts the page must show: (total, per kind).
fn expected_counts(alerts: &[Value]) -> (usize, Vec<(String, usize)>) {
    let mut kinds: Vec<String> = alerts
        .iter()
        .filter_map(|a| a["kind"].as_str().map(String::from))
        .collect();
    kinds.sort();
    let mut per: Vec<(String, usize)> = Vec::new();
    for k in kinds {
        match per.last_mut() {
            Some((last, n)) if *last == k => *n += 1,
            _ => per.push((k, 1)),
        }
    }
    (alerts.len(), per)
}

/// Checks the page (as written, or as the browser's DOM) shows the counts of `alerts`.
fn assert_counts(page: &str, alerts: &[Value], listed: usize) {
    let (total, per) = expected_counts(alerts);
    assert!(
        page.contains(&format!("id=\"total-alerts\" data-count=\"{total}\"")),
        "total {total}"
    );
    for (kind, n) in per {
        assert!(
            page.contains(&format!("data-kind=\"{kind}\" data-count=\"{n}\"")),
            "{kind}: {n}"
        );
    }
    assert!(page.contains(&format!("id=\"listed-count\" data-count=\"{listed}\"")));
    assert!(page.contains(&format!("id=\"listed-total\" data-count=\"{total}\"")));
}

/// A report of `events` written with `-o`; returns the page and stderr.
fn report(dir: &Path, name: &str, events: &[u8], extra: &[&str]) -> (PathBuf, String, String) {
    let page = dir.join(name);
    let mut args = vec!["report", "-o", page.to_str().expect("UTF-8 path")];
    args.extend(extra);
    let out = run(&args, events);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "-o leaves stdout empty");
    let html = std::fs::read_to_string(&page).expect("the page is written");
    (page, html, stderr)
}

#[test]
fn read_piped_into_report_shows_every_demo_alert() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = demo_events();
    let alerts = alerts_of(&events);
    assert_eq!(alerts.len(), 9, "the demo's alerts (README)");
    let (_, html, _) = report(dir.path(), "demo.html", &events, &[]);
    assert_counts(&html, &alerts, 9);
    assert!(html.contains("data-severity=\"critical\" data-count=\"2\""));
    assert!(html.contains("data-severity=\"high\" data-count=\"4\""));
    assert!(html.contains("<svg id=\"timeline\""));
    // Self-contained: nothing fetched.
    for external in ["src=\"http", "href=\"http", "url(", "@import"] {
        assert!(!html.contains(external), "{external}");
    }
}

#[test]
fn other_events_are_skipped_and_malformed_lines_named_by_number() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut events = demo_events();
    events.extend_from_slice(
        b"{\"event_type\":\"stats\",\"stats\":{}}\nnot json\n\n{\"event_type\":",
    );
    let (_, html, stderr) = report(dir.path(), "r.html", &events, &["--max-listed", "4"]);
    assert_counts(&html, &alerts_of(&events), 4);
    assert!(html.contains("id=\"skipped-events\" data-count=\"1\""));
    assert!(html.contains("id=\"malformed-lines\" data-count=\"2\""));
    assert!(stderr.contains("stdin:11: not a JSON event"), "{stderr}");
    assert!(stderr.contains("stdin:13: not a JSON event"), "{stderr}");
}

#[test]
fn without_output_the_page_goes_to_stdout_and_a_missing_file_fails() {
    let out = run(&["report", "-q", "-"], &demo_events());
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("id=\"total-alerts\" data-count=\"9\""));
    let out = run(&["report", "/nonexistent/alerts.jsonl"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/alerts.jsonl"));
}

/// 10,000 alerts: the demo's, repeated every 3 s with their own keys, the first with a
/// hostile path.
fn many_alerts(demo: &[Value]) -> Vec<Value> {
    (0..10_000usize)
        .map(|i| {
            let mut a = demo[i % demo.len()].clone();
            let secs = i * 3;
            let ts = format!(
                "2026-11-28T{:02}:{:02}:{:02}.{:06}Z",
                9 + secs / 3600,
                secs / 60 % 60,
                secs % 60,
                i
            );
            a["timestamp"] = Value::from(ts.clone());
            a["request"]["ts"] = Value::from(ts);
            a["key"] = Value::from(format!("gen-{i}"));
            a["request"]["src_ip"] = Value::from(format!("10.0.{}.{}", i % 7, i % 13));
            if i == 0 {
                a["request"]["path"] = Value::from(HOSTILE_PATH);
                a["request"]["host"] = Value::from("h'\"><img src=x onerror=alert(2)>");
            }
            a
        })
        .collect()
}

fn lines(alerts: &[Value]) -> Vec<u8> {
    let mut v = Vec::new();
    for a in alerts {
        v.extend_from_slice(a.to_string().as_bytes());
        v.push(b'\n');
    }
    v
}

#[test]
fn ten_thousand_alerts_keep_whole_counts_and_list_the_cap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let alerts = many_alerts(&alerts_of(&demo_events()));
    let (_, html, _) = report(dir.path(), "big.html", &lines(&alerts), &[]);
    assert_counts(&html, &alerts, 1000);
    assert_eq!(html.matches("class=\"alert sev-").count(), 1000);
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(html.contains("/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<img"));
}

// ---------------------------------------------------------------------------------------------
// headless Chromium
// ---------------------------------------------------------------------------------------------

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// Runs chromium headless on `page` with `mode` (--dump-dom or --screenshot=FILE), at most
/// two minutes; returns stdout, stderr and the time it took.
fn browse(chromium: &Path, profile: &Path, page: &Path, mode: &str) -> (String, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {mode} took over 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    let stdout = reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    (stdout, stderr, took)
}

/// The console messages of a page (chromium logs them on stderr): the report logs nothing
/// itself, so any is an uncaught error or a resource or script its policy refused.
fn console_messages(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Refused to"))
        .collect()
}

/// Distinct byte values in the decompressed image data of a PNG: a blank page (one colour)
/// has a handful; a page with text, tables and bars has many.
fn png_distinct_bytes(png: &[u8]) -> usize {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let mut idat = Vec::new();
    let mut rest = png.get(8..).unwrap_or_default();
    while rest.len() >= 12 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = &rest[4..8];
        let Some(data) = rest.get(8..8 + len) else {
            break;
        };
        if kind == b"IDAT" {
            idat.extend_from_slice(data);
        }
        rest = rest.get(12 + len..).unwrap_or_default();
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(idat.as_slice())
        .read_to_end(&mut raw)
        .expect("PNG image data inflates");
    let mut seen = [false; 256];
    for b in raw {
        seen[usize::from(b)] = true;
    }
    seen.iter().filter(|s| **s).count()
}

#[test]
fn chromium_renders_the_report_with_its_counts_and_no_errors() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED report::chromium_renders_the_report_with_its_counts_and_no_errors: \
             no chromium on PATH (apt-get install chromium; CI installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = dir.path().join("profile");
    let events = demo_events();
    let demo_alerts = alerts_of(&events);
    let (demo_page, _, _) = report(dir.path(), "demo.html", &events, &[]);
    let big_alerts = many_alerts(&demo_alerts);
    let (big_page, _, _) = report(dir.path(), "big.html", &lines(&big_alerts), &[]);

    for (what, page, alerts, listed) in [
        ("demo", &demo_page, &demo_alerts, 9),
        ("10,000 alerts", &big_page, &big_alerts, 1000),
    ] {
        let (dom, stderr, took) = browse(&chromium, &profile, page, "--dump-dom");
        assert!(
            dom.contains("</html>"),
            "{what}: no DOM dumped; stderr:\n{stderr}"
        );
        assert_counts(&dom, alerts, listed);
        assert!(
            dom.contains("data-js-ok=\"1\""),
            "{what}: the page's script ran"
        );
        // The attribute, not the script's own text naming it.
        assert!(!dom.contains("data-js-error=\""), "{what}: a script error");
        // The hostile path made no element: the DOM holds the page's one script.
        assert_eq!(dom.matches("<script").count(), 1, "{what}");
        assert!(!dom.contains("<img"), "{what}");
        let console = console_messages(&stderr);
        assert!(console.is_empty(), "{what}: console: {console:#?}");

        let png = dir.path().join(format!("{}.png", listed));
        let (_, stderr, _) = browse(
            &chromium,
            &profile,
            page,
            &format!("--screenshot={}", png.display()),
        );
        let bytes =
            std::fs::read(&png).unwrap_or_else(|e| panic!("{what}: no screenshot ({e}); {stderr}"));
        let distinct = png_distinct_bytes(&bytes);
        assert!(
            distinct > 32,
            "{what}: the screenshot looks blank ({distinct} byte values)"
        );
        // Chromium's start is in the time: the demo's page is the baseline.
        eprintln!(
            "report of {what}: page {} bytes, chromium --dump-dom {:.2} s, screenshot {} bytes",
            std::fs::metadata(page).map(|m| m.len()).unwrap_or(0),
            took.as_secs_f64(),
            bytes.len()
        );
    }
}

#[test]
fn the_console_check_catches_an_uncaught_error() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED report::the_console_check_catches_an_uncaught_error: no chromium on PATH"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("boom.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>throw new Error('boom')</script></body></html>",
    )
    .expect("write");
    let (_, stderr, _) = browse(&chromium, &dir.path().join("profile"), &page, "--dump-dom");
    assert!(
        console_messages(&stderr)
            .iter()
            .any(|l| l.contains("Uncaught Error: boom")),
        "an uncaught error went unseen; stderr:\n{stderr}"
    );
}

#[test]
fn a_blank_png_has_few_byte_values() {
    // The check above must be able to fail: a one-colour image made by the same encoder.
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED report::a_blank_png_has_few_byte_values: no chromium on PATH");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("blank.html");
    std::fs::write(&page, "<!DOCTYPE html><html><body></body></html>").expect("write");
    let png = dir.path().join("blank.png");
    let _ = browse(
        &chromium,
        &dir.path().join("profile"),
        &page,
        &format!("--screenshot={}", png.display()),
    );
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert!(png_distinct_bytes(&bytes) <= 32);
}
