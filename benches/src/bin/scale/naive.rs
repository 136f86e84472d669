//! The hand-written peer: one tokio task per job that loops on `sleep_until` the job's next instant (the
//! common naive design). It uses Campanile's parsed `Schedule`, shared as Campanile shares it, so only the
//! timer design differs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use campanile::Schedule;
use campanile::clock::{Clock, SystemClock};
use campanile::job::DstPolicy;
use campanile_benches::tally::Tally;
use tokio::time::Instant;

use super::workload::{self, Workload};
use super::{Memory, lateness_fields, load_fields, wait_until};

type Fields = BTreeMap<&'static str, String>;

/// Spawns one task per schedule; `armed` counts tasks that are sleeping until their first instant.
fn spawn_all(
    schedules: &[Schedule],
    clock: &Arc<dyn Clock>,
    tally: &Arc<Tally>,
    armed: &Arc<AtomicUsize>,
) {
    for schedule in schedules {
        let (schedule, clock, tally, armed) = (
            schedule.clone(),
            clock.clone(),
            tally.clone(),
            armed.clone(),
        );
        tokio::spawn(async move {
            let mut cursor = clock.now_ms();
            let mut first = true;
            while let Some(next) = schedule.next_after(cursor, chrono_tz::UTC, DstPolicy::Cronie) {
                if first {
                    armed.fetch_add(1, Ordering::Relaxed);
                    first = false;
                }
                tokio::time::sleep_until(clock.deadline(next)).await;
                tally.record(next, clock.now_us());
                cursor = next;
            }
        });
    }
}

/// `load`: spawn N tasks; the load time ends when every task sleeps until its first instant.
pub async fn load(jobs: usize) -> Result<Fields, String> {
    let clock = SystemClock::new().shared();
    let tally = Arc::new(Tally::new());
    let armed = Arc::new(AtomicUsize::new(0));
    let schedules = Workload::Typical.schedules(jobs, 0);
    let before = Memory::now();
    let t0 = Instant::now();
    spawn_all(&schedules, &clock, &tally, &armed);
    let ok = wait_until(Duration::from_secs(600), async || {
        armed.load(Ordering::Relaxed) == jobs
    })
    .await;
    if !ok {
        return Err("the tasks did not all start".to_owned());
    }
    let load = t0.elapsed();
    Ok(load_fields(
        load,
        before,
        Memory::now(),
        jobs,
        "one task per job (future + timer entry), schedules shared; no store, no claims".to_owned(),
    ))
}

/// `spread` or `burst`.
pub async fn lateness(workload: Workload, jobs: usize, seconds: u64) -> Result<Fields, String> {
    let clock = SystemClock::new().shared();
    let tally = Arc::new(Tally::new());
    let armed = Arc::new(AtomicUsize::new(0));
    let schedules = workload.schedules(jobs, workload::anchor(clock.now_ms()));
    let t0 = Instant::now();
    spawn_all(&schedules, &clock, &tally, &armed);
    wait_until(Duration::from_secs(600), async || {
        armed.load(Ordering::Relaxed) == jobs
    })
    .await;
    let load = t0.elapsed();
    let (from, to) = workload::window(clock.now_ms(), 3000, seconds);
    tally.set_window(from, to);
    tokio::time::sleep_until(clock.deadline(to + 3000)).await;
    let summary = tally.summary();
    let expected = workload::expected(&schedules, from, to);
    let mut fields = lateness_fields(&summary, expected, &tally);
    fields.insert(
        "detail",
        format!(
            "started in {:.1} s; {} early",
            load.as_secs_f64(),
            summary.early
        ),
    );
    Ok(fields)
}
