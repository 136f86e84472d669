//! libFuzzer target: arbitrary bytes as job JSON (see `campanile_fuzz::job_json`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| campanile_fuzz::job_json(data));
