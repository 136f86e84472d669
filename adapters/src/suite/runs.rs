//! Cases of run records: one per fire id, the history bound, records of missing jobs, and the query.

use std::collections::BTreeMap;
use std::sync::Arc;

use campanile::coordinator::{RecordResult, RunQuery};
use campanile::{Outcome, RunRecord};
use tokio::sync::Barrier;

use super::lines::*;
use super::support::{Ctx, job_id, ok, record, simple_job};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// A second record for a fire id is `Duplicate` and changes nothing, within one batch and across calls;
/// concurrent writers on several sessions and clients racing on the same fire ids get exactly one
/// `Recorded` per fire id, and the stored record is that writer's.
pub async fn record_runs_once_per_fire_id<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "record_runs_once_per_fire_id",
        NamespaceOptions::clients(4),
    )
    .await
    else {
        return;
    };
    let job = simple_job("ledger");
    ctx.put(0, &job).await;
    let s = ctx.open(0, "w0").await.id;
    let first = record(&job.id, 1_000, "w0", Outcome::Succeeded);
    let results = ok(
        ctx.c(0).record_runs(s, vec![first.clone()]).await,
        RECORD_ONCE,
        "record_runs",
    );
    check!(
        results == [RecordResult::Recorded],
        RECORD_ONCE,
        "a first record returned {results:?}"
    );
    let other = RunRecord {
        outcome: Outcome::Failed,
        node: campanile::coordinator::NodeId::new("someone-else").expect("valid node id"),
        ..first.clone()
    };
    let results = ok(
        ctx.c(1).record_runs(s, vec![other]).await,
        RECORD_ONCE,
        "record_runs",
    );
    check!(
        results == [RecordResult::Duplicate],
        RECORD_ONCE,
        "a second record of one fire id returned {results:?}"
    );
    let a = record(&job.id, 2_000, "w0", Outcome::Skipped);
    let b = RunRecord {
        outcome: Outcome::Misfired,
        ..a.clone()
    };
    let c = record(&job.id, 3_000, "w0", Outcome::TimedOut);
    let results = ok(
        ctx.c(0).record_runs(s, vec![a.clone(), b, c.clone()]).await,
        RECORD_ONCE,
        "record_runs",
    );
    check!(
        results
            == [
                RecordResult::Recorded,
                RecordResult::Duplicate,
                RecordResult::Recorded
            ],
        RECORD_ONCE,
        "a batch with a repeated fire id returned {results:?}"
    );
    let runs = ok(
        ctx.c(2).runs(&job.id, RunQuery::default()).await,
        RUNS_QUERY,
        "runs",
    );
    check!(
        runs == vec![c, a, first],
        RECORD_ONCE,
        "after duplicates the history is {runs:?}"
    );

    // Concurrent writers on the same fire ids.
    let job = simple_job("contended-ledger");
    ctx.put(0, &job).await;
    let mut sessions = Vec::new();
    for w in 0..4 {
        sessions.push((w, ctx.open(w, &format!("writer-{w}")).await.id));
    }
    let tasks_per_session = 3;
    let barrier = Arc::new(Barrier::new(sessions.len() * tasks_per_session));
    let mut tasks = Vec::new();
    for &(client, session) in &sessions {
        for t in 0..tasks_per_session {
            let c = ctx.c(client);
            let barrier = Arc::clone(&barrier);
            let id = job.id.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut out = Vec::new();
                // Each task walks the fire ids from its own starting point, in batches of 5.
                let order: Vec<i64> = (0..60)
                    .map(|k| (k + 7 * (client * 3 + t) as i64) % 60)
                    .collect();
                for chunk in order.chunks(5) {
                    let records: Vec<RunRecord> = chunk
                        .iter()
                        .map(|k| {
                            record(
                                &id,
                                10_000 + k * 1000,
                                &format!("writer-{client}-{t}"),
                                Outcome::Succeeded,
                            )
                        })
                        .collect();
                    let results = c.record_runs(session, records.clone()).await;
                    let results = match results {
                        Ok(results) => results,
                        Err(error) => {
                            panic!("{RECORD_ONCE}\n    concurrent record_runs failed: {error:?}")
                        }
                    };
                    assert_eq!(
                        results.len(),
                        records.len(),
                        "{RECORD_ONCE}\n    record_runs returned {} results for {} records",
                        results.len(),
                        records.len()
                    );
                    out.extend(records.into_iter().zip(results));
                    tokio::task::yield_now().await;
                }
                out
            }));
        }
    }
    let mut winners: BTreeMap<i64, Vec<RunRecord>> = BTreeMap::new();
    for task in tasks {
        for (rec, result) in task.await.expect("writer panicked") {
            let entry = winners.entry(rec.scheduled_ms).or_default();
            if result == RecordResult::Recorded {
                entry.push(rec);
            }
        }
    }
    for (ms, won) in &winners {
        check!(
            won.len() == 1,
            RECORD_ONCE,
            "fire {}@{ms}: {} concurrent writers were told Recorded: {:?}",
            job.id,
            won.len(),
            won.iter().map(|r| r.node.as_str()).collect::<Vec<_>>()
        );
    }
    let stored = ok(
        ctx.c(3)
            .runs(
                &job.id,
                RunQuery {
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await,
        RUNS_QUERY,
        "runs",
    );
    check!(
        stored.len() == 60,
        RECORD_ONCE,
        "60 fire ids raced on, {} records stored",
        stored.len()
    );
    for rec in &stored {
        let won = &winners[&rec.scheduled_ms][0];
        check!(
            rec == won,
            RECORD_ONCE,
            "fire {}@{}: the store holds {}'s record, but {} was told Recorded",
            job.id,
            rec.scheduled_ms,
            rec.node,
            won.node
        );
    }
    ctx.finish().await;
}

/// After more than `history_limit` records, at least the newest `history_limit` are all there, equal to what
/// was written, newest first.
pub async fn run_history_keeps_newest<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "run_history_keeps_newest",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let limit = ctx.profile.history_limit;
    let job = simple_job("long-history");
    ctx.put(0, &job).await;
    let s = ctx.open(0, "recorder").await.id;
    let total = limit + limit / 2 + 7;
    let written: Vec<RunRecord> = (0..total as i64)
        .map(|k| {
            record(
                &job.id,
                1_000_000 + k * 60_000,
                "recorder",
                Outcome::Succeeded,
            )
        })
        .collect();
    for chunk in written.chunks(50) {
        let results = ok(
            ctx.c(0).record_runs(s, chunk.to_vec()).await,
            RECORD_HISTORY,
            "record_runs",
        );
        check!(
            results.iter().all(|r| *r == RecordResult::Recorded),
            RECORD_ONCE,
            "fresh fire ids returned {results:?}"
        );
    }
    let newest: Vec<RunRecord> = written.iter().rev().take(limit).cloned().collect();
    let runs = ok(
        ctx.c(1)
            .runs(
                &job.id,
                RunQuery {
                    limit,
                    ..Default::default()
                },
            )
            .await,
        RECORD_HISTORY,
        "runs",
    );
    check!(
        runs == newest,
        RECORD_HISTORY,
        "after {total} records with history_limit {limit}, the newest {limit} come back as {} records (first {:?}, last {:?})",
        runs.len(),
        runs.first().map(|r| r.scheduled_ms),
        runs.last().map(|r| r.scheduled_ms)
    );
    let everything = ok(
        ctx.c(1)
            .runs(
                &job.id,
                RunQuery {
                    limit: total * 2,
                    ..Default::default()
                },
            )
            .await,
        RECORD_HISTORY,
        "runs",
    );
    check!(
        everything.len() >= limit && everything.len() <= total && everything[..limit] == newest[..],
        RECORD_HISTORY,
        "a query for everything returned {} records",
        everything.len()
    );
    ctx.finish().await;
}

/// Records of a job that does not exist are dropped without an error (alone or beside a real job's
/// records, which are stored), and do not appear when the job is created later.
pub async fn records_of_missing_job_are_dropped<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "records_of_missing_job_are_dropped",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let real = simple_job("real");
    ctx.put(0, &real).await;
    let ghost = job_id("ghost");
    let s = ctx.open(0, "recorder").await.id;
    let results = ok(
        ctx.c(0)
            .record_runs(
                s,
                vec![record(&ghost, 1_000, "recorder", Outcome::Succeeded)],
            )
            .await,
        RECORD_NO_JOB,
        "record_runs of a missing job",
    );
    check!(
        results.len() == 1,
        RECORD_NO_JOB,
        "1 record returned {} results",
        results.len()
    );
    let kept = record(&real.id, 2_000, "recorder", Outcome::Failed);
    let results = ok(
        ctx.c(1)
            .record_runs(
                s,
                vec![
                    record(&ghost, 2_000, "recorder", Outcome::Succeeded),
                    kept.clone(),
                ],
            )
            .await,
        RECORD_NO_JOB,
        "record_runs of a missing and a real job",
    );
    check!(
        results.len() == 2 && results[1] == RecordResult::Recorded,
        RECORD_NO_JOB,
        "a batch with a missing job's record returned {results:?} (the real job's record must be Recorded)"
    );
    let runs = ok(
        ctx.c(1).runs(&ghost, RunQuery::default()).await,
        RECORD_NO_JOB,
        "runs of a missing job",
    );
    check!(
        runs.is_empty(),
        RECORD_NO_JOB,
        "a missing job has records: {runs:?}"
    );
    let runs = ok(
        ctx.c(1).runs(&real.id, RunQuery::default()).await,
        RUNS_QUERY,
        "runs",
    );
    check!(
        runs == vec![kept],
        RECORD_NO_JOB,
        "the real job's history is {runs:?}"
    );
    ctx.put(0, &simple_job("ghost")).await;
    let runs = ok(
        ctx.c(1).runs(&ghost, RunQuery::default()).await,
        RECORD_NO_JOB,
        "runs",
    );
    check!(
        runs.is_empty(),
        RECORD_NO_JOB,
        "records written before the job existed appeared: {runs:?}"
    );
    ctx.finish().await;
}

/// `runs` returns records newest first, honouring `from_ms` (inclusive), `before_ms` (exclusive) and
/// `limit` in every combination, pages through the history without gaps, and returns records as written.
pub async fn runs_query_filters_newest_first<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "runs_query_filters_newest_first",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let job = simple_job("queried");
    ctx.put(0, &job).await;
    let s = ctx.open(0, "recorder").await.id;
    // Twenty instants, written out of order, one of them a misfired range.
    let mut written: Vec<RunRecord> = (1..=20)
        .map(|k| record(&job.id, k * 1000, "recorder", Outcome::ALL[k as usize % 6]))
        .collect();
    written[4].count = 3;
    written[4].last_scheduled_ms = Some(written[4].scheduled_ms + 2);
    written[4].outcome = Outcome::Misfired;
    let order = [
        7, 2, 19, 0, 11, 5, 16, 3, 9, 14, 1, 18, 6, 12, 4, 17, 8, 15, 10, 13,
    ];
    for chunk in order.chunks(6) {
        let batch: Vec<RunRecord> = chunk.iter().map(|&i| written[i].clone()).collect();
        ok(
            ctx.c(0).record_runs(s, batch).await,
            RECORD_ONCE,
            "record_runs",
        );
    }
    let model = |q: &RunQuery| -> Vec<RunRecord> {
        written
            .iter()
            .rev()
            .filter(|r| q.from_ms.is_none_or(|f| r.scheduled_ms >= f))
            .filter(|r| q.before_ms.is_none_or(|b| r.scheduled_ms < b))
            .take(q.limit)
            .cloned()
            .collect()
    };
    let queries = [
        RunQuery::default(),
        RunQuery {
            limit: 5,
            ..Default::default()
        },
        RunQuery {
            from_ms: Some(5_000),
            ..Default::default()
        },
        RunQuery {
            from_ms: Some(5_001),
            ..Default::default()
        },
        RunQuery {
            before_ms: Some(10_000),
            ..Default::default()
        },
        RunQuery {
            from_ms: Some(3_000),
            before_ms: Some(8_000),
            limit: 3,
        },
        RunQuery {
            from_ms: Some(3_000),
            before_ms: Some(8_000),
            limit: 100,
        },
        RunQuery {
            limit: 0,
            ..Default::default()
        },
        RunQuery {
            before_ms: Some(1_000),
            ..Default::default()
        },
        RunQuery {
            from_ms: Some(21_000),
            ..Default::default()
        },
        RunQuery {
            from_ms: Some(9_000),
            before_ms: Some(9_000),
            limit: 10,
        },
    ];
    for query in queries {
        let got = ok(
            ctx.c(1).runs(&job.id, query.clone()).await,
            RUNS_QUERY,
            "runs",
        );
        let want = model(&query);
        check!(
            got == want,
            RUNS_QUERY,
            "{query:?} returned instants {:?}, expected {:?}",
            got.iter().map(|r| r.scheduled_ms).collect::<Vec<_>>(),
            want.iter().map(|r| r.scheduled_ms).collect::<Vec<_>>()
        );
    }
    // Paging with `before_ms` as the cursor.
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = ok(
            ctx.c(0)
                .runs(
                    &job.id,
                    RunQuery {
                        from_ms: None,
                        before_ms: cursor,
                        limit: 7,
                    },
                )
                .await,
            RUNS_QUERY,
            "runs",
        );
        if page.is_empty() {
            break;
        }
        check!(pages.len() < 100, RUNS_QUERY, "paging does not end");
        cursor = page.last().map(|r| r.scheduled_ms);
        pages.extend(page);
    }
    let all = model(&RunQuery::default());
    check!(
        pages == all,
        RUNS_QUERY,
        "paging by 7 with before_ms returned instants {:?}",
        pages.iter().map(|r| r.scheduled_ms).collect::<Vec<_>>()
    );
    ctx.finish().await;
}
