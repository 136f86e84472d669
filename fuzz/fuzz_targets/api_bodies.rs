//! libFuzzer target: arbitrary bytes (see `campanile_fuzz::api_bodies`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| campanile_fuzz::api_bodies(data));
