//! Cases of the job store: revisions, preconditions, concurrent writers, round trips, deletes, reads after
//! writes and consistent snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use campanile::coordinator::{JobEvent, Precondition};
use campanile::{CoordError, Job, JobId, Outcome};
use tokio::sync::Barrier;

use super::lines::*;
use super::support::{Ctx, fire_claim, full_job, job_id, next_event, ok, record, simple_job};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// Every put and delete returns a revision greater than every earlier one, also under concurrent writers on
/// several clients (all distinct), and the stored job carries the revision its write returned.
pub async fn put_job_revisions_increase<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "put_job_revisions_increase",
        NamespaceOptions::clients(3),
    )
    .await
    else {
        return;
    };
    let c = ctx.c(0);
    let mut last = ok(c.list_jobs().await, LIST_SNAPSHOT, "list_jobs").revision;
    let mut next = |rev: u64, what: &str| {
        check!(
            rev > last,
            PUT_REVISION,
            "{what} returned revision {rev}, not greater than the previous write's {last}"
        );
        last = rev;
    };
    let a = simple_job("rev-a");
    let b = simple_job("rev-b");
    let r = ok(
        c.put_job(a.clone(), Precondition::Absent).await,
        PUT_REVISION,
        "put_job",
    );
    next(r, "create a");
    let r = ok(
        c.put_job(b.clone(), Precondition::Absent).await,
        PUT_REVISION,
        "put_job",
    );
    next(r, "create b");
    let current = ok(c.get_job(&a.id).await, GET_FRESH, "get_job")
        .expect("a exists")
        .revision;
    let r = ok(
        c.put_job(a.clone(), Precondition::Revision(current)).await,
        PUT_REVISION,
        "put_job",
    );
    next(r, "update a");
    let r = ok(
        c.delete_job(&b.id, Precondition::Any).await,
        PUT_REVISION,
        "delete_job",
    );
    next(r, "delete b");
    let r = ok(
        c.put_job(b.clone(), Precondition::Absent).await,
        PUT_REVISION,
        "put_job",
    );
    next(r, "re-create b");
    let r = ok(
        c.delete_job(&a.id, Precondition::Exists).await,
        PUT_REVISION,
        "delete_job",
    );
    next(r, "delete a");
    let snapshot = ok(c.list_jobs().await, LIST_SNAPSHOT, "list_jobs");
    check!(
        snapshot.revision >= last,
        LIST_SNAPSHOT,
        "list_jobs revision {} is older than the last acknowledged write {last}",
        snapshot.revision
    );

    // Concurrent writers: all revisions distinct, each job stored at the revision its write returned.
    let barrier = Arc::new(Barrier::new(6));
    let mut tasks = Vec::new();
    for w in 0..6 {
        let c = ctx.c(w);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut out = Vec::new();
            for i in 0..8 {
                let job = simple_job(&format!("w{w}-{}", i % 3));
                out.push((job.id.clone(), c.put_job(job, Precondition::Any).await));
            }
            out
        }));
    }
    let mut revisions = BTreeSet::new();
    let mut latest: BTreeMap<JobId, u64> = BTreeMap::new();
    for task in tasks {
        for (id, result) in task.await.expect("writer panicked") {
            let rev = ok(result, PUT_REVISION, "concurrent put_job");
            check!(
                rev > last,
                PUT_REVISION,
                "a concurrent write returned revision {rev}, not greater than the earlier write's {last}"
            );
            check!(
                revisions.insert(rev),
                PUT_REVISION,
                "revision {rev} was returned to two concurrent writes"
            );
            let slot = latest.entry(id).or_insert(0);
            *slot = (*slot).max(rev);
        }
    }
    for (id, rev) in &latest {
        let stored = ok(ctx.c(1).get_job(id).await, GET_FRESH, "get_job");
        check!(
            stored.as_ref().map(|j| j.revision) == Some(*rev),
            PUT_REVISION,
            "job {id} was last written at revision {rev} (each writer writes its own jobs in order) but is stored as {:?}",
            stored.map(|j| j.revision)
        );
    }
    ctx.finish().await;
}

/// Each precondition, on present and absent jobs: failures are `Conflict` (`NotFound` for `Exists`) and
/// write nothing: the job is unchanged and no watch event is emitted.
pub async fn put_job_preconditions<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "put_job_preconditions",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let c = ctx.c(0);
    let start = ok(c.list_jobs().await, LIST_SNAPSHOT, "list_jobs").revision;
    let mut watch = ok(c.watch_jobs(start).await, WATCH_JOBS_NO_GAPS, "watch_jobs");
    let job = simple_job("pre");
    let missing = simple_job("pre-missing");
    let mut expected_events = Vec::new();

    // Absent on a missing job creates it.
    let r1 = ok(
        c.put_job(job.clone(), Precondition::Absent).await,
        PUT_PRECONDITION,
        "put_job(Absent) of a new job",
    );
    expected_events.push(r1);
    let stored = ok(c.get_job(&job.id).await, GET_FRESH, "get_job");
    // Each failing write, then the job must be exactly as before.
    let mut changed = job.clone();
    changed.spec_mut().name = "must not be written".into();
    let failures: Vec<(&str, Precondition, &Job, bool)> = vec![
        (
            "Absent on an existing job",
            Precondition::Absent,
            &changed,
            false,
        ),
        (
            "Revision(stale) on an existing job",
            Precondition::Revision(r1.saturating_sub(1)),
            &changed,
            false,
        ),
        (
            "Revision(future) on an existing job",
            Precondition::Revision(r1 + 1000),
            &changed,
            false,
        ),
        (
            "Exists on a missing job",
            Precondition::Exists,
            &missing,
            true,
        ),
    ];
    for (what, precondition, job, not_found) in failures {
        let result = ctx.c(1).put_job(job.clone(), precondition).await;
        let fine = if not_found {
            matches!(result, Err(CoordError::NotFound { .. }))
        } else {
            matches!(result, Err(CoordError::Conflict { .. }))
        };
        check!(
            fine,
            PUT_PRECONDITION,
            "put_job with {what} returned {result:?}"
        );
    }
    // `Revision(r)` on a missing job: the contract names no error; any rejection that writes nothing passes.
    let result = ctx
        .c(1)
        .put_job(missing.clone(), Precondition::Revision(r1))
        .await;
    check!(
        matches!(
            result,
            Err(CoordError::Conflict { .. } | CoordError::NotFound { .. })
        ),
        PUT_PRECONDITION,
        "put_job with Revision(r) on a missing job returned {result:?}"
    );
    check!(
        ok(c.get_job(&job.id).await, GET_FRESH, "get_job") == stored,
        PUT_PRECONDITION,
        "a rejected put changed the job (also: {COORD_FAILED_WRITES})"
    );
    check!(
        ok(c.get_job(&missing.id).await, GET_FRESH, "get_job").is_none(),
        PUT_PRECONDITION,
        "a rejected put created {}",
        missing.id
    );

    // The successful forms.
    let r2 = ok(
        c.put_job(changed.clone(), Precondition::Revision(r1)).await,
        PUT_PRECONDITION,
        "put_job(Revision(current))",
    );
    expected_events.push(r2);
    let r3 = ok(
        c.put_job(job.clone(), Precondition::Exists).await,
        PUT_PRECONDITION,
        "put_job(Exists) of an existing job",
    );
    expected_events.push(r3);
    let mut odd = job.clone();
    odd.revision = 987_654_321;
    let r4 = ok(
        c.put_job(odd, Precondition::Any).await,
        PUT_PRECONDITION,
        "put_job(Any)",
    );
    expected_events.push(r4);
    let r5 = ok(
        c.put_job(missing.clone(), Precondition::Any).await,
        PUT_PRECONDITION,
        "put_job(Any) of a new job",
    );
    expected_events.push(r5);
    let stored = ok(c.get_job(&job.id).await, GET_FRESH, "get_job").expect("job exists");
    check!(
        stored.revision == r4,
        PUT_ROUND_TRIP,
        "the job was written with revision field 987654321 and returned {r4}, but is stored with {}",
        stored.revision
    );

    // Nothing but the successful writes reached the watch: the sentinel comes right after them.
    let sentinel = ctx.put(1, &simple_job("pre-sentinel")).await;
    expected_events.push(sentinel);
    let deadline = ctx.notify_deadline();
    for want in expected_events {
        let event = next_event(&mut watch, deadline, WATCH_JOBS_NO_GAPS).await;
        check!(
            event.revision() == want,
            PUT_PRECONDITION,
            "the watch delivered revision {} where the next successful write is {want}: a rejected write emitted an event? {event:?}",
            event.revision()
        );
    }
    ctx.finish().await;
}

/// Writers on several clients race with the same `Revision(r)` (and with `Absent` on a new id): exactly one
/// wins each round, the others get `Conflict`, and the store holds the winner's write.
pub async fn concurrent_writers_one_wins<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "concurrent_writers_one_wins",
        NamespaceOptions::clients(4),
    )
    .await
    else {
        return;
    };
    let writers = 12;
    for round in 0..6 {
        let base = simple_job(&format!("race-{round}"));
        let create = round % 2 == 1;
        let precondition = if create {
            Precondition::Absent
        } else {
            Precondition::Revision(ctx.put(0, &base).await)
        };
        let barrier = Arc::new(Barrier::new(writers));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let c = ctx.c(w);
            let barrier = Arc::clone(&barrier);
            let mut job = base.clone();
            job.spec_mut().name = format!("writer {w}");
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                (w, c.put_job(job, precondition).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (w, result) = task.await.expect("writer panicked");
            match result {
                Ok(rev) => winners.push((w, rev)),
                Err(CoordError::Conflict { .. }) => {}
                Err(other) => fail!(
                    PUT_CONCURRENT,
                    "round {round}: writer {w} failed with {other:?} instead of Conflict"
                ),
            }
        }
        let line = if create {
            PUT_PRECONDITION
        } else {
            PUT_CONCURRENT
        };
        check!(
            winners.len() == 1,
            line,
            "round {round} ({precondition:?}): {} of {writers} concurrent writers succeeded: {winners:?}",
            winners.len()
        );
        let (w, rev) = winners[0];
        let stored = ok(ctx.c(w + 1).get_job(&base.id).await, GET_FRESH, "get_job");
        check!(
            stored
                .as_ref()
                .is_some_and(|j| j.revision == rev && j.spec.name == format!("writer {w}")),
            line,
            "round {round}: writer {w} won at revision {rev}, the store holds {stored:?}"
        );
    }
    ctx.finish().await;
}

/// Jobs with every field set (each target kind) and the smallest job come back equal from `get_job`,
/// `list_jobs` and `watch_jobs`, with the revision their write returned.
pub async fn job_fields_round_trip<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "job_fields_round_trip",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let start = ok(ctx.c(0).list_jobs().await, LIST_SNAPSHOT, "list_jobs").revision;
    let mut watch = ok(
        ctx.c(1).watch_jobs(start).await,
        WATCH_JOBS_NO_GAPS,
        "watch_jobs",
    );
    let mut jobs = vec![
        full_job("full-command", 0),
        full_job("full-http", 1),
        full_job("full-handler", 2),
        simple_job("smallest"),
    ];
    let mut written = Vec::new();
    for job in &mut jobs {
        job.revision = 42;
        let rev = ok(
            ctx.c(0).put_job(job.clone(), Precondition::Absent).await,
            PUT_ROUND_TRIP,
            "put_job",
        );
        job.revision = rev;
        written.push(job.clone());
    }
    // Update one job's every field to other values.
    let mut updated = full_job("full-command", 1);
    updated.spec_mut().name = "updated".into();
    updated.spec_mut().paused = false;
    updated.created_ms += 1;
    updated.updated_ms += 99;
    let rev = ok(
        ctx.c(1)
            .put_job(updated.clone(), Precondition::Revision(jobs[0].revision))
            .await,
        PUT_ROUND_TRIP,
        "put_job",
    );
    updated.revision = rev;
    written.push(updated.clone());
    jobs[0] = updated;

    for job in &jobs {
        let got = ok(ctx.c(1).get_job(&job.id).await, GET_FRESH, "get_job");
        check!(
            got.as_ref() == Some(job),
            PUT_ROUND_TRIP,
            "get_job({}) returned\n    {got:?}\n    written (with the returned revision):\n    {job:?}",
            job.id
        );
    }
    let snapshot = ok(ctx.c(0).list_jobs().await, LIST_SNAPSHOT, "list_jobs");
    let mut sorted = jobs.clone();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let sorted: Vec<Arc<Job>> = sorted.into_iter().map(Arc::new).collect();
    check!(
        snapshot.jobs == sorted,
        PUT_ROUND_TRIP,
        "list_jobs returned\n    {:?}\n    expected\n    {sorted:?}",
        snapshot.jobs
    );
    let deadline = ctx.notify_deadline();
    for job in written {
        let event = next_event(&mut watch, deadline, WATCH_JOBS_NO_GAPS).await;
        check!(
            event == JobEvent::Put(Arc::new(job.clone())),
            PUT_ROUND_TRIP,
            "watch_jobs delivered\n    {event:?}\n    for the write of\n    {job:?}"
        );
    }
    ctx.finish().await;
}

/// A write acknowledged to one client is seen by the next read on another client, for every kind of
/// state: jobs, members, leader, assignment, claims, run records.
pub async fn reads_see_acknowledged_writes<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "reads_see_acknowledged_writes",
        NamespaceOptions::clients(3),
    )
    .await
    else {
        return;
    };
    let n = ctx.clients().max(2);
    let job = simple_job("fresh");
    let s = ctx.open(0, "writer").await;
    let leader = ctx.lead(0, s.id, COORD_LINEARIZABLE).await;
    check!(
        ok(ctx.c(1).leader().await, COORD_LINEARIZABLE, "leader").as_ref() == Some(&leader),
        COORD_LINEARIZABLE,
        "another client does not see the leader just elected"
    );
    ctx.publish(0, &leader, &[(&job.id, "writer")]).await;
    let seen = ok(
        ctx.c(2).assignment().await,
        COORD_LINEARIZABLE,
        "assignment",
    );
    check!(
        seen.as_ref()
            .is_some_and(|a| a.owners.contains_key(&job.id)),
        COORD_LINEARIZABLE,
        "another client does not see the assignment just published: {seen:?}"
    );
    for i in 0..20 {
        let writer = i % n;
        let reader = (i + 1) % n;
        let mut version = job.clone();
        version.spec_mut().name = format!("version {i}");
        let rev = ok(
            ctx.c(writer)
                .put_job(version.clone(), Precondition::Any)
                .await,
            GET_FRESH,
            "put_job",
        );
        let got = ok(ctx.c(reader).get_job(&job.id).await, GET_FRESH, "get_job");
        check!(
            got.as_ref()
                .is_some_and(|j| j.revision == rev && j.spec.name == version.spec.name),
            GET_FRESH,
            "write {i} (revision {rev}) on client {writer}, read on client {reader}: {got:?}"
        );
        let listed = ok(ctx.c(reader).list_jobs().await, LIST_SNAPSHOT, "list_jobs");
        check!(
            listed.revision >= rev && listed.jobs.iter().any(|j| j.revision == rev),
            COORD_LINEARIZABLE,
            "write {i} (revision {rev}) on client {writer} is missing from a later list_jobs on client {reader} (revision {})",
            listed.revision
        );
        let through = 1000 * (i as i64 + 1);
        let (claim, _) = ctx
            .grant(
                writer,
                s.id,
                fire_claim(&job.id, 0, through, through - 1000),
                CLAIM_OF_FRESH,
            )
            .await;
        let seen = ok(
            ctx.c(reader).claim_of(&job.id).await,
            CLAIM_OF_FRESH,
            "claim_of",
        );
        check!(
            seen.as_ref() == Some(&claim),
            CLAIM_OF_FRESH,
            "grant {i} on client {writer} is {claim:?}, claim_of on client {reader} is {seen:?}"
        );
        let rec = record(&job.id, through, "writer", Outcome::Succeeded);
        ok(
            ctx.c(writer).record_runs(s.id, vec![rec.clone()]).await,
            RECORD_ONCE,
            "record_runs",
        );
        let runs = ok(
            ctx.c(reader)
                .runs(
                    &job.id,
                    campanile::coordinator::RunQuery {
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await,
            RUNS_QUERY,
            "runs",
        );
        check!(
            runs == vec![rec],
            RUNS_QUERY,
            "record {i} acknowledged on client {writer} is not the newest on client {reader}: {runs:?}"
        );
    }
    ok(
        ctx.c(1)
            .release_claims(s.id, &[(job.id.clone(), 5_500)])
            .await,
        RELEASE_SUCCESSOR,
        "release_claims",
    );
    let seen = ok(ctx.c(2).claim_of(&job.id).await, CLAIM_OF_FRESH, "claim_of");
    check!(
        seen.as_ref().is_some_and(|c| c.through_ms == 5_500),
        CLAIM_OF_FRESH,
        "a release to 5500 on client 1 is not seen by client 2: {seen:?}"
    );
    let other = ctx.open(1, "joiner").await;
    let members = ok(ctx.c(2).members().await, OPEN_MEMBER, "members");
    check!(
        members.members.iter().any(|m| m.session == other.id),
        OPEN_MEMBER,
        "a session opened on client 1 is not a member on client 2"
    );
    ctx.finish().await;
}

/// `list_jobs` is sorted by id and equals the replay of every change up to its revision, also while writers
/// on other clients put and delete jobs; watching from a snapshot's revision continues exactly after it.
pub async fn list_jobs_is_consistent_snapshot<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "list_jobs_is_consistent_snapshot",
        NamespaceOptions::clients(4),
    )
    .await
    else {
        return;
    };
    // Quiescent: exactly the written jobs, sorted.
    let names = ["m", "c", "x", "a", "q"];
    for name in names {
        ctx.put(0, &simple_job(name)).await;
    }
    let start = ok(ctx.c(1).list_jobs().await, LIST_SNAPSHOT, "list_jobs");
    let ids: Vec<String> = start.jobs.iter().map(|j| j.id.to_string()).collect();
    check!(
        ids == ["a", "c", "m", "q", "x"],
        LIST_SNAPSHOT,
        "list_jobs of 5 written jobs returned {ids:?}"
    );

    // Concurrent: writers put and delete while a lister takes snapshots; a watch records every change.
    let mut watch = ok(
        ctx.c(3).watch_jobs(start.revision).await,
        WATCH_JOBS_NO_GAPS,
        "watch_jobs",
    );
    let mut tasks = Vec::new();
    for w in 0..3 {
        let c = ctx.c(w);
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..15 {
                let id = ["a", "b", "c", "d", "m", "x"][(w * 7 + i) % 6];
                let result = if (w + i) % 4 == 3 {
                    c.delete_job(&job_id(id), Precondition::Any).await
                } else {
                    let mut job = simple_job(id);
                    job.spec_mut().name = format!("w{w} i{i}");
                    c.put_job(job, Precondition::Any).await
                };
                match result {
                    Ok(rev) => revs.push(rev),
                    Err(CoordError::NotFound { .. }) => {}
                    Err(error) => {
                        panic!("{LIST_SNAPSHOT}\n    a concurrent write failed: {error:?}")
                    }
                }
                tokio::task::yield_now().await;
            }
            revs
        }));
    }
    let lister = {
        let c = ctx.c(3);
        tokio::spawn(async move {
            let mut snapshots = Vec::new();
            for _ in 0..15 {
                snapshots.push(c.list_jobs().await);
                tokio::task::yield_now().await;
            }
            snapshots
        })
    };
    let mut last_write = start.revision;
    for task in tasks {
        for rev in task.await.expect("writer panicked") {
            last_write = last_write.max(rev);
        }
    }
    let snapshots = lister.await.expect("lister panicked");
    let deadline = ctx.notify_deadline();
    let mut events = Vec::new();
    while events
        .last()
        .is_none_or(|e: &JobEvent| e.revision() < last_write)
    {
        events.push(next_event(&mut watch, deadline, WATCH_JOBS_NO_GAPS).await);
    }
    for (k, snapshot) in snapshots.into_iter().enumerate() {
        let snapshot = ok(snapshot, LIST_SNAPSHOT, "concurrent list_jobs");
        let mut model: BTreeMap<JobId, Arc<Job>> = start
            .jobs
            .iter()
            .map(|j| (j.id.clone(), j.clone()))
            .collect();
        for event in events
            .iter()
            .take_while(|e| e.revision() <= snapshot.revision)
        {
            match event {
                JobEvent::Put(job) => {
                    model.insert(job.id.clone(), job.clone());
                }
                JobEvent::Deleted { id, .. } => {
                    model.remove(id);
                }
            }
        }
        let replayed: Vec<Arc<Job>> = model.into_values().collect();
        check!(
            snapshot.jobs == replayed,
            LIST_SNAPSHOT,
            "snapshot {k} at revision {} holds {:?}; the changes up to that revision give {:?}",
            snapshot.revision,
            snapshot
                .jobs
                .iter()
                .map(|j| (j.id.as_str(), j.revision))
                .collect::<Vec<_>>(),
            replayed
                .iter()
                .map(|j| (j.id.as_str(), j.revision))
                .collect::<Vec<_>>()
        );
    }

    // Watching from a quiescent snapshot continues right after it.
    let snapshot = ok(ctx.c(0).list_jobs().await, LIST_SNAPSHOT, "list_jobs");
    let mut watch = ok(
        ctx.c(1).watch_jobs(snapshot.revision).await,
        WATCH_JOBS_NO_GAPS,
        "watch_jobs",
    );
    let sentinel = ctx.put(2, &simple_job("after-snapshot")).await;
    let event = next_event(&mut watch, ctx.notify_deadline(), WATCH_JOBS_NO_GAPS).await;
    check!(
        event.revision() == sentinel,
        LIST_SNAPSHOT,
        "the first change after the snapshot at revision {} is {event:?}, expected the write at {sentinel}",
        snapshot.revision
    );
    ctx.finish().await;
}
