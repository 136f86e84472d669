//! `[history] store = "postgres://…"`: a node copies its records into the PostgreSQL named by
//! `CAMPANILE_TEST_POSTGRES`, the runs API reads them from there, and deleting the job deletes them. Outside CI
//! an unset `CAMPANILE_TEST_POSTGRES` skips the test with a notice; under `CI` it fails.

use campanile::coordinator::{NodeId, RunQuery};
use campanile::history::{HistoryStore, JobHistoryQuery};
use campanile::{FireId, JobId, Outcome, RunRecord};
use campanile_history::{DEFAULT_SCHEMA, PostgresStore};
use reqwest::Method;

use super::harness::{Options, Server, eventually, every_second, now_ms};

fn postgres_url() -> Option<String> {
    match std::env::var("CAMPANILE_TEST_POSTGRES") {
        Ok(value) if !value.trim().is_empty() => Some(value.trim().to_owned()),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "CAMPANILE_TEST_POSTGRES is unset under CI: start PostgreSQL with scripts/postgres.sh"
            )
        }
        _ => {
            eprintln!(
                "history: skipped: CAMPANILE_TEST_POSTGRES is unset (export CAMPANILE_TEST_POSTGRES=$(scripts/postgres.sh start))"
            );
            None
        }
    }
}

async fn held(store: &PostgresStore, job: &JobId) -> Vec<RunRecord> {
    let query = JobHistoryQuery {
        runs: RunQuery {
            limit: 10_000,
            ..RunQuery::default()
        },
        outcome: None,
    };
    store.job_runs(job, query).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_live_in_postgres_are_read_from_there_and_go_with_their_job() {
    let Some(url) = postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("campanile.toml");
    std::fs::write(
        &config,
        format!("[history]\nstore = \"{url}\"\nprune_interval = \"1s\"\n"),
    )
    .unwrap();
    let server = Server::start_with(
        dir.path(),
        Options {
            args: vec!["--config".into(), config.display().to_string()],
            ..Options::default()
        },
    );
    // The schema is shared by every run of this test: a job id of its own.
    let id = format!("pg-{}-{}", std::process::id(), now_ms());
    let job = JobId::new(&id).unwrap();
    let (status, body) = server
        .send(Method::POST, "/v1/jobs", Some(every_second(&id, &["true"])))
        .await;
    assert_eq!(status, 201, "{body}");
    let store = PostgresStore::connect(&url, DEFAULT_SCHEMA).await.unwrap();
    let copied = eventually("two records in PostgreSQL", || async {
        let held = held(&store, &job).await;
        (held.len() >= 2).then_some(held)
    })
    .await;
    assert!(
        copied
            .iter()
            .all(|r| r.outcome == Outcome::Succeeded && r.node.as_str() == "node-1")
    );

    // A record only PostgreSQL holds (an instant long before the job existed) shows in the API: the API
    // reads the store, not the coordinator.
    let planted = RunRecord::new(
        &FireId::new(job.clone(), 1_000),
        &NodeId::new("elsewhere").unwrap(),
        Outcome::InDoubt,
    );
    store.append(std::slice::from_ref(&planted)).await.unwrap();
    let (status, page) = server
        .get(&format!("/v1/jobs/{id}/runs?before=2000&limit=5"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["runs"][0]["node"], "elsewhere", "{page}");
    let (_, across) = server.get("/v1/runs?outcome=in_doubt&limit=1000").await;
    assert!(
        across["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["job"] == id.as_str() && r["scheduled_ms"] == 1_000),
        "{across}"
    );

    let (status, body) = server
        .send(Method::DELETE, &format!("/v1/jobs/{id}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    // The delete answers after the store forgot the job: every record stored before it is gone. (A run that
    // ended during the delete may be copied just after it, so only those are checked.)
    let left = held(&store, &job).await;
    let before_delete: Vec<i64> = copied
        .iter()
        .map(|r| r.scheduled_ms)
        .chain([1_000])
        .collect();
    assert!(
        left.iter()
            .all(|r| !before_delete.contains(&r.scheduled_ms)),
        "left after the delete: {left:?}"
    );
}
