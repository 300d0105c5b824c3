//! Results never depend on the number of flow workers: every capture, ours (HTTP/1.1, TLS with
//! its key log, HTTP/2) and the shared corpus's, gives the same bytes with one worker or
//! several.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(file: &Path, threads: u32) -> Vec<u8> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idemwatch"));
    cmd.args(["read", "-q", "--log-requests", "--stats", "--threads"])
        .arg(threads.to_string());
    let keys = file.with_extension("keys");
    if keys.exists() {
        cmd.arg("--tls-keylog").arg(keys);
    }
    let out = cmd.arg(file).output().unwrap();
    assert!(out.status.success(), "{}: {:?}", file.display(), out.status);
    out.stdout
}

fn captures() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        root.join("captures"),
        root.join("captures/tls"),
        root.join("captures/h2"),
        root.join("../shared/corpus"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.to_string_lossy().to_string();
            if name.ends_with(".pcap") || name.ends_with(".pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn output_is_byte_identical_with_one_worker_or_many() {
    let files = captures();
    assert!(files.len() >= 20, "captures to compare");
    let mut lines = 0;
    for f in &files {
        let one = run(f, 1);
        lines += one.iter().filter(|b| **b == b'\n').count();
        for n in [2, 3, 7] {
            assert!(
                run(f, n) == one,
                "{}: output with {n} workers differs from one worker's",
                f.display()
            );
        }
    }
    assert!(
        lines > 2000,
        "the comparison covered real output ({lines} lines)"
    );
}
