//! The run policies as a user sees them, on paused time: retries with backoff, `cancel_previous`, jitter, and the
//! `start_at`/`end_at` bounds, each judged by when the handler ran and by the records stored.

use std::sync::Arc;
use std::time::Duration;

use campanile::clock::{Clock, SystemClock};
use campanile::job::{Backoff, HandlerTarget, Overlap, RetryPolicy};
use campanile::{FireId, JobId, JobSpec, Outcome, Schedule, Scheduler, Target};
use campanile_inproc::InprocCoordinator;
use chrono::DateTime;
use tokio::sync::mpsc;

use super::*;

/// A handler's start: the fire, its attempt, and the virtual time it started at.
#[derive(Debug, Clone, PartialEq)]
struct Start {
    fire: FireId,
    attempt: u32,
    at_ms: i64,
}

/// A node on a virtual clock starting at [`T0`] whose handlers report each start:
/// `flaky` fails its first three attempts, `failing` fails every one, `long` runs for ten seconds,
/// `second_is_long` fails its first attempt and runs its second for ten seconds, `quick` returns at once,
/// `panics_at_once` panics before it returns its future.
async fn policy_node() -> (Scheduler, mpsc::UnboundedReceiver<Start>) {
    let clock = SystemClock::starting_at(T0).shared();
    let (tx, rx) = mpsc::unbounded_channel();
    let reporter = |tx: mpsc::UnboundedSender<Start>, clock: Arc<dyn Clock>| {
        move |ctx: campanile::FireContext| {
            let _ = tx.send(Start {
                fire: ctx.fire.clone(),
                attempt: ctx.attempt,
                at_ms: clock.now_ms(),
            });
            ctx
        }
    };
    let flaky = reporter(tx.clone(), clock.clone());
    let failing = reporter(tx.clone(), clock.clone());
    let long = reporter(tx.clone(), clock.clone());
    let second_is_long = reporter(tx.clone(), clock.clone());
    let quick = reporter(tx.clone(), clock.clone());
    let panics_at_once = reporter(tx, clock.clone());
    let scheduler = Scheduler::builder()
        .coordinator(Arc::new(InprocCoordinator::memory()))
        .node_id("node-1")
        .clock(clock)
        .session_ttl(Duration::from_secs(4))
        .handler("flaky", move |ctx| {
            let ctx = flaky(ctx);
            async move {
                if ctx.attempt <= 3 {
                    return Err(format!("attempt {} failed", ctx.attempt).into());
                }
                Ok(())
            }
        })
        .handler("failing", move |ctx| {
            let ctx = failing(ctx);
            async move { Err(format!("attempt {} failed", ctx.attempt).into()) }
        })
        .handler("long", move |ctx| {
            long(ctx);
            async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            }
        })
        .handler("second_is_long", move |ctx| {
            let ctx = second_is_long(ctx);
            async move {
                if ctx.attempt == 1 {
                    return Err("the first attempt fails".into());
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            }
        })
        .handler("quick", move |ctx| {
            quick(ctx);
            async { Ok(()) }
        })
        .handler("panics_at_once", move |ctx| {
            let ctx = panics_at_once(ctx);
            if ctx.attempt > 0 {
                panic!("the handler panicked before returning its future");
            }
            async { Ok(()) }
        })
        .start()
        .await
        .expect("the node starts");
    (scheduler, rx)
}

fn spec(handler: &str, schedule: &str) -> JobSpec {
    JobSpec::new(
        handler,
        Schedule::parse(schedule).unwrap(),
        Target::Handler(HandlerTarget::new(handler)),
    )
}

fn id(s: &str) -> JobId {
    JobId::new(s).unwrap()
}

fn at(ms: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// Starts until (and with) the first one `done` accepts.
async fn starts_until(
    rx: &mut mpsc::UnboundedReceiver<Start>,
    done: impl Fn(&Start) -> bool,
) -> Vec<Start> {
    let mut seen = Vec::new();
    let wait = async {
        while let Some(start) = rx.recv().await {
            let last = done(&start);
            seen.push(start);
            if last {
                return;
            }
        }
        panic!("the node stopped first");
    };
    // A failure bound on virtual time, not a synchronization.
    tokio::time::timeout(Duration::from_secs(600), wait)
        .await
        .unwrap_or_else(|_| panic!("never came; seen {seen:#?}"));
    seen
}

#[tokio::test(start_paused = true)]
async fn retries_run_after_their_backoff_on_the_same_fire_until_one_succeeds() {
    let (scheduler, mut rx) = policy_node().await;
    let mut job = spec("flaky", &format!("@at {}", at(T0 + 2000).to_rfc3339()));
    // Delays 2 s, 6 s, then 18 s capped at 10 s.
    job.retry = RetryPolicy {
        max_retries: 5,
        backoff: Backoff {
            initial: Duration::from_secs(2),
            factor: 3.0,
            max: Duration::from_secs(10),
        },
    };
    let job = scheduler.create_with_id(id("flaky"), job).await.unwrap();
    let starts = starts_until(&mut rx, |s| s.attempt == 4).await;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();

    let fire = job.fire_id(T0 + 2000);
    assert!(starts.iter().all(|s| s.fire == fire), "{starts:#?}");
    assert_eq!(
        starts.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let gaps: Vec<i64> = starts.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    assert_eq!(gaps, [2000, 6000, 10_000], "{starts:#?}");

    let runs = history(&scheduler, &job.id).await;
    assert_eq!(runs.len(), 1, "one record for the fire: {runs:#?}");
    let run = &runs[0];
    assert_eq!(run.outcome, Outcome::Succeeded);
    assert_eq!(run.attempt, 4);
    assert_eq!(
        run.started_ms,
        Some(starts[3].at_ms),
        "the last attempt's start"
    );
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_panics_before_its_future_fails_its_run_and_the_next_instants_still_run() {
    let (scheduler, mut rx) = policy_node().await;
    let job = scheduler
        .create_with_id(id("panicky"), spec("panics_at_once", "* * * * * *"))
        .await
        .unwrap();
    let starts = starts_until(&mut rx, |s| s.fire.scheduled_ms >= T0 + 3000).await;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();

    let instants: Vec<i64> = starts.iter().map(|s| s.fire.scheduled_ms).collect();
    assert_eq!(instants, [T0 + 1000, T0 + 2000, T0 + 3000], "{starts:#?}");
    let runs = history(&scheduler, &job.id).await;
    for instant in [T0 + 1000, T0 + 2000] {
        let run = runs
            .iter()
            .find(|r| r.scheduled_ms == instant)
            .unwrap_or_else(|| panic!("no record of {instant}: {runs:#?}"));
        assert_eq!(run.outcome, Outcome::Failed, "{run:#?}");
        assert_eq!(run.reason.as_deref(), Some("handler panicked"), "{run:#?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_fire_whose_every_attempt_fails_is_recorded_failed_with_the_last_attempt() {
    let (scheduler, mut rx) = policy_node().await;
    let mut job = spec("failing", &format!("@at {}", at(T0 + 2000).to_rfc3339()));
    job.retry = RetryPolicy {
        max_retries: 2,
        backoff: Backoff {
            initial: Duration::from_secs(1),
            factor: 1.0,
            max: Duration::from_secs(60),
        },
    };
    let job = scheduler.create_with_id(id("failing"), job).await.unwrap();
    let mut records = scheduler.subscribe_runs();
    let starts = starts_until(&mut rx, |s| s.attempt == 3).await;
    let gaps: Vec<i64> = starts.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    assert_eq!(gaps, [1000, 1000], "a constant backoff: {starts:#?}");
    let run = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let record = records.recv().await.unwrap();
            if record.job == job.id {
                return record;
            }
        }
    })
    .await
    .expect("the fire is recorded");
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(run.outcome, Outcome::Failed);
    assert_eq!(run.attempt, 3);
    assert_eq!(run.reason.as_deref(), Some("attempt 3 failed"));
    // No fourth attempt.
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn cancel_previous_kills_the_running_run_and_its_record_keeps_its_start_and_attempt() {
    let (scheduler, mut rx) = policy_node().await;
    let mut job = spec("long", "*/2 * * * * *");
    job.overlap = Overlap::CancelPrevious;
    let job = scheduler.create_with_id(id("long"), job).await.unwrap();
    let starts = starts_until(&mut rx, |s| s.fire.scheduled_ms == T0 + 6000).await;
    scheduler.shutdown(Duration::from_secs(1)).await.unwrap();

    let instants: Vec<i64> = starts.iter().map(|s| s.fire.scheduled_ms).collect();
    assert_eq!(
        instants,
        [T0 + 2000, T0 + 4000, T0 + 6000],
        "each instant starts"
    );
    let runs = history(&scheduler, &job.id).await;
    for instant in [T0 + 2000, T0 + 4000] {
        let start = starts
            .iter()
            .find(|s| s.fire.scheduled_ms == instant)
            .unwrap();
        let run = runs
            .iter()
            .find(|r| r.scheduled_ms == instant)
            .unwrap_or_else(|| panic!("no record of {instant}: {runs:#?}"));
        assert_eq!(run.outcome, Outcome::Failed, "{run:#?}");
        assert!(
            run.reason
                .as_deref()
                .is_some_and(|r| r.contains("cancelled")),
            "{run:#?}"
        );
        assert_eq!(run.started_ms, Some(start.at_ms), "{run:#?}");
        assert_eq!(run.attempt, 1, "{run:#?}");
        assert_eq!(
            run.ended_ms,
            Some(instant + 2000),
            "killed when the next instant came: {run:#?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_cancelled_in_a_retry_is_recorded_with_that_attempt_and_its_start() {
    let (scheduler, mut rx) = policy_node().await;
    let mut job = spec("second_is_long", "*/4 * * * * *");
    job.overlap = Overlap::CancelPrevious;
    job.retry = RetryPolicy {
        max_retries: 1,
        backoff: Backoff {
            initial: Duration::from_secs(1),
            factor: 1.0,
            max: Duration::from_secs(1),
        },
    };
    let job = scheduler.create_with_id(id("retried"), job).await.unwrap();
    let starts = starts_until(&mut rx, |s| s.fire.scheduled_ms == T0 + 8000).await;
    scheduler.shutdown(Duration::from_secs(1)).await.unwrap();

    let second = starts
        .iter()
        .find(|s| s.fire.scheduled_ms == T0 + 4000 && s.attempt == 2)
        .unwrap_or_else(|| panic!("{starts:#?}"));
    assert_eq!(second.at_ms, T0 + 5000, "one second of backoff");
    let runs = history(&scheduler, &job.id).await;
    let run = runs.iter().find(|r| r.scheduled_ms == T0 + 4000).unwrap();
    assert_eq!(run.outcome, Outcome::Failed, "{run:#?}");
    assert!(
        run.reason
            .as_deref()
            .is_some_and(|r| r.contains("cancelled")),
        "{run:#?}"
    );
    assert_eq!(run.attempt, 2, "{run:#?}");
    assert_eq!(run.started_ms, Some(T0 + 5000), "{run:#?}");
    assert_eq!(run.ended_ms, Some(T0 + 8000), "{run:#?}");
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_each_start_within_its_bound_by_an_amount_drawn_from_the_fire_id() {
    // Twice, on two separate clusters: the same fire ids start with the same delays.
    let mut delays = Vec::new();
    for _ in 0..2 {
        let (scheduler, mut rx) = policy_node().await;
        let mut job = spec("quick", "*/10 * * * * *");
        job.jitter = Some(Duration::from_secs(5));
        let job = scheduler.create_with_id(id("jittery"), job).await.unwrap();
        let starts = starts_until(&mut rx, |s| s.fire.scheduled_ms == T0 + 80_000).await;
        scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
        let runs = history(&scheduler, &job.id).await;
        let delay: Vec<(i64, i64)> = starts
            .iter()
            .map(|s| (s.fire.scheduled_ms, s.at_ms - s.fire.scheduled_ms))
            .collect();
        for (instant, late) in &delay {
            assert!((0..=5000).contains(late), "{instant}: {late} ms late");
            let run = runs.iter().find(|r| r.scheduled_ms == *instant).unwrap();
            assert_eq!(run.started_ms, Some(instant + late), "{run:#?}");
        }
        delays.push(delay);
    }
    assert_eq!(delays[0], delays[1], "stable per fire id");
    let distinct: std::collections::BTreeSet<i64> = delays[0].iter().map(|(_, d)| *d).collect();
    assert!(
        distinct.len() >= 4,
        "delays vary from fire to fire: {delays:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn start_at_and_end_at_bound_the_instants_that_fire() {
    let (scheduler, mut rx) = policy_node().await;
    let mut bounded = spec("quick", "* * * * * *");
    // Between instants: the first is the one after start_at; end_at itself is an instant and fires.
    bounded.start_at = Some(at(T0 + 2500));
    bounded.end_at = Some(at(T0 + 6000));
    let bounded = scheduler
        .create_with_id(id("bounded"), bounded)
        .await
        .unwrap();
    assert_eq!(
        scheduler.next_fires(&bounded.id, 10).await.unwrap(),
        [at(T0 + 3000), at(T0 + 4000), at(T0 + 5000), at(T0 + 6000)]
    );
    // Another job marks time, so that the bounded one has had every chance to fire late.
    let clock = scheduler
        .create_with_id(id("clock"), spec("quick", "* * * * * *"))
        .await
        .unwrap();
    let starts = starts_until(&mut rx, |s| {
        s.fire.job == clock.id && s.fire.scheduled_ms == T0 + 12_000
    })
    .await;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();

    let fired: Vec<i64> = starts
        .iter()
        .filter(|s| s.fire.job == bounded.id)
        .map(|s| s.fire.scheduled_ms)
        .collect();
    assert_eq!(fired, [T0 + 3000, T0 + 4000, T0 + 5000, T0 + 6000]);
    let recorded: Vec<(i64, Outcome)> = history(&scheduler, &bounded.id)
        .await
        .iter()
        .map(|r| (r.scheduled_ms, r.outcome))
        .collect();
    assert_eq!(
        recorded,
        [3000, 4000, 5000, 6000].map(|d| (T0 + d, Outcome::Succeeded)),
        "a record for each instant within the bounds, none outside"
    );
}
