//! `Feed`: carries the records the coordinator accepted to the node's history store, off the recorder's path.
//!
//! The recorder hands each answered batch over with [`Feed::accepted`], which never waits: the batch goes into
//! a queue bounded to [`MAX_QUEUED`] records, and one task appends them to the store, retrying with backoff
//! while the store is unavailable (appends are idempotent on the fire id, so a retry after an ambiguous failure
//! is harmless). A record the coordinator answered `Duplicate` may still be this node's own (an earlier write
//! whose answer was lost): the task reads the coordinator's record of that fire id and appends that one, so
//! the store holds what the coordinator decided, never a record it refused. When the store stays down long
//! enough for the queue to fill, further batches are dropped with a warning and counted in
//! `campanile_history_dropped_total`: the coordinator keeps deciding and settling, and the history is what
//! is late, never the fires.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::warn;

use super::HistoryStore;
use crate::coordinator::{Coordinator, RecordResult, RunQuery};
use crate::run::RunRecord;

/// Most records waiting for the store: about 100 s of 1,000 fires a second while the store is down, a few
/// tens of megabytes of typical records.
pub const MAX_QUEUED: usize = 100_000;

/// Longest wait between two attempts while the store is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One answered batch: the records and the coordinator's answer to each.
type Answered = (Vec<RunRecord>, Vec<RecordResult>);

/// The sending side, held by the recorder (made by the node when its builder was given a store). Dropping
/// every clone ends the task once the queue is drained.
#[derive(Clone, Debug)]
pub struct Feed {
    tx: mpsc::UnboundedSender<Answered>,
    /// Most records queued at once.
    max_queued: usize,
    /// Records sent and not yet appended (or given up on): the queue's bound.
    queued: Arc<AtomicUsize>,
}

impl Feed {
    /// Starts the task that appends to `store`, reading `Duplicate`s back from `coordinator`.
    pub fn start(store: Arc<dyn HistoryStore>, coordinator: Arc<dyn Coordinator>) -> Self {
        Self::with_bound(store, coordinator, MAX_QUEUED)
    }

    /// Like [`Feed::start`], holding at most `max_queued` records instead of [`MAX_QUEUED`].
    pub fn with_bound(
        store: Arc<dyn HistoryStore>,
        coordinator: Arc<dyn Coordinator>,
        max_queued: usize,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(rx, store, coordinator, queued.clone()));
        Self {
            tx,
            max_queued,
            queued,
        }
    }

    /// Records queued and not yet in the store.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Queues an answered batch for the store. Never waits; drops the batch (counted) when the queue is full.
    pub fn accepted(&self, records: &[RunRecord], results: &[RecordResult]) {
        if records.is_empty() {
            return;
        }
        let n = records.len();
        let room = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + n <= self.max_queued).then_some(queued + n)
            })
            .is_ok();
        let sent = room && self.tx.send((records.to_vec(), results.to_vec())).is_ok();
        if !sent {
            if room {
                self.queued.fetch_sub(n, Ordering::AcqRel);
            }
            crate::metrics::history_dropped(n as u64);
            warn!(
                records = n,
                "history store queue full: records not copied to the history store"
            );
        }
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Answered>,
    store: Arc<dyn HistoryStore>,
    coordinator: Arc<dyn Coordinator>,
    queued: Arc<AtomicUsize>,
) {
    while let Some((records, results)) = rx.recv().await {
        let n = records.len();
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
        queued.fetch_sub(n, Ordering::AcqRel);
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
