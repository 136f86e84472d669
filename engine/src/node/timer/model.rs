//! A model test of the timer's pure state: random steps (time passing and wakes, claim rounds with settlement,
//! lease renewals, lost and new sessions, revokes and upserts, runs ending) against a simple model of the
//! coordinator and of the runs, checking after every step:
//!
//! - nothing is emitted outside a claim the current session holds, or when the lease does not permit it;
//! - no instant is fired twice or recorded twice (a `misfired` record may stand for a range), and none is both
//!   fired and recorded as not run (`misfired`, `skipped`): only an `in_doubt` record may stand for an instant
//!   that was fired (its run's own record was lost with its session);
//! - at the end, after a heal (a lasting lease, claim rounds, every run ended), every instant each job owes
//!   up to the horizon was fired or recorded.
//!
//! The model coordinator grants what is asked by the claim rules every backend applies
//! (`coordinator::rules::grant`: an extension keeps the holder's start; a takeover starts after the previous
//! holder's claim and hands its claim back as `previous`). Old sessions are gone: the model has one node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::coordinator::{ClaimResult, JobClaim, NodeId, rules};
use crate::job::{HandlerTarget, JobSpec, MisfirePolicy, Target};
use crate::node::fire::Fire;
use crate::run::{Outcome, RunRecord};
use crate::schedule::Schedule;

const T0: i64 = 1_790_000_000_000; // a whole second
const TTL_MS: i64 = 3000;
const SCHEDULES: [&str; 3] = ["* * * * * *", "*/3 * * * * *", "*/2 * * * * *"];

#[derive(Debug, Clone)]
enum Step {
    /// Time passes; the alarm wakes the timer.
    Advance(i64),
    /// A claim round trip (a tick when `renewals`), then the settlements it finds, then a wake.
    Claim { renewals: bool },
    /// The session is proven valid for another TTL from now.
    Renew,
    /// The session is lost (the lease is gone), and later a new one starts.
    Lose,
    /// A new session (after a loss, or replacing the current one).
    NewSession,
    /// The job is reassigned away.
    Revoke(usize),
    /// The job is (re)assigned here, or updated.
    Upsert(usize),
    /// The oldest `n` runs end and their records are stored.
    Record(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0i64..2500).prop_map(Step::Advance),
        5 => any::<bool>().prop_map(|renewals| Step::Claim { renewals }),
        3 => Just(Step::Renew),
        1 => Just(Step::Lose),
        1 => Just(Step::NewSession),
        1 => (0..SCHEDULES.len()).prop_map(Step::Revoke),
        1 => (0..SCHEDULES.len()).prop_map(Step::Upsert),
        3 => (1usize..6).prop_map(Step::Record),
    ]
}

fn node() -> NodeId {
    NodeId::new("n1").unwrap()
}

struct Model {
    state: State,
    now: i64,
    session: SessionId,
    lease: Option<Lease>,
    jobs: Vec<Arc<Job>>,
    /// The model coordinator's claims.
    claims: HashMap<JobId, JobClaim>,
    /// Stored run records, per job.
    records: HashMap<JobId, Vec<RunRecord>>,
    /// Every instant fired, per job.
    fired: HashMap<JobId, BTreeSet<i64>>,
    /// Every instant with a stored record, per job, and whether that record says it ran or may have.
    recorded: HashMap<JobId, BTreeMap<i64, Outcome>>,
    /// Fires handed on and not yet ended.
    running: Vec<Fire>,
    /// Jobs revoked at some point (another node owned them in between: not checked for completeness).
    revoked_ever: BTreeSet<usize>,
}

impl Model {
    fn new() -> Self {
        let jobs = SCHEDULES
            .iter()
            .enumerate()
            .map(|(i, schedule)| {
                let mut spec = JobSpec::new(
                    format!("j{i}"),
                    Schedule::parse(schedule).unwrap(),
                    Target::Handler(HandlerTarget::new("h")),
                );
                spec.misfire = if i == 0 {
                    MisfirePolicy::Skip
                } else {
                    MisfirePolicy::FireOnce
                };
                Arc::new(Job::new(JobId::new(format!("j{i}")).unwrap(), spec, T0))
            })
            .collect::<Vec<_>>();
        let mut state = State::new(
            node(),
            Config {
                lookahead: Duration::from_millis(2000),
                misfire_threshold: Duration::from_millis(1000),
            },
        );
        let session = SessionId(1);
        let lease = Lease {
            session,
            valid_until_ms: T0 + TTL_MS,
        };
        state.set_lease(Some(lease));
        state.upsert(jobs.clone(), T0);
        Model {
            state,
            now: T0,
            session,
            lease: Some(lease),
            jobs,
            claims: HashMap::new(),
            records: HashMap::new(),
            fired: HashMap::new(),
            recorded: HashMap::new(),
            running: Vec::new(),
            revoked_ever: BTreeSet::new(),
        }
    }

    fn job(&self, id: &JobId) -> &Arc<Job> {
        self.jobs.iter().find(|j| &j.id == id).expect("a model job")
    }

    /// The instants of `job` in `first..=last`.
    fn instants(&self, job: &JobId, first: i64, last: i64) -> Vec<i64> {
        let job = self.job(job);
        let mut out = Vec::new();
        let mut cursor = first - 1;
        while let Some(t) = job.next_instant(chrono_tz::UTC, cursor) {
            if t > last {
                break;
            }
            out.push(t);
            cursor = t;
        }
        out
    }

    fn fire(&mut self, job: &JobId, t: i64) -> Result<(), TestCaseError> {
        let recorded = self.recorded.get(job).and_then(|r| r.get(&t));
        prop_assert!(
            recorded.is_none(),
            "{job}@{t} fired at {} after it was recorded {recorded:?}",
            self.now
        );
        prop_assert!(
            self.fired.entry(job.clone()).or_default().insert(t),
            "{job}@{t} fired twice (now {})",
            self.now
        );
        Ok(())
    }

    fn record(&mut self, record: RunRecord) -> Result<(), TestCaseError> {
        let job = record.job.clone();
        let instants = self.instants(&job, record.scheduled_ms, record.last_ms());
        prop_assert!(!instants.is_empty(), "a record of no instant: {record:?}");
        for t in instants {
            let fired = self.fired.get(&job).is_some_and(|f| f.contains(&t));
            let ran = matches!(record.outcome, Outcome::Succeeded | Outcome::InDoubt);
            prop_assert!(
                ran || !fired,
                "{job}@{t} recorded {:?} although it was fired",
                record.outcome
            );
            let before = self
                .recorded
                .entry(job.clone())
                .or_default()
                .insert(t, record.outcome);
            prop_assert!(
                before.is_none(),
                "{job}@{t} recorded twice: {before:?}, then {:?}",
                record.outcome
            );
        }
        let id = record.fire_id();
        self.records.entry(job).or_default().push(record);
        self.state.settled(&[id]);
        Ok(())
    }

    /// Carries out a transition's effects, checking each fire against the claims and the lease.
    fn apply(&mut self, fx: Decisions) -> Result<(), TestCaseError> {
        for fire in fx.fires {
            let job = fire.job.id.clone();
            let t = fire.scheduled_ms;
            prop_assert_eq!(
                fire.session,
                Some(self.session),
                "a fire under another session"
            );
            let lease = self.lease.expect("a fire without a lease");
            // Checked by hand, not through `Lease::permits`: the model must not share the code it checks.
            prop_assert!(
                self.now < lease.valid_until_ms,
                "{job}@{t} emitted at {} when the lease (until {}) does not permit it",
                self.now,
                lease.valid_until_ms
            );
            prop_assert!(t <= self.now, "{job}@{t} emitted early, at {}", self.now);
            let claim = self.claims.get(&job);
            prop_assert!(
                claim.is_some_and(|c| c.session == self.session
                    && c.from_ms <= t
                    && t <= c.through_ms),
                "{job}@{t} emitted outside the current session's claim {claim:?}"
            );
            self.fire(&job, t)?;
            self.running.push(fire);
        }
        for record in fx.records {
            self.record(record)?;
        }
        Ok(())
    }

    fn claim_round(&mut self, renewals: bool) -> Result<(), TestCaseError> {
        if self.lease.is_none() {
            return Ok(());
        }
        // Asked as the actor asks: with the slot of each job, so that the answers go straight to it.
        let mut asking = Asking::default();
        let mut cursor = None;
        while let Some(next) =
            self.state
                .claims_due_slice(self.now, renewals, cursor, usize::MAX, &mut asking)
        {
            cursor = Some(next);
        }
        let asked = self.state.claimed_jobs(&asking.slots);
        let mut grants = Vec::new();
        for (request, asked) in asking.claims.iter().zip(asked) {
            let held = self.claims.get(&request.job).cloned();
            // The coordinator's own rules: what the timer is checked against is how it uses a grant.
            let (claim, previous) = rules::grant(self.session, &node(), request, held.as_ref());
            self.claims.insert(request.job.clone(), claim.clone());
            grants.push(Granted {
                job: request.job.clone(),
                result: ClaimResult::Granted { claim, previous },
                asked: asked.map(|(slot, job, _)| Asked { slot, job }),
            });
        }
        self.state.granted(grants);
        // Settle predecessors: every earlier session is gone.
        let mut settlements = Vec::new();
        for (previous, job, tz) in self.state.pending_settlements() {
            let alive = previous.session == self.session;
            if still_firing(&previous, alive, self.now) {
                continue;
            }
            let candidates = unsettled_instants(&previous, &job, tz);
            let runs = self.records.get(&job.id).cloned().unwrap_or_default();
            let in_doubt = unrecorded(candidates, &runs);
            settlements.extend(verdict(&job.id, previous, alive, in_doubt));
        }
        let fx = self.state.settle(settlements);
        self.apply(fx)?;
        let fx = self.state.wake(self.now);
        self.apply(fx)
    }

    fn run(&mut self, step: Step) -> Result<(), TestCaseError> {
        match step {
            Step::Advance(ms) => {
                self.now += ms;
                let fx = self.state.wake(self.now);
                self.apply(fx)?;
            }
            Step::Claim { renewals } => self.claim_round(renewals)?,
            Step::Renew => {
                if self.lease.is_some() {
                    let lease = Lease {
                        session: self.session,
                        valid_until_ms: self.now + TTL_MS,
                    };
                    self.lease = Some(lease);
                    self.state.set_lease(Some(lease));
                }
            }
            Step::Lose => {
                self.lease = None;
                self.state.set_lease(None);
            }
            Step::NewSession => {
                self.session = SessionId(self.session.0 + 1);
                let lease = Lease {
                    session: self.session,
                    valid_until_ms: self.now + TTL_MS,
                };
                self.lease = Some(lease);
                self.state.set_lease(Some(lease));
            }
            Step::Revoke(i) => {
                self.revoked_ever.insert(i);
                self.state.revoke(&[self.jobs[i].id.clone()]);
            }
            Step::Upsert(i) => self.state.upsert(vec![self.jobs[i].clone()], self.now),
            Step::Record(n) => {
                let n = n.min(self.running.len());
                for fire in self.running.drain(..n).collect::<Vec<_>>() {
                    // The coordinator refuses records written under a session that is gone: its successor
                    // accounts for the instant (in doubt).
                    if fire.session == Some(self.session) {
                        self.record(RunRecord::new(&fire.id(), &node(), Outcome::Succeeded))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A lasting lease under a new session, claim rounds and every run ended: then every instant each
    /// never-revoked job owes up to `horizon` must be covered.
    fn heal_and_check(&mut self) -> Result<(), TestCaseError> {
        self.run(Step::NewSession)?;
        let end = self.now + 10_000;
        while self.now < end {
            self.run(Step::Renew)?;
            self.claim_round(true)?;
            self.run(Step::Advance(250))?;
            let all = self.running.len();
            self.run(Step::Record(all))?;
        }
        let horizon = self.now - 3000;
        let mut missing = BTreeMap::new();
        for (i, job) in self.jobs.iter().enumerate() {
            if self.revoked_ever.contains(&i) {
                continue;
            }
            let fired = self.fired.get(&job.id).cloned().unwrap_or_default();
            let recorded = self.recorded.get(&job.id).cloned().unwrap_or_default();
            let owed = self.instants(&job.id, T0 + 1, horizon);
            let lost: Vec<i64> = owed
                .into_iter()
                .filter(|t| !fired.contains(t) && !recorded.contains_key(t))
                .collect();
            if !lost.is_empty() {
                missing.insert(job.id.to_string(), lost);
            }
        }
        prop_assert!(
            missing.is_empty(),
            "owed instants neither fired nor recorded: {missing:?}"
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_timer_fires_within_claims_never_twice_and_owes_nothing(
        steps in proptest::collection::vec(step(), 1..120)
    ) {
        let mut model = Model::new();
        for step in steps {
            model.run(step)?;
        }
        model.heal_and_check()?;
    }
}
