//! `POST /v1/jobs:batch` and `campanile job add --file jobs.jsonl`: many jobs in one request, all or none,
//! errors naming the index (or the line) and the field.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{BIN, Options, Server, assert_error};

/// A typical job: hourly, a command.
fn typical(i: usize) -> Value {
    json!({
        "id": format!("bulk-{i:05}"),
        "name": format!("report {i}"),
        "schedule": format!("{} * * * *", i % 60),
        "target": {"type": "command", "argv": ["/usr/local/bin/report", "--part", i.to_string()], "timeout": "5m"},
        "labels": {"team": "data"},
    })
}

/// `POST /v1/jobs:batch` with `body`, as an admin.
async fn post_batch(server: &Server, body: Value) -> (u16, Value) {
    server
        .send(Method::POST, "/v1/jobs:batch", Some(body))
        .await
}

async fn exists(server: &Server, id: &str) -> bool {
    server.get(&format!("/v1/jobs/{id}")).await.0 == 200
}

#[tokio::test]
async fn a_batch_is_created_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    // Created: with ids and without, in order.
    let mut unnamed = typical(2);
    unnamed.as_object_mut().unwrap().remove("id");
    let answer = post_batch(&server, json!({"jobs": [typical(0), typical(1), unnamed]})).await;
    assert_eq!(answer.0, 201, "{}", answer.1);
    assert_eq!(answer.1["created"], 3);
    let created = answer.1["jobs"].as_array().unwrap();
    assert_eq!(created[0]["id"], "bulk-00000");
    assert_eq!(created[1]["id"], "bulk-00001");
    let generated = created[2]["id"].as_str().unwrap();
    for job in created {
        let (status, read) = server
            .get(&format!("/v1/jobs/{}", job["id"].as_str().unwrap()))
            .await;
        assert_eq!(status, 200);
        assert_eq!(read["revision"], job["revision"]);
    }
    let (_, read) = server.get(&format!("/v1/jobs/{generated}")).await;
    assert_eq!(read["name"], "report 2");

    // One invalid job: 400 naming its index and field, and nothing of the batch is created.
    let mut bad = typical(12);
    bad["target"]["argv"] = json!([]);
    let answer = post_batch(&server, json!({"jobs": [typical(10), typical(11), bad]})).await;
    assert_error(&answer, 400, "invalid", Some("jobs[2].target.argv"));
    assert!(!exists(&server, "bulk-00010").await);
    assert!(!exists(&server, "bulk-00011").await);

    // A type error inside a job names the index too, and the value.
    let mut bad = typical(13);
    bad["schedule"] = json!("61 * * * *");
    let answer = post_batch(&server, json!({"jobs": [typical(13), bad]})).await;
    assert_error(&answer, 400, "invalid", Some("jobs[1].schedule"));
    // The field is named once, with its index: `jobs[1].schedule: "61 * * * *": …`.
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("jobs[1].schedule: \"61 * * * *\""),
        "{}",
        answer.1
    );
    assert!(!exists(&server, "bulk-00013").await);

    // One id twice: 400 naming both indexes.
    let answer = post_batch(
        &server,
        json!({"jobs": [typical(20), typical(21), typical(20)]}),
    )
    .await;
    assert_error(&answer, 400, "invalid", Some("jobs[2].id"));
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("jobs[0]"),
        "{}",
        answer.1
    );
    assert!(!exists(&server, "bulk-00020").await);

    // An existing id: 409 naming it, and the others are not created.
    let answer = post_batch(
        &server,
        json!({"jobs": [typical(30), typical(1), typical(31)]}),
    )
    .await;
    assert_error(&answer, 409, "conflict", Some("jobs[1].id"));
    assert!(!exists(&server, "bulk-00030").await);
    assert!(!exists(&server, "bulk-00031").await);

    // The envelope: `jobs` must be a non-empty array, nothing else may be there, at most 10,000 jobs.
    let answer = server
        .send(Method::POST, "/v1/jobs:batch", Some(json!({})))
        .await;
    assert_error(&answer, 400, "invalid", Some("jobs"));
    let answer = post_batch(&server, json!({"jobs": {"a": 1}})).await;
    assert_error(&answer, 400, "invalid", Some("jobs"));
    let answer = post_batch(&server, json!({"jobs": [typical(40)], "dry_run": true})).await;
    assert_error(&answer, 400, "invalid", Some("dry_run"));
    let answer = post_batch(&server, json!({"jobs": [typical(41), 7]})).await;
    assert_error(&answer, 400, "invalid", Some("jobs[1]"));
    let answer = post_batch(&server, json!({"jobs": vec![json!({}); 10_001]})).await;
    assert_error(&answer, 400, "invalid", Some("jobs"));
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10001"),
        "{}",
        answer.1
    );
    assert!(!exists(&server, "bulk-00040").await);
    assert!(!exists(&server, "bulk-00041").await);
    let (status, _) = server.get("/v1/jobs:batch").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn ten_thousand_typical_jobs_fit_the_default_body_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let jobs: Vec<Value> = (0..10_000).map(typical).collect();
    let body = json!({ "jobs": jobs });
    // Larger than the limit of every other route (max_body_bytes, 1 MiB).
    assert!(body.to_string().len() > 1 << 20);
    let answer = server
        .send(Method::POST, "/v1/jobs:batch", Some(body))
        .await;
    assert_eq!(answer.0, 201, "{}", answer.1);
    assert_eq!(answer.1["created"], 10_000);
    assert!(exists(&server, "bulk-09999").await);
    // The single-job route keeps its own limit.
    let big = json!({"name": "x".repeat(2 << 20)});
    let answer = server.send(Method::POST, "/v1/jobs", Some(big)).await;
    assert_error(&answer, 413, "payload_too_large", None);
}

#[tokio::test]
async fn a_batch_over_the_configured_limit_is_413_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("campanile.toml");
    std::fs::write(&file, "[http]\nmax_batch_body_bytes = 4096\n").unwrap();
    let server = Server::start_with(
        dir.path(),
        Options {
            args: vec!["--config".into(), file.display().to_string()],
            ..Options::default()
        },
    );
    let jobs: Vec<Value> = (0..100).map(typical).collect();
    let answer = post_batch(&server, json!({ "jobs": jobs })).await;
    assert_error(&answer, 413, "payload_too_large", None);
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("http.max_batch_body_bytes"),
        "{}",
        answer.1
    );
    assert!(!exists(&server, "bulk-00000").await);
}

fn campanile(server: &Server, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("CAMPANILE_SERVER", &server.url)
        .env_remove("CAMPANILE_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn lines(jobs: impl IntoIterator<Item = Value>) -> String {
    jobs.into_iter().map(|j| format!("{j}\n")).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn job_add_reads_json_lines_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    // 10,001 jobs: two requests. Blank lines are skipped.
    let mut text = lines((0..10_001).map(typical));
    text.insert(0, '\n');
    let file = write(dir.path(), "jobs.jsonl", &text);
    let out = campanile(&server, &["job", "add", "--file", &file], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("created 10001 jobs"), "{stdout}");
    assert!(exists(&server, "bulk-10000").await);

    // From stdin, with --jsonl, as JSON.
    let out = campanile(
        &server,
        &["job", "add", "--file", "-", "--jsonl", "--output", "json"],
        Some(&lines((20_000..20_002).map(typical))),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["created"], 2);
    assert_eq!(answer["jobs"][1]["id"], "bulk-20001");

    // A bad field: the line number and the field, and nothing of the file is created.
    let mut bad = typical(30_001);
    bad["schedule"] = json!("61 * * * *");
    let file = write(
        dir.path(),
        "bad.jsonl",
        &lines([typical(30_000), bad, typical(30_002)]),
    );
    let out = campanile(&server, &["job", "add", "--file", &file], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.jsonl:2:") && stderr.contains("schedule"),
        "{stderr}"
    );
    assert!(stderr.contains("61"), "{stderr}");
    assert!(!exists(&server, "bulk-30000").await);

    // Not JSON: the line, before anything is sent.
    let file = write(
        dir.path(),
        "broken.jsonl",
        &format!("{}{{\"name\": \n", lines([typical(40_000)])),
    );
    let out = campanile(&server, &["job", "add", "--file", &file], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broken.jsonl:2: not valid JSON"),
        "{stderr}"
    );
    assert!(!exists(&server, "bulk-40000").await);

    // Job flags do not mix with a file of many jobs.
    let out = campanile(
        &server,
        &[
            "job",
            "add",
            "--file",
            "-",
            "--jsonl",
            "--schedule",
            "@daily",
        ],
        Some(""),
    );
    assert_eq!(out.status.code(), Some(2));
}
