//! The `reassembly` fuzz target. Its check lives in `fuzz/checks/reassembly.rs`, which the test
//! suite also runs on every committed seed of `fuzz/seeds/reassembly/` (tests/it/fuzz_seeds.rs).
#![no_main]

#[path = "../checks/reassembly.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
