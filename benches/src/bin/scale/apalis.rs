//! The crates.io peer `apalis-cron` 0.7, as its README shows it: one worker per cron job, each fed by a
//! `CronStream` (its in-memory backend), all registered in one `Monitor`.
//!
//! A run is handed the time its stream woke (`CronContext::get_timestamp`), not the instant it was due. The
//! harness credits each run with the newest whole second at or before its start that the job has not been
//! credited with yet; a run that finds none is an extra run. That can only make its lateness look smaller
//! than it is, so its figures here are lower bounds; missed fires are counted exactly (instants in the window
//! minus credited runs). Like tokio-cron-scheduler it has no sub-second instants, so it cannot express the
//! `spread` workload.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use apalis::prelude::{Data, Monitor, WorkerBuilder, WorkerFactoryFn};
use apalis_cron::{CronContext, CronStream, Schedule};
use campanile::clock::{Clock, SystemClock};
use campanile_benches::tally::Tally;
use chrono::Utc;
use tokio::time::Instant;

use super::workload::{self, Workload};
use super::{Memory, lateness_fields, load_fields};

type Fields = BTreeMap<&'static str, String>;

/// The job type apalis-cron builds for every tick (it carries nothing: the tick is in the context).
#[derive(Debug, Clone, Default)]
struct Tick;

/// What each worker's handler needs: the clock, the tally, and the newest instant credited to its job.
#[derive(Clone)]
struct Probe {
    clock: Arc<SystemClock>,
    tally: Arc<Tally>,
    extra: Arc<AtomicU64>,
    credited: Arc<AtomicI64>,
}

async fn handle(_tick: Tick, _ctx: CronContext<Utc>, probe: Data<Probe>) {
    let started = probe.clock.now_us();
    let newest = started.div_euclid(1_000_000) * 1000;
    if probe.credited.fetch_max(newest, Ordering::Relaxed) < newest {
        probe.tally.record(newest, started);
    } else {
        probe.extra.fetch_add(1, Ordering::Relaxed);
    }
}

async fn noop(_tick: Tick, _ctx: CronContext<Utc>) {}

fn schedule(text: &str, i: usize) -> Result<Schedule, String> {
    Schedule::from_str(text).map_err(|e| format!("job {i}: {text:?}: {e}"))
}

/// `load`: register N typical jobs and start the monitor; the load time ends when every worker is registered
/// and the monitor runs.
pub async fn load(jobs: usize) -> Result<Fields, String> {
    let before = Memory::now();
    let t0 = Instant::now();
    let mut monitor = Monitor::new();
    for i in 0..jobs {
        let text = Workload::Typical
            .tcs_text(i)
            .expect("typical jobs have a cron text");
        let worker = WorkerBuilder::new(format!("job-{i}"))
            .backend(CronStream::new(schedule(&text, i)?))
            .build_fn(noop);
        monitor = monitor.register(worker);
    }
    tokio::spawn(monitor.run());
    tokio::task::yield_now().await;
    let load = t0.elapsed();
    Ok(load_fields(
        load,
        before,
        Memory::now(),
        jobs,
        "one worker and CronStream per job".to_owned(),
    ))
}

/// `burst` (it cannot express `spread`: no sub-second instants).
pub async fn lateness(workload: Workload, jobs: usize, seconds: u64) -> Result<Fields, String> {
    if workload != Workload::Burst {
        return Err("apalis-cron has no sub-second instants".to_owned());
    }
    let clock = Arc::new(SystemClock::new());
    let tally = Arc::new(Tally::new());
    let extra = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut monitor = Monitor::new();
    for i in 0..jobs {
        let text = workload.tcs_text(i).expect("burst has a cron text");
        let probe = Probe {
            clock: clock.clone(),
            tally: tally.clone(),
            extra: extra.clone(),
            credited: Arc::new(AtomicI64::new(i64::MIN)),
        };
        let worker = WorkerBuilder::new(format!("job-{i}"))
            .data(probe)
            .backend(CronStream::new(schedule(&text, i)?))
            .build_fn(handle);
        monitor = monitor.register(worker);
    }
    tokio::spawn(monitor.run());
    let load = t0.elapsed();
    let (from, to) = workload::window(clock.now_ms(), 3000, seconds);
    tally.set_window(from, to);
    // Give the window's last instants 10 s, as for tokio-cron-scheduler.
    tokio::time::sleep_until(clock.deadline(to + 10_000)).await;
    let summary = tally.summary();
    let expected = jobs as u64 * seconds;
    let mut fields = lateness_fields(&summary, expected, &tally);
    fields.insert(
        "detail",
        format!(
            "registered in {:.1} s; lateness is a lower bound (see apalis.rs); {} extra runs",
            load.as_secs_f64(),
            extra.load(Ordering::Relaxed)
        ),
    );
    Ok(fields)
}
