//! The `state_file` fuzz target. Its check lives in `fuzz/checks/state_file.rs`, which the test
//! suite also runs on every committed seed of `fuzz/seeds/state_file/` (tests/it/fuzz_seeds.rs).
#![no_main]

#[path = "../checks/state_file.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
