//! The `store_record` fuzz target. Its check lives in `fuzz/checks/store_record.rs`, which the test
//! suite also runs on every committed seed of `fuzz/seeds/store_record/` (tests/it/fuzz_seeds.rs).
#![no_main]

#[path = "../checks/store_record.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
