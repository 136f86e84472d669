//! The conformance suite through the counting wrapper over the in-process coordinator: in memory on paused
//! time and on real time, and durable in a temporary file with restarts.

use std::sync::Arc;
use std::time::Duration;

use campanile::Coordinator;
use campanile_adapters::{
    BackendProfile, CleanupGuard, CoordinatorFactory, Method, Namespace, NamespaceOptions,
    RestartFn, SetupError,
};
use campanile_example_wrapper::{CallCounter, counted};
use campanile_inproc::{InprocConfig, InprocCoordinator};

/// Maps what a case asks of its namespace onto the backend's settings (here `InprocConfig`; for etcd it
/// would be the compaction of the namespace's prefix).
fn config(options: &NamespaceOptions) -> InprocConfig {
    InprocConfig {
        history_limit: InprocConfig::MIN_HISTORY_LIMIT,
        watch_retention: options
            .watch_retention
            .map_or(InprocConfig::default().watch_retention, |r| r as usize),
    }
}

/// The paused-time profile: the in-process backend times expiry with `tokio::time`, so paused time drives it
/// and the slack can be tiny.
fn paused_time() -> BackendProfile {
    BackendProfile {
        min_ttl: Duration::from_secs(1),
        expiry_slack: Duration::from_millis(20),
        long_ttl: Duration::from_secs(3600),
        paused_time: true,
        history_limit: InprocConfig::MIN_HISTORY_LIMIT,
        configurable_watch_retention: true,
    }
}

/// The real-time profile: short TTLs, a generous slack for a loaded machine.
fn real_time() -> BackendProfile {
    BackendProfile {
        min_ttl: Duration::from_millis(600),
        expiry_slack: Duration::from_secs(5),
        long_ttl: Duration::from_secs(600),
        paused_time: false,
        ..paused_time()
    }
}

/// `n` counted clients sharing one coordinator and one counter.
fn clients(c: &InprocCoordinator, n: usize, counter: &CallCounter) -> Vec<Arc<dyn Coordinator>> {
    (0..n)
        .map(|_| Arc::new(counted(c.clone(), counter.clone())) as Arc<dyn Coordinator>)
        .collect()
}

/// The in-process coordinator in memory, every call counted.
#[derive(Default)]
struct InMemory {
    paused: bool,
    counter: CallCounter,
}

#[async_trait::async_trait]
impl CoordinatorFactory for InMemory {
    fn profile(&self) -> BackendProfile {
        if self.paused {
            paused_time()
        } else {
            real_time()
        }
    }

    async fn namespace(&self, options: NamespaceOptions) -> Result<Namespace, SetupError> {
        let c = InprocCoordinator::memory_with(config(&options));
        Ok(Namespace::new(
            clients(&c, options.clients, &self.counter),
            CleanupGuard::none(),
        ))
    }
}

/// The in-process coordinator in a temporary file, restartable by reopening it, every call counted.
#[derive(Default)]
struct InFile {
    counter: CallCounter,
}

#[async_trait::async_trait]
impl CoordinatorFactory for InFile {
    fn profile(&self) -> BackendProfile {
        paused_time()
    }

    async fn namespace(&self, options: NamespaceOptions) -> Result<Namespace, SetupError> {
        let dir = tempfile::tempdir().map_err(SetupError::failed)?;
        let path = dir.path().join("campanile.redb");
        let settings = config(&options);
        let c =
            InprocCoordinator::open_with(&path, settings.clone()).map_err(SetupError::failed)?;
        let (n, counter) = (options.clients, self.counter.clone());
        let restart: RestartFn = Box::new(move || {
            // Called after every client was dropped, so the file is closed: reopen it.
            let reopened = InprocCoordinator::open_with(&path, settings.clone());
            let counter = counter.clone();
            Box::pin(async move {
                let c = reopened.map_err(SetupError::failed)?;
                Ok(clients(&c, n, &counter))
            })
        });
        Ok(Namespace::new(
            clients(&c, n, &self.counter),
            CleanupGuard::none().hold(dir),
        )
        .with_restart(restart))
    }
}

mod paused_time {
    campanile_adapters::conformance_suite!(
        super::InMemory {
            paused: true,
            ..Default::default()
        },
        paused_time
    );
}

mod real_time {
    campanile_adapters::conformance_suite!(super::InMemory::default());
}

mod durable {
    campanile_adapters::conformance_suite!(super::InFile::default(), paused_time);
}

/// The wrapper counts what a case calls, by method, and changes nothing (the suite passes through it).
#[tokio::test(start_paused = true)]
async fn the_wrapper_counts_every_call_by_method() {
    let factory = InMemory {
        paused: true,
        ..Default::default()
    };
    campanile_adapters::suite::record_runs_once_per_fire_id(&factory).await;
    let counter = &factory.counter;
    assert!(counter.of(Method::RecordRuns) >= 2, "{counter:?}");
    assert!(counter.of(Method::OpenSession) >= 1, "{counter:?}");
    let by_method: u64 = Method::ALL.iter().map(|m| counter.of(*m)).sum();
    assert_eq!(by_method, counter.total());
}
