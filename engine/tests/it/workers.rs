//! Executor groups in one process: a node with a cluster port and an embedded `campanile::Worker` linked to it
//! over loopback TCP (real `ractor_cluster` sessions, real time). The multi-process cases (kill -9, SIGSTOP,
//! restarts) are in the runtime's tests.

use std::sync::Arc;
use std::time::Duration;

use campanile::job::{ExecutorGroup, HandlerTarget};
use campanile::{ClusterConfig, FireId, Outcome, Scheduler, Worker, WorkerError};
use campanile_inproc::InprocCoordinator;
use tokio::sync::mpsc;

use super::*;

/// A loopback address with a free port.
fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A node `id` with a cluster port on `addr`, on real time. Each test names its node differently: the tests
/// share one process, and so `ractor`'s process groups, which every cluster session advertises whole.
async fn node_listening(id: &str, addr: std::net::SocketAddr) -> Scheduler {
    Scheduler::builder()
        .coordinator(Arc::new(InprocCoordinator::memory()))
        .node_id(id)
        .session_ttl(Duration::from_secs(4))
        .cluster(ClusterConfig {
            listen: addr,
            cookie: "sesame".into(),
            advertise: None,
            tls: None,
        })
        .start()
        .await
        .expect("the node starts")
}

fn on_group(mut spec: JobSpec, group: &str) -> JobSpec {
    spec.executor = Some(ExecutorGroup {
        group: group.into(),
    });
    spec
}

/// Polls the job's history until a record matches, or fails after `bound` (a failure bound, not a sleep to
/// synchronize).
async fn until_record(
    scheduler: &Scheduler,
    job: &campanile::JobId,
    bound: Duration,
    matches: impl Fn(&RunRecord) -> bool,
) -> RunRecord {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Some(found) = history(scheduler, job)
            .await
            .into_iter()
            .find(|r| matches(r))
        {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no matching record of {job} within {bound:?}: {:#?}",
            history(scheduler, job).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_an_executor_group_runs_on_a_worker_of_that_group() {
    let addr = free_addr();
    let node = node_listening("node-a", addr).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(FireId, String)>();
    let worker = Worker::builder()
        .join([addr.to_string()])
        .group("billing")
        .id("w1")
        .cookie("sesame")
        .handler("invoice", move |ctx| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((ctx.fire, ctx.node.to_string()));
                Ok(())
            }
        })
        .start()
        .await
        .expect("the worker joins");
    let job = node
        .create(on_group(
            JobSpec::new(
                "invoice",
                Schedule::parse("* * * * * *").unwrap(),
                Target::Handler(HandlerTarget::new("invoice")),
            ),
            "billing",
        ))
        .await
        .unwrap();
    let (fire, owner) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the worker runs a fire")
        .unwrap();
    assert_eq!(fire.job, job.id);
    assert_eq!(owner, "node-a", "the handler is told the owning node");
    let record = until_record(&node, &job.id, Duration::from_secs(10), |r| {
        r.scheduled_ms == fire.scheduled_ms
    })
    .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:?}");
    assert_eq!(record.reason.as_deref(), Some("worker w1"), "{record:?}");
    // Only w1 is asserted on: the other tests' workers share this process and its process groups, and may
    // show up here through w1's link; separate processes (the runtime's tests) do not have that.
    let workers = node.workers();
    let w1 = workers.iter().find(|w| w.id == "w1").expect("w1 is listed");
    assert_eq!((w1.group.as_str(), w1.node.as_str()), ("billing", "node-a"));
    assert_eq!(w1.handlers, ["invoice"]);
    worker.stop().await;
    node.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instant_without_a_worker_of_its_group_is_misfired_with_the_reason() {
    let addr = free_addr();
    let node = node_listening("node-b", addr).await;
    let job = node
        .create(on_group(recording("orphan", "* * * * * *"), "nobody"))
        .await
        .unwrap();
    let record = until_record(&node, &job.id, Duration::from_secs(30), |r| {
        r.outcome != Outcome::Skipped
    })
    .await;
    assert_eq!(record.outcome, Outcome::Misfired, "{record:?}");
    assert!(
        record
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("no worker of group nobody")),
        "{record:?}"
    );
    assert_eq!(record.started_ms, None, "{record:?}");
    node.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_the_wrong_cookie_is_refused_with_a_message() {
    let addr = free_addr();
    let node = node_listening("node-c", addr).await;
    let refused = Worker::builder()
        .join([addr.to_string()])
        .group("billing")
        .cookie("not-sesame")
        .handshake_timeout(Duration::from_secs(1))
        .start()
        .await
        .expect_err("a wrong cookie is refused");
    assert!(
        matches!(refused, WorkerError::Handshake { .. }),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("cookie"), "{refused}");
    node.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_bad_group_name_is_refused_naming_the_field() {
    let error = Worker::builder()
        .join(["127.0.0.1:1"])
        .group("no spaces")
        .start()
        .await
        .expect_err("refused");
    assert_eq!(
        error.to_string(),
        r#"group: "no spaces" is not a group name (1 to 64 of A-Z a-z 0-9 . _ -)"#
    );
    let spec = on_group(recording("x", "* * * * * *"), "no spaces");
    let error = spec.validate().expect_err("refused");
    assert_eq!(error.field, "executor.group", "{error}");
}
