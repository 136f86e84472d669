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
