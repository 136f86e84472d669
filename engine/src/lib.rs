//! Campanile: a distributed cron scheduler, as a library.
//!
//! Every job fires at its scheduled instant exactly once across a cluster of nodes that share a
//! [`coordinator::Coordinator`] (in-process, etcd or ZooKeeper). Start a node with [`Scheduler::builder`];
//! see `ARCHITECTURE.md` for the map of the code and `docs/guarantees.md` for what is promised.

pub mod assign;
pub mod clock;
pub mod cluster;
pub mod coordinator;
pub mod exec;
pub mod history;
pub mod job;
pub mod metrics;
pub mod misfire;
#[cfg(feature = "testing")]
pub mod node;
// Without `testing`, the hooks only tests use (freezing, counting, the wake entry point) are unused.
#[cfg(not(feature = "testing"))]
#[allow(dead_code, unused_imports)]
mod node;
pub mod rebalance;
pub mod run;
pub mod schedule;
pub mod scheduler;

pub use cluster::{ClusterConfig, Worker, WorkerBuilder, WorkerError, WorkerStatus};
pub use coordinator::{CoordError, Coordinator, RunQuery};
pub use exec::FireContext;
pub use job::{FireId, Job, JobId, JobSpec, Target, ValidationError};
pub use node::ShutdownReport;
pub use node::executor::HandlerError;
pub use node::membership::NodeStatus;
pub use run::{Outcome, RunRecord};
pub use schedule::Schedule;
pub use scheduler::{Builder, Scheduler, SchedulerError};
