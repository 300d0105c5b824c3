//! The fuzz targets as regression tests: every committed seed (`fuzz/seeds/TARGET/`, our own
//! traffic in each target's input format, made by `scripts/fuzz_seeds.py`) goes through the
//! target's check (`fuzz/checks/TARGET.rs`, the code `cargo fuzz` runs), with the overflow
//! checks and debug assertions of the test profile. Leaves the search for new inputs to
//! `scripts/fuzz.sh`.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/checks/capture_file.rs"]
mod capture_file;
#[path = "../../fuzz/checks/config_file.rs"]
mod config_file;
#[path = "../../fuzz/checks/decode_frame.rs"]
mod decode_frame;
#[path = "../../fuzz/checks/h2_frame.rs"]
mod h2_frame;
#[path = "../../fuzz/checks/h2_hpack.rs"]
mod h2_hpack;
#[path = "../../fuzz/checks/h2_session.rs"]
mod h2_session;
#[path = "../../fuzz/checks/http_session.rs"]
mod http_session;
#[path = "../../fuzz/checks/mirror_request.rs"]
mod mirror_request;
#[path = "../../fuzz/checks/reassembly.rs"]
mod reassembly;
#[path = "../../fuzz/checks/state_file.rs"]
mod state_file;
#[path = "../../fuzz/checks/store_record.rs"]
mod store_record;
#[path = "../../fuzz/checks/tls_keylog.rs"]
mod tls_keylog;
#[path = "../../fuzz/checks/tls_record.rs"]
mod tls_record;

/// The seeds of `target`, sorted; panics when there are none (a renamed folder must not turn
/// the test into a no-op).
fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

/// Runs every seed of `target` through `check`; fails naming each seed that panicked.
fn replay(target: &str, check: fn(&[u8])) {
    let mut failed = Vec::new();
    for path in seeds(target) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: seeds that fail the check: {failed:#?}"
    );
}

#[test]
fn capture_file_seeds_pass_the_check() {
    replay("capture_file", capture_file::check);
}

#[test]
fn config_file_seeds_pass_the_check() {
    replay("config_file", config_file::check);
}

#[test]
fn decode_frame_seeds_pass_the_check() {
    replay("decode_frame", decode_frame::check);
}

#[test]
fn http_session_seeds_pass_the_check() {
    replay("http_session", http_session::check);
}

#[test]
fn mirror_request_seeds_pass_the_check() {
    replay("mirror_request", mirror_request::check);
}

#[test]
fn reassembly_seeds_pass_the_check() {
    replay("reassembly", reassembly::check);
}

#[test]
fn state_file_seeds_pass_the_check() {
    replay("state_file", state_file::check);
}

#[test]
fn store_record_seeds_pass_the_check() {
    replay("store_record", store_record::check);
}

#[test]
fn tls_keylog_seeds_pass_the_check() {
    replay("tls_keylog", tls_keylog::check);
}

#[test]
fn tls_record_seeds_pass_the_check() {
    replay("tls_record", tls_record::check);
}

#[test]
fn h2_frame_seeds_pass_the_check() {
    replay("h2_frame", h2_frame::check);
}

#[test]
fn h2_hpack_seeds_pass_the_check() {
    replay("h2_hpack", h2_hpack::check);
}

#[test]
fn h2_session_seeds_pass_the_check() {
    replay("h2_session", h2_session::check);
}
