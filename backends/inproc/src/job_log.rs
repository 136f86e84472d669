//! `JobLog`: the recent job-store events and the live job watches they are fanned out to.

use std::collections::VecDeque;

use campanile::coordinator::{CoordError, CoordResult, JobEvent, JobWatch};
use tokio::sync::mpsc;
use tracing::debug;

/// Room a job watch has for events beyond its replayed backlog: one whole `put_jobs` batch and then some, so
/// that a watcher that keeps up between calls is never cut off by a single batch (and does not have to
/// resume, or list everything again if the batch outgrew the retained events). A watcher that falls this far
/// behind is cut off (its stream ends) instead of slowing down writers or growing without bound; it resumes
/// with `watch_jobs(last revision seen)`, served from the retained events.
pub(crate) const WATCH_BUFFER: usize = campanile::coordinator::limits::MAX_CREATE_BATCH + 1024;

/// The last `retention` job-store events, in revision order, plus the senders of the live job watches.
///
/// Every store revision is exactly one event (a put or a delete), so the retained events cover exactly the
/// revisions after `compacted_through`.
#[derive(Debug)]
pub(crate) struct JobLog {
    retention: usize,
    events: VecDeque<JobEvent>,
    /// Revisions up to here are no longer retained: a watch must start at or after it.
    compacted_through: u64,
    watchers: Vec<mpsc::Sender<CoordResult<JobEvent>>>,
}

impl JobLog {
    /// An empty log of a store at `revision`: earlier events (those of before a restart) are gone.
    pub(crate) fn new(retention: usize, revision: u64) -> Self {
        Self {
            retention,
            events: VecDeque::new(),
            compacted_through: revision,
            watchers: Vec::new(),
        }
    }

    /// Retains `event` and sends it to every watch. A watch whose channel is full or closed is dropped:
    /// its receiver drains what it holds, then ends.
    pub(crate) fn append(&mut self, event: JobEvent) {
        debug_assert!(
            event.revision() > self.last_revision(),
            "events in revision order"
        );
        self.watchers
            .retain(|tx| match tx.try_send(Ok(event.clone())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    debug!(
                        revision = event.revision(),
                        "job watch fell behind, ending it"
                    );
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        if self.retention == 0 {
            self.compacted_through = event.revision();
            return;
        }
        if self.events.len() == self.retention
            && let Some(oldest) = self.events.pop_front()
        {
            self.compacted_through = oldest.revision();
        }
        self.events.push_back(event);
    }

    /// A watch of every event after `after_revision`: the retained backlog first, then live events.
    pub(crate) fn watch(&mut self, after_revision: u64) -> CoordResult<JobWatch> {
        if after_revision < self.compacted_through {
            return Err(CoordError::Compacted {
                requested: after_revision,
                oldest: self.compacted_through,
            });
        }
        let start = self
            .events
            .partition_point(|e| e.revision() <= after_revision);
        let backlog = self.events.len() - start;
        let (tx, rx) = mpsc::channel(backlog + WATCH_BUFFER);
        for event in self.events.range(start..) {
            // Cannot fail: the channel has room for the whole backlog and the receiver is alive.
            let _ = tx.try_send(Ok(event.clone()));
        }
        self.watchers.push(tx);
        Ok(rx)
    }

    fn last_revision(&self) -> u64 {
        self.events
            .back()
            .map_or(self.compacted_through, JobEvent::revision)
    }
}
