//! Unit tests of the timer state, without spawning the actor: claims gate emission, self-fencing, misfires,
//! takeovers.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::coordinator::{ClaimResult, FireClaim, JobClaim, NodeId, rules};
use crate::job::{Delivery, HandlerTarget, JobSpec, MisfirePolicy, Target};
use crate::node::fire::FireKind;
use crate::run::{Outcome, RunRecord};
use crate::schedule::Schedule;

mod handover;
mod parting;
mod pause;

const T0: i64 = 1_790_000_000_000; // a whole second
const SESSION: SessionId = SessionId(7);

fn node() -> NodeId {
    NodeId::new("n1").unwrap()
}

fn job(id: &str, schedule: &str, created_ms: i64) -> Arc<Job> {
    let spec = JobSpec::new(
        id,
        Schedule::parse(schedule).unwrap(),
        Target::Handler(HandlerTarget::new("h")),
    );
    Arc::new(Job::new(JobId::new(id).unwrap(), spec, created_ms))
}

fn state() -> State {
    let mut state = State::new(
        node(),
        Config {
            lookahead: Duration::from_secs(5),
            misfire_threshold: Duration::from_secs(2),
        },
    );
    state.set_lease(Some(Lease {
        session: SESSION,
        valid_until_ms: T0 + 60_000,
    }));
    state
}

/// What a coordinator grants for `claim` when the job's claim is `previous` (another session's, or none).
fn grant(claim: &FireClaim, previous: Option<JobClaim>) -> Granted {
    let (claim_now, previous) = rules::grant(SESSION, &node(), claim, previous.as_ref());
    Granted {
        job: claim.job.clone(),
        result: ClaimResult::Granted {
            claim: claim_now,
            previous,
        },
        asked: None,
    }
}

fn instants(fx: &Decisions) -> Vec<i64> {
    fx.fires.iter().map(|f| f.scheduled_ms).collect()
}

#[test]
fn nothing_fires_before_the_first_claim_then_instants_fire_in_order() {
    let mut s = state();
    s.upsert(vec![job("a", "* * * * * *", T0)], T0);
    assert!(
        s.wake(T0 + 3000).fires.is_empty(),
        "an unclaimed job must not fire"
    );
    let claims = s.claims_due(T0, false);
    assert_eq!(claims.len(), 1);
    assert_eq!(
        claims[0].from_ms,
        T0 + 1,
        "a new job is owed from just after its creation"
    );
    assert_eq!(
        claims[0].through_ms,
        T0 + 5999,
        "the lookahead, on to just before the next whole second"
    );
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    assert_eq!(s.deadline(T0), Some(T0 + 1000));
    assert_eq!(instants(&s.wake(T0 + 1000)), vec![T0 + 1000]);
    assert_eq!(instants(&s.wake(T0 + 2999)), vec![T0 + 2000]);
    assert_eq!(s.deadline(T0), Some(T0 + 3000));
}

#[test]
fn instants_beyond_the_claim_wait_for_a_renewal() {
    let mut s = state();
    s.upsert(vec![job("a", "* * * * * *", T0)], T0);
    let claims = s.claims_due(T0, false);
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    for i in 1..=5 {
        assert_eq!(instants(&s.wake(T0 + i * 1000)), vec![T0 + i * 1000]);
    }
    assert!(s.wake(T0 + 6000).fires.is_empty(), "T0+6s is not claimed");
    let renew = s.claims_due(T0 + 6000, true);
    assert_eq!(renew.len(), 1, "a blocked entry is renewed");
    assert_eq!(renew[0].through_ms, T0 + 11_999);
    s.granted(
        renew
            .iter()
            .map(|c| {
                grant(
                    &FireClaim {
                        from_ms: T0,
                        ..c.clone()
                    },
                    None,
                )
            })
            .collect(),
    );
    assert_eq!(instants(&s.wake(T0 + 6000)), vec![T0 + 6000]);
}

#[test]
fn a_node_whose_lease_ran_out_fires_nothing() {
    let mut s = state();
    s.upsert(vec![job("a", "* * * * * *", T0)], T0);
    let claims = s.claims_due(T0, false);
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    s.set_lease(Some(Lease {
        session: SESSION,
        valid_until_ms: T0 + 1500,
    }));
    assert_eq!(instants(&s.wake(T0 + 1000)), vec![T0 + 1000]);
    assert!(
        s.wake(T0 + 2000).fires.is_empty(),
        "self-fencing: no fire once the lease ran out"
    );
    assert!(
        s.claims_due(T0 + 2000, true).is_empty(),
        "and no claim either"
    );
    // postmortem: the deadline used to be the lease's end, already past, so the alarm woke the timer again
    // and again for as long as the lease stayed out (found by the cluster simulation, seeds 3 and 8).
    assert_eq!(s.deadline(T0 + 2000), None, "no alarm until a renewal");
    s.set_lease(None);
    assert_eq!(s.deadline(T0), None);
}

#[test]
fn claims_never_reach_beyond_the_lease() {
    let mut s = state();
    s.set_lease(Some(Lease {
        session: SESSION,
        valid_until_ms: T0 + 2000,
    }));
    s.upsert(vec![job("a", "* * * * * *", T0)], T0);
    let claims = s.claims_due(T0, false);
    assert!(claims[0].through_ms < T0 + 2000, "{claims:?}");
}

#[test]
fn a_late_first_claim_applies_the_misfire_policy() {
    let mut s = state();
    // Created 10 s before the node could claim it: 10 instants passed.
    s.upsert(vec![job("a", "* * * * * *", T0 - 10_000)], T0);
    let claims = s.claims_due(T0, false);
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    let fx = s.wake(T0);
    // fire_once: the newest missed instant (older than the 2 s threshold) runs; the rest are one record.
    assert_eq!(instants(&fx), vec![T0 - 3000, T0 - 2000, T0 - 1000, T0]);
    assert_eq!(fx.fires[0].kind, FireKind::CatchUp);
    assert_eq!(fx.records.len(), 1);
    let record = &fx.records[0];
    assert_eq!(record.outcome, Outcome::Misfired);
    assert_eq!(
        (record.scheduled_ms, record.last_ms(), record.count),
        (T0 - 9000, T0 - 4000, 6)
    );
    let accounted = fx.fires.len() as u32 + record.count;
    assert_eq!(accounted, 10, "every passed instant is run or recorded");
}

#[test]
fn skip_policy_runs_nothing_late() {
    let mut s = state();
    let mut j = (*job("a", "* * * * * *", T0 - 10_000)).clone();
    j.spec_mut().misfire = MisfirePolicy::Skip;
    s.upsert(vec![Arc::new(j)], T0);
    let claims = s.claims_due(T0, false);
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    let fx = s.wake(T0);
    assert!(
        fx.fires.iter().all(|f| f.kind == FireKind::Scheduled),
        "{:?}",
        instants(&fx)
    );
    assert_eq!(fx.records[0].count, 7); // T0-9s .. T0-3s; T0-2s .. T0 are within the threshold
}

/// Takes every job held over from session 3 on `n0`, whose claim ran through `T0 - 1` with its last three
/// instants unsettled; returns that claim.
fn take_over_from_n0(s: &mut State) -> JobClaim {
    let claims = s.claims_due(T0, false);
    let previous = JobClaim {
        session: SessionId(3),
        node: NodeId::new("n0").unwrap(),
        from_ms: T0 - 60_000,
        through_ms: T0 - 1,
        settled_ms: T0 - 3000,
        previous: None,
    };
    s.granted(
        claims
            .iter()
            .map(|c| grant(c, Some(previous.clone())))
            .collect(),
    );
    previous
}

#[test]
fn takeover_settles_the_previous_holders_instants_per_delivery() {
    for delivery in [Delivery::AtMostOnce, Delivery::AtLeastOnce] {
        let mut s = state();
        let mut j = (*job("a", "* * * * * *", T0 - 60_000)).clone();
        j.spec_mut().delivery = delivery;
        s.upsert(vec![Arc::new(j)], T0);
        let previous = take_over_from_n0(&mut s);
        assert_eq!(
            s.pending_settlements().len(),
            1,
            "the predecessor waits to be settled"
        );
        let fx = s.settle(vec![Settlement {
            job: JobId::new("a").unwrap(),
            previous: previous.clone(),
            in_doubt: vec![T0 - 2000, T0 - 1000],
        }]);
        assert!(s.pending_settlements().is_empty());
        assert!(
            s.settle(vec![Settlement {
                job: JobId::new("a").unwrap(),
                previous: previous.clone(),
                in_doubt: vec![T0 - 2000]
            }])
            .records
            .is_empty(),
            "a predecessor is settled once"
        );
        match delivery {
            Delivery::AtMostOnce => {
                assert!(fx.fires.is_empty());
                assert_eq!(
                    fx.records
                        .iter()
                        .map(|r| (r.scheduled_ms, r.outcome))
                        .collect::<Vec<_>>(),
                    vec![(T0 - 2000, Outcome::InDoubt), (T0 - 1000, Outcome::InDoubt)]
                );
            }
            Delivery::AtLeastOnce => {
                assert!(fx.records.is_empty());
                assert_eq!(instants(&fx), vec![T0 - 2000, T0 - 1000]);
                assert!(fx.fires.iter().all(|f| f.kind == FireKind::Redelivery));
            }
        }
        // The new tenure starts after the previous holder's claim: T0 itself is ours.
        assert_eq!(instants(&s.wake(T0)), vec![T0]);
    }
}

#[test]
fn paused_jobs_emit_and_claim_nothing() {
    let mut s = state();
    let mut j = (*job("a", "* * * * * *", T0)).clone();
    j.spec_mut().paused = true;
    s.upsert(vec![Arc::new(j)], T0);
    assert!(s.claims_due(T0, true).is_empty());
    assert!(s.wake(T0 + 3000).fires.is_empty());
}

#[test]
fn settled_tracks_the_oldest_unrecorded_instant_and_drain_releases_after_the_last_emitted() {
    let mut s = state();
    s.upsert(vec![job("a", "* * * * * *", T0)], T0);
    let claims = s.claims_due(T0, false);
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    s.wake(T0 + 2000);
    let id = JobId::new("a").unwrap();
    assert_eq!(
        s.claims_due(T0 + 4000, true)[0].settled_ms,
        T0 + 999,
        "nothing recorded yet: settled up to the first emitted instant"
    );
    s.settled(&[FireId::new(id.clone(), T0 + 1000)]);
    assert_eq!(
        s.claims_due(T0 + 4000, true)[0].settled_ms,
        T0 + 1999,
        "up to the oldest unrecorded instant"
    );
    let releases = s.drain();
    assert_eq!(releases, vec![(id, T0 + 2000)]);
    assert!(
        s.wake(T0 + 3000).fires.is_empty(),
        "a draining timer emits nothing"
    );
}

#[test]
fn an_update_takes_effect_from_the_next_instant_and_remove_releases_the_claim() {
    let mut s = state();
    s.upsert(vec![job("a", "* * * * * *", T0)], T0);
    let claims = s.claims_due(T0, false);
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    assert_eq!(instants(&s.wake(T0 + 1000)), vec![T0 + 1000]);
    s.upsert(vec![job("a", "*/2 * * * * *", T0)], T0 + 1000);
    assert_eq!(s.deadline(T0), Some(T0 + 2000));
    assert_eq!(instants(&s.wake(T0 + 3000)), vec![T0 + 2000]);
    assert_eq!(s.deadline(T0), Some(T0 + 4000));
    let releases = s.remove(&[JobId::new("a").unwrap()]);
    assert_eq!(releases.len(), 1);
    assert!(s.is_empty());
    assert_eq!(s.deadline(T0), None);
}

#[test]
fn a_revoked_job_fires_what_it_claimed_then_lets_go() {
    let mut s = state();
    s.upsert(vec![job("a", "* * * * * *", T0)], T0);
    let claims = s.claims_due(T0, false);
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    assert_eq!(instants(&s.wake(T0 + 1000)), vec![T0 + 1000]);
    s.revoke(&[JobId::new("a").unwrap()]);
    assert!(
        s.claims_due(T0 + 2000, true).is_empty(),
        "a revoked claim is not renewed"
    );
    for i in 2..=5 {
        assert_eq!(
            instants(&s.wake(T0 + i * 1000)),
            vec![T0 + i * 1000],
            "claimed instants still fire"
        );
    }
    assert!(
        s.is_empty(),
        "let go once the claim (through T0+5s) has run out"
    );
    assert!(s.wake(T0 + 6000).fires.is_empty());
}

#[test]
fn a_revoked_job_without_a_claim_goes_at_once_and_an_upsert_takes_it_back() {
    let mut s = state();
    s.upsert(vec![job("a", "* * * * * *", T0)], T0);
    s.revoke(&[JobId::new("a").unwrap()]);
    assert!(s.is_empty());
    s.upsert(vec![job("b", "* * * * * *", T0)], T0);
    let claims = s.claims_due(T0, false);
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    s.revoke(&[JobId::new("b").unwrap()]);
    s.upsert(vec![job("b", "* * * * * *", T0)], T0);
    assert_eq!(
        s.claims_due(T0 + 4000, true).len(),
        1,
        "taken back: renewed again"
    );
}

#[test]
fn a_job_given_back_to_the_same_session_resumes_after_what_it_fired() {
    let mut s = state();
    s.upsert(vec![job("a", "* * * * * *", T0)], T0);
    let claims = s.claims_due(T0, false);
    let first = claims[0].clone();
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    s.revoke(&[JobId::new("a").unwrap()]);
    for i in 1..=5 {
        assert_eq!(instants(&s.wake(T0 + i * 1000)), vec![T0 + i * 1000]);
    }
    assert!(s.is_empty(), "let go once its claim ran out");
    // Given back: the coordinator extends the same session's claim, which keeps its start.
    s.upsert(vec![job("a", "* * * * * *", T0)], T0 + 5500);
    let again = s.claims_due(T0 + 5500, false);
    s.granted(vec![grant(
        &FireClaim {
            from_ms: first.from_ms,
            through_ms: T0 + 10_000,
            ..again[0].clone()
        },
        None,
    )]);
    // postmortem: this re-emitted T0+1s..T0+5s (simulation seeds 113 and 156).
    assert_eq!(
        instants(&s.wake(T0 + 6000)),
        vec![T0 + 6000],
        "nothing fired twice"
    );
}

// The pure settlement decisions (`settle.rs`), tested directly.

fn previous_claim(settled_ms: i64, through_ms: i64) -> JobClaim {
    JobClaim {
        session: SessionId(3),
        node: NodeId::new("n0").unwrap(),
        from_ms: settled_ms + 1,
        through_ms,
        settled_ms,
        previous: None,
    }
}

#[test]
fn a_live_predecessor_in_its_tenure_is_still_firing() {
    let previous = previous_claim(T0, T0 + 3000);
    assert!(still_firing(&previous, true, T0 + 3000));
    assert!(
        !still_firing(&previous, true, T0 + 3001),
        "its tenure is over"
    );
    assert!(
        !still_firing(&previous, false, T0),
        "a gone predecessor fires nothing"
    );
}

#[test]
fn unsettled_instants_are_those_after_settled_through_the_claim() {
    let job = job("a", "* * * * * *", T0 - 60_000);
    let instants = unsettled_instants(&previous_claim(T0, T0 + 3000), &job, chrono_tz::UTC);
    assert_eq!(instants, vec![T0 + 1000, T0 + 2000, T0 + 3000]);
    assert!(
        unsettled_instants(&previous_claim(T0 + 3000, T0 + 3000), &job, chrono_tz::UTC).is_empty()
    );
}

#[test]
fn instants_covered_by_a_record_or_a_record_range_are_not_in_doubt() {
    let job = job("a", "* * * * * *", T0 - 60_000);
    let instants = vec![T0 + 1000, T0 + 2000, T0 + 3000, T0 + 4000];
    let ran = RunRecord::new(
        &job.fire_id(T0 + 1000),
        &NodeId::new("n0").unwrap(),
        Outcome::Succeeded,
    );
    // A misfired range that began before the instants looked at and covers the second one.
    let mut range = RunRecord::new(
        &job.fire_id(T0 - 1000),
        &NodeId::new("n0").unwrap(),
        Outcome::Misfired,
    );
    range.count = 4;
    range.last_scheduled_ms = Some(T0 + 2000);
    let later = RunRecord::new(
        &job.fire_id(T0 + 4000),
        &NodeId::new("n0").unwrap(),
        Outcome::Succeeded,
    );
    assert_eq!(
        unrecorded(instants.clone(), &[ran.clone(), range, later]),
        vec![T0 + 3000]
    );
    assert_eq!(unrecorded(instants.clone(), &[]), instants);
    // A record that ends before the first instant covers none of them.
    let old = RunRecord::new(
        &job.fire_id(T0),
        &NodeId::new("n0").unwrap(),
        Outcome::Succeeded,
    );
    assert_eq!(unrecorded(instants.clone(), &[old]), instants);
    assert!(unrecorded(Vec::new(), &[ran]).is_empty());
}

#[test]
fn a_predecessor_is_settled_when_gone_or_fully_recorded() {
    let id = JobId::new("a").unwrap();
    let previous = previous_claim(T0, T0 + 3000);
    // Alive with instants unrecorded: it may still record them; wait.
    assert!(verdict(&id, previous.clone(), true, vec![T0 + 1000]).is_none());
    // Alive and everything recorded: settled, nothing in doubt.
    let settled = verdict(&id, previous.clone(), true, Vec::new()).unwrap();
    assert!(settled.in_doubt.is_empty());
    assert_eq!(settled.previous, previous);
    // Gone: what it left unrecorded is in doubt.
    let settled = verdict(&id, previous, false, vec![T0 + 2000]).unwrap();
    assert_eq!(settled.in_doubt, vec![T0 + 2000]);
    assert_eq!(settled.job, id);
}

#[test]
fn a_lease_permits_only_its_own_session_before_its_end() {
    let lease = Lease {
        session: SESSION,
        valid_until_ms: T0 + 1000,
    };
    assert!(lease.permits(SESSION, T0 + 999));
    assert!(!lease.permits(SESSION, T0 + 1000), "the end is exclusive");
    assert!(
        !lease.permits(SessionId(8), T0),
        "another session's claim is void"
    );
    assert!(lease.valid_at(T0) && !lease.valid_at(T0 + 1000));
}

#[test]
fn a_wake_hands_fires_on_in_chunks_oldest_first_and_loses_none() {
    let mut s = state();
    let jobs: Vec<Arc<Job>> = (0..25)
        .map(|i| job(&format!("j{i:02}"), "* * * * * *", T0))
        .collect();
    s.upsert(jobs, T0);
    let claims = s.claims_due(T0, false);
    s.granted(claims.iter().map(|c| grant(c, None)).collect());
    // Two instants of 25 jobs due at once: 50 fires, handed on 10 at a time, the older instant first.
    let mut chunks = Vec::new();
    loop {
        let fx = s.wake_at_most(T0 + 2000, 10);
        if fx.fires.is_empty() {
            break;
        }
        assert!(fx.fires.len() <= 10);
        chunks.push(instants(&fx));
    }
    assert_eq!(chunks.len(), 5);
    let all: Vec<i64> = chunks.concat();
    assert_eq!(all.len(), 50);
    assert!(
        all.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {all:?}"
    );
    assert_eq!(all.iter().filter(|&&t| t == T0 + 1000).count(), 25);
    assert_eq!(s.deadline(T0 + 2000), Some(T0 + 3000), "nothing left due");
}

#[test]
fn each_claim_tick_renews_one_phase_of_the_jobs_not_all() {
    let mut s = state();
    let jobs: Vec<Arc<Job>> = (0..30)
        .map(|i| job(&format!("j{i}"), "* * * * * *", T0))
        .collect();
    s.upsert(jobs, T0);
    let first = s.claims_due(T0, false);
    assert_eq!(
        first.len(),
        30,
        "new jobs are claimed at once, whatever their phase"
    );
    s.granted(first.iter().map(|c| grant(c, None)).collect());
    let tick = state::duration_ms(claims::claim_tick(Duration::from_secs(5)));
    let mut held: std::collections::BTreeMap<JobId, i64> = first
        .iter()
        .map(|c| (c.job.clone(), c.through_ms))
        .collect();
    let mut renewed_per_tick = Vec::new();
    for k in 1..=12 {
        let now = T0 + k * tick;
        // What is owed up to now fires (and is recorded), as the actor would.
        let fired = s.wake(now);
        s.settled(&fired.fires.iter().map(|f| f.id()).collect::<Vec<_>>());
        for (job, through) in &held {
            assert!(
                *through >= now + 5000 / 4,
                "tick {k}: the claim of {job} runs out at {through}, within a quarter of the lookahead of {now}"
            );
        }
        let renewals = s.claims_due(now, true);
        renewed_per_tick.push(renewals.len());
        for claim in &renewals {
            held.insert(claim.job.clone(), claim.through_ms);
        }
        s.granted(renewals.iter().map(|c| grant(c, None)).collect());
    }
    assert!(
        renewed_per_tick.iter().all(|&n| n <= 10),
        "a tick renews one phase of the 30 jobs (10), never all: {renewed_per_tick:?}"
    );
    assert_eq!(
        renewed_per_tick.iter().sum::<usize>(),
        30 * 12 / 3,
        "every job is renewed once every three ticks: {renewed_per_tick:?}"
    );
}

/// Claims of a tick worked out in slices of `max_scan`, as the actor does over several turns.
fn claims_in_slices(s: &State, now: i64, max_scan: usize) -> (Vec<FireClaim>, usize) {
    let (mut asking, mut cursor, mut slices) = (Asking::default(), None, 0);
    loop {
        slices += 1;
        cursor = s.claims_due_slice(now, true, cursor, max_scan, &mut asking);
        if cursor.is_none() {
            return (asking.claims, slices);
        }
    }
}

#[test]
fn a_claim_tick_scanned_in_slices_claims_what_one_scan_claims() {
    let mut s = state();
    let jobs: Vec<Arc<Job>> = (0..100)
        .map(|i| job(&format!("j{i:03}"), "* * * * * *", T0))
        .collect();
    s.upsert(jobs, T0);
    let first = s.claims_due(T0, false);
    s.granted(first.iter().map(|c| grant(c, None)).collect());
    let tick = state::duration_ms(claims::claim_tick(Duration::from_secs(5)));
    for k in 1..=6 {
        let now = T0 + k * tick;
        let fired = s.wake(now);
        s.settled(&fired.fires.iter().map(|f| f.id()).collect::<Vec<_>>());
        let whole = s.claims_due(now, true);
        for max_scan in [1, 7, 64] {
            let (sliced, slices) = claims_in_slices(&s, now, max_scan);
            assert_eq!(
                format!("{sliced:?}"),
                format!("{whole:?}"),
                "tick {k}, slices of {max_scan}"
            );
            assert!(
                slices > 100 / max_scan,
                "tick {k}: {slices} slices of {max_scan}"
            );
        }
        s.granted(whole.iter().map(|c| grant(c, None)).collect());
    }
}

#[test]
fn a_job_that_fires_between_two_slices_of_a_scan_is_claimed_once() {
    let mut s = state();
    let jobs: Vec<Arc<Job>> = (0..20)
        .map(|i| job(&format!("j{i:02}"), "* * * * * *", T0))
        .collect();
    s.upsert(jobs, T0);
    let first = s.claims_due(T0, false);
    s.granted(first.iter().map(|c| grant(c, None)).collect());
    // Half the lookahead later every claim (through T0+5.999s) runs short: each job is renewed, whatever its
    // phase.
    let now = T0 + 3600;
    let fired = s.wake(now);
    s.settled(&fired.fires.iter().map(|f| f.id()).collect::<Vec<_>>());
    let mut asking = Asking::default();
    let cursor = s.claims_due_slice(now, true, None, 5, &mut asking);
    assert_eq!(asking.claims.len(), 5);
    // The jobs fire meanwhile: each waits in the queue at its next instant, after the cursor.
    let fired = s.wake(now + 1000);
    assert_eq!(fired.fires.len(), 20, "every job fires between the slices");
    s.settled(&fired.fires.iter().map(|f| f.id()).collect::<Vec<_>>());
    let mut cursor = cursor;
    while cursor.is_some() {
        cursor = s.claims_due_slice(now, true, cursor, 5, &mut asking);
    }
    let mut jobs: Vec<&JobId> = asking.claims.iter().map(|c| &c.job).collect();
    jobs.sort();
    let before = jobs.len();
    jobs.dedup();
    assert_eq!(
        before,
        jobs.len(),
        "a job claimed twice in one request: {:?}",
        asking.claims
    );
    assert_eq!(
        jobs.len(),
        20,
        "every job renewed once: {:?}",
        asking.claims
    );
}

/// A job holding `requests`.
fn requested(id: &str, requests: Vec<crate::job::RunRequest>) -> Arc<Job> {
    let mut job = Arc::unwrap_or_clone(job(id, "@yearly", T0));
    job.requests = requests;
    Arc::new(job)
}

#[test]
fn a_requested_run_is_handed_on_once_under_the_session_that_took_it() {
    let mut s = state();
    let mut book = Requests::default();
    let job = requested("r", vec![crate::job::RunRequest::new(T0 + 5, false)]);
    book.upserted(std::slice::from_ref(&job));
    s.upsert(vec![job.clone()], T0);
    assert_eq!(
        book.due(&s),
        vec![job.id.clone()],
        "an untaken request is due"
    );

    let taken = || Taken {
        job: job.clone(),
        run: vec![T0 + 5],
        in_doubt: Vec::new(),
    };
    let fx = book.take(&s, vec![taken()], SESSION);
    assert_eq!(instants(&fx), vec![T0 + 5]);
    assert_eq!(fx.fires[0].kind, FireKind::Manual);
    assert_eq!(fx.fires[0].session, Some(SESSION), "fenced by the session");
    assert!(book.due(&s).is_empty(), "handed on: not due again");
    // A second answer for the same request (a take retried after a lost answer) hands nothing on.
    assert!(book.take(&s, vec![taken()], SESSION).fires.is_empty());
    // An answer for a session that is over runs nothing: that session's successor settles it.
    assert!(book.take(&s, vec![taken()], SessionId(99)).fires.is_empty());
}

#[test]
fn a_request_taken_by_a_gone_session_is_settled_by_the_delivery_mode() {
    for (delivery, runs) in [(Delivery::AtLeastOnce, true), (Delivery::AtMostOnce, false)] {
        let s = state();
        let mut book = Requests::default();
        let mut job = Arc::unwrap_or_clone(requested("r", Vec::new()));
        let mut spec = (*job.spec).clone();
        spec.delivery = delivery;
        job.spec = Arc::new(spec);
        let _ = book.due(&s); // the book learns the session
        let fx = book.take(
            &s,
            vec![Taken {
                job: Arc::new(job),
                run: Vec::new(),
                in_doubt: vec![(T0 + 5, SessionId(3))],
            }],
            SESSION,
        );
        if runs {
            assert_eq!(instants(&fx), vec![T0 + 5], "{delivery:?}");
            assert!(fx.records.is_empty());
        } else {
            assert!(fx.fires.is_empty(), "{delivery:?}");
            assert_eq!(fx.records.len(), 1);
            assert_eq!(fx.records[0].outcome, Outcome::InDoubt);
            assert!(fx.records[0].manual);
        }
    }
}

/// Asks for the first claims of every job not claimed yet, as the actor does (with the slot each was asked
/// from), lets `meanwhile` change the jobs while the request is out, and returns the answers, as granted.
fn first_claims_answered_after(s: &mut State, meanwhile: impl FnOnce(&mut State)) -> Vec<Granted> {
    let mut asking = Asking::default();
    assert!(
        s.claims_due_slice(T0, false, None, usize::MAX, &mut asking)
            .is_none()
    );
    let asked = s.claimed_jobs(&asking.slots);
    meanwhile(s);
    asking
        .claims
        .iter()
        .zip(asked)
        .map(|(c, held)| Granted {
            asked: held.map(|(slot, job, _)| Asked { slot, job }),
            ..grant(c, None)
        })
        .collect()
}

#[test]
fn an_answer_for_a_deleted_job_does_not_claim_the_job_that_took_its_slot() {
    let mut s = state();
    let a = job("a", "* * * * * *", T0);
    s.upsert(vec![a.clone()], T0);
    // While the request is out, `a` is deleted and `b` takes its slot.
    let answers = first_claims_answered_after(&mut s, |s| {
        s.remove(std::slice::from_ref(&a.id));
        s.upsert(vec![job("b", "* * * * * *", T0)], T0);
    });
    let stray = s.granted(answers);
    assert_eq!(
        stray
            .iter()
            .map(|(job, _)| job.as_str())
            .collect::<Vec<_>>(),
        vec!["a"],
        "the deleted job's claim is given back"
    );
    assert!(
        s.wake(T0 + 2000).fires.is_empty(),
        "`b` holds no claim: its own request is still to come"
    );
}

#[test]
fn an_answer_for_a_job_updated_meanwhile_is_applied_to_it() {
    let mut s = state();
    s.upsert(vec![job("a", "* * * * * *", T0)], T0);
    // While the request is out, `a` is updated: its slot holds a new copy of it.
    let answers = first_claims_answered_after(&mut s, |s| {
        s.upsert(vec![job("a", "*/2 * * * * *", T0)], T0);
    });
    assert!(s.granted(answers).is_empty());
    let fired: Vec<i64> = (1..=4)
        .flat_map(|i| instants(&s.wake(T0 + i * 1000)))
        .collect();
    assert_eq!(
        fired,
        vec![T0 + 2000, T0 + 4000],
        "claimed, and fired by its new schedule"
    );
}
