//! Every route's bad input: a 4xx JSON error that names the field, never a 500, never a dropped connection.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, assert_error, every_second, status_and_json};

async fn raw(
    server: &Server,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let response = server
        .http
        .request(method, server.at(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    status_and_json(response).await
}

fn job(fields: Value) -> Value {
    let mut base = json!({"name": "x", "schedule": "* * * * *", "target": {"type": "command", "argv": ["true"]}});
    for (k, v) in fields.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[tokio::test]
async fn job_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let post = |body: Value| server.send(Method::POST, "/v1/jobs", Some(body));

    let answer = raw(
        &server,
        Method::POST,
        "/v1/jobs",
        "application/json",
        b"{\"name\": ".to_vec(),
    )
    .await;
    assert_error(&answer, 400, "bad_json", None);
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{}",
        answer.1
    );
    assert_error(
        &raw(
            &server,
            Method::POST,
            "/v1/jobs",
            "application/json",
            b"[1]".to_vec(),
        )
        .await,
        400,
        "bad_json",
        None,
    );
    assert_error(
        &raw(
            &server,
            Method::POST,
            "/v1/jobs",
            "text/plain",
            b"{}".to_vec(),
        )
        .await,
        415,
        "unsupported_media_type",
        Some("Content-Type"),
    );
    assert_error(
        &post(job(json!({"colour": "red"}))).await,
        400,
        "invalid",
        Some("colour"),
    );
    assert_error(
        &post(job(json!({"schedule": "61 * * * *"}))).await,
        400,
        "invalid",
        Some("schedule"),
    );
    let bad_cron = post(job(json!({"schedule": "61 * * * *"}))).await;
    assert!(
        bad_cron.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("61"),
        "{}",
        bad_cron.1
    );
    assert_error(
        &post(job(json!({"timezone": "Mars/Olympus"}))).await,
        400,
        "invalid",
        Some("timezone"),
    );
    assert_error(
        &post(json!({"schedule": "* * * * *", "target": {"type": "command", "argv": ["true"]}}))
            .await,
        400,
        "invalid",
        Some("name"),
    );
    assert_error(
        &post(job(json!({"weight": "heavy"}))).await,
        400,
        "invalid",
        Some("weight"),
    );
    assert_error(
        &post(job(json!({"weight": 0}))).await,
        400,
        "invalid",
        Some("weight"),
    );
    assert_error(
        &post(job(json!({"target": {"type": "command", "argv": []}}))).await,
        400,
        "invalid",
        Some("target.argv"),
    );
    assert_error(
        &post(job(
            json!({"target": {"type": "command", "argv": ["true"], "timeout": "soon"}}),
        ))
        .await,
        400,
        "invalid",
        None,
    );
    assert_error(
        &post(job(json!({"target": {"type": "ftp"}}))).await,
        400,
        "invalid",
        None,
    );
    assert_error(
        &post(job(
            json!({"misfire": {"policy": "catch_up", "max_count": 0}}),
        ))
        .await,
        400,
        "invalid",
        Some("misfire.max_count"),
    );
    assert_error(
        &post(job(json!({"id": "no spaces"}))).await,
        400,
        "invalid",
        Some("id"),
    );
    assert_error(
        &post(job(json!({"id": 7}))).await,
        400,
        "invalid",
        Some("id"),
    );
    // The server answers 413 and closes the connection; a fresh client keeps that from the pooled one.
    let big = reqwest::Client::new()
        .post(server.at("/v1/jobs"))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_error(&status_and_json(big).await, 413, "payload_too_large", None);

    // Duplicate id.
    assert_eq!(post(every_second("dup", &["true"])).await.0, 201);
    assert_error(
        &post(every_second("dup", &["true"])).await,
        409,
        "conflict",
        None,
    );

    // PUT.
    let put = |path: &'static str, body: Value| server.send(Method::PUT, path, Some(body));
    assert_error(
        &put("/v1/jobs/dup", job(json!({"id": "other"}))).await,
        400,
        "invalid",
        Some("id"),
    );
    assert_error(
        &put("/v1/jobs/dup", job(json!({"colour": 1}))).await,
        400,
        "invalid",
        Some("colour"),
    );
    assert_error(
        &put("/v1/jobs/dup", job(json!({"revision": 999}))).await,
        409,
        "conflict",
        None,
    );
    assert_error(
        &put("/v1/jobs/dup", job(json!({"revision": "new"}))).await,
        400,
        "invalid",
        Some("revision"),
    );
    assert_error(
        &put("/v1/jobs/dup", job(json!({"timezone": "Nowhere"}))).await,
        400,
        "invalid",
        Some("timezone"),
    );
    let stale = server
        .http
        .put(server.at("/v1/jobs/dup"))
        .header("if-match", "\"999\"")
        .json(&job(json!({})))
        .send()
        .await
        .unwrap();
    assert_error(
        &status_and_json(stale).await,
        412,
        "precondition_failed",
        None,
    );
    let garbage = server
        .http
        .put(server.at("/v1/jobs/dup"))
        .header("if-match", "yesterday")
        .json(&job(json!({})))
        .send()
        .await
        .unwrap();
    assert_error(
        &status_and_json(garbage).await,
        400,
        "invalid",
        Some("If-Match"),
    );
    assert_error(
        &raw(
            &server,
            Method::PUT,
            "/v1/jobs/dup",
            "application/json",
            b"{".to_vec(),
        )
        .await,
        400,
        "bad_json",
        None,
    );

    // PATCH.
    let patch = |body: Value| server.send(Method::PATCH, "/v1/jobs/dup", Some(body));
    assert_error(
        &patch(json!({"timezone": "Nowhere"})).await,
        400,
        "invalid",
        Some("timezone"),
    );
    assert_error(&patch(json!({"id": "x"})).await, 400, "invalid", Some("id"));
    assert_error(
        &patch(json!({"schedule": 5})).await,
        400,
        "invalid",
        Some("schedule"),
    );
    assert_error(
        &patch(json!({"overlap": "sometimes"})).await,
        400,
        "invalid",
        Some("overlap"),
    );
    assert_error(
        &patch(json!({"dst_repeat": "twice"})).await,
        400,
        "invalid",
        Some("dst_repeat"),
    );
    let stale = server
        .http
        .patch(server.at("/v1/jobs/dup"))
        .header("if-match", "\"999\"")
        .json(&json!({"paused": true}))
        .send()
        .await
        .unwrap();
    assert_error(
        &status_and_json(stale).await,
        412,
        "precondition_failed",
        None,
    );
    assert_error(
        &server
            .send(
                Method::PATCH,
                "/v1/jobs/missing",
                Some(json!({"paused": true})),
            )
            .await,
        404,
        "not_found",
        None,
    );

    // DELETE.
    let stale = server
        .http
        .delete(server.at("/v1/jobs/dup"))
        .header("if-match", "\"999\"")
        .send()
        .await
        .unwrap();
    assert_error(
        &status_and_json(stale).await,
        412,
        "precondition_failed",
        None,
    );
    assert_error(
        &server.send(Method::DELETE, "/v1/jobs/missing", None).await,
        404,
        "not_found",
        None,
    );

    // PUT on a new id creates (201); with a revision it is an update (200) that needs the job to exist.
    let (status, created) = put("/v1/jobs/fresh", job(json!({}))).await;
    assert_eq!(status, 201, "{created}");
    let revision = created["revision"].clone();
    let (status, fresh) = put(
        "/v1/jobs/fresh",
        job(json!({"revision": revision, "name": "y"})),
    )
    .await;
    assert_eq!(
        (status, fresh["name"].as_str()),
        (200, Some("y")),
        "{fresh}"
    );
    assert_error(
        &put("/v1/jobs/absent", job(json!({"revision": 1}))).await,
        404,
        "not_found",
        None,
    );

    // The job survived all of it unchanged.
    let (status, dup) = server.get("/v1/jobs/dup").await;
    assert_eq!((status, dup["revision"].as_u64()), (200, Some(1)), "{dup}");
}

#[tokio::test]
async fn actions_queries_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    assert_eq!(
        server
            .send(Method::POST, "/v1/jobs", Some(every_second("j", &["true"])))
            .await
            .0,
        201
    );

    for action in ["pause", "resume", "trigger", "clone", "backfill"] {
        assert_error(
            &server
                .send(
                    Method::POST,
                    &format!("/v1/jobs/missing/{action}"),
                    (action == "backfill").then(
                        || json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:01Z"}),
                    ),
                )
                .await,
            404,
            "not_found",
            None,
        );
        assert_error(
            &server
                .send(Method::POST, &format!("/v1/jobs/bad%20id/{action}"), None)
                .await,
            400,
            "invalid",
            Some("id"),
        );
    }
    assert_error(
        &server.get("/v1/jobs/bad%20id").await,
        400,
        "invalid",
        Some("id"),
    );
    assert_error(
        &server.get("/v1/jobs/missing").await,
        404,
        "not_found",
        None,
    );

    let clone = |body: Value| server.send(Method::POST, "/v1/jobs/j/clone", Some(body));
    assert_error(
        &clone(json!({"copies": 2})).await,
        400,
        "invalid",
        Some("copies"),
    );
    assert_error(
        &clone(json!({"id": "bad id"})).await,
        400,
        "invalid",
        Some("id"),
    );
    assert_error(&clone(json!({"id": "j"})).await, 409, "conflict", None);

    let backfill = |body: Value| server.send(Method::POST, "/v1/jobs/j/backfill", Some(body));
    assert_error(
        &backfill(json!({"to": "2026-01-01T00:00:00Z"})).await,
        400,
        "invalid",
        Some("from"),
    );
    assert_error(
        &backfill(json!({"from": "last week", "to": "2026-01-01T00:00:00Z"})).await,
        400,
        "invalid",
        Some("from"),
    );
    assert_error(
        &backfill(json!({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"})).await,
        400,
        "invalid",
        Some("to"),
    );
    assert_error(
        &backfill(json!({"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"})).await,
        400,
        "invalid",
        Some("to"),
    );

    for (path, field) in [
        ("/v1/jobs?limit=0", "limit"),
        ("/v1/jobs?limit=many", "limit"),
        ("/v1/jobs?paused=maybe", "paused"),
        ("/v1/jobs?last_outcome=maybe", "last_outcome"),
        ("/v1/jobs?colour=red", "colour"),
        ("/v1/jobs?after=bad%20id", "after"),
        ("/v1/jobs?label==x", "label"),
        ("/v1/jobs/j/next?n=0", "n"),
        ("/v1/jobs/j/next?n=lots", "n"),
        ("/v1/jobs/j/runs?outcome=exploded", "outcome"),
        ("/v1/jobs/j/runs?before=yesterday", "before"),
        ("/v1/jobs/j/runs?limit=100000", "limit"),
        ("/v1/runs?outcome=exploded", "outcome"),
        ("/v1/runs?after=garbage", "after"),
    ] {
        assert_error(&server.get(path).await, 400, "invalid", Some(field));
    }

    let plan = |path: &'static str, body: Option<Value>| server.send(Method::POST, path, body);
    assert_error(
        &plan(
            "/v1/rebalance/plan",
            Some(json!({"jobs": [{"id": "a"}, {"id": "a"}], "nodes": ["n"]})),
        )
        .await,
        400,
        "invalid",
        Some("jobs[1].id"),
    );
    assert_error(
        &plan(
            "/v1/rebalance/plan",
            Some(json!({"jobs": [], "nodes": ["bad node"]})),
        )
        .await,
        400,
        "invalid",
        Some("nodes[0]"),
    );
    assert_error(
        &plan(
            "/v1/rebalance/plan",
            Some(json!({"jobs": [], "nodes": [], "extra": 1})),
        )
        .await,
        400,
        "invalid",
        Some("extra"),
    );
    assert_error(
        &plan(
            "/v1/rebalance/plan",
            Some(
                json!({"jobs": [{"id": "a"}], "previous": {"a": "no such node!"}, "nodes": ["n"]}),
            ),
        )
        .await,
        400,
        "invalid",
        Some("previous.a"),
    );
    assert_error(
        &plan("/v1/rebalance/plan?drain=ghost", None).await,
        404,
        "not_found",
        Some("drain"),
    );
    // With a scenario, drain and join apply to it; an empty value is no value.
    let scenario = json!({"jobs": [{"id": "a"}, {"id": "b"}], "nodes": ["n1", "n2"], "previous": {"a": "n1", "b": "n2"}});
    let (status, drained) = plan("/v1/rebalance/plan?drain=n2&join=", Some(scenario.clone())).await;
    assert_eq!(status, 200, "{drained}");
    assert_eq!(drained["assignment"], json!({"a": "n1", "b": "n1"}));
    assert_error(
        &plan("/v1/rebalance/plan?drain=n9", Some(scenario)).await,
        404,
        "not_found",
        Some("drain"),
    );

    assert_error(&server.get("/v2/jobs").await, 404, "no_route", None);
    assert_error(
        &server.send(Method::DELETE, "/v1/jobs", None).await,
        405,
        "method_not_allowed",
        None,
    );
    assert_error(
        &server.send(Method::GET, "/v1/jobs/j/pause", None).await,
        405,
        "method_not_allowed",
        None,
    );

    // Nothing above broke the node.
    assert_eq!(server.get("/readyz").await.0, 200, "{}", server.log());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[tokio::test]
async fn ids_preconditions_repeats_and_jobs_that_never_fire() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let post = |body: Value| server.send(Method::POST, "/v1/jobs", Some(body));

    // Ids that a URL cannot reach.
    for dots in [".", ".."] {
        assert_error(
            &post(job(json!({"id": dots}))).await,
            400,
            "invalid",
            Some("id"),
        );
    }
    // Schedules and bounds that leave nothing to fire.
    assert_error(
        &post(job(json!({"schedule": "@at 2001-01-01T00:00:00Z"}))).await,
        400,
        "invalid",
        Some("schedule"),
    );
    assert_error(
        &post(job(json!({"schedule": "0 0 0 1 1 * 2020"}))).await,
        400,
        "invalid",
        Some("schedule"),
    );
    let ended = post(job(json!({"end_at": "2001-01-01T00:00:00Z"}))).await;
    assert_error(&ended, 400, "invalid", Some("end_at"));
    assert!(
        ended.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("never fire"),
        "{}",
        ended.1
    );

    // If-Match, even `*`, on a job that does not exist: 412 (RFC 9110), not 404 and not a creation.
    let answer = server
        .http
        .put(server.at("/v1/jobs/absent"))
        .header("if-match", "*")
        .json(&job(json!({})))
        .send()
        .await
        .unwrap();
    assert_error(
        &status_and_json(answer).await,
        412,
        "precondition_failed",
        None,
    );
    assert_eq!(server.get("/v1/jobs/absent").await.0, 404);

    // A repeated query parameter is named.
    assert_error(
        &server.get("/v1/jobs?limit=1&limit=2").await,
        400,
        "invalid",
        Some("limit"),
    );
}

#[tokio::test]
async fn handler_targets_are_refused_by_a_server_without_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let handler = json!({"type": "handler", "name": "report"});
    let created = server
        .send(
            Method::POST,
            "/v1/jobs",
            Some(job(json!({"target": handler}))),
        )
        .await;
    assert_error(&created, 400, "invalid", Some("target.type"));
    let replaced = server
        .send(
            Method::PUT,
            "/v1/jobs/h",
            Some(job(json!({"target": handler}))),
        )
        .await;
    assert_error(&replaced, 400, "invalid", Some("target.type"));
    assert_eq!(
        server
            .send(Method::POST, "/v1/jobs", Some(job(json!({"id": "h"}))))
            .await
            .0,
        201
    );
    // A merge patch: `argv: null` removes the command's member.
    let patched = server
        .send(
            Method::PATCH,
            "/v1/jobs/h",
            Some(json!({"target": {"type": "handler", "name": "report", "argv": null}})),
        )
        .await;
    assert_error(&patched, 400, "invalid", Some("target.type"));
}
