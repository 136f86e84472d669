//! Cases of the assignment: fencing of publications by stale leaders, and growing versions.

use std::sync::Arc;

use campanile::CoordError;
use campanile::coordinator::Assignment;

use super::lines::*;
use super::support::{Ctx, assignment_is, job_id, ok, owners_map};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// Publications by a non-leader, by the leader with a wrong epoch, by a former leader with its old epoch
/// and by a closed session are rejected (`Fenced`, or `SessionExpired` for the closed one) and write nothing.
pub async fn publish_assignment_is_fenced<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "publish_assignment_is_fenced",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let j1 = job_id("fenced-1");
    let j2 = job_id("fenced-2");
    let a = ctx.open(0, "a").await.id;
    let b = ctx.open(1, "b").await.id;
    let t1 = ctx.lead(0, a, CAMPAIGN_ONE).await;
    let v1 = ctx.publish(0, &t1, &[(&j1, "a"), (&j2, "b")]).await;
    let current = ok(ctx.c(1).assignment().await, ASSIGNMENT_LATEST, "assignment");

    let rejected = |what: &str, result: Result<u64, CoordError>, allow_expired: bool| match result {
        Err(CoordError::Fenced { .. }) => {}
        Err(CoordError::SessionExpired { .. }) if allow_expired => {}
        other => fail!(
            PUBLISH_FENCED,
            "{what}: publish_assignment returned {other:?}"
        ),
    };
    let bogus = owners_map(&[(&j1, "b"), (&j2, "b")]);
    rejected(
        "a non-leader with the leader's epoch",
        ctx.c(1)
            .publish_assignment(b, t1.epoch, bogus.clone())
            .await,
        false,
    );
    rejected(
        "a non-leader with the next epoch",
        ctx.c(1)
            .publish_assignment(b, t1.epoch + 1, bogus.clone())
            .await,
        false,
    );
    rejected(
        "the leader with a future epoch",
        ctx.c(0)
            .publish_assignment(a, t1.epoch + 1, bogus.clone())
            .await,
        false,
    );
    if t1.epoch > 0 {
        rejected(
            "the leader with a past epoch",
            ctx.c(0)
                .publish_assignment(a, t1.epoch - 1, bogus.clone())
                .await,
            false,
        );
    }
    let after = ok(ctx.c(1).assignment().await, ASSIGNMENT_LATEST, "assignment");
    check!(
        after == current,
        PUBLISH_FENCED,
        "a rejected publication changed the assignment from {current:?} to {after:?} (also: {COORD_FAILED_WRITES})"
    );

    // A former leader, still alive, with its old epoch.
    ok(ctx.c(0).resign(a).await, RESIGN_HANDS_OVER, "resign");
    rejected(
        "a resigned leader with its old epoch, before anybody else leads",
        ctx.c(0)
            .publish_assignment(a, t1.epoch, bogus.clone())
            .await,
        false,
    );
    let t2 = ctx.lead(1, b, RESIGN_HANDS_OVER).await;
    rejected(
        "the former leader with its old epoch",
        ctx.c(0)
            .publish_assignment(a, t1.epoch, bogus.clone())
            .await,
        false,
    );
    rejected(
        "the former leader with the new leader's epoch",
        ctx.c(0)
            .publish_assignment(a, t2.epoch, bogus.clone())
            .await,
        false,
    );
    let after = ok(ctx.c(0).assignment().await, ASSIGNMENT_LATEST, "assignment");
    check!(
        after == current,
        PUBLISH_FENCED,
        "a fenced publication changed the assignment to {after:?}"
    );
    let v2 = ctx.publish(1, &t2, &[(&j1, "b")]).await;
    check!(
        v2 > v1,
        PUBLISH_VERSION,
        "version {v2} of the new term's publication is not greater than {v1}"
    );
    let latest = ok(ctx.c(0).assignment().await, ASSIGNMENT_LATEST, "assignment");
    check!(
        latest.as_deref()
            == Some(&Assignment {
                epoch: t2.epoch,
                version: v2,
                owners: owners_map(&[(&j1, "b")]),
            }),
        ASSIGNMENT_LATEST,
        "after the new leader published, assignment() is {latest:?}"
    );

    // A closed leader.
    ok(
        ctx.c(1).close_session(b).await,
        CLOSE_LEAVES,
        "close_session",
    );
    rejected(
        "a closed leader with its epoch",
        ctx.c(1).publish_assignment(b, t2.epoch, bogus).await,
        true,
    );
    let after = ok(ctx.c(0).assignment().await, ASSIGNMENT_LATEST, "assignment");
    check!(
        after == latest,
        PUBLISH_FENCED,
        "a closed leader's publication changed the assignment to {after:?}"
    );
    ctx.finish().await;
}

/// Every publication gets a greater version, also across terms; `assignment` returns the last one (and
/// `None` before the first); `watch_assignment` holds the current one, sees increasing versions and ends on
/// the latest.
pub async fn assignment_versions_increase<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "assignment_versions_increase",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let first = ok(ctx.c(0).assignment().await, ASSIGNMENT_LATEST, "assignment");
    check!(
        first.is_none(),
        ASSIGNMENT_LATEST,
        "a fresh namespace has an assignment: {first:?}"
    );
    let mut rx = ok(
        ctx.c(1).watch_assignment().await,
        WATCH_ASSIGNMENT_VERSIONS,
        "watch_assignment",
    );
    check!(
        rx.borrow().is_none(),
        WATCH_ASSIGNMENT_VERSIONS,
        "the receiver of a fresh namespace holds {:?}",
        *rx.borrow()
    );
    let jobs: Vec<_> = (0..4).map(|i| job_id(&format!("assigned-{i}"))).collect();
    let a = ctx.open(0, "a").await.id;
    let b = ctx.open(1, "b").await.id;
    let mut version = 0;
    let mut seen: Vec<Arc<Assignment>> = Vec::new();
    for term in 0..2 {
        let (client, session) = if term == 0 { (0, a) } else { (1, b) };
        let leader = ctx.lead(client, session, CAMPAIGN_ONE).await;
        for round in 0..4 {
            let owners: Vec<(&_, &str)> = jobs
                .iter()
                .enumerate()
                .filter(|(i, _)| (i + round) % 3 != 0)
                .map(|(i, j)| {
                    (
                        j,
                        if (i + round + term) % 2 == 0 {
                            "a"
                        } else {
                            "b"
                        },
                    )
                })
                .collect();
            let v = ctx.publish(client, &leader, &owners).await;
            check!(
                v > version,
                PUBLISH_VERSION,
                "term {term} round {round}: version {v} is not greater than {version}"
            );
            version = v;
            let now = ok(
                ctx.c(client + 1).assignment().await,
                ASSIGNMENT_LATEST,
                "assignment",
            );
            check!(
                assignment_is(&now, &owners)
                    && now
                        .as_ref()
                        .is_some_and(|a| a.version == v && a.epoch == leader.epoch),
                ASSIGNMENT_LATEST,
                "term {term} round {round}: assignment() is {now:?} after publishing version {v} in epoch {}",
                leader.epoch
            );
            let fresh = ok(
                ctx.c(client).watch_assignment().await,
                WATCH_ASSIGNMENT_VERSIONS,
                "watch_assignment",
            );
            check!(
                *fresh.borrow() == now,
                WATCH_ASSIGNMENT_VERSIONS,
                "a new receiver holds {:?}, assignment() is {now:?}",
                *fresh.borrow()
            );
            let bound = ctx.notify_bound();
            let waited = tokio::time::timeout(
                bound,
                rx.wait_for(|a| {
                    if let Some(a) = a
                        && seen.last() != Some(a)
                    {
                        seen.push(Arc::clone(a));
                    }
                    a.as_ref().is_some_and(|a| a.version >= v)
                }),
            )
            .await;
            match waited {
                Ok(Ok(held)) => check!(
                    *held == now,
                    WATCH_ASSIGNMENT_VERSIONS,
                    "the receiver ended on {:?}, the latest is {now:?}",
                    *held
                ),
                other => fail!(
                    WATCH_ASSIGNMENT_VERSIONS,
                    "the receiver did not reach version {v} within {bound:?}: {:?}",
                    other.map(|r| r.map(|a| a.clone()))
                ),
            }
        }
        ok(
            ctx.c(client).resign(session).await,
            RESIGN_HANDS_OVER,
            "resign",
        );
    }
    for pair in seen.windows(2) {
        check!(
            pair[1].version > pair[0].version,
            WATCH_ASSIGNMENT_VERSIONS,
            "the receiver saw version {} after {}",
            pair[1].version,
            pair[0].version
        );
    }
    ctx.finish().await;
}
