//! Cases of giving claims up: a release hands the next owner the instant after it, a close keeps them.

use campanile::coordinator::JobClaim;

use super::lines::*;
use super::support::{Ctx, fire_claim, job_id, ok, simple_job};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// A release cuts the claim to `through_ms` (never extends it, ignores jobs the session does not hold), and
/// the next owner then starts at `through_ms + 1`.
pub async fn release_lets_successor_start_next<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "release_lets_successor_start_next",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let j = job_id("released");
    let ghost = job_id("never-existed");
    ctx.put(0, &simple_job(j.as_str())).await;
    let s1 = ctx.open(0, "n1").await.id;
    let s2 = ctx.open(1, "n2").await.id;
    let leader = ctx.lead(0, s1, CAMPAIGN_ONE).await;
    ctx.publish(0, &leader, &[(&j, "n1")]).await;
    let (held, _) = ctx
        .grant(0, s1, fire_claim(&j, 0, 10_000, 3_000), CLAIM_NOT_OWNER)
        .await;

    ok(
        ctx.c(0).release_claims(s1, &[(j.clone(), 6_000)]).await,
        RELEASE_SUCCESSOR,
        "release_claims",
    );
    let cut = JobClaim {
        through_ms: 6_000,
        ..held.clone()
    };
    let seen = ok(ctx.c(1).claim_of(&j).await, CLAIM_OF_FRESH, "claim_of");
    check!(
        seen.as_ref() == Some(&cut),
        RELEASE_SUCCESSOR,
        "after releasing to 6000 the claim is {seen:?}, expected {cut:?}"
    );

    ok(
        ctx.c(0).release_claims(s1, &[(j.clone(), 20_000)]).await,
        RELEASE_NO_EXTEND,
        "release_claims",
    );
    let seen = ok(ctx.c(1).claim_of(&j).await, CLAIM_OF_FRESH, "claim_of");
    check!(
        seen.as_ref() == Some(&cut),
        RELEASE_NO_EXTEND,
        "releasing to 20000 a claim through 6000 left {seen:?}"
    );

    ok(
        ctx.c(1)
            .release_claims(s2, &[(j.clone(), 0), (ghost.clone(), 0)])
            .await,
        RELEASE_IGNORES,
        "release_claims of jobs the session does not hold",
    );
    let seen = ok(ctx.c(0).claim_of(&j).await, CLAIM_OF_FRESH, "claim_of");
    check!(
        seen.as_ref() == Some(&cut),
        RELEASE_IGNORES,
        "a release by a session that does not hold the job changed it to {seen:?}"
    );
    let ghost_claim = ok(ctx.c(0).claim_of(&ghost).await, CLAIM_OF_FRESH, "claim_of");
    check!(
        ghost_claim.is_none(),
        RELEASE_IGNORES,
        "a release of a missing job created {ghost_claim:?}"
    );

    ctx.publish(0, &leader, &[(&j, "n2")]).await;
    let (next, previous) = ctx
        .grant(1, s2, fire_claim(&j, 0, 15_000, 0), RELEASE_SUCCESSOR)
        .await;
    check!(
        next.from_ms == 6_001 && next.through_ms == 15_000,
        RELEASE_SUCCESSOR,
        "after a release to 6000 the successor was granted {next:?}"
    );
    check!(
        previous.as_ref() == Some(&cut),
        RELEASE_SUCCESSOR,
        "the successor's previous is {previous:?}, expected the released claim {cut:?}"
    );
    ctx.finish().await;
}

/// Closing a holder's session leaves its claims exactly as they are (neither truncated to `settled_ms` nor
/// released), so the next owner starts after each claim's `through_ms` and gets it as `previous`; a graceful
/// leave that releases first lets the successor start right after the release. The node leaves the members
/// and the leadership.
pub async fn close_keeps_claims<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(factory, "close_keeps_claims", NamespaceOptions::clients(2)).await
    else {
        return;
    };
    let [j1, j2, j3] = ["half-settled", "fully-settled", "released"].map(job_id);
    for id in [&j1, &j2, &j3] {
        ctx.put(0, &simple_job(id.as_str())).await;
    }
    let s1 = ctx.open(0, "leaving").await.id;
    let s2 = ctx.open(1, "staying").await.id;
    let leader = ctx.lead(0, s1, CAMPAIGN_ONE).await;
    ctx.publish(
        0,
        &leader,
        &[(&j1, "leaving"), (&j2, "leaving"), (&j3, "leaving")],
    )
    .await;
    let (c1, _) = ctx
        .grant(0, s1, fire_claim(&j1, 0, 10_000, 4_000), CLAIM_NOT_OWNER)
        .await;
    let (c2, _) = ctx
        .grant(0, s1, fire_claim(&j2, 0, 8_000, 8_000), CLAIM_NOT_OWNER)
        .await;
    let (c3, _) = ctx
        .grant(0, s1, fire_claim(&j3, 0, 9_000, 2_000), CLAIM_NOT_OWNER)
        .await;
    // The graceful leave of j3: give back what will not be fired, then close.
    ok(
        ctx.c(0).release_claims(s1, &[(j3.clone(), 5_000)]).await,
        RELEASE_SUCCESSOR,
        "release_claims",
    );
    let c3 = JobClaim {
        through_ms: 5_000,
        ..c3
    };

    ok(
        ctx.c(0).close_session(s1).await,
        CLOSE_LEAVES,
        "close_session",
    );
    let members = ok(ctx.c(1).members().await, MEMBERS_EXACT, "members");
    check!(
        members.members.iter().all(|m| m.session != s1),
        CLOSE_LEAVES,
        "the closed session is still a member: {members:?}"
    );
    let now = ok(ctx.c(1).leader().await, LEADER_LIVE, "leader");
    check!(
        now.is_none(),
        CLOSE_LEAVES,
        "the closed leader is still leader: {now:?}"
    );
    let held = [(&j1, &c1), (&j2, &c2), (&j3, &c3)];
    for (id, held) in held {
        let seen = ok(ctx.c(1).claim_of(id).await, CLAIM_OF_FRESH, "claim_of");
        check!(
            seen.as_ref() == Some(held),
            CLOSE_KEEPS_CLAIMS,
            "after close_session the claim of {id} is {seen:?}, expected it unchanged: {held:?}"
        );
    }
    let next_leader = ctx.lead(1, s2, CAMPAIGN_ENDS).await;
    ctx.publish(
        1,
        &next_leader,
        &[(&j1, "staying"), (&j2, "staying"), (&j3, "staying")],
    )
    .await;
    for (id, held) in held {
        let (claim, previous) = ctx
            .grant(1, s2, fire_claim(id, 0, 20_000, 0), CLAIM_NO_DOUBLE_GRANT)
            .await;
        check!(
            claim.from_ms == held.through_ms + 1,
            CLAIM_NO_DOUBLE_GRANT,
            "after the holder of {id} closed holding through {}, the successor was granted {claim:?}",
            held.through_ms
        );
        check!(
            previous.as_ref() == Some(held),
            CLOSE_KEEPS_CLAIMS,
            "the successor's previous for {id} is {previous:?}, expected the closed holder's claim {held:?}"
        );
    }
    ctx.finish().await;
}
