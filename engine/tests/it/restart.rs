//! Durability on one node: jobs and history survive a restart of the process (durable in-process backend),
//! and instants that passed while the node was down are accounted for by the misfire policy.

use std::sync::Arc;
use std::time::Duration;

use campanile::job::MisfirePolicy;
use campanile::{JobId, Outcome};
use campanile_inproc::InprocCoordinator;

use super::*;

#[tokio::test(start_paused = true)]
async fn jobs_and_history_survive_a_restart_and_downtime_is_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("campanile.redb");
    let job_id = JobId::new("every-second").unwrap();
    {
        let coordinator = InprocCoordinator::open(&path).unwrap();
        let (scheduler, mut rx) = node(Arc::new(coordinator)).await;
        let mut spec = recording("every-second", "* * * * * *");
        spec.misfire = MisfirePolicy::FireOnce;
        scheduler
            .create_with_id(job_id.clone(), spec)
            .await
            .unwrap();
        until_fired(&mut rx, &job_id, T0 + 3000).await;
        scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    // Down for 30 seconds: nothing runs (the virtual clock moves on).
    tokio::time::advance(Duration::from_secs(30)).await;

    let coordinator = InprocCoordinator::open(&path).unwrap();
    let (scheduler, mut rx) = node_at(Arc::new(coordinator), T0 + 33_500).await;
    let job = scheduler
        .get(&job_id)
        .await
        .unwrap()
        .expect("the job survived the restart");
    assert_eq!(job.spec.name, "every-second");
    until_fired(&mut rx, &job_id, T0 + 36_000).await;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();

    let runs = history(&scheduler, &job_id).await;
    let before: Vec<i64> = runs
        .iter()
        .filter(|r| r.scheduled_ms <= T0 + 3000)
        .map(|r| r.scheduled_ms)
        .collect();
    assert_eq!(
        before,
        vec![T0 + 1000, T0 + 2000, T0 + 3000],
        "history survived: {runs:#?}"
    );
    // Every instant from the first one to the last one fired is accounted for exactly once.
    let last = runs.iter().map(|r| r.last_ms()).max().unwrap();
    let mut covered = 0;
    for run in &runs {
        covered += run.count as i64;
    }
    assert_eq!(
        covered,
        (last - T0) / 1000,
        "every instant accounted for once: {runs:#?}"
    );
    assert!(
        runs.iter()
            .any(|r| r.outcome == Outcome::Misfired && r.count > 1),
        "downtime is recorded: {runs:#?}"
    );
}
