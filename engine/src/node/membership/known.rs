//! The jobs a node knows: every job of the store once, each with the revision of it the timer holds when this
//! node owns it. One table keyed by the id the job itself carries, so a node at a million jobs keeps 16 B and a
//! control byte per bucket here, not an id, a job and a second map of owned ids.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;
use rustc_hash::FxBuildHasher;

use crate::job::{Job, JobId};

/// `held` of a job the timer does not hold.
const NOT_HELD: u64 = 0;
/// Set on every held entry at the start of a full reconcile, cleared on those the assignment still gives this
/// node; what keeps it was reassigned.
const STALE: u64 = 1 << 63;

struct Entry {
    job: Arc<Job>,
    /// The revision the timer holds plus one, or [`NOT_HELD`].
    held: u64,
}

fn hash(id: &JobId) -> u64 {
    FxBuildHasher.hash_one(id)
}

fn held(revision: u64) -> u64 {
    revision.saturating_add(1) & !STALE
}

/// Every known job, and which the timer holds.
#[derive(Default)]
pub(super) struct Known {
    table: HashTable<Entry>,
    held: usize,
}

impl Known {
    /// A table of `jobs` (a listing), none held.
    pub(super) fn listed(jobs: Vec<Arc<Job>>) -> Self {
        let mut table = HashTable::with_capacity(jobs.len());
        for job in jobs {
            match table.entry(
                hash(&job.id),
                |e: &Entry| e.job.id == job.id,
                |e| hash(&e.job.id),
            ) {
                Slot::Occupied(mut slot) => slot.get_mut().job = job,
                Slot::Vacant(slot) => {
                    slot.insert(Entry {
                        job,
                        held: NOT_HELD,
                    });
                }
            }
        }
        Self { table, held: 0 }
    }

    /// Carries over from `old` (the table before a new listing) which jobs the timer holds, at which revision;
    /// returns the ids it held that the listing no longer has (deleted meanwhile).
    pub(super) fn keep_held(&mut self, old: Known) -> Vec<JobId> {
        let mut gone = Vec::new();
        for entry in old.table.into_iter().filter(|e| e.held != NOT_HELD) {
            let id = &entry.job.id;
            match self.table.find_mut(hash(id), |e| e.job.id == *id) {
                Some(new) => {
                    new.held = entry.held;
                    self.held += 1;
                }
                None => gone.push(entry.job.id.clone()),
            }
        }
        gone
    }

    /// Number of known jobs.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Number of jobs the timer holds.
    pub(super) fn held_len(&self) -> usize {
        self.held
    }

    /// The job with this id.
    pub(super) fn get(&self, id: &JobId) -> Option<&Arc<Job>> {
        self.table
            .find(hash(id), |e| e.job.id == *id)
            .map(|e| &e.job)
    }

    /// Whether a job with this id is known.
    pub(super) fn contains(&self, id: &JobId) -> bool {
        self.get(id).is_some()
    }

    /// Every known job.
    pub(super) fn jobs(&self) -> impl Iterator<Item = &Arc<Job>> {
        self.table.iter().map(|e| &e.job)
    }

    /// Ids of the jobs the timer holds.
    #[cfg(test)]
    fn held_ids(&self) -> impl Iterator<Item = &JobId> {
        self.table
            .iter()
            .filter(|e| e.held != NOT_HELD)
            .map(|e| &e.job.id)
    }

    /// Takes a new or updated job, keeping whether the timer holds it; returns the job it replaces.
    pub(super) fn insert(&mut self, job: Arc<Job>) -> Option<Arc<Job>> {
        match self.table.entry(
            hash(&job.id),
            |e: &Entry| e.job.id == job.id,
            |e| hash(&e.job.id),
        ) {
            Slot::Occupied(mut slot) => Some(std::mem::replace(&mut slot.get_mut().job, job)),
            Slot::Vacant(slot) => {
                slot.insert(Entry {
                    job,
                    held: NOT_HELD,
                });
                None
            }
        }
    }

    /// Forgets a deleted job; returns it and whether the timer held it.
    pub(super) fn remove(&mut self, id: &JobId) -> Option<(Arc<Job>, bool)> {
        let (entry, _) = self
            .table
            .find_entry(hash(id), |e| e.job.id == *id)
            .ok()?
            .remove();
        let was_held = entry.held != NOT_HELD;
        if was_held {
            self.held -= 1;
        }
        Some((entry.job, was_held))
    }

    /// The job, if the timer does not hold its current revision yet: marks it held at that revision.
    pub(super) fn hold(&mut self, id: &JobId) -> Option<Arc<Job>> {
        let entry = self.table.find_mut(hash(id), |e| e.job.id == *id)?;
        let revision = held(entry.job.revision);
        if entry.held & !STALE == revision {
            entry.held = revision; // held already (and no longer stale)
            return None;
        }
        if entry.held == NOT_HELD {
            self.held += 1;
        }
        entry.held = revision;
        Some(entry.job.clone())
    }

    /// Marks the job as not held by the timer; returns whether it was.
    pub(super) fn release(&mut self, id: &JobId) -> bool {
        let Some(entry) = self.table.find_mut(hash(id), |e| e.job.id == *id) else {
            return false;
        };
        if entry.held == NOT_HELD {
            return false;
        }
        entry.held = NOT_HELD;
        self.held -= 1;
        true
    }

    /// Starts a full reconcile: every held job is stale until [`Known::hold`] is called for it again.
    pub(super) fn mark_stale(&mut self) {
        for entry in self.table.iter_mut() {
            if entry.held != NOT_HELD {
                entry.held |= STALE;
            }
        }
    }

    /// Ends a full reconcile: releases the jobs still stale, returning their ids.
    pub(super) fn release_stale(&mut self) -> Vec<JobId> {
        let mut released = Vec::new();
        for entry in self.table.iter_mut() {
            if entry.held & STALE != 0 {
                entry.held = NOT_HELD;
                released.push(entry.job.id.clone());
            }
        }
        self.held -= released.len();
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{HandlerTarget, JobSpec, Target};
    use crate::schedule::Schedule;

    fn job(id: &str, revision: u64) -> Arc<Job> {
        let spec = JobSpec::new(
            id,
            Schedule::parse("* * * * *").expect("valid"),
            Target::Handler(HandlerTarget::new("h")),
        );
        let mut job = Job::new(JobId::new(id).expect("valid"), spec, 0);
        job.revision = revision;
        Arc::new(job)
    }

    fn id(s: &str) -> JobId {
        JobId::new(s).expect("valid")
    }

    #[test]
    fn a_job_is_handed_to_the_timer_once_per_revision() {
        let mut known = Known::listed(vec![job("a", 1), job("b", 1)]);
        assert!(known.hold(&id("a")).is_some());
        assert!(known.hold(&id("a")).is_none(), "the timer holds revision 1");
        known.insert(job("a", 2));
        assert_eq!(known.hold(&id("a")).map(|j| j.revision), Some(2));
        assert_eq!((known.len(), known.held_len()), (2, 1));
        assert!(known.hold(&id("missing")).is_none());
    }

    #[test]
    fn a_full_reconcile_releases_what_was_not_held_again() {
        let mut known = Known::listed(vec![job("a", 1), job("b", 1), job("c", 1)]);
        known.hold(&id("a"));
        known.hold(&id("b"));
        known.mark_stale();
        assert!(known.hold(&id("a")).is_none(), "still held at its revision");
        assert!(known.hold(&id("c")).is_some());
        assert_eq!(known.release_stale(), vec![id("b")]);
        let mut held: Vec<_> = known.held_ids().cloned().collect();
        held.sort();
        assert_eq!(held, vec![id("a"), id("c")]);
        assert_eq!(known.held_len(), 2);
    }

    #[test]
    fn removing_a_job_says_whether_the_timer_held_it() {
        let mut known = Known::listed(vec![job("a", 1), job("b", 1)]);
        known.hold(&id("a"));
        assert!(known.remove(&id("a")).is_some_and(|(_, held)| held));
        assert!(known.remove(&id("b")).is_some_and(|(_, held)| !held));
        assert!(known.remove(&id("b")).is_none());
        assert!(!known.release(&id("a")));
        assert_eq!((known.len(), known.held_len()), (0, 0));
    }
}
