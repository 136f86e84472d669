//! The conformance suite of `campanile-adapters` against a real ZooKeeper. Under `CI` a missing server
//! fails every case; elsewhere they skip with a notice.

campanile_adapters::conformance_suite!(crate::support::Factory);
