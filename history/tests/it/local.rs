//! The local store: the suite on a file and in memory, and a file that keeps its history across a reopen.

use std::sync::Arc;

use async_trait::async_trait;
use campanile::RunRecord;
use campanile::coordinator::NodeId;
use campanile::history::{HistoryQuery, HistoryStore};
use campanile::{FireId, JobId, Outcome};
use campanile_adapters::{CleanupGuard, HistoryFactory, SetupError};
use campanile_history::LocalStore;

/// Fresh history files in temporary directories.
struct FileFactory;

#[async_trait]
impl HistoryFactory for FileFactory {
    async fn store(&self) -> Result<(Arc<dyn HistoryStore>, CleanupGuard), SetupError> {
        let dir = tempfile::tempdir().map_err(SetupError::failed)?;
        let store =
            LocalStore::open(&dir.path().join("history.redb")).map_err(SetupError::failed)?;
        Ok((Arc::new(store), CleanupGuard::none().hold(dir)))
    }
}

/// Fresh in-memory stores.
struct MemoryFactory;

#[async_trait]
impl HistoryFactory for MemoryFactory {
    async fn store(&self) -> Result<(Arc<dyn HistoryStore>, CleanupGuard), SetupError> {
        let store = LocalStore::memory("local").map_err(SetupError::failed)?;
        Ok((Arc::new(store), CleanupGuard::none()))
    }
}

mod file {
    campanile_adapters::history_suite!(super::FileFactory);
}

mod memory {
    campanile_adapters::history_suite!(super::MemoryFactory);
}

#[tokio::test]
async fn a_reopened_file_keeps_its_history_and_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.redb");
    let node = NodeId::new("n1").unwrap();
    let job = JobId::new("nightly").unwrap();
    let records: Vec<RunRecord> = (1..=4)
        .map(|i| {
            RunRecord::new(
                &FireId::new(job.clone(), i * 1000),
                &node,
                Outcome::Succeeded,
            )
        })
        .collect();
    {
        let store = LocalStore::open(&path).unwrap();
        store.append(&records).await.unwrap();
    }
    let store = LocalStore::open(&path).unwrap();
    let held = store.runs(HistoryQuery::default()).await.unwrap();
    assert_eq!(held.len(), 4);
    // The per-job count survived too: retention trims exactly the excess.
    let pruned = store
        .prune(
            campanile::history::Retention {
                limit: 3,
                max_age: None,
            },
            0,
        )
        .await
        .unwrap();
    assert_eq!(pruned.by_count, 1);
    let held = store.runs(HistoryQuery::default()).await.unwrap();
    assert_eq!(
        held,
        vec![records[3].clone(), records[2].clone(), records[1].clone()]
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.redb");
    std::fs::write(
        &path,
        b"this is not a redb file, and it is long enough to look like one maybe",
    )
    .unwrap();
    let error = LocalStore::open(&path).unwrap_err().to_string();
    assert!(error.contains("history.redb"), "{error}");
}
