//! The PostgreSQL store: the suite against the server named by `CAMPANILE_TEST_POSTGRES` (a URL, as
//! `scripts/postgres.sh start` prints it), each case in a schema of its own, dropped at the end. Unset, the
//! cases report themselves not run, except under `CI`, where unset is a failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use campanile::history::{HistoryError, HistoryStore};
use campanile_adapters::{CleanupGuard, HistoryFactory, SetupError};
use campanile_history::PostgresStore;

fn url() -> Result<String, SetupError> {
    match std::env::var("CAMPANILE_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Ok(url),
        _ if std::env::var_os("CI").is_some() => Err(SetupError::Failed(
            "CAMPANILE_TEST_POSTGRES is unset under CI".into(),
        )),
        _ => Err(SetupError::Skip(
            "CAMPANILE_TEST_POSTGRES is unset (export CAMPANILE_TEST_POSTGRES=$(scripts/postgres.sh start))"
                .into(),
        )),
    }
}

/// A schema name no other case or run uses.
fn unique_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        campanile::clock::Clock::now_us(&campanile::clock::SystemClock::new()) % 1_000_000_000
    )
}

async fn drop_schema(url: &str, schema: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to drop a test schema");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop a test schema");
}

/// Fresh schemas on the test server.
struct PostgresFactory;

#[async_trait]
impl HistoryFactory for PostgresFactory {
    async fn store(&self) -> Result<(Arc<dyn HistoryStore>, CleanupGuard), SetupError> {
        let url = url()?;
        let schema = unique_schema();
        let store = PostgresStore::connect(&url, &schema)
            .await
            .map_err(SetupError::failed)?;
        let guard = CleanupGuard::none()
            .on_finish(move || Box::pin(async move { drop_schema(&url, &schema).await }));
        Ok((Arc::new(store), guard))
    }
}

mod conformance {
    campanile_adapters::history_suite!(super::PostgresFactory);
}

#[tokio::test]
async fn two_stores_on_one_schema_share_the_history_and_store_each_fire_once() {
    let Ok(url) = url() else {
        // The suite above already reports (or, under CI, fails) a missing server.
        return;
    };
    let schema = unique_schema();
    // Two nodes starting at once both create the schema: neither fails.
    let (a, b) = tokio::join!(
        PostgresStore::connect(&url, &schema),
        PostgresStore::connect(&url, &schema)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let node = campanile::coordinator::NodeId::new("n1").unwrap();
    let job = campanile::JobId::new("j").unwrap();
    let record = campanile::RunRecord::new(
        &campanile::FireId::new(job.clone(), 5),
        &node,
        campanile::Outcome::Succeeded,
    );
    a.append(std::slice::from_ref(&record)).await.unwrap();
    b.append(std::slice::from_ref(&record)).await.unwrap();
    let seen = b
        .job_runs(&job, campanile::history::JobHistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(seen, vec![record]);
    drop_schema(&url, &schema).await;
}

#[tokio::test]
async fn bad_settings_are_refused_naming_the_field() {
    let error = PostgresStore::connect("postgres://app:s3cret@127.0.0.1:1/db", "Bad-Schema")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            HistoryError::Invalid {
                field: "schema",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("Bad-Schema"), "{error}");

    let error = PostgresStore::connect("postgres://app:s3cret@127.0.0.1:notaport/db", "campanile")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("history.store"), "{text}");
    assert!(!text.contains("s3cret"), "the password leaked: {text}");

    // Nothing listens on port 1: unavailable, promptly, without the password.
    let error = PostgresStore::connect("postgres://app:s3cret@127.0.0.1:1/db", "campanile")
        .await
        .unwrap_err();
    assert!(matches!(error, HistoryError::Unavailable { .. }), "{error}");
    assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
}
