//! Crash-only behaviour on one node: a node killed without cleanup, and a child actor that dies. In both cases
//! the node (or its successor) resumes by itself and every instant ends as exactly one run record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use campanile::{JobId, Outcome, RunRecord};
use campanile_inproc::InprocCoordinator;

use super::*;

/// Asserts that the records cover every instant of an every-second job from `T0 + 1s` to the last recorded
/// one exactly once, and returns how many records of each outcome there are.
fn accounted_once(runs: &[RunRecord]) -> BTreeMap<&'static str, u32> {
    let mut covered = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    for run in runs {
        *outcomes.entry(run.outcome.as_str()).or_default() += 1;
        let mut t = run.scheduled_ms;
        while t <= run.last_ms() {
            *covered.entry(t).or_insert(0) += 1;
            t += 1000;
        }
    }
    let last = *covered.keys().last().expect("some records");
    for t in (T0 + 1000..=last).step_by(1000) {
        assert_eq!(
            covered.get(&t),
            Some(&1),
            "instant {t} is accounted for {:?} times: {runs:#?}",
            covered.get(&t)
        );
    }
    outcomes
}

#[tokio::test(start_paused = true)]
async fn a_killed_node_is_succeeded_and_every_instant_is_accounted_for_once() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let job = JobId::new("tick").unwrap();
    let (first, mut rx) = node(coordinator.clone()).await;
    first
        .create_with_id(job.clone(), recording("tick", "* * * * * *"))
        .await
        .unwrap();
    until_fired(&mut rx, &job, T0 + 3000).await;
    first.abort().await;

    // The same node id again (a restarted process): it waits out the old session, then takes over.
    let (second, mut rx) = node_at(coordinator.clone(), T0 + 3500).await;
    let seen = until_fired(&mut rx, &job, T0 + 15_000).await;
    second.shutdown(Duration::from_secs(5)).await.unwrap();

    let runs = history(&second, &job).await;
    let outcomes = accounted_once(&runs);
    // The killed node had claimed instants ahead and left no record of them: at-most-once makes them in doubt.
    assert!(
        outcomes.get("in_doubt").is_some_and(|&n| n >= 1),
        "{outcomes:?}: {runs:#?}"
    );
    assert!(
        runs.iter().all(|r| r.outcome != Outcome::Failed),
        "{runs:#?}"
    );
    let executed: Vec<i64> = runs
        .iter()
        .filter(|r| r.outcome.executed())
        .map(|r| r.scheduled_ms)
        .collect();
    let fired_after: Vec<i64> = seen.iter().map(|f| f.scheduled_ms).collect();
    for t in &fired_after {
        assert!(
            executed.contains(t),
            "fired {t} has no executed record: {runs:#?}"
        );
    }
    assert!(
        fired_after.iter().all(|&t| t > T0 + 3000),
        "the successor re-ran an instant the killed node ran: {fired_after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_child_actor_is_restarted_and_the_node_resumes_by_itself() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let job = JobId::new("tick").unwrap();
    let (scheduler, mut rx) = node(coordinator.clone()).await;
    scheduler
        .create_with_id(job.clone(), recording("tick", "* * * * * *"))
        .await
        .unwrap();
    until_fired(&mut rx, &job, T0 + 2000).await;

    let children = scheduler.actor().get_children();
    assert_eq!(children.len(), 4, "membership, timer, executor, recorder");
    children[0].kill();

    // After the restart (a new session, once the old one expired) the job fires again.
    until_fired(&mut rx, &job, T0 + 15_000).await;
    assert_eq!(
        scheduler.actor().get_children().len(),
        4,
        "the set was restarted"
    );
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
    accounted_once(&history(&scheduler, &job).await);
}

#[tokio::test(start_paused = true)]
async fn a_node_frozen_past_its_ttl_fences_itself_and_rejoins() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let job = JobId::new("tick").unwrap();
    let (scheduler, mut rx) = node(coordinator.clone()).await;
    scheduler
        .create_with_id(job.clone(), recording("tick", "* * * * * *"))
        .await
        .unwrap();
    until_fired(&mut rx, &job, T0 + 2000).await;
    let before = scheduler
        .status()
        .await
        .unwrap()
        .session
        .expect("a session");

    // Frozen for 10 s, more than twice the 4 s TTL: the session expires meanwhile.
    scheduler.freeze(Duration::from_secs(10)).unwrap();
    let seen = until_fired(&mut rx, &job, T0 + 20_000).await;
    let after = scheduler
        .status()
        .await
        .unwrap()
        .session
        .expect("a session again");
    assert_ne!(before, after, "the node rejoined with a new session");
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();

    let runs = history(&scheduler, &job).await;
    accounted_once(&runs);
    let mut fired: Vec<i64> = seen.iter().map(|f| f.scheduled_ms).collect();
    let count = fired.len();
    fired.dedup();
    assert_eq!(fired.len(), count, "an instant fired twice: {fired:?}");
}
