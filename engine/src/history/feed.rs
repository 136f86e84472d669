//! `Feed`: carries the records the coordinator accepted to the node's history store, off the recorder's path.
//!
//! The recorder hands each answered batch over with [`Feed::accepted`], which never waits: the batch goes into
//! a bounded queue of [`QUEUE_BATCHES`] batches, and one task appends them to the store, retrying with backoff
//! while the store is unavailable (appends are idempotent on the fire id, so a retry after an ambiguous failure
//! is harmless). A record the coordinator answered `Duplicate` may still be this node's own (an earlier write
//! whose answer was lost): the task reads the coordinator's record of that fire id and appends that one, so
//! the store holds what the coordinator decided, never a record it refused. When the store stays down long
//! enough for the queue to fill, further batches are dropped with a warning and counted in
//! `campanile_history_dropped_total`: the coordinator keeps deciding and settling, and the history is what
//! is late, never the fires.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::warn;

use super::HistoryStore;
use crate::coordinator::{Coordinator, RecordResult, RunQuery};
use crate::run::RunRecord;

/// Answered batches waiting for the store (each at most the recorder's batch size).
pub const QUEUE_BATCHES: usize = 256;

/// Longest wait between two attempts while the store is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One answered batch: the records and the coordinator's answer to each.
type Answered = (Vec<RunRecord>, Vec<RecordResult>);

/// The sending side, held by the recorder (made by the node when its builder was given a store). Dropping
/// every clone ends the task once the queue is drained.
#[derive(Clone, Debug)]
pub struct Feed {
    tx: mpsc::Sender<Answered>,
}

impl Feed {
    /// Starts the task that appends to `store`, reading `Duplicate`s back from `coordinator`.
    pub fn start(store: Arc<dyn HistoryStore>, coordinator: Arc<dyn Coordinator>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        tokio::spawn(run(rx, store, coordinator));
        Self { tx }
    }

    /// Queues an answered batch for the store. Never waits; drops the batch (counted) when the queue is full.
    pub fn accepted(&self, records: &[RunRecord], results: &[RecordResult]) {
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.tx.try_send((records.to_vec(), results.to_vec())) {
            let dropped = match e {
                mpsc::error::TrySendError::Full((records, _))
                | mpsc::error::TrySendError::Closed((records, _)) => records.len(),
            };
            crate::metrics::history_dropped(dropped as u64);
            warn!(
                records = dropped,
                "history store queue full: records not copied to the history store"
            );
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<Answered>,
    store: Arc<dyn HistoryStore>,
    coordinator: Arc<dyn Coordinator>,
) {
    while let Some((records, results)) = rx.recv().await {
        let mut batch = Vec::with_capacity(records.len());
        for (record, result) in records.into_iter().zip(results) {
            match result {
                RecordResult::Recorded => batch.push(record),
                RecordResult::Duplicate => {
                    if let Some(kept) = read_back(&*coordinator, &record).await {
                        batch.push(kept);
                    }
                }
            }
        }
        let mut failures = 0u32;
        loop {
            match store.append(&batch).await {
                Ok(()) => break,
                Err(error) => {
                    failures += 1;
                    warn!(store = store.kind(), %error, records = batch.len(), failures, "appending to the history store failed");
                    let backoff = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tokio::time::sleep(backoff.min(MAX_BACKOFF)).await;
                }
            }
        }
    }
}

/// The coordinator's record of `record`'s fire id, if it still holds one.
async fn read_back(coordinator: &dyn Coordinator, record: &RunRecord) -> Option<RunRecord> {
    let query = RunQuery {
        from_ms: Some(record.scheduled_ms),
        before_ms: Some(record.scheduled_ms.saturating_add(1)),
        limit: 1,
    };
    match coordinator.runs(&record.job, query).await {
        Ok(found) => found
            .into_iter()
            .find(|r| r.scheduled_ms == record.scheduled_ms),
        Err(error) => {
            warn!(job = %record.job, scheduled_ms = record.scheduled_ms, %error, "reading back a duplicate run record failed");
            None
        }
    }
}
