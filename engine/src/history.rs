//! The `HistoryStore` trait: where run records live for reading, apart from the coordinator.
//!
//! The coordinator decides each fire's one record (fencing, settlement); once it accepted a record, the
//! record is copied to a history store, which answers the runs API and keeps the history for as long as
//! [`Retention`] says. Stores live in `campanile-history` (node-local redb, PostgreSQL); the in-process backend
//! keeps its history in its own redb file. A node given a store (`Builder::history`) copies every record the
//! coordinator accepted into it through a `Feed` (`history/feed.rs`). The trait sits here, beside [`RunRecord`] and [`RunQuery`], so that
//! the engine can hand records to a store without depending on any database crate. Every store passes the
//! history conformance suite of `campanile-adapters`, which checks each line of the lists below.

mod feed;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::coordinator::RunQuery;
use crate::job::JobId;
use crate::run::{Outcome, RunRecord};

pub use feed::{Feed, MAX_QUEUED};

/// Why a history store call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The store could not be reached or failed to answer (a database down, an IO error). Retry later: an
    /// [`HistoryStore::append`] that failed so may or may not have stored its records, and appending them
    /// again is harmless.
    #[error("history store {store} unavailable: {message}")]
    Unavailable {
        /// The store's kind (`local`, `postgres`, `inproc`).
        store: &'static str,
        /// What failed.
        message: String,
        /// The store's own error, if any.
        #[source]
        source: Option<crate::coordinator::Source>,
    },
    /// A stored record could not be read back (a damaged file or row). Names where it was found.
    #[error("history store {store}: corrupt record at {at}: {message}")]
    Corrupt {
        /// The store's kind.
        store: &'static str,
        /// Where: the job and instant, or the table.
        at: String,
        /// What is wrong with it.
        message: String,
    },
    /// A query the store cannot answer as asked, naming the field and value.
    #[error("{field}: {value:?}: {reason}")]
    Invalid {
        /// The field of the query.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
}

impl HistoryError {
    /// An [`HistoryError::Unavailable`] with the store's own error as its source.
    pub fn unavailable(
        store: &'static str,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        HistoryError::Unavailable {
            store,
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }
}

/// Result of a history store call.
pub type HistoryResult<T> = Result<T, HistoryError>;

/// A page of one job's history: [`RunQuery`] plus an outcome filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobHistoryQuery {
    /// The instants and the page size (newest first).
    pub runs: RunQuery,
    /// Only records with this outcome. Applied before `limit`: a page holds `limit` matching records unless
    /// there are no more.
    pub outcome: Option<Outcome>,
}

/// A page of run records across jobs, newest first by `(scheduled_ms, job)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only records strictly older than this `(scheduled_ms, job)` (the previous page's last record).
    pub after: Option<(i64, JobId)>,
    /// Only records with this outcome.
    pub outcome: Option<Outcome>,
    /// Only records of these jobs (a namespace's jobs); `None` for every job.
    pub jobs: Option<Vec<JobId>>,
    /// At most this many records.
    pub limit: usize,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        Self {
            after: None,
            outcome: None,
            jobs: None,
            limit: 100,
        }
    }
}

/// How much history a store keeps. Both bounds apply: a record goes when either says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Per job, the newest this many records (by scheduled instant) are kept (`history_limit`).
    pub limit: usize,
    /// Records scheduled more than this long before now are dropped (`history_max_age`); `None` keeps them.
    pub max_age: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            limit: 1000,
            max_age: None,
        }
    }
}

/// What one [`HistoryStore::prune`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Records dropped because their job had more than `limit` newer ones.
    pub by_count: u64,
    /// Records dropped because they were older than `max_age`.
    pub by_age: u64,
}

/// Where run records are kept for reading. Object-safe: use `Arc<dyn HistoryStore>`.
///
/// ### To ensure correctness:
/// - Many nodes may share one store (PostgreSQL), or each may have its own (`local`); a store never needs
///   to know which node wrote a record.
/// - Every method may be called concurrently with every other.
#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// A short name of the store for logs and errors (`local`, `postgres`, `inproc`).
    fn kind(&self) -> &'static str;

    /// Stores records the coordinator accepted. Delivery is at least once: the same record may come again.
    ///
    /// ### To ensure correctness:
    /// - After it returns `Ok`, every record is visible to [`HistoryStore::job_runs`] and
    ///   [`HistoryStore::runs`] (until retention drops it).
    /// - At most one record per fire id (`job`, `scheduled_ms`): a record whose fire id is already stored
    ///   changes nothing, also when appended concurrently, also within one call.
    /// - Records of several jobs in one call are all stored; the order of the records does not matter.
    async fn append(&self, records: &[RunRecord]) -> HistoryResult<()>;

    /// One job's records, newest first by scheduled instant.
    ///
    /// ### To ensure correctness:
    /// - Honours `from_ms` (at or after), `before_ms` (strictly before), `outcome` and then `limit`.
    /// - Records come back exactly as appended.
    async fn job_runs(&self, job: &JobId, query: JobHistoryQuery) -> HistoryResult<Vec<RunRecord>>;

    /// Records across jobs, newest first by `(scheduled_ms, job)`.
    ///
    /// ### To ensure correctness:
    /// - Honours `after` (strictly older in that order), `outcome`, `jobs` and then `limit`: following the
    ///   last record of each page as the next `after` visits every record once.
    async fn runs(&self, query: HistoryQuery) -> HistoryResult<Vec<RunRecord>>;

    /// Drops what `retention` no longer keeps, as of wall time `now_ms`. Called in the background by
    /// `campanile_history::spawn_retention`, and safe to call at any time.
    ///
    /// ### To ensure correctness:
    /// - Afterwards each job holds at most `retention.limit` records, its newest.
    /// - Afterwards no record scheduled before `now_ms - max_age` remains; every newer one within the limit does.
    async fn prune(&self, retention: Retention, now_ms: i64) -> HistoryResult<Pruned>;

    /// Drops every record of a deleted job.
    ///
    /// ### To ensure correctness:
    /// - Afterwards no query returns a record of `job`; other jobs' records are untouched.
    async fn forget_job(&self, job: &JobId) -> HistoryResult<()>;
}

#[async_trait]
impl<T: HistoryStore + ?Sized> HistoryStore for Arc<T> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    async fn append(&self, records: &[RunRecord]) -> HistoryResult<()> {
        (**self).append(records).await
    }
    async fn job_runs(&self, job: &JobId, query: JobHistoryQuery) -> HistoryResult<Vec<RunRecord>> {
        (**self).job_runs(job, query).await
    }
    async fn runs(&self, query: HistoryQuery) -> HistoryResult<Vec<RunRecord>> {
        (**self).runs(query).await
    }
    async fn prune(&self, retention: Retention, now_ms: i64) -> HistoryResult<Pruned> {
        (**self).prune(retention, now_ms).await
    }
    async fn forget_job(&self, job: &JobId) -> HistoryResult<()> {
        (**self).forget_job(job).await
    }
}
