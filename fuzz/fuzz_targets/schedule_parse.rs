//! libFuzzer target: arbitrary text as a schedule (see `campanile_fuzz::schedule_parse`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| campanile_fuzz::schedule_parse(data));
