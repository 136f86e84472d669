//! Settling a predecessor: when a grant takes a job over from another session, that session's unsettled
//! instants `(settled_ms, through_ms]` are accounted for once the predecessor is gone (its session no longer
//! live) or every one of them has a record. The decisions are pure functions, tested directly; the round trip
//! in `claims` only fetches what they need (the live members and the job's run records).

use std::sync::Arc;

use chrono_tz::Tz;
use tracing::debug;

use super::state::{Decisions, Entry, MAX_MISSED_SCAN, State, next_instant};
use crate::coordinator::{JobClaim, SessionId};
use crate::job::{Delivery, Job, JobId};
use crate::node::fire::{Fire, FireKind};
use crate::run::{Outcome, RunRecord};

/// The settlement of a predecessor's claim: it is gone (or recorded everything), and these of its instants
/// passed without a record.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The job.
    pub job: JobId,
    /// The predecessor's claim that is now settled.
    pub previous: JobClaim,
    /// Its instants without a run record.
    pub in_doubt: Vec<i64>,
}

impl State {
    /// Whether a predecessor claim waits to be settled.
    pub fn settling(&self) -> bool {
        self.slots.iter().flatten().any(|e| e.predecessor.is_some())
    }

    /// Predecessor claims still to settle, with what is needed to list their instants.
    pub fn pending_settlements(&self) -> Vec<(JobClaim, Arc<Job>, Tz)> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|e| Some((e.predecessor.as_deref().cloned()?, e.job.clone(), e.tz)))
            .collect()
    }

    /// Applies settlements: the in-doubt instants are recorded or run again, per the job's delivery mode.
    pub fn settle(&mut self, settlements: Vec<Settlement>) -> Decisions {
        let mut fx = Decisions::default();
        let Some(lease) = self.lease else { return fx };
        for settlement in settlements {
            let Some(slot) = self.index.get(&self.slots, &settlement.job) else {
                continue;
            };
            let entry = self.slots[slot as usize]
                .as_mut()
                .expect("indexed slot is occupied");
            if entry.predecessor.as_deref() != Some(&settlement.previous) {
                continue; // settled already, or superseded
            }
            entry.predecessor = None;
            Self::settle_previous(
                &self.node,
                lease.session,
                entry,
                &settlement.previous,
                &settlement.in_doubt,
                &mut fx,
            );
            if entry.revoked && super::parting::run_out(entry) {
                self.let_go(slot); // it stayed only to settle its predecessor
            }
        }
        fx
    }

    /// Accounts for the previous holder's unsettled instants, per the job's delivery mode.
    pub(super) fn settle_previous(
        node: &crate::coordinator::NodeId,
        session: SessionId,
        entry: &mut Entry,
        previous: &JobClaim,
        in_doubt: &[i64],
        fx: &mut Decisions,
    ) {
        if in_doubt.is_empty() {
            return;
        }
        crate::metrics::misfired("in_doubt", in_doubt.len() as u64);
        debug!(job = %entry.job.id, ?in_doubt, ?previous, "predecessor settled");
        // A paused job runs nothing again: its instants in doubt are recorded so, whatever its delivery.
        let delivery = if entry.job.spec.paused {
            Delivery::AtMostOnce
        } else {
            entry.job.spec.delivery
        };
        match delivery {
            Delivery::AtMostOnce => {
                for &t in in_doubt {
                    let mut record = RunRecord::new(&entry.job.fire_id(t), node, Outcome::InDoubt);
                    record.reason = Some(format!(
                        "claimed by node {} (session {}) which left no record",
                        previous.node, previous.session
                    ));
                    entry.outstanding.push(t);
                    fx.records.push(record);
                }
            }
            Delivery::AtLeastOnce => {
                for &t in in_doubt {
                    entry.outstanding.push(t);
                    fx.fires.push(Fire {
                        job: entry.job.clone(),
                        scheduled_ms: t,
                        kind: FireKind::Redelivery,
                        session: Some(session),
                        // A revoked entry's claim may run out before the run starts; its successor waits for
                        // this session's record of the instant, so nobody else runs it meanwhile.
                        start_by_ms: if entry.revoked {
                            None
                        } else {
                            entry.claim.map(|(_, through)| through)
                        },
                    });
                }
            }
        }
    }
}

/// Whether a predecessor is still in its tenure: its session is live and its claim has not run out, so it
/// fires and records its instants itself and nothing is settled yet.
pub fn still_firing(previous: &JobClaim, alive: bool, now_ms: i64) -> bool {
    alive && previous.through_ms >= now_ms
}

/// The instants of a predecessor's claim that it had not settled, `(settled_ms, through_ms]`, by the schedule
/// in force at each (at most `MAX_MISSED_SCAN` of them).
pub fn unsettled_instants(previous: &JobClaim, job: &Job, tz: Tz) -> Vec<i64> {
    let mut instants = Vec::new();
    let mut cursor = previous.settled_ms;
    while let Some(t) = next_instant(job, tz, cursor) {
        if t > previous.through_ms || instants.len() >= MAX_MISSED_SCAN {
            break;
        }
        instants.push(t);
        cursor = t;
    }
    instants
}

/// Those of `instants` that no run record covers (a record covers `scheduled_ms..=last_ms`: a `misfired`
/// record may stand for a range).
pub fn unrecorded(mut instants: Vec<i64>, runs: &[RunRecord]) -> Vec<i64> {
    let Some(&first) = instants.first() else {
        return instants;
    };
    let covered: Vec<(i64, i64)> = runs
        .iter()
        .filter(|r| r.last_ms() >= first)
        .map(|r| (r.scheduled_ms, r.last_ms()))
        .collect();
    instants.retain(|&t| !covered.iter().any(|&(from, to)| from <= t && t <= to));
    instants
}

/// Whether a predecessor's claim is settled now, and with which instants in doubt: when every instant has a
/// record (nothing is in doubt, alive or not), or when the predecessor is gone (what it left unrecorded is in
/// doubt). A live predecessor with unrecorded instants past its tenure is waited for: it may still record them.
pub fn verdict(
    job: &JobId,
    previous: JobClaim,
    alive: bool,
    in_doubt: Vec<i64>,
) -> Option<Settlement> {
    (in_doubt.is_empty() || !alive).then(|| Settlement {
        job: job.clone(),
        previous,
        in_doubt,
    })
}
