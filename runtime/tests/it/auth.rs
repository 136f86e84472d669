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
