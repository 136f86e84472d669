//! Letting a job go without leaving instants nobody accounts for.
//!
//! A successor that takes a job over from a live session waits for that session to record the instants it
//! left unsettled (it may still be running them). So a session that lets a job go must still account for
//! everything its claims of the job cover, and for the predecessor it met:
//! - **A predecessor met, not settled yet**: the entry stays (revoked, not queued) until the predecessor is
//!   settled, then goes. The successor sees only this session's claim, not the one before it, and waits for
//!   this session as long as it lives. postmortem: a chaos run on etcd (`combined`: `n1` cut off, `n2`
//!   killed) left `j0011@1796656374000`, fired by `n1`'s old session, with no record: `n1`'s new session met
//!   the old one, let the job go, and its successor `n3` waited for the new session.
//! - **A claim answered after the job was let go** (a claim request was out when the job was revoked): the
//!   job is taken back, revoked, and fires that claim out like any revoked job. Giving the claim back instead
//!   races with the successor's takeover: when the successor's claim comes first, it starts after the claim
//!   given back, and nobody fires those instants while the successor waits for this session to record them
//!   (same run, `j0034@1796656374000` through `@1796656381000`).
//! - **A change to a job it runs out** (a pause, a schedule change, a delete): the node no longer owns the job,
//!   but its revoked entry fires for up to a lookahead more, so it still takes the job's changes
//!   ([`State::refresh`]; a delete is a [`State::remove`]). postmortem: a chaos run on etcd (seed 2) fired
//!   `j0010@1796661420000` on `n3` seconds after the job was paused; a node running out the claim of a job
//!   just reassigned away fired on, since only the new owner heard of the pause.

use std::sync::Arc;

use chrono_tz::Tz;

use super::claims::Granted;
use super::state::{Entry, State};
use crate::coordinator::{ClaimResult, SessionId};
use crate::job::Job;

impl State {
    /// Changes to jobs this node does not own (any job of the cluster): those it still holds, revoked, to run
    /// a claim out (or may take back for that, see `State::take_back`) take them as an owner would (a
    /// pause from now, a schedule change after the last instant handled), and stay revoked. Others are
    /// ignored.
    pub fn refresh(&mut self, jobs: Vec<Arc<Job>>, now_ms: i64) {
        let mut held = Vec::new();
        for job in jobs {
            if let Some(parted) = self.parting.get_mut(&job.id) {
                parted.1 = job.spec.tz().unwrap_or(chrono_tz::UTC);
                parted.0 = job.clone();
            }
            if let Some(slot) = self.index.get(&self.slots, &job.id)
                && self.slots[slot as usize]
                    .as_ref()
                    .is_some_and(|e| e.revoked)
            {
                held.push((slot, job));
            }
        }
        if held.is_empty() {
            return;
        }
        let slots: Vec<u32> = held.iter().map(|(slot, _)| *slot).collect();
        self.upsert(held.into_iter().map(|(_, job)| job).collect(), now_ms);
        for slot in slots {
            let entry = self.slots[slot as usize]
                .as_mut()
                .expect("held slot is occupied");
            entry.revoked = true; // `upsert` takes a job back; this one is still reassigned away
            if run_out(entry) {
                self.let_go(slot);
            }
        }
    }

    /// Whether a revoked entry whose claim has run out must stay: its predecessor is not settled yet. It stays
    /// out of the queue; [`State::settle`] lets it go once the predecessor is settled.
    pub(super) fn stays_to_settle(&mut self, slot: u32) -> bool {
        let stays = self.slots[slot as usize]
            .as_ref()
            .is_some_and(|e| e.predecessor.is_some());
        if stays {
            self.dequeue(slot);
        }
        stays
    }

    /// Remembers a job let go (reassigned away) until the next claim scan: a claim of it that was out when it
    /// was let go can still be answered in the meantime (see [`State::take_back`]).
    pub(super) fn parted(&mut self, job: Arc<Job>, tz: Tz) {
        self.parting.insert(job.id.clone(), (job, tz));
    }

    /// A claim scan starts: no claim of a job let go before it is still out.
    pub fn forget_parted(&mut self) {
        self.parting.clear();
    }

    /// An answer granting this session a claim of a job it let go since the last scan started: the job is
    /// taken back, revoked, to fire that claim out. Returns its slot.
    pub(super) fn take_back(&mut self, grant: &Granted, session: SessionId) -> Option<u32> {
        let ClaimResult::Granted { claim, .. } = &grant.result else {
            return None;
        };
        if claim.session != session {
            return None;
        }
        let (job, tz) = self.parting.remove(&grant.job)?;
        Some(self.insert_entry(Entry::unclaimed(job, tz, true)))
    }
}

/// Whether a revoked entry has fired everything its claim covers (or holds none).
pub(super) fn run_out(entry: &Entry) -> bool {
    match entry.claim {
        None => true,
        Some((_, through)) => entry.next_ms.is_none_or(|t| t > through),
    }
}
