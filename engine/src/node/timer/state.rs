//! The timer's pure state: a slab of entries (one per owned job) and one ordered queue of `(next instant,
//! slot)`. Every transition is a synchronous method that returns the [`Decisions`] the actor carries out; nothing
//! here awaits, reads the clock or does IO.

use std::collections::BTreeSet;

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use tracing::debug;

use super::index::Index;
use super::{Config, Lease};
use crate::coordinator::{JobClaim, SessionId};
use crate::job::{FireId, Job, JobId};
use crate::misfire;
use crate::node::fire::{Fire, FireKind};
use crate::run::{Outcome, RunRecord};

/// Most missed instants enumerated for one job at once; older ones are summarized by count only.
pub(super) const MAX_MISSED_SCAN: usize = 100_000;

/// One owned job, as the timer holds it.
pub(super) struct Entry {
    pub(super) job: Arc<Job>,
    pub(super) tz: Tz,
    /// The next instant not yet emitted.
    pub(super) next_ms: Option<i64>,
    /// Our claim: `(from, through)`, inclusive.
    pub(super) claim: Option<(i64, i64)>,
    /// Emitted instants whose run record is not yet stored.
    pub(super) outstanding: Vec<i64>,
    /// The last instant emitted (or skipped while paused).
    pub(super) last_ms: i64,
    /// Whether `(next_ms, slot)` is in the queue.
    pub(super) queued: bool,
    /// Reassigned away: no renewal; dropped once the claim has run out.
    pub(super) revoked: bool,
    /// The claim of the session we took the job over from, until it is settled.
    /// (Boxed: rare, and an entry is held per owned job.)
    pub(super) predecessor: Option<Box<JobClaim>>,
    /// Set when this node saw the job resumed: instants before are not owed (they passed while paused).
    pub(super) resumed_ms: Option<i64>,
    /// While the job is paused: when the pause took effect; instants up to it are still owed (see `pause`).
    pub(super) paused_ms: Option<i64>,
    /// The coordinator holds our claim settled through its end, as the last answer said (see
    /// `pause::Entry::rests_unsettled`).
    pub(super) settled_through: bool,
}

impl Entry {
    /// A job just taken, with no claim yet (the first claim decides where its instants start); `revoked` if it
    /// is only held to fire out a claim granted after it was let go.
    pub(super) fn unclaimed(job: Arc<Job>, tz: Tz, revoked: bool) -> Self {
        Self {
            tz,
            next_ms: None,
            claim: None,
            outstanding: Vec::new(),
            last_ms: i64::MIN,
            queued: false,
            revoked,
            predecessor: None,
            resumed_ms: None,
            paused_ms: super::pause::paused_ms(&job),
            settled_through: false,
            job,
        }
    }

    /// Every instant of our claim up to here has a stored record; while a predecessor is not settled yet, no
    /// further than its own `settled_ms` (its unsettled instants stay visible in the claim).
    pub(super) fn settled_ms(&self) -> i64 {
        let base = self.claim.map_or(i64::MIN, |(from, _)| from - 1);
        let own = self.last_ms.max(base);
        // Instants waiting for their record hold `settled` back, also those before our claim (a
        // predecessor's instants we record as in doubt).
        let settled = self
            .outstanding
            .iter()
            .min()
            .map_or(own, |first| own.min(first - 1));
        match self.predecessor.as_deref() {
            Some(previous) => settled.min(previous.settled_ms),
            None => settled,
        }
    }
}

/// What a state transition asks the actor to do.
#[derive(Debug, Default)]
pub struct Decisions {
    /// Fires to hand to the executor.
    pub fires: Vec<Fire>,
    /// Records to write (misfired, in doubt).
    pub records: Vec<RunRecord>,
}

/// The timer's state: every owned job's next instant and claim.
pub struct State {
    pub(super) node: crate::coordinator::NodeId,
    pub(super) config: Config,
    pub(super) slots: Vec<Option<Entry>>,
    pub(super) free: Vec<u32>,
    pub(super) index: Index,
    /// `(next_ms, slot)` of every claimed entry whose next instant is within its claim or not yet reached.
    pub(super) queue: BTreeSet<(i64, u32)>,
    /// Entries without a claim (new, or after a session change).
    pub(super) unclaimed: BTreeSet<u32>,
    /// Entries whose next instant came before their claim was renewed.
    pub(super) blocked: BTreeSet<u32>,
    /// For jobs this session let go (reassigned away): the last instant it emitted. If the job comes back
    /// to the same session, the coordinator answers with the same claim (an extension keeps `from_ms`), and
    /// the timer must resume after what it already fired, not at the claim's start.
    pub(super) released: FxHashMap<JobId, i64>,
    /// Jobs answered `NotOwner`: not claimed again before the next claim tick (no claim storm while this
    /// node's view of the assignment is behind the coordinator's).
    pub(super) refused: FxHashSet<JobId>,
    /// Jobs let go since the last claim scan started, in case a claim of theirs that was out is answered
    /// (see `parting`).
    pub(super) parting: FxHashMap<JobId, (Arc<Job>, Tz)>,
    pub(super) lease: Option<Lease>,
    pub(super) draining: bool,
}

impl State {
    /// An empty timer.
    pub fn new(node: crate::coordinator::NodeId, config: Config) -> Self {
        Self {
            node,
            config,
            slots: Vec::new(),
            free: Vec::new(),
            index: Index::default(),
            queue: BTreeSet::new(),
            unclaimed: BTreeSet::new(),
            blocked: BTreeSet::new(),
            released: FxHashMap::default(),
            refused: FxHashSet::default(),
            parting: FxHashMap::default(),
            lease: None,
            draining: false,
        }
    }

    /// Number of jobs held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no job is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Takes jobs (new or updated). An update keeps the claim and takes effect from the next instant after now.
    pub fn upsert(&mut self, jobs: Vec<Arc<Job>>, now_ms: i64) {
        for job in jobs {
            let tz = job.spec.tz().unwrap_or(chrono_tz::UTC);
            match self.index.get(&self.slots, &job.id) {
                Some(slot) => {
                    self.dequeue(slot);
                    self.blocked.remove(&slot);
                    let entry = self.slots[slot as usize]
                        .as_mut()
                        .expect("indexed slot is occupied");
                    // An update goes on after the last instant handled: through the old schedule's
                    // instants up to the update and the new one's after it, even those that passed before
                    // the update reached this node (late ones go through the misfire policy). Pausing or
                    // resuming takes effect from now: a paused job owes nothing after it (see `pause`).
                    // (Without a claim, the grant sets the start.)
                    let after = entry.pause_update(&job, now_ms);
                    entry.next_ms = next_instant(&job, tz, after);
                    entry.job = job;
                    entry.tz = tz;
                    entry.revoked = false;
                    if entry.claim.is_none() {
                        self.unclaimed.insert(slot);
                    }
                    self.enqueue(slot);
                }
                None => {
                    // No claim yet: the first claim decides where the instants start.
                    self.insert_entry(Entry::unclaimed(job, tz, false));
                }
            }
        }
        metrics::gauge!(crate::metrics::JOBS_OWNED).set(self.index.len() as f64);
    }

    /// Puts a new entry, without a claim, in a free slot; returns the slot.
    pub(super) fn insert_entry(&mut self, entry: Entry) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 jobs")
            }
        };
        self.index.insert(&self.slots, slot);
        self.unclaimed.insert(slot);
        slot
    }

    /// Drops deleted jobs now; returns the claims to release: `(job, last instant kept)`.
    pub fn remove(&mut self, ids: &[JobId]) -> Vec<(JobId, i64)> {
        let mut releases = Vec::new();
        for id in ids {
            self.parting.remove(id); // a late claim of a deleted job is given back, not fired out
            let Some(slot) = self.index.get(&self.slots, id) else {
                continue;
            };
            let entry = self.drop_slot(slot);
            if entry.claim.is_some() {
                releases.push((id.clone(), entry.settled_ms().max(entry.last_ms)));
            }
        }
        releases
    }

    /// Jobs reassigned away: no more renewals; each keeps firing what it has claimed and is dropped when its
    /// claim has run out (at once if it has none).
    pub fn revoke(&mut self, ids: &[JobId]) {
        for id in ids {
            let Some(slot) = self.index.get(&self.slots, id) else {
                continue;
            };
            let entry = self.slots[slot as usize]
                .as_mut()
                .expect("indexed slot is occupied");
            entry.revoked = true;
            if super::parting::run_out(entry) {
                self.let_go(slot);
            }
        }
    }

    /// Drops a revoked entry whose claim has run out, remembering where this session stopped firing it; kept
    /// (out of the queue) while its predecessor is not settled (see `parting`).
    pub(super) fn let_go(&mut self, slot: u32) {
        if self.stays_to_settle(slot) {
            return;
        }
        let entry = self.drop_slot(slot);
        if entry.claim.is_some() {
            self.released.insert(entry.job.id.clone(), entry.last_ms);
        }
        self.parted(entry.job, entry.tz);
    }

    pub(super) fn drop_slot(&mut self, slot: u32) -> Entry {
        self.dequeue(slot);
        self.unclaimed.remove(&slot);
        self.blocked.remove(&slot);
        let entry = self.slots[slot as usize].take().expect("slot is occupied");
        self.index.remove(&entry.job.id, slot);
        self.free.push(slot);
        metrics::gauge!(crate::metrics::JOBS_OWNED).set(self.index.len() as f64);
        entry
    }

    /// A new or renewed lease, or `None`: the session is lost, so every claim is void.
    pub fn set_lease(&mut self, lease: Option<Lease>) {
        let session_changed = self.lease.map(|l| l.session) != lease.map(|l| l.session);
        self.lease = lease;
        if session_changed {
            // Claims belong to the old session: whatever it did not settle is the successor's to account for
            // (that may be this node's new session). Start over from the first claim.
            self.blocked.clear();
            self.released.clear(); // a new session's claims never extend the old one's
            self.parting.clear();
            for slot in 0..self.slots.len() as u32 {
                if self.slots[slot as usize]
                    .as_ref()
                    .is_some_and(|e| e.revoked)
                {
                    // Not ours any more, and the claim that kept it here is void.
                    self.drop_slot(slot);
                    continue;
                }
                self.dequeue(slot);
                if let Some(entry) = self.slots[slot as usize].as_mut() {
                    entry.claim = None;
                    entry.next_ms = None;
                    entry.outstanding.clear();
                    self.unclaimed.insert(slot);
                }
            }
        }
    }

    /// The instant the alarm should go off at, if any: the next instant, or the lease's end if that comes
    /// first; none while the lease has run out (nothing can fire until a renewal, which sets a new lease).
    pub fn deadline(&self, now_ms: i64) -> Option<i64> {
        let lease = self.lease?;
        if self.draining || !lease.valid_at(now_ms) {
            return None;
        }
        self.queue
            .first()
            .map(|&(t, _)| t.min(lease.valid_until_ms))
    }

    /// Whether the timer is draining (it stopped claiming and emitting).
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Emits everything that is due at `now_ms`.
    pub fn wake(&mut self, now_ms: i64) -> Decisions {
        self.wake_at_most(now_ms, usize::MAX)
    }

    /// Emits what is due at `now_ms`, stopping once `max` fires and records are out (at least one entry is
    /// handled per call). What is left stays due: the next call goes on with it, oldest first.
    pub fn wake_at_most(&mut self, now_ms: i64, max: usize) -> Decisions {
        let mut fx = Decisions::default();
        let Some(lease) = self.lease else { return fx };
        if self.draining || !lease.valid_at(now_ms) {
            // Self-fencing: the session may have expired; fire nothing until it is renewed.
            return fx;
        }
        let threshold = duration_ms(self.config.misfire_threshold);
        // Below `WARM_MIN_JOBS` the jobs stay in cache, and reading ahead would only cost.
        let mut warmed = if self.slots.len() >= crate::job::WARM_MIN_JOBS {
            0
        } else {
            usize::MAX
        };
        while let Some(&(t, slot)) = self.queue.first() {
            if t > now_ms || fx.fires.len() + fx.records.len() >= max {
                break;
            }
            if warmed == 0 {
                warmed = self.warm(now_ms);
            }
            warmed = warmed.saturating_sub(1);
            self.queue.pop_first();
            let entry = self.slots[slot as usize]
                .as_mut()
                .expect("queued slot is occupied");
            entry.queued = false;
            let Some((_, through)) = entry.claim else {
                continue;
            };
            if t > through {
                if entry.revoked {
                    // Its claim has run out: the successor's begins right after.
                    self.let_go(slot);
                } else {
                    // Not claimed yet: it waits for the next grant (which re-queues it).
                    self.blocked.insert(slot);
                }
                continue;
            }
            if let Some(paused_ms) = entry.paused_ms.filter(|&p| t <= p) {
                // Owed before the pause: recorded, not run (see `pause`).
                Self::misfire(
                    &self.node,
                    lease.session,
                    entry,
                    now_ms,
                    paused_ms.min(through) + 1,
                    through,
                    false,
                    &mut fx,
                );
            } else if entry.job.spec.paused {
                entry.last_ms = t;
                entry.next_ms = next_instant(&entry.job, entry.tz, t);
            } else if now_ms > through {
                // The claim is a right to fire in a window of time, not only a set of instants: past its end a
                // successor may already be firing later instants, so what was not started in time is recorded
                // as misfired (never run late). postmortem: a renewal answered late let an old owner start an
                // instant after its successor had started a later one (simulation seed 16).
                Self::misfire(
                    &self.node,
                    lease.session,
                    entry,
                    now_ms,
                    through + 1,
                    through,
                    false,
                    &mut fx,
                );
            } else if t < now_ms - threshold {
                Self::misfire(
                    &self.node,
                    lease.session,
                    entry,
                    now_ms,
                    now_ms - threshold,
                    through,
                    true,
                    &mut fx,
                );
            } else {
                fx.fires.push(Fire {
                    job: entry.job.clone(),
                    scheduled_ms: t,
                    kind: FireKind::Scheduled,
                    session: Some(lease.session),
                    start_by_ms: Some(through),
                });
                entry.outstanding.push(t);
                entry.last_ms = t;
                entry.next_ms = next_instant(&entry.job, entry.tz, t);
            }
            if entry.revoked && entry.next_ms.is_none_or(|next| next > through) {
                self.let_go(slot);
            } else {
                self.enqueue(slot);
            }
        }
        fx
    }

    /// Reads ahead the jobs of the next due entries (see [`Job::warm`]) and returns how many it read.
    fn warm(&self, now_ms: i64) -> usize {
        let mut seen = 0usize;
        let mut sum = 0usize;
        for &(t, slot) in self.queue.iter().take(crate::job::WARM_AHEAD) {
            if t > now_ms {
                break;
            }
            seen += 1;
            if let Some(entry) = &self.slots[slot as usize] {
                sum = sum.wrapping_add(entry.job.warm());
            }
        }
        std::hint::black_box(sum);
        seen.max(1)
    }

    /// Handles the instants of `entry` that passed more than the threshold ago (before `until`, within the
    /// claim): the misfire policy decides which run late and which are recorded as misfired.
    #[allow(clippy::too_many_arguments)] // One call site per reason; a struct would only rename them.
    pub(super) fn misfire(
        node: &crate::coordinator::NodeId,
        session: SessionId,
        entry: &mut Entry,
        now_ms: i64,
        until: i64,
        through: i64,
        may_run: bool,
        fx: &mut Decisions,
    ) {
        // Keep the newest MAX_MISSED_SCAN instants (the policy runs the newest); older ones are only counted.
        let mut missed = std::collections::VecDeque::new();
        let mut dropped: Option<(i64, i64, u64)> = None; // (first, last, count) of the older instants
        let mut cursor = entry.next_ms;
        let mut scanned = 0usize;
        while let Some(t) = cursor {
            if t >= until || t > through {
                break;
            }
            if missed.len() == MAX_MISSED_SCAN {
                let old = missed.pop_front().expect("full");
                let d = dropped.get_or_insert((old, old, 0));
                d.1 = old;
                d.2 += 1;
            }
            missed.push_back(t);
            entry.last_ms = t;
            cursor = next_instant(&entry.job, entry.tz, t);
            scanned += 1;
            if scanned >= 10 * MAX_MISSED_SCAN {
                // A schedule this dense over this long a gap: stop enumerating. The record's count is then
                // a lower bound, and its range still ends at the last instant passed over.
                let last = (until - 1).min(through);
                if let Some(d) = dropped.as_mut() {
                    d.1 = d.1.max(missed.front().copied().unwrap_or(d.1));
                }
                cursor = next_instant(&entry.job, entry.tz, last);
                break;
            }
        }
        entry.next_ms = cursor;
        let missed: Vec<i64> = missed.into();
        let policy = if may_run {
            entry.job.spec.misfire
        } else {
            crate::job::MisfirePolicy::Skip
        };
        let plan = misfire::plan(policy, &missed, now_ms);
        let total = missed.len() as u64 + dropped.map_or(0, |d| d.2);
        crate::metrics::misfired("late", total.saturating_sub(plan.run.len() as u64));
        let mut skips = plan.skip;
        if let Some((first, last, count)) = dropped {
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            match skips.first_mut() {
                Some(skip) => *skip = (first, skip.1, skip.2.saturating_add(count)),
                None => skips.push((first, last, count)),
            }
        }
        if !skips.is_empty() {
            debug!(job = %entry.job.id, ?skips, "instants misfired");
        }
        for (first, last, count) in skips {
            let mut record = RunRecord::new(&entry.job.fire_id(first), node, Outcome::Misfired);
            record.count = count;
            record.last_scheduled_ms = (last != first).then_some(last);
            let late = Duration::from_millis(u64::try_from(now_ms - last).unwrap_or(0));
            record.reason = Some(format!(
                "missed: no node could fire it in time (last one {} late)",
                humantime::format_duration(late)
            ));
            entry.outstanding.push(first);
            fx.records.push(record);
        }
        for t in plan.run {
            entry.outstanding.push(t);
            fx.fires.push(Fire {
                job: entry.job.clone(),
                scheduled_ms: t,
                kind: FireKind::CatchUp,
                session: Some(session),
                start_by_ms: Some(through),
            });
        }
    }

    /// Marks instants as recorded.
    pub fn settled(&mut self, fires: &[FireId]) {
        for fire in fires {
            let Some(slot) = self.index.get(&self.slots, &fire.job) else {
                continue;
            };
            let entry = self.slots[slot as usize]
                .as_mut()
                .expect("indexed slot is occupied");
            if let Some(pos) = entry
                .outstanding
                .iter()
                .position(|&t| t == fire.scheduled_ms)
            {
                entry.outstanding.swap_remove(pos);
            }
        }
    }

    /// Stops emitting; returns every claim to release, each at its last emitted instant.
    pub fn drain(&mut self) -> Vec<(JobId, i64)> {
        self.draining = true;
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.claim.is_some())
            .map(|e| {
                (
                    e.job.id.clone(),
                    e.last_ms
                        .max(e.claim.map_or(i64::MIN, |(from, _)| from - 1)),
                )
            })
            .collect()
    }

    pub(super) fn enqueue(&mut self, slot: u32) {
        let entry = self.slots[slot as usize]
            .as_mut()
            .expect("slot is occupied");
        // Only claimed entries wait in the queue; unclaimed ones wait in `unclaimed` for their first grant.
        if let (Some(t), false, Some(_)) = (entry.next_ms, entry.queued, entry.claim) {
            entry.queued = true;
            self.queue.insert((t, slot));
        }
    }

    /// Moves `slot` in the queue to where its entry's next instant puts it, from `queued_at` (`None`: not
    /// queued, as [`State::dequeue`] leaves an entry).
    pub(super) fn requeue(&mut self, slot: u32, queued_at: Option<i64>) {
        if let Some(t) = queued_at {
            self.queue.remove(&(t, slot));
        }
        if let Some(entry) = self.slots[slot as usize].as_mut() {
            entry.queued = false;
        }
        self.enqueue(slot);
    }

    pub(super) fn dequeue(&mut self, slot: u32) {
        if let Some(entry) = self.slots[slot as usize].as_mut()
            && entry.queued
        {
            entry.queued = false;
            if let Some(t) = entry.next_ms {
                self.queue.remove(&(t, slot));
            }
        }
    }
}

/// The job's first instant strictly after `after_ms`, by the schedule in force then (see
/// [`Job::next_instant`]).
pub(super) fn next_instant(job: &Job, tz: Tz, after_ms: i64) -> Option<i64> {
    job.next_instant(tz, after_ms)
}

/// The first instant a job is owed from, when no claim of it exists yet: just after its creation, so a job
/// created at 10:00:00.000 with an every-minute schedule first fires at 10:01, as its preview says. Not after
/// its last update: an update (even of the overlap policy) must not erase instants that passed unclaimed
/// before it. When a claim exists, the grant starts after it whatever this says.
pub(super) fn first_owed_ms(job: &Job) -> i64 {
    job.created_ms + 1
}

pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
