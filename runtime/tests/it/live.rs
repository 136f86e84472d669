//! What the console watches: the run stream (`GET /v1/runs/stream`, server-sent events of the records this
//! node stores, at most 32 open) and the per-minute stats (`GET /v1/stats`).

use serde_json::Value;

use crate::harness::{Server, assert_error, eventually, every_second};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_pushes_each_stored_run_and_stats_count_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    assert_error(
        &server.get("/v1/runs/stream?seconds=0").await,
        400,
        "invalid",
        Some("seconds"),
    );
    assert_error(
        &server.get("/v1/runs/stream?outcome=sometimes").await,
        400,
        "invalid",
        Some("outcome"),
    );

    // Only failed runs: the succeeding job's records never reach this stream.
    let response = server
        .http
        .get(server.at("/v1/runs/stream?outcome=failed&seconds=20"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    for job in [
        every_second("fine", &["/bin/true"]),
        every_second("broken", &["sh", "-c", "exit 7"]),
    ] {
        let (status, body) = server
            .send(reqwest::Method::POST, "/v1/jobs", Some(job))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut response = response;
    let mut text = String::new();
    let mut runs: Vec<Value> = Vec::new();
    while runs.len() < 2 {
        let chunk = tokio::time::timeout(crate::harness::PATIENCE, response.chunk())
            .await
            .expect("a run within the patience")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.strip_prefix("event: run\ndata: ") {
                runs.push(serde_json::from_str(data.trim_end()).unwrap());
            }
        }
    }
    for run in &runs {
        assert_eq!(run["job"], "broken", "{run}");
        assert_eq!(run["outcome"], "failed", "{run}");
        assert_eq!(run["code"], 7, "{run}");
    }

    let stats = eventually("the stats to count the runs", || async {
        let (_, stats) = server.get("/v1/stats").await;
        let minutes = stats["minutes"].as_array()?.clone();
        let total = |key: &str| {
            minutes
                .iter()
                .map(|m| m[key].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
        (total("failures") >= 2 && total("fires") >= 4).then_some(minutes)
    })
    .await;
    assert_eq!(stats.len(), 60);
    assert!(
        stats
            .iter()
            .any(|m| m["lateness_p99_ms"].as_i64().is_some()),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_32_streams_are_open_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut open = Vec::new();
    for _ in 0..32 {
        let response = server
            .http
            .get(server.at("/v1/runs/stream?seconds=5"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        open.push(response);
    }
    assert_error(
        &server.get("/v1/runs/stream?seconds=1").await,
        503,
        "unavailable",
        None,
    );
    // A stream that ends gives its place back.
    eventually("a stream's place after the others closed", || async {
        let response = server
            .http
            .get(server.at("/v1/runs/stream?seconds=1"))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    drop(open);
}
