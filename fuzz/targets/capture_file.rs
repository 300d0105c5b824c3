//! The `capture_file` fuzz target. Its check lives in `fuzz/checks/capture_file.rs`, which the test
//! suite also runs on every committed seed of `fuzz/seeds/capture_file/` (tests/it/fuzz_seeds.rs).
#![no_main]

#[path = "../checks/capture_file.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
