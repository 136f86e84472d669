//! Claims: which instants to claim ahead of time ([`State::claims_due`]), how the coordinator's answers change
//! the state ([`State::granted`]), and the round trip that carries a claim request out (the one part that does
//! IO; the decisions about the predecessors it meets are the pure functions of `settle`).

use std::sync::Arc;

use chrono_tz::Tz;
use tracing::debug;

use super::settle::{self, Settlement};
use super::state::{State, duration_ms, first_owed_ms, next_instant};
use crate::coordinator::{
    ClaimResult, CoordError, Coordinator, FireClaim, JobClaim, RunQuery, SessionId,
};
use crate::job::{Job, JobId};

/// Most claims sent in one coordinator call; the round trip yields between calls, so a large renewal never
/// holds a runtime worker (or a backend's lock) for long.
pub const CLAIM_CHUNK: usize = 500;

/// Renewals are spread over this many claim ticks: on each tick, the jobs of one phase (their slot modulo
/// this) are renewed, so a node whose jobs were all claimed together does not renew them all in one turn.
pub const RENEWAL_PHASES: i64 = 3;

/// Most queue entries one turn of the timer looks at while it works out a claim tick's renewals: a tick over
/// more goes on in the next turn, with due instants emitted between the turns (see
/// [`State::claims_due_slice`]). Looking at an entry costs about a microsecond at 100,000 jobs (its job is
/// cold in the cache), so a slice is a turn of well under a millisecond; 4,096 per slice were turns of 3–6 ms
/// that the spread benchmark's fires waited behind.
pub const CLAIM_SCAN: usize = 512;

/// Most claim answers applied in one turn of the timer (an answer costs a few microseconds at 100,000 jobs):
/// a renewal of 30,000 claims is some 240 turns of a fraction of a millisecond, with due instants emitted
/// between them.
pub const GRANTS_PER_TURN: usize = 128;

/// Most settled instants applied in one turn of the timer: the recorder reports them a write batch (up to
/// `recorder::MAX_BATCH`) at a time, and applying one costs a few microseconds at 100,000 jobs.
pub const SETTLE_PER_TURN: usize = 256;

/// Where a claim scan goes on: the queue position after the last entry looked at.
pub type ScanCursor = (i64, u32);

/// The interval of claim ticks for a lookahead: four per lookahead, so a claim is renewed well before it runs
/// out (at least every 50 ms).
pub fn claim_tick(lookahead: std::time::Duration) -> std::time::Duration {
    (lookahead / 4).max(std::time::Duration::from_millis(50))
}

/// Where a claim wanted through `wanted` ends, when the lease allows it through `lease_last` at most: just
/// before a whole second, so that an instant on a whole second (every instant of a cron schedule) lies at least
/// a second before the end of the claim that covers it. A holder running a claim out (a job reassigned away, a
/// graceful leave) may so start its last instant up to a second late and still within the claim; with the end
/// anywhere, an instant a few milliseconds before it, woken a few milliseconds late, was past the claim and was
/// recorded `misfired` (postmortem: the chaos runs' rolling restarts, "last one 27ms late"). The end moves up
/// to the next whole second where the lease allows it, down otherwise.
pub(super) fn claim_end(wanted: i64, lease_last: i64) -> i64 {
    let before_second = |t: i64| t - (t + 1).rem_euclid(1000);
    let up = before_second(wanted.saturating_add(999));
    if up <= lease_last {
        up
    } else {
        before_second(lease_last)
    }
}

/// How long a claim call may go unanswered before the timer gives it up (it is asked again at the next claim
/// tick): until the lease's end, at least a second. A claim answered later is of no use before a renewal, and
/// a call to a coordinator member that froze would otherwise hold every claim of the node until the backend's
/// own request deadline (`etcd.request_timeout`, 5 s) and leave the jobs unclaimed past the TTL; asked again,
/// the call usually reaches another member. Giving up a call is safe: a claim granted with the answer lost is
/// learned from the next grant (an extension keeps its start, and a takeover's predecessor is answered again).
/// postmortem: the chaos runs' `freeze_coordinator_member` stalled jobs for up to 9 s.
pub(super) fn claim_deadline(valid_until_ms: i64, now_ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(
        u64::try_from(valid_until_ms - now_ms)
            .unwrap_or(0)
            .max(1000),
    )
}

/// The outcome of one claim.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The job.
    pub job: JobId,
    /// What the coordinator answered.
    pub result: ClaimResult,
    /// Where the timer held the job when it asked (`None`: not known, the job is looked up by id).
    pub asked: Option<Asked>,
}

/// Where the timer held a job when it asked for its claim: the slot, and the job it held there. The answer
/// goes to that slot without a lookup by id while the slot still holds the very same job (the same `Arc`,
/// which this keeps alive, so its address cannot be taken by another job meanwhile). A renewal of 100,000
/// claims so reads each entry once rather than hashing each id and following it to its entry twice.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The slot of the timer's slab.
    pub slot: u32,
    /// The job in it.
    pub job: Arc<Job>,
}

/// The claims a scan asks for, so far, with the slot each was asked from.
#[derive(Debug, Default)]
pub struct Asking {
    /// The claims, in order.
    pub claims: Vec<FireClaim>,
    /// The slot of each claim's job.
    pub slots: Vec<u32>,
    /// The slots claimed by earlier slices of a sliced scan.
    pub seen: rustc_hash::FxHashSet<u32>,
}

impl Asking {
    /// Adds the claim of the job in `slot`; `sliced`: the scan goes on over several slices, which must not
    /// ask for it again.
    fn ask(&mut self, slot: u32, sliced: bool, claim: FireClaim) {
        if sliced {
            self.seen.insert(slot);
        }
        self.slots.push(slot);
        self.claims.push(claim);
    }
}

/// What one claim round trip found.
#[derive(Debug, Clone, Default)]
pub struct RoundTrip {
    /// The answers to the claims.
    pub grants: Vec<Granted>,
    /// Predecessors settled in this round.
    pub settlements: Vec<Settlement>,
}

impl State {
    /// The claims to request now: first claims of new jobs and, with `renewals` (a claim tick), renewals of
    /// jobs due within the lookahead (only those entries are looked at, so a tick costs what is due, not what
    /// is held). A tick renews the jobs of its phase (see `RENEWAL_PHASES`: each job every third tick, which
    /// keeps its claim at least a quarter of the lookahead ahead), and any claim that runs out within half
    /// the lookahead whatever its phase.
    pub fn claims_due(&self, now_ms: i64, renewals: bool) -> Vec<FireClaim> {
        let mut asked = Asking::default();
        let mut cursor = None;
        while let Some(next) =
            self.claims_due_slice(now_ms, renewals, cursor, usize::MAX, &mut asked)
        {
            cursor = Some(next);
        }
        asked.claims
    }

    /// One slice of [`State::claims_due`]: looks at up to `max_scan` queued entries after `cursor` (`None`:
    /// the first slice, which also takes the jobs not claimed yet and the blocked ones), adds the claims to
    /// request to `asking`, and returns where the scan goes on, or `None` once it is done. `asking.seen` holds
    /// the slots claimed by earlier slices of the same scan: an entry that moved in the queue between two
    /// slices (it fired, and waits at its next instant) is claimed once. Every slice works out the claims for the
    /// scan's `now_ms`, so the slices of one scan make the same request as one call would have made, apart
    /// from the jobs that changed between them.
    pub fn claims_due_slice(
        &self,
        now_ms: i64,
        renewals: bool,
        cursor: Option<ScanCursor>,
        max_scan: usize,
        asking: &mut Asking,
    ) -> Option<ScanCursor> {
        let lease = self.lease?;
        if self.draining || !lease.valid_at(now_ms) {
            return None;
        }
        let lookahead = duration_ms(self.config.lookahead);
        let through = claim_end(now_ms + lookahead, lease.valid_until_ms - 1);
        let renew_below = now_ms + lookahead / 2;
        let tick_ms = duration_ms(claim_tick(self.config.lookahead)).max(1);
        let phase = now_ms.div_euclid(tick_ms).rem_euclid(RENEWAL_PHASES);
        let end = (now_ms + lookahead + 1, 0);
        let start = match cursor {
            Some(after) if after >= end => return None,
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        let (mut last, mut scanned) = (None, 0);
        let due_soon = self
            .queue
            .range((start, std::ops::Bound::Excluded(end)))
            .take(max_scan)
            .map(|&key| {
                last = Some(key);
                scanned += 1;
                key.1
            });
        let candidates: Box<dyn Iterator<Item = u32>> = match (renewals, cursor) {
            // A tick: refused jobs may be tried again.
            (true, None) => Box::new(
                self.unclaimed
                    .iter()
                    .copied()
                    .chain(self.blocked.iter().copied())
                    .chain(due_soon),
            ),
            (true, Some(_)) => Box::new(due_soon),
            (false, None) => Box::new(self.unclaimed.iter().copied()),
            (false, Some(_)) => return None,
        };
        for slot in candidates {
            if !asking.seen.is_empty() && asking.seen.contains(&slot) {
                continue;
            }
            let Some(entry) = self.slots[slot as usize].as_ref() else {
                continue;
            };
            if entry.rests_unsettled()
                && let Some((from, through)) = entry.claim
            {
                // Nothing more to fire while paused: the same claim, settled through its end.
                asking.ask(
                    slot,
                    max_scan != usize::MAX,
                    FireClaim {
                        job: entry.job.id.clone(),
                        from_ms: from,
                        through_ms: through,
                        settled_ms: through,
                    },
                );
                continue;
            }
            if (entry.job.spec.paused && !entry.owes_before_pause())
                || entry.revoked
                || (!renewals && self.refused.contains(&entry.job.id))
            {
                continue;
            }
            let wanted = match entry.claim {
                None => true,
                Some((_, held)) => {
                    let in_phase = i64::from(slot) % RENEWAL_PHASES == phase;
                    // In its phase, renewed if that gains a tick, or a whole second (claims end just
                    // before one: see `claim_end`).
                    let gain = tick_ms.min(1000);
                    (held < renew_below || (in_phase && renewals && held <= through - gain))
                        && entry.next_ms.is_some_and(|t| t <= now_ms + lookahead)
                }
            };
            let from = entry.claim.map_or_else(
                || first_owed_ms(&entry.job).max(entry.resumed_ms.map_or(i64::MIN, |t| t + 1)),
                |(from, _)| from,
            );
            // Nothing to claim before the lease allows it: a claim that starts after the lease's last whole
            // second waits for the lease to be renewed. Asked for anyway (it used to be, through its start), it
            // ended on the very instant it started at, and a wake a few milliseconds late was past it: the
            // instant handed over was recorded `misfired` instead of fired late. postmortem: the chaos runs'
            // rolling restarts (`j0021@1796660707000` on etcd, "last one 9ms late"), where a successor's
            // takeover starts at the previous holder's claim end and its lease had less than a second left.
            if wanted && through >= from {
                asking.ask(
                    slot,
                    max_scan != usize::MAX,
                    FireClaim {
                        job: entry.job.id.clone(),
                        from_ms: from,
                        through_ms: through,
                        // A first claim has settled nothing of its own yet: everything before it, as far as this
                        // node knows (a takeover lowers it to the predecessor's).
                        settled_ms: if entry.claim.is_some() {
                            entry.settled_ms()
                        } else {
                            from - 1
                        },
                    },
                );
            }
        }
        // More to look at only if this slice stopped at its bound.
        if scanned == max_scan { last } else { None }
    }

    /// Applies the coordinator's answers to a claim request. Returns the claims to give back, each at the last
    /// instant to keep: answers that came after the timer let their job go (it was reassigned or deleted while
    /// the request was out). Such a claim would otherwise stay with this live session, which fires none of its
    /// instants, and its successor would wait for this session to record them.
    pub fn granted(&mut self, grants: Vec<Granted>) -> Vec<(JobId, i64)> {
        let mut stray = Vec::new();
        let Some(lease) = self.lease else {
            return stray;
        };
        for grant in grants {
            let Some(slot) = self
                .asked_slot(&grant)
                .or_else(|| self.index.get(&self.slots, &grant.job))
                .or_else(|| self.take_back(&grant, lease.session))
            else {
                if let ClaimResult::Granted { claim, .. } = &grant.result
                    && claim.session == lease.session
                {
                    // Keep what this session fired before it let the job go, nothing after.
                    let kept = self
                        .released
                        .get(&grant.job)
                        .copied()
                        .unwrap_or(i64::MIN)
                        .max(claim.from_ms - 1);
                    if kept < claim.through_ms {
                        debug!(job = %grant.job, ?claim, kept, "a claim answered after the job was let go: giving it back");
                        stray.push((grant.job.clone(), kept));
                    }
                }
                continue;
            };
            match grant.result {
                ClaimResult::Granted { claim, previous } => {
                    if claim.session != lease.session {
                        continue; // an answer for a session we no longer have
                    }
                    if !self.unclaimed.is_empty() {
                        self.unclaimed.remove(&slot);
                    }
                    if !self.blocked.is_empty() {
                        self.blocked.remove(&slot);
                    }
                    let entry = self.slots[slot as usize]
                        .as_mut()
                        .expect("indexed slot is occupied");
                    // Where the entry waits in the queue now: a renewal leaves it there (its next instant
                    // does not change), anything else moves it below.
                    let queued_at = entry.queued.then_some(entry.next_ms).flatten();
                    if entry.claim.is_none() {
                        // A first claim: the instants start where the grant starts, or, if this session held
                        // the job before and let it go, after the last instant it fired then (postmortem: a
                        // job given back to the same session was fired again from its claim's start,
                        // simulation seeds 113 and 156).
                        let resume = (claim.from_ms - 1)
                            .max(self.released.remove(&grant.job).unwrap_or(i64::MIN));
                        entry.next_ms = next_instant(&entry.job, entry.tz, resume);
                        entry.last_ms = resume;
                    }
                    let new_tenure = entry.claim.is_none_or(|(from, _)| from != claim.from_ms);
                    if new_tenure {
                        debug!(
                            job = %grant.job,
                            from = claim.from_ms,
                            through = claim.through_ms,
                            settled = claim.settled_ms,
                            previous = ?previous,
                            next = ?entry.next_ms,
                            "claim granted"
                        );
                    }
                    // A new tenure that starts after instants this entry still had to fire (another
                    // session held the job in between, and fires those): go on from the tenure's start.
                    // postmortem: simulation seed 548 emitted an instant of the other holder's claim.
                    if entry.next_ms.is_some_and(|t| t < claim.from_ms) {
                        entry.last_ms = entry.last_ms.max(claim.from_ms - 1);
                        entry.next_ms = next_instant(&entry.job, entry.tz, entry.last_ms);
                    }
                    // A first grant, or a new tenure, settles the predecessor it names (an extension names it
                    // again until it is settled: a retry whose takeover answer was lost learns it so; postmortem:
                    // simulation seeds 6 and 669). Settled later, once the predecessor is gone or has recorded
                    // everything.
                    entry.claim = Some((claim.from_ms, claim.through_ms));
                    entry.settled_through = claim.settled_ms >= claim.through_ms;
                    if new_tenure
                        && let Some(previous) = previous.filter(|p| p.session != lease.session)
                    {
                        entry.predecessor = Some(Box::new(previous));
                    }
                    if queued_at.is_none() || queued_at != entry.next_ms {
                        self.requeue(slot, queued_at);
                    }
                }
                ClaimResult::NotOwner { owner } => {
                    self.refused.insert(grant.job.clone());
                    debug!(job = %grant.job, owner = ?owner, "claim refused: not the owner");
                }
                ClaimResult::NoSuchJob => {}
            }
        }
        stray
    }

    /// The slot a grant's claim was asked from, if it still holds the same job (see [`Asked`]).
    fn asked_slot(&self, grant: &Granted) -> Option<u32> {
        let asked = grant.asked.as_ref()?;
        let entry = self.slots.get(asked.slot as usize)?.as_ref()?;
        Arc::ptr_eq(&entry.job, &asked.job).then_some(asked.slot)
    }

    /// The job (and zone) in each of these slots, in their order (the slots a scan asked claims from, see
    /// [`Asking`]): for settling the predecessors the answers may name, and for applying the answers.
    pub fn claimed_jobs(&self, slots: &[u32]) -> Vec<Option<(u32, Arc<Job>, Tz)>> {
        slots
            .iter()
            .map(|&slot| {
                let entry = self.slots.get(slot as usize)?.as_ref()?;
                Some((slot, entry.job.clone(), entry.tz))
            })
            .collect()
    }
}

/// Claims, then settles the predecessors that can be settled: gone (session no longer live) or fully recorded.
/// A failure while settling leaves those predecessors pending for the next round; only a failed claim fails
/// the round trip.
pub(super) async fn claim_round_trip(
    coordinator: &dyn Coordinator,
    session: SessionId,
    claims: Vec<FireClaim>,
    jobs: &[Option<(u32, Arc<Job>, Tz)>],
    pending: Vec<(JobClaim, Arc<Job>, Tz)>,
    now_ms: i64,
    deadline: std::time::Duration,
) -> Result<RoundTrip, CoordError> {
    let mut trip = RoundTrip::default();
    let mut to_settle = pending;
    for (i, (chunk, chunk_jobs)) in claims
        .chunks(CLAIM_CHUNK)
        .zip(jobs.chunks(CLAIM_CHUNK))
        .enumerate()
    {
        if i > 0 {
            tokio::task::yield_now().await;
        }
        let results = tokio::time::timeout(deadline, coordinator.claim_fires(session, chunk))
            .await
            .map_err(|_| CoordError::Unavailable {
                message: format!(
                    "claiming fires: no answer within {}",
                    humantime::format_duration(deadline)
                ),
                certainly_aborted: false,
                source: None,
            })??;
        for ((claim, result), job) in chunk.iter().zip(results).zip(chunk_jobs) {
            if let ClaimResult::Granted {
                previous: Some(previous),
                ..
            } = &result
                && previous.session != session
                && let Some((_, job, tz)) = job
            {
                to_settle.push((previous.clone(), job.clone(), *tz));
            }
            trip.grants.push(Granted {
                job: claim.job.clone(),
                result,
                asked: job.as_ref().map(|(slot, job, _)| Asked {
                    slot: *slot,
                    job: job.clone(),
                }),
            });
        }
    }
    if to_settle.is_empty() {
        return Ok(trip);
    }
    let live: std::collections::HashSet<SessionId> = match coordinator.members().await {
        Ok(members) => members.members.iter().map(|m| m.session).collect(),
        Err(error) => {
            debug!(%error, "members unavailable; settling later");
            return Ok(trip);
        }
    };
    for (previous, job, tz) in to_settle {
        let alive = live.contains(&previous.session);
        if settle::still_firing(&previous, alive, now_ms) {
            continue; // still in its tenure: it fires and records these itself
        }
        let candidates = settle::unsettled_instants(&previous, &job, tz);
        let in_doubt = match candidates.last() {
            Some(&last) => {
                // Records starting in the range, plus the newest one starting before it: a `misfired` record
                // may cover a range of instants that begins earlier (the records of one job never overlap).
                let query = RunQuery {
                    from_ms: None,
                    before_ms: Some(last + 1),
                    limit: candidates.len() + 1,
                };
                match coordinator.runs(&job.id, query).await {
                    Ok(runs) => settle::unrecorded(candidates, &runs),
                    Err(error) => {
                        debug!(%error, job = %job.id, "runs unavailable; settling later");
                        continue;
                    }
                }
            }
            None => candidates,
        };
        if let Some(settlement) = settle::verdict(&job.id, previous, alive, in_doubt) {
            trip.settlements.push(settlement);
        }
    }
    Ok(trip)
}
