//! The crates.io peer: `tokio-cron-scheduler` 0.15 with its default (in-memory) stores.
//!
//! Its job callback is not told which instant it runs for. The harness credits each run with the newest
//! whole second at or before its start that the job has not been credited with yet; a run that finds none is
//! an extra run. That can only make its lateness look smaller than it is (a run that serves an older instant
//! is credited with a newer one), so its figures here are lower bounds; missed fires are counted exactly
//! (instants in the window minus credited runs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use campanile::clock::SystemClock;
use campanile_benches::tally::Tally;
use tokio::time::Instant;
use tokio_cron_scheduler::{Job, JobScheduler};

use super::workload::{self, Workload};
use super::{Memory, lateness_fields, load_fields};

type Fields = BTreeMap<&'static str, String>;

async fn scheduler() -> Result<JobScheduler, String> {
    JobScheduler::new()
        .await
        .map_err(|e| format!("tokio-cron-scheduler: {e:?}"))
}

/// Starts its ticker (a poll every 500 ms).
async fn start(scheduler: &JobScheduler) -> Result<(), String> {
    scheduler
        .start()
        .await
        .map_err(|e| format!("tokio-cron-scheduler start: {e:?}"))
}

/// `load`: add N typical jobs; the load time ends when the last `add` returns.
pub async fn load(jobs: usize) -> Result<Fields, String> {
    let scheduler = scheduler().await?;
    start(&scheduler).await?;
    let before = Memory::now();
    let t0 = Instant::now();
    for i in 0..jobs {
        let text = Workload::Typical
            .tcs_text(i)
            .expect("typical jobs have a cron text");
        let job = Job::new_async(text, |_id, _scheduler| Box::pin(async {}))
            .map_err(|e| format!("job {i}: {e:?}"))?;
        scheduler
            .add(job)
            .await
            .map_err(|e| format!("add job {i}: {e:?}"))?;
    }
    let load = t0.elapsed();
    Ok(load_fields(
        load,
        before,
        Memory::now(),
        jobs,
        "default in-memory stores".to_owned(),
    ))
}

/// `burst` (it cannot express `spread`: no sub-second instants).
pub async fn lateness(workload: Workload, jobs: usize, seconds: u64) -> Result<Fields, String> {
    if workload != Workload::Burst {
        return Err("tokio-cron-scheduler has no sub-second instants".to_owned());
    }
    let clock = SystemClock::new().shared();
    let tally = Arc::new(Tally::new());
    let extra = Arc::new(AtomicU64::new(0));
    let scheduler = scheduler().await?;
    let t0 = Instant::now();
    for i in 0..jobs {
        let text = workload.tcs_text(i).expect("burst has a cron text");
        let (clock, tally, extra) = (clock.clone(), tally.clone(), extra.clone());
        let mut credited = i64::MIN;
        let job = Job::new_async(text, move |_id, _scheduler| {
            let started = clock.now_us();
            let newest = started.div_euclid(1_000_000) * 1000;
            if newest > credited {
                credited = newest;
                tally.record(newest, started);
            } else {
                extra.fetch_add(1, Ordering::Relaxed);
            }
            Box::pin(async {})
        })
        .map_err(|e| format!("job {i}: {e:?}"))?;
        scheduler
            .add(job)
            .await
            .map_err(|e| format!("add job {i}: {e:?}"))?;
    }
    // Started once every job is in: adding 100,000 every-second jobs to a ticking scheduler slows to a crawl,
    // as each poll walks every job and each due job takes the store's write lock.
    start(&scheduler).await?;
    let load = t0.elapsed();
    let (from, to) = workload::window(clock.now_ms(), 3000, seconds);
    tally.set_window(from, to);
    // It is seconds late under load: give the window's last instants 10 s.
    tokio::time::sleep_until(clock.deadline(to + 10_000)).await;
    let summary = tally.summary();
    let expected = jobs as u64 * seconds;
    let mut fields = lateness_fields(&summary, expected, &tally);
    fields.insert(
        "detail",
        format!(
            "added in {:.1} s; lateness is a lower bound (see tcs.rs); {} extra runs",
            load.as_secs_f64(),
            extra.load(Ordering::Relaxed)
        ),
    );
    Ok(fields)
}
