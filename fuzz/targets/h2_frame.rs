//! The `h2_frame` fuzz target. Its check lives in `fuzz/checks/h2_frame.rs`.
#![no_main]

#[path = "../checks/h2_frame.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
