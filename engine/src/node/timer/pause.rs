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
