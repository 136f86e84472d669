//! Campanile: a distributed cron scheduler, as a library.
//!
//! Every job fires at its scheduled instant exactly once across a cluster of nodes that share a
//! [`coordinator::Coordinator`] (in-process, etcd or ZooKeeper). See `ARCHITECTURE.md` for the map of the code
//! and `docs/guarantees.md` for what is promised.

pub mod clock;
pub mod coordinator;
pub mod exec;
pub mod job;
pub mod run;
pub mod schedule;

pub use coordinator::{CoordError, Coordinator};
pub use job::{FireId, Job, JobId, JobSpec, Target, ValidationError};
pub use run::{Outcome, RunRecord};
pub use schedule::Schedule;
