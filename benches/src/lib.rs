//! Shared pieces of Campanile's benchmarks and of the `scale` harness: the machine description, resident
//! memory, a lateness tally, and a tiny `metrics` recorder that lets the harness see what the timer holds.
//!
//! The criterion benchmarks live in `benches/` (`fire_path`, `next_fire`); the scale harness is the binary
//! `scale` (`src/bin/scale.rs`). Figures and the commands that reproduce them are in `docs/benchmarks.md`.

pub mod machine;
pub mod probe;
pub mod tally;
