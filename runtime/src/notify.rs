//! Webhook notifications: failed and timed-out runs, misfires, in-doubt fires, lost nodes and lost workers
//! (`worker_lost`, from this node's hub of executor groups, reported by the node the worker was linked to) are POSTed as
//! JSON to the configured webhooks, with retries and backoff, from bounded queues that never block
//! anything else (a full queue drops the event and counts it in `campanile_notifications_total`).
//!
//! Run events come from the engine's feed of the records this node stores (`Scheduler::subscribe_runs`), as
//! they are stored: no coordinator read per job, and a record of a job owned elsewhere (a trigger run here)
//! is seen like any other. Only records of this node are reported, so every event is sent once across the
//! cluster; records stored before the notifier started are history, not news. If the notifier falls more
//! than the feed's capacity behind (a burst of thousands of failures), the records it skipped are counted
//! in `campanile_notifications_total{result="lagged"}` and logged. A lost node is reported by the leader
//! only, when a member leaves the member list (session expired or closed), checked every `poll_interval`.
//!
//! A job chooses its webhooks with its `notify` label: `notify=ops,pager` sends only to those names,
//! `notify=none` sends nothing; without the label every webhook gets the job's events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campanile::{Job, Outcome, RunRecord, Scheduler};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{EventKind, NotifyConfig, WebhookConfig};
use crate::telemetry::NOTIFICATIONS;

/// A notification, as POSTed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// The node that sends it.
    pub node: String,
    /// Unix ms at which it was noticed.
    pub at_ms: i64,
    /// The job, for run events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRef>,
    /// The run record, for run events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::api::schema::RunRecordDoc>)]
    pub run: Option<RunRecord>,
    /// The lost member's id, for `node_lost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_node: Option<String>,
    /// The lost worker, for `worker_lost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_worker: Option<LostWorker>,
}

/// A worker of an executor group that a node lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LostWorker {
    /// Its id.
    pub id: String,
    /// Its executor group.
    pub group: String,
    /// Why it counts as lost (`its link to this node broke`, `not heard from for 3s`).
    pub reason: String,
    /// Fires that were running on it, now recorded `in_doubt` (or sent again, for `at_least_once` jobs).
    pub in_doubt: u32,
}

/// The job an event is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRef {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The kind of event a run record is, if it is one.
pub fn event_of(outcome: Outcome) -> Option<EventKind> {
    match outcome {
        Outcome::Failed => Some(EventKind::RunFailed),
        Outcome::TimedOut => Some(EventKind::RunTimedOut),
        Outcome::Misfired => Some(EventKind::Misfired),
        Outcome::InDoubt => Some(EventKind::InDoubt),
        _ => None,
    }
}

/// The handle: stops the tasks.
#[derive(Clone)]
pub struct Notifier {
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    poller: Arc<Mutex<Option<JoinHandle<()>>>>,
}

struct Hook {
    config: WebhookConfig,
    queue: mpsc::Sender<Arc<Event>>,
}

impl Notifier {
    /// Starts the watcher and one delivery task per webhook; `None` when no webhook is configured.
    ///
    /// Deliveries obey the node's egress policy as HTTP targets do (no redirects, no denied destination).
    pub fn start(
        config: &NotifyConfig,
        egress: &campanile::exec::Egress,
        scheduler: Scheduler,
    ) -> Option<Notifier> {
        if config.webhooks.is_empty() {
            return None;
        }
        let clock: Arc<dyn campanile::clock::Clock> = campanile::clock::SystemClock::new().shared();
        let client = egress
            .client_builder(false)
            .user_agent(concat!("campanile/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let mut hooks = Vec::new();
        let mut tasks = Vec::new();
        for hook in &config.webhooks {
            let (tx, rx) = mpsc::channel(config.queue);
            tasks.push(tokio::spawn(deliver(
                hook.clone(),
                client.clone(),
                egress.clone(),
                rx,
            )));
            hooks.push(Hook {
                config: hook.clone(),
                queue: tx,
            });
        }
        let notifier = Notifier {
            tasks: Arc::new(Mutex::new(tasks)),
            poller: Arc::default(),
        };
        // Subscribed before the task starts: no record stored from here on is missed.
        let runs = scheduler.subscribe_runs();
        let workers = scheduler.worker_events();
        let poller = Poller {
            scheduler,
            hooks,
            clock,
            members: None,
            orphans: BTreeSet::new(),
        };
        let handle = tokio::spawn(poller.run(runs, workers, config.poll_interval));
        *notifier.poller.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Some(notifier)
    }

    /// Stops polling and gives queued deliveries up to `grace` to finish.
    pub async fn stop(&self, grace: Duration) {
        let poller = self.poller.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(poller) = poller {
            poller.abort();
            let _ = poller.await;
        }
        // The poller owned the senders: with it gone, each delivery task ends after its queue.
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let all = join_all(tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("webhook deliveries still pending at shutdown were dropped");
        }
    }
}

async fn join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

struct Poller {
    scheduler: Scheduler,
    hooks: Vec<Hook>,
    clock: Arc<dyn campanile::clock::Clock>,
    /// Member ids at the last look.
    members: Option<BTreeSet<String>>,
    /// Members seen leaving while no other live node led (the leader itself left, or none was elected): the
    /// node that leads next reports them (see [`Poller::members`]).
    orphans: BTreeSet<String>,
}

/// Most lost members kept for a leader to come (more than any cluster has nodes).
const MAX_ORPHANS: usize = 1024;

impl Poller {
    async fn run(
        mut self,
        mut runs: broadcast::Receiver<RunRecord>,
        mut workers: Option<broadcast::Receiver<campanile::cluster::WorkerEvent>>,
        every: Duration,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                event = next_worker_event(&mut workers) => {
                    if let Some(campanile::cluster::WorkerEvent::Lost { worker, reason, in_doubt }) = event {
                        self.worker_lost(LostWorker { id: worker.id, group: worker.group, reason, in_doubt });
                    }
                }
                record = runs.recv() => match record {
                    Ok(record) => self.record(record).await,
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        warn!(skipped, "notifications fell behind the run feed; skipped records are not reported");
                        metrics::counter!(NOTIFICATIONS, "webhook" => "", "result" => "lagged")
                            .increment(skipped);
                    }
                    // The node stopped: nothing more will be stored.
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    if let Err(e) = self.members().await {
                        debug!(error = %e, "member check failed");
                    }
                }
            }
        }
    }

    /// Reports a record this node stored, if it is an event.
    async fn record(&mut self, record: RunRecord) {
        let Some(kind) = event_of(record.outcome) else {
            return;
        };
        let job = match self.scheduler.get(&record.job).await {
            Ok(Some(job)) => job,
            Ok(None) => return, // deleted since: its history went with it
            Err(e) => {
                warn!(error = %e, job = %record.job, "job unavailable; its run event is sent without it");
                let event = Event {
                    event: kind,
                    node: self.scheduler.node_id().to_string(),
                    at_ms: self.clock.now_ms(),
                    job: None,
                    run: Some(record),
                    lost_node: None,
                    lost_worker: None,
                };
                self.send(None, event);
                return;
            }
        };
        let event = Event {
            event: kind,
            node: self.scheduler.node_id().to_string(),
            at_ms: self.clock.now_ms(),
            job: Some(job_ref(&job)),
            run: Some(record),
            lost_node: None,
            lost_worker: None,
        };
        self.send(Some(&job), event);
    }

    /// Reports members that left since the last look, once per lost member, from the node that leads.
    ///
    /// Every node watches the member list. A member that leaves while another live node leads is reported by
    /// that leader (from its own look). One that leaves while no other live node leads (it was the leader, or
    /// there was none) is kept as an orphan by every node that saw it go; the node that becomes leader reports
    /// its orphans, and the others drop theirs once they see a live leader that is not them.
    async fn members(&mut self) -> Result<(), campanile::SchedulerError> {
        let coordinator = self.scheduler.coordinator().clone();
        let members: BTreeSet<String> = coordinator
            .members()
            .await?
            .members
            .iter()
            .map(|m| m.node.id.to_string())
            .collect();
        let leads = self.scheduler.status().await?.leader_epoch.is_some();
        if let Some(before) = self.members.replace(members.clone()) {
            let lost: Vec<String> = before.difference(&members).cloned().collect();
            for node in &lost {
                info!(node = %node, "member left the cluster");
            }
            if leads {
                for node in lost {
                    self.node_lost(node);
                }
            } else if !lost.is_empty() {
                // Led by another live node, which reports them. Led by this node, not yet known to its
                // status: kept, and reported at the next look.
                let own = self.scheduler.node_id();
                let leader = coordinator.leader().await?;
                let led =
                    leader.is_some_and(|l| &l.node != own && members.contains(l.node.as_str()));
                if !led {
                    for node in lost {
                        if self.orphans.len() < MAX_ORPHANS {
                            self.orphans.insert(node);
                        }
                    }
                }
            }
        }
        if leads {
            for node in std::mem::take(&mut self.orphans) {
                self.node_lost(node);
            }
        } else if !self.orphans.is_empty() {
            let leader = coordinator.leader().await?;
            let own = self.scheduler.node_id();
            if leader.is_some_and(|l| &l.node != own && members.contains(l.node.as_str())) {
                // Another live node leads: it saw them leave too, and reports them.
                self.orphans.clear();
            }
        }
        Ok(())
    }

    fn node_lost(&self, lost: String) {
        self.send(
            None,
            Event {
                event: EventKind::NodeLost,
                node: self.scheduler.node_id().to_string(),
                at_ms: self.clock.now_ms(),
                job: None,
                run: None,
                lost_node: Some(lost),
                lost_worker: None,
            },
        );
    }

    fn worker_lost(&self, lost: LostWorker) {
        self.send(
            None,
            Event {
                event: EventKind::WorkerLost,
                node: self.scheduler.node_id().to_string(),
                at_ms: self.clock.now_ms(),
                job: None,
                run: None,
                lost_node: None,
                lost_worker: Some(lost),
            },
        );
    }

    /// Queues an event for every webhook that wants it; never waits.
    fn send(&self, job: Option<&Job>, event: Event) {
        let selected: Option<BTreeSet<&str>> = job
            .and_then(|j| j.spec.labels.get("notify"))
            .map(|names| names.split(',').map(str::trim).collect());
        let event = Arc::new(event);
        for hook in &self.hooks {
            let config = &hook.config;
            if !config.events.is_empty() && !config.events.contains(&event.event) {
                continue;
            }
            if selected
                .as_ref()
                .is_some_and(|names| !names.contains(config.name.as_str()))
            {
                continue;
            }
            if hook.queue.try_send(event.clone()).is_err() {
                warn!(webhook = %config.name, event = event.event.as_str(), "webhook queue full, event dropped");
                metrics::counter!(NOTIFICATIONS, "webhook" => config.name.clone(), "result" => "dropped")
                    .increment(1);
            }
        }
    }
}

/// The next worker event, or never (no cluster port, or the feed closed). A lagging receiver skips ahead.
async fn next_worker_event(
    workers: &mut Option<broadcast::Receiver<campanile::cluster::WorkerEvent>>,
) -> Option<campanile::cluster::WorkerEvent> {
    let Some(rx) = workers else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Ok(event) => Some(event),
        Err(broadcast::error::RecvError::Lagged(skipped)) => {
            warn!(
                skipped,
                "worker events fell behind; skipped ones are not reported"
            );
            None
        }
        Err(broadcast::error::RecvError::Closed) => {
            *workers = None;
            None
        }
    }
}

fn job_ref(job: &Job) -> JobRef {
    JobRef {
        id: job.id.to_string(),
        name: job.spec.name.clone(),
        namespace: job.spec.namespace.clone(),
        labels: job.spec.labels.clone(),
    }
}

/// One webhook's delivery loop: each event is POSTed, retried with backoff (1 s doubling up to 60 s) until
/// it is accepted (2xx) or `max_attempts` is spent.
async fn deliver(
    hook: WebhookConfig,
    client: reqwest::Client,
    egress: campanile::exec::Egress,
    mut queue: mpsc::Receiver<Arc<Event>>,
) {
    while let Some(event) = queue.recv().await {
        let mut delay = Duration::from_secs(1);
        let mut outcome = "failed";
        for attempt in 1..=hook.max_attempts {
            let permitted = match reqwest::Url::parse(&hook.url) {
                Ok(url) => egress.check_destination(&url).await,
                Err(e) => Err(format!("the url is not valid: {e}")),
            };
            if let Err(reason) = permitted {
                warn!(webhook = %hook.name, %reason, "webhook not sent");
                outcome = "denied";
                break;
            }
            let mut request = client.post(&hook.url).timeout(hook.timeout).json(&*event);
            for (name, value) in &hook.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    outcome = "sent";
                    break;
                }
                Ok(response) => {
                    warn!(webhook = %hook.name, attempt, status = response.status().as_u16(), "webhook refused the event");
                }
                Err(e) => {
                    warn!(webhook = %hook.name, attempt, error = %e, "webhook delivery failed");
                }
            }
            if attempt < hook.max_attempts {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
        metrics::counter!(NOTIFICATIONS, "webhook" => hook.name.clone(), "result" => outcome)
            .increment(1);
    }
}
