//! The conformance suite of `campanile-adapters`, run against the in-process coordinator (in memory on
//! paused and on real time, durable in a temporary file with restarts, and through a fault-free
//! `FaultyCoordinator`), and the tests of `FaultyCoordinator` itself.

use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::{
    ClaimResult, CoordError, Coordinator, FireClaim, NodeId, NodeInfo, Precondition, SessionState,
};
use campanile::job::{HandlerTarget, Job, JobId, JobSpec, Target};
use campanile::schedule::Schedule;
use campanile_adapters::{
    BackendProfile, CleanupGuard, ContractBreak, CoordinatorFactory, Fault, FaultControl,
    FaultyCoordinator, Method, Namespace, NamespaceOptions, SetupError,
};
use campanile_inproc::{InprocConfig, InprocCoordinator};
use tokio::time::Instant;

/// The backend's settings for a namespace the suite asked for.
fn config(options: &NamespaceOptions) -> InprocConfig {
    InprocConfig {
        history_limit: InprocConfig::MIN_HISTORY_LIMIT,
        watch_retention: options
            .watch_retention
            .map_or(InprocConfig::default().watch_retention, |r| r as usize),
    }
}

/// The profile on paused tokio time: expiry is exact there, so the slack is tiny.
fn paused_profile() -> BackendProfile {
    BackendProfile {
        min_ttl: Duration::from_secs(1),
        expiry_slack: Duration::from_millis(20),
        long_ttl: Duration::from_secs(3600),
        paused_time: true,
        history_limit: InprocConfig::MIN_HISTORY_LIMIT,
        configurable_watch_retention: true,
    }
}

/// `n` clients onto one namespace: separate clones of one coordinator (clones share the namespace).
fn clients(c: &InprocCoordinator, n: usize) -> Vec<Arc<dyn Coordinator>> {
    (0..n)
        .map(|_| Arc::new(c.clone()) as Arc<dyn Coordinator>)
        .collect()
}

/// In memory, on paused or on real time.
struct Memory {
    paused: bool,
}

#[async_trait::async_trait]
impl CoordinatorFactory for Memory {
    fn profile(&self) -> BackendProfile {
        if self.paused {
            paused_profile()
        } else {
            // Real time on a shared 2-core machine: short TTLs, generous slack.
            BackendProfile {
                min_ttl: Duration::from_millis(600),
                expiry_slack: Duration::from_secs(5),
                long_ttl: Duration::from_secs(600),
                paused_time: false,
                ..paused_profile()
            }
        }
    }

    async fn namespace(&self, options: NamespaceOptions) -> Result<Namespace, SetupError> {
        let c = InprocCoordinator::memory_with(config(&options));
        Ok(Namespace::new(
            clients(&c, options.clients),
            CleanupGuard::none(),
        ))
    }
}

/// Durable in a temporary redb file, restartable by reopening the file.
struct Durable;

#[async_trait::async_trait]
impl CoordinatorFactory for Durable {
    fn profile(&self) -> BackendProfile {
        paused_profile()
    }

    async fn namespace(&self, options: NamespaceOptions) -> Result<Namespace, SetupError> {
        let dir = tempfile::tempdir().map_err(SetupError::failed)?;
        let path = dir.path().join("campanile.redb");
        let settings = config(&options);
        let c =
            InprocCoordinator::open_with(&path, settings.clone()).map_err(SetupError::failed)?;
        let n = options.clients;
        let restart: campanile_adapters::RestartFn = Box::new(move || {
            let reopened = InprocCoordinator::open_with(&path, settings.clone());
            Box::pin(async move {
                let c = reopened.map_err(SetupError::failed)?;
                Ok(clients(&c, n))
            })
        });
        Ok(Namespace::new(clients(&c, n), CleanupGuard::none().hold(dir)).with_restart(restart))
    }
}

/// In memory on paused time (durable for a case that restarts), through a `FaultyCoordinator`: with no fault
/// on (`None`) the wrapper is transparent; with a contract break, the suite must catch it.
struct Wrapped(Option<ContractBreak>);

#[async_trait::async_trait]
impl CoordinatorFactory for Wrapped {
    fn profile(&self) -> BackendProfile {
        paused_profile()
    }

    async fn namespace(&self, options: NamespaceOptions) -> Result<Namespace, SetupError> {
        let control = FaultControl::new(1);
        let restarts = self
            .0
            .is_some_and(|line| line.case() == "restart_keeps_ids_epochs_and_revisions_growing");
        let namespace = if restarts {
            Durable.namespace(options).await?
        } else {
            Memory { paused: true }.namespace(options).await?
        };
        if let Some(line) = self.0 {
            control.break_contract(line);
        }
        Ok(namespace.wrap(move |c| {
            Arc::new(FaultyCoordinator::with_control(c, control.clone())) as Arc<dyn Coordinator>
        }))
    }
}

/// Runs `line`'s case against the coordinator that breaks it, on a runtime of its own (so that tasks a failed
/// case left behind die with it): `Err` with the case's panic message when it failed, `Ok(passed)` otherwise.
fn run_broken_case(line: ContractBreak) -> Result<bool, String> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime.block_on(campanile_adapters::suite::run_case(
            line.case(),
            &Wrapped(Some(line)),
        ))
    })
    .join()
    .map_err(|panic| panic.downcast::<String>().map(|m| *m).unwrap_or_default())
}

/// The suite checks itself, as the simulation's invariants are checked against injected faults: for every
/// contract line, a coordinator that breaks it (`ContractBreak`) fails that line's case, naming the line.
#[test]
fn the_suite_catches_every_contract_break() {
    let mut missed = Vec::new();
    for &line in ContractBreak::ALL {
        match run_broken_case(line) {
            Ok(true) => missed.push(format!("{line:?}: {} passed", line.case())),
            Ok(false) => missed.push(format!("{line:?}: no case named {}", line.case())),
            Err(message) if message.lines().next() != Some(line.line()) => missed.push(format!(
                "{line:?}: {} failed, but not on \"{}\":\n{message}",
                line.case(),
                line.line()
            )),
            Err(_) => {}
        }
    }
    assert!(
        missed.is_empty(),
        "{} of {} contract breaks were not caught on their line:\n{}",
        missed.len(),
        ContractBreak::ALL.len(),
        missed.join("\n")
    );
}

mod memory {
    campanile_adapters::conformance_suite!(super::Memory { paused: true }, paused_time);
}

mod memory_real_time {
    campanile_adapters::conformance_suite!(super::Memory { paused: false });
}

mod durable {
    campanile_adapters::conformance_suite!(super::Durable, paused_time);
}

mod through_fault_wrapper {
    campanile_adapters::conformance_suite!(super::Wrapped(None), paused_time);
}

mod faults {
    //! `FaultyCoordinator`: each fault does what it says, and the same seed gives the same faults.

    use super::*;

    fn node(name: &str) -> NodeInfo {
        NodeInfo::new(NodeId::new(name).expect("valid node id"))
    }

    fn job(name: &str) -> Job {
        let spec = JobSpec::new(
            name,
            Schedule::parse("@every 1m").expect("valid schedule"),
            Target::Handler(HandlerTarget::new("noop")),
        );
        Job::new(
            JobId::new(name).expect("valid job id"),
            spec,
            1_700_000_000_000,
        )
    }

    fn wrapped(seed: u64) -> (FaultyCoordinator, Arc<dyn Coordinator>) {
        let inner: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
        (FaultyCoordinator::new(Arc::clone(&inner), seed), inner)
    }

    fn unavailable(result: &Result<impl std::fmt::Debug, CoordError>) -> Option<bool> {
        match result {
            Err(CoordError::Unavailable {
                certainly_aborted, ..
            }) => Some(*certainly_aborted),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_aborted_call_writes_nothing() {
        let (faulty, inner) = wrapped(1);
        faulty.control().fail_randomly(1.0, Fault::Aborted);
        let result = faulty.put_job(job("a"), Precondition::Absent).await;
        assert_eq!(unavailable(&result), Some(true), "{result:?}");
        assert_eq!(inner.get_job(&job("a").id).await.expect("get"), None);
        let stats = faulty.control().stats();
        assert_eq!((stats.calls, stats.aborted, stats.replies_lost), (1, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_reply_still_writes() {
        let (faulty, inner) = wrapped(1);
        faulty.control().fail_randomly(1.0, Fault::ReplyLost);
        let result = faulty.put_job(job("a"), Precondition::Absent).await;
        assert_eq!(unavailable(&result), Some(false), "{result:?}");
        let stored = inner.get_job(&job("a").id).await.expect("get");
        assert_eq!(stored.map(|j| j.revision), Some(1), "the write happened");
        assert!(!result.expect_err("failed").is_certainly_aborted());
        assert_eq!(faulty.control().stats().replies_lost, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn fail_after_lets_n_calls_through_then_fails_until_healed() {
        let (faulty, _inner) = wrapped(1);
        faulty.control().fail_after(3, Fault::Aborted);
        for i in 0..3 {
            assert!(faulty.members().await.is_ok(), "call {i} is let through");
        }
        for i in 3..6 {
            let result = faulty.members().await;
            assert_eq!(unavailable(&result), Some(true), "call {i}: {result:?}");
        }
        faulty.control().heal();
        assert!(faulty.members().await.is_ok(), "healed");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_can_aim_at_some_methods() {
        let (faulty, _inner) = wrapped(1);
        faulty
            .control()
            .fail_randomly_on(&[Method::ClaimFires], 1.0, Fault::Aborted);
        faulty
            .put_job(job("a"), Precondition::Absent)
            .await
            .expect("put_job is not aimed at");
        let session = faulty
            .open_session(node("n"), Duration::from_secs(60))
            .await
            .expect("open_session is not aimed at");
        let claim = FireClaim {
            job: job("a").id,
            from_ms: 0,
            through_ms: 10,
            settled_ms: 0,
        };
        let result = faulty.claim_fires(session.id, &[claim]).await;
        assert_eq!(unavailable(&result), Some(true), "{result:?}");
        faulty.control().stop_failing();
        let result = faulty
            .claim_fires(
                session.id,
                &[FireClaim {
                    job: job("a").id,
                    from_ms: 0,
                    through_ms: 10,
                    settled_ms: 0,
                }],
            )
            .await
            .expect("no more failures");
        assert_eq!(result, vec![ClaimResult::NotOwner { owner: None }]);
    }

    /// The outcome of 64 calls with a 50 % failure rate and a random delay.
    async fn pattern(seed: u64) -> Vec<(bool, Duration)> {
        let (faulty, _inner) = wrapped(seed);
        faulty.control().fail_randomly(0.5, Fault::Aborted);
        faulty
            .control()
            .set_delay(Duration::from_millis(1), Duration::from_millis(50));
        let mut out = Vec::new();
        for _ in 0..64 {
            let start = Instant::now();
            let ok = faulty.leader().await.is_ok();
            out.push((ok, start.elapsed()));
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_seed_gives_the_same_faults() {
        let a = pattern(42).await;
        assert_eq!(a, pattern(42).await);
        assert_ne!(a, pattern(43).await);
        let failed = a.iter().filter(|(ok, _)| !ok).count();
        assert!((16..=48).contains(&failed), "{failed} of 64 failed at 50 %");
        for (ok, delay) in &a {
            if *ok {
                assert!(
                    *delay >= Duration::from_millis(1) && *delay <= Duration::from_millis(50),
                    "delay {delay:?}"
                );
            } else {
                assert_eq!(*delay, Duration::ZERO, "aborted calls are not delayed");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_is_tokio_time() {
        let (faulty, _inner) = wrapped(1);
        faulty
            .control()
            .set_delay(Duration::from_secs(3), Duration::from_secs(3));
        let start = Instant::now();
        faulty.members().await.expect("members");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        faulty.control().clear_delay();
        let start = Instant::now();
        faulty.members().await.expect("members");
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(faulty.control().stats().delayed, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partitioned_session_is_suspended_then_expires_server_side() {
        let (faulty, inner) = wrapped(1);
        let ttl = Duration::from_secs(10);
        let cut = faulty.open_session(node("cut"), ttl).await.expect("open");
        let other = faulty.open_session(node("other"), ttl).await.expect("open");
        let mut seen = faulty.watch_session(cut.id).await.expect("watch");
        assert_eq!(*seen.borrow(), SessionState::Alive);

        faulty.control().partition(cut.id);
        seen.wait_for(|s| *s == SessionState::Suspended)
            .await
            .expect("the wrapper's receiver shows the partition");
        let start = Instant::now();
        let mut server = inner.watch_session(cut.id).await.expect("watch");
        for _ in 0..3 {
            tokio::time::sleep(ttl / 3).await;
            let result = faulty.keep_alive(cut.id).await;
            assert_eq!(unavailable(&result), Some(true), "{result:?}");
            faulty
                .keep_alive(other.id)
                .await
                .expect("other sessions pass");
        }
        let result = faulty.campaign(cut.id).await;
        assert_eq!(unavailable(&result), Some(true), "{result:?}");
        let result = faulty.watch_session(cut.id).await;
        assert_eq!(unavailable(&result), Some(true), "{result:?}");
        assert!(faulty.control().stats().keep_alives_dropped >= 3);

        server
            .wait_for(|s| *s == SessionState::Expired)
            .await
            .expect("the server expires it");
        // The TTL counts from the open, before `start`; timers round up to the millisecond.
        assert!(
            start.elapsed() <= ttl + Duration::from_millis(5),
            "expired after {:?}",
            start.elapsed()
        );
        seen.wait_for(|s| *s == SessionState::Expired)
            .await
            .expect("the wrapper's receiver shows the expiry");
        let members = inner.members().await.expect("members");
        assert_eq!(members.members.len(), 1, "{members:?}");

        faulty.control().heal_session(cut.id);
        assert!(!faulty.control().is_partitioned(cut.id));
        assert!(matches!(
            faulty.keep_alive(cut.id).await,
            Err(CoordError::SessionExpired { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_healed_partition_is_alive_again_before_the_ttl() {
        let (faulty, _inner) = wrapped(1);
        let session = faulty
            .open_session(node("flaky"), Duration::from_secs(10))
            .await
            .expect("open");
        let mut seen = faulty.watch_session(session.id).await.expect("watch");
        faulty.control().partition(session.id);
        seen.wait_for(|s| *s == SessionState::Suspended)
            .await
            .expect("suspended");
        tokio::time::sleep(Duration::from_secs(5)).await;
        faulty.control().heal();
        seen.wait_for(|s| *s == SessionState::Alive)
            .await
            .expect("alive again");
        faulty
            .keep_alive(session.id)
            .await
            .expect("a keep-alive within the TTL succeeds");
    }

    #[tokio::test(start_paused = true)]
    async fn one_control_drives_several_wrappers() {
        let inner: Arc<dyn Coordinator> = Arc::new(InprocCoordinator::memory());
        let control = FaultControl::new(9);
        let a = FaultyCoordinator::with_control(Arc::clone(&inner), control.clone());
        let b = FaultyCoordinator::with_control(Arc::clone(&inner), control.clone());
        control.fail_after(1, Fault::Aborted);
        assert!(a.members().await.is_ok());
        assert_eq!(unavailable(&b.members().await), Some(true));
        assert_eq!(unavailable(&a.members().await), Some(true));
        assert_eq!(control.stats().calls, 3);
        assert_eq!(control.stats().calls_of(Method::Members), 3);
        assert_eq!(control.stats().calls_of(Method::Leader), 0);
        assert_eq!(a.backend(), inner.backend());
    }
}
