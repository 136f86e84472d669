//! The feeds: small tasks that read the coordinator's streams (the job store, the assignment, the members)
//! and forward each item to the actor as a message, re-subscribing with the one backoff when a stream fails.

use std::sync::Arc;

use ractor::ActorRef;
use tokio::task::JoinHandle;
use tracing::warn;

use super::{FEED_BATCH, Msg};
use crate::coordinator::{CoordError, Coordinator};

/// Reads the job store: a snapshot, then every change; resumes after a dropped watch, lists again after a
/// compaction.
pub(super) fn spawn_job_feed(
    coordinator: Arc<dyn Coordinator>,
    myself: ActorRef<Msg>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        'relist: loop {
            let snapshot = match coordinator.list_jobs().await {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    crate::metrics::coordinator_error("list_jobs");
                    warn!(%error, "listing jobs failed");
                    backoff.wait().await;
                    continue;
                }
            };
            let mut revision = snapshot.revision;
            if myself.cast(Msg::JobsListed(snapshot)).is_err() {
                return;
            }
            loop {
                let mut watch = match coordinator.watch_jobs(revision).await {
                    Ok(watch) => watch,
                    Err(CoordError::Compacted { .. }) => continue 'relist,
                    Err(error) => {
                        crate::metrics::coordinator_error("watch_jobs");
                        warn!(%error, revision, "watching jobs failed");
                        backoff.wait().await;
                        continue;
                    }
                };
                backoff.reset();
                let mut items = Vec::with_capacity(FEED_BATCH);
                'watch: while watch.recv_many(&mut items, FEED_BATCH).await > 0 {
                    let mut events = Vec::with_capacity(items.len());
                    let mut failure = None;
                    for item in items.drain(..) {
                        match item {
                            Ok(event) => {
                                revision = event.revision();
                                events.push(event);
                            }
                            Err(error) => {
                                failure = Some(error);
                                break;
                            }
                        }
                    }
                    if !events.is_empty() && myself.cast(Msg::JobsChanged(events)).is_err() {
                        return;
                    }
                    match failure {
                        None => {}
                        Some(CoordError::Compacted { .. }) => continue 'relist,
                        Some(error) => {
                            warn!(%error, revision, "job watch failed, resuming");
                            break 'watch;
                        }
                    }
                }
                backoff.wait().await;
            }
        }
    })
}

/// Forwards a `watch` channel from the coordinator as messages, re-subscribing when it closes.
pub(super) fn spawn_feeds(
    coordinator: Arc<dyn Coordinator>,
    myself: ActorRef<Msg>,
) -> Vec<JoinHandle<()>> {
    let assignment = {
        let coordinator = coordinator.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let mut backoff = Backoff::default();
            loop {
                match coordinator.watch_assignment().await {
                    Ok(mut rx) => {
                        backoff.reset();
                        loop {
                            let current = rx.borrow_and_update().clone();
                            if myself.cast(Msg::AssignmentChanged(current)).is_err() {
                                return;
                            }
                            if rx.changed().await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(error) => {
                        crate::metrics::coordinator_error("watch_assignment");
                        warn!(%error, "watching the assignment failed");
                    }
                }
                backoff.wait().await;
            }
        })
    };
    let members = tokio::spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            match coordinator.watch_members().await {
                Ok(mut rx) => {
                    backoff.reset();
                    loop {
                        let current = rx.borrow_and_update().clone();
                        if myself.cast(Msg::MembersChanged(current)).is_err() {
                            return;
                        }
                        if rx.changed().await.is_err() {
                            break;
                        }
                    }
                }
                Err(error) => {
                    crate::metrics::coordinator_error("watch_members");
                    warn!(%error, "watching members failed");
                }
            }
            backoff.wait().await;
        }
    });
    vec![assignment, members]
}

/// The feed loops' count of failures in a row, paused by the coordinator's one backoff
/// ([`crate::coordinator::backoff::RECONNECT`]).
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    async fn wait(&mut self) {
        self.failures = self.failures.saturating_add(1);
        tokio::time::sleep(crate::coordinator::backoff::RECONNECT.delay(self.failures)).await;
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}
