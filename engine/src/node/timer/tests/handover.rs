//! A job handed over (a graceful leave, a rebalance) goes on at its successor with nothing missed, even when
//! the successor's lease or its wake comes late.

use super::*;

/// A coordinator's claim store for one job: applies the rules to each request, as a backend does.
struct Store(Option<JobClaim>);

impl Store {
    fn answer(&mut self, claims: &[FireClaim]) -> Vec<Granted> {
        claims
            .iter()
            .map(|c| {
                let (claim, previous) = rules::grant(SESSION, &node(), c, self.0.as_ref());
                self.0 = Some(claim.clone());
                Granted {
                    job: c.job.clone(),
                    result: ClaimResult::Granted { claim, previous },
                    asked: None,
                }
            })
            .collect()
    }
}

#[test]
fn an_instant_handed_over_to_a_late_successor_is_fired_late_not_misfired() {
    let mut s = state();
    s.set_lease(Some(Lease {
        session: SESSION,
        valid_until_ms: T0 + 1500,
    }));
    s.upsert(vec![job("a", "* * * * * *", T0 - 60_000)], T0);
    // The previous holder, leaving, runs its claim out through T0+1999: the takeover starts at T0+2000.
    let mut store = Store(Some(JobClaim {
        session: SessionId(3),
        node: NodeId::new("n2").unwrap(),
        from_ms: T0 - 60_000,
        through_ms: T0 + 1999,
        settled_ms: T0 + 1999,
        previous: None,
    }));
    let first = s.claims_due(T0, false);
    assert_eq!(first.len(), 1);
    s.granted(store.answer(&first));
    // A claim tick while the lease (until T0+1.5s) does not reach the takeover's start.
    let renew = s.claims_due(T0 + 1250, true);
    s.granted(store.answer(&renew));
    // The lease is renewed, and the timer wakes 9 ms after the instant handed over, before the next tick.
    s.set_lease(Some(Lease {
        session: SESSION,
        valid_until_ms: T0 + 4400,
    }));
    let fx = s.wake(T0 + 2009);
    assert!(
        fx.records.is_empty(),
        "the instant handed over is not recorded missed: {:?}",
        fx.records
    );
    // The next tick claims it, and it fires late, well within the misfire threshold.
    let renew = s.claims_due(T0 + 2500, true);
    assert_eq!(renew.len(), 1);
    assert_eq!(
        (renew[0].from_ms, renew[0].through_ms),
        (T0 + 2000, T0 + 3999)
    );
    s.granted(store.answer(&renew));
    let fx = s.wake(T0 + 2500);
    assert_eq!(instants(&fx), vec![T0 + 2000], "fired 500 ms late");
    assert!(fx.records.is_empty());
    assert_eq!(instants(&s.wake(T0 + 3000)), vec![T0 + 3000]);
}
