//! Cases of `watch_jobs`: resuming without gaps or duplicates, and compaction.

use std::sync::Arc;

use campanile::CoordError;
use campanile::coordinator::{JobEvent, Precondition};

use super::lines::*;
use super::support::{Ctx, job_id, next_event, ok, simple_job};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// Writes a mix of creates, updates and deletes and records the event each must produce.
async fn write_changes(ctx: &Ctx, client: usize, prefix: &str, count: usize) -> Vec<JobEvent> {
    let mut events = Vec::new();
    for i in 0..count {
        let id = format!("{prefix}-{}", i % 4);
        let c = ctx.c(client + i);
        if i % 5 == 4 {
            match c.delete_job(&job_id(&id), Precondition::Any).await {
                Ok(revision) => events.push(JobEvent::Deleted {
                    id: job_id(&id),
                    revision,
                }),
                Err(CoordError::NotFound { .. }) => {}
                Err(error) => fail!(WATCH_JOBS_NO_GAPS, "delete_job failed: {error:?}"),
            }
        } else {
            let mut job = simple_job(&id);
            job.spec_mut().name = format!("{prefix} change {i}");
            let revision = ok(
                c.put_job(job.clone(), Precondition::Any).await,
                PUT_REVISION,
                "put_job",
            );
            job.revision = revision;
            events.push(JobEvent::Put(Arc::new(job)));
        }
    }
    events
}

/// Receives exactly `expected`, in order, then a sentinel write: nothing missing, nothing repeated,
/// nothing extra.
async fn expect_exactly(
    ctx: &Ctx,
    watch: &mut campanile::coordinator::JobWatch,
    expected: &[JobEvent],
    what: &str,
) {
    let deadline = ctx.notify_deadline();
    for (k, want) in expected.iter().enumerate() {
        let got = next_event(watch, deadline, WATCH_JOBS_NO_GAPS).await;
        check!(
            &got == want,
            WATCH_JOBS_NO_GAPS,
            "{what}: event {k} is\n    {got:?}\n    expected\n    {want:?}"
        );
    }
    let mut sentinel = simple_job(&format!("sentinel-{}", expected.len()));
    sentinel.revision = ctx.put(0, &sentinel).await;
    let got = next_event(watch, ctx.notify_deadline(), WATCH_JOBS_NO_GAPS).await;
    check!(
        got == JobEvent::Put(Arc::new(sentinel.clone())),
        WATCH_JOBS_NO_GAPS,
        "{what}: after the expected events, the next one should be the sentinel write at revision {}, got {got:?}",
        sentinel.revision
    );
}

/// Writes N changes; a watch from a middle revision sees exactly the rest in order; a watch dropped midway
/// and resumed from the last revision it saw misses nothing and repeats nothing; a live watch sees
/// concurrent writes from several clients in revision order.
pub async fn watch_jobs_resumes_without_gaps<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "watch_jobs_resumes_without_gaps",
        NamespaceOptions::clients(3),
    )
    .await
    else {
        return;
    };
    let start = ok(ctx.c(0).list_jobs().await, LIST_SNAPSHOT, "list_jobs").revision;
    let events = write_changes(&ctx, 0, "history", 14).await;

    // From the start.
    let mut watch = ok(
        ctx.c(1).watch_jobs(start).await,
        WATCH_JOBS_NO_GAPS,
        "watch_jobs",
    );
    let deadline = ctx.notify_deadline();
    for want in &events {
        let got = next_event(&mut watch, deadline, WATCH_JOBS_NO_GAPS).await;
        check!(
            &got == want,
            WATCH_JOBS_NO_GAPS,
            "from the start: got {got:?}, expected {want:?}"
        );
    }
    drop(watch);

    // From the middle revision: exactly the rest.
    let middle = events.len() / 2;
    let from = events[middle - 1].revision();
    let mut watch = ok(
        ctx.c(2).watch_jobs(from).await,
        WATCH_JOBS_NO_GAPS,
        "watch_jobs",
    );
    expect_exactly(
        &ctx,
        &mut watch,
        &events[middle..],
        &format!("watch from revision {from}"),
    )
    .await;
    drop(watch);

    // Dropped after a few events and resumed from the last one seen.
    let mut watch = ok(
        ctx.c(0).watch_jobs(start).await,
        WATCH_JOBS_NO_GAPS,
        "watch_jobs",
    );
    let deadline = ctx.notify_deadline();
    let mut last_seen = start;
    for want in &events[..3] {
        let got = next_event(&mut watch, deadline, WATCH_JOBS_NO_GAPS).await;
        check!(
            &got == want,
            WATCH_JOBS_NO_GAPS,
            "before the drop: got {got:?}, expected {want:?}"
        );
        last_seen = got.revision();
    }
    drop(watch);
    let tail = ok(ctx.c(0).list_jobs().await, LIST_SNAPSHOT, "list_jobs").revision;
    let mut watch = ok(
        ctx.c(1).watch_jobs(last_seen).await,
        WATCH_JOBS_NO_GAPS,
        "watch_jobs",
    );
    let deadline = ctx.notify_deadline();
    let mut previous = last_seen;
    for want in &events[3..] {
        let got = next_event(&mut watch, deadline, WATCH_JOBS_NO_GAPS).await;
        check!(
            &got == want,
            WATCH_JOBS_NO_GAPS,
            "after resuming from {last_seen}: got {got:?}, expected {want:?}"
        );
        previous = got.revision();
    }
    // The sentinel writes of the middle watch come next; then nothing else until the end of history.
    while previous < tail {
        let got = next_event(&mut watch, deadline, WATCH_JOBS_NO_GAPS).await;
        check!(
            got.revision() > previous,
            WATCH_JOBS_NO_GAPS,
            "after resuming: revision {} after {previous}",
            got.revision()
        );
        previous = got.revision();
    }
    drop(watch);

    // A live watch, while several clients write at once.
    let now = ok(ctx.c(0).list_jobs().await, LIST_SNAPSHOT, "list_jobs").revision;
    let mut watch = ok(
        ctx.c(2).watch_jobs(now).await,
        WATCH_JOBS_NO_GAPS,
        "watch_jobs",
    );
    let mut tasks = Vec::new();
    for w in 0..3 {
        let c = ctx.c(w);
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..6 {
                let mut job = simple_job(&format!("live-{w}-{}", i % 2));
                job.spec_mut().name = format!("{i}");
                revs.push(c.put_job(job, Precondition::Any).await);
                tokio::task::yield_now().await;
            }
            revs
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        for rev in task.await.expect("writer panicked") {
            acknowledged.push(ok(rev, PUT_REVISION, "concurrent put_job"));
        }
    }
    acknowledged.sort_unstable();
    let deadline = ctx.notify_deadline();
    let mut delivered = Vec::new();
    while delivered.len() < acknowledged.len() {
        delivered.push(
            next_event(&mut watch, deadline, WATCH_JOBS_NO_GAPS)
                .await
                .revision(),
        );
    }
    check!(
        delivered == acknowledged,
        WATCH_JOBS_NO_GAPS,
        "a live watch delivered revisions {delivered:?}; the concurrent writes returned {acknowledged:?}"
    );
    ctx.finish().await;
}

/// With a small watch retention (when the factory can configure one): resuming from a revision older than
/// what is retained is `Compacted` (at the call or as the first item), naming the requested revision and an
/// oldest one from which a watch does work; listing again and watching from the snapshot works.
pub async fn watch_jobs_reports_compaction<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "watch_jobs_reports_compaction",
        NamespaceOptions::clients(2).with_watch_retention(4),
    )
    .await
    else {
        return;
    };
    if !ctx.profile.configurable_watch_retention {
        super::support::not_run(
            "watch_jobs_reports_compaction",
            format_args!(
                "the factory cannot configure the watch retention ({WATCH_JOBS_COMPACTED}); set \
                 BackendProfile::configurable_watch_retention and map NamespaceOptions::watch_retention \
                 onto the backend's own setting"
            ),
        );
        ctx.finish().await;
        return;
    }
    let start = ok(ctx.c(0).list_jobs().await, LIST_SNAPSHOT, "list_jobs").revision;
    let events = write_changes(&ctx, 0, "compacted", 40).await;
    let result = match ctx.c(1).watch_jobs(start).await {
        Err(error) => Err(error),
        Ok(mut watch) => match tokio::time::timeout_at(ctx.notify_deadline(), watch.recv()).await {
            Ok(Some(Err(error))) => Err(error),
            other => Ok(other),
        },
    };
    let oldest = match result {
        Err(CoordError::Compacted { requested, oldest }) => {
            check!(
                requested == start,
                WATCH_JOBS_COMPACTED,
                "Compacted names requested revision {requested}, the watch asked for {start}"
            );
            check!(
                oldest > start,
                WATCH_JOBS_COMPACTED,
                "Compacted names oldest {oldest}, not after the requested {start}"
            );
            oldest
        }
        other => fail!(
            WATCH_JOBS_COMPACTED,
            "after 40 writes with a retention of 4, watching from revision {start} gave {other:?}\n    \
             hint: the profile says configurable_watch_retention, so the factory must map \
             NamespaceOptions::watch_retention (here Some(4)) onto the backend's own retention setting for \
             this namespace (e.g. InprocConfig::watch_retention, or compacting an etcd prefix's revisions); \
             if it cannot, set configurable_watch_retention: false"
        ),
    };
    // From the oldest retained revision, a watch works and delivers the retained tail in order.
    let mut watch = ok(
        ctx.c(1).watch_jobs(oldest).await,
        WATCH_JOBS_COMPACTED,
        "watch_jobs from the oldest revision that Compacted named",
    );
    let tail: Vec<JobEvent> = events
        .iter()
        .filter(|e| e.revision() > oldest)
        .cloned()
        .collect();
    let deadline = ctx.notify_deadline();
    for want in &tail {
        let got = next_event(&mut watch, deadline, WATCH_JOBS_COMPACTED).await;
        check!(
            &got == want,
            WATCH_JOBS_NO_GAPS,
            "from the oldest retained revision: got {got:?}, expected {want:?}"
        );
    }
    // The caller lists again and resumes from the snapshot.
    let snapshot = ok(ctx.c(0).list_jobs().await, LIST_SNAPSHOT, "list_jobs");
    let mut watch = ok(
        ctx.c(1).watch_jobs(snapshot.revision).await,
        WATCH_JOBS_COMPACTED,
        "watch_jobs from a fresh snapshot",
    );
    let mut sentinel = simple_job("after-compaction");
    sentinel.revision = ctx.put(0, &sentinel).await;
    let got = next_event(&mut watch, ctx.notify_deadline(), WATCH_JOBS_COMPACTED).await;
    check!(
        got == JobEvent::Put(Arc::new(sentinel)),
        WATCH_JOBS_NO_GAPS,
        "watching from a fresh snapshot after compaction: first event {got:?}"
    );
    ctx.finish().await;
}
