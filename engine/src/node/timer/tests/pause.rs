//! A paused job owes nothing from its pause on, and still accounts for what it owed before (see `pause`).

use super::*;

fn paused(a: &Arc<Job>, at_ms: i64) -> Arc<Job> {
    let mut j = (**a).clone();
    j.spec_mut().paused = true;
    j.updated_ms = at_ms;
    Arc::new(j)
}

/// The misfired instants of `records`, ranges expanded by their count.
fn misfired(records: &[RunRecord]) -> Vec<(i64, Option<i64>, u32)> {
    records
        .iter()
        .filter(|r| r.outcome == Outcome::Misfired)
        .map(|r| (r.scheduled_ms, r.last_scheduled_ms, r.count))
        .collect()
}

#[test]
fn a_job_paused_after_a_stall_records_the_instants_owed_before_the_pause() {
    let mut s = state();
    let a = job("a", "* * * * * *", T0);
    s.upsert(vec![a.clone()], T0);
    let first = s.claims_due(T0, false);
    // The session's claim ends at T0+2s (its lease did not reach further).
    let short = FireClaim {
        through_ms: T0 + 1999,
        ..first[0].clone()
    };
    let old = rules::grant(SESSION, &node(), &short, None).0;
    s.granted(vec![Granted {
        job: a.id.clone(),
        result: ClaimResult::Granted {
            claim: old.clone(),
            previous: None,
        },
        asked: None,
    }]);
    assert_eq!(instants(&s.wake(T0 + 1000)), vec![T0 + 1000]);
    // Every process stops for 12 s; the session ended meanwhile. The node comes back with a new session and
    // sees the job paused before anything else.
    let new = SessionId(8);
    s.set_lease(Some(Lease {
        session: new,
        valid_until_ms: T0 + 60_000,
    }));
    s.upsert(vec![paused(&a, T0 + 13_900)], T0 + 14_000);
    let claims = s.claims_due(T0 + 14_000, false);
    assert_eq!(
        claims.len(),
        1,
        "paused, it still claims what it owed before the pause"
    );
    let (claim, previous) = rules::grant(new, &node(), &claims[0], Some(&old));
    assert_eq!(claim.from_ms, T0 + 2000, "after the old session's claim");
    s.granted(vec![Granted {
        job: a.id.clone(),
        result: ClaimResult::Granted { claim, previous },
        asked: None,
    }]);
    let fx = s.wake(T0 + 14_000);
    assert!(fx.fires.is_empty(), "a paused job runs nothing");
    assert_eq!(
        misfired(&fx.records),
        vec![(T0 + 2000, Some(T0 + 14_000), 13)],
        "every instant from the old claim's end to the pause has a record"
    );
    let later: Vec<i64> = (15..=20)
        .flat_map(|i| instants(&s.wake(T0 + i * 1000)))
        .collect();
    assert_eq!(later, Vec::<i64>::new());
    assert!(s.claims_due(T0 + 16_000, true).is_empty(), "then it rests");
}

#[test]
fn a_job_taken_over_already_paused_records_what_was_owed_up_to_its_pause() {
    let mut s = state();
    let a = job("a", "* * * * * *", T0);
    // Its holder died with a claim through T0+1.999s; the job was paused at T0+4.5s; this node takes it
    // over at T0+8s.
    let dead = JobClaim {
        session: SessionId(3),
        node: NodeId::new("n2").unwrap(),
        from_ms: T0 + 1,
        through_ms: T0 + 1999,
        settled_ms: T0 + 1999,
        previous: None,
    };
    s.upsert(vec![paused(&a, T0 + 4500)], T0 + 8000);
    let claims = s.claims_due(T0 + 8000, false);
    assert_eq!(claims.len(), 1);
    s.granted(vec![grant(&claims[0], Some(dead))]);
    let fx = s.wake(T0 + 8000);
    assert!(fx.fires.is_empty());
    assert_eq!(misfired(&fx.records), vec![(T0 + 2000, Some(T0 + 4000), 3)]);

    // A job created paused owes nothing, and is not claimed.
    let mut s = state();
    let mut created_paused = (*job("b", "* * * * * *", T0)).clone();
    created_paused.spec_mut().paused = true;
    created_paused.updated_ms = T0;
    s.upsert(vec![Arc::new(created_paused)], T0 + 5000);
    assert!(s.claims_due(T0 + 5000, true).is_empty());
}

/// The claims a claim tick at `now` asks for, each answered by a coordinator holding `held` (its own session's
/// claims by job, updated with each answer, as `rules::grant` decides).
fn tick(
    s: &mut State,
    now: i64,
    held: &mut std::collections::HashMap<JobId, JobClaim>,
) -> Vec<FireClaim> {
    let claims = s.claims_due(now, true);
    let answers = claims
        .iter()
        .map(|c| {
            let (claim, previous) = rules::grant(SESSION, &node(), c, held.get(&c.job));
            held.insert(c.job.clone(), claim.clone());
            Granted {
                job: c.job.clone(),
                result: ClaimResult::Granted { claim, previous },
                asked: None,
            }
        })
        .collect();
    s.granted(answers);
    claims
}

#[test]
fn a_paused_job_settles_its_claim_through_its_end_once_so_no_successor_doubts_it() {
    let mut s = state();
    let a = job("a", "* * * * * *", T0);
    s.upsert(vec![a.clone()], T0);
    let mut held = std::collections::HashMap::new();
    tick(&mut s, T0, &mut held);
    let fired = instants(&s.wake(T0 + 1000));
    assert_eq!(fired, vec![T0 + 1000]);
    // Paused at T0+1.5s: nothing from then on is owed.
    s.upsert(vec![paused(&a, T0 + 1500)], T0 + 1500);
    assert!(s.wake(T0 + 3000).fires.is_empty());
    // While the fired instant's record is not stored, the claim stays as it is.
    let asked = tick(&mut s, T0 + 3000, &mut held);
    assert!(
        asked.is_empty(),
        "nothing settles ahead of a record: {asked:?}"
    );
    s.settled(&[a.fire_id(T0 + 1000)]);
    let asked = tick(&mut s, T0 + 3000, &mut held);
    let claim = held[&a.id].clone();
    assert_eq!(
        asked
            .iter()
            .map(|c| (c.through_ms, c.settled_ms))
            .collect::<Vec<_>>(),
        vec![(claim.through_ms, claim.through_ms)],
        "the same claim, settled through its end"
    );
    assert_eq!(claim.settled_ms, claim.through_ms);
    assert!(
        tick(&mut s, T0 + 5000, &mut held).is_empty(),
        "asked once: the answer said it is settled"
    );
    // A successor taking the job over finds nothing of this claim to settle.
    assert!(unsettled_instants(&claim, &paused(&a, T0 + 1500), chrono_tz::UTC).is_empty());
    // Resumed, the job is claimed and fires again.
    let mut resumed = (*paused(&a, T0 + 1500)).clone();
    resumed.spec_mut().paused = false;
    s.upsert(vec![Arc::new(resumed)], T0 + 6000);
    tick(&mut s, T0 + 6000, &mut held);
    assert_eq!(instants(&s.wake(T0 + 7000)), vec![T0 + 7000]);
}

#[test]
fn a_paused_at_least_once_job_records_its_instants_in_doubt_and_runs_none() {
    let mut s = state();
    let mut j = (*job("a", "* * * * * *", T0 - 60_000)).clone();
    j.spec_mut().delivery = Delivery::AtLeastOnce;
    let a = paused(&Arc::new(j), T0 - 1500);
    s.upsert(vec![a.clone()], T0);
    let previous = take_over_from_n0(&mut s);
    let fx = s.settle(vec![Settlement {
        job: a.id.clone(),
        previous,
        in_doubt: vec![T0 - 2000, T0 - 1000],
    }]);
    assert!(fx.fires.is_empty(), "a paused job is not run again");
    assert_eq!(
        fx.records
            .iter()
            .map(|r| (r.scheduled_ms, r.outcome))
            .collect::<Vec<_>>(),
        vec![(T0 - 2000, Outcome::InDoubt), (T0 - 1000, Outcome::InDoubt)]
    );
}
