//! libFuzzer target: arbitrary bytes (see `campanile_fuzz::config_file`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| campanile_fuzz::config_file(data));
