//! Unit tests of `Store`: opening bad paths and files, and what survives a reopen.
