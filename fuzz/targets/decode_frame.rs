//! The `decode_frame` fuzz target. Its check lives in `fuzz/checks/decode_frame.rs`, which the test
//! suite also runs on every committed seed of `fuzz/seeds/decode_frame/` (tests/it/fuzz_seeds.rs).
#![no_main]

#[path = "../checks/decode_frame.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
