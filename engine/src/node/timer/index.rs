//! The timer's index from job id to slot. It holds only the slot (4 B and a control byte per bucket): the id
//! is read from the slot's entry, which holds the job, so the index keeps no second copy of any id.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use super::state::Entry;
use crate::job::JobId;

fn hash(id: &JobId) -> u64 {
    FxBuildHasher.hash_one(id)
}

/// The id of the job in `slot`; every indexed slot is occupied.
fn id_in(slots: &[Option<Entry>], slot: u32) -> &JobId {
    &slots[slot as usize]
        .as_ref()
        .expect("indexed slot is occupied")
        .job
        .id
}

/// Job id → slot of the timer's slab.
#[derive(Default)]
pub(super) struct Index(HashTable<u32>);

impl Index {
    /// The slot holding `id`.
    pub(super) fn get(&self, slots: &[Option<Entry>], id: &JobId) -> Option<u32> {
        self.0
            .find(hash(id), |&slot| id_in(slots, slot) == id)
            .copied()
    }

    /// Indexes `slot`, which holds a job not indexed yet.
    pub(super) fn insert(&mut self, slots: &[Option<Entry>], slot: u32) {
        let id = id_in(slots, slot);
        self.0
            .insert_unique(hash(id), slot, |&s| hash(id_in(slots, s)));
    }

    /// Drops `slot`, which held `id` (its entry may already be taken out of the slab).
    pub(super) fn remove(&mut self, id: &JobId, slot: u32) {
        if let Ok(found) = self.0.find_entry(hash(id), |&s| s == slot) {
            found.remove();
        }
    }

    /// Number of indexed jobs.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no job is indexed.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
