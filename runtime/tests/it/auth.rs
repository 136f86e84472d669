//! Tokens (401 without one, 403 for a read-only token on a write, open health endpoints) and TLS.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::json;

use crate::harness::{Options, Server, assert_error, every_second, status_and_json};

const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";

#[tokio::test]
async fn tokens_guard_the_api_but_not_health() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# ops\n{ADMIN}\nread-only {READER}\n")).unwrap();
    let server = Server::start_with(
        dir.path(),
        Options {
            args: vec!["--token-file".into(), tokens.display().to_string()],
            ..Options::default()
        },
    );
    let call = |method: Method, path: &str, token: Option<&str>| {
        let mut request = server.http.request(method.clone(), server.at(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if method == Method::POST {
            request = request.json(&every_second("guarded", &["true"]));
        }
        async move { status_and_json(request.send().await.unwrap()).await }
    };

    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(call(Method::GET, path, None).await.0, 200, "{path}");
    }
    let denied = server.http.get(server.at("/v1/jobs")).send().await.unwrap();
    assert_eq!(denied.headers()["www-authenticate"], "Bearer");
    assert_error(&status_and_json(denied).await, 401, "unauthorized", None);
    assert_error(
        &call(Method::GET, "/v1/openapi.json", None).await,
        401,
        "unauthorized",
        None,
    );
    assert_error(
        &call(Method::GET, "/v1/jobs", Some("not-a-known-token-at-all")).await,
        401,
        "unauthorized",
        None,
    );
    let basic = server
        .http
        .get(server.at("/v1/jobs"))
        .basic_auth("u", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_error(&status_and_json(basic).await, 401, "unauthorized", None);

    assert_eq!(call(Method::GET, "/v1/jobs", Some(READER)).await.0, 200);
    assert_eq!(
        call(Method::GET, "/v1/openapi.json", Some(READER)).await.0,
        200
    );
    assert_error(
        &call(Method::POST, "/v1/jobs", Some(READER)).await,
        403,
        "forbidden",
        None,
    );
    assert_error(
        &call(Method::POST, "/v1/jobs", None).await,
        401,
        "unauthorized",
        None,
    );
    assert_eq!(call(Method::POST, "/v1/jobs", Some(ADMIN)).await.0, 201);
    assert_error(
        &call(Method::DELETE, "/v1/jobs/guarded", Some(READER)).await,
        403,
        "forbidden",
        None,
    );
    assert_error(
        &call(Method::PATCH, "/v1/jobs/guarded", Some(READER)).await,
        403,
        "forbidden",
        None,
    );
    assert_error(
        &call(Method::POST, "/v1/jobs/guarded/trigger", Some(READER)).await,
        403,
        "forbidden",
        None,
    );
    assert_eq!(
        call(Method::GET, "/v1/jobs/guarded", Some(READER)).await.0,
        200
    );
    // Planning changes nothing: a reader may plan.
    let plan = server
        .http
        .post(server.at("/v1/rebalance/plan"))
        .bearer_auth(READER)
        .json(&json!({"jobs": [], "nodes": ["n1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(plan.status().as_u16(), 200);
    assert_eq!(
        call(Method::DELETE, "/v1/jobs/guarded", Some(ADMIN))
            .await
            .0,
        204
    );
}

#[tokio::test]
async fn a_bad_token_file_stops_the_server_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "short\n").unwrap();
    let out = std::process::Command::new(crate::harness::BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--coordinator",
            "memory:",
        ])
        .arg("--token-file")
        .arg(&tokens)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid token file") && stderr.contains("line 1"),
        "{stderr}"
    );
}

#[tokio::test]
async fn tls_serves_https() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        Options {
            args: vec![
                "--tls-cert".into(),
                fixtures.join("cert.pem").display().to_string(),
                "--tls-key".into(),
                fixtures.join("key.pem").display().to_string(),
            ],
            tls_ca: Some(fixtures.join("cert.pem")),
            ..Options::default()
        },
    );
    assert!(
        server.url.starts_with("https://localhost:"),
        "{}",
        server.url
    );
    let (status, health) = server.get("/healthz").await;
    assert_eq!(status, 200, "{health}");
}

#[tokio::test]
async fn read_only_tokens_never_see_secrets() {
    // An HTTP target's endpoint that echoes a secret in its answer.
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { "session=echoed-secret" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!(
        "http://user:url-password@{}/hook",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{ADMIN}\nread-only {READER}\n")).unwrap();
    let server = Server::start_with(
        dir.path(),
        Options {
            args: vec!["--token-file".into(), tokens.display().to_string()],
            ..Options::default()
        },
    );
    let call = |method: Method, path: &str, token: &str, body: Option<serde_json::Value>| {
        let mut request = server
            .http
            .request(method, server.at(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { status_and_json(request.send().await.unwrap()).await }
    };
    let http_job = json!({"id": "hook", "name": "hook", "schedule": "* * * * * *",
        "target": {"type": "http", "url": hook, "headers": {
            "Authorization": "Bearer header-secret", "X-Key": {"from_file": "/dev/null"}}}});
    let command_job = json!({"id": "cmd", "name": "cmd", "schedule": "@yearly",
        "target": {"type": "command", "argv": ["true"], "env": {
            "PASSWORD": "env-secret", "KEY": {"from_file": "/run/secrets/key"}}}});
    for job in [http_job, command_job] {
        assert_eq!(
            call(Method::POST, "/v1/jobs", ADMIN, Some(job)).await.0,
            201
        );
    }
    crate::harness::eventually("a run of the HTTP job with output", || async {
        let (_, runs) = call(Method::GET, "/v1/jobs/hook/runs", ADMIN, None).await;
        runs["runs"]
            .as_array()?
            .iter()
            .any(|r| r["output"] == "session=echoed-secret")
            .then_some(())
    })
    .await;

    let reader_views = [
        call(Method::GET, "/v1/jobs/hook", READER, None).await.1,
        call(Method::GET, "/v1/jobs/cmd", READER, None).await.1,
        call(Method::GET, "/v1/jobs", READER, None).await.1,
        call(Method::GET, "/v1/jobs/hook/runs", READER, None)
            .await
            .1,
        call(Method::GET, "/v1/runs", READER, None).await.1,
    ];
    for view in &reader_views {
        let text = view.to_string();
        for secret in [
            "header-secret",
            "url-password",
            "env-secret",
            "echoed-secret",
        ] {
            assert!(!text.contains(secret), "a reader sees {secret}: {text}");
        }
    }
    // The run stream too: a reader's events carry the HTTP target's output redacted.
    let mut stream = server
        .http
        .get(server.at("/v1/runs/stream?seconds=10"))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut text = String::new();
    // Until one whole event of the HTTP job has arrived (an event ends with a blank line).
    while !text
        .find("\"job\":\"hook\"")
        .is_some_and(|at| text[at..].contains("\n\n"))
    {
        let chunk = tokio::time::timeout(crate::harness::PATIENCE, stream.chunk())
            .await
            .expect("a run of the HTTP job on the stream")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains("echoed-secret"), "a reader's stream: {text}");
    assert!(text.contains("\"output\":\"(redacted)\""), "{text}");
    drop(stream);
    let hook_job = &reader_views[0];
    assert_eq!(hook_job["target"]["headers"]["Authorization"], "(redacted)");
    assert_eq!(
        hook_job["target"]["headers"]["X-Key"],
        json!({"from_file": "/dev/null"}),
        "references are shown"
    );
    assert_eq!(reader_views[1]["target"]["env"]["PASSWORD"], "(redacted)");
    // Admins see everything.
    let admin_view = call(Method::GET, "/v1/jobs/cmd", ADMIN, None).await.1;
    assert_eq!(admin_view["target"]["env"]["PASSWORD"], "env-secret");
    let admin_view = call(Method::GET, "/v1/jobs/hook", ADMIN, None).await.1;
    assert!(
        admin_view["target"]["url"]
            .as_str()
            .unwrap()
            .contains("url-password")
    );
}

#[tokio::test]
async fn without_a_token_unknown_api_routes_look_like_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{ADMIN}\nread-only {READER}\n")).unwrap();
    let server = Server::start_with(
        dir.path(),
        Options {
            args: vec!["--token-file".into(), tokens.display().to_string()],
            ..Options::default()
        },
    );
    // Routed or not, any method: 401, so a client without a token learns nothing of the API's shape.
    for (method, path) in [
        (Method::GET, "/v1/jobs"),
        (Method::GET, "/v1/no-such-route"),
        (Method::DELETE, "/v1/cluster"),
        (Method::PATCH, "/v1/jobs"),
    ] {
        let answer = server
            .http
            .request(method.clone(), server.at(path))
            .send()
            .await
            .unwrap();
        assert_error(&status_and_json(answer).await, 401, "unauthorized", None);
    }
    // With a token, the difference shows.
    let answer = server
        .http
        .get(server.at("/v1/no-such-route"))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_error(&status_and_json(answer).await, 404, "no_route", None);
    // And a path segment that is no string is a bad id.
    let answer = server
        .http
        .get(server.at("/v1/jobs/%FF"))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_error(&status_and_json(answer).await, 400, "invalid", Some("id"));
}
