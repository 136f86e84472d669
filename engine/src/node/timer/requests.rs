//! Requested runs (`trigger`, `backfill`) of the jobs this node owns. A request waits in its job (see
//! `crate::job::RunRequest`); the owner takes it by writing its session into the request under the job's
//! revision, so one session takes each, and then runs it like any fire of its own: under its lease, through
//! the executor's overlap policy. A request taken by a session that is gone without a record is in doubt
//! and settled by the job's delivery mode, as a predecessor's claimed instants are. Requests whose runs are
//! recorded leave the job at the next take.
//!
//! Only jobs held and not revoked take requests (a paused job too: a request is asked for): the run happens
//! on the node the assignment chose, under the job's labels; one reassigned away leaves its requests to its
//! next owner.

use std::collections::BTreeSet;
use std::sync::Arc;

use ractor::ActorRef;
use tracing::{debug, warn};

use rustc_hash::{FxHashMap, FxHashSet};

use super::state::{Decisions, State};
use super::{Msg, Shell};
use crate::coordinator::{CoordError, Coordinator, Precondition, RunQuery, SessionId};
use crate::job::{Delivery, FireId, Job, JobId, MAX_PENDING_REQUESTS};
use crate::node::fire::{Fire, FireKind};
use crate::run::{Outcome, RunRecord};

/// How often a take is tried against concurrent writers of the job (requests being added meanwhile).
const TAKE_ATTEMPTS: u32 = 16;

/// What one job's take found.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The job as written with the take (or as read, when nothing was left to take).
    pub job: Arc<Job>,
    /// Requests this session holds: run those not handed on yet.
    pub run: Vec<i64>,
    /// Requests a session that is gone took and left no record of: settle by the delivery mode.
    pub in_doubt: Vec<(i64, SessionId)>,
}

/// The timer's book of requested runs: which owned jobs have requests, and which of them this session has
/// handed on. Kept beside the pure [`State`] so that a turn looks only at the jobs that have requests.
#[derive(Debug, Default)]
pub struct Requests {
    /// Jobs held with requests in them.
    jobs: FxHashSet<JobId>,
    /// Requests this session handed on to the executor, by job (so a take that finds them taken by this
    /// session does not run them twice, and one whose answer was lost still runs them).
    handed: FxHashMap<JobId, FxHashSet<i64>>,
    /// The session `handed` is about.
    session: Option<SessionId>,
    /// Jobs with a handed-on request whose record is now stored: the next take drops it from the job.
    recorded: FxHashSet<JobId>,
    /// A take is in flight.
    taking: bool,
    /// Another take was asked for while one was in flight.
    again: bool,
}

impl Requests {
    /// Notes which of these upserted jobs have requests.
    pub fn upserted(&mut self, jobs: &[Arc<Job>]) {
        for job in jobs {
            if job.requests.is_empty() {
                self.jobs.remove(&job.id);
                self.handed.remove(&job.id);
            } else {
                self.jobs.insert(job.id.clone());
                if let Some(handed) = self.handed.get_mut(&job.id) {
                    // Requests that left the job (recorded) need no memory of having been handed on.
                    let waiting: FxHashSet<i64> = job.requests.iter().map(|r| r.ms).collect();
                    handed.retain(|t| waiting.contains(t));
                }
            }
        }
    }

    /// Notes stored records of requests this session handed on; whether a take should now drop them from
    /// their jobs.
    pub fn settled(&mut self, fires: &[FireId]) -> bool {
        for fire in fires {
            if self
                .handed
                .get(&fire.job)
                .is_some_and(|h| h.contains(&fire.scheduled_ms))
            {
                self.recorded.insert(fire.job.clone());
            }
        }
        !self.recorded.is_empty()
    }

    /// The jobs whose requests may need this session: held and not revoked (paused or not), with a request that
    /// this session has not handed on, or with a handed-on one now recorded (to drop it). Forgets jobs no
    /// longer held.
    pub fn due(&mut self, state: &State) -> Vec<JobId> {
        let Some(lease) = state.lease else {
            return Vec::new();
        };
        if self.session != Some(lease.session) {
            self.session = Some(lease.session);
            self.handed.clear();
        }
        let mut due = Vec::new();
        self.jobs.retain(|id| {
            let Some(entry) = state
                .index
                .get(&state.slots, id)
                .and_then(|slot| state.slots[slot as usize].as_ref())
            else {
                return false;
            };
            let handed = self.handed.get(id);
            let held = !entry.revoked;
            if held
                && (self.recorded.contains(id)
                    || entry
                        .job
                        .requests
                        .iter()
                        .any(|r| !handed.is_some_and(|h| h.contains(&r.ms))))
            {
                due.push(id.clone());
            }
            true
        });
        self.handed.retain(|id, _| self.jobs.contains(id));
        self.recorded.clear();
        due
    }

    /// Runs what was taken under `session`, if it is still the lease's: the requests it holds and has not
    /// handed on, oldest first, and the in-doubt ones by the job's delivery mode (again, or recorded
    /// `in_doubt`).
    pub fn take(&mut self, state: &State, taken: Vec<Taken>, session: SessionId) -> Decisions {
        let mut fx = Decisions::default();
        if state.lease.is_none_or(|l| l.session != session) || self.session != Some(session) {
            return fx; // taken under a session that is over: its successor settles them
        }
        for Taken {
            job,
            mut run,
            in_doubt,
        } in taken
        {
            for (t, gone) in in_doubt {
                match job.spec.delivery {
                    Delivery::AtLeastOnce => run.push(t),
                    Delivery::AtMostOnce => {
                        let mut record =
                            RunRecord::new(&job.fire_id(t), &state.node, Outcome::InDoubt);
                        record.manual = true;
                        record.reason = Some(format!(
                            "requested run taken by session {gone} which left no record"
                        ));
                        self.handed.entry(job.id.clone()).or_default().insert(t);
                        fx.records.push(record);
                    }
                }
            }
            let handed = self.handed.entry(job.id.clone()).or_default();
            run.retain(|t| handed.insert(*t));
            run.sort_unstable();
            debug!(job = %job.id, ?run, "requested runs taken");
            fx.fires.extend(run.into_iter().map(|t| Fire {
                job: job.clone(),
                scheduled_ms: t,
                kind: FireKind::Manual,
                session: Some(session),
                start_by_ms: None,
            }));
        }
        fx
    }
}

impl Shell {
    /// Starts a take of the requests of the jobs that need one in a spawned call, unless one is in flight
    /// (then it runs again once that one has answered).
    pub(super) fn take_requests(&mut self, myself: &ActorRef<Msg>) {
        if self.requests.taking {
            self.requests.again = true;
            return;
        }
        let Some(lease) = self.state.lease else {
            return;
        };
        let jobs = self.requests.due(&self.state);
        if jobs.is_empty() {
            return;
        }
        self.requests.taking = true;
        self.requests.again = false;
        let coordinator = self.coordinator.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = take_round_trip(coordinator.as_ref(), lease.session, &jobs).await;
            let _ = myself.cast(Msg::Taken(lease.session, result));
        });
    }

    /// Applies a take's answer, and starts the next take if one was asked for meanwhile.
    pub(super) fn taken(
        &mut self,
        myself: &ActorRef<Msg>,
        session: SessionId,
        result: Result<Vec<Taken>, CoordError>,
    ) {
        self.requests.taking = false;
        match result {
            Ok(taken) => {
                let fx = self.requests.take(&self.state, taken, session);
                self.apply(fx);
            }
            Err(error) => {
                crate::metrics::coordinator_error("take_requests");
                warn!(%error, "taking requested runs failed");
            }
        }
        if self.requests.again {
            self.take_requests(myself);
        }
    }
}

/// Takes, for `session`, the requests of `jobs` that nobody live holds, dropping those whose runs are
/// recorded; each job is written under the revision it was read at.
pub async fn take_round_trip(
    coordinator: &dyn Coordinator,
    session: SessionId,
    jobs: &[JobId],
) -> Result<Vec<Taken>, CoordError> {
    let live: BTreeSet<SessionId> = coordinator
        .members()
        .await?
        .members
        .iter()
        .map(|m| m.session)
        .collect();
    let mut out = Vec::new();
    for id in jobs {
        for attempt in 1..=TAKE_ATTEMPTS {
            let Some(mut job) = coordinator.get_job(id).await? else {
                break;
            };
            let (Some(first), Some(last)) = (
                job.requests.iter().map(|r| r.ms).min(),
                job.requests.iter().map(|r| r.ms).max(),
            ) else {
                break;
            };
            let query = RunQuery {
                from_ms: Some(first),
                before_ms: Some(last.saturating_add(1)),
                limit: MAX_PENDING_REQUESTS * 2,
            };
            let recorded: BTreeSet<i64> = coordinator
                .runs(id, query)
                .await?
                .iter()
                .map(|r| r.scheduled_ms)
                .collect();
            let before = job.requests.len();
            job.requests.retain(|r| !recorded.contains(&r.ms));
            let mut changed = job.requests.len() != before;
            let (mut run, mut in_doubt) = (Vec::new(), Vec::new());
            for request in &mut job.requests {
                match request.taken {
                    Some(taker) if taker == session => run.push(request.ms),
                    Some(taker) if live.contains(&taker) => {}
                    Some(gone) => in_doubt.push((request.ms, gone)),
                    None => run.push(request.ms),
                }
                if request.taken != Some(session)
                    && !request.taken.is_some_and(|t| live.contains(&t))
                {
                    request.taken = Some(session);
                    changed = true;
                }
            }
            if !changed {
                // Nothing to write: what this session already holds may still need handing on (a take
                // whose answer was lost wrote it).
                out.push(Taken {
                    job: Arc::new(job),
                    run,
                    in_doubt: Vec::new(),
                });
                break;
            }
            match coordinator
                .put_job(job.clone(), Precondition::Revision(job.revision))
                .await
            {
                Ok(revision) => {
                    job.revision = revision;
                    out.push(Taken {
                        job: Arc::new(job),
                        run,
                        in_doubt,
                    });
                    break;
                }
                Err(CoordError::Conflict { .. }) if attempt < TAKE_ATTEMPTS => continue,
                Err(CoordError::NotFound { .. }) => break,
                Err(error) => return Err(error),
            }
        }
    }
    Ok(out)
}
