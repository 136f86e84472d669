//! A session that lets a job go still accounts for what its claims cover and for the predecessor it met
//! (see `parting`).

use super::*;

#[test]
fn a_claim_answered_after_its_job_was_let_go_is_fired_out() {
    let mut s = state();
    let a = job("a", "* * * * * *", T0);
    s.upsert(vec![a.clone()], T0);
    let claims = s.claims_due(T0, false);
    // Reassigned while the request was out: without a claim, the job is let go at once.
    s.revoke(std::slice::from_ref(&a.id));
    assert_eq!(s.len(), 0);
    let stray = s.granted(claims.iter().map(|c| grant(c, None)).collect());
    assert!(
        stray.is_empty(),
        "not given back: the successor may have taken over already and would start after it"
    );
    for i in 1..=5 {
        assert_eq!(
            instants(&s.wake(T0 + i * 1000)),
            vec![T0 + i * 1000],
            "the claim (through T0+5s) fires out"
        );
    }
    assert!(s.is_empty(), "then the job goes");

    // Fired up to T0+2s under a claim through T0+2.5s, then let go; a late extension through T0+5s fires
    // out what it added, nothing twice.
    let mut s = state();
    s.upsert(vec![a.clone()], T0);
    let first = s.claims_due(T0, false);
    let short = FireClaim {
        through_ms: T0 + 2500,
        ..first[0].clone()
    };
    assert!(s.granted(vec![grant(&short, None)]).is_empty());
    assert_eq!(instants(&s.wake(T0 + 2000)), vec![T0 + 1000, T0 + 2000]);
    s.revoke(std::slice::from_ref(&a.id));
    assert_eq!(s.len(), 0, "the claim has run out: let go");
    let extended = rules::grant(SESSION, &node(), &first[0], Some(&short_claim(&short)));
    let stray = s.granted(vec![Granted {
        job: a.id.clone(),
        result: ClaimResult::Granted {
            claim: extended.0,
            previous: None,
        },
        asked: None,
    }]);
    assert!(stray.is_empty());
    let fired: Vec<i64> = (3..=6)
        .flat_map(|i| instants(&s.wake(T0 + i * 1000)))
        .collect();
    assert_eq!(fired, vec![T0 + 3000, T0 + 4000, T0 + 5000]);
    assert!(s.is_empty());

    // Once a new claim scan has started, no answer of a claim made before the job was let go can come.
    let mut s = state();
    s.upsert(vec![a.clone()], T0);
    let claims = s.claims_due(T0, false);
    s.revoke(std::slice::from_ref(&a.id));
    s.forget_parted();
    let stray = s.granted(claims.iter().map(|c| grant(c, None)).collect());
    assert_eq!(
        stray,
        vec![(a.id.clone(), T0)],
        "an unknown job's claim goes back"
    );

    // A deleted job's late claim is given back: it has no successor.
    let mut s = state();
    s.upsert(vec![a.clone()], T0);
    let claims = s.claims_due(T0, false);
    assert!(s.remove(std::slice::from_ref(&a.id)).is_empty());
    let stray = s.granted(claims.iter().map(|c| grant(c, None)).collect());
    assert_eq!(stray, vec![(a.id.clone(), T0)]);

    // An answer for another session is not this session's to fire or give back.
    let mut s = state();
    s.upsert(vec![a.clone()], T0);
    let claims = s.claims_due(T0, false);
    s.revoke(std::slice::from_ref(&a.id));
    let mut other = grant(&claims[0], None);
    if let ClaimResult::Granted { claim, .. } = &mut other.result {
        claim.session = SessionId(99);
    }
    assert!(s.granted(vec![other]).is_empty());
    assert!(s.is_empty());
}

/// The claim a coordinator holds after granting `request` with nothing before it.
fn short_claim(request: &FireClaim) -> JobClaim {
    rules::grant(SESSION, &node(), request, None).0
}

#[test]
fn a_job_let_go_still_settles_the_predecessor_it_met() {
    for delivery in [Delivery::AtMostOnce, Delivery::AtLeastOnce] {
        let mut s = state();
        let mut spec = (*job("a", "* * * * * *", T0 - 10_000).spec).clone();
        spec.delivery = delivery;
        let a = Arc::new(Job::new(JobId::new("a").unwrap(), spec, T0 - 10_000));
        s.upsert(vec![a.clone()], T0);
        let claims = s.claims_due(T0, false);
        // A dead session fired up to T0-5s and left T0-4s..=T0 unrecorded.
        let dead = previous_claim(T0 - 5000, T0);
        let answer = grant(&claims[0], Some(dead));
        let ClaimResult::Granted {
            previous: Some(previous),
            ..
        } = answer.result.clone()
        else {
            panic!("a takeover names its predecessor");
        };
        s.granted(vec![answer]);
        // Reassigned before the predecessor could be settled (the coordinator did not answer, say).
        s.revoke(std::slice::from_ref(&a.id));
        let fired: Vec<i64> = (1..=6)
            .flat_map(|i| instants(&s.wake(T0 + i * 1000)))
            .collect();
        assert_eq!(fired, (1..=5).map(|i| T0 + i * 1000).collect::<Vec<_>>());
        assert_eq!(
            s.pending_settlements().len(),
            1,
            "the successor sees only this session's claim and waits for this live session: it must still \
             settle the predecessor ({delivery:?})"
        );
        let in_doubt: Vec<i64> = (0..=4).map(|i| T0 - 4000 + i * 1000).collect();
        let fx = s.settle(vec![Settlement {
            job: a.id.clone(),
            previous,
            in_doubt: in_doubt.clone(),
        }]);
        match delivery {
            Delivery::AtMostOnce => {
                assert!(fx.records.iter().all(|r| r.outcome == Outcome::InDoubt));
                let recorded: Vec<i64> = fx.records.iter().map(|r| r.scheduled_ms).collect();
                assert_eq!(recorded, in_doubt);
            }
            Delivery::AtLeastOnce => {
                assert_eq!(instants(&fx), in_doubt);
                assert!(
                    fx.fires
                        .iter()
                        .all(|f| f.kind == FireKind::Redelivery && f.start_by_ms.is_none()),
                    "run again, not bound by the claim that has run out"
                );
            }
        }
        assert!(s.is_empty(), "then the job goes");
    }
}

#[test]
fn a_job_revoked_runs_its_claim_out_with_a_second_to_spare() {
    let mut s = state();
    // The lease caps the claim at an arbitrary millisecond: T0+3.027s.
    s.set_lease(Some(Lease {
        session: SESSION,
        valid_until_ms: T0 + 3028,
    }));
    let a = job("a", "* * * * * *", T0);
    s.upsert(vec![a.clone()], T0);
    let claims = s.claims_due(T0, false);
    assert_eq!(
        claims[0].through_ms,
        T0 + 2999,
        "the claim ends just before a whole second"
    );
    let answer = grant(&claims[0], None);
    let ClaimResult::Granted { claim: ours, .. } = answer.result.clone() else {
        unreachable!("a first claim is granted");
    };
    s.granted(vec![answer]);
    s.revoke(std::slice::from_ref(&a.id));
    // Every wake 40 ms late (a loaded machine): still within the claim.
    let mut fx = Decisions::default();
    for i in 1..=4 {
        let wake = s.wake(T0 + i * 1000 + 40);
        fx.fires.extend(wake.fires);
        fx.records.extend(wake.records);
    }
    assert!(
        fx.records.is_empty(),
        "a handover misfires nothing: {:?}",
        fx.records
    );
    assert_eq!(instants(&fx), vec![T0 + 1000, T0 + 2000]);
    assert!(s.is_empty());
    // The successor's claim starts right after ours: at T0+3s, the next instant.
    let (theirs, _) = rules::grant(
        SessionId(8),
        &NodeId::new("n2").unwrap(),
        &FireClaim {
            job: a.id.clone(),
            from_ms: T0 + 1,
            through_ms: T0 + 8000,
            settled_ms: T0,
        },
        Some(&ours),
    );
    assert_eq!(theirs.from_ms, T0 + 3000);
}

#[test]
fn a_job_running_out_its_claim_takes_a_pause_and_a_delete() {
    let paused = |a: &Arc<Job>| {
        let mut j = (**a).clone();
        j.spec_mut().paused = true;
        Arc::new(j)
    };
    let a = job("a", "* * * * * *", T0);
    let held = |a: &Arc<Job>| {
        let mut s = state();
        s.upsert(vec![a.clone()], T0);
        let claims = s.claims_due(T0, false);
        s.granted(claims.iter().map(|c| grant(c, None)).collect());
        assert_eq!(instants(&s.wake(T0 + 1000)), vec![T0 + 1000]);
        s.revoke(std::slice::from_ref(&a.id));
        assert_eq!(
            instants(&s.wake(T0 + 2000)),
            vec![T0 + 2000],
            "reassigned away: the claim (through T0+5s) runs out"
        );
        s
    };

    // Paused while its claim runs out: nothing more fires, and it goes once the claim has run out.
    let mut s = held(&a);
    s.refresh(vec![paused(&a)], T0 + 2500);
    let fired: Vec<i64> = (3..=6)
        .flat_map(|i| instants(&s.wake(T0 + i * 1000)))
        .collect();
    assert_eq!(fired, Vec::<i64>::new(), "a paused job fires nothing");
    assert!(s.is_empty(), "let go at the end of its claim");
    assert!(
        s.claims_due(T0 + 3000, true).is_empty(),
        "still revoked: not renewed"
    );

    // Deleted while its claim runs out: gone at once, the claim given back.
    let mut s = held(&a);
    let releases = s.remove(std::slice::from_ref(&a.id));
    assert_eq!(releases.len(), 1);
    assert!(s.is_empty());
    assert!(s.wake(T0 + 3000).fires.is_empty());

    // A change to a job this node never held is nothing to it.
    let mut s = state();
    s.refresh(vec![a.clone()], T0);
    assert!(s.is_empty());
    assert!(s.claims_due(T0, false).is_empty());

    // Paused after it was let go, while a claim of it was out: the late answer takes it back paused.
    let mut s = state();
    s.upsert(vec![a.clone()], T0);
    let claims = s.claims_due(T0, false);
    s.revoke(std::slice::from_ref(&a.id));
    s.refresh(vec![paused(&a)], T0 + 100);
    assert!(
        s.granted(claims.iter().map(|c| grant(c, None)).collect())
            .is_empty()
    );
    let fired: Vec<i64> = (1..=6)
        .flat_map(|i| instants(&s.wake(T0 + i * 1000)))
        .collect();
    assert_eq!(fired, Vec::<i64>::new(), "taken back paused: nothing fires");
}
