//! Campanile under test through its HTTP API: the runtime's router (`campanile_runtime::api::router`, the one
//! `campanile serve` runs) on a loopback listener, over one in-process node, and jobs created with
//! `POST /v1/jobs:batch` requests of 10,000 jobs, one after another, as `campanile job add --file x.jsonl` sends
//! them.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use campanile::clock::SystemClock;
use campanile_benches::machine::resident_bytes;
use campanile_benches::tally::Tally;
use campanile_runtime::api::{self, AppState};
use tokio::time::Instant;

use campanile_inproc::{InprocConfig, InprocCoordinator};

use super::campanile_node::{loaded, per_job, probe, start};
use super::heap::live_bytes;
use super::workload::Workload;

type Fields = BTreeMap<&'static str, String>;

/// Jobs per request: the route's maximum.
const BATCH: usize = api::jobs::MAX_BATCH;

/// The body of one request: jobs `from..to` of the typical workload, as a client would send them (a command
/// target: the server runs no handlers; the jobs are hourly, so none fires during the measurement).
fn body(from: usize, to: usize) -> Vec<u8> {
    let jobs: Vec<serde_json::Value> = (from..to)
        .map(|i| {
            serde_json::json!({
                "id": format!("job-{i:07}"),
                "name": format!("job-{i}"),
                "schedule": Workload::Typical.campanile_text(i, 0),
                "target": {"type": "command", "argv": ["/usr/bin/true"], "timeout": "1m"},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "jobs": jobs })).expect("a body serializes")
}

/// `load` through the API: first request sent → the node's timer holds every job. The bodies are built
/// before the clock starts (what a client spends encoding is not the server's).
pub async fn load(jobs: usize) -> Result<Fields, String> {
    let probe = probe()?;
    let clock = SystemClock::new().shared();
    // The backend with the watch retention `campanile serve --coordinator memory:` gives it (the default,
    // 100,000 events; the other rows keep 10,000, see `campanile_node::coordinator`).
    let coordinator = Arc::new(InprocCoordinator::memory_with(InprocConfig {
        history_limit: 100,
        ..InprocConfig::default()
    }));
    let scheduler = start(coordinator, clock.clone(), Arc::new(Tally::new())).await?;
    let state = AppState {
        scheduler: scheduler.clone(),
        clock: clock.clone(),
        shutting_down: Arc::new(AtomicBool::new(false)),
        metrics: None,
        notifier: None,
        openapi: Arc::new(OnceLock::new()),
        live: api::live::Live::new(clock),
        history: None,
    };
    let router = api::router(state, None, &api::Limits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind a loopback port: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("the listener's address: {e}"))?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    let url = format!("http://{addr}/v1/jobs:batch");
    let client = reqwest::Client::new();

    let bodies: Vec<Vec<u8>> = (0..jobs)
        .step_by(BATCH)
        .map(|from| body(from, (from + BATCH).min(jobs)))
        .collect();
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();
    let (heap0, rss0) = (live_bytes() as u64, resident_bytes().unwrap_or(0));
    let t0 = Instant::now();
    let mut slowest = std::time::Duration::ZERO;
    for body in bodies {
        let sent = Instant::now();
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST /v1/jobs:batch: {e}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.as_u16() != 201 {
            return Err(format!("POST /v1/jobs:batch answered {status}: {text}"));
        }
        slowest = slowest.max(sent.elapsed());
    }
    let created = t0.elapsed();
    loaded(&scheduler, probe, jobs).await?;
    let load = t0.elapsed();
    let (heap1, rss1) = (live_bytes() as u64, resident_bytes().unwrap_or(0));
    Ok(BTreeMap::from([
        ("load_s", format!("{:.2}", load.as_secs_f64())),
        ("create_s", format!("{:.2}", created.as_secs_f64())),
        ("rss_per_job", per_job(rss0, rss1, jobs).to_string()),
        ("heap_per_job", per_job(heap0, heap1, jobs).to_string()),
        (
            "detail",
            format!(
                "{} requests of up to {BATCH} jobs ({:.1} MiB of JSON) over loopback HTTP, one at a time: {:.2} s \
                 (slowest request {:.0} ms); command targets; the backend keeps the server's default 100,000 watch events; \
                 RSS {} MiB",
                jobs.div_ceil(BATCH),
                body_bytes as f64 / f64::from(1 << 20),
                created.as_secs_f64(),
                slowest.as_secs_f64() * 1e3,
                rss1 >> 20
            ),
        ),
    ]))
}
