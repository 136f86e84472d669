//! Integration tests of the history stores: the conformance suite on each (local file, memory, PostgreSQL
//! named by `CAMPANILE_TEST_POSTGRES`), what the suite cannot check (a reopened file keeps its history), and
//! the background retention task.

mod broken;
mod local;
mod postgres;
mod retention;
