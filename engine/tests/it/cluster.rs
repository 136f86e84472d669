//! Several nodes over one coordinator: jobs spread over the members, and a graceful leave hands a node's jobs
//! over with no missed and no late fire.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use campanile::clock::SystemClock;
use campanile::{FireId, JobId, Outcome, Scheduler};
use campanile_inproc::InprocCoordinator;
use tokio::sync::mpsc;

use super::*;

/// A node named `id` whose `record` handler reports on `tx`.
async fn member(
    coordinator: Arc<dyn Coordinator>,
    id: &str,
    tx: mpsc::UnboundedSender<(String, FireId)>,
) -> Scheduler {
    let name = id.to_owned();
    Scheduler::builder()
        .coordinator(coordinator)
        .node_id(id)
        .clock(SystemClock::starting_at(T0).shared())
        .session_ttl(Duration::from_secs(4))
        .handler("record", move |ctx| {
            let tx = tx.clone();
            let name = name.clone();
            async move {
                let _ = tx.send((name, ctx.fire));
                Ok(())
            }
        })
        .start()
        .await
        .expect("the node starts")
}

/// Waits until `job` fired at `at`, collecting `(node, fire)` on the way.
async fn until(
    rx: &mut mpsc::UnboundedReceiver<(String, FireId)>,
    job: &JobId,
    at: i64,
) -> Vec<(String, FireId)> {
    let mut seen = Vec::new();
    let wait = async {
        while let Some((node, fire)) = rx.recv().await {
            let done = fire.job == *job && fire.scheduled_ms == at;
            seen.push((node, fire));
            if done {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(600), wait)
        .await
        .expect("the fire came");
    seen
}

#[tokio::test(start_paused = true)]
async fn a_graceful_leave_hands_jobs_over_with_no_missed_and_no_late_fire() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = member(coordinator.clone(), "node-a", tx.clone()).await;
    let b = member(coordinator.clone(), "node-b", tx).await;
    let jobs: Vec<JobId> = (0..6)
        .map(|i| JobId::new(format!("job-{i}")).unwrap())
        .collect();
    for id in &jobs {
        a.create_with_id(id.clone(), recording(id.as_str(), "* * * * * *"))
            .await
            .unwrap();
    }
    let seen = until(&mut rx, &jobs[0], T0 + 3000).await;
    let nodes: std::collections::BTreeSet<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes.len(), 2, "both nodes own jobs: {nodes:?}");

    // node-a leaves while its jobs keep coming due.
    let leaving = tokio::spawn({
        let a = a.clone();
        async move { a.shutdown(Duration::from_secs(5)).await }
    });
    let seen = until(&mut rx, &jobs[5], T0 + 12_000).await;
    leaving.await.unwrap().unwrap();
    assert!(
        seen.iter()
            .filter(|(_, f)| f.scheduled_ms >= T0 + 10_000)
            .all(|(n, _)| n == "node-b"),
        "node-b owns everything after the leave"
    );
    b.shutdown(Duration::from_secs(5)).await.unwrap();

    for id in &jobs {
        let runs: Vec<_> = history(&b, id)
            .await
            .into_iter()
            .filter(|r| r.scheduled_ms <= T0 + 12_000)
            .collect();
        let instants: Vec<i64> = runs.iter().map(|r| r.scheduled_ms).collect();
        assert_eq!(
            instants,
            (1..=12).map(|i| T0 + i * 1000).collect::<Vec<_>>(),
            "{id}: every instant once: {runs:#?}"
        );
        for run in &runs {
            assert_eq!(
                run.outcome,
                Outcome::Succeeded,
                "{id}: no misfire, no doubt: {run:?}"
            );
            let late = run.started_ms.unwrap() - run.scheduled_ms;
            assert!(
                late < 50,
                "{id}: {late} ms late across the handover: {run:?}"
            );
        }
        let by_node: BTreeMap<&str, usize> = runs.iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.node.as_str()).or_default() += 1;
            m
        });
        assert!(by_node.contains_key("node-b"), "{id}: {by_node:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn triggers_in_one_millisecond_on_different_nodes_get_different_fire_ids() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let nodes = [
        member(coordinator.clone(), "n1", tx.clone()).await,
        member(coordinator.clone(), "n2", tx.clone()).await,
        member(coordinator.clone(), "n3", tx.clone()).await,
    ];
    // Until all three are members (virtual time; a failure bound, not a synchronization).
    tokio::time::timeout(Duration::from_secs(60), async {
        while coordinator.members().await.unwrap().members.len() < 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("three members");
    let job = nodes[0]
        .create_with_id(JobId::new("hot").unwrap(), recording("hot", "@yearly"))
        .await
        .unwrap();

    // Paused time does not move between these calls: every trigger is asked in the same millisecond.
    let mut fires = Vec::new();
    for _ in 0..10 {
        for node in &nodes {
            fires.push(node.trigger(&job.id).await.unwrap());
        }
    }
    let unique: std::collections::BTreeSet<i64> = fires.iter().map(|f| f.scheduled_ms).collect();
    assert_eq!(
        unique.len(),
        fires.len(),
        "one fire id per trigger: {fires:?}"
    );

    // And every one of them runs.
    let mut ran = std::collections::BTreeSet::new();
    while !unique.is_subset(&ran) {
        let (_, fire) = rx.recv().await.expect("the nodes run");
        ran.insert(fire.scheduled_ms);
    }
    for node in &nodes {
        node.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let manual = history(&nodes[0], &job.id)
        .await
        .into_iter()
        .filter(|r| r.manual && r.outcome == Outcome::Succeeded)
        .count();
    assert_eq!(manual, fires.len());
}
