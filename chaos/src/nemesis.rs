//! The nemesis: a seeded schedule of faults, each injected, held and healed, and logged with its times.
//!
//! Every random choice (the kind, from a deck holding each kind once and shuffled again when used up; the
//! victims; the durations; the quiet time before) is drawn from the seed before the fault starts, so the same
//! seed gives the same schedule of faults. Which coordinator member leads is read at the time.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tokio::sync::Mutex;

use crate::cluster::Cluster;
use crate::model::{Fault, FaultKind, now_ms};
use crate::nodes::Node;
use crate::proxy::{Mode, Proxy};

/// What the nemesis acts on.
pub struct Nemesis {
    /// The nodes.
    pub nodes: Arc<Mutex<Vec<Node>>>,
    /// Per node, its proxy to each coordinator member.
    pub proxies: Arc<Vec<Vec<Proxy>>>,
    /// The coordinator.
    pub cluster: Arc<Cluster>,
    /// For readiness checks.
    pub http: reqwest::Client,
    /// The nodes' session TTL.
    pub ttl: Duration,
    /// The log of events, one line each.
    pub log: std::fs::File,
    /// The kinds of fault the deck holds (each once).
    pub kinds: Vec<FaultKind>,
}

/// A node fault on one victim, for `Combined`.
#[derive(Debug, Clone, Copy)]
enum NodeFault {
    Kill,
    Freeze,
    Cut(Mode),
}

/// How long a node needs to come back and be ready.
const PATIENCE: Duration = Duration::from_secs(60);

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Nemesis {
    fn note(&mut self, what: &str) {
        let line = format!("{} {what}", now_ms());
        println!("nemesis: {line}");
        let _ = writeln!(self.log, "{line}");
    }

    async fn cluster_call(&self, f: impl FnOnce(&Cluster) -> anyhow::Result<()> + Send + 'static) {
        let cluster = self.cluster.clone();
        match tokio::task::spawn_blocking(move || f(&cluster)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("nemesis: coordinator action failed: {e:#}"),
            Err(e) => eprintln!("nemesis: coordinator action panicked: {e}"),
        }
    }

    async fn start_node_fault(&mut self, victim: usize, fault: NodeFault) {
        match fault {
            NodeFault::Kill => self.nodes.lock().await[victim].kill(),
            NodeFault::Freeze => self.nodes.lock().await[victim].signal(Signal::SIGSTOP),
            NodeFault::Cut(mode) => self.proxies[victim].iter().for_each(|p| p.set(mode)),
        }
    }

    async fn heal_node_fault(&mut self, victim: usize, fault: NodeFault) {
        match fault {
            NodeFault::Kill => {
                let mut nodes = self.nodes.lock().await;
                let node = &mut nodes[victim];
                if let Err(e) = node.spawn() {
                    eprintln!("nemesis: restarting {} failed: {e:#}", node.id);
                }
            }
            NodeFault::Freeze => self.nodes.lock().await[victim].signal(Signal::SIGCONT),
            NodeFault::Cut(_) => self.proxies[victim].iter().for_each(|p| p.set(Mode::Pass)),
        }
    }

    async fn await_ready(&mut self, victim: usize) {
        let mut nodes = self.nodes.lock().await;
        let node = &mut nodes[victim];
        if let Err(e) = node.await_ready(&self.http, PATIENCE).await {
            eprintln!("nemesis: {e:#}");
        }
    }

    async fn node_id(&self, i: usize) -> String {
        self.nodes.lock().await[i].id.clone()
    }

    /// Injects faults until `until_ms`, with quiet time between them; returns every fault, healed.
    pub async fn run(mut self, mut rng: StdRng, until_ms: i64) -> Vec<Fault> {
        let mut faults = Vec::new();
        let mut deck: Vec<FaultKind> = Vec::new();
        let n = self.proxies.len();
        let members = self.cluster.ports.len();
        let ttl = self.ttl;
        // The cluster settles under the workload first, so that the first fault has a steady state to break.
        tokio::time::sleep(Duration::from_secs(20)).await;
        loop {
            if deck.is_empty() {
                deck = self.kinds.clone();
                deck.shuffle(&mut rng);
            }
            let kind = deck.pop().expect("the deck was refilled");
            // Every draw of this fault, before it starts.
            let quiet = Duration::from_millis(rng.random_range(6_000..12_000));
            let victim = rng.random_range(0..n);
            let other = (victim + rng.random_range(1..n.max(2))) % n;
            let member = rng.random_range(1..=members);
            let hold = ttl + Duration::from_millis(rng.random_range(1_000..4_000));
            let down = Duration::from_millis(rng.random_range(3_000..8_000));
            let second = match rng.random_range(0..3) {
                0 => NodeFault::Freeze,
                1 => NodeFault::Cut(Mode::Drop),
                _ => NodeFault::Cut(Mode::Blackhole),
            };
            // A fault that would outlast the run is not started.
            let longest = quiet
                + ttl * 2
                + match kind {
                    FaultKind::RollingRestart => Duration::from_secs(15 * n as u64),
                    _ => hold + down,
                };
            if now_ms() + ms(longest) as i64 > until_ms {
                break;
            }
            tokio::time::sleep(quiet).await;
            let start_ms = now_ms();
            let mut victims = Vec::new();
            let detail;
            match kind {
                FaultKind::KillNode => {
                    let id = self.node_id(victim).await;
                    self.note(&format!("start kill_node {id} (down {} ms)", ms(down)));
                    self.start_node_fault(victim, NodeFault::Kill).await;
                    tokio::time::sleep(down).await;
                    self.heal_node_fault(victim, NodeFault::Kill).await;
                    self.note(&format!("heal kill_node {id}: restarted"));
                    self.await_ready(victim).await;
                    detail = format!("SIGKILL {id}, restarted after {} ms", ms(down));
                    victims.push(id);
                }
                FaultKind::FreezeNode => {
                    let id = self.node_id(victim).await;
                    self.note(&format!("start freeze_node {id} ({} ms)", ms(hold)));
                    self.start_node_fault(victim, NodeFault::Freeze).await;
                    tokio::time::sleep(hold).await;
                    self.heal_node_fault(victim, NodeFault::Freeze).await;
                    self.note(&format!("heal freeze_node {id}: SIGCONT"));
                    detail = format!("SIGSTOP {id} for {} ms", ms(hold));
                    victims.push(id);
                }
                FaultKind::CutDrop | FaultKind::CutBlackhole => {
                    let mode = if kind == FaultKind::CutDrop {
                        Mode::Drop
                    } else {
                        Mode::Blackhole
                    };
                    let id = self.node_id(victim).await;
                    self.note(&format!("start {} {id} ({} ms)", kind.name(), ms(hold)));
                    self.start_node_fault(victim, NodeFault::Cut(mode)).await;
                    tokio::time::sleep(hold).await;
                    self.heal_node_fault(victim, NodeFault::Cut(mode)).await;
                    self.note(&format!("heal {} {id}", kind.name()));
                    detail = format!(
                        "{mode:?} every connection of {id} to the coordinator for {} ms",
                        ms(hold)
                    );
                    victims.push(id);
                }
                FaultKind::KillCoordinatorLeader => {
                    let cluster = self.cluster.clone();
                    let leader = tokio::task::spawn_blocking(move || cluster.leader())
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or(member);
                    self.note(&format!(
                        "start kill_coordinator_leader member {leader} (down {} ms)",
                        ms(down)
                    ));
                    self.cluster_call(move |c| c.kill(leader)).await;
                    tokio::time::sleep(down).await;
                    self.cluster_call(move |c| c.restart(leader)).await;
                    self.note(&format!(
                        "heal kill_coordinator_leader member {leader}: restarted"
                    ));
                    detail = format!(
                        "SIGKILL leader member {leader}, restarted after {} ms",
                        ms(down)
                    );
                }
                FaultKind::FreezeCoordinatorMember => {
                    self.note(&format!(
                        "start freeze_coordinator_member {member} ({} ms)",
                        ms(hold)
                    ));
                    self.cluster_call(move |c| c.freeze(member)).await;
                    tokio::time::sleep(hold).await;
                    self.cluster_call(move |c| c.thaw(member)).await;
                    self.note(&format!("heal freeze_coordinator_member {member}"));
                    detail = format!("SIGSTOP member {member} for {} ms", ms(hold));
                }
                FaultKind::RollingRestart => {
                    self.note("start rolling_restart");
                    for i in 0..n {
                        let id = self.node_id(i).await;
                        {
                            let mut nodes = self.nodes.lock().await;
                            if let Err(e) = nodes[i].terminate(Duration::from_secs(40)).await {
                                eprintln!("nemesis: {e:#}");
                            }
                            if let Err(e) = nodes[i].spawn() {
                                eprintln!("nemesis: restarting {id} failed: {e:#}");
                            }
                        }
                        self.await_ready(i).await;
                        self.note(&format!("rolling_restart: {id} restarted and ready"));
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    self.note("heal rolling_restart");
                    detail = format!("SIGTERM and restart of all {n} nodes, one after the other");
                }
                FaultKind::Combined => {
                    let (a, b) = (self.node_id(victim).await, self.node_id(other).await);
                    self.note(&format!(
                        "start combined: kill {a}, {second:?} {b}, freeze member {member} ({} ms)",
                        ms(hold)
                    ));
                    self.start_node_fault(victim, NodeFault::Kill).await;
                    if other != victim {
                        self.start_node_fault(other, second).await;
                    }
                    self.cluster_call(move |c| c.freeze(member)).await;
                    tokio::time::sleep(hold).await;
                    self.cluster_call(move |c| c.thaw(member)).await;
                    if other != victim {
                        self.heal_node_fault(other, second).await;
                    }
                    self.heal_node_fault(victim, NodeFault::Kill).await;
                    self.note("heal combined");
                    self.await_ready(victim).await;
                    detail = format!(
                        "SIGKILL {a} and {second:?} {b} for {} ms, member {member} frozen meanwhile",
                        ms(hold)
                    );
                    victims.push(a);
                    if other != victim {
                        victims.push(b);
                    }
                }
            }
            faults.push(Fault {
                kind,
                start_ms,
                end_ms: now_ms(),
                victims,
                detail,
            });
        }
        faults
    }
}
