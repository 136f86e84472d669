//! Workers of an executor group in the simulation: in-process actors attached to every running node's hub
//! (`Hub::attach`), which keep a real worker's rules (an offer is taken only before its start-by and under an
//! owner session known valid; a fire starts only at the owner's go, still within both), run the fire with
//! the simulation's work, log it in the same trace as the nodes' runs (so every invariant sees it), and answer
//! through the hub (`Hub::deliver`).
//!
//! A third of the jobs run on them (by job id). Their faults come from a generator of their own, seeded from
//! the scenario's seed, so the scenario's own draws are unchanged: an acknowledgement lost (the worker runs
//! the fire but its `Acked` never arrives), a worker's death (its runs stop, its links break, it comes back
//! later), and a partition between a worker and one node (nothing goes either way until it mends: the node
//! finds the worker silent, the worker's view of the node's session runs out). A partition ends with the
//! link between them broken, as a TCP link that lost messages is (`ractor_cluster` never drops a message on
//! a live link): the node loses the worker, if it has not already, and the worker links up again. The heal
//! ends every fault.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campanile::FireContext;
use campanile::FireId;
use campanile::clock::Clock;
use campanile::cluster::Hub;
use campanile::cluster::protocol::{
    OwnerLease, StartFire, ToHub, ToWorker, WireResult, WorkerInfo,
};
use campanile::coordinator::NodeId;
use campanile::run::Outcome;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

use super::cluster::{stable_hash, work};
use super::trace::Trace;

/// The executor group of the simulated workers.
pub const GROUP: &str = "sim-workers";
/// The workers.
pub const WORKERS: [&str; 2] = ["w1", "w2"];
/// Most fires a simulated worker holds at once (offered or running).
const MAX_CONCURRENT: usize = 4;

/// Whether job `id` runs on the workers.
pub fn on_workers(id: &str) -> bool {
    stable_hash(id).is_multiple_of(3)
}

/// One worker's state, shared by its actor, its run tasks and the fault driver.
struct Core {
    id: String,
    hubs: BTreeMap<String, Hub>,
    leases: HashMap<String, Option<OwnerLease>>,
    offered: HashMap<(String, u64), StartFire>,
    runs: HashMap<(String, u64), JoinHandle<()>>,
    /// Nodes it is partitioned from.
    cut: BTreeSet<String>,
    /// Its `Acked` messages are lost.
    drop_acks: bool,
    dead: bool,
}

impl Core {
    /// Sends `msg` to `owner`'s hub, unless the way is cut.
    fn send(&self, owner: &str, msg: ToHub) {
        if self.dead || self.cut.contains(owner) {
            return;
        }
        if let Some(hub) = self.hubs.get(owner) {
            hub.deliver(msg);
        }
    }

    fn timely(&self, start: &StartFire, now_ms: i64) -> bool {
        now_ms < start.start_by_ms
            && start.session.is_none_or(|session| {
                self.leases
                    .get(&start.owner)
                    .copied()
                    .flatten()
                    .is_some_and(|l| l.session == session && now_ms < l.valid_until_ms)
            })
    }
}

#[derive(Clone)]
struct SimWorker {
    core: Arc<Mutex<Core>>,
    clock: Arc<dyn Clock>,
    trace: Trace,
}

impl SimWorker {
    fn core(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn info(id: &str) -> WorkerInfo {
        WorkerInfo {
            id: id.to_owned(),
            group: GROUP.to_owned(),
            labels: BTreeMap::new(),
            max_concurrent: MAX_CONCURRENT as u32,
            version: "sim".to_owned(),
            handlers: vec!["sim".to_owned()],
        }
    }

    fn received(&self, msg: ToWorker) {
        let now_ms = self.clock.now_ms();
        let mut core = self.core();
        if core.dead {
            return;
        }
        match msg {
            ToWorker::Heartbeat { owner, lease } => {
                if !core.cut.contains(&owner) {
                    core.leases.insert(owner, lease);
                }
            }
            ToWorker::Start(start) => {
                if core.cut.contains(&start.owner) {
                    return;
                }
                if let Some(lease) = start.lease {
                    core.leases.insert(start.owner.clone(), Some(lease));
                }
                core.offered.retain(|_, s| now_ms < s.start_by_ms);
                let dispatch = start.dispatch;
                let owner = start.owner.clone();
                let room = core.offered.len() + core.runs.len() < MAX_CONCURRENT;
                let answer = if room && core.timely(&start, now_ms) {
                    core.offered.insert((owner.clone(), dispatch), *start);
                    ToHub::Ready { dispatch }
                } else {
                    ToHub::Refused {
                        dispatch,
                        reason: "too late, fenced or full".into(),
                    }
                };
                core.send(&owner, answer);
            }
            ToWorker::Go { owner, dispatch } => {
                if core.cut.contains(&owner) {
                    return;
                }
                let Some(start) = core.offered.remove(&(owner.clone(), dispatch)) else {
                    core.send(
                        &owner,
                        ToHub::Refused {
                            dispatch,
                            reason: "no offer held".into(),
                        },
                    );
                    return;
                };
                if !core.timely(&start, now_ms) {
                    core.send(
                        &owner,
                        ToHub::Refused {
                            dispatch,
                            reason: "too late or fenced".into(),
                        },
                    );
                    return;
                }
                if !core.drop_acks {
                    core.send(&owner, ToHub::Acked { dispatch });
                }
                let run = tokio::spawn(self.clone().run(start));
                core.runs.insert((owner, dispatch), run);
            }
            ToWorker::Cancel { owner, dispatch } => {
                if core.cut.contains(&owner) {
                    return;
                }
                if let Some(run) = core.runs.remove(&(owner.clone(), dispatch)) {
                    run.abort();
                    core.send(
                        &owner,
                        ToHub::Finished {
                            dispatch,
                            result: WireResult {
                                outcome: Outcome::Failed,
                                code: None,
                                output: String::new(),
                                reason: Some("cancelled by the owning node".into()),
                            },
                        },
                    );
                }
            }
            ToWorker::Invalid(_) => {}
        }
    }

    /// One fire's run, logged as the nodes log theirs (the node is the owner).
    async fn run(self, start: StartFire) {
        let ctx = FireContext {
            fire: FireId::new(start.job.clone(), start.scheduled_ms),
            job_name: start.job_name.clone(),
            attempt: start.attempt,
            node: NodeId::new(&start.owner).expect("an owner's id is valid"),
        };
        let seq = self.trace.started(
            ctx.fire.clone(),
            start.owner.clone(),
            start.attempt,
            self.clock.now_us(),
        );
        let (took, fails) = work(&ctx);
        tokio::time::sleep(took).await;
        self.trace.ended(seq, self.clock.now_us());
        let mut core = self.core();
        core.runs.remove(&(start.owner.clone(), start.dispatch));
        core.send(
            &start.owner,
            ToHub::Finished {
                dispatch: start.dispatch,
                result: WireResult {
                    outcome: if fails {
                        Outcome::Failed
                    } else {
                        Outcome::Succeeded
                    },
                    code: None,
                    output: String::new(),
                    reason: fails.then(|| "simulated failure".to_owned()),
                },
            },
        );
    }
}

struct WorkerActor;

impl Actor for WorkerActor {
    type Msg = ToWorker;
    type State = SimWorker;
    type Arguments = SimWorker;

    async fn pre_start(
        &self,
        _: ActorRef<ToWorker>,
        worker: SimWorker,
    ) -> Result<SimWorker, ActorProcessingErr> {
        Ok(worker)
    }

    async fn handle(
        &self,
        _: ActorRef<ToWorker>,
        msg: ToWorker,
        worker: &mut SimWorker,
    ) -> Result<(), ActorProcessingErr> {
        worker.received(msg);
        Ok(())
    }
}

/// A fault of the workers.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The worker's acknowledgements are lost (it still runs what it is told to go with).
    DropAcks,
    /// The worker dies: its runs stop, its links break.
    Die,
    /// The worker and node `node` (an index into the node list) hear nothing from each other.
    Cut { node: usize },
}

/// A planned fault: when, on which worker, for how long.
#[derive(Debug, Clone, Copy)]
struct Episode {
    at: Duration,
    worker: usize,
    fault: Fault,
    lasts: Duration,
}

/// The simulated workers of one run.
pub struct Workers {
    workers: Vec<(SimWorker, ActorRef<ToWorker>)>,
    tasks: Vec<JoinHandle<()>>,
    clock: Arc<dyn Clock>,
    trace: Trace,
}

impl Workers {
    /// The workers, attached to no node yet, each telling the nodes it reaches that it is alive every
    /// `ALIVE_EVERY`.
    pub async fn start(clock: Arc<dyn Clock>, trace: Trace) -> Self {
        let mut workers = Vec::new();
        let mut tasks = Vec::new();
        for id in WORKERS {
            let worker = SimWorker {
                core: Arc::new(Mutex::new(Core {
                    id: id.to_owned(),
                    hubs: BTreeMap::new(),
                    leases: HashMap::new(),
                    offered: HashMap::new(),
                    runs: HashMap::new(),
                    cut: BTreeSet::new(),
                    drop_acks: false,
                    dead: false,
                })),
                clock: clock.clone(),
                trace: trace.clone(),
            };
            let (actor, _) = Actor::spawn(None, WorkerActor, worker.clone())
                .await
                .expect("a simulated worker starts");
            let (alive, of) = (worker.clone(), actor.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    alive.attach_all(&of);
                    tokio::time::sleep(campanile::cluster::ALIVE_EVERY).await;
                }
            }));
            workers.push((worker, actor));
        }
        Self {
            workers,
            tasks,
            clock,
            trace,
        }
    }

    /// Node `id` is up with `hub`: the workers connect to it.
    pub fn node_up(&self, id: &str, hub: Hub) {
        for (worker, actor) in &self.workers {
            worker.core().hubs.insert(id.to_owned(), hub.clone());
            worker.attach_all(actor);
        }
    }

    /// Node `id` is gone (crashed or left): its links are gone.
    pub fn node_down(&self, id: &str) {
        for (worker, _) in &self.workers {
            worker.core().hubs.remove(id);
        }
    }

    /// Plays the workers' faults of `seed` over `fault_phase` against `nodes`, in a task of its own.
    pub fn play_faults(
        self: &Arc<Self>,
        seed: u64,
        fault_phase: Duration,
        nodes: Vec<String>,
    ) -> JoinHandle<()> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0077_6f72_6b65_7273);
        let mut episodes = Vec::new();
        let mut at = Duration::from_millis(rng.random_range(1_000..4_000));
        while at < fault_phase {
            let fault = match rng.random_range(0..3) {
                0 => Fault::DropAcks,
                1 => Fault::Die,
                _ => Fault::Cut {
                    node: rng.random_range(0..nodes.len()),
                },
            };
            episodes.push(Episode {
                at,
                worker: rng.random_range(0..WORKERS.len()),
                fault,
                lasts: Duration::from_millis(rng.random_range(500..8_000)),
            });
            at += Duration::from_millis(rng.random_range(2_000..7_000));
        }
        let workers = self.clone();
        let start = tokio::time::Instant::now();
        tokio::spawn(async move {
            let mut ends: Vec<(Duration, Episode)> = Vec::new();
            for episode in episodes {
                // Undo the episodes that end before this one starts, in time order.
                ends.sort_by_key(|(end, _)| *end);
                while ends.first().is_some_and(|(end, _)| *end <= episode.at) {
                    let (end, done) = ends.remove(0);
                    tokio::time::sleep_until(start + end).await;
                    workers.undo(&done, &nodes);
                }
                tokio::time::sleep_until(start + episode.at).await;
                workers.apply(&episode, &nodes);
                ends.push((episode.at + episode.lasts, episode));
            }
            ends.sort_by_key(|(end, _)| *end);
            for (end, done) in ends {
                tokio::time::sleep_until(start + end).await;
                workers.undo(&done, &nodes);
            }
        })
    }

    fn log(&self, what: String) {
        self.trace.event(self.clock.now_ms(), what);
    }

    fn apply(&self, episode: &Episode, nodes: &[String]) {
        let (worker, _) = &self.workers[episode.worker];
        let mut core = worker.core();
        let id = core.id.clone();
        match episode.fault {
            Fault::DropAcks => {
                core.drop_acks = true;
                drop(core);
                self.log(format!("worker {id}: acknowledgements lost"));
            }
            Fault::Die => {
                if core.dead {
                    return;
                }
                core.dead = true;
                for (_, run) in core.runs.drain() {
                    run.abort();
                }
                core.offered.clear();
                let hubs: Vec<Hub> = core.hubs.values().cloned().collect();
                drop(core);
                for hub in hubs {
                    hub.detach(&id);
                }
                self.log(format!("worker {id} dies"));
            }
            Fault::Cut { node } => {
                let node = &nodes[node];
                core.cut.insert(node.clone());
                drop(core);
                self.log(format!("worker {id} cut off from {node}"));
            }
        }
    }

    fn undo(&self, episode: &Episode, nodes: &[String]) {
        let (worker, actor) = &self.workers[episode.worker];
        let mut core = worker.core();
        let id = core.id.clone();
        match episode.fault {
            Fault::DropAcks => core.drop_acks = false,
            Fault::Die => core.dead = false,
            Fault::Cut { node } => {
                core.cut.remove(&nodes[node]);
                // The link did not survive the partition: the node sees it break now (if it has not
                // given the worker up already), and the worker links up again below.
                if let Some(hub) = core.hubs.get(&nodes[node]) {
                    hub.detach(&id);
                }
            }
        }
        drop(core);
        worker.attach_all(actor);
        self.log(format!("worker {id}: {:?} over", episode.fault));
    }

    /// Every fault off, every worker alive and reaching every node.
    pub fn heal(&self) {
        for (worker, actor) in &self.workers {
            {
                let mut core = worker.core();
                core.drop_acks = false;
                core.dead = false;
                // As at the end of each cut: the link broke, and is made again.
                for node in std::mem::take(&mut core.cut) {
                    if let Some(hub) = core.hubs.get(&node) {
                        hub.detach(&core.id);
                    }
                }
            }
            worker.attach_all(actor);
        }
        self.log("workers healed".to_owned());
    }
}

impl SimWorker {
    /// Says it is alive to every node it reaches (registering where it is not known).
    fn attach_all(&self, actor: &ActorRef<ToWorker>) {
        let core = self.core();
        if core.dead {
            return;
        }
        let info = Self::info(&core.id);
        let hubs: Vec<Hub> = core
            .hubs
            .iter()
            .filter(|(node, _)| !core.cut.contains(*node))
            .map(|(_, hub)| hub.clone())
            .collect();
        drop(core);
        for hub in hubs {
            hub.attach(info.clone(), actor.clone());
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for (_, actor) in &self.workers {
            actor.stop(None);
        }
    }
}

/// The workers do run fires: in a seed's run, some records are of attempts that ran on them (their reason
/// names the worker), and every invariant holds over those runs too.
#[test]
fn the_workers_run_the_fires_of_their_jobs() {
    if super::chosen_seeds().is_some() {
        eprintln!("sim: CAMPANILE_SIM_SEED is set: only the chosen seeds run");
        return;
    }
    let observed = super::simulate(100);
    let on_workers: usize = observed
        .records
        .values()
        .flatten()
        .filter(|r| {
            r.reason
                .as_deref()
                .is_some_and(|reason| reason.contains("worker w"))
        })
        .count();
    assert!(
        on_workers > 10,
        "only {on_workers} records of fires run on workers"
    );
    assert!(super::failures(&observed).is_empty());
}
