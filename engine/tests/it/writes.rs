//! The coordinator round trips a node makes do not grow with the number of fires: claims are taken ahead in
//! batches per time window, run records are written in batches per time window.

use std::sync::Arc;
use std::time::Duration;

use campanile::JobId;
use campanile_adapters::FaultyCoordinator;
use campanile_inproc::InprocCoordinator;

use super::*;

/// Coordinator calls made by one node running `jobs` every-second jobs spread evenly over the second (so their
/// runs end at different instants), for 10 seconds.
async fn calls_with(jobs: usize) -> u64 {
    let faulty = Arc::new(FaultyCoordinator::new(
        Arc::new(InprocCoordinator::memory()),
        1,
    ));
    let control = faulty.control().clone();
    let (scheduler, mut rx) = node(faulty).await;
    for i in 0..jobs {
        let offset = 1 + (i * 997 / jobs) as i64; // spread evenly over the second
        let anchor = chrono::DateTime::from_timestamp_millis(T0 + offset)
            .unwrap()
            .to_rfc3339();
        let spec = recording("j", &format!("@every 1s from {anchor}"));
        scheduler
            .create_with_id(JobId::new(format!("job-{i}")).unwrap(), spec)
            .await
            .unwrap();
    }
    let first = JobId::new("job-0").unwrap();
    until_fired(&mut rx, &first, T0 + 5001).await;
    let before = control.stats().calls;
    until_fired(&mut rx, &first, T0 + 15_001).await;
    let calls = control.stats().calls - before;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
    calls
}

#[tokio::test(start_paused = true)]
async fn coordinator_calls_do_not_grow_with_the_fire_rate() {
    let some = calls_with(100).await;
    let many = calls_with(1000).await;
    eprintln!("coordinator calls in 10 s: 100 jobs {some}, 1000 jobs {many}");
    // 10 times the fires (1,000 per second, at scattered instants), the same order of round trips: records
    // go in one write per 50 ms window, claims in one call per claim tick.
    assert!(
        many <= some + some / 4 + 20,
        "100 jobs: {some} calls in 10 s; 1000 jobs: {many} calls"
    );
    // And a bound per second: 20 record windows + 2 claim ticks + keep-alives and campaigns.
    assert!(many < 30 * 20, "{many} calls in 10 s");
}
