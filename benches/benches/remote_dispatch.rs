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
//!
//! With `REMOTE_DISPATCH_LOAD=JOBS[,JOBS…]` set, it runs the load mode instead of criterion (see [`load`]):
//! that many jobs due every second, run on the node itself, on one worker and on ten, with the fires started
//! per second and the p50/p99 of owner's wake → handler start.

use std::sync::Arc;
use std::time::Duration;

use campanile::cluster::LOOPBACK_COOKIE;
use campanile::job::{ExecutorGroup, HandlerTarget, Overlap};
use campanile::{ClusterConfig, FireContext, JobId, JobSpec, Schedule, Scheduler, Target, Worker};
use campanile_inproc::InprocCoordinator;
use criterion::{Criterion, criterion_group};
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

fn main() {
    if let Ok(jobs) = std::env::var("REMOTE_DISPATCH_LOAD") {
        load::main(&jobs);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// The load mode: `JOBS` jobs every second (`* * * * * *`, all due at each whole second), for
/// `REMOTE_DISPATCH_SECONDS` (default 5) seconds after a 2-second warm-up, on a fresh node each time, with
/// their handler on the node (`local`), on one embedded worker, or spread over ten (each at the worker's
/// default `max_concurrent`, 16), all linked over loopback TCP in this process. Each handler records its
/// start against its fire's scheduled instant (`campanile_benches::tally`): the owner's timer wakes at the
/// instant, so that is the owner's wake → the handler's start, the same lateness as the fire path's.
mod load {
    use super::*;
    use campanile::clock::{Clock, SystemClock};
    use campanile_benches::machine;
    use campanile_benches::tally::Tally;

    pub fn main(jobs: &str) {
        let jobs: Vec<usize> = jobs
            .split(',')
            .map(|j| {
                j.trim()
                    .parse()
                    .expect("REMOTE_DISPATCH_LOAD: job counts, comma-separated")
            })
            .collect();
        let seconds: i64 = std::env::var("REMOTE_DISPATCH_SECONDS").map_or(5, |s| {
            s.parse().expect("REMOTE_DISPATCH_SECONDS: a whole number")
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        println!("{}", machine::describe());
        println!(
            "| jobs due each second | runs on | fires started/s | started of due | p50 | p99 | max | load avg |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for &jobs in &jobs {
            for workers in [0, 1, 10] {
                println!("{}", runtime.block_on(run(jobs, workers, seconds)));
            }
        }
    }

    async fn run(jobs: usize, workers: usize, seconds: i64) -> String {
        let tally = Arc::new(Tally::new());
        let clock = SystemClock::new().shared();
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let recorder = |tally: &Arc<Tally>, clock: &Arc<dyn Clock>| {
            let (tally, clock) = (tally.clone(), clock.clone());
            move |ctx: FireContext| {
                tally.record(ctx.fire.scheduled_ms, clock.now_us());
                async { Ok(()) }
            }
        };
        let scheduler = Scheduler::builder()
            .coordinator(Arc::new(InprocCoordinator::memory()))
            .node_id("bench")
            .clock(clock.clone())
            .cluster(ClusterConfig {
                listen: addr,
                cookie: LOOPBACK_COOKIE.to_owned(),
                advertise: None,
                tls: None,
            })
            .handler("local", recorder(&tally, &clock))
            .start()
            .await
            .expect("the node starts");
        let mut pool = Vec::new();
        for i in 0..workers {
            pool.push(
                Worker::builder()
                    .join([addr.to_string()])
                    .group("bench")
                    .id(format!("bench-worker-{i}"))
                    .handler("remote", recorder(&tally, &clock))
                    .start()
                    .await
                    .expect("the worker starts"),
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while scheduler.workers().len() < workers {
            assert!(Instant::now() < deadline, "the workers never registered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let group = (workers > 0).then_some("bench");
        for i in 0..jobs {
            let mut spec = job(if workers > 0 { "remote" } else { "local" }, group);
            spec.schedule = Schedule::parse("* * * * * *").expect("a valid schedule");
            scheduler
                .create_with_id(JobId::new(format!("job-{i:06}")).expect("a valid id"), spec)
                .await
                .expect("the job is created");
        }
        while scheduler.status().await.map_or(0, |s| s.owned) < jobs {
            assert!(Instant::now() < deadline, "the node never took its jobs");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let from_ms = (clock.now_ms() / 1000 + 2) * 1000;
        let to_ms = from_ms + seconds * 1000;
        tally.set_window(from_ms, to_ms);
        // Until the window's last instant has had a second and a half to start.
        tokio::time::sleep(Duration::from_millis(
            (to_ms + 1500 - clock.now_ms()).max(0) as u64,
        ))
        .await;
        let summary = tally.summary();
        let load = machine::load_average().map_or_else(|| "-".to_owned(), |l| format!("{l:.1}"));
        for worker in pool {
            worker.stop().await;
        }
        let _ = scheduler.shutdown(Duration::from_secs(5)).await;
        let runs_on = match workers {
            0 => "the node".to_owned(),
            1 => "1 worker".to_owned(),
            n => format!("{n} workers"),
        };
        let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
        format!(
            "| {jobs} | {runs_on} | {:.0} | {} of {} | {} | {} | {} | {load} |",
            summary.fires as f64 / seconds as f64,
            summary.fires,
            jobs as i64 * seconds,
            ms(summary.p50_us),
            ms(summary.p99_us),
            ms(summary.max_us),
        )
    }
}
