//! The Campanile backend extension point: a conformance suite that checks any
//! [`Coordinator`](campanile::Coordinator) backend against its contract, and a fault-injecting wrapper.
//!
//! - [`CoordinatorFactory`]: what a backend implements to be tested: fresh namespaces, clients onto them, a
//!   [`CleanupGuard`], and its timing ([`BackendProfile`]).
//! - [`suite`]: the cases, generic `pub async fn`s over a factory, each checking lines of the
//!   `### To ensure correctness:` lists and naming the line when a check fails.
//! - [`conformance_suite!`]: one named `#[tokio::test]` per case. Every backend crate invokes it once per mode,
//!   in its integration tests:
//!
//! ```text
//! // backends/mine/tests/it/conformance.rs
//! mod memory {
//!     campanile_adapters::conformance_suite!(super::MyFactory::default(), paused_time);
//! }
//! ```
//!
//! - [`FaultyCoordinator`]: wraps any `Arc<dyn Coordinator>` and injects delays, failures (with or without the
//!   write happening), failures after N calls, and partitions of one session, driven by a seeded RNG through a
//!   shared [`FaultControl`]. The engine's cluster simulation uses it.
//!
//! - [`Intercepted`]: the interception hook: an [`Interceptor`] sees every call before and after it is
//!   forwarded, so a logging, metrics or fault wrapper is a few lines.
//!
//! - [`history_suite`](mod@history_suite): the same for [`HistoryStore`](campanile::history::HistoryStore)s: a
//!   [`HistoryFactory`] builds fresh stores, [`history_suite!`] expands to one named test per case.
//!
//! `README.md` beside this crate is the guide to writing a backend; the `campanile-inproc` crate is the skeleton
//! to copy.

mod factory;
mod faulty;
pub mod history_suite;
mod intercept;
mod macros;
pub mod suite;

pub use factory::{
    BackendProfile, CleanupFn, CleanupGuard, CoordinatorFactory, Namespace, NamespaceOptions,
    RestartFn, SetupError,
};
pub use faulty::{ContractBreak, Fault, FaultControl, FaultStats, FaultyCoordinator, Method};
pub use history_suite::HistoryFactory;
pub use intercept::{Call, Intercepted, Interceptor};
