//! Pausing a job: it owes nothing from the pause on, but still owes the instants that passed before it.
//!
//! A pause takes effect from the moment the owner sees it (or, for a job first held already paused, from
//! the pause's own write, `Job::updated_ms`). Instants before it that the owner has not handled yet (its
//! timer was stalled, its claim was not granted yet, its session had just ended) are still owed: they are
//! claimed and recorded `misfired` (never run: the job is paused now), so none is left without a record.
//! postmortem: a smoke run whose nodes were stopped together for 18 s lost the stall's instants of `j0038`,
//! paused right after they resumed: a paused job claimed nothing, and nobody accounted for them.

use super::state::Entry;
use crate::job::Job;

/// Until when a job first held (taken over, or held by a new node) owes its instants: for a paused job, up to
/// the write that paused it.
pub(super) fn paused_ms(job: &Job) -> Option<i64> {
    job.spec.paused.then_some(job.updated_ms)
}

impl Entry {
    /// Whether this paused entry may still owe instants from before its pause: it is claimed, and its
    /// instants before the pause are recorded, before it rests.
    pub(super) fn owes_before_pause(&self) -> bool {
        self.paused_ms.is_some_and(|p| match self.next_ms {
            Some(t) => t <= p,
            // Not claimed yet: its first claim starts no earlier than this.
            None => super::state::first_owed_ms(&self.job) <= p,
        })
    }

    /// Whether this paused entry rests on a claim whose instants the coordinator still counts as unsettled:
    /// it owes nothing (everything up to its pause is handled and recorded, and any predecessor settled),
    /// yet the claim it holds says less. A paused job is not renewed, so without a word from its holder the
    /// claim's instants past the pause stay unsettled, and every later owner, taking the job over, recorded
    /// each of them `in_doubt` (none ran: the job was paused; postmortem: a 6-minute etcd chaos run of rolling
    /// restarts, 1,472 such records). The timer then asks once for the same claim settled through its end
    /// (`claims_due_slice`), which an extension by the holder grants without moving its end.
    pub(super) fn rests_unsettled(&self) -> bool {
        self.job.spec.paused
            && !self.owes_before_pause()
            && self.claim.is_some()
            && !self.settled_through
            && self.predecessor.is_none()
            && self.outstanding.is_empty()
            && !self.revoked
    }

    /// Takes `job`, the entry's job as updated, seen at `now_ms`: returns the instant after which its next
    /// instant comes. Pausing keeps the instants not handled yet (owed, they are recorded before the entry
    /// rests); resuming goes on from now (the instants of the pause were not owed).
    pub(super) fn pause_update(&mut self, job: &Job, now_ms: i64) -> i64 {
        let was = self.job.spec.paused;
        match (was, job.spec.paused) {
            (false, true) => {
                self.paused_ms = Some(now_ms);
                self.last_ms
            }
            (true, false) => {
                self.paused_ms = None;
                self.resumed_ms = Some(now_ms);
                self.last_ms.max(now_ms)
            }
            (true, true) if self.owes_before_pause() => self.last_ms,
            (true, true) => self.last_ms.max(now_ms),
            (false, false) => self.last_ms,
        }
    }
}
