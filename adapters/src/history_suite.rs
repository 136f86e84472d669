//! The history store conformance suite: generic cases over a [`HistoryFactory`], each checking lines of the
//! `### To ensure correctness:` lists of `campanile::history::HistoryStore` and naming the line when a check
//! fails. [`history_suite!`](macro@crate::history_suite) expands to one `#[tokio::test]` per case.
//!
//! What it cannot check: that a store survives a restart (that is the store's own test: a reopened file, a
//! new connection), and retention running in the background (`campanile_history::spawn_retention` has its
//! own test); the cases call [`HistoryStore::prune`] directly.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use campanile::coordinator::{NodeId, RunQuery};
use campanile::history::{
    HistoryError, HistoryQuery, HistoryStore, JobHistoryQuery, Pruned, Retention,
};
use campanile::{FireId, JobId, Outcome, RunRecord};

use crate::factory::{CleanupGuard, SetupError};
use crate::suite::support::not_run;

/// The contract lines, quoted from `campanile::history::HistoryStore`.
pub mod lines {
    /// `append`: visibility.
    pub const APPEND_VISIBLE: &str = "append: after it returns Ok, every record is visible to job_runs and runs (until retention drops it)";
    /// `append`: one record per fire id.
    pub const APPEND_ONCE: &str = "append: at most one record per fire id: a record whose fire id is already stored changes nothing, also when appended concurrently, also within one call";
    /// `append`: several jobs per call.
    pub const APPEND_MANY_JOBS: &str = "append: records of several jobs in one call are all stored; the order of the records does not matter";
    /// `job_runs`: the query.
    pub const JOB_RUNS_QUERY: &str = "job_runs: honours from_ms (at or after), before_ms (strictly before), outcome and then limit";
    /// `job_runs`: round trip.
    pub const JOB_RUNS_EXACT: &str = "job_runs: records come back exactly as appended";
    /// `runs`: the query and its pages.
    pub const RUNS_PAGES: &str = "runs: honours after, outcome, jobs and then limit: following the last record of each page as the next after visits every record once";
    /// `prune`: by count.
    pub const PRUNE_COUNT: &str =
        "prune: afterwards each job holds at most retention.limit records, its newest";
    /// `prune`: by age.
    pub const PRUNE_AGE: &str = "prune: afterwards no record scheduled before now_ms - max_age remains; every newer one within the limit does";
    /// `forget_job`.
    pub const FORGET: &str = "forget_job: afterwards no query returns a record of job; other jobs' records are untouched";

    /// Every line, for the tidy test.
    pub const ALL: &[&str] = &[
        APPEND_VISIBLE,
        APPEND_ONCE,
        APPEND_MANY_JOBS,
        JOB_RUNS_QUERY,
        JOB_RUNS_EXACT,
        RUNS_PAGES,
        PRUNE_COUNT,
        PRUNE_AGE,
        FORGET,
    ];
}

/// Builds fresh, empty history stores of one kind for the suite.
#[async_trait]
pub trait HistoryFactory: Send + Sync {
    /// A fresh, empty store, and what to clean up after the case (a temporary directory, a schema).
    async fn store(&self) -> Result<(Arc<dyn HistoryStore>, CleanupGuard), SetupError>;
}

/// Panics with the contract line that a check found broken.
#[track_caller]
fn fail(line: &str, detail: std::fmt::Arguments<'_>) -> ! {
    panic!("{line}\n    {detail}")
}

#[track_caller]
fn ok<T>(result: Result<T, HistoryError>, line: &str, call: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => fail(line, format_args!("{call} failed unexpectedly: {error}")),
    }
}

/// A fresh store, or `None` (after saying so) when the factory skips the kind.
async fn fresh<F: HistoryFactory + ?Sized>(
    factory: &F,
    case: &str,
) -> Option<(Arc<dyn HistoryStore>, CleanupGuard)> {
    match factory.store().await {
        Ok(store) => Some(store),
        Err(SetupError::Skip(reason)) => {
            not_run(
                case,
                format_args!("the factory skipped the store: {reason}"),
            );
            None
        }
        Err(error) => panic!("{case}: {error}"),
    }
}

fn job(name: &str) -> JobId {
    JobId::new(name).expect("a valid job id")
}

/// A record of `job` at `ms` with `outcome`, with every optional field set so a lossy store shows.
fn record(job_name: &str, ms: i64, outcome: Outcome) -> RunRecord {
    let node = NodeId::new("node-1").expect("a valid node id");
    RunRecord {
        attempt: 1,
        started_ms: Some(ms + 1),
        ended_ms: Some(ms + 7),
        code: Some(3),
        reason: Some(format!("reason at {ms}")),
        output: format!("output of {job_name} at {ms} ✓"),
        ..RunRecord::new(&FireId::new(job(job_name), ms), &node, outcome)
    }
}

fn outcome_of(i: i64) -> Outcome {
    Outcome::ALL[(i as usize) % Outcome::ALL.len()]
}

async fn all_of(store: &dyn HistoryStore, name: &str, line: &str) -> Vec<RunRecord> {
    let query = JobHistoryQuery {
        runs: RunQuery {
            limit: usize::MAX / 2,
            ..RunQuery::default()
        },
        outcome: None,
    };
    ok(store.job_runs(&job(name), query).await, line, "job_runs")
}

fn instants(records: &[RunRecord]) -> Vec<i64> {
    records.iter().map(|r| r.scheduled_ms).collect()
}

/// Appended records come back exactly, newest first, from both queries; one call may carry several jobs.
pub async fn append_then_read_back<F: HistoryFactory + ?Sized>(factory: &F) {
    let Some((store, guard)) = fresh(factory, "append_then_read_back").await else {
        return;
    };
    let batch = vec![
        record("b", 2_000, Outcome::Failed),
        record("a", 1_000, Outcome::Succeeded),
        record("a", 3_000, Outcome::TimedOut),
        RunRecord {
            count: 4,
            last_scheduled_ms: Some(9_000),
            manual: true,
            ..record("a", 6_000, Outcome::Misfired)
        },
    ];
    ok(store.append(&batch).await, lines::APPEND_VISIBLE, "append");
    let a = all_of(&*store, "a", lines::APPEND_VISIBLE).await;
    let expected_a = vec![batch[3].clone(), batch[2].clone(), batch[1].clone()];
    if a != expected_a {
        fail(
            lines::JOB_RUNS_EXACT,
            format_args!("job a: expected {expected_a:?}, got {a:?}"),
        );
    }
    let b = all_of(&*store, "b", lines::APPEND_MANY_JOBS).await;
    if b != vec![batch[0].clone()] {
        fail(lines::APPEND_MANY_JOBS, format_args!("job b: got {b:?}"));
    }
    let every = ok(
        store.runs(HistoryQuery::default()).await,
        lines::APPEND_VISIBLE,
        "runs",
    );
    let expected = vec![
        batch[3].clone(),
        batch[2].clone(),
        batch[0].clone(),
        batch[1].clone(),
    ];
    if every != expected {
        fail(
            lines::APPEND_VISIBLE,
            format_args!("runs: expected {expected:?}, got {every:?}"),
        );
    }
    ok(
        store.append(&[]).await,
        lines::APPEND_VISIBLE,
        "append of nothing",
    );
    drop(store);
    guard.finish().await;
}

/// A second record for a stored fire id changes nothing, whether it comes in a later call, in the same call,
/// or from many callers at once.
pub async fn append_is_idempotent_on_fire_id<F: HistoryFactory + ?Sized>(factory: &F) {
    let Some((store, guard)) = fresh(factory, "append_is_idempotent_on_fire_id").await else {
        return;
    };
    let first = record("a", 1_000, Outcome::Succeeded);
    ok(
        store.append(std::slice::from_ref(&first)).await,
        lines::APPEND_ONCE,
        "append",
    );
    let again = record("a", 1_000, Outcome::InDoubt);
    ok(
        store.append(&[again.clone(), first.clone()]).await,
        lines::APPEND_ONCE,
        "append",
    );
    let in_one_call = [
        record("a", 2_000, Outcome::Failed),
        record("a", 2_000, Outcome::Skipped),
    ];
    ok(
        store.append(&in_one_call).await,
        lines::APPEND_ONCE,
        "append",
    );
    let held = all_of(&*store, "a", lines::APPEND_ONCE).await;
    if held != vec![in_one_call[0].clone(), first.clone()] {
        fail(
            lines::APPEND_ONCE,
            format_args!("expected the first record of each fire id, got {held:?}"),
        );
    }

    // Many writers deliver the same 40 records at once (at-least-once delivery from several retries).
    let batch: Vec<RunRecord> = (0..40)
        .map(|i| record("c", 10_000 + i, outcome_of(i)))
        .collect();
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let store = Arc::clone(&store);
            let mut batch = batch.clone();
            batch.rotate_left(w * 7);
            tokio::spawn(async move { store.append(&batch).await })
        })
        .collect();
    for writer in writers {
        ok(
            writer.await.expect("writer task"),
            lines::APPEND_ONCE,
            "concurrent append",
        );
    }
    let held = all_of(&*store, "c", lines::APPEND_ONCE).await;
    let mut expected = batch.clone();
    expected.reverse();
    if held != expected {
        fail(
            lines::APPEND_ONCE,
            format_args!(
                "after 6 concurrent appends of 40 records: {} held, instants {:?}",
                held.len(),
                instants(&held)
            ),
        );
    }
    drop(store);
    guard.finish().await;
}

/// `job_runs` honours every field of its query, and `before_ms` pages through a job's history.
pub async fn job_runs_honours_query<F: HistoryFactory + ?Sized>(factory: &F) {
    let Some((store, guard)) = fresh(factory, "job_runs_honours_query").await else {
        return;
    };
    // 30 records at 1 s .. 30 s, outcomes cycling; another job in between to show it stays out.
    let records: Vec<RunRecord> = (1..=30)
        .map(|i| record("a", i * 1_000, outcome_of(i)))
        .collect();
    ok(
        store.append(&records).await,
        lines::JOB_RUNS_QUERY,
        "append",
    );
    ok(
        store
            .append(&[record("a-other", 5_000, Outcome::Succeeded)])
            .await,
        lines::JOB_RUNS_QUERY,
        "append",
    );
    let query = |from_ms, before_ms, limit, outcome| JobHistoryQuery {
        runs: RunQuery {
            from_ms,
            before_ms,
            limit,
        },
        outcome,
    };
    let cases: Vec<(JobHistoryQuery, Vec<i64>)> = vec![
        (query(None, None, 3, None), vec![30_000, 29_000, 28_000]),
        (
            query(Some(27_000), None, 100, None),
            vec![30_000, 29_000, 28_000, 27_000],
        ),
        (query(None, Some(3_000), 100, None), vec![2_000, 1_000]),
        (
            query(Some(10_000), Some(13_000), 100, None),
            vec![12_000, 11_000, 10_000],
        ),
        (query(Some(10_000), Some(10_000), 100, None), vec![]),
        (query(None, None, 0, None), vec![]),
        // Outcome before limit: 3 records of the outcome, not those among the newest 3.
        (
            query(None, None, 3, Some(Outcome::Succeeded)),
            vec![30_000, 24_000, 18_000],
        ),
        (
            query(Some(10_000), Some(25_000), 100, Some(Outcome::Failed)),
            vec![19_000, 13_000],
        ),
    ];
    for (query, expected) in cases {
        let got = ok(
            store.job_runs(&job("a"), query.clone()).await,
            lines::JOB_RUNS_QUERY,
            "job_runs",
        );
        if instants(&got) != expected {
            fail(
                lines::JOB_RUNS_QUERY,
                format_args!("{query:?}: expected {expected:?}, got {:?}", instants(&got)),
            );
        }
    }
    // Pages of 7 through `before_ms` visit all 30 once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = ok(
            store
                .job_runs(&job("a"), query(None, before, 7, None))
                .await,
            lines::JOB_RUNS_QUERY,
            "job_runs",
        );
        seen.extend(instants(&page));
        match page.last() {
            Some(last) if page.len() == 7 => before = Some(last.scheduled_ms),
            _ => break,
        }
    }
    let expected: Vec<i64> = (1..=30).rev().map(|i| i * 1_000).collect();
    if seen != expected {
        fail(
            lines::JOB_RUNS_QUERY,
            format_args!("pages of 7 gave {seen:?}"),
        );
    }
    drop(store);
    guard.finish().await;
}

/// `runs` orders by `(scheduled_ms, job)` newest first, filters by outcome and jobs, and its pages visit every
/// record once, also when several jobs share an instant.
pub async fn runs_pages_across_jobs<F: HistoryFactory + ?Sized>(factory: &F) {
    let Some((store, guard)) = fresh(factory, "runs_pages_across_jobs").await else {
        return;
    };
    // Names whose byte order differs from a locale's ("B" < "a" < "a.b" < "a_b" < "b" in bytes).
    let names = ["B", "a", "a.b", "a_b", "b"];
    let mut records = Vec::new();
    for s in 0..6i64 {
        for (n, name) in names.iter().enumerate() {
            records.push(record(name, s * 1_000, outcome_of(s + n as i64)));
            if *name != "a.b" {
                // A second instant in the same second for most jobs.
                records.push(record(name, s * 1_000 + 1, outcome_of(s * n as i64)));
            }
        }
    }
    ok(store.append(&records).await, lines::RUNS_PAGES, "append");

    let order = |rs: &mut Vec<RunRecord>| {
        rs.sort_by(|x, y| (y.scheduled_ms, y.job.as_str()).cmp(&(x.scheduled_ms, x.job.as_str())))
    };
    let filters: Vec<(Option<Outcome>, Option<Vec<JobId>>)> = vec![
        (None, None),
        (Some(Outcome::Failed), None),
        (None, Some(vec![job("a"), job("b"), job("missing")])),
        (Some(Outcome::Succeeded), Some(vec![job("B"), job("a_b")])),
        (None, Some(vec![])),
    ];
    for (outcome, jobs) in filters {
        let mut expected: Vec<RunRecord> = records
            .iter()
            .filter(|r| outcome.is_none_or(|o| r.outcome == o))
            .filter(|r| jobs.as_ref().is_none_or(|js| js.contains(&r.job)))
            .cloned()
            .collect();
        order(&mut expected);
        for limit in [1, 4, 1000] {
            let mut seen = Vec::new();
            let mut after = None;
            for _ in 0..=records.len() {
                let page = ok(
                    store
                        .runs(HistoryQuery {
                            after: after.clone(),
                            outcome,
                            jobs: jobs.clone(),
                            limit,
                        })
                        .await,
                    lines::RUNS_PAGES,
                    "runs",
                );
                if page.len() > limit {
                    fail(
                        lines::RUNS_PAGES,
                        format_args!("limit {limit}: a page of {}", page.len()),
                    );
                }
                let last = page.last().map(|r| (r.scheduled_ms, r.job.clone()));
                let full = page.len() == limit;
                seen.extend(page);
                match last {
                    Some(last) if full => after = Some(last),
                    _ => break,
                }
            }
            if seen != expected {
                let show = |rs: &[RunRecord]| {
                    rs.iter()
                        .map(|r| format!("{}@{}", r.job, r.scheduled_ms))
                        .collect::<Vec<_>>()
                };
                fail(
                    lines::RUNS_PAGES,
                    format_args!(
                        "outcome {outcome:?}, jobs {jobs:?}, pages of {limit}: expected {:?}, got {:?}",
                        show(&expected),
                        show(&seen)
                    ),
                );
            }
        }
    }
    drop(store);
    guard.finish().await;
}

/// Retention by count keeps each job's newest `limit` records.
pub async fn prune_keeps_newest_per_job<F: HistoryFactory + ?Sized>(factory: &F) {
    let Some((store, guard)) = fresh(factory, "prune_keeps_newest_per_job").await else {
        return;
    };
    let mut records: Vec<RunRecord> = (1..=12)
        .map(|i| record("a", i * 1_000, Outcome::Succeeded))
        .collect();
    records.extend((1..=3).map(|i| record("b", i * 1_000, Outcome::Failed)));
    ok(store.append(&records).await, lines::PRUNE_COUNT, "append");
    let retention = Retention {
        limit: 5,
        max_age: None,
    };
    let pruned = ok(store.prune(retention, 0).await, lines::PRUNE_COUNT, "prune");
    let a = instants(&all_of(&*store, "a", lines::PRUNE_COUNT).await);
    let b = instants(&all_of(&*store, "b", lines::PRUNE_COUNT).await);
    if a != vec![12_000, 11_000, 10_000, 9_000, 8_000] || b != vec![3_000, 2_000, 1_000] {
        fail(
            lines::PRUNE_COUNT,
            format_args!("limit 5: job a holds {a:?}, job b {b:?}"),
        );
    }
    if pruned
        != (Pruned {
            by_count: 7,
            by_age: 0,
        })
    {
        fail(
            lines::PRUNE_COUNT,
            format_args!("reported {pruned:?}, 7 by count were dropped"),
        );
    }
    // A record appended after a prune counts against the limit at the next one, and the store's
    // idea of how many a job holds stays right across prunes.
    ok(
        store
            .append(&[
                record("a", 13_000, Outcome::Succeeded),
                record("a", 1_000, Outcome::Succeeded),
            ])
            .await,
        lines::PRUNE_COUNT,
        "append",
    );
    ok(store.prune(retention, 0).await, lines::PRUNE_COUNT, "prune");
    let a = instants(&all_of(&*store, "a", lines::PRUNE_COUNT).await);
    if a != vec![13_000, 12_000, 11_000, 10_000, 9_000] {
        fail(
            lines::PRUNE_COUNT,
            format_args!("second prune: job a holds {a:?}"),
        );
    }
    let again = ok(store.prune(retention, 0).await, lines::PRUNE_COUNT, "prune");
    if again != Pruned::default() {
        fail(
            lines::PRUNE_COUNT,
            format_args!("a prune with nothing to drop reported {again:?}"),
        );
    }
    drop(store);
    guard.finish().await;
}

/// Retention by age drops what was scheduled before `now - max_age`, across jobs, and keeps the rest.
pub async fn prune_drops_older_than_max_age<F: HistoryFactory + ?Sized>(factory: &F) {
    let Some((store, guard)) = fresh(factory, "prune_drops_older_than_max_age").await else {
        return;
    };
    let now = 1_700_000_000_000i64;
    let mut records = Vec::new();
    for name in ["a", "b"] {
        records.extend((0..10).map(|s| record(name, now - s * 1_000, Outcome::Succeeded)));
    }
    ok(store.append(&records).await, lines::PRUNE_AGE, "append");
    let retention = Retention {
        limit: 1000,
        max_age: Some(Duration::from_secs(5)),
    };
    let pruned = ok(store.prune(retention, now).await, lines::PRUNE_AGE, "prune");
    let kept: Vec<i64> = (0..=5).map(|s| now - s * 1_000).collect();
    for name in ["a", "b"] {
        let held = instants(&all_of(&*store, name, lines::PRUNE_AGE).await);
        if held != kept {
            fail(
                lines::PRUNE_AGE,
                format_args!("max_age 5s at {now}: job {name} holds {held:?}, expected {kept:?}"),
            );
        }
    }
    if pruned.by_age != 8 {
        fail(
            lines::PRUNE_AGE,
            format_args!("reported {pruned:?}, 8 by age were dropped"),
        );
    }
    let every = ok(
        store.runs(HistoryQuery::default()).await,
        lines::PRUNE_AGE,
        "runs",
    );
    if every.len() != 12 {
        fail(
            lines::PRUNE_AGE,
            format_args!("runs after the prune holds {}", every.len()),
        );
    }
    drop(store);
    guard.finish().await;
}

/// `forget_job` drops one job's records and nothing else.
pub async fn forget_job_drops_only_that_job<F: HistoryFactory + ?Sized>(factory: &F) {
    let Some((store, guard)) = fresh(factory, "forget_job_drops_only_that_job").await else {
        return;
    };
    let records: Vec<RunRecord> = (1..=5)
        .flat_map(|i| {
            [
                record("a", i * 1_000, Outcome::Succeeded),
                record("ab", i * 1_000, Outcome::Failed),
            ]
        })
        .collect();
    ok(store.append(&records).await, lines::FORGET, "append");
    ok(
        store.forget_job(&job("a")).await,
        lines::FORGET,
        "forget_job",
    );
    let a = all_of(&*store, "a", lines::FORGET).await;
    let ab = all_of(&*store, "ab", lines::FORGET).await;
    let every = ok(
        store.runs(HistoryQuery::default()).await,
        lines::FORGET,
        "runs",
    );
    if !a.is_empty()
        || ab.len() != 5
        || every.iter().any(|r| r.job.as_str() == "a")
        || every.len() != 5
    {
        fail(
            lines::FORGET,
            format_args!(
                "after forgetting a: a holds {}, ab holds {}, runs returns {}",
                a.len(),
                ab.len(),
                every.len()
            ),
        );
    }
    // Appending again after forgetting starts a fresh history, with a count that retention can trust.
    ok(store.append(&records[..2]).await, lines::FORGET, "append");
    ok(
        store
            .prune(
                Retention {
                    limit: 1,
                    max_age: None,
                },
                0,
            )
            .await,
        lines::FORGET,
        "prune",
    );
    let a = instants(&all_of(&*store, "a", lines::FORGET).await);
    if a != vec![1_000] {
        fail(
            lines::FORGET,
            format_args!("re-appended and pruned to 1: a holds {a:?}"),
        );
    }
    drop(store);
    guard.finish().await;
}
