//! `Scheduler::create_many`: a batch is validated whole (errors name the index and field), created all or
//! none, and new jobs that arrive in bulk are placed on the least loaded nodes without a full rebalance, in a
//! way the full rebalancer agrees with (it would move nothing).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use campanile::clock::SystemClock;
use campanile::coordinator::Assignment;
use campanile::{Coordinator, JobId, Scheduler, SchedulerError};
use campanile_inproc::InprocCoordinator;

use super::*;

async fn member(coordinator: Arc<dyn Coordinator>, id: &str) -> Scheduler {
    Scheduler::builder()
        .coordinator(coordinator)
        .node_id(id)
        .clock(SystemClock::starting_at(T0).shared())
        .session_ttl(Duration::from_secs(4))
        .handler("record", |_| async { Ok(()) })
        .start()
        .await
        .expect("the node starts")
}

fn id(i: usize) -> JobId {
    JobId::new(format!("bulk-{i:05}")).unwrap()
}

/// Waits until an assignment places `jobs` jobs over `nodes` nodes.
async fn placed(coordinator: &Arc<dyn Coordinator>, jobs: usize, nodes: usize) -> Arc<Assignment> {
    let mut rx = coordinator.watch_assignment().await.unwrap();
    let wait = async {
        loop {
            if let Some(assignment) = rx.borrow_and_update().clone()
                && assignment.owners.len() == jobs
                && assignment
                    .owners
                    .values()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    == nodes
            {
                return assignment;
            }
            rx.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(600), wait)
        .await
        .expect("every job was placed")
}

#[tokio::test(start_paused = true)]
async fn jobs_created_in_bulk_are_placed_evenly_as_the_rebalancer_would() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let a = member(coordinator.clone(), "node-a").await;
    let _b = member(coordinator.clone(), "node-b").await;
    let _c = member(coordinator.clone(), "node-c").await;
    // Three batches, one after another, with one job of a plain create between them.
    let mut next = 0;
    for size in [1000, 1, 2500] {
        let batch = (next..next + size)
            .map(|i| (Some(id(i)), recording(&format!("job {i}"), "0 * * * *")))
            .collect();
        let created = a.create_many(batch).await.unwrap();
        assert_eq!(created.len(), size);
        assert_eq!(created[0].0, id(next));
        next += size;
    }
    a.create_with_id(id(next), recording("one more", "30 * * * *"))
        .await
        .unwrap();
    let total = next + 1;
    let assignment = placed(&coordinator, total, 3).await;
    let mut loads = BTreeMap::<&str, usize>::new();
    for owner in assignment.owners.values() {
        *loads.entry(owner.as_str()).or_default() += 1;
    }
    let (min, max) = (loads.values().min().unwrap(), loads.values().max().unwrap());
    assert!(max - min <= 1, "loads differ by at most one: {loads:?}");
    // The full rebalancer, given this placement, moves nothing.
    let jobs = coordinator.list_jobs().await.unwrap().jobs;
    let members = coordinator.members().await.unwrap().members;
    assert_eq!(
        campanile::assign::place(
            jobs.iter().map(|j| j.as_ref()),
            &members,
            Some(&assignment.owners)
        ),
        assignment.owners
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_checked_whole_and_created_all_or_none() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let (node, _rx) = node(coordinator.clone()).await;
    let job = |i: usize| (Some(id(i)), recording(&format!("job {i}"), "0 * * * *"));

    // A bad field: named with its index.
    let mut blank = job(2);
    blank.1.name = " ".into();
    match node.create_many(vec![job(0), job(1), blank]).await {
        Err(SchedulerError::Invalid(e)) => assert_eq!(e.field, "jobs[2].name", "{e}"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    // One id twice: both indexes.
    match node.create_many(vec![job(0), job(1), job(0)]).await {
        Err(SchedulerError::Invalid(e)) => {
            assert_eq!(e.field, "jobs[2].id", "{e}");
            assert!(e.reason.contains("jobs[0]"), "{e}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    // A job that would never fire.
    let mut past = job(1);
    past.1.schedule = campanile::Schedule::parse("@at 2020-01-01T00:00:00Z").unwrap();
    match node.create_many(vec![job(0), past]).await {
        Err(SchedulerError::Invalid(e)) => assert_eq!(e.field, "jobs[1].schedule", "{e}"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(node.list().await.unwrap().is_empty(), "nothing was created");

    // An id that exists: a conflict naming its index, and none of the others is created.
    node.create_with_id(id(5), recording("exists", "0 * * * *"))
        .await
        .unwrap();
    match node.create_many(vec![job(4), job(5), job(6)]).await {
        Err(SchedulerError::Conflict { job, detail }) => {
            assert_eq!(job, id(5));
            assert!(detail.contains("jobs[1]"), "{detail}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let ids: Vec<JobId> = node
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids, vec![id(5)]);

    // Without ids: generated, distinct.
    let created = node
        .create_many(
            (0..100)
                .map(|i| (None, recording(&format!("anonymous {i}"), "0 * * * *")))
                .collect(),
        )
        .await
        .unwrap();
    let distinct: std::collections::BTreeSet<&JobId> = created.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), 100);
    assert_eq!(node.list().await.unwrap().len(), 101);
}
