//! Webhook notifications: failed and timed-out runs, misfires, in-doubt fires and lost nodes are POSTed as
//! JSON to the configured webhooks, with retries and backoff, from bounded queues that never block
//! anything else (a full queue drops the event and counts it in `campanile_notifications_total`).
//!
//! The engine has no hook for finished runs yet, so the notifier reads what the engine writes: every
//! `poll_interval` it reads the newest run records of the jobs this node owns (and of jobs it was asked to
//! trigger or backfill), and reports records *this node* wrote that it has not seen before. That is one
//! coordinator read per owned job per interval, which is why it runs only when a webhook is configured.
//! Records present when the notifier first looks at a job are history, not news. A lost node is reported
//! by the leader only, when a member leaves the member list (session expired or closed).
//!
//! A job chooses its webhooks with its `notify` label: `notify=ops,pager` sends only to those names,
//! `notify=none` sends nothing; without the label every webhook gets the job's events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campanile::coordinator::RunQuery;
use campanile::{Job, JobId, Outcome, RunRecord, Scheduler};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{EventKind, NotifyConfig, WebhookConfig};
use crate::telemetry::NOTIFICATIONS;

/// Records read per job and poll.
const RECENT: usize = 50;
/// How long a job triggered or backfilled through this node is watched when it is not owned here.
const WATCH_FOR_MS: i64 = 15 * 60 * 1000;

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

/// The handle: lets the API mark jobs to watch, and stops the tasks.
#[derive(Clone)]
pub struct Notifier {
    watched: Arc<Mutex<HashMap<JobId, i64>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    poller: Arc<Mutex<Option<JoinHandle<()>>>>,
    clock: Arc<dyn campanile::clock::Clock>,
}

struct Hook {
    config: WebhookConfig,
    queue: mpsc::Sender<Arc<Event>>,
}

impl Notifier {
    /// Starts the poller and one delivery task per webhook; `None` when no webhook is configured.
    pub fn start(config: &NotifyConfig, scheduler: Scheduler) -> Option<Notifier> {
        if config.webhooks.is_empty() {
            return None;
        }
        let clock: Arc<dyn campanile::clock::Clock> = campanile::clock::SystemClock::new().shared();
        let client = reqwest::Client::builder()
            .user_agent(concat!("campanile/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let mut hooks = Vec::new();
        let mut tasks = Vec::new();
        for hook in &config.webhooks {
            let (tx, rx) = mpsc::channel(config.queue);
            tasks.push(tokio::spawn(deliver(hook.clone(), client.clone(), rx)));
            hooks.push(Hook {
                config: hook.clone(),
                queue: tx,
            });
        }
        let notifier = Notifier {
            watched: Arc::default(),
            tasks: Arc::new(Mutex::new(tasks)),
            poller: Arc::default(),
            clock: clock.clone(),
        };
        let poller = Poller {
            scheduler,
            hooks,
            clock,
            watched: notifier.watched.clone(),
            seen: HashMap::new(),
            members: None,
            started_ms: notifier.clock.now_ms(),
            first_cycle: true,
        };
        let handle = tokio::spawn(poller.run(config.poll_interval));
        *notifier.poller.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Some(notifier)
    }

    /// Watches a job's records for a while even if another node owns it (its trigger runs here).
    pub fn watch(&self, job: JobId) {
        let until = self.clock.now_ms() + WATCH_FOR_MS;
        self.watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job, until);
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
    watched: Arc<Mutex<HashMap<JobId, i64>>>,
    /// Per job: scheduled instants of the records already seen (newest kept).
    seen: HashMap<JobId, BTreeSet<i64>>,
    /// Member ids at the last poll.
    members: Option<BTreeSet<String>>,
    /// When the notifier started: records of jobs first seen later are news if they end after this.
    started_ms: i64,
    /// Whether no poll has completed yet: everything found then is history.
    first_cycle: bool,
}

impl Poller {
    async fn run(mut self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.poll().await {
                Ok(()) => self.first_cycle = false,
                Err(e) => debug!(error = %e, "notification poll failed"),
            }
        }
    }

    async fn poll(&mut self) -> Result<(), campanile::SchedulerError> {
        let me = self.scheduler.node_id().clone();
        let coordinator = self.scheduler.coordinator().clone();
        let now = self.clock.now_ms();

        let mut jobs: BTreeSet<JobId> = coordinator
            .assignment()
            .await?
            .map(|a| {
                a.owners
                    .iter()
                    .filter(|(_, node)| **node == me)
                    .map(|(job, _)| job.clone())
                    .collect()
            })
            .unwrap_or_default();
        {
            let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
            watched.retain(|_, until| *until > now);
            jobs.extend(watched.keys().cloned());
        }
        self.seen.retain(|job, _| jobs.contains(job));
        for id in jobs {
            let records = match self
                .scheduler
                .runs(
                    &id,
                    RunQuery {
                        limit: RECENT,
                        ..RunQuery::default()
                    },
                )
                .await
            {
                Ok(records) => records,
                Err(campanile::SchedulerError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let first_look = !self.seen.contains_key(&id);
            let seen = self.seen.entry(id.clone()).or_default();
            let mut fresh = Vec::new();
            for record in records {
                let news = if first_look {
                    !self.first_cycle && record.last_ms() >= self.started_ms
                } else {
                    true
                };
                if seen.insert(record.scheduled_ms) && news && record.node == me.as_str() {
                    fresh.push(record);
                }
            }
            while seen.len() > 4 * RECENT {
                seen.pop_first();
            }
            if fresh.iter().all(|r| event_of(r.outcome).is_none()) {
                continue;
            }
            let Some(job) = self.scheduler.get(&id).await? else {
                continue;
            };
            for record in fresh.into_iter().rev() {
                if let Some(kind) = event_of(record.outcome) {
                    self.send(
                        Some(&job),
                        Event {
                            event: kind,
                            node: me.to_string(),
                            at_ms: now,
                            job: Some(job_ref(&job)),
                            run: Some(record),
                            lost_node: None,
                        },
                    );
                }
            }
        }

        let members: BTreeSet<String> = coordinator
            .members()
            .await?
            .members
            .iter()
            .map(|m| m.node.id.to_string())
            .collect();
        if let Some(before) = self.members.replace(members.clone()) {
            let leads = self.scheduler.status().await?.leader_epoch.is_some();
            for lost in before.difference(&members) {
                info!(node = %lost, "member left the cluster");
                if leads {
                    self.send(
                        None,
                        Event {
                            event: EventKind::NodeLost,
                            node: me.to_string(),
                            at_ms: now,
                            job: None,
                            run: None,
                            lost_node: Some(lost.clone()),
                        },
                    );
                }
            }
        }
        Ok(())
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
    mut queue: mpsc::Receiver<Arc<Event>>,
) {
    while let Some(event) = queue.recv().await {
        let mut delay = Duration::from_secs(1);
        let mut outcome = "failed";
        for attempt in 1..=hook.max_attempts {
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
