//! Webhooks: a failing job's runs are POSTed to a configured webhook; a job can opt out with a label.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Options, Server, eventually};

#[tokio::test]
async fn failed_runs_reach_the_webhook() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                |State(seen): State<Arc<Mutex<Vec<Value>>>>, Json(event): Json<Value>| async move {
                    seen.lock().unwrap().push(event);
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("campanile.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\npoll_interval = \"200ms\"\n[[notify.webhooks]]\nname = \"ops\"\nurl = \"{hook}\"\nevents = [\"run_failed\"]\n"
        ),
    )
    .unwrap();
    let server = Server::start_with(
        dir.path(),
        Options {
            args: vec!["--config".into(), config.display().to_string()],
            ..Options::default()
        },
    );
    let mut quiet = json!({"id": "quiet", "name": "quiet", "schedule": "* * * * * *", "labels": {"notify": "none"},
        "target": {"type": "command", "argv": ["false"]}});
    assert_eq!(
        server
            .send(Method::POST, "/v1/jobs", Some(quiet.clone()))
            .await
            .0,
        201
    );
    quiet["id"] = json!("loud");
    quiet["name"] = json!("loud");
    quiet["labels"] = json!({"notify": "ops"});
    assert_eq!(
        server.send(Method::POST, "/v1/jobs", Some(quiet)).await.0,
        201
    );

    let event = eventually("a run_failed event", || async {
        received
            .lock()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "run_failed")
            .cloned()
    })
    .await;
    assert_eq!(event["job"]["id"], "loud", "{event}");
    assert_eq!(event["run"]["outcome"], "failed");
    assert_eq!(event["node"], "node-1");
    // The quiet job has failed as often by now, and was never sent.
    assert!(
        received
            .lock()
            .unwrap()
            .iter()
            .all(|e| e["job"]["id"] != "quiet")
    );

    // A manual run of a paused job (no scheduled run) is reported too.
    let manual = json!({"id": "manual", "name": "manual", "schedule": "@yearly", "paused": true,
        "target": {"type": "command", "argv": ["false"]}});
    assert_eq!(
        server.send(Method::POST, "/v1/jobs", Some(manual)).await.0,
        201
    );
    assert_eq!(
        server
            .send(Method::POST, "/v1/jobs/manual/trigger", None)
            .await
            .0,
        202
    );
    let event = eventually("the manual run's event", || async {
        received
            .lock()
            .unwrap()
            .iter()
            .find(|e| e["job"]["id"] == "manual")
            .cloned()
    })
    .await;
    assert_eq!(event["event"], "run_failed", "{event}");
    assert_eq!(event["run"]["manual"], true, "{event}");
}
