//! The `h2_session` fuzz target. Its check lives in `fuzz/checks/h2_session.rs`, which the test
//! suite also runs on every committed seed of `fuzz/seeds/h2_session/` (tests/it/fuzz_seeds.rs).
#![no_main]

#[path = "../checks/h2_session.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
