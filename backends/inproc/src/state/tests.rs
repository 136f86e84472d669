//! Unit tests of `State`: the contract rules, without IO or a runtime.
