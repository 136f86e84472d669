//! `spawn_retention`: prunes in the background, on tokio time, until dropped.

use std::sync::Arc;
use std::time::Duration;

use campanile::clock::SystemClock;
use campanile::coordinator::NodeId;
use campanile::history::{HistoryQuery, HistoryStore, Retention};
use campanile::{FireId, JobId, Outcome, RunRecord};
use campanile_history::{LocalStore, spawn_retention};

#[tokio::test(start_paused = true)]
async fn retention_prunes_by_age_and_count_as_time_passes() {
    let start_ms = 1_700_000_000_000;
    let clock = SystemClock::starting_at(start_ms).shared();
    let store = Arc::new(LocalStore::memory("local").unwrap());
    let node = NodeId::new("n1").unwrap();
    let record = |job: &str, ms: i64| {
        RunRecord::new(
            &FireId::new(JobId::new(job).unwrap(), ms),
            &node,
            Outcome::Succeeded,
        )
    };
    // Job a: 5 records in the last 5 s; job b: one record now.
    let mut records: Vec<RunRecord> = (0..5).map(|s| record("a", start_ms - s * 1000)).collect();
    records.push(record("b", start_ms));
    store.append(&records).await.unwrap();

    let retention = Retention {
        limit: 3,
        max_age: Some(Duration::from_secs(60)),
    };
    let mut task = spawn_retention(store.clone(), retention, Duration::from_secs(30), clock);
    // The first prune runs at once: by count, a keeps its newest 3.
    task.pruned
        .wait_for(|(rounds, _)| *rounds >= 1)
        .await
        .unwrap();
    let held = store.runs(HistoryQuery::default()).await.unwrap();
    assert_eq!(held.len(), 4, "{held:?}");

    // A minute and a half later every record is older than max_age: a later prune drops them all.
    tokio::time::advance(Duration::from_secs(90)).await;
    task.pruned
        .wait_for(|(rounds, _)| *rounds >= 3)
        .await
        .unwrap();
    let held = store.runs(HistoryQuery::default()).await.unwrap();
    assert!(held.is_empty(), "{held:?}");
}
