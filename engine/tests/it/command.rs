//! Command targets through the whole engine, on real time (a real process runs): environment, output,
//! timeout.

use std::sync::Arc;
use std::time::Duration;

use campanile::job::{CommandTarget, Overlap};
use campanile::{JobId, JobSpec, Outcome, Schedule, Target};
use campanile_inproc::InprocCoordinator;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_gets_its_fire_identity_and_a_slow_one_is_killed_at_its_timeout() {
    // The real clock: this test also runs the timer's OS-thread alarm.
    let clock = campanile::clock::SystemClock::new().shared();
    let (scheduler, mut rx) = node_with_clock(Arc::new(InprocCoordinator::memory()), clock).await;
    let clock = scheduler
        .create_with_id(
            JobId::new("clock").unwrap(),
            recording("clock", "* * * * * *"),
        )
        .await
        .unwrap();

    let echo = CommandTarget::new([
        "sh",
        "-c",
        "echo \"$CAMPANILE_FIRE_ID $CAMPANILE_JOB_NAME $CAMPANILE_NODE_ID $CAMPANILE_ATTEMPT\"",
    ]);
    let echo = scheduler
        .create_with_id(
            JobId::new("echo").unwrap(),
            JobSpec::new(
                "echo-name",
                Schedule::parse("* * * * * *").unwrap(),
                Target::Command(echo),
            ),
        )
        .await
        .unwrap();
    let mut slow = CommandTarget::new(["sh", "-c", "sleep 30 & sleep 30"]);
    slow.timeout = Some(Duration::from_millis(300));
    let mut spec = JobSpec::new(
        "slow",
        Schedule::parse("* * * * * *").unwrap(),
        Target::Command(slow),
    );
    spec.overlap = Overlap::Skip;
    let slow = scheduler
        .create_with_id(JobId::new("slow").unwrap(), spec)
        .await
        .unwrap();

    // Let three seconds pass, measured by the clock job's fires.
    let first = next_second(&mut rx, &clock.id).await;
    until_fired(&mut rx, &clock.id, first + 3000).await;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();

    let echoes = history(&scheduler, &echo.id).await;
    assert!(!echoes.is_empty());
    for run in &echoes {
        assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
        assert_eq!(
            run.output.trim(),
            format!("echo@{} echo-name node-1 1", run.scheduled_ms)
        );
    }
    let slows = history(&scheduler, &slow.id).await;
    assert!(!slows.is_empty());
    for run in &slows {
        assert_eq!(run.outcome, Outcome::TimedOut, "{run:?}");
        let took = run.ended_ms.unwrap() - run.started_ms.unwrap();
        assert!(
            took < 10_000,
            "the command was not killed at its timeout: {run:?}"
        );
    }
}

/// The first instant of `job` seen on the channel.
async fn next_second(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<campanile::FireId>,
    job: &JobId,
) -> i64 {
    loop {
        let fire = rx.recv().await.expect("the node runs");
        if fire.job == *job {
            return fire.scheduled_ms;
        }
    }
}
