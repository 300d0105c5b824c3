//! The `h2_hpack` fuzz target. Its check lives in `fuzz/checks/h2_hpack.rs`.
#![no_main]

#[path = "../checks/h2_hpack.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
