//! Criterion benchmark of remote dispatch: a manual fire (`Scheduler::trigger`) of a job of an executor
//! group, from the trigger on the owning node to the start of the handler on an embedded worker linked to it
//! over loopback TCP (`ractor_cluster`: the offer, `Ready`, the go, then the start), beside the same trigger of
//! a job whose handler runs on the node itself, in the same run.
//!
//! - `remote_dispatch/local`: trigger → the node's own handler running.
//! - `remote_dispatch/worker`: trigger → the worker's handler running.
//!
//! Both include the trigger's write to the in-process coordinator and the owner noticing it; the difference is
//! what the worker adds.

use std::sync::Arc;
use std::time::Duration;

use campanile::cluster::LOOPBACK_COOKIE;
use campanile::job::{ExecutorGroup, HandlerTarget, Overlap};
use campanile::{ClusterConfig, FireContext, JobId, JobSpec, Schedule, Scheduler, Target, Worker};
use campanile_inproc::InprocCoordinator;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A job that fires only when triggered (its schedule's next instant is years away), running `handler`.
fn job(handler: &str, group: Option<&str>) -> JobSpec {
    let mut spec = JobSpec::new(
        handler,
        Schedule::parse("0 0 1 1 *").expect("a valid schedule"),
        Target::Handler(HandlerTarget::new(handler)),
    );
    spec.overlap = Overlap::Allow;
    spec.executor = group.map(|g| ExecutorGroup { group: g.into() });
    spec
}

/// A node with a cluster port on loopback, an embedded worker linked to it, and two jobs it owns: `local`
/// (its handler on the node) and `remote` (on the worker). `started` is notified when either handler starts.
async fn rig(started: Arc<Notify>) -> (Scheduler, Worker) {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    let on_node = started.clone();
    let scheduler = Scheduler::builder()
        .coordinator(Arc::new(InprocCoordinator::memory()))
        .node_id("bench")
        .cluster(ClusterConfig {
            listen: addr,
            cookie: LOOPBACK_COOKIE.to_owned(),
            advertise: None,
            tls: None,
        })
        .handler("local", move |_: FireContext| {
            on_node.notify_one();
            async { Ok(()) }
        })
        .start()
        .await
        .expect("the node starts");
    let on_worker = started.clone();
    let worker = Worker::builder()
        .join([addr.to_string()])
        .group("bench")
        .id("bench-worker")
        .handler("remote", move |_: FireContext| {
            on_worker.notify_one();
            async { Ok(()) }
        })
        .start()
        .await
        .expect("the worker starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while scheduler.workers().is_empty() {
        assert!(Instant::now() < deadline, "the worker never registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (id, spec) in [
        ("local", job("local", None)),
        ("remote", job("remote", Some("bench"))),
    ] {
        scheduler
            .create_with_id(JobId::new(id).expect("a valid id"), spec)
            .await
            .expect("the job is created");
    }
    while scheduler.status().await.map_or(0, |s| s.owned) < 2 {
        assert!(Instant::now() < deadline, "the node never took its jobs");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (scheduler, worker)
}

/// Triggers `job` `iters` times, one after another, and returns the total time from each trigger to its
/// handler's start.
async fn triggers(scheduler: &Scheduler, started: &Notify, job: &JobId, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let at = Instant::now();
        scheduler.trigger(job).await.expect("the trigger is taken");
        started.notified().await;
        total += at.elapsed();
    }
    total
}

fn remote_dispatch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Arc::new(Notify::new());
    let (scheduler, worker) = runtime.block_on(rig(started.clone()));
    let mut group = c.benchmark_group("remote_dispatch");
    group.measurement_time(Duration::from_secs(10));
    for id in ["local", "remote"] {
        let job = JobId::new(id).expect("a valid id");
        let name = if id == "local" { "local" } else { "worker" };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| runtime.block_on(triggers(&scheduler, &started, &job, iters)))
        });
    }
    group.finish();
    runtime.block_on(async {
        worker.stop().await;
        let _ = scheduler.shutdown(Duration::from_secs(5)).await;
    });
    drop::<Runtime>(runtime);
}

criterion_group!(benches, remote_dispatch);
criterion_main!(benches);
