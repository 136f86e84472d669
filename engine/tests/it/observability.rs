//! The metrics a node reports, read through a local debugging recorder on a current-thread runtime (so every
//! actor's metrics land in it).

use std::sync::Arc;
use std::time::Duration;

use campanile::JobId;
use campanile_inproc::InprocCoordinator;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use super::*;

#[test]
fn fires_lateness_runs_and_ownership_are_reported() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let (scheduler, mut rx) = node(Arc::new(InprocCoordinator::memory())).await;
            let job = scheduler
                .create_with_id(JobId::new("m").unwrap(), recording("m", "* * * * * *"))
                .await
                .unwrap();
            until_fired(&mut rx, &job.id, T0 + 3000).await;
            scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
        });
    });
    let metrics: Vec<_> = snapshotter.snapshot().into_vec();
    let find = |kind: MetricKind, name: &str, label: Option<(&str, &str)>| {
        metrics
            .iter()
            .find(|(key, _, _, _)| {
                key.kind() == kind
                    && key.key().name() == name
                    && label.is_none_or(|(k, v)| {
                        key.key().labels().any(|l| l.key() == k && l.value() == v)
                    })
            })
            .map(|(_, _, _, value)| value)
            .unwrap_or_else(|| panic!("metric {name} {label:?} was not reported"))
    };
    let DebugValue::Counter(fires) = find(MetricKind::Counter, campanile::metrics::FIRES, None)
    else {
        panic!()
    };
    assert!(*fires >= 3, "fires {fires}");
    let DebugValue::Counter(succeeded) = find(
        MetricKind::Counter,
        campanile::metrics::RUNS,
        Some(("outcome", "succeeded")),
    ) else {
        panic!()
    };
    assert!(*succeeded >= 3, "succeeded runs {succeeded}");
    let DebugValue::Histogram(lateness) =
        find(MetricKind::Histogram, campanile::metrics::LATENESS, None)
    else {
        panic!()
    };
    assert!(lateness.len() >= 3);
    assert!(
        lateness.iter().all(|l| l.into_inner() >= 0.0),
        "lateness is start minus scheduled instant"
    );
    let DebugValue::Gauge(owned) = find(MetricKind::Gauge, campanile::metrics::JOBS_OWNED, None)
    else {
        panic!()
    };
    assert_eq!(owned.into_inner(), 1.0);
    let DebugValue::Gauge(in_flight) = find(MetricKind::Gauge, campanile::metrics::IN_FLIGHT, None)
    else {
        panic!()
    };
    assert_eq!(in_flight.into_inner(), 0.0, "nothing runs after shutdown");
}

/// postmortem: the lateness histogram was measured after the jitter sleep, so a job with `jitter: 5s` showed up
/// to five seconds of lateness that no one caused; `metrics.rs` promises jitter excluded.
#[test]
fn lateness_excludes_jitter() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut delays = Vec::new();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let (scheduler, mut rx) = node(Arc::new(InprocCoordinator::memory())).await;
            let mut spec = recording("j", "*/10 * * * * *");
            spec.jitter = Some(Duration::from_secs(5));
            let job = scheduler
                .create_with_id(JobId::new("j").unwrap(), spec)
                .await
                .unwrap();
            until_fired(&mut rx, &job.id, T0 + 60_000).await;
            scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
            for run in history(&scheduler, &job.id).await {
                if let Some(started) = run.started_ms {
                    delays.push(started - run.scheduled_ms);
                }
            }
        });
    });
    assert!(
        delays.iter().any(|d| *d >= 1000),
        "the test needs a jitter of a second or more: {delays:?}"
    );
    let lateness: Vec<f64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| key.key().name() == campanile::metrics::LATENESS)
        .flat_map(|(_, _, _, value)| match value {
            DebugValue::Histogram(values) => values.into_iter().map(|v| v.into_inner()).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert!(lateness.len() >= delays.len(), "{lateness:?}");
    assert!(
        lateness.iter().all(|l| (0.0..0.1).contains(l)),
        "starts were on time but for their jitter: {lateness:?} (delays {delays:?})"
    );
}

#[tokio::test(start_paused = true)]
async fn subscribers_see_every_record_this_node_stores() {
    let (scheduler, mut rx) = node(Arc::new(InprocCoordinator::memory())).await;
    let mut feed = scheduler.subscribe_runs();
    let job = scheduler
        .create_with_id(JobId::new("fed").unwrap(), recording("fed", "* * * * * *"))
        .await
        .unwrap();
    until_fired(&mut rx, &job.id, T0 + 3000).await;
    let mut fed = Vec::new();
    while fed.len() < 3 {
        let record = feed
            .recv()
            .await
            .expect("the feed stays open while the node runs");
        fed.push(record.scheduled_ms);
    }
    assert_eq!(fed, vec![T0 + 1000, T0 + 2000, T0 + 3000]);
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
    let stored: Vec<i64> = history(&scheduler, &job.id)
        .await
        .iter()
        .map(|r| r.scheduled_ms)
        .collect();
    assert_eq!(
        &stored[..3],
        &fed[..],
        "the feed announces what the coordinator stored"
    );
}
