//! Integration tests of the `campanile` binary: each test starts real server processes (the built binary)
//! on loopback ports and talks to them over HTTP, or runs the CLI against them.
//!
//! Real time is unavoidable here: jobs fire every second (`* * * * * *`), and tests wait for conditions by
//! polling the API with a bounded deadline ([`harness::eventually`]), never for a fixed time, except where a
//! test proves that something does *not* happen, which needs an observation window.

mod api;
mod auth;
mod bad_input;
mod batch;
mod cli;
mod console;
mod contract;
mod docs;
mod etcd_cluster;
mod etcd_failover;
mod failover_skips;
mod hardening;
mod harness;
mod history;
mod live;
mod notify;
mod openapi;
mod run_as;
mod workers_cluster;
mod zk_cluster;
