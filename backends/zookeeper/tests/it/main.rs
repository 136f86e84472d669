//! Integration tests of `campanile-zookeeper` against a real ZooKeeper (`CAMPANILE_TEST_ZK`, started by
//! `scripts/zookeeper.sh`): the conformance suite, and what it cannot see (server restarts, sessions expired
//! by the server, bad input).

mod conformance;
mod faults;
mod support;
