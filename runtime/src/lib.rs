//! The standalone Campanile node, as a library behind the `campanile` binary: configuration, the HTTP API,
//! the server, the CLI client, webhook notifications and the worker of executor groups. See `docs/operations.md` for running it.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod describe;
pub mod notify;
pub mod output;
pub mod server;
pub mod telemetry;
pub mod worker;
