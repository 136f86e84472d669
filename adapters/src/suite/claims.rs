//! Cases of fire claims: ownership, fencing of stale sessions, takeovers, extension, release, close, and
//! exactly-once grants under concurrent claimers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use campanile::coordinator::{ClaimResult, JobClaim, SessionId};
use campanile::{CoordError, JobId, Outcome};
use tokio::sync::Barrier;
use tokio::time::Instant;

use super::lines::*;
use super::support::{Ctx, fire_claim, job_id, node_id, ok, record, simple_job};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// Claims only go to the assigned owner's session: a batch mixing an owned job, another node's job, an
/// unassigned job and a missing job gets `Granted`, `NotOwner { owner }`, `NotOwner { None }` and
/// `NoSuchJob`, in order; after a reassignment the former owner is `NotOwner`; concurrent claimers from
/// every session see only the owner granted.
pub async fn claims_require_ownership<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "claims_require_ownership",
        NamespaceOptions::clients(3),
    )
    .await
    else {
        return;
    };
    let [mine, theirs, nobodys, ghost] = ["owned", "theirs", "unassigned", "ghost"].map(job_id);
    for id in [&mine, &theirs, &nobodys] {
        ctx.put(0, &simple_job(id.as_str())).await;
    }
    let s1 = ctx.open(0, "n1").await.id;
    let s2 = ctx.open(1, "n2").await.id;
    let s3 = ctx.open(2, "n3").await.id;

    // Before any assignment, nobody owns anything.
    let results = ok(
        ctx.c(0)
            .claim_fires(s1, &[fire_claim(&mine, 0, 1000, 0)])
            .await,
        CLAIM_NOT_OWNER,
        "claim_fires",
    );
    check!(
        results == [ClaimResult::NotOwner { owner: None }],
        CLAIM_NOT_OWNER,
        "a claim before any assignment was published returned {results:?}"
    );

    let leader = ctx.lead(2, s3, CAMPAIGN_ONE).await;
    ctx.publish(
        2,
        &leader,
        &[(&mine, "n1"), (&theirs, "n2"), (&ghost, "n1")],
    )
    .await;
    let batch = [
        fire_claim(&mine, 0, 1000, 0),
        fire_claim(&theirs, 0, 1000, 0),
        fire_claim(&nobodys, 0, 1000, 0),
        fire_claim(&ghost, 0, 1000, 0),
    ];
    let results = ok(
        ctx.c(0).claim_fires(s1, &batch).await,
        CLAIM_NOT_OWNER,
        "claim_fires",
    );
    check!(
        results.len() == 4,
        CLAIM_NOT_OWNER,
        "a batch of 4 claims returned {} results",
        results.len()
    );
    check!(
        matches!(&results[0], ClaimResult::Granted { claim, previous: None }
            if claim.session == s1 && claim.node == node_id("n1") && claim.from_ms == 0 && claim.through_ms == 1000),
        CLAIM_NOT_OWNER,
        "the owned job: {:?}",
        results[0]
    );
    check!(
        results[1]
            == ClaimResult::NotOwner {
                owner: Some(node_id("n2"))
            },
        CLAIM_NOT_OWNER,
        "another node's job: {:?}",
        results[1]
    );
    check!(
        results[2] == ClaimResult::NotOwner { owner: None },
        CLAIM_NOT_OWNER,
        "a job missing from the assignment: {:?}",
        results[2]
    );
    check!(
        results[3] == ClaimResult::NoSuchJob,
        CLAIM_NO_SUCH_JOB,
        "a job assigned to the claimer that does not exist: {:?}",
        results[3]
    );
    for id in [&theirs, &nobodys, &ghost] {
        let claim = ok(ctx.c(1).claim_of(id).await, CLAIM_OF_FRESH, "claim_of");
        check!(
            claim.is_none(),
            CLAIM_NOT_OWNER,
            "a claim answered NotOwner/NoSuchJob left a claim on {id}: {claim:?}"
        );
    }

    // Reassigned: the former owner is fenced, its claim stays as it was.
    let before = ok(ctx.c(0).claim_of(&mine).await, CLAIM_OF_FRESH, "claim_of");
    ctx.publish(2, &leader, &[(&mine, "n2"), (&theirs, "n2")])
        .await;
    let results = ok(
        ctx.c(0)
            .claim_fires(s1, &[fire_claim(&mine, 0, 5000, 0)])
            .await,
        CLAIM_NOT_OWNER,
        "claim_fires",
    );
    check!(
        results
            == [ClaimResult::NotOwner {
                owner: Some(node_id("n2"))
            }],
        CLAIM_NOT_OWNER,
        "the former owner's claim after a reassignment returned {results:?}"
    );
    let after = ok(ctx.c(1).claim_of(&mine).await, CLAIM_OF_FRESH, "claim_of");
    check!(
        after == before,
        COORD_FAILED_WRITES,
        "a NotOwner claim changed the claim from {before:?} to {after:?}"
    );

    // Concurrent claimers of one job from every session: only the owner's session is granted.
    let sessions = [(0, s1), (1, s2), (2, s3)];
    let barrier = Arc::new(Barrier::new(sessions.len() * 6));
    let mut tasks = Vec::new();
    for (client, session) in sessions {
        for k in 0..6 {
            let c = ctx.c(client);
            let barrier = Arc::clone(&barrier);
            let job = theirs.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let through = 10_000 + 1000 * k;
                (
                    session,
                    c.claim_fires(session, &[fire_claim(&job, 0, through, 0)])
                        .await,
                )
            }));
        }
    }
    for task in tasks {
        let (session, result) = task.await.expect("claimer panicked");
        let results = ok(result, CLAIM_CONCURRENT, "concurrent claim_fires");
        let granted = matches!(results.as_slice(), [ClaimResult::Granted { claim, .. }] if claim.session == s2);
        let refused = results
            == [ClaimResult::NotOwner {
                owner: Some(node_id("n2")),
            }];
        check!(
            if session == s2 { granted } else { refused },
            CLAIM_CONCURRENT,
            "a concurrent claim of a job owned by n2, by {session:?}, returned {results:?}"
        );
    }
    ctx.finish().await;
}

/// A session that expired (observed through `watch_session`) cannot claim or record (`SessionExpired`), its
/// claim stays as it was (its in-doubt range is kept for the successor), and the node's next session takes
/// over after it.
pub async fn expired_session_is_fenced_from_claims<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "expired_session_is_fenced_from_claims",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let job = simple_job("fenced");
    ctx.put(0, &job).await;
    let leader_session = ctx.open(1, "leader").await.id;
    let leader = ctx.lead(1, leader_session, CAMPAIGN_ONE).await;
    ctx.publish(1, &leader, &[(&job.id, "stale")]).await;
    let (stale, _) = ctx.open_short(0, "stale").await;
    let (held, _) = ctx
        .grant(
            0,
            stale.id,
            fire_claim(&job.id, 0, 10_000, 4_000),
            CLAIM_NOT_OWNER,
        )
        .await;
    ok(
        ctx.c(0)
            .record_runs(
                stale.id,
                vec![record(&job.id, 1_000, "stale", Outcome::Succeeded)],
            )
            .await,
        RECORD_ONCE,
        "record_runs",
    );
    let mut rx = ok(
        ctx.c(1).watch_session(stale.id).await,
        WATCH_SESSION_EXPIRY,
        "watch_session",
    );
    let deadline = ctx.expiry_deadline(Instant::now(), stale.ttl);
    ctx.await_expired(&mut rx, deadline, WATCH_SESSION_EXPIRY)
        .await;

    match ctx
        .c(0)
        .claim_fires(stale.id, &[fire_claim(&job.id, 0, 20_000, 4_000)])
        .await
    {
        Err(CoordError::SessionExpired { .. }) => {}
        other => fail!(
            CLAIM_EXPIRED,
            "claim_fires by an expired session returned {other:?}"
        ),
    }
    match ctx
        .c(0)
        .record_runs(
            stale.id,
            vec![record(&job.id, 2_000, "stale", Outcome::Succeeded)],
        )
        .await
    {
        Err(CoordError::SessionExpired { .. }) => {}
        other => fail!(
            RECORD_EXPIRED,
            "record_runs by an expired session returned {other:?}"
        ),
    }
    let runs = ok(
        ctx.c(1).runs(&job.id, Default::default()).await,
        RUNS_QUERY,
        "runs",
    );
    check!(
        runs.len() == 1 && runs[0].scheduled_ms == 1_000,
        RECORD_EXPIRED,
        "after a rejected record_runs the history is {runs:?} (also: {COORD_FAILED_WRITES})"
    );
    let now = ok(ctx.c(1).claim_of(&job.id).await, CLAIM_OF_FRESH, "claim_of");
    check!(
        now.as_ref() == Some(&held),
        COORD_FAILED_WRITES,
        "after the holder expired and its claim was rejected, claim_of is {now:?}; the expired holder's claim {held:?} must stay (its in-doubt range tells the successor what to settle)"
    );

    // The node comes back with a new session: it takes over after the old one.
    let fresh = ctx.open(0, "stale").await.id;
    let (claim, previous) = ctx
        .grant(
            0,
            fresh,
            fire_claim(&job.id, 0, 30_000, 0),
            CLAIM_NO_DOUBLE_GRANT,
        )
        .await;
    check!(
        claim.from_ms == held.through_ms + 1 && claim.session == fresh,
        CLAIM_NO_DOUBLE_GRANT,
        "the new session's claim is {claim:?}; it must start after the expired session's through_ms {}",
        held.through_ms
    );
    check!(
        previous.as_ref() == Some(&held),
        CLAIM_NO_DOUBLE_GRANT,
        "the takeover returned previous {previous:?}, expected {held:?}"
    );
    ctx.finish().await;
}

/// A takeover starts at `max(from_ms, previous.through_ms + 1)`, returns the previous holder's claim and keeps
/// `settled_ms` at most the previous holder's, in both directions and with `from_ms` on either side of the
/// previous end.
pub async fn takeover_starts_after_previous<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "takeover_starts_after_previous",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let [j, k] = ["handed", "late"].map(job_id);
    for id in [&j, &k] {
        ctx.put(0, &simple_job(id.as_str())).await;
    }
    let s1 = ctx.open(0, "n1").await.id;
    let s2 = ctx.open(1, "n2").await.id;
    let leader = ctx.lead(0, s1, CAMPAIGN_ONE).await;
    ctx.publish(0, &leader, &[(&j, "n1"), (&k, "n1")]).await;
    let (first, previous) = ctx
        .grant(0, s1, fire_claim(&j, 1000, 5000, 2000), CLAIM_NOT_OWNER)
        .await;
    check!(
        first
            == JobClaim {
                session: s1,
                node: node_id("n1"),
                from_ms: 1000,
                through_ms: 5000,
                settled_ms: 2000,
                previous: None,
            }
            && previous.is_none(),
        CLAIM_NO_DOUBLE_GRANT,
        "the first claim of a job is {first:?} with previous {previous:?}"
    );
    let (k_first, _) = ctx
        .grant(0, s1, fire_claim(&k, 0, 100, 0), CLAIM_NOT_OWNER)
        .await;

    ctx.publish(0, &leader, &[(&j, "n2"), (&k, "n2")]).await;
    let (second, previous) = ctx
        .grant(1, s2, fire_claim(&j, 0, 9000, 0), CLAIM_NO_DOUBLE_GRANT)
        .await;
    check!(
        second.session == s2
            && second.node == node_id("n2")
            && second.from_ms == 5001
            && second.through_ms == 9000,
        CLAIM_NO_DOUBLE_GRANT,
        "a takeover asking from 0 after a claim through 5000 was granted {second:?}"
    );
    check!(
        previous.as_ref() == Some(&first),
        CLAIM_NO_DOUBLE_GRANT,
        "the takeover returned previous {previous:?}, expected {first:?}"
    );
    let seen = ok(ctx.c(0).claim_of(&j).await, CLAIM_OF_FRESH, "claim_of");
    check!(
        seen.as_ref() == Some(&second),
        CLAIM_OF_FRESH,
        "claim_of after the takeover is {seen:?}"
    );
    // The answer to the takeover was lost: the same request again is an extension that names the previous
    // holder once more, and settles nothing (its settled_ms only says where it asked to start).
    let (retried, again) = ctx
        .grant(1, s2, fire_claim(&j, 0, 9000, 0), CLAIM_PREVIOUS_KEPT)
        .await;
    check!(
        retried == second && again.as_ref() == Some(&first),
        CLAIM_PREVIOUS_KEPT,
        "the takeover asked again was granted {retried:?} with previous {again:?}; expected {second:?} with \
         previous {first:?}"
    );
    // Settled through the previous holder's last instant: it is let go.
    let (settled, gone) = ctx
        .grant(1, s2, fire_claim(&j, 5001, 9000, 5000), CLAIM_PREVIOUS_KEPT)
        .await;
    check!(
        settled.settled_ms == 5000 && settled.previous.is_none() && gone.is_none(),
        CLAIM_PREVIOUS_KEPT,
        "an extension settled through 5000 (the previous holder's through_ms) holds {settled:?} and \
         answered previous {gone:?}; expected the previous claim let go"
    );
    let (k_second, previous) = ctx
        .grant(
            1,
            s2,
            fire_claim(&k, 7000, 8000, 7000),
            CLAIM_NO_DOUBLE_GRANT,
        )
        .await;
    check!(
        k_second.from_ms == 7000
            && k_second.through_ms == 8000
            && previous.as_ref() == Some(&k_first),
        CLAIM_NO_DOUBLE_GRANT,
        "a takeover asking from 7000 after a claim through 100 was granted {k_second:?} with previous {previous:?}"
    );
    // The new holder asked for settled_ms 7000, but the previous holder had settled only up to 0: its
    // instants after that are still to be settled, and a successor of the new holder must see them.
    check!(
        k_second.settled_ms <= k_first.settled_ms,
        CLAIM_TAKEOVER_SETTLED,
        "a takeover asking settled_ms 7000 from a holder that had settled up to {} was granted settled_ms {} \
         ({k_second:?}): the previous holder's unsettled instants would be hidden from the next owner",
        k_first.settled_ms,
        k_second.settled_ms
    );

    // And back.
    ctx.publish(0, &leader, &[(&j, "n1"), (&k, "n1")]).await;
    let (third, previous) = ctx
        .grant(
            0,
            s1,
            fire_claim(&j, 0, 12_000, 11_000),
            CLAIM_NO_DOUBLE_GRANT,
        )
        .await;
    check!(
        third.session == s1 && third.from_ms == 9001 && third.through_ms == 12_000,
        CLAIM_NO_DOUBLE_GRANT,
        "taking the job back after a claim through 9000 was granted {third:?}"
    );
    check!(
        third.settled_ms <= settled.settled_ms,
        CLAIM_TAKEOVER_SETTLED,
        "taking the job back asking settled_ms 11000 from a holder that had settled up to {} was granted {third:?}",
        settled.settled_ms
    );
    check!(
        previous.as_ref() == Some(&settled),
        CLAIM_NO_DOUBLE_GRANT,
        "taking the job back returned previous {previous:?}, expected {settled:?}"
    );
    ctx.finish().await;
}

/// A holder extending its own claim keeps `from_ms` (whatever it asks), and neither `through_ms` nor
/// `settled_ms` ever decreases; extensions return no `previous`.
pub async fn claim_extension_is_monotonic<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "claim_extension_is_monotonic",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let j = job_id("extended");
    ctx.put(0, &simple_job(j.as_str())).await;
    let s = ctx.open(0, "holder").await.id;
    let leader = ctx.lead(0, s, CAMPAIGN_ONE).await;
    ctx.publish(0, &leader, &[(&j, "holder")]).await;
    // (from, through, settled) asked, then (through, settled) expected to be held; from stays 100.
    let steps = [
        ((100, 1000, 100), (1000, 100)),
        ((50, 2000, 500), (2000, 500)),
        ((100, 1500, 200), (2000, 500)),
        ((5000, 3000, 3000), (3000, 3000)),
        ((0, 3000, 2500), (3000, 3000)),
        ((100, 2999, 2999), (3000, 3000)),
    ];
    for (i, ((from, through, settled), (held_through, held_settled))) in
        steps.into_iter().enumerate()
    {
        let (claim, previous) = ctx
            .grant(
                i,
                s,
                fire_claim(&j, from, through, settled),
                CLAIM_MONOTONIC,
            )
            .await;
        check!(
            claim.from_ms == 100
                && claim.through_ms == held_through
                && claim.settled_ms == held_settled,
            CLAIM_MONOTONIC,
            "step {i}: asked from {from} through {through} settled {settled}, holding {claim:?}; expected from 100 through {held_through} settled {held_settled}"
        );
        check!(
            previous.is_none(),
            CLAIM_MONOTONIC,
            "step {i}: extending one's own claim returned previous {previous:?}"
        );
        let seen = ok(ctx.c(i + 1).claim_of(&j).await, CLAIM_OF_FRESH, "claim_of");
        check!(
            seen.as_ref() == Some(&claim),
            CLAIM_OF_FRESH,
            "step {i}: claim_of is {seen:?}, granted {claim:?}"
        );
    }
    ctx.finish().await;
}

/// Many tasks on many sessions claim the same jobs while the leader keeps reassigning them: the ranges
/// granted to distinct sessions never overlap, every takeover starts after the previous holder's end, and
/// the final `claim_of` covers its holder's grants.
pub async fn concurrent_claimers_never_overlap<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "concurrent_claimers_never_overlap",
        NamespaceOptions::clients(4),
    )
    .await
    else {
        return;
    };
    let jobs: Vec<JobId> = (0..3).map(|i| job_id(&format!("contended-{i}"))).collect();
    for id in &jobs {
        ctx.put(0, &simple_job(id.as_str())).await;
    }
    let nodes = ["c0", "c1", "c2", "c3"];
    let mut sessions: Vec<(usize, SessionId)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        sessions.push((i, ctx.open(i, node).await.id));
    }
    let leader_session = ctx.open(0, "conductor").await.id;
    let leader = ctx.lead(0, leader_session, CAMPAIGN_ONE).await;
    let assign = |k: usize| -> Vec<(&JobId, &str)> {
        jobs.iter()
            .enumerate()
            .map(|(i, j)| (j, nodes[(i + k) % nodes.len()]))
            .collect()
    };
    ctx.publish(0, &leader, &assign(0)).await;

    let counter = Arc::new(AtomicI64::new(1_000));
    let mut tasks = Vec::new();
    for &(client, session) in &sessions {
        for _ in 0..2 {
            let c = ctx.c(client);
            let counter = Arc::clone(&counter);
            let jobs = jobs.clone();
            tasks.push(tokio::spawn(async move {
                let mut grants = Vec::new();
                for _ in 0..25 {
                    let through = counter.fetch_add(100, Ordering::Relaxed) + 100;
                    // settled = through, so that nothing a session was granted is ever given back.
                    let batch: Vec<_> = jobs
                        .iter()
                        .map(|j| fire_claim(j, 0, through, through))
                        .collect();
                    let results = c.claim_fires(session, &batch).await;
                    let results = match results {
                        Ok(results) => results,
                        Err(error) => {
                            panic!("{CLAIM_NO_DOUBLE_GRANT}\n    claim_fires failed: {error:?}")
                        }
                    };
                    for (job, result) in jobs.iter().zip(results) {
                        if let ClaimResult::Granted { claim, previous } = result {
                            grants.push(Grant {
                                job: job.clone(),
                                claim,
                                previous,
                            });
                        }
                    }
                    tokio::task::yield_now().await;
                }
                grants
            }));
        }
    }
    let publisher = {
        let c = ctx.c(0);
        let owners: Vec<_> = (1..30)
            .map(|k| super::support::owners_map(&assign(k)))
            .collect();
        tokio::spawn(async move {
            for owners in owners {
                if let Err(error) = c
                    .publish_assignment(leader.session, leader.epoch, owners)
                    .await
                {
                    panic!("{PUBLISH_FENCED}\n    the leader's publication failed: {error:?}");
                }
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut grants: Vec<Grant> = Vec::new();
    for task in tasks {
        grants.extend(task.await.expect("claimer panicked"));
    }
    publisher.await.expect("publisher panicked");

    let mut by_job: BTreeMap<&JobId, Vec<&Grant>> = BTreeMap::new();
    for grant in &grants {
        by_job.entry(&grant.job).or_default().push(grant);
        if let Some(previous) = &grant.previous {
            check!(
                previous.session != grant.claim.session
                    && grant.claim.from_ms > previous.through_ms,
                CLAIM_NO_DOUBLE_GRANT,
                "job {}: a takeover granted {:?} after previous {previous:?}",
                grant.job,
                grant.claim
            );
        }
    }
    let mut takeovers = 0;
    for (job, list) in &by_job {
        takeovers += list.iter().filter(|g| g.previous.is_some()).count();
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let (a, b) = (&a.claim, &b.claim);
                if a.session == b.session || a.from_ms > a.through_ms || b.from_ms > b.through_ms {
                    continue;
                }
                check!(
                    a.through_ms < b.from_ms || b.through_ms < a.from_ms,
                    CLAIM_NO_DOUBLE_GRANT,
                    "job {job}: {:?} was granted [{}, {}] and {:?} [{}, {}]",
                    a.session,
                    a.from_ms,
                    a.through_ms,
                    b.session,
                    b.from_ms,
                    b.through_ms
                );
            }
        }
        let last = ok(ctx.c(1).claim_of(job).await, CLAIM_OF_FRESH, "claim_of");
        if let Some(last) = last {
            let widest = list
                .iter()
                .filter(|g| g.claim.session == last.session && g.claim.from_ms == last.from_ms)
                .map(|g| g.claim.through_ms)
                .max();
            check!(
                widest.is_none_or(|w| last.through_ms >= w),
                CLAIM_MONOTONIC,
                "job {job}: claim_of is {last:?}, but its holder was granted through {widest:?}"
            );
        }
    }
    eprintln!(
        "concurrent_claimers_never_overlap: {} grants, {takeovers} takeovers",
        grants.len()
    );
    ctx.finish().await;
}

/// A grant observed by a claimer: who got which range of which job, and from whom.
#[derive(Debug, Clone)]
struct Grant {
    job: JobId,
    claim: JobClaim,
    previous: Option<JobClaim>,
}
