//! The scenario generator: everything one simulation run does, drawn from one seed.
//!
//! A scenario is a cluster shape (3 to 5 nodes, a session TTL of 2 to 4 s, a claim lookahead and a misfire
//! threshold), the jobs created at the start, and a timeline of steps for the fault phase, laid out in three
//! lanes that run side by side:
//!
//! - **node faults**, one episode at a time: a freeze longer than the TTL (always at least one: the classic
//!   double-fire case), a crash (`abort`) and a restart under the same node id, a graceful leave and a return,
//!   a partitioned session, a join;
//! - **coordinator faults**, one episode at a time: a crash during a claim batch (always one: `claim_fires`
//!   fails with lost replies after a few calls, then a node is aborted), random errors (with or without the
//!   write happening), delays, a full outage;
//! - **job changes**: creates, updates (schedule, misfire or overlap policy) and deletes.
//!
//! Steps name nodes and jobs by a drawn number, resolved when the step runs among the candidates of that moment
//! (running nodes not already in an episode, existing jobs), so the timeline never names something that is
//! not there. The heal phase that follows is long enough for every node to rejoin and the assignment to
//! converge ([`Scenario::converge_within`]).

use std::time::Duration;

use campanile::job::{MisfirePolicy, Overlap};
use campanile_adapters::{Fault, Method};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The two schedules jobs switch between; every instant of the second is one of the first, so a misfired
/// range is unambiguous and an update has instants of both kinds around it.
pub const SCHEDULES: [&str; 2] = ["* * * * * *", "*/2 * * * * *"];

/// One job to create.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// Its id.
    pub id: String,
    /// One of [`SCHEDULES`].
    pub schedule: &'static str,
    /// Its misfire policy.
    pub misfire: MisfirePolicy,
    /// Its overlap policy.
    pub overlap: Overlap,
    /// Slow jobs' runs take 0.7 to 2.3 s (so overlap policies matter); quick ones less than 0.3 s.
    pub slow: bool,
}

/// What an update changes.
#[derive(Debug, Clone)]
pub enum JobChange {
    /// Switch to the other of [`SCHEDULES`].
    Schedule,
    /// A new misfire policy.
    Misfire(MisfirePolicy),
    /// A new overlap policy.
    Overlap(Overlap),
}

/// One thing the driver does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Start a node that is down (one held back at the start, or one that left).
    Join,
    /// Graceful leave (`shutdown`) of a running node; `episode` remembers which.
    Leave {
        /// The episode.
        episode: u32,
        /// Which candidate.
        pick: u64,
    },
    /// Kill a running node without cleanup (`abort`).
    Crash {
        /// The episode.
        episode: u32,
        /// Which candidate.
        pick: u64,
    },
    /// Start the episode's node again, under the same node id.
    Return {
        /// The episode.
        episode: u32,
    },
    /// Freeze a running node for `pause` (longer than the TTL).
    Freeze {
        /// The episode.
        episode: u32,
        /// Which candidate.
        pick: u64,
        /// How long.
        pause: Duration,
    },
    /// Cut a running node's session off from the coordinator.
    Partition {
        /// The episode.
        episode: u32,
        /// Which candidate.
        pick: u64,
    },
    /// Reconnect the episode's session.
    Reconnect {
        /// The episode.
        episode: u32,
    },
    /// The episode's node is free for other episodes again (the end of a freeze).
    Release {
        /// The episode.
        episode: u32,
    },
    /// Fail calls at random.
    FailRandomly {
        /// Only these methods (all when `None`).
        methods: Option<Vec<Method>>,
        /// Probability of a failure per call.
        probability: f64,
        /// Whether the write happens.
        fault: Fault,
    },
    /// Let `calls` more `claim_fires` calls through, then lose the reply of every later one (the claim is
    /// written, the node never learns it).
    FailClaimsAfter {
        /// Calls let through.
        calls: u64,
    },
    /// Stop random and counted failures.
    StopFailing,
    /// Delay every call by a duration drawn from `min..=max`.
    Delay {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
    /// Stop delaying calls.
    ClearDelay,
    /// Create a job.
    CreateJob(JobPlan),
    /// Update an existing job.
    UpdateJob {
        /// Which job.
        pick: u64,
        /// What changes.
        change: JobChange,
    },
    /// Delete an existing job.
    DeleteJob {
        /// Which job.
        pick: u64,
    },
}

/// One step of the timeline.
#[derive(Debug, Clone)]
pub struct Step {
    /// When, from the start of the run.
    pub at: Duration,
    /// What.
    pub action: Action,
}

/// Everything a run does.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed it was drawn from (also seeds the fault injector).
    pub seed: u64,
    /// Every node id.
    pub nodes: Vec<String>,
    /// How many of them start at once (the others join later).
    pub initial_nodes: usize,
    /// Session TTL.
    pub ttl: Duration,
    /// Claim lookahead.
    pub lookahead: Duration,
    /// Misfire threshold.
    pub misfire_threshold: Duration,
    /// Jobs created before the nodes start.
    pub jobs: Vec<JobPlan>,
    /// The fault phase, sorted by time.
    pub steps: Vec<Step>,
    /// Length of the fault phase: every episode ends within it.
    pub fault_phase: Duration,
    /// After the heal, the assignment must be balanced within this long.
    pub converge_within: Duration,
    /// Length of the heal phase (longer than `converge_within`, so that staying balanced is observed).
    pub heal_phase: Duration,
}

#[derive(Debug, Clone, Copy)]
enum NodeFault {
    Freeze,
    Crash,
    Leave,
    Partition,
    Join,
}

#[derive(Debug, Clone, Copy)]
enum CoordFault {
    ClaimBatchCrash,
    Errors,
    Outage,
    Delays,
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

struct Draw {
    rng: StdRng,
    episodes: u32,
    jobs: usize,
}

impl Draw {
    fn ms(&mut self, range: std::ops::RangeInclusive<u64>) -> Duration {
        ms(self.rng.random_range(range))
    }

    fn episode(&mut self) -> u32 {
        self.episodes += 1;
        self.episodes
    }

    fn misfire(&mut self) -> MisfirePolicy {
        match self.rng.random_range(0..3) {
            0 => MisfirePolicy::Skip,
            1 => MisfirePolicy::FireOnce,
            _ => MisfirePolicy::CatchUp {
                max_count: self.rng.random_range(1..=3),
                window: Duration::from_secs(30),
            },
        }
    }

    fn overlap(&mut self) -> Overlap {
        match self.rng.random_range(0..4) {
            0 => Overlap::Allow,
            1 => Overlap::Skip,
            2 => Overlap::BufferOne,
            _ => Overlap::CancelPrevious,
        }
    }

    fn job(&mut self) -> JobPlan {
        self.jobs += 1;
        JobPlan {
            id: format!("job-{:02}", self.jobs),
            schedule: SCHEDULES[self.rng.random_range(0..2)],
            misfire: self.misfire(),
            overlap: self.overlap(),
            slow: self.rng.random_bool(0.25),
        }
    }
}

impl Scenario {
    /// The scenario of `seed`.
    pub fn generate(seed: u64) -> Self {
        let mut d = Draw {
            rng: StdRng::seed_from_u64(seed),
            episodes: 0,
            jobs: 0,
        };
        let n = d.rng.random_range(3..=5usize);
        let nodes: Vec<String> = (1..=n).map(|i| format!("node-{i}")).collect();
        let initial_nodes = if d.rng.random_bool(0.5) { n } else { n - 1 };
        let ttl = Duration::from_secs(d.rng.random_range(2..=4));
        let ttl_ms = ttl.as_millis() as u64;
        let lookahead = d.ms(300..=ttl_ms / 2);
        let misfire_threshold = d.ms(500..=3000);
        let job_count = d.rng.random_range(5..=10);
        let jobs: Vec<JobPlan> = (0..job_count).map(|_| d.job()).collect();

        let mut steps = Vec::new();

        // Lane 1: node faults, one episode at a time; always at least one freeze.
        let mut kinds = vec![NodeFault::Freeze];
        let choices = [
            NodeFault::Freeze,
            NodeFault::Crash,
            NodeFault::Leave,
            NodeFault::Partition,
        ];
        for _ in 0..d.rng.random_range(2..=4) {
            kinds.push(choices[d.rng.random_range(0..choices.len())]);
        }
        if initial_nodes < n {
            kinds.push(NodeFault::Join);
        }
        kinds.shuffle(&mut d.rng);
        let mut t = d.ms(1000..=3000);
        for kind in kinds {
            let episode = d.episode();
            let pick = d.rng.random();
            let length = match kind {
                NodeFault::Freeze => {
                    let pause = ttl + d.ms(500..=ttl_ms + 2000);
                    steps.push(Step {
                        at: t,
                        action: Action::Freeze {
                            episode,
                            pick,
                            pause,
                        },
                    });
                    // Free once the node has resumed and found out its session is gone.
                    let length = pause + ttl;
                    steps.push(Step {
                        at: t + length,
                        action: Action::Release { episode },
                    });
                    length
                }
                NodeFault::Crash => {
                    let down = d.ms(200..=2 * ttl_ms);
                    steps.push(Step {
                        at: t,
                        action: Action::Crash { episode, pick },
                    });
                    steps.push(Step {
                        at: t + down,
                        action: Action::Return { episode },
                    });
                    down
                }
                NodeFault::Leave => {
                    let down = d.ms(500..=2 * ttl_ms);
                    steps.push(Step {
                        at: t,
                        action: Action::Leave { episode, pick },
                    });
                    steps.push(Step {
                        at: t + down,
                        action: Action::Return { episode },
                    });
                    down
                }
                NodeFault::Partition => {
                    let cut = d.ms(ttl_ms / 2..=2 * ttl_ms);
                    steps.push(Step {
                        at: t,
                        action: Action::Partition { episode, pick },
                    });
                    steps.push(Step {
                        at: t + cut,
                        action: Action::Reconnect { episode },
                    });
                    cut
                }
                NodeFault::Join => {
                    steps.push(Step {
                        at: t,
                        action: Action::Join,
                    });
                    Duration::ZERO
                }
            };
            t += length + d.ms(0..=2000);
        }
        let mut fault_phase = t;

        // Lane 2: coordinator faults, one episode at a time; always one crash during a claim batch.
        let mut kinds = vec![CoordFault::ClaimBatchCrash];
        let choices = [CoordFault::Errors, CoordFault::Outage, CoordFault::Delays];
        for _ in 0..d.rng.random_range(1..=3) {
            kinds.push(choices[d.rng.random_range(0..choices.len())]);
        }
        kinds.shuffle(&mut d.rng);
        let mut t = d.ms(1000..=4000);
        for kind in kinds {
            let length = match kind {
                CoordFault::ClaimBatchCrash => {
                    let episode = d.episode();
                    let pick = d.rng.random();
                    let calls = d.rng.random_range(0..=3);
                    let crash_after = d.ms(200..=1500);
                    let down = d.ms(200..=2 * ttl_ms);
                    steps.push(Step {
                        at: t,
                        action: Action::FailClaimsAfter { calls },
                    });
                    steps.push(Step {
                        at: t + crash_after,
                        action: Action::Crash { episode, pick },
                    });
                    steps.push(Step {
                        at: t + crash_after + ms(1),
                        action: Action::StopFailing,
                    });
                    steps.push(Step {
                        at: t + crash_after + down,
                        action: Action::Return { episode },
                    });
                    crash_after + down
                }
                CoordFault::Errors => {
                    let methods = match d.rng.random_range(0..4) {
                        0 => None,
                        1 => Some(vec![Method::KeepAlive]),
                        2 => Some(vec![
                            Method::ClaimFires,
                            Method::ReleaseClaims,
                            Method::RecordRuns,
                        ]),
                        _ => Some(vec![Method::Campaign, Method::PublishAssignment]),
                    };
                    let fault = if d.rng.random_bool(0.5) {
                        Fault::Aborted
                    } else {
                        Fault::ReplyLost
                    };
                    let probability = d.rng.random_range(0.1..0.6);
                    let length = d.ms(1000..=2 * ttl_ms);
                    steps.push(Step {
                        at: t,
                        action: Action::FailRandomly {
                            methods,
                            probability,
                            fault,
                        },
                    });
                    steps.push(Step {
                        at: t + length,
                        action: Action::StopFailing,
                    });
                    length
                }
                CoordFault::Outage => {
                    let length = d.ms(ttl_ms / 2..=2 * ttl_ms);
                    steps.push(Step {
                        at: t,
                        action: Action::FailRandomly {
                            methods: None,
                            probability: 1.0,
                            fault: Fault::Aborted,
                        },
                    });
                    steps.push(Step {
                        at: t + length,
                        action: Action::StopFailing,
                    });
                    length
                }
                CoordFault::Delays => {
                    let min = d.ms(0..=50);
                    let max = d.ms(50..=ttl_ms / 3);
                    let length = d.ms(1000..=3 * ttl_ms);
                    steps.push(Step {
                        at: t,
                        action: Action::Delay { min, max },
                    });
                    steps.push(Step {
                        at: t + length,
                        action: Action::ClearDelay,
                    });
                    length
                }
            };
            t += length + d.ms(0..=2000);
        }
        fault_phase = fault_phase.max(t).max(Duration::from_secs(20));

        // Lane 3: job changes, anywhere in the fault phase.
        let fault_ms = fault_phase.as_millis() as u64;
        for _ in 0..d.rng.random_range(3..=8) {
            let at = d.ms(500..=fault_ms - 500);
            let action = match d.rng.random_range(0..9) {
                0..=2 => Action::CreateJob(d.job()),
                3..=6 => Action::UpdateJob {
                    pick: d.rng.random(),
                    change: match d.rng.random_range(0..4) {
                        0 | 1 => JobChange::Schedule,
                        2 => JobChange::Misfire(d.misfire()),
                        _ => JobChange::Overlap(d.overlap()),
                    },
                },
                _ => Action::DeleteJob {
                    pick: d.rng.random(),
                },
            };
            steps.push(Step { at, action });
        }
        // A stable sort keeps each lane's steps of one instant in the order they were drawn.
        steps.sort_by_key(|s| s.at);

        // Rejoining takes up to a TTL (the old session must expire) plus the connect backoff; then one
        // publication and one claim round.
        let converge_within = 2 * ttl + Duration::from_secs(5);
        Scenario {
            seed,
            nodes,
            initial_nodes,
            ttl,
            lookahead,
            misfire_threshold,
            jobs,
            steps,
            fault_phase,
            converge_within,
            heal_phase: converge_within + 2 * ttl + Duration::from_secs(2),
        }
    }

    /// The cluster shape in one line, for reports.
    pub fn describe(&self) -> String {
        format!(
            "{} nodes ({} at the start), ttl {:?}, lookahead {:?}, misfire threshold {:?}, {} jobs, \
             {} steps, fault phase {:?}, heal phase {:?} (converge within {:?})",
            self.nodes.len(),
            self.initial_nodes,
            self.ttl,
            self.lookahead,
            self.misfire_threshold,
            self.jobs.len(),
            self.steps.len(),
            self.fault_phase,
            self.heal_phase,
            self.converge_within,
        )
    }
}
