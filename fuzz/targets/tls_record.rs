//! The `tls_record` fuzz target. Its check lives in `fuzz/checks/tls_record.rs`, which the test
//! suite also runs on every committed seed of `fuzz/seeds/tls_record/` (tests/it/fuzz_seeds.rs).
#![no_main]

#[path = "../checks/tls_record.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
