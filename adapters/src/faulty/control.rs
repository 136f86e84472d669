//! The shared control handle of the fault-injecting wrapper: which faults are on, drawn from a seeded RNG.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use campanile::coordinator::SessionId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::breaks::{ContractBreak, Memory};

/// A method of the `Coordinator` trait, to aim faults at some calls only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // Each variant is the method of the same name.
pub enum Method {
    OpenSession,
    KeepAlive,
    Drain,
    CloseSession,
    WatchSession,
    Members,
    WatchMembers,
    Campaign,
    Leader,
    Resign,
    PutJob,
    PutJobs,
    DeleteJob,
    GetJob,
    ListJobs,
    WatchJobs,
    PublishAssignment,
    Assignment,
    WatchAssignment,
    ClaimFires,
    ReleaseClaims,
    ClaimOf,
    RecordRuns,
    Runs,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 24] = [
        Method::OpenSession,
        Method::KeepAlive,
        Method::Drain,
        Method::CloseSession,
        Method::WatchSession,
        Method::Members,
        Method::WatchMembers,
        Method::Campaign,
        Method::Leader,
        Method::Resign,
        Method::PutJob,
        Method::PutJobs,
        Method::DeleteJob,
        Method::GetJob,
        Method::ListJobs,
        Method::WatchJobs,
        Method::PublishAssignment,
        Method::Assignment,
        Method::WatchAssignment,
        Method::ClaimFires,
        Method::ReleaseClaims,
        Method::ClaimOf,
        Method::RecordRuns,
        Method::Runs,
    ];

    /// The methods that change the backend's state.
    pub const WRITES: [Method; 13] = [
        Method::OpenSession,
        Method::KeepAlive,
        Method::Drain,
        Method::CloseSession,
        Method::Campaign,
        Method::Resign,
        Method::PutJob,
        Method::PutJobs,
        Method::DeleteJob,
        Method::PublishAssignment,
        Method::ClaimFires,
        Method::ReleaseClaims,
        Method::RecordRuns,
    ];

    /// Its position in [`Method::ALL`].
    pub fn index(self) -> usize {
        Method::ALL
            .iter()
            .position(|m| *m == self)
            .expect("Method::ALL lists every method")
    }

    /// The method's name in the trait (`claim_fires`).
    pub fn name(self) -> &'static str {
        match self {
            Method::OpenSession => "open_session",
            Method::KeepAlive => "keep_alive",
            Method::Drain => "drain",
            Method::CloseSession => "close_session",
            Method::WatchSession => "watch_session",
            Method::Members => "members",
            Method::WatchMembers => "watch_members",
            Method::Campaign => "campaign",
            Method::Leader => "leader",
            Method::Resign => "resign",
            Method::PutJob => "put_job",
            Method::PutJobs => "put_jobs",
            Method::DeleteJob => "delete_job",
            Method::GetJob => "get_job",
            Method::ListJobs => "list_jobs",
            Method::WatchJobs => "watch_jobs",
            Method::PublishAssignment => "publish_assignment",
            Method::Assignment => "assignment",
            Method::WatchAssignment => "watch_assignment",
            Method::ClaimFires => "claim_fires",
            Method::ReleaseClaims => "release_claims",
            Method::ClaimOf => "claim_of",
            Method::RecordRuns => "record_runs",
            Method::Runs => "runs",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an injected failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call is not forwarded and fails with `Unavailable { certainly_aborted: true }`: the request was
    /// lost on its way.
    Aborted,
    /// The call is forwarded (a write happens) and then fails with `Unavailable { certainly_aborted: false }`:
    /// the reply was lost on its way back.
    ReplyLost,
}

/// What the wrapper has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FaultStats {
    /// Calls made to the wrapper.
    pub calls: u64,
    /// Calls failed without being forwarded (including partitioned sessions' calls).
    pub aborted: u64,
    /// Calls forwarded whose reply was then replaced by a failure.
    pub replies_lost: u64,
    /// Calls that were delayed before being forwarded.
    pub delayed: u64,
    /// Keep-alives of partitioned sessions that were not forwarded.
    pub keep_alives_dropped: u64,
    /// Calls made to the wrapper, per method, in the order of [`Method::ALL`]: see [`FaultStats::calls_of`].
    pub per_method: [u64; Method::ALL.len()],
}

impl FaultStats {
    /// Calls of `method` made to the wrapper (forwarded or not).
    pub fn calls_of(&self, method: Method) -> u64 {
        self.per_method[method.index()]
    }
}

/// The shared handle that turns faults on and off for one or more [`FaultyCoordinator`]s
/// (clones share the same state and RNG).
///
/// Every random choice is drawn from one `StdRng` seeded with the seed given to [`FaultControl::new`], in
/// call order: on a current-thread runtime (the cluster simulation) the same seed and the same calls give the
/// same faults. Delays are `tokio::time` sleeps, so paused time drives them.
///
/// [`FaultyCoordinator`]: super::FaultyCoordinator
#[derive(Clone)]
pub struct FaultControl {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    partitions: watch::Sender<BTreeSet<SessionId>>,
}

struct State {
    rng: StdRng,
    delay: Option<(Duration, Duration)>,
    /// The next calls of a method held this long, and how many are left.
    hang: Option<(Method, u64, Duration)>,
    random: Option<Rule>,
    countdown: Option<(Rule, u64)>,
    stats: FaultStats,
    broken: BTreeSet<ContractBreak>,
    memory: Memory,
}

/// A failure rule: the methods it applies to (all when `None`), a probability, and the fault.
#[derive(Debug, Clone)]
struct Rule {
    methods: Option<BTreeSet<Method>>,
    probability: f64,
    fault: Fault,
}

impl Rule {
    fn applies(&self, method: Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(&method))
    }
}

/// What to do with one call, decided before it is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    /// Fail without forwarding.
    pub(super) abort: bool,
    /// Sleep this long before forwarding.
    pub(super) delay: Option<Duration>,
    /// Forward, then replace the reply by a failure.
    pub(super) lose_reply: bool,
}

impl FaultControl {
    /// No faults yet; random choices will be drawn from `StdRng::seed_from_u64(seed)`.
    pub fn new(seed: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    rng: StdRng::seed_from_u64(seed),
                    delay: None,
                    hang: None,
                    random: None,
                    countdown: None,
                    stats: FaultStats::default(),
                    broken: BTreeSet::new(),
                    memory: Memory::default(),
                }),
                partitions: watch::Sender::new(BTreeSet::new()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Delays every forwarded call by a duration drawn uniformly from `min..=max` (a fixed delay when equal).
    pub fn set_delay(&self, min: Duration, max: Duration) {
        self.state().delay = Some((min.min(max), max.max(min)));
    }

    /// Holds the next `calls` calls of `method` for `hold` before forwarding them (a coordinator member that
    /// froze: no answer, then a late one); other calls pass as usual.
    pub fn hang_next(&self, method: Method, calls: u64, hold: Duration) {
        self.state().hang = Some((method, calls, hold));
    }

    /// Stops delaying calls.
    pub fn clear_delay(&self) {
        self.state().delay = None;
    }

    /// Fails each call with `probability` (0.0 to 1.0), as `fault`.
    pub fn fail_randomly(&self, probability: f64, fault: Fault) {
        self.state().random = Some(Rule {
            methods: None,
            probability: probability.clamp(0.0, 1.0),
            fault,
        });
    }

    /// Fails each call of one of `methods` with `probability`, as `fault`; other calls pass.
    pub fn fail_randomly_on(&self, methods: &[Method], probability: f64, fault: Fault) {
        self.state().random = Some(Rule {
            methods: Some(methods.iter().copied().collect()),
            probability: probability.clamp(0.0, 1.0),
            fault,
        });
    }

    /// Lets the next `calls` calls through, then fails every later call as `fault` until [`FaultControl::heal`]
    /// (a coordinator that dies after a while).
    pub fn fail_after(&self, calls: u64, fault: Fault) {
        self.state().countdown = Some((
            Rule {
                methods: None,
                probability: 1.0,
                fault,
            },
            calls,
        ));
    }

    /// Like [`FaultControl::fail_after`], counting and failing only calls of `methods`.
    pub fn fail_after_on(&self, methods: &[Method], calls: u64, fault: Fault) {
        self.state().countdown = Some((
            Rule {
                methods: Some(methods.iter().copied().collect()),
                probability: 1.0,
                fault,
            },
            calls,
        ));
    }

    /// Stops the random and counted failures (delays and partitions stay).
    pub fn stop_failing(&self) {
        let mut state = self.state();
        state.random = None;
        state.countdown = None;
    }

    /// Cuts `session` off: every call made with it fails with `Unavailable { certainly_aborted: true }`
    /// without reaching the backend, so its keep-alives are lost and it expires server-side after its TTL.
    /// Receivers from the wrapper's `watch_session` show `Suspended` while it is cut off (and `Expired` once
    /// the backend expires it), as a client that lost its server would.
    pub fn partition(&self, session: SessionId) {
        self.shared.partitions.send_modify(|p| {
            p.insert(session);
        });
    }

    /// Reconnects `session` (if it expired meanwhile, the backend now says so).
    pub fn heal_session(&self, session: SessionId) {
        self.shared
            .partitions
            .send_if_modified(|p| p.remove(&session));
    }

    /// Whether `session` is cut off.
    pub fn is_partitioned(&self, session: SessionId) -> bool {
        self.shared.partitions.borrow().contains(&session)
    }

    /// Clears every fault: delays, failures and partitions.
    pub fn heal(&self) {
        {
            let mut state = self.state();
            state.delay = None;
            state.random = None;
            state.countdown = None;
        }
        self.shared.partitions.send_if_modified(|p| {
            let changed = !p.is_empty();
            p.clear();
            changed
        });
    }

    /// Breaks one line of the contract from now on (see [`ContractBreak`]).
    pub fn break_contract(&self, line: ContractBreak) {
        self.state().broken.insert(line);
    }

    /// Whether `line` is broken.
    pub(super) fn is_broken(&self, line: ContractBreak) -> bool {
        self.state().broken.contains(&line)
    }

    /// What the contract breaks remember across calls.
    pub(super) fn with_memory<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        f(&mut self.state().memory)
    }

    /// What the wrappers sharing this control did so far.
    pub fn stats(&self) -> FaultStats {
        self.state().stats
    }

    /// Follows the set of partitioned sessions.
    pub(super) fn partitions(&self) -> watch::Receiver<BTreeSet<SessionId>> {
        self.shared.partitions.subscribe()
    }

    /// Decides what happens to one call, drawing from the RNG in a fixed order: the counted failure, then
    /// the random failure, then the delay.
    pub(super) fn plan(&self, method: Method, session: Option<SessionId>) -> Plan {
        let partitioned = session.is_some_and(|s| self.is_partitioned(s));
        let mut state = self.state();
        state.stats.calls += 1;
        state.stats.per_method[method.index()] += 1;
        if partitioned {
            state.stats.aborted += 1;
            if method == Method::KeepAlive {
                state.stats.keep_alives_dropped += 1;
            }
            return Plan {
                abort: true,
                delay: None,
                lose_reply: false,
            };
        }
        let mut fault = None;
        if let Some((rule, remaining)) = state.countdown.as_mut()
            && rule.applies(method)
        {
            if *remaining == 0 {
                fault = Some(rule.fault);
            } else {
                *remaining -= 1;
            }
        }
        if let Some(rule) = state.random.clone()
            && rule.applies(method)
        {
            let hit = state.rng.random_bool(rule.probability);
            if hit && fault.is_none() {
                fault = Some(rule.fault);
            }
        }
        if fault == Some(Fault::Aborted) {
            state.stats.aborted += 1;
            return Plan {
                abort: true,
                delay: None,
                lose_reply: false,
            };
        }
        let delay = match state.delay {
            Some((min, max)) if max > Duration::ZERO => {
                state.stats.delayed += 1;
                Some(if min == max {
                    min
                } else {
                    let nanos = state
                        .rng
                        .random_range(min.as_nanos() as u64..=max.as_nanos() as u64);
                    Duration::from_nanos(nanos)
                })
            }
            _ => None,
        };
        let delay = match state.hang {
            Some((hung, left, hold)) if hung == method && left > 0 => {
                state.hang = Some((hung, left - 1, hold));
                state.stats.delayed += 1;
                Some(hold)
            }
            _ => delay,
        };
        let lose_reply = fault == Some(Fault::ReplyLost);
        if lose_reply {
            state.stats.replies_lost += 1;
        }
        Plan {
            abort: false,
            delay,
            lose_reply,
        }
    }
}

impl fmt::Debug for FaultControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("FaultControl")
            .field("delay", &state.delay)
            .field("random", &state.random)
            .field("countdown", &state.countdown)
            .field("partitions", &*self.shared.partitions.borrow())
            .field("stats", &state.stats)
            .finish()
    }
}
