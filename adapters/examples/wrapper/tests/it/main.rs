//! Integration tests of the counting wrapper: one binary (`tests/it/`), one module per concern.

mod conformance;
