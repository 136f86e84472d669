//! `PostgresStore`: run history in a shared PostgreSQL database, one table per schema.
//!
//! The table `<schema>.runs` has the fire id `(job, scheduled_ms)` as its primary key, so an append is an
//! `INSERT … ON CONFLICT DO NOTHING` and a record delivered twice (by one node retrying, or by two) is stored
//! once. `job` uses the `C` collation so that rows sort by bytes, the order the runs API's cursor and the
//! other stores use. An index on `(scheduled_ms, job)` serves queries across jobs and retention by age.
//! The connection is plain TCP or a Unix socket (no TLS): keep PostgreSQL on a trusted network.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use campanile::history::{
    HistoryError, HistoryQuery, HistoryResult, HistoryStore, JobHistoryQuery, Pruned, Retention,
};
use campanile::{JobId, RunRecord};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};
use tracing::warn;

/// Connection attempts give up after this long unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema used when none is given.
pub const DEFAULT_SCHEMA: &str = "campanile";

/// Run history in PostgreSQL. Reconnects by itself when the connection drops.
pub struct PostgresStore {
    config: tokio_postgres::Config,
    /// The schema-qualified table, quoted.
    table: String,
    client: Mutex<Option<Arc<Client>>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the config: it may hold a password.
        f.debug_struct("PostgresStore")
            .field("table", &self.table)
            .finish()
    }
}

fn unavailable(message: &str, e: tokio_postgres::Error) -> HistoryError {
    HistoryError::unavailable("postgres", message, e)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`, libpq's URL or `key=value` form) and creates
    /// `schema` and its table if they are missing. `schema`: 1 to 63 characters of `[a-z0-9_]`, not
    /// starting with a digit.
    pub async fn connect(url: &str, schema: &str) -> HistoryResult<Self> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| {
                // The error never echoes the URL, which may hold a password.
                HistoryError::Invalid {
                    field: "history.store",
                    value: redact_url(url),
                    reason: e.to_string(),
                }
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && !schema.starts_with(|c: char| c.is_ascii_digit())
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(HistoryError::Invalid {
                field: "schema",
                value: schema.to_owned(),
                reason: "expected 1 to 63 characters of [a-z0-9_], not starting with a digit"
                    .into(),
            });
        }
        let store = Self {
            config,
            table: format!("\"{schema}\".runs"),
            client: Mutex::new(None),
        };
        let client = store.client().await?;
        // Nodes starting together must not race on CREATE: one advisory lock serializes them.
        let ddl = format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(7230419813);
             CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             CREATE TABLE IF NOT EXISTS {table} (
                 job TEXT COLLATE \"C\" NOT NULL,
                 scheduled_ms BIGINT NOT NULL,
                 outcome TEXT NOT NULL,
                 record TEXT NOT NULL,
                 PRIMARY KEY (job, scheduled_ms)
             );
             CREATE INDEX IF NOT EXISTS runs_by_time ON {table} (scheduled_ms, job);
             COMMIT;",
            table = store.table
        );
        client
            .batch_execute(&ddl)
            .await
            .map_err(|e| unavailable("cannot create the history table", e))?;
        Ok(store)
    }

    /// The open connection, or a new one if there is none or it dropped.
    async fn client(&self) -> HistoryResult<Arc<Client>> {
        let mut held = self.client.lock().await;
        if let Some(client) = held.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| unavailable("cannot connect", e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(error = %e, "history store connection to postgres ended");
            }
        });
        let client = Arc::new(client);
        *held = Some(client.clone());
        Ok(client)
    }

    fn decode(row: &tokio_postgres::Row) -> HistoryResult<RunRecord> {
        let text: &str = row.get(0);
        serde_json::from_str(text).map_err(|e| HistoryError::Corrupt {
            store: "postgres",
            at: format!("a row of {}", text.chars().take(80).collect::<String>()),
            message: e.to_string(),
        })
    }
}

/// `url` without its password, for error messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ if url.contains("password") => "(a connection string with a password)".into(),
        _ => url.to_owned(),
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl HistoryStore for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn append(&self, records: &[RunRecord]) -> HistoryResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut jobs = Vec::with_capacity(records.len());
        let mut instants = Vec::with_capacity(records.len());
        let mut outcomes = Vec::with_capacity(records.len());
        let mut json = Vec::with_capacity(records.len());
        for record in records {
            jobs.push(record.job.as_str());
            instants.push(record.scheduled_ms);
            outcomes.push(record.outcome.as_str());
            json.push(
                serde_json::to_string(record).map_err(|e| {
                    HistoryError::unavailable("postgres", "cannot encode a record", e)
                })?,
            );
        }
        let sql = format!(
            "INSERT INTO {} (job, scheduled_ms, outcome, record)
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[])
             ON CONFLICT (job, scheduled_ms) DO NOTHING",
            self.table
        );
        self.client()
            .await?
            .execute(&sql, &[&jobs, &instants, &outcomes, &json])
            .await
            .map_err(|e| unavailable("cannot append records", e))?;
        Ok(())
    }

    async fn job_runs(&self, job: &JobId, query: JobHistoryQuery) -> HistoryResult<Vec<RunRecord>> {
        let sql = format!(
            "SELECT record FROM {} WHERE job = $1
               AND ($2::int8 IS NULL OR scheduled_ms >= $2)
               AND ($3::int8 IS NULL OR scheduled_ms < $3)
               AND ($4::text IS NULL OR outcome = $4)
             ORDER BY scheduled_ms DESC LIMIT $5",
            self.table
        );
        let outcome = query.outcome.map(|o| o.as_str());
        let rows = self
            .client()
            .await?
            .query(
                &sql,
                &[
                    &job.as_str(),
                    &query.runs.from_ms,
                    &query.runs.before_ms,
                    &outcome,
                    &limit(query.runs.limit),
                ],
            )
            .await
            .map_err(|e| unavailable("cannot read a job's runs", e))?;
        rows.iter().map(Self::decode).collect()
    }

    async fn runs(&self, query: HistoryQuery) -> HistoryResult<Vec<RunRecord>> {
        let sql = format!(
            "SELECT record FROM {} WHERE ($1::int8 IS NULL OR (scheduled_ms, job) < ($1, $2::text))
               AND ($3::text IS NULL OR outcome = $3)
               AND ($4::text[] IS NULL OR job = ANY($4))
             ORDER BY scheduled_ms DESC, job DESC LIMIT $5",
            self.table
        );
        let (after_ms, after_job) = match &query.after {
            Some((ms, job)) => (Some(*ms), Some(job.as_str())),
            None => (None, None),
        };
        let outcome = query.outcome.map(|o| o.as_str());
        let jobs: Option<Vec<&str>> = query
            .jobs
            .as_ref()
            .map(|jobs| jobs.iter().map(JobId::as_str).collect());
        let rows = self
            .client()
            .await?
            .query(
                &sql,
                &[&after_ms, &after_job, &outcome, &jobs, &limit(query.limit)],
            )
            .await
            .map_err(|e| unavailable("cannot read runs", e))?;
        rows.iter().map(Self::decode).collect()
    }

    async fn prune(&self, retention: Retention, now_ms: i64) -> HistoryResult<Pruned> {
        let client = self.client().await?;
        let mut pruned = Pruned::default();
        if let Some(age) = retention.max_age {
            let cutoff = now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
            let sql = format!("DELETE FROM {} WHERE scheduled_ms < $1", self.table);
            pruned.by_age = client
                .execute(&sql, &[&cutoff])
                .await
                .map_err(|e| unavailable("cannot prune by age", e))?;
        }
        let sql = format!(
            "DELETE FROM {t} AS r USING (
                 SELECT job, scheduled_ms FROM (
                     SELECT job, scheduled_ms,
                            row_number() OVER (PARTITION BY job ORDER BY scheduled_ms DESC) AS n
                     FROM {t}) AS ranked
                 WHERE n > $1) AS old
             WHERE r.job = old.job AND r.scheduled_ms = old.scheduled_ms",
            t = self.table
        );
        pruned.by_count = client
            .execute(&sql, &[&limit(retention.limit)])
            .await
            .map_err(|e| unavailable("cannot prune by count", e))?;
        Ok(pruned)
    }

    async fn forget_job(&self, job: &JobId) -> HistoryResult<()> {
        let sql = format!("DELETE FROM {} WHERE job = $1", self.table);
        self.client()
            .await?
            .execute(&sql, &[&job.as_str()])
            .await
            .map_err(|e| unavailable("cannot forget a job", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_hides_the_password() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/runs"),
            "postgres://app:***@db:5432/runs"
        );
        assert_eq!(
            redact_url("host=db password=s3cret"),
            "(a connection string with a password)"
        );
        assert_eq!(redact_url("postgres://db/runs"), "postgres://db/runs");
    }
}
