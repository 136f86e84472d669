//! Runs asked for outside the schedule (`trigger`, `backfill`) go where the job lives: whichever node is
//! asked, the job's owner runs them, under its node labels, and a request waits in the job until an owner
//! can run it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use campanile::clock::SystemClock;
use campanile::coordinator::{Precondition, SessionId};
use campanile::job::{Delivery, RunRequest};
use campanile::{FireId, JobId, Outcome, Scheduler};
use campanile_inproc::InprocCoordinator;
use tokio::sync::mpsc;

use super::*;

/// A node named `id` with `labels`, whose `record` handler reports `(node, fire)` on `tx`.
async fn labelled(
    coordinator: Arc<dyn Coordinator>,
    id: &str,
    labels: &[&str],
    tx: mpsc::UnboundedSender<(String, FireId)>,
) -> Scheduler {
    let name = id.to_owned();
    Scheduler::builder()
        .coordinator(coordinator)
        .node_id(id)
        .labels(labels.iter().copied())
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

/// Collects `(node, fire)` until every fire of `wanted` was seen (bounded in virtual time).
async fn until_all(
    rx: &mut mpsc::UnboundedReceiver<(String, FireId)>,
    wanted: &[FireId],
) -> Vec<(String, FireId)> {
    let wanted: BTreeSet<&FireId> = wanted.iter().collect();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(600), async {
        while !wanted
            .iter()
            .all(|w| seen.iter().any(|(_, f): &(String, FireId)| f == *w))
        {
            seen.push(rx.recv().await.expect("the nodes run"));
        }
    })
    .await
    .expect("every requested run came");
    seen
}

/// A yearly job that only a node labelled `gpu` may own.
fn gpu_job(name: &str) -> JobSpec {
    let mut spec = recording(name, "@yearly");
    spec.node_labels = BTreeSet::from(["gpu".to_owned()]);
    spec
}

#[tokio::test(start_paused = true)]
async fn triggers_and_backfills_asked_of_any_node_run_on_the_jobs_owner() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let plain = labelled(coordinator.clone(), "plain", &[], tx.clone()).await;
    let gpu = labelled(coordinator.clone(), "gpu", &["gpu"], tx).await;
    let job = plain
        .create_with_id(JobId::new("train").unwrap(), gpu_job("train"))
        .await
        .unwrap();

    let mut fires = Vec::new();
    for _ in 0..3 {
        fires.push(plain.trigger(&job.id).await.unwrap());
    }
    let from = chrono::DateTime::from_timestamp_millis(T0 - 3 * 366 * 86_400_000).unwrap();
    let to = chrono::DateTime::from_timestamp_millis(T0).unwrap();
    let backfilled = plain.backfill(&job.id, from, to).await.unwrap();
    assert!(!backfilled.is_empty(), "past yearly instants to backfill");
    fires.extend(backfilled);

    let seen = until_all(&mut rx, &fires).await;
    assert!(
        seen.iter().all(|(node, _)| node == "gpu"),
        "only the node the job's labels allow runs it: {seen:?}"
    );
    // Once their records are stored, the requests leave the job.
    tokio::time::timeout(Duration::from_secs(600), async {
        while !gpu.get(&job.id).await.unwrap().unwrap().requests.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the recorded requests leave the job");
    plain.shutdown(Duration::from_secs(5)).await.unwrap();
    gpu.shutdown(Duration::from_secs(5)).await.unwrap();
    let runs = history(&gpu, &job.id).await;
    assert_eq!(runs.len(), fires.len(), "one record per request: {runs:#?}");
    assert!(
        runs.iter()
            .all(|r| r.manual && r.outcome == Outcome::Succeeded && r.node.as_str() == "gpu"),
        "{runs:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_take_whose_answer_was_lost_still_runs_the_request_once() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let faulty = Arc::new(campanile_adapters::FaultyCoordinator::new(
        coordinator.clone(),
        11,
    ));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let plain = labelled(coordinator.clone(), "plain", &[], tx.clone()).await;
    let gpu = labelled(faulty.clone(), "gpu", &["gpu"], tx).await;
    let job = plain
        .create_with_id(JobId::new("train").unwrap(), gpu_job("train"))
        .await
        .unwrap();
    // Until the owner holds the job (a failure bound in virtual time, not a synchronization).
    tokio::time::timeout(Duration::from_secs(60), async {
        while coordinator.claim_of(&job.id).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the owner claims the job");
    // Every job write of the owner lands, and its answer is lost.
    faulty.control().fail_randomly_on(
        &[campanile_adapters::Method::PutJob],
        1.0,
        campanile_adapters::Fault::ReplyLost,
    );

    let fire = plain.trigger(&job.id).await.unwrap();
    let seen = until_all(&mut rx, std::slice::from_ref(&fire)).await;
    assert_eq!(seen, vec![("gpu".to_owned(), fire.clone())]);
    let stats = faulty.control().stats();
    assert!(
        stats.calls_of(campanile_adapters::Method::PutJob) >= 1 && stats.replies_lost >= 1,
        "the owner took the request with a job write whose answer was lost: {stats:?}"
    );
    faulty.control().stop_failing();
    plain.shutdown(Duration::from_secs(5)).await.unwrap();
    gpu.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(rx.try_recv().is_err(), "the request ran once");
    let runs = history(&plain, &job.id).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_trigger_waits_in_the_job_until_a_node_may_own_it() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let plain = labelled(coordinator.clone(), "plain", &[], tx.clone()).await;
    let job = plain
        .create_with_id(JobId::new("train").unwrap(), gpu_job("train"))
        .await
        .unwrap();
    let fire = plain.trigger(&job.id).await.unwrap();

    // No node may own the job: nothing runs, however long (virtual time), and the request waits.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(rx.try_recv().is_err(), "the answering node ran it");
    let waiting = plain.get(&job.id).await.unwrap().unwrap().requests;
    assert_eq!(
        waiting,
        vec![RunRequest::new(fire.scheduled_ms, false)],
        "the request waits in the job"
    );

    // A node that may own it comes, takes the request and runs it.
    let gpu = labelled(coordinator.clone(), "gpu", &["gpu"], tx).await;
    let seen = until_all(&mut rx, std::slice::from_ref(&fire)).await;
    assert_eq!(seen, vec![("gpu".to_owned(), fire)]);
    plain.shutdown(Duration::from_secs(5)).await.unwrap();
    gpu.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_taker_is_gone_without_a_record_is_settled_by_the_delivery_mode() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let owner = labelled(coordinator.clone(), "owner", &[], tx).await;
    let gone = SessionId(u64::MAX - 1); // never a live session
    let mut ids = Vec::new();
    for (name, delivery) in [
        ("again", Delivery::AtLeastOnce),
        ("once", Delivery::AtMostOnce),
    ] {
        let mut spec = recording(name, "@yearly");
        spec.delivery = delivery;
        let mut job = owner
            .create_with_id(JobId::new(name).unwrap(), spec)
            .await
            .unwrap();
        // A taker that died before its run was recorded: what a crashed owner leaves behind.
        job.requests = vec![RunRequest {
            taken: Some(gone),
            ..RunRequest::new(T0 + 1, false)
        }];
        coordinator
            .put_job(job.clone(), Precondition::Revision(job.revision))
            .await
            .unwrap();
        ids.push(job.id);
    }

    let again = FireId::new(ids[0].clone(), T0 + 1);
    until_all(&mut rx, std::slice::from_ref(&again)).await;
    let once = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            let runs = history(&owner, &ids[1]).await;
            if !runs.is_empty() {
                return runs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the at-most-once request is settled");
    owner.shutdown(Duration::from_secs(5)).await.unwrap();

    let runs = history(&owner, &ids[0]).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].outcome, Outcome::Succeeded, "run again: {runs:#?}");
    assert_eq!(once.len(), 1, "{once:#?}");
    assert_eq!(
        once[0].outcome,
        Outcome::InDoubt,
        "not run again: {once:#?}"
    );
    assert!(
        rx.try_recv().is_err(),
        "the at-most-once request did not run"
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_job_runs_a_trigger_but_not_its_schedule() {
    let (scheduler, mut rx) = node(Arc::new(InprocCoordinator::memory())).await;
    let mut spec = recording("paused", "* * * * * *");
    spec.paused = true;
    let job = scheduler
        .create_with_id(JobId::new("paused").unwrap(), spec)
        .await
        .unwrap();
    let fire = scheduler.trigger(&job.id).await.unwrap();
    let seen = until_fired(&mut rx, &job.id, fire.scheduled_ms).await;
    assert_eq!(seen, vec![fire], "only the trigger ran");
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_job_holds_at_most_ten_thousand_waiting_requests() {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let (tx, _rx) = mpsc::unbounded_channel();
    let plain = labelled(coordinator.clone(), "plain", &[], tx).await;
    // Nobody may own it, so nothing it is asked for runs, and its requests pile up.
    let mut spec = gpu_job("minutely");
    spec.schedule = campanile::Schedule::parse("* * * * *").unwrap();
    let job = plain
        .create_with_id(JobId::new("minutely").unwrap(), spec)
        .await
        .unwrap();
    let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap();
    let full = plain
        .backfill(&job.id, at(T0 - 10_000 * 60_000), at(T0 - 1))
        .await
        .unwrap();
    assert_eq!(full.len(), campanile::job::MAX_PENDING_REQUESTS);

    let err = plain.trigger(&job.id).await.unwrap_err();
    let campanile::SchedulerError::Invalid(err) = err else {
        panic!("{err}")
    };
    assert_eq!(err.field, "id", "{err}");
    assert!(err.reason.contains("at most 10000"), "{err}");
    let err = plain
        .backfill(&job.id, at(T0 - 10_001 * 60_000), at(T0 - 1))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("to: "), "{err}");
    assert_eq!(
        plain.get(&job.id).await.unwrap().unwrap().requests.len(),
        campanile::job::MAX_PENDING_REQUESTS,
        "a refused request adds nothing"
    );
    plain.shutdown(Duration::from_secs(5)).await.unwrap();
}
