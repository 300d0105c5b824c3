//! The `http_session` fuzz target. Its check lives in `fuzz/checks/http_session.rs`, which the test
//! suite also runs on every committed seed of `fuzz/seeds/http_session/` (tests/it/fuzz_seeds.rs).
#![no_main]

#[path = "../checks/http_session.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
