//! A worker of an executor group: connects to nodes over `ractor_cluster`, registers in its group, and runs
//! the fire attempts the nodes send it, with the engine's own target code (process-group kill, bounded
//! output, timeouts) and the application's handlers.
//!
//! The worker is where the deadline is enforced: it starts an attempt only strictly before the send's
//! `start_by_ms` and while the owning node's session is valid as the worker last heard it (from the owner's
//! heartbeat, or the start message itself, whichever came last on the ordered link). A worker that was frozen
//! (SIGSTOP, a long pause) or cut off therefore starts nothing late when it resumes: it refuses instead.
//!
//! `ractor_cluster` neither reconnects nor reports a wrong cookie; each address here has a task that
//! connects, waits for the session to become ready within [`WorkerBuilder::handshake_timeout`], and connects
//! again (with backoff) after the session is lost.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::{NodeServer, NodeServerMessage};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::protocol::{self, OwnerLease, StartFire, ToHub, ToWorker, WireResult, WorkerInfo};

mod discover;
mod link;

use crate::clock::{Clock, SystemClock};
use crate::coordinator::{Coordinator, NodeId};
use crate::exec::{AttemptResult, BaseEnv, Egress, FireContext};
use crate::job::{FireId, Target};
use crate::node::executor::{HandlerError, Handlers};
use crate::run::Outcome;
use link::{Link, Sessions, connect_once, keep_linked};

/// How often a worker tells every node it is connected to that it is alive (and its load).
pub const ALIVE_EVERY: Duration = Duration::from_millis(500);

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// A builder field is missing or wrong.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A node accepted the connection but the cluster handshake did not finish in time: the cookie is
    /// wrong (`ractor_cluster` drops such a session without a word), or the address is not a cluster port.
    #[error(
        "no cluster handshake with {addr} within {timeout}: the cluster cookie is probably wrong (it must be the \
         node's --cluster-cookie-file), or the node's cluster port takes TLS only (give --cluster-tls-ca), or \
         {addr} is not a campanile cluster port"
    )]
    Handshake {
        /// The node's address.
        addr: String,
        /// How long the worker waited.
        timeout: String,
    },
    /// No listed node could be reached at all.
    #[error("could not connect to any of {addrs}: {reason}")]
    Unreachable {
        /// The addresses.
        addrs: String,
        /// The last error.
        reason: String,
    },
    /// The worker's own cluster server did not start.
    #[error("the worker's cluster server did not start: {0}")]
    Start(String),
    /// The coordinator given to find nodes could not be read.
    #[error("cannot read the nodes' cluster addresses from the coordinator: {0}")]
    Coordinator(String),
}

/// Builds a [`Worker`]: `Worker::builder().join(["10.0.0.5:7946"]).group("billing").handler("invoice", |ctx| async {…}).start()`.
pub struct WorkerBuilder {
    join: Vec<String>,
    group: Option<String>,
    id: Option<String>,
    labels: BTreeMap<String, String>,
    max_concurrent: u32,
    cookie: String,
    handlers: Handlers,
    base_env: BaseEnv,
    egress: Egress,
    handshake_timeout: Duration,
    coordinator: Option<Arc<dyn Coordinator>>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("join", &self.join)
            .field("group", &self.group)
            .field("id", &self.id)
            .field(
                "coordinator",
                &self.coordinator.as_ref().map(|c| c.backend()),
            )
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// The cookie used when none is given: only for nodes that listen on loopback (the runtime refuses a
/// non-loopback cluster port without a cookie of its own).
pub const LOOPBACK_COOKIE: &str = "campanile-loopback";

impl WorkerBuilder {
    /// Node cluster addresses (`host:port`) to connect to; at least one.
    #[must_use]
    pub fn join<S: Into<String>>(mut self, addrs: impl IntoIterator<Item = S>) -> Self {
        self.join.extend(addrs.into_iter().map(Into::into));
        self
    }

    /// Finds the nodes through their coordinator too: the worker links to every live member that publishes
    /// a cluster address (a node with a cluster port does), and follows the members as nodes join and leave.
    /// With it, [`WorkerBuilder::join`] is optional.
    #[must_use]
    pub fn coordinator(mut self, coordinator: Arc<dyn Coordinator>) -> Self {
        self.coordinator = Some(coordinator);
        self
    }

    /// Connects to the nodes' cluster ports over TLS (nodes whose `ClusterConfig::tls` is set), checking
    /// each node's certificate with `config` for the host it was given as (the `join` address's, or the one
    /// the node publishes).
    #[must_use]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The executor group this worker serves (jobs name it in `"executor": {"group": …}`).
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The worker's id (default `hostname-pid`); unique across the cluster.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// A label (`k=v`), shown by `GET /v1/workers`.
    #[must_use]
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Most attempts at once (default 16).
    #[must_use]
    pub fn max_concurrent(mut self, n: u32) -> Self {
        self.max_concurrent = n;
        self
    }

    /// The cluster cookie shared with the nodes.
    #[must_use]
    pub fn cookie(mut self, cookie: impl Into<String>) -> Self {
        self.cookie = cookie.into();
        self
    }

    /// The environment commands start from (default: `BaseEnv::default()`); `CAMPANILE_WORKER_ID` is added.
    #[must_use]
    pub fn base_env(mut self, base_env: BaseEnv) -> Self {
        self.base_env = base_env;
        self
    }

    /// Where HTTP targets may connect (default: anywhere).
    #[must_use]
    pub fn egress(mut self, egress: Egress) -> Self {
        self.egress = egress;
        self
    }

    /// How long a connection may take to finish the cluster handshake (default 5 s).
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Registers a handler: jobs with `{"type": "handler", "name": name}` and this worker's group run it here.
    #[must_use]
    pub fn handler<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(FireContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.handlers
            .insert(name.into(), Arc::new(move |ctx| Box::pin(handler(ctx))));
        self
    }

    /// Connects to the nodes and starts serving. Fails on a wrong cookie (no handshake within the timeout
    /// with a node that accepted the connection) and when no listed node can be reached; after it started, a
    /// lost node is reconnected to in the background.
    pub async fn start(self) -> Result<Worker, WorkerError> {
        let group = self
            .group
            .clone()
            .filter(|g| valid_name(g))
            .ok_or_else(|| WorkerError::Invalid {
                field: "group",
                reason: format!(
                    "{:?} is not a group name (1 to 64 of A-Z a-z 0-9 . _ -)",
                    self.group.clone().unwrap_or_default()
                ),
            })?;
        let id = self.id.clone().unwrap_or_else(default_id);
        if !valid_name(&id) {
            return Err(WorkerError::Invalid {
                field: "node_id",
                reason: format!("{id:?} is not a worker id (1 to 64 of A-Z a-z 0-9 . _ -)"),
            });
        }
        if self.join.is_empty() && self.coordinator.is_none() {
            return Err(WorkerError::Invalid {
                field: "join",
                reason: "no node address to join, and no coordinator to find nodes in".into(),
            });
        }
        let dial = super::tls::Dial::new(self.tls.clone());
        let mut addrs = Vec::new();
        for addr in &self.join {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr.as_str())
                .await
                .map_err(|e| WorkerError::Invalid {
                    field: "join",
                    reason: format!("{addr:?}: {e}"),
                })?
                .collect();
            let first = resolved
                .first()
                .copied()
                .ok_or_else(|| WorkerError::Invalid {
                    field: "join",
                    reason: format!("{addr:?} resolves to no address"),
                })?;
            dial.remember(first, addr);
            if !addrs.contains(&first) {
                addrs.push(first);
            }
        }
        let fixed: std::collections::BTreeSet<SocketAddr> = addrs.iter().copied().collect();
        let learned: Vec<SocketAddr> = match &self.coordinator {
            Some(coordinator) => {
                let members = coordinator
                    .members()
                    .await
                    .map_err(|e| WorkerError::Coordinator(e.to_string()))?;
                discover::addresses(&members, &dial)
                    .await
                    .into_iter()
                    .filter(|a| !fixed.contains(a))
                    .collect()
            }
            None => Vec::new(),
        };
        if addrs.is_empty() && learned.is_empty() {
            return Err(WorkerError::Unreachable {
                addrs: "the coordinator's members".into(),
                reason:
                    "no live node publishes a cluster address (start nodes with --cluster-listen)"
                        .into(),
            });
        }
        let info = WorkerInfo {
            id: id.clone(),
            group,
            labels: self.labels.clone(),
            max_concurrent: self.max_concurrent.max(1),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            handlers: {
                let mut names: Vec<String> = self.handlers.keys().cloned().collect();
                names.sort();
                names
            },
        };
        let base_env = self.base_env.clone().with_var("CAMPANILE_WORKER_ID", &id);
        #[cfg(feature = "http")]
        let http =
            crate::exec::HttpClients::new(self.egress.clone()).map_err(WorkerError::Start)?;
        #[cfg(not(feature = "http"))]
        let _ = &self.egress;

        // The worker's own node server: it listens on loopback only (nodes never connect to workers), on a
        // port the system picks.
        let server = NodeServer::new(
            0,
            self.cookie.clone(),
            format!("campanile-worker-{id}"),
            hostname(),
            None,
            None,
        )
        .with_listen_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| WorkerError::Start(e.to_string()))?;
        let sessions = Sessions::default();
        server
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "campanile-worker".into(),
                subscription: Box::new(sessions.clone()),
            })
            .map_err(|e| WorkerError::Start(e.to_string()))?;

        let shared = Arc::new(WorkerShared {
            info,
            clock: SystemClock::new().shared(),
            base_env,
            handlers: Arc::new(self.handlers),
            #[cfg(feature = "http")]
            http,
            state: Mutex::default(),
        });
        let (actor, _) = Actor::spawn(None, WorkerActor, shared.clone())
            .await
            .map_err(|e| WorkerError::Start(e.to_string()))?;

        // Connect to every node; the first round decides whether the worker starts at all.
        let mut links: Vec<JoinHandle<()>> = Vec::new();
        let mut failures = Vec::new();
        let mut ready = 0;
        let learned_from = addrs.len();
        let learned_addrs = learned.clone();
        for addr in addrs.into_iter().chain(learned) {
            let rx = sessions.watch(addr);
            match connect_once(&server, &dial, addr, rx.clone(), self.handshake_timeout).await {
                Ok(()) => ready += 1,
                Err(Link::Handshake) => {
                    for link in &links {
                        link.abort();
                    }
                    server.stop(None);
                    actor.stop(None);
                    return Err(WorkerError::Handshake {
                        addr: addr.to_string(),
                        timeout: humantime::format_duration(self.handshake_timeout).to_string(),
                    });
                }
                Err(Link::Connect(e)) => failures.push(format!("{addr}: {e}")),
            }
            links.push(tokio::spawn(keep_linked(
                server.clone(),
                dial.clone(),
                addr,
                rx,
                self.handshake_timeout,
            )));
        }
        if ready == 0 {
            for link in &links {
                link.abort();
            }
            server.stop(None);
            actor.stop(None);
            let mut tried = self.join.clone();
            if self.coordinator.is_some() {
                tried.push("the coordinator's members".into());
            }
            return Err(WorkerError::Unreachable {
                addrs: tried.join(", "),
                reason: failures.join("; "),
            });
        }
        if let Some(coordinator) = self.coordinator.clone() {
            // The links to learned nodes belong to the follower, which closes them when their node leaves.
            let initial: Vec<(SocketAddr, JoinHandle<()>)> = links
                .split_off(learned_from)
                .into_iter()
                .zip(learned_addrs)
                .map(|(task, addr)| (addr, task))
                .collect();
            links.push(tokio::spawn(discover::follow(
                coordinator,
                server.clone(),
                dial.clone(),
                sessions.clone(),
                fixed,
                initial,
                self.handshake_timeout,
            )));
        }
        info!(worker = %id, group = %shared.info.group, nodes = ready, "worker started");
        Ok(Worker {
            shared,
            server,
            actor,
            links,
        })
    }
}

/// A running worker. Dropping it does not stop it: call [`Worker::stop`].
pub struct Worker {
    shared: Arc<WorkerShared>,
    server: ActorRef<NodeServerMessage>,
    actor: ActorRef<ToWorker>,
    links: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.shared.info.id)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A builder with the defaults (16 at once, the loopback cookie, a 5 s handshake timeout).
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder {
            join: Vec::new(),
            group: None,
            id: None,
            labels: BTreeMap::new(),
            max_concurrent: 16,
            cookie: LOOPBACK_COOKIE.to_owned(),
            handlers: Handlers::default(),
            base_env: BaseEnv::default(),
            egress: Egress::default(),
            handshake_timeout: Duration::from_secs(5),
            coordinator: None,
            tls: None,
        }
    }

    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.shared.info.id
    }

    /// Attempts running now.
    pub fn running(&self) -> usize {
        self.shared.lock().runs.len()
    }

    /// Stops taking fires, kills running attempts (their owners record them in doubt) and disconnects.
    pub async fn stop(self) {
        for link in &self.links {
            link.abort();
        }
        let _ = self
            .actor
            .get_cell()
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
        let _ = self
            .server
            .get_cell()
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
    }
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn default_id() -> String {
    let host: String = hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("{host}-{}", std::process::id())
}

/// What the worker's actor and its run tasks share.
struct WorkerShared {
    info: WorkerInfo,
    clock: Arc<dyn Clock>,
    base_env: BaseEnv,
    handlers: Arc<Handlers>,
    #[cfg(feature = "http")]
    http: crate::exec::HttpClients,
    state: Mutex<RunState>,
}

#[derive(Default)]
struct RunState {
    /// The owners' sessions as last heard, by owner node id (`None`: the owner said it has none).
    leases: HashMap<String, Option<OwnerLease>>,
    /// Running attempts by (owner, dispatch).
    runs: HashMap<(String, u64), JoinHandle<()>>,
    /// Offers answered `Ready`, waiting for the owner's `Go` (until their start-by time), by (owner, dispatch).
    offered: HashMap<(String, u64), (StartFire, NodeId)>,
}

impl RunState {
    /// Whether `start` may still start at `now_ms`: before its start-by time, and, for a claimed fire, under
    /// the owner's session as last heard and before the time it was proven valid until.
    fn timely(&self, start: &StartFire, now_ms: i64) -> Result<(), String> {
        if now_ms >= start.start_by_ms {
            return Err(format!(
                "too late: {} ms after its start-by time",
                now_ms - start.start_by_ms
            ));
        }
        if let Some(session) = start.session {
            let valid = self
                .leases
                .get(&start.owner)
                .copied()
                .flatten()
                .is_some_and(|l| l.session == session && now_ms < l.valid_until_ms);
            if !valid {
                return Err("fenced: the owner's session is not known valid".into());
            }
        }
        Ok(())
    }
}

impl WorkerShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn alive(&self) -> ToHub {
        ToHub::Alive {
            info: self.info.clone(),
            running: self.lock().runs.len() as u32,
        }
    }

    /// Takes an offer: holds a slot for it until its start-by time (answer `Ready`), or says why not.
    fn offer(&self, start: StartFire, now_ms: i64) -> Result<(), String> {
        let owner = NodeId::new(&start.owner).map_err(|e| format!("owner: {e}"))?;
        let mut state = self.lock();
        if let Some(lease) = start.lease {
            // The offer was sent after every heartbeat before it on this link: its lease is the newest news.
            state.leases.insert(start.owner.clone(), Some(lease));
        }
        state.timely(&start, now_ms)?;
        // Offers whose owner never said go are forgotten once they can no longer start.
        state.offered.retain(|_, (s, _)| now_ms < s.start_by_ms);
        if state.runs.len() + state.offered.len() >= self.info.max_concurrent as usize {
            return Err(format!(
                "at its concurrency limit ({})",
                self.info.max_concurrent
            ));
        }
        if let Target::Handler(h) = &start.target
            && !self.handlers.contains_key(&h.name)
        {
            return Err(format!("no handler registered as {:?}", h.name));
        }
        state
            .offered
            .insert((start.owner.clone(), start.dispatch), (start, owner));
        Ok(())
    }

    /// The owner said go: the offer to start now, or why it will not start.
    fn go(&self, owner: &str, dispatch: u64, now_ms: i64) -> Result<(StartFire, NodeId), String> {
        let mut state = self.lock();
        let Some((start, node)) = state.offered.remove(&(owner.to_owned(), dispatch)) else {
            return Err("no offer held for it (it expired, or was never made)".into());
        };
        state.timely(&start, now_ms)?;
        Ok((start, node))
    }
}

/// The hub of node `owner`, as this worker sees it.
fn hub_of(owner: &str) -> Option<ActorRef<ToHub>> {
    ractor::pg::get_members(&protocol::hub_group(owner))
        .into_iter()
        .find(|cell: &ActorCell| !cell.get_id().is_local())
        .map(ActorRef::from)
}

fn remote_hubs() -> Vec<ActorRef<ToHub>> {
    ractor::pg::get_members(&protocol::HUBS_GROUP.to_owned())
        .into_iter()
        .filter(|cell| !cell.get_id().is_local())
        .map(ActorRef::from)
        .collect()
}

/// The worker's actor: receives the owners' heartbeats, starts and cancellations.
struct WorkerActor;

struct WorkerActorState {
    shared: Arc<WorkerShared>,
    alive: JoinHandle<()>,
}

impl Actor for WorkerActor {
    type Msg = ToWorker;
    type State = WorkerActorState;
    type Arguments = Arc<WorkerShared>;

    async fn pre_start(
        &self,
        myself: ActorRef<ToWorker>,
        shared: Arc<WorkerShared>,
    ) -> Result<WorkerActorState, ActorProcessingErr> {
        ractor::pg::join(
            protocol::worker_group(&shared.info.id),
            vec![myself.get_cell()],
        );
        ractor::pg::monitor(protocol::HUBS_GROUP.to_owned(), myself.get_cell());
        let alive_of = shared.clone();
        let alive = tokio::spawn(async move {
            let mut every = tokio::time::interval(ALIVE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                for hub in remote_hubs() {
                    let _ = hub.cast(alive_of.alive());
                }
            }
        });
        Ok(WorkerActorState { shared, alive })
    }

    async fn post_stop(
        &self,
        _: ActorRef<ToWorker>,
        state: &mut WorkerActorState,
    ) -> Result<(), ActorProcessingErr> {
        state.alive.abort();
        for (_, run) in state.shared.lock().runs.drain() {
            run.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<ToWorker>,
        msg: ToWorker,
        state: &mut WorkerActorState,
    ) -> Result<(), ActorProcessingErr> {
        let shared = &state.shared;
        match msg {
            ToWorker::Heartbeat { owner, lease } => {
                shared.lock().leases.insert(owner, lease);
            }
            ToWorker::Start(start) => {
                let now_ms = shared.clock.now_ms();
                let fire = FireId::new(start.job.clone(), start.scheduled_ms);
                let (owner, dispatch) = (start.owner.clone(), start.dispatch);
                let answer = match shared.offer(*start, now_ms) {
                    Ok(()) => ToHub::Ready { dispatch },
                    Err(reason) => {
                        info!(%fire, %reason, "refused a fire");
                        ToHub::Refused { dispatch, reason }
                    }
                };
                if let Some(hub) = hub_of(&owner) {
                    let _ = hub.cast(answer);
                }
            }
            ToWorker::Go { owner, dispatch } => {
                let now_ms = shared.clock.now_ms();
                let hub = hub_of(&owner);
                match shared.go(&owner, dispatch, now_ms) {
                    Err(reason) => {
                        info!(%owner, dispatch, %reason, "refused a fire");
                        if let Some(hub) = hub {
                            let _ = hub.cast(ToHub::Refused { dispatch, reason });
                        }
                    }
                    Ok((start, node)) => {
                        if let Some(hub) = &hub {
                            let _ = hub.cast(ToHub::Acked { dispatch });
                        }
                        let key = (owner, dispatch);
                        // Registered under the lock before the task can end and remove itself.
                        let mut runs = shared.lock();
                        let task = tokio::spawn(run_attempt(shared.clone(), node, start));
                        runs.runs.insert(key, task);
                    }
                }
            }
            ToWorker::Cancel { owner, dispatch } => {
                let key = (owner, dispatch);
                let mut runs = shared.lock();
                if let Some(task) = runs.runs.remove(&key) {
                    // Dropping the attempt kills a command's process group.
                    task.abort();
                    drop(runs);
                    if let Some(hub) = hub_of(&key.0) {
                        let _ = hub.cast(ToHub::Finished {
                            dispatch,
                            result: WireResult {
                                outcome: Outcome::Failed,
                                code: None,
                                output: String::new(),
                                reason: Some("cancelled by the owning node".into()),
                            },
                        });
                    }
                }
            }
            ToWorker::Invalid(why) => warn!(%why, "a node sent a message that does not decode"),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<ToWorker>,
        event: SupervisionEvent,
        state: &mut WorkerActorState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ProcessGroupChanged(GroupChangeMessage::Join(_, group, cells)) =
            event
            && group == protocol::HUBS_GROUP
        {
            // A node appeared: register with it at once rather than at the next tick.
            for cell in cells.into_iter().filter(|c| !c.get_id().is_local()) {
                let _ = ActorRef::<ToHub>::from(cell).cast(state.shared.alive());
            }
        }
        Ok(())
    }
}

/// Runs one attempt and sends its result to the owner's hub.
async fn run_attempt(shared: Arc<WorkerShared>, owner: NodeId, start: StartFire) {
    let ctx = FireContext {
        fire: FireId::new(start.job.clone(), start.scheduled_ms),
        job_name: start.job_name.clone(),
        attempt: start.attempt,
        node: owner,
    };
    let result = attempt(&shared, &start.target, ctx).await;
    shared
        .lock()
        .runs
        .remove(&(start.owner.clone(), start.dispatch));
    match hub_of(&start.owner) {
        Some(hub) => {
            let _ = hub.cast(ToHub::Finished {
                dispatch: start.dispatch,
                result: result.into(),
            });
        }
        None => {
            warn!(owner = %start.owner, "a run ended but its owner is not linked; the owner records it in doubt")
        }
    }
}

async fn attempt(shared: &WorkerShared, target: &Target, ctx: FireContext) -> AttemptResult {
    match target {
        Target::Command(cmd) => crate::exec::run_command(cmd, &ctx, &shared.base_env).await,
        #[cfg(feature = "http")]
        Target::Http(http) => crate::exec::run_http(&shared.http, http, &ctx).await,
        #[cfg(not(feature = "http"))]
        Target::Http(_) => {
            failed("HTTP targets need the engine's `http` feature on the worker".into())
        }
        Target::Handler(h) => {
            let Some(handler) = shared.handlers.get(&h.name) else {
                return failed(format!("no handler registered as {:?}", h.name));
            };
            crate::node::executor::run_handler(handler, ctx, h.timeout).await
        }
    }
}

fn failed(reason: String) -> AttemptResult {
    AttemptResult {
        outcome: Outcome::Failed,
        code: None,
        output: String::new(),
        reason: Some(reason),
    }
}
