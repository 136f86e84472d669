//! Criterion benchmark of the fire path on the in-process backend: timer wake → executor (overlap decision and
//! start).
//!
//! The executor and recorder actors run as a node runs them (wired as in `node::spawn_children`), on a
//! multi-thread tokio runtime. Each iteration asks a timer `State` holding claimed every-second jobs to
//! `wake` at the next instant, casts the due fires to the executor as the timer actor does, and waits until
//! the handler of every fire has started. The alarm task's `Wake` message to the timer actor is not included
//! (one more actor hop, about 1 µs).
//!
//! - `fire_path/one_fire`: one job due; the time is wake → that handler running.
//! - `fire_path/batch_1000`: 1,000 jobs due at one instant; throughput is per fire (criterion's `elem/s`).
//! - `fire_path/timer_wake_1000`: the timer's `wake` alone for 1,000 due jobs (no actors), for comparison.
//! - `fire_path/peer_spawn_one`, `fire_path/peer_spawn_1000`: the peer, measured in the same run: the bare
//!   floor of any design that starts a task per fire: `tokio::spawn` of the same no-op handler and the same
//!   signal, with no scheduler logic at all.
//! - `fire_path/peer_channel_one`: the floor of a design whose fires go to a long-lived task (an actor's
//!   hop): a send on an unbounded channel to one task that signals the start.
//!
//! Design targets (design.md): ≤ 2 µs per fire, ≥ 1 M fires/s to no-op handlers.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use campanile::clock::SystemClock;
use campanile::coordinator::{ClaimResult, Coordinator, JobClaim, NodeId, NodeInfo, SessionId};
use campanile::job::{HandlerTarget, Overlap};
use campanile::node::{executor, recorder, timer};
use campanile::{FireId, Job, JobId, JobSpec, Schedule, Target};
use campanile_inproc::InprocCoordinator;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ractor::{Actor, ActorRef};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A whole second (2026-09-21T14:13:20Z), so every-second instants line up with it.
const T0: i64 = 1_790_000_000_000;

/// Counts handler starts down to zero and then wakes the waiting benchmark loop.
#[derive(Default)]
struct Started {
    remaining: AtomicUsize,
    notify: Notify,
}

impl Started {
    fn expect(&self, n: usize) {
        self.remaining.store(n, Ordering::SeqCst);
    }

    fn one(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // `notify_one` keeps a permit if the loop is not waiting yet, so no start is lost.
            self.notify.notify_one();
        }
    }
}

/// The running actors of one fire path, and the timer state that feeds it.
struct Rig {
    executor: ActorRef<executor::Msg>,
    cells: Vec<ractor::ActorCell>,
    started: Arc<Started>,
    timer: Option<timer::State>,
    /// The next instant to wake at.
    now_ms: i64,
    jobs: Vec<JobId>,
}

async fn rig(jobs: usize) -> Rig {
    let coordinator: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
    let node = NodeId::new("bench").expect("valid node id");
    let info = NodeInfo {
        id: node.clone(),
        labels: BTreeSet::new(),
        capacity: None,
        address: None,
        cluster_address: None,
    };
    // A day-long session, so the recorder keeps writing (records of unknown jobs are dropped by the backend)
    // instead of holding every record in memory.
    let session = coordinator
        .open_session(info, Duration::from_secs(86_400))
        .await
        .expect("session");
    let started = Arc::new(Started::default());
    let handler: executor::Handler = {
        let started = started.clone();
        Arc::new(move |_ctx| -> executor::HandlerFuture {
            let started = started.clone();
            Box::pin(async move {
                started.one();
                Ok(())
            })
        })
    };
    let inbox = Arc::new(recorder::Inbox::default());
    let (recorder, _) = Actor::spawn(
        None,
        recorder::Recorder,
        recorder::Arguments {
            coordinator: coordinator.clone(),
            // Nobody subscribes: the recorder then skips announcing records.
            stored: tokio::sync::broadcast::channel(1).0,
            inbox: inbox.clone(),
            history: None,
        },
    )
    .await
    .expect("recorder");
    recorder
        .cast(recorder::Msg::SessionChanged(Some(session.id)))
        .expect("recorder is up");
    let (executor, _) = Actor::spawn(
        None,
        executor::Executor,
        executor::Arguments {
            hub: None,
            node: node.clone(),
            clock: SystemClock::new().shared(),
            handlers: Arc::new(executor::Handlers::from_iter([(
                "bench".to_owned(),
                handler,
            )])),
            max_concurrent: 10_000,
            records: recorder::Sink::new(recorder.clone(), inbox),
            // The bench's session never lapses.
            fence: Arc::new(std::sync::Mutex::new(Some(campanile::node::timer::Lease {
                session: session.id,
                valid_until_ms: i64::MAX,
            }))),
            revoked: Arc::default(),
            base_env: campanile::exec::BaseEnv::default(),
            egress: campanile::exec::Egress::default(),
        },
    )
    .await
    .expect("executor");
    let (timer, ids) = armed_timer(jobs, &node, session.id);
    Rig {
        cells: vec![executor.get_cell(), recorder.get_cell()],
        executor,
        started,
        timer: Some(timer),
        now_ms: T0,
        jobs: ids,
    }
}

/// A timer state holding `jobs` every-second jobs, each claimed far ahead, first due at [`T0`].
fn armed_timer(jobs: usize, node: &NodeId, session: SessionId) -> (timer::State, Vec<JobId>) {
    let mut state = timer::State::new(
        node.clone(),
        timer::Config {
            lookahead: Duration::from_secs(5),
            misfire_threshold: Duration::from_secs(5),
        },
    );
    state.set_lease(Some(timer::Lease {
        session,
        valid_until_ms: i64::MAX / 2,
    }));
    let every_second = Schedule::parse("* * * * * *").expect("valid cron");
    let jobs: Vec<Arc<Job>> = (0..jobs)
        .map(|i| {
            let mut spec = JobSpec::new(
                format!("bench-{i}"),
                every_second.clone(),
                Target::Handler(HandlerTarget::new("bench")),
            );
            // A run may still be reporting its end when the job's next instant arrives.
            spec.overlap = Overlap::Allow;
            let id = JobId::new(format!("bench-{i:05}")).expect("valid job id");
            // Owed from T0: created just before it.
            Arc::new(Job::new(id, spec, T0 - 1))
        })
        .collect();
    let ids = jobs.iter().map(|j| j.id.clone()).collect();
    state.upsert(jobs, T0 - 1);
    let grants = state
        .claims_due(T0 - 1, false)
        .into_iter()
        .map(|claim| timer::Granted {
            job: claim.job.clone(),
            result: ClaimResult::Granted {
                claim: JobClaim {
                    session,
                    node: node.clone(),
                    from_ms: claim.from_ms,
                    // Claimed ten years ahead: no renewal during a benchmark.
                    through_ms: T0 + 10 * 366 * 86_400_000,
                    settled_ms: claim.settled_ms,
                    previous: None,
                },
                previous: None,
            },
            asked: None,
        })
        .collect();
    state.granted(grants);
    (state, ids)
}

impl Rig {
    /// Runs `iters` wakes, each emitting one fire per job, and returns the time from each wake until every
    /// handler of that wake had started, summed.
    fn run(&mut self, rt: &Runtime, iters: u64) -> Duration {
        let mut timer = self.timer.take().expect("timer state is home");
        let executor = self.executor.clone();
        let started = self.started.clone();
        let jobs = self.jobs.clone();
        let mut now_ms = self.now_ms;
        // The loop runs as a task on the runtime, as the timer actor does.
        let task = rt.spawn(async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                started.expect(jobs.len());
                let begin = Instant::now();
                let fx = timer.wake(now_ms);
                debug_assert_eq!(fx.fires.len(), jobs.len());
                executor
                    .cast(executor::Msg::Run(fx.fires))
                    .expect("executor is up");
                started.notify.notified().await;
                total += begin.elapsed();
                // Untimed: the recorder would report these as stored; keeps the timer's bookkeeping flat.
                let settled: Vec<FireId> = jobs
                    .iter()
                    .map(|job| FireId {
                        job: job.clone(),
                        scheduled_ms: now_ms,
                    })
                    .collect();
                timer.settled(&settled);
                now_ms += 1000;
            }
            (timer, now_ms, total)
        });
        let (timer, now_ms, total) = rt
            .block_on(task)
            .expect("the benchmark loop does not panic");
        self.timer = Some(timer);
        self.now_ms = now_ms;
        total
    }

    fn stop(self, rt: &Runtime) {
        rt.block_on(async {
            for cell in self.cells {
                let _ = cell.stop_and_wait(None, Some(Duration::from_secs(5))).await;
            }
        });
    }
}

/// The peer: spawns `n` tasks that each signal a start, `iters` times; the time from the first spawn until
/// every task has started, summed.
fn spawn_floor(rt: &Runtime, n: usize, iters: u64) -> Duration {
    let started = Arc::new(Started::default());
    let task = rt.spawn(async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            started.expect(n);
            let begin = Instant::now();
            for _ in 0..n {
                let started = started.clone();
                tokio::spawn(async move { started.one() });
            }
            started.notify.notified().await;
            total += begin.elapsed();
        }
        total
    });
    rt.block_on(task)
        .expect("the benchmark loop does not panic")
}

/// A second peer: one long-lived task that receives each fire over an unbounded channel and signals its
/// start, as an actor would (the hop a scheduler with an executor task pays, without any of its logic); the
/// time from the send until the task has signalled, summed.
fn channel_floor(rt: &Runtime, iters: u64) -> Duration {
    let started = Arc::new(Started::default());
    let task = rt.spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let receiver = {
            let started = started.clone();
            tokio::spawn(async move {
                while let Some(fire) = rx.recv().await {
                    black_box(fire);
                    started.one();
                }
            })
        };
        let mut total = Duration::ZERO;
        for i in 0..iters {
            started.expect(1);
            let begin = Instant::now();
            tx.send(i).expect("the receiver is up");
            started.notify.notified().await;
            total += begin.elapsed();
        }
        drop(tx);
        let _ = receiver.await;
        total
    });
    rt.block_on(task)
        .expect("the benchmark loop does not panic")
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn fire_path(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("fire_path");

    let mut one = rt.block_on(rig(1));
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_fire", |b| b.iter_custom(|iters| one.run(&rt, iters)));
    one.stop(&rt);

    let mut batch = rt.block_on(rig(1000));
    group.throughput(Throughput::Elements(1000));
    group.bench_function("batch_1000", |b| {
        b.iter_custom(|iters| batch.run(&rt, iters))
    });
    batch.stop(&rt);

    group.throughput(Throughput::Elements(1));
    group.bench_function("peer_spawn_one", |b| {
        b.iter_custom(|iters| spawn_floor(&rt, 1, iters))
    });
    group.bench_function("peer_channel_one", |b| {
        b.iter_custom(|iters| channel_floor(&rt, iters))
    });
    group.throughput(Throughput::Elements(1000));
    group.bench_function("peer_spawn_1000", |b| {
        b.iter_custom(|iters| spawn_floor(&rt, 1000, iters))
    });

    // The timer's share of a batch: `wake` for 1,000 due jobs, fires dropped untimed.
    let node = NodeId::new("bench").expect("valid node id");
    let (mut timer, jobs) = armed_timer(1000, &node, SessionId(1));
    let mut now_ms = T0;
    group.bench_function("timer_wake_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let begin = Instant::now();
                let fx = timer.wake(black_box(now_ms));
                total += begin.elapsed();
                drop(fx);
                let settled: Vec<FireId> = jobs
                    .iter()
                    .map(|job| FireId {
                        job: job.clone(),
                        scheduled_ms: now_ms,
                    })
                    .collect();
                timer.settled(&settled);
                now_ms += 1000;
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, fire_path);
criterion_main!(benches);
