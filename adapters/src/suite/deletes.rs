//! Cases of job deletes: their preconditions, and what a delete takes with it (claims and run history).

use campanile::coordinator::Precondition;
use campanile::{CoordError, Outcome};

use super::lines::*;
use super::support::{Ctx, fire_claim, job_id, ok, record, simple_job};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// Deleting a missing job is `NotFound`; a stale `Revision(r)` is `Conflict` and deletes nothing; a
/// matching one deletes and returns a greater revision.
pub async fn delete_job_preconditions<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "delete_job_preconditions",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let c = ctx.c(0);
    let ghost = job_id("never-written");
    for precondition in [
        Precondition::Any,
        Precondition::Exists,
        Precondition::Revision(1),
    ] {
        let result = c.delete_job(&ghost, precondition).await;
        check!(
            matches!(result, Err(CoordError::NotFound { .. })),
            DELETE_MISSING,
            "delete_job of a missing job with {precondition:?} returned {result:?}"
        );
    }
    let job = simple_job("doomed");
    let r1 = ctx.put(0, &job).await;
    let r2 = ctx.put(1, &job).await;
    for stale in [r1, r2 + 1000] {
        let result = ctx
            .c(1)
            .delete_job(&job.id, Precondition::Revision(stale))
            .await;
        check!(
            matches!(result, Err(CoordError::Conflict { .. })),
            DELETE_CONFLICT,
            "delete_job with Revision({stale}) of a job at revision {r2} returned {result:?}"
        );
        let still = ok(c.get_job(&job.id).await, GET_FRESH, "get_job");
        check!(
            still.as_ref().is_some_and(|j| j.revision == r2),
            DELETE_CONFLICT,
            "after a rejected delete the job is {still:?}"
        );
    }
    let r3 = ok(
        ctx.c(1)
            .delete_job(&job.id, Precondition::Revision(r2))
            .await,
        DELETE_CONFLICT,
        "delete_job with the matching revision",
    );
    check!(
        r3 > r2,
        PUT_REVISION,
        "the delete's revision {r3} is not greater than {r2}"
    );
    check!(
        ok(c.get_job(&job.id).await, GET_FRESH, "get_job").is_none(),
        DELETE_CASCADE,
        "the deleted job is still there"
    );
    let again = c.delete_job(&job.id, Precondition::Any).await;
    check!(
        matches!(again, Err(CoordError::NotFound { .. })),
        DELETE_MISSING,
        "deleting the deleted job again returned {again:?}"
    );
    ctx.finish().await;
}

/// Deleting a job removes its claim and its run history; re-creating the id starts from nothing.
pub async fn delete_job_removes_claims_and_runs<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "delete_job_removes_claims_and_runs",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let job = simple_job("cascade");
    let keep = simple_job("bystander");
    ctx.put(0, &job).await;
    ctx.put(0, &keep).await;
    let s = ctx.open(0, "owner").await.id;
    let leader = ctx.lead(0, s, CAMPAIGN_ONE).await;
    ctx.publish(0, &leader, &[(&job.id, "owner"), (&keep.id, "owner")])
        .await;
    for id in [&job.id, &keep.id] {
        ctx.grant(0, s, fire_claim(id, 0, 50_000, 20_000), CLAIM_NOT_OWNER)
            .await;
        let records: Vec<_> = (1..=5)
            .map(|k| record(id, k * 1000, "owner", Outcome::Succeeded))
            .collect();
        ok(
            ctx.c(0).record_runs(s, records).await,
            RECORD_ONCE,
            "record_runs",
        );
    }
    ok(
        ctx.c(1).delete_job(&job.id, Precondition::Exists).await,
        DELETE_CASCADE,
        "delete_job",
    );
    let claim = ok(ctx.c(1).claim_of(&job.id).await, CLAIM_OF_FRESH, "claim_of");
    check!(
        claim.is_none(),
        DELETE_CASCADE,
        "the deleted job still has a claim: {claim:?}"
    );
    let runs = ok(
        ctx.c(1).runs(&job.id, Default::default()).await,
        RUNS_QUERY,
        "runs",
    );
    check!(
        runs.is_empty(),
        DELETE_CASCADE,
        "the deleted job still has {} run records",
        runs.len()
    );
    // The other job keeps everything.
    let kept = ok(
        ctx.c(1).claim_of(&keep.id).await,
        CLAIM_OF_FRESH,
        "claim_of",
    );
    check!(
        kept.as_ref()
            .is_some_and(|c| c.session == s && c.through_ms == 50_000),
        DELETE_CASCADE,
        "deleting another job changed this one's claim: {kept:?}"
    );
    let kept_runs = ok(
        ctx.c(1).runs(&keep.id, Default::default()).await,
        RUNS_QUERY,
        "runs",
    );
    check!(
        kept_runs.len() == 5,
        DELETE_CASCADE,
        "deleting another job left this one {} records",
        kept_runs.len()
    );

    // Re-created: no claim, no history, and a claim starts where asked.
    ok(
        ctx.c(0).put_job(job.clone(), Precondition::Absent).await,
        DELETE_CASCADE,
        "put_job(Absent) after delete",
    );
    let claim = ok(ctx.c(1).claim_of(&job.id).await, CLAIM_OF_FRESH, "claim_of");
    check!(
        claim.is_none(),
        DELETE_CASCADE,
        "the re-created job inherited a claim: {claim:?}"
    );
    let runs = ok(
        ctx.c(1).runs(&job.id, Default::default()).await,
        RUNS_QUERY,
        "runs",
    );
    check!(
        runs.is_empty(),
        DELETE_CASCADE,
        "the re-created job inherited {} run records",
        runs.len()
    );
    let (granted, previous) = ctx
        .grant(0, s, fire_claim(&job.id, 1000, 2000, 1000), DELETE_CASCADE)
        .await;
    check!(
        granted.from_ms == 1000 && previous.is_none(),
        DELETE_CASCADE,
        "the first claim of the re-created job is {granted:?} with previous {previous:?}"
    );
    ctx.finish().await;
}
