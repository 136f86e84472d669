//! Campanile under test: one node over the in-process backend, jobs created through its `Scheduler` handle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use campanile::clock::{Clock, SystemClock};
use campanile::coordinator::Precondition;
use campanile::job::HandlerTarget;
use campanile::{Coordinator, Job, JobId, JobSpec, Schedule, Scheduler, Target};
use campanile_benches::machine::resident_bytes;
use campanile_benches::probe::Probe;
use campanile_benches::tally::Tally;
use campanile_inproc::{InprocConfig, InprocCoordinator};
use tokio::time::Instant;

use super::heap::live_bytes;
use super::workload::{self, Workload};
use super::{lateness_fields, wait_until};

type Fields = BTreeMap<&'static str, String>;

/// How long loading may take before the measurement gives up.
const LOAD_LIMIT: Duration = Duration::from_secs(1800);

/// The in-process backend with a small history (100 records per job, the contract's minimum) and a short
/// watch log, so that its own memory stays close to one copy of each job.
pub fn coordinator() -> Arc<InprocCoordinator> {
    Arc::new(InprocCoordinator::memory_with(InprocConfig {
        history_limit: 100,
        watch_retention: 10_000,
    }))
}

pub fn probe() -> Result<&'static Probe, String> {
    Probe::install().ok_or_else(|| "a metrics recorder was already installed".to_owned())
}

pub async fn start(
    coordinator: Arc<InprocCoordinator>,
    clock: Arc<dyn Clock>,
    tally: Arc<Tally>,
) -> Result<Scheduler, String> {
    let lateness_clock = clock.clone();
    Scheduler::builder()
        .coordinator(coordinator)
        .node_id("node-1")
        .clock(clock)
        .handler("noop", |_ctx| async { Ok(()) })
        .handler("lateness", move |ctx| {
            tally.record(ctx.fire.scheduled_ms, lateness_clock.now_us());
            async { Ok(()) }
        })
        .start()
        .await
        .map_err(|e| format!("the node did not start: {e}"))
}

fn spec(i: usize, schedule: &Schedule, handler: &str) -> JobSpec {
    JobSpec::new(
        format!("job-{i}"),
        schedule.clone(),
        Target::Handler(HandlerTarget::new(handler)),
    )
}

fn id(i: usize) -> JobId {
    JobId::new(format!("job-{i:07}")).expect("valid job id")
}

/// Creates the jobs through the node, yielding now and then as an API server between requests would.
async fn create(
    scheduler: &Scheduler,
    schedules: &[Schedule],
    handler: &str,
) -> Result<(), String> {
    for (i, schedule) in schedules.iter().enumerate() {
        scheduler
            .create_with_id(id(i), spec(i, schedule, handler))
            .await
            .map_err(|e| format!("create job {i}: {e}"))?;
        if i % 1024 == 1023 {
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// Waits until the node owns `jobs` jobs and its timer holds them all.
pub async fn loaded(scheduler: &Scheduler, probe: &Probe, jobs: usize) -> Result<(), String> {
    let done = wait_until(LOAD_LIMIT, async || {
        probe.jobs_owned() == jobs as u64 && scheduler.status().await.is_ok_and(|s| s.owned == jobs)
    })
    .await;
    if done {
        Ok(())
    } else {
        Err(format!(
            "the timer held {} of {jobs} jobs after {LOAD_LIMIT:?}",
            probe.jobs_owned()
        ))
    }
}

pub fn per_job(before: u64, after: u64, jobs: usize) -> u64 {
    after.saturating_sub(before) / jobs as u64
}

/// `load` with jobs created through a running node: first create → the timer holds them all.
pub async fn load(jobs: usize) -> Result<Fields, String> {
    let probe = probe()?;
    let clock = SystemClock::new().shared();
    let scheduler = start(coordinator(), clock, Arc::new(Tally::new())).await?;
    let schedules = Workload::Typical.schedules(jobs, 0);
    let (heap0, rss0) = (live_bytes() as u64, resident_bytes().unwrap_or(0));
    let t0 = Instant::now();
    create(&scheduler, &schedules, "noop").await?;
    let created = t0.elapsed();
    loaded(&scheduler, probe, jobs).await?;
    let load = t0.elapsed();
    let (heap1, rss1) = (live_bytes() as u64, resident_bytes().unwrap_or(0));
    Ok(BTreeMap::from([
        ("load_s", format!("{:.2}", load.as_secs_f64())),
        ("create_s", format!("{:.2}", created.as_secs_f64())),
        ("rss_per_job", per_job(rss0, rss1, jobs).to_string()),
        ("heap_per_job", per_job(heap0, heap1, jobs).to_string()),
        (
            "detail",
            format!(
                "one create_with_id call per job, through the node: {:.2} s; engine and backend together; RSS {} MiB",
                created.as_secs_f64(),
                rss1 >> 20
            ),
        ),
    ]))
}

/// `load` in two steps: jobs put into the backend directly, then a node started over it. Separates the
/// backend's copy of each job from the engine's; the load time is node start → the timer holds them all.
pub async fn load_split(jobs: usize) -> Result<Fields, String> {
    let probe = probe()?;
    let clock = SystemClock::new().shared();
    let coordinator = coordinator();
    let schedules = Workload::Typical.schedules(jobs, 0);
    let (heap0, rss0) = (live_bytes() as u64, resident_bytes().unwrap_or(0));
    for (i, schedule) in schedules.iter().enumerate() {
        let job = Job::new(id(i), spec(i, schedule, "noop"), clock.now_ms());
        coordinator
            .put_job(job, Precondition::Absent)
            .await
            .map_err(|e| format!("put job {i}: {e}"))?;
    }
    let (heap1, rss1) = (live_bytes() as u64, resident_bytes().unwrap_or(0));
    let t0 = Instant::now();
    let scheduler = start(coordinator, clock, Arc::new(Tally::new())).await?;
    loaded(&scheduler, probe, jobs).await?;
    let load = t0.elapsed();
    let (heap2, rss2) = (live_bytes() as u64, resident_bytes().unwrap_or(0));
    Ok(BTreeMap::from([
        ("load_s", format!("{:.2}", load.as_secs_f64())),
        ("rss_per_job", per_job(rss1, rss2, jobs).to_string()),
        ("heap_per_job", per_job(heap1, heap2, jobs).to_string()),
        (
            "detail",
            format!(
                "engine only (node start over a filled store); the backend's copy: {} B/job heap, {} B/job RSS",
                per_job(heap0, heap1, jobs),
                per_job(rss0, rss1, jobs)
            ),
        ),
    ]))
}

/// `spread` or `burst`: lateness of every fire in a window after loading.
pub async fn lateness(workload: Workload, jobs: usize, seconds: u64) -> Result<Fields, String> {
    let probe = probe()?;
    let clock = SystemClock::new().shared();
    let tally = Arc::new(Tally::new());
    let scheduler = start(coordinator(), clock.clone(), tally.clone()).await?;
    let schedules = workload.schedules(jobs, workload::anchor(clock.now_ms()));
    let t0 = Instant::now();
    create(&scheduler, &schedules, "lateness").await?;
    loaded(&scheduler, probe, jobs).await?;
    let load = t0.elapsed();
    let (from, to) = workload::window(clock.now_ms(), 3000, seconds);
    tally.set_window(from, to);
    let (misfires_before, skipped_before) = (probe.misfires(), probe.skipped());
    // Fires of the window's last instants may start a little after it: wait 3 s more.
    tokio::time::sleep_until(clock.deadline(to + 3000)).await;
    let summary = tally.summary();
    let expected = workload::expected(&schedules, from, to);
    let mut fields = lateness_fields(&summary, expected, &tally);
    fields.insert(
        "detail",
        format!(
            "loaded in {:.1} s; during the window {} instants misfired and {} were recorded skipped (overlap: \
             the job's previous run had not reported its end); {} early",
            load.as_secs_f64(),
            probe.misfires() - misfires_before,
            probe.skipped() - skipped_before,
            summary.early
        ),
    );
    Ok(fields)
}
