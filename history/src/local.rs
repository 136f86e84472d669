//! `LocalStore`: run history in a redb database: a file in the node's data dir (`local`), the in-process
//! backend's own file (`inproc`), or memory.
//!
//! Three tables, all prefixed `history_` so that they can share a file with the in-process backend's own:
//! `history_runs` `(job, scheduled_ms) → record JSON`, the record itself; `history_by_time`
//! `(scheduled_ms, job) → outcome`, the index that serves queries across jobs and retention by age;
//! `history_counts` `job → records held`, so that retention by count visits only jobs over the limit.
//! Each append or prune is one write transaction, so the three always agree.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use campanile::history::{
    HistoryError, HistoryQuery, HistoryResult, HistoryStore, JobHistoryQuery, Pruned, Retention,
};
use campanile::{JobId, Outcome, RunRecord};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const RUNS: TableDefinition<'_, (&str, i64), &[u8]> = TableDefinition::new("history_runs");
const BY_TIME: TableDefinition<'_, (i64, &str), u8> = TableDefinition::new("history_by_time");
const COUNTS: TableDefinition<'_, &str, u64> = TableDefinition::new("history_counts");

/// Run history in a redb database. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct LocalStore {
    db: Arc<Database>,
    kind: &'static str,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("kind", &self.kind)
            .finish()
    }
}

impl LocalStore {
    /// Opens (or creates) the history file at `path` (`local`: `<data dir>/history.redb`).
    pub fn open(path: &Path) -> HistoryResult<Self> {
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|e| {
                HistoryError::unavailable("local", format!("cannot open {}", path.display()), e)
            })?;
        Self::on_database(Arc::new(db), "local")
    }

    /// A store in memory, gone with the process (the in-process backend's memory mode, tests).
    pub fn memory(kind: &'static str) -> HistoryResult<Self> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| {
                HistoryError::unavailable(kind, "cannot create an in-memory database", e)
            })?;
        Self::on_database(Arc::new(db), kind)
    }

    /// A store in the `history_*` tables of an open database that others use too (the in-process backend's
    /// file), reported as `kind`.
    pub fn on_database(db: Arc<Database>, kind: &'static str) -> HistoryResult<Self> {
        let store = Self { db, kind };
        store.write(|txn| {
            txn.open_table(RUNS)?;
            txn.open_table(BY_TIME)?;
            txn.open_table(COUNTS)?;
            Ok(())
        })?;
        Ok(store)
    }

    fn fail(&self, e: impl Into<redb::Error>) -> HistoryError {
        HistoryError::unavailable(self.kind, "redb", e.into())
    }

    /// Runs `f` in one write transaction and commits it.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, Fail>,
    ) -> HistoryResult<T> {
        let txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        let out = f(&txn).map_err(|e| e.into_error(self.kind))?;
        txn.commit().map_err(|e| self.fail(e))?;
        Ok(out)
    }

    /// Runs blocking redb work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(LocalStore) -> HistoryResult<T> + Send + 'static,
    ) -> HistoryResult<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|e| HistoryError::unavailable(self.kind, "history task failed", e))?
    }

    fn append_now(&self, records: &[RunRecord]) -> HistoryResult<()> {
        let encoded = records
            .iter()
            .map(|r| {
                serde_json::to_vec(r)
                    .map(|json| (r, json))
                    .map_err(|e| HistoryError::unavailable(self.kind, "cannot encode a record", e))
            })
            .collect::<HistoryResult<Vec<_>>>()?;
        self.write(|txn| {
            let mut runs = txn.open_table(RUNS)?;
            let mut by_time = txn.open_table(BY_TIME)?;
            let mut counts = txn.open_table(COUNTS)?;
            for (record, json) in &encoded {
                let key = (record.job.as_str(), record.scheduled_ms);
                if runs.get(key)?.is_some() {
                    continue;
                }
                runs.insert(key, json.as_slice())?;
                by_time.insert(
                    (record.scheduled_ms, record.job.as_str()),
                    outcome_code(record.outcome),
                )?;
                let held = counts.get(record.job.as_str())?.map_or(0, |v| v.value());
                counts.insert(record.job.as_str(), held + 1)?;
            }
            Ok(())
        })
    }

    fn job_runs_now(&self, job: &JobId, query: &JobHistoryQuery) -> HistoryResult<Vec<RunRecord>> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let runs = txn.open_table(RUNS).map_err(|e| self.fail(e))?;
        let from = query.runs.from_ms.unwrap_or(i64::MIN);
        let range = match query.runs.before_ms {
            Some(before) if before <= from => return Ok(Vec::new()),
            Some(before) => runs.range((job.as_str(), from)..(job.as_str(), before)),
            None => runs.range((job.as_str(), from)..=(job.as_str(), i64::MAX)),
        }
        .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in range.rev() {
            if out.len() >= query.runs.limit {
                break;
            }
            let (key, value) = row.map_err(|e| self.fail(e))?;
            let record = self.decode(key.value().0, key.value().1, value.value())?;
            if query.outcome.is_none_or(|o| record.outcome == o) {
                out.push(record);
            }
        }
        Ok(out)
    }

    fn runs_now(&self, query: &HistoryQuery) -> HistoryResult<Vec<RunRecord>> {
        if query.limit == 0 || query.jobs.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let by_time = txn.open_table(BY_TIME).map_err(|e| self.fail(e))?;
        let runs = txn.open_table(RUNS).map_err(|e| self.fail(e))?;
        let jobs: Option<HashSet<&str>> = query
            .jobs
            .as_ref()
            .map(|jobs| jobs.iter().map(JobId::as_str).collect());
        let wanted = query.outcome.map(outcome_code);
        let range = match &query.after {
            Some((ms, job)) => by_time.range(..(*ms, job.as_str())),
            None => by_time.range::<(i64, &str)>(..),
        }
        .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in range.rev() {
            if out.len() >= query.limit {
                break;
            }
            let (key, outcome) = row.map_err(|e| self.fail(e))?;
            let (ms, job) = key.value();
            if wanted.is_some_and(|w| w != outcome.value())
                || jobs.as_ref().is_some_and(|jobs| !jobs.contains(job))
            {
                continue;
            }
            let value = runs
                .get((job, ms))
                .map_err(|e| self.fail(e))?
                .ok_or_else(|| HistoryError::Corrupt {
                    store: self.kind,
                    at: format!("{job} at {ms}"),
                    message: "indexed but not stored".into(),
                })?;
            out.push(self.decode(job, ms, value.value())?);
        }
        Ok(out)
    }

    fn decode(&self, job: &str, ms: i64, bytes: &[u8]) -> HistoryResult<RunRecord> {
        serde_json::from_slice(bytes).map_err(|e| HistoryError::Corrupt {
            store: self.kind,
            at: format!("{job} at {ms}"),
            message: e.to_string(),
        })
    }

    fn prune_now(&self, retention: Retention, now_ms: i64) -> HistoryResult<Pruned> {
        let cutoff = retention
            .max_age
            .map(|age| now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)));
        self.write(|txn| {
            let mut runs = txn.open_table(RUNS)?;
            let mut by_time = txn.open_table(BY_TIME)?;
            let mut counts = txn.open_table(COUNTS)?;
            let mut pruned = Pruned::default();
            // Each dropped record: (job, scheduled_ms).
            let mut drop: Vec<(String, i64)> = Vec::new();
            if let Some(cutoff) = cutoff {
                for row in by_time.range::<(i64, &str)>(..(cutoff, ""))? {
                    let (key, _) = row?;
                    let (ms, job) = key.value();
                    drop.push((job.to_owned(), ms));
                }
                pruned.by_age = drop.len() as u64;
            }
            remove(&mut runs, &mut by_time, &mut counts, &drop)?;
            drop.clear();
            let over: Vec<(String, u64)> = counts
                .iter()?
                .filter_map(|row| match row {
                    Ok((job, held)) => (held.value() > retention.limit as u64)
                        .then(|| Ok((job.value().to_owned(), held.value()))),
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()?;
            for (job, held) in over {
                let excess = (held - retention.limit as u64) as usize;
                for row in runs
                    .range((job.as_str(), i64::MIN)..=(job.as_str(), i64::MAX))?
                    .take(excess)
                {
                    let (key, _) = row?;
                    drop.push((job.clone(), key.value().1));
                }
            }
            pruned.by_count = drop.len() as u64;
            remove(&mut runs, &mut by_time, &mut counts, &drop)?;
            Ok(pruned)
        })
    }

    fn forget_now(&self, job: &JobId) -> HistoryResult<()> {
        self.write(|txn| {
            let mut runs = txn.open_table(RUNS)?;
            let mut by_time = txn.open_table(BY_TIME)?;
            let mut counts = txn.open_table(COUNTS)?;
            let mut held = Vec::new();
            for row in runs.range((job.as_str(), i64::MIN)..=(job.as_str(), i64::MAX))? {
                held.push(row?.0.value().1);
            }
            for ms in held {
                runs.remove((job.as_str(), ms))?;
                by_time.remove((ms, job.as_str()))?;
            }
            counts.remove(job.as_str())?;
            Ok(())
        })
    }
}

/// Removes records from all three tables.
fn remove(
    runs: &mut redb::Table<'_, (&'static str, i64), &'static [u8]>,
    by_time: &mut redb::Table<'_, (i64, &'static str), u8>,
    counts: &mut redb::Table<'_, &'static str, u64>,
    records: &[(String, i64)],
) -> Result<(), Fail> {
    for (job, ms) in records {
        if runs.remove((job.as_str(), *ms))?.is_none() {
            continue;
        }
        by_time.remove((*ms, job.as_str()))?;
        let held = counts.get(job.as_str())?.map_or(0, |v| v.value());
        if held <= 1 {
            counts.remove(job.as_str())?;
        } else {
            counts.insert(job.as_str(), held - 1)?;
        }
    }
    Ok(())
}

/// A redb failure inside a transaction.
struct Fail(redb::Error);

impl Fail {
    fn into_error(self, kind: &'static str) -> HistoryError {
        HistoryError::unavailable(kind, "redb", self.0)
    }
}

impl<E: Into<redb::Error>> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail(e.into())
    }
}

/// The outcome as stored in the time index.
fn outcome_code(outcome: Outcome) -> u8 {
    Outcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .map_or(u8::MAX, |i| i as u8)
}

#[async_trait]
impl HistoryStore for LocalStore {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn append(&self, records: &[RunRecord]) -> HistoryResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let records = records.to_vec();
        self.blocking(move |store| store.append_now(&records)).await
    }

    async fn job_runs(&self, job: &JobId, query: JobHistoryQuery) -> HistoryResult<Vec<RunRecord>> {
        let job = job.clone();
        self.blocking(move |store| store.job_runs_now(&job, &query))
            .await
    }

    async fn runs(&self, query: HistoryQuery) -> HistoryResult<Vec<RunRecord>> {
        self.blocking(move |store| store.runs_now(&query)).await
    }

    async fn prune(&self, retention: Retention, now_ms: i64) -> HistoryResult<Pruned> {
        self.blocking(move |store| store.prune_now(retention, now_ms))
            .await
    }

    async fn forget_job(&self, job: &JobId) -> HistoryResult<()> {
        let job = job.clone();
        self.blocking(move |store| store.forget_now(&job)).await
    }
}
