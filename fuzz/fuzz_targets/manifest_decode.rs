//! libFuzzer entry for `targets::manifest_decode` (the body lives in ../targets.rs).
#![no_main]

// Each binary calls one of the shared targets; the others are unused here.
#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::manifest_decode(data));
