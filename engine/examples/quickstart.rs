//! Quickstart: an embedded scheduler on the in-process backend that runs a Rust closure every second and prints
//! each run as it is recorded. Run with `cargo run -p campanile --example quickstart` (Ctrl-C to stop, or pass a
//! number of seconds: `-- 5`).

use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::RunQuery;
use campanile::job::HandlerTarget;
use campanile::{JobId, JobSpec, Schedule, Scheduler, Target};
use campanile_inproc::InprocCoordinator;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(u64::MAX);

    let scheduler = Scheduler::builder()
        .coordinator(Arc::new(InprocCoordinator::memory()))
        .node_id("quickstart")
        .handler("hello", |ctx| async move {
            println!("hello from fire {} (attempt {})", ctx.fire, ctx.attempt);
            Ok(())
        })
        .start()
        .await?;

    let spec = JobSpec::new(
        "hello",
        Schedule::parse("* * * * * *")?,
        Target::Handler(HandlerTarget::new("hello")),
    );
    let job = scheduler.create_with_id(JobId::new("hello")?, spec).await?;
    println!(
        "created job {} ({}); next fires: {:?}",
        job.id,
        job.spec.schedule,
        scheduler.next_fires(&job.id, 3).await?
    );

    let mut printed = None;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    for _ in 0..seconds {
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {}
        }
        let mut runs = scheduler
            .runs(
                &job.id,
                RunQuery {
                    limit: 10,
                    ..RunQuery::default()
                },
            )
            .await?;
        runs.reverse();
        let last_printed = printed;
        for run in runs
            .into_iter()
            .filter(|r| last_printed.is_none_or(|p| r.scheduled_ms > p))
        {
            let lateness = run
                .started_ms
                .map(|s| s - run.scheduled_ms)
                .unwrap_or_default();
            println!(
                "run {}@{}: {} on {} ({lateness} ms late)",
                run.job,
                run.scheduled_ms,
                run.outcome.as_str(),
                run.node
            );
            printed = Some(run.scheduled_ms);
        }
    }
    let report = scheduler.shutdown(Duration::from_secs(5)).await?;
    println!("stopped: {report:?}");
    Ok(())
}
