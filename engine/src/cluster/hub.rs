//! The owning node's side of executor groups: the hub actor, which keeps the registry of connected workers,
//! and [`Hub::attempt`], which sends one attempt of a fire to a worker of its group and waits for its result.
//!
//! The hub actor only receives: workers' messages (`ToHub`) and the process-group changes that say a worker's
//! link is gone. Sending is done by the executor's run task itself, under the registry's lock, so no actor
//! mailbox sits on the fire path. A task beside the actor sends the owner's heartbeat (its session and the
//! time until which it is proven valid) to every worker, and forgets workers that have gone silent.
//!
//! The dispatch protocol, per attempt, in two phases so that a lost message can never make two workers run
//! one fire:
//! 1. pick the least loaded worker of the group (sticky by job where loads are equal), and offer it the fire
//!    (`Start`) with `start_by_ms`: the end of the owner's claim window, or sooner (see [`SEND_WINDOW`]);
//! 2. the worker answers `Ready` (it holds a slot until `start_by_ms`, while the owner's session is valid as
//!    it last heard) or `Refused`, and starts nothing yet;
//! 3. no `Ready` by `start_by_ms` (a frozen worker, a message lost with its link): the hub has said go to
//!    nobody, so no worker can have started it; the next worker is offered it, within the claim window;
//! 4. after `Ready`, and only to that worker, `Go`: the worker starts it if still before `start_by_ms` and
//!    under a valid session, and answers `Acked` (or `Refused`: certainly not started, so the next worker may
//!    be offered it); the `Finished` result becomes the attempt's result; a worker lost after the go leaves
//!    the attempt `in_doubt`, never offered to another (the go may have arrived, and its `Acked` been lost).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::{Notify, broadcast, mpsc};
use tracing::warn;

use super::RemoteProgress;
#[cfg(feature = "testing")]
use super::protocol::ToHub;
use super::protocol::{OwnerLease, StartFire, ToWorker, WireResult, WorkerInfo};

mod actor;
#[cfg(test)]
mod tests;

use crate::clock::Clock;
use crate::coordinator::{NodeId, SessionId};
use crate::exec::AttemptResult;
use crate::job::{JobId, Target};
use crate::node::Fence;
use crate::run::Outcome;
pub(crate) use actor::HubActor;

/// The longest a single send may wait to start: past it, an unacknowledged send is given up and another
/// worker tried (if the claim window still allows), so one frozen worker does not hold a fire for the whole
/// window.
pub const SEND_WINDOW: Duration = Duration::from_secs(2);
/// How often the owner's heartbeat goes to every worker.
pub const HEARTBEAT: Duration = Duration::from_millis(250);
/// A worker not heard from for this long is lost: its runs are in doubt and it gets no fires until it is
/// heard from again. Workers say they are alive every [`super::worker::ALIVE_EVERY`]. Longer than
/// [`SEND_WINDOW`] + `ALIVE_EVERY`, so that an offer to a worker that froze is normally given up as
/// unanswered (certainly not started) before the worker is declared lost.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a manual fire (not claimed, so without a claim window) or a retry may wait for a worker.
pub const UNCLAIMED_WINDOW: Duration = Duration::from_secs(10);

/// A worker as the node sees it (`GET /v1/workers`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerStatus {
    /// The worker's id.
    pub id: String,
    /// Its executor group.
    pub group: String,
    /// The node it is connected to (this one).
    pub node: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its concurrency limit.
    pub max_concurrent: u32,
    /// Runs it reports in progress.
    pub running: u32,
    /// Fires this node has sent it that have not ended.
    pub in_flight: u32,
    /// Unix ms it was last heard from.
    pub last_heartbeat_ms: i64,
    /// Its Campanile version.
    pub version: String,
    /// Handlers it offers (embedded workers).
    pub handlers: Vec<String>,
}

/// What happened to a worker, for webhooks and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEvent {
    /// A worker registered.
    Joined(WorkerStatus),
    /// A worker's link broke or it went silent; `in_doubt` fires were in progress on it.
    Lost {
        /// The worker as last seen.
        worker: WorkerStatus,
        /// Why it is considered lost.
        reason: String,
        /// Fires that were running on it (now in doubt).
        in_doubt: u32,
    },
}

/// One fire attempt to send to a worker.
#[derive(Debug, Clone)]
pub struct RemoteAttempt {
    /// The executor group.
    pub group: String,
    /// The job.
    pub job: JobId,
    /// The job's name.
    pub job_name: String,
    /// The scheduled instant.
    pub scheduled_ms: i64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// What to run.
    pub target: Target,
    /// The session the fire was claimed under (`None` for manual fires).
    pub session: Option<SessionId>,
    /// The end of the claim window (Unix ms): nothing starts after it.
    pub deadline_ms: i64,
    /// Whether a run lost with its worker may be sent again (`at_least_once`).
    pub at_least_once: bool,
    /// Where the dispatch stands, for the owner's executor (see [`RemoteProgress`]).
    pub progress: Arc<RemoteProgress>,
}

/// What a pending dispatch learns.
#[derive(Debug)]
enum Event {
    Ready,
    Acked,
    Refused(String),
    Finished(WireResult),
    Lost(String),
}

struct Entry {
    info: WorkerInfo,
    actor: ActorRef<ToWorker>,
    running: u32,
    in_flight: u32,
    last_seen_ms: i64,
    /// Set when a send went unacknowledged: no fires until the worker is heard from again.
    suspect: bool,
}

impl Entry {
    fn status(&self, node: &NodeId) -> WorkerStatus {
        WorkerStatus {
            id: self.info.id.clone(),
            group: self.info.group.clone(),
            node: node.to_string(),
            labels: self.info.labels.clone(),
            max_concurrent: self.info.max_concurrent,
            running: self.running,
            in_flight: self.in_flight,
            last_heartbeat_ms: self.last_seen_ms,
            version: self.info.version.clone(),
            handlers: self.info.handlers.clone(),
        }
    }

    fn can_take(&self, target: &Target) -> bool {
        !self.suspect
            && self.in_flight < self.info.max_concurrent.max(1)
            && match target {
                Target::Handler(h) => self.info.handlers.contains(&h.name),
                _ => true,
            }
    }
}

struct Pending {
    worker: String,
    events: mpsc::UnboundedSender<Event>,
}

#[derive(Default)]
struct Registry {
    workers: BTreeMap<String, Entry>,
    pending: HashMap<u64, Pending>,
    /// The worker each job last ran on, for ties.
    sticky: HashMap<JobId, String>,
}

impl Registry {
    /// Removes a worker and fails its pending dispatches with `Lost`; returns the event to publish.
    fn lose(&mut self, id: &str, reason: &str, node: &NodeId) -> Option<WorkerEvent> {
        let entry = self.workers.remove(id)?;
        let mut in_doubt = 0;
        self.pending.retain(|_, p| {
            if p.worker == id {
                in_doubt += 1;
                let _ = p.events.send(Event::Lost(reason.to_owned()));
                false
            } else {
                true
            }
        });
        self.sticky.retain(|_, w| w != id);
        Some(WorkerEvent::Lost {
            worker: entry.status(node),
            reason: reason.to_owned(),
            in_doubt,
        })
    }

    fn group_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for entry in self.workers.values() {
            *counts.entry(entry.info.group.clone()).or_default() += 1;
        }
        counts
    }
}

/// State shared by the hub actor, its heartbeat task and the executor's run tasks.
pub(crate) struct Shared {
    node: NodeId,
    clock: Arc<dyn Clock>,
    registry: Mutex<Registry>,
    /// The node's fence, set each time the node (re)starts its actors.
    fence: Mutex<Option<Fence>>,
    /// Woken when a worker registers or a run ends (capacity may have appeared).
    changed: Notify,
    next_dispatch: AtomicU64,
    events: broadcast::Sender<WorkerEvent>,
    /// Groups whose gauge was set, so that a group whose last worker left goes to 0.
    gauged: Mutex<HashSet<String>>,
}

impl Shared {
    fn lease(&self) -> Option<OwnerLease> {
        let fence = self
            .fence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let lease = (*fence.lock().unwrap_or_else(|p| p.into_inner()))?;
        Some(OwnerLease {
            session: lease.session,
            valid_until_ms: lease.valid_until_ms,
        })
    }

    fn publish(&self, event: Option<WorkerEvent>) {
        if let Some(event) = event {
            if let WorkerEvent::Lost {
                worker,
                reason,
                in_doubt,
            } = &event
            {
                warn!(worker = %worker.id, group = %worker.group, %reason, in_doubt, "worker lost");
            }
            let _ = self.events.send(event);
        }
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let counts = self.registry().group_counts();
        let mut gauged = self.gauged.lock().unwrap_or_else(|p| p.into_inner());
        for group in gauged.iter() {
            if !counts.contains_key(group) {
                metrics::gauge!(crate::metrics::WORKERS, "group" => group.clone()).set(0.0);
            }
        }
        for (group, n) in &counts {
            metrics::gauge!(crate::metrics::WORKERS, "group" => group.clone()).set(*n as f64);
            gauged.insert(group.clone());
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Heartbeats every worker and forgets the silent ones.
    fn tick(&self) {
        let lease = self.lease();
        let now_ms = self.clock.now_ms();
        let owner = self.node.to_string();
        let mut lost = Vec::new();
        {
            let mut registry = self.registry();
            let silent: Vec<String> = registry
                .workers
                .values()
                .filter(|e| now_ms - e.last_seen_ms > WORKER_TIMEOUT.as_millis() as i64)
                .map(|e| e.info.id.clone())
                .collect();
            for id in silent {
                lost.push(registry.lose(
                    &id,
                    &format!(
                        "not heard from for {}",
                        humantime::format_duration(WORKER_TIMEOUT)
                    ),
                    &self.node,
                ));
            }
            for entry in registry.workers.values() {
                let _ = entry.actor.cast(ToWorker::Heartbeat {
                    owner: owner.clone(),
                    lease,
                });
            }
        }
        for event in lost {
            self.publish(event);
        }
    }
}

/// The hub: a node's handle on its workers (cheap to clone).
#[derive(Clone)]
pub struct Hub {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.shared.node)
            .finish()
    }
}

impl Hub {
    pub(crate) fn new(node: NodeId, clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::new(Shared {
                node,
                clock,
                registry: Mutex::default(),
                fence: Mutex::default(),
                changed: Notify::new(),
                next_dispatch: AtomicU64::new(1),
                events: broadcast::channel(256).0,
                gauged: Mutex::default(),
            }),
        }
    }

    /// Points the heartbeat at the node's current fence (called whenever the node starts its actors).
    pub(crate) fn set_fence(&self, fence: Fence) {
        *self.shared.fence.lock().unwrap_or_else(|p| p.into_inner()) = Some(fence);
    }

    /// The connected workers, by group then id.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        let registry = self.shared.registry();
        let mut all: Vec<WorkerStatus> = registry
            .workers
            .values()
            .map(|e| e.status(&self.shared.node))
            .collect();
        all.sort_by(|a, b| (&a.group, &a.id).cmp(&(&b.group, &b.id)));
        all
    }

    /// Workers joining and being lost.
    pub fn subscribe(&self) -> broadcast::Receiver<WorkerEvent> {
        self.shared.events.subscribe()
    }

    /// Picks a worker for `req` and registers a dispatch to it, or says why none can take it now.
    fn pick(
        &self,
        req: &RemoteAttempt,
        tried: &HashSet<String>,
    ) -> Option<(
        u64,
        ActorRef<ToWorker>,
        String,
        mpsc::UnboundedReceiver<Event>,
    )> {
        let mut registry = self.shared.registry();
        let sticky = registry.sticky.get(&req.job).cloned();
        let best = registry
            .workers
            .values()
            .filter(|e| e.info.group == req.group && !tried.contains(&e.info.id))
            .filter(|e| e.can_take(&req.target))
            // Least loaded by share of capacity; ties: the job's last worker, then the id.
            .min_by(|a, b| {
                let load = |e: &Entry| {
                    u64::from(e.in_flight) * 1_000_000 / u64::from(e.info.max_concurrent.max(1))
                };
                load(a)
                    .cmp(&load(b))
                    .then_with(|| {
                        (sticky.as_deref() != Some(&a.info.id))
                            .cmp(&(sticky.as_deref() != Some(&b.info.id)))
                    })
                    .then_with(|| a.info.id.cmp(&b.info.id))
            })?
            .info
            .id
            .clone();
        let entry = registry.workers.get_mut(&best)?;
        let actor = entry.actor.clone();
        entry.in_flight += 1;
        let dispatch = self.shared.next_dispatch.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        registry.pending.insert(
            dispatch,
            Pending {
                worker: best.clone(),
                events: tx,
            },
        );
        registry.sticky.insert(req.job.clone(), best.clone());
        Some((dispatch, actor, best, rx))
    }

    /// Ends a dispatch: frees the worker's slot.
    fn settle(&self, dispatch: u64) {
        let mut registry = self.shared.registry();
        if let Some(p) = registry.pending.remove(&dispatch)
            && let Some(entry) = registry.workers.get_mut(&p.worker)
        {
            entry.in_flight = entry.in_flight.saturating_sub(1);
        }
        drop(registry);
        self.shared.changed.notify_waiters();
    }

    fn mark_suspect(&self, worker: &str) {
        if let Some(entry) = self.shared.registry().workers.get_mut(worker) {
            entry.suspect = true;
        }
    }

    /// Runs one attempt on a worker of `req.group` and returns its result: the worker's, or `misfired` when no
    /// worker could start it within the claim window, or `in_doubt` when the worker was lost after it may
    /// have started.
    pub async fn attempt(&self, req: RemoteAttempt) -> AttemptResult {
        let clock = self.shared.clock.clone();
        let mut tried = HashSet::new();
        let mut note: Option<String> = None;
        let mut deadline_ms = req.deadline_ms;
        loop {
            let now_ms = clock.now_ms();
            if now_ms >= deadline_ms {
                crate::metrics::remote_dispatch_failed("no_worker");
                return with_note(
                    result(Outcome::Misfired, no_worker_reason(&req, &tried)),
                    note,
                );
            }
            let Some((dispatch, actor, worker, mut events)) = self.pick(&req, &tried) else {
                // Nobody can take it now: wait for a worker to register or a slot to free, up to the deadline.
                let changed = self.shared.changed.notified();
                let wait = Duration::from_millis((deadline_ms - now_ms).max(0) as u64);
                let _ = tokio::time::timeout(wait.min(Duration::from_millis(200)), changed).await;
                continue;
            };
            let guard = CancelOnDrop {
                hub: self,
                dispatch,
                actor: Some(actor.clone()),
            };
            let start_by_ms = deadline_ms.min(now_ms + SEND_WINDOW.as_millis() as i64);
            let sent_us = clock.now_us();
            let start = StartFire {
                dispatch,
                owner: self.shared.node.to_string(),
                job: req.job.clone(),
                scheduled_ms: req.scheduled_ms,
                job_name: req.job_name.clone(),
                attempt: req.attempt,
                target: req.target.clone(),
                session: req.session,
                lease: self.shared.lease(),
                start_by_ms,
            };
            if actor.cast(ToWorker::Start(Box::new(start))).is_err() {
                // The link is gone before the send: certainly not started.
                guard.settled();
                tried.insert(worker);
                continue;
            }
            // Phase one: the offer. Until this hub says go, the worker cannot start the fire, so an offer that
            // is not answered `Ready` by its start-by time (a frozen worker, a lost message) is given up and
            // the next worker tried, with nothing to doubt.
            let ready = tokio::time::timeout(
                Duration::from_millis((start_by_ms - clock.now_ms()).max(0) as u64),
                events.recv(),
            )
            .await;
            match ready {
                Ok(Some(Event::Ready)) if clock.now_ms() < start_by_ms => {}
                Ok(Some(Event::Refused(reason))) => {
                    crate::metrics::remote_dispatch_failed("refused");
                    tracing::debug!(job = %req.job, %worker, %reason, "worker refused a fire");
                    guard.settled();
                    tried.insert(worker);
                    continue;
                }
                Ok(
                    Some(Event::Ready | Event::Acked | Event::Finished(_) | Event::Lost(_)) | None,
                )
                | Err(_) => {
                    crate::metrics::remote_dispatch_failed("not_acknowledged");
                    warn!(job = %req.job, %worker, "worker did not take a fire in time; trying another");
                    guard.settled();
                    self.mark_suspect(&worker);
                    tried.insert(worker);
                    continue;
                }
            }
            // Phase two: go, to this worker only. From here the fire may run on it, so it goes to no other
            // worker unless this one refuses (certainly not started).
            req.progress.go();
            if actor
                .cast(ToWorker::Go {
                    owner: self.shared.node.to_string(),
                    dispatch,
                })
                .is_err()
            {
                // The link is gone before the go: certainly not started.
                req.progress.refused();
                guard.settled();
                tried.insert(worker);
                continue;
            }
            let lost = match events.recv().await {
                Some(Event::Acked) => {
                    req.progress.acked(clock.now_ms());
                    metrics::histogram!(crate::metrics::REMOTE_DISPATCH)
                        .record((clock.now_us() - sent_us).max(0) as f64 / 1e6);
                    // Started: wait for the result, or for the worker's loss.
                    match events.recv().await {
                        Some(Event::Finished(result)) => {
                            req.progress.finished(clock.now_ms());
                            guard.settled();
                            return with_note(worker_result(result, &worker), note);
                        }
                        Some(Event::Lost(reason) | Event::Refused(reason)) => reason,
                        Some(Event::Acked | Event::Ready) | None => {
                            "its result was lost".to_owned()
                        }
                    }
                }
                Some(Event::Finished(result)) => {
                    // A result without an acknowledgement: it ran.
                    req.progress.finished(clock.now_ms());
                    guard.settled();
                    return with_note(worker_result(result, &worker), note);
                }
                Some(Event::Refused(reason)) => {
                    // Too late by the worker's clock, or fenced: it did not start and will not.
                    crate::metrics::remote_dispatch_failed("refused");
                    tracing::debug!(job = %req.job, %worker, %reason, "worker refused a fire at go");
                    req.progress.refused();
                    guard.settled();
                    tried.insert(worker);
                    continue;
                }
                // Lost after the go: it may have started, unacknowledged.
                Some(Event::Lost(reason)) => reason,
                Some(Event::Ready) | None => "its link broke".to_owned(),
            };
            guard.settled();
            crate::metrics::remote_dispatch_failed("worker_lost");
            let why = format!("worker {worker} was lost mid-run ({lost})");
            tried.insert(worker);
            if req.at_least_once && note.is_none() {
                // Sent once more, as a successor would redeliver an instant in doubt: within a send window of
                // its own (the claim window may be over by now; the owner's session still fences the start).
                note = Some(format!("redelivered: {why} (at_least_once)"));
                deadline_ms = deadline_ms.max(clock.now_ms() + SEND_WINDOW.as_millis() as i64);
                continue;
            }
            return with_note(result(Outcome::InDoubt, why), note);
        }
    }
}

/// In-process workers, for the cluster simulation: the hub talks to a local actor as it would to a remote
/// worker's, and the worker's answers come in through [`Hub::deliver`] instead of a link.
#[cfg(feature = "testing")]
impl Hub {
    /// Registers (or refreshes) an in-process worker whose actor is `actor`.
    pub fn attach(&self, info: WorkerInfo, actor: ActorRef<ToWorker>) {
        let now_ms = self.shared.clock.now_ms();
        actor::receive(
            &self.shared,
            ToHub::Alive { info, running: 0 },
            now_ms,
            |_| Some(actor),
        );
    }

    /// A message of an in-process worker, as if it arrived over its link.
    pub fn deliver(&self, msg: ToHub) {
        let now_ms = self.shared.clock.now_ms();
        actor::receive(&self.shared, msg, now_ms, |_| None);
    }

    /// An in-process worker's link broke (its process died).
    pub fn detach(&self, id: &str) {
        let event =
            self.shared
                .registry()
                .lose(id, "its link to this node broke", &self.shared.node);
        self.shared.publish(event);
    }
}

/// Sends `Cancel` for a dispatch whose waiting future is dropped before it ended (the owner killed the run:
/// `cancel_previous`, shutdown), and frees its slot.
struct CancelOnDrop<'a> {
    hub: &'a Hub,
    dispatch: u64,
    actor: Option<ActorRef<ToWorker>>,
}

impl CancelOnDrop<'_> {
    /// The dispatch ended normally: free the slot, send nothing.
    fn settled(mut self) {
        self.actor = None;
        self.hub.settle(self.dispatch);
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(actor) = self.actor.take() {
            let _ = actor.cast(ToWorker::Cancel {
                owner: self.hub.shared.node.to_string(),
                dispatch: self.dispatch,
            });
            self.hub.settle(self.dispatch);
        }
    }
}

fn result(outcome: Outcome, reason: String) -> AttemptResult {
    AttemptResult {
        outcome,
        code: None,
        output: String::new(),
        reason: Some(reason),
    }
}

fn worker_result(result: WireResult, worker: &str) -> AttemptResult {
    let mut result = AttemptResult::from(result);
    let on = format!("worker {worker}");
    result.reason = Some(match result.reason {
        Some(reason) => format!("{on}: {reason}"),
        None => on,
    });
    result
}

fn with_note(mut result: AttemptResult, note: Option<String>) -> AttemptResult {
    if let Some(note) = note {
        result.reason = Some(match result.reason {
            Some(reason) => format!("{note}; {reason}"),
            None => note,
        });
    }
    result
}

fn no_worker_reason(req: &RemoteAttempt, tried: &HashSet<String>) -> String {
    let mut reason = format!("no worker of group {}", req.group);
    if let Target::Handler(h) = &req.target {
        reason.push_str(&format!(" offering handler {:?}", h.name));
    }
    if tried.is_empty() {
        reason.push_str(" was connected within the claim window");
    } else {
        let mut tried: Vec<&String> = tried.iter().collect();
        tried.sort();
        reason.push_str(&format!(
            " started it within the claim window (tried: {})",
            tried.into_iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    reason
}
