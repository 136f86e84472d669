//! The in-process history store (`InprocCoordinator::history`) through the history conformance suite, in
//! memory and in a durable file, and what the suite cannot see: the file keeps the history across a reopen.

use std::sync::Arc;

use async_trait::async_trait;
use campanile::coordinator::NodeId;
use campanile::history::{HistoryQuery, HistoryStore};
use campanile::job::{FireId, JobId};
use campanile::run::{Outcome, RunRecord};
use campanile_adapters::{CleanupGuard, HistoryFactory, SetupError};
use campanile_inproc::InprocCoordinator;

/// In-memory coordinators' history stores.
struct Memory;

#[async_trait]
impl HistoryFactory for Memory {
    async fn store(&self) -> Result<(Arc<dyn HistoryStore>, CleanupGuard), SetupError> {
        let coordinator = InprocCoordinator::memory();
        let store = coordinator.history().map_err(SetupError::failed)?;
        Ok((store, CleanupGuard::none().hold(coordinator)))
    }
}

/// Durable coordinators' history stores, in temporary files.
struct Durable;

#[async_trait]
impl HistoryFactory for Durable {
    async fn store(&self) -> Result<(Arc<dyn HistoryStore>, CleanupGuard), SetupError> {
        let dir = tempfile::tempdir().map_err(SetupError::failed)?;
        let coordinator = InprocCoordinator::open(dir.path().join("campanile.redb"))
            .map_err(SetupError::failed)?;
        let store = coordinator.history().map_err(SetupError::failed)?;
        Ok((store, CleanupGuard::none().hold(coordinator).hold(dir)))
    }
}

mod memory {
    campanile_adapters::history_suite!(super::Memory);
}

mod durable {
    campanile_adapters::history_suite!(super::Durable);
}

#[tokio::test]
async fn the_file_keeps_the_history_across_a_reopen_and_clones_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("campanile.redb");
    let record = RunRecord::new(
        &FireId::new(JobId::new("j").unwrap(), 42),
        &NodeId::new("n1").unwrap(),
        Outcome::Failed,
    );
    {
        let coordinator = InprocCoordinator::open(&path).unwrap();
        let clone = coordinator.clone();
        coordinator
            .history()
            .unwrap()
            .append(std::slice::from_ref(&record))
            .await
            .unwrap();
        let seen = clone
            .history()
            .unwrap()
            .runs(HistoryQuery::default())
            .await
            .unwrap();
        assert_eq!(seen, vec![record.clone()], "a clone sees the same store");
    }
    let reopened = InprocCoordinator::open(&path).unwrap();
    let seen = reopened
        .history()
        .unwrap()
        .runs(HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(seen, vec![record]);
}
