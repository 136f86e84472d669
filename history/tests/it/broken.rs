//! The suite can fail: each case run against a store broken in the way it checks panics with its line.

use std::sync::Arc;

use async_trait::async_trait;
use campanile::history::{
    HistoryQuery, HistoryResult, HistoryStore, JobHistoryQuery, Pruned, Retention,
};
use campanile::{JobId, RunRecord};
use campanile_adapters::history_suite::{self, lines};
use campanile_adapters::{CleanupGuard, HistoryFactory, SetupError};
use campanile_history::LocalStore;

/// How a store is broken.
#[derive(Clone, Copy, Debug)]
enum Break {
    /// Drops each record's output.
    Lossy,
    /// A later record for a fire id replaces the stored one.
    LastWins,
    /// Ignores the outcome filter of `job_runs`.
    IgnoresOutcome,
    /// Ignores `after` in `runs`.
    IgnoresAfter,
    /// Never prunes.
    NeverPrunes,
    /// Never forgets.
    NeverForgets,
}

struct Broken {
    inner: LocalStore,
    broken: Break,
}

#[async_trait]
impl HistoryStore for Broken {
    fn kind(&self) -> &'static str {
        "broken"
    }
    async fn append(&self, records: &[RunRecord]) -> HistoryResult<()> {
        match self.broken {
            Break::Lossy => {
                let lossy: Vec<RunRecord> = records
                    .iter()
                    .map(|r| RunRecord {
                        output: String::new(),
                        ..r.clone()
                    })
                    .collect();
                self.inner.append(&lossy).await
            }
            Break::LastWins => {
                for record in records {
                    let stored = self
                        .inner
                        .job_runs(&record.job, JobHistoryQuery::default())
                        .await?;
                    if stored.iter().any(|r| r.scheduled_ms == record.scheduled_ms) {
                        // Rewrite the job without the old record, then with the new one.
                        let keep: Vec<RunRecord> = stored
                            .into_iter()
                            .filter(|r| r.scheduled_ms != record.scheduled_ms)
                            .collect();
                        self.inner.forget_job(&record.job).await?;
                        self.inner.append(&keep).await?;
                    }
                    self.inner.append(std::slice::from_ref(record)).await?;
                }
                Ok(())
            }
            _ => self.inner.append(records).await,
        }
    }
    async fn job_runs(
        &self,
        job: &JobId,
        mut query: JobHistoryQuery,
    ) -> HistoryResult<Vec<RunRecord>> {
        if let Break::IgnoresOutcome = self.broken {
            query.outcome = None;
        }
        self.inner.job_runs(job, query).await
    }
    async fn runs(&self, mut query: HistoryQuery) -> HistoryResult<Vec<RunRecord>> {
        if let Break::IgnoresAfter = self.broken {
            query.after = None;
        }
        self.inner.runs(query).await
    }
    async fn prune(&self, retention: Retention, now_ms: i64) -> HistoryResult<Pruned> {
        match self.broken {
            Break::NeverPrunes => Ok(Pruned::default()),
            _ => self.inner.prune(retention, now_ms).await,
        }
    }
    async fn forget_job(&self, job: &JobId) -> HistoryResult<()> {
        match self.broken {
            Break::NeverForgets => Ok(()),
            _ => self.inner.forget_job(job).await,
        }
    }
}

struct BrokenFactory(Break);

#[async_trait]
impl HistoryFactory for BrokenFactory {
    async fn store(&self) -> Result<(Arc<dyn HistoryStore>, CleanupGuard), SetupError> {
        let inner = LocalStore::memory("broken").map_err(SetupError::failed)?;
        Ok((
            Arc::new(Broken {
                inner,
                broken: self.0,
            }),
            CleanupGuard::none(),
        ))
    }
}

/// Runs `case` on a store broken by `broken` and returns its panic message (None when it passed).
async fn failure<Fut>(case: fn(&'static BrokenFactory) -> Fut, broken: Break) -> Option<String>
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let factory: &'static BrokenFactory = Box::leak(Box::new(BrokenFactory(broken)));
    match tokio::spawn(case(factory)).await {
        Ok(()) => None,
        Err(e) => {
            let panic = e.into_panic();
            Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            )
        }
    }
}

macro_rules! expect_caught {
    ($case:ident, $broken:expr, $line:expr) => {{
        let message = failure(|f| history_suite::$case(f), $broken).await;
        let message = message.unwrap_or_else(|| {
            panic!(
                "{} passed on a store that breaks it: {:?}",
                stringify!($case),
                $broken
            )
        });
        assert!(
            message.starts_with($line),
            "{}: {message}",
            stringify!($case)
        );
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_catches_the_break_it_checks() {
    expect_caught!(append_then_read_back, Break::Lossy, lines::JOB_RUNS_EXACT);
    expect_caught!(
        append_is_idempotent_on_fire_id,
        Break::LastWins,
        lines::APPEND_ONCE
    );
    expect_caught!(
        job_runs_honours_query,
        Break::IgnoresOutcome,
        lines::JOB_RUNS_QUERY
    );
    expect_caught!(
        runs_pages_across_jobs,
        Break::IgnoresAfter,
        lines::RUNS_PAGES
    );
    expect_caught!(
        prune_keeps_newest_per_job,
        Break::NeverPrunes,
        lines::PRUNE_COUNT
    );
    expect_caught!(
        prune_drops_older_than_max_age,
        Break::NeverPrunes,
        lines::PRUNE_AGE
    );
    expect_caught!(
        forget_job_drops_only_that_job,
        Break::NeverForgets,
        lines::FORGET
    );
}

#[test]
fn every_line_is_checked_by_a_case_here() {
    // The lines the cases above name, plus those checked only alongside another (visibility, several jobs
    // per call: append_then_read_back).
    let named = [
        lines::JOB_RUNS_EXACT,
        lines::APPEND_ONCE,
        lines::JOB_RUNS_QUERY,
        lines::RUNS_PAGES,
        lines::PRUNE_COUNT,
        lines::PRUNE_AGE,
        lines::FORGET,
        lines::APPEND_VISIBLE,
        lines::APPEND_MANY_JOBS,
    ];
    for line in lines::ALL {
        assert!(named.contains(line), "no case is shown to catch {line:?}");
    }
}
