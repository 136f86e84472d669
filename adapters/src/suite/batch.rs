//! Cases of `put_jobs`: a batch of new jobs is checked before anything is written, is created whole (every
//! job round-trips and is watched), and leaves nothing behind when one of its ids exists, also when the batch
//! is larger than one store transaction.

use std::collections::BTreeSet;
use std::sync::Arc;

use campanile::coordinator::limits::MAX_CREATE_BATCH;
use campanile::coordinator::{JobEvent, Key, Precondition};
use campanile::{CoordError, Job, JobId};

use super::lines::*;
use super::support::{Ctx, full_job, next_event, ok, simple_job};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// Jobs in the batches of these cases: more than one transaction of every shipped backend (etcd takes 128
/// operations per transaction by default).
const BATCH: usize = 300;

/// Bytes of padding in each job of a batch: 300 such jobs take several transactions of every shipped backend
/// by size too (ZooKeeper's `multi` is bounded by bytes, not by operations).
const PADDING: usize = 4096;

/// `n` jobs named `{prefix}-{i:04}`, of every kind of target.
fn batch(prefix: &str, n: usize) -> Vec<Job> {
    (0..n)
        .map(|i| {
            let mut job = full_job(&format!("{prefix}-{i:04}"), i);
            job.spec_mut()
                .labels
                .insert("padding".into(), "p".repeat(PADDING));
            job.revision = 7;
            job
        })
        .collect()
}

/// The ids of the stored jobs that start with `prefix`.
async fn stored_ids(ctx: &Ctx, prefix: &str) -> BTreeSet<JobId> {
    ok(ctx.c(1).list_jobs().await, LIST_SNAPSHOT, "list_jobs")
        .jobs
        .into_iter()
        .filter(|j| j.id.as_str().starts_with(prefix))
        .map(|j| j.id.clone())
        .collect()
}

/// A batch is stored whole: each job round-trips with the revision returned for it, revisions do not
/// decrease and exceed every earlier write's, and a watch delivers one `Put` per job, in order.
pub async fn put_jobs_creates_every_job<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "put_jobs_creates_every_job",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let before = ctx.put(0, &simple_job("before-batch")).await;
    let mut watch = ok(
        ctx.c(1).watch_jobs(before).await,
        WATCH_JOBS_NO_GAPS,
        "watch_jobs",
    );
    let mut jobs = batch("bulk", BATCH);
    let revisions = ok(
        ctx.c(0).put_jobs(jobs.clone()).await,
        PUT_JOBS_STORED,
        "put_jobs",
    );
    check!(
        revisions.len() == jobs.len(),
        PUT_JOBS_STORED,
        "put_jobs of {} jobs returned {} revisions",
        jobs.len(),
        revisions.len()
    );
    let mut last = before;
    for (i, (job, &revision)) in jobs.iter_mut().zip(&revisions).enumerate() {
        check!(
            revision > before && revision >= last,
            PUT_JOBS_STORED,
            "jobs[{i}] got revision {revision}: not above the earlier write's {before} or below jobs[{}]'s {last}",
            i.saturating_sub(1)
        );
        last = revision;
        job.revision = revision;
    }
    for job in [&jobs[0], &jobs[BATCH / 2], &jobs[BATCH - 1]] {
        let got = ok(ctx.c(1).get_job(&job.id).await, GET_FRESH, "get_job");
        check!(
            got.as_ref() == Some(job),
            PUT_JOBS_STORED,
            "get_job({}) returned\n    {got:?}\n    written (with the returned revision):\n    {job:?}",
            job.id
        );
    }
    let listed: Vec<Job> = ok(ctx.c(1).list_jobs().await, LIST_SNAPSHOT, "list_jobs")
        .jobs
        .into_iter()
        .filter(|j| j.id.as_str().starts_with("bulk-"))
        .map(Arc::unwrap_or_clone)
        .collect();
    check!(
        listed == jobs,
        PUT_JOBS_STORED,
        "list_jobs holds {} of the batch's {} jobs, or not as written",
        listed.len(),
        jobs.len()
    );
    let deadline = ctx.notify_deadline();
    for job in &jobs {
        let event = next_event(&mut watch, deadline, PUT_JOBS_WATCHED).await;
        check!(
            event == JobEvent::Put(Arc::new(job.clone())),
            PUT_JOBS_WATCHED,
            "watch_jobs delivered\n    {event:?}\n    for the batch's write of\n    {job:?}"
        );
    }
    ctx.finish().await;
}

/// A batch with an id twice, or too many jobs, is `Invalid` naming the index and writes nothing.
pub async fn put_jobs_checks_before_writing<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "put_jobs_checks_before_writing",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let mut jobs = batch("twice", BATCH);
    jobs[BATCH - 1] = full_job("twice-0003", 1);
    match ctx.c(0).put_jobs(jobs).await {
        Err(CoordError::Invalid(message)) => check!(
            message.contains(&format!("jobs[{}]", BATCH - 1)) && message.contains("jobs[3]"),
            PUT_JOBS_CHECKED,
            "the error does not name both indexes of the repeated id: {message}"
        ),
        other => fail!(
            PUT_JOBS_CHECKED,
            "put_jobs with one id twice returned {other:?}, not Invalid"
        ),
    }
    let left = stored_ids(&ctx, "twice-").await;
    check!(
        left.is_empty(),
        PUT_JOBS_CHECKED,
        "a rejected batch left {} jobs: {:?}",
        left.len(),
        left.iter().take(3).collect::<Vec<_>>()
    );
    let too_many: Vec<Job> = (0..=MAX_CREATE_BATCH)
        .map(|i| simple_job(&format!("many-{i:05}")))
        .collect();
    match ctx.c(0).put_jobs(too_many).await {
        Err(CoordError::Invalid(_)) => {}
        other => fail!(
            PUT_JOBS_CHECKED,
            "put_jobs of {} jobs returned {other:?}, not Invalid",
            MAX_CREATE_BATCH + 1
        ),
    }
    let left = stored_ids(&ctx, "many-").await;
    check!(
        left.is_empty(),
        PUT_JOBS_CHECKED,
        "an oversized batch left {} jobs",
        left.len()
    );
    ctx.finish().await;
}

/// A batch one of whose ids exists (first, in the middle, or last: after other transactions of the batch
/// were written) is `Conflict` naming that id, leaves none of its jobs, and leaves the existing one as it
/// was.
pub async fn put_jobs_conflict_leaves_nothing<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "put_jobs_conflict_leaves_nothing",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    for (round, at) in [0, BATCH / 2, BATCH - 1].into_iter().enumerate() {
        let prefix = format!("clash{round}");
        let jobs = batch(&prefix, BATCH);
        let mut existing = simple_job(jobs[at].id.as_str());
        existing.revision = ctx.put(1, &existing).await;
        match ctx.c(0).put_jobs(jobs).await {
            Err(CoordError::Conflict { key, .. }) => check!(
                key == Key::Job(existing.id.clone()),
                PUT_JOBS_CONFLICT,
                "the conflict names {key:?}, not the existing job {}",
                existing.id
            ),
            other => fail!(
                PUT_JOBS_CONFLICT,
                "put_jobs with jobs[{at}] existing returned {other:?}, not Conflict"
            ),
        }
        let left = stored_ids(&ctx, &format!("{prefix}-")).await;
        check!(
            left == BTreeSet::from([existing.id.clone()]),
            PUT_JOBS_CONFLICT,
            "after a batch failed on jobs[{at}], {} jobs of the prefix are stored (only the existing one may be): \
             {:?}",
            left.len(),
            left.iter().take(3).collect::<Vec<_>>()
        );
        let got = ok(ctx.c(1).get_job(&existing.id).await, GET_FRESH, "get_job");
        check!(
            got.as_ref() == Some(&existing),
            PUT_JOBS_CONFLICT,
            "the existing job changed: {got:?}"
        );
        // The existing job can still be written as before.
        ok(
            ctx.c(1)
                .put_job(existing.clone(), Precondition::Revision(existing.revision))
                .await,
            PUT_PRECONDITION,
            "put_job",
        );
    }
    ctx.finish().await;
}
