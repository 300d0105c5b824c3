//! The jq recipes of docs/SHIPPING.md, run as written (the block after `<!-- tested: jq -->`),
//! with this build's idemwatch first on PATH: each must succeed and print something.

use std::path::Path;
use std::process::Command;

#[test]
fn the_jq_recipes_run_as_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/SHIPPING.md")).expect("docs/SHIPPING.md");
    let block = doc
        .split_once("<!-- tested: jq -->")
        .and_then(|(_, rest)| rest.split_once("```sh\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(b, _)| b)
        .expect("a tested jq block");
    let lines: Vec<&str> = block
        .lines()
        .filter(|l| l.starts_with("idemwatch "))
        .collect();
    assert!(lines.len() >= 5, "{block}");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_idemwatch"))
        .parent()
        .expect("binary dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in lines {
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", &format!("{line} 2>/dev/null")])
            .current_dir(root)
            .env("PATH", &path)
            .output()
            .expect("bash runs (and jq: apt-get install jq)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.trim().is_empty(), "{line}: printed nothing");
    }
}
