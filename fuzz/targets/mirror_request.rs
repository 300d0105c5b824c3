//! The `mirror_request` fuzz target. Its check lives in `fuzz/checks/mirror_request.rs`, which the test
//! suite also runs on every committed seed of `fuzz/seeds/mirror_request/` (tests/it/fuzz_seeds.rs).
#![no_main]

#[path = "../checks/mirror_request.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
