//! The background task that enforces [`Retention`] on a store: a prune every interval, on tokio time.

use std::sync::Arc;
use std::time::Duration;

use campanile::clock::Clock;
use campanile::history::{HistoryStore, Pruned, Retention};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// Runs [`HistoryStore::prune`] with `retention` every `every` (first right away), reading wall time from
/// `clock`. A failed prune is logged and tried again at the next tick. Each finished prune is published on
/// the returned [`RetentionTask::pruned`] channel. The task ends when the handle is dropped or aborted.
pub fn spawn_retention(
    store: Arc<dyn HistoryStore>,
    retention: Retention,
    every: Duration,
    clock: Arc<dyn Clock>,
) -> RetentionTask {
    let (tx, rx) = watch::channel((0u64, Pruned::default()));
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rounds = 0u64;
        loop {
            tick.tick().await;
            match store.prune(retention, clock.now_ms()).await {
                Ok(pruned) => {
                    rounds += 1;
                    debug!(
                        store = store.kind(),
                        by_count = pruned.by_count,
                        by_age = pruned.by_age,
                        "history pruned"
                    );
                    tx.send_replace((rounds, pruned));
                }
                Err(e) => warn!(store = store.kind(), error = %e, "history prune failed"),
            }
        }
    });
    RetentionTask { task, pruned: rx }
}

/// The running retention task; aborted when dropped.
#[derive(Debug)]
pub struct RetentionTask {
    task: JoinHandle<()>,
    /// The number of prunes finished so far and what the last one removed.
    pub pruned: watch::Receiver<(u64, Pruned)>,
}

impl Drop for RetentionTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}
