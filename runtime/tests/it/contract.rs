//! The API does what its document says, where schemathesis found that it did not: every request the document
//! allows is read as documented, and what it forbids is refused with a 400 naming the field.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Options, Server, assert_error};

/// A component schema of the served document.
fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

#[tokio::test]
async fn an_empty_number_in_the_query_is_refused_and_an_empty_filter_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    // `limit` is an integer: an empty value is not one.
    assert_error(
        &server.get("/v1/runs?limit=").await,
        400,
        "invalid",
        Some("limit"),
    );
    assert_error(
        &server.get("/v1/jobs?limit=").await,
        400,
        "invalid",
        Some("limit"),
    );
    assert_error(
        &server.get("/v1/jobs?paused=").await,
        400,
        "invalid",
        Some("paused"),
    );

    // String filters whose pattern allows "" read it as absent.
    let (status, body) = server.get("/v1/runs?outcome=&after=&namespace=").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get("/v1/jobs?after=&label=").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_rebalance_plan_ignores_previous_owners_of_jobs_it_does_not_place() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let scenario = json!({
        "jobs": [{"id": "a"}, {"id": "b"}],
        "nodes": ["n1", "n2"],
        "previous": {"a": "n1", "deleted-job": "n2", "": ""},
    });
    let (status, plan) = server
        .send(Method::POST, "/v1/rebalance/plan", Some(scenario))
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["assignment"]["a"], "n1", "{plan}");
    assert_eq!(plan["assignment"]["b"], "n2", "{plan}");
    assert_eq!(plan["moves"], 0, "{plan}");

    // What the document bounds, the server refuses, naming the field.
    let answer = server
        .send(
            Method::POST,
            "/v1/rebalance/plan",
            Some(json!({"jobs": [{"id": "a"}], "nodes": [{"id": "n1", "capacity": 9_223_372_036_854_775_808_u64}]})),
        )
        .await;
    assert_error(&answer, 400, "invalid", Some("nodes[0].capacity"));
    let answer = server
        .send(
            Method::POST,
            "/v1/rebalance/plan",
            Some(json!({"jobs": [{"id": "a", "weight": 0}], "nodes": ["n1"]})),
        )
        .await;
    assert_error(&answer, 400, "invalid", Some("jobs[0].weight"));
}

#[tokio::test]
async fn a_backfill_that_ends_before_it_starts_is_refused_naming_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let job = json!({"id": "b", "name": "b", "schedule": "@hourly",
        "target": {"type": "command", "argv": ["true"]}});
    let (status, body) = server.send(Method::POST, "/v1/jobs", Some(job)).await;
    assert_eq!(status, 201, "{body}");
    let answer = server
        .send(
            Method::POST,
            "/v1/jobs/b/backfill",
            Some(json!({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"})),
        )
        .await;
    assert_error(&answer, 400, "invalid", Some("to"));
    let message = answer.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2026-01-01T00:00:00") && message.contains("2026-01-02T00:00:00"),
        "{message}"
    );
}

#[tokio::test]
async fn job_schemas_are_closed_objects_that_real_jobs_validate_against() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, doc) = server.get("/v1/openapi.json").await;
    assert_eq!(status, 200);

    // No `allOf` is left to open or close: each body is one object, closed as the server's types are.
    assert!(!doc.to_string().contains("\"allOf\""), "an allOf is left");
    for name in ["JobSpec", "NewJob", "JobReplacement", "Job", "JobPatch"] {
        let schema = schema(&doc, name);
        assert_eq!(schema["additionalProperties"], false, "{name}: {schema}");
        assert!(schema["properties"]["name"].is_object(), "{name}: {schema}");
    }
    assert!(schema(&doc, "NewJob")["properties"]["id"].is_object());
    for variant in schema(&doc, "Target")["oneOf"].as_array().unwrap() {
        assert_eq!(variant["additionalProperties"], false, "{variant}");
        assert!(variant["properties"]["type"].is_object(), "{variant}");
    }

    // Ranges and patterns are the server's.
    let weight = &schema(&doc, "JobSpec")["properties"]["weight"];
    assert_eq!(
        (weight["minimum"].as_u64(), weight["maximum"].as_u64()),
        (Some(1), Some(1_000_000)),
        "{weight}"
    );
    let weight = &schema(&doc, "ScenarioJob")["properties"]["weight"];
    assert_eq!(
        (weight["minimum"].as_u64(), weight["maximum"].as_u64()),
        (Some(1), Some(1_000_000)),
        "{weight}"
    );
    assert!(schema(&doc, "JobSpec")["properties"]["name"]["pattern"].is_string());
    assert!(schema(&doc, "ScenarioJob")["properties"]["id"]["pattern"].is_string());

    // A PATCH body is a JobPatch, and may be absent (a patch that changes nothing).
    let patch = &doc["paths"]["/v1/jobs/{id}"]["patch"]["requestBody"];
    assert_ne!(patch["required"], true, "{patch}");
    assert!(patch.to_string().contains("JobPatch"), "{patch}");

    // A real job answer has no member the closed `Job` schema lacks.
    let job = json!({"id": "j", "name": "j", "schedule": "@daily", "labels": {"a": "b"},
        "node_labels": ["x=y"], "target": {"type": "command", "argv": ["true"], "env": {"A": "b"}}});
    let (status, job) = server.send(Method::POST, "/v1/jobs", Some(job)).await;
    assert_eq!(status, 201, "{job}");
    let (status, job) = server
        .send(
            Method::PATCH,
            "/v1/jobs/j",
            Some(json!({"schedule": "@hourly"})),
        )
        .await;
    assert_eq!(status, 200, "{job}");
    let properties = &schema(&doc, "Job")["properties"];
    for key in job.as_object().unwrap().keys() {
        assert!(properties[key].is_object(), "{key} is not in Job: {job}");
    }
    let command = &schema(&doc, "Target")["oneOf"][0]["properties"];
    for key in job["target"].as_object().unwrap().keys() {
        assert!(
            command[key].is_object(),
            "target.{key} is not in CommandTarget"
        );
    }

    // What the closed schemas forbid, the server refuses, naming the field.
    let answer = server
        .send(Method::PATCH, "/v1/jobs/j", Some(json!({"colour": "red"})))
        .await;
    assert_error(&answer, 400, "invalid", Some("colour"));
    let answer = server
        .send(
            Method::PATCH,
            "/v1/jobs/j",
            Some(json!({"weight": 2_000_000})),
        )
        .await;
    assert_error(&answer, 400, "invalid", Some("weight"));
}

#[tokio::test]
async fn a_job_larger_than_the_store_takes_is_refused_naming_its_largest_member() {
    let dir = tempfile::tempdir().unwrap();
    // Bodies up to 4 MiB get through, so the job reaches the store's 1 MiB limit.
    let config = dir.path().join("campanile.toml");
    std::fs::write(&config, "max_body_bytes = 4194304\n").unwrap();
    let server = Server::start_with(
        dir.path(),
        Options {
            args: vec!["--config".into(), config.display().to_string()],
            ..Options::default()
        },
    );
    let big = "x".repeat(1_100_000);
    let job = json!({"id": "big", "name": "big", "schedule": "@daily",
        "target": {"type": "command", "argv": ["true"], "env": {"SMALL": "a", "BIG": big}}});
    let answer = server.send(Method::POST, "/v1/jobs", Some(job)).await;
    assert_error(&answer, 400, "invalid", Some("target.env.BIG"));
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1048576"),
        "{}",
        answer.1
    );

    // The same through an update of a job that fits.
    let job = json!({"id": "small", "name": "small", "schedule": "@daily",
        "target": {"type": "command", "argv": ["true"]}});
    assert_eq!(
        server.send(Method::POST, "/v1/jobs", Some(job)).await.0,
        201
    );
    let patch = json!({"labels": {"huge": "y".repeat(1_100_000)}});
    let answer = server
        .send(Method::PATCH, "/v1/jobs/small", Some(patch))
        .await;
    assert_error(&answer, 400, "invalid", Some("labels.huge"));
}
