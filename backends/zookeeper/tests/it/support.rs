//! The real server the tests use, and the conformance factory over it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use campanile::coordinator::Coordinator;
use campanile_adapters::{
    BackendProfile, CleanupGuard, CoordinatorFactory, Namespace, NamespaceOptions, SetupError,
};
use campanile_zookeeper::{ZkConfig, ZkCoordinator};

/// The connect string of the shared test server, or why there is none: a skip outside CI, a failure
/// under `CI`.
pub fn server() -> Result<String, SetupError> {
    match std::env::var("CAMPANILE_TEST_ZK") {
        Ok(hosts) if !hosts.trim().is_empty() => Ok(hosts.trim().to_owned()),
        _ if std::env::var_os("CI").is_some() => Err(SetupError::Failed(
            "CAMPANILE_TEST_ZK is unset under CI: start a server with scripts/zookeeper.sh start and export its connect string".to_owned(),
        )),
        _ => Err(SetupError::Skip(
            "CAMPANILE_TEST_ZK is unset (start one with: export CAMPANILE_TEST_ZK=$(scripts/zookeeper.sh start))".to_owned(),
        )),
    }
}

/// A fresh chroot name, unique across the processes and runs sharing one server.
pub fn fresh_chroot(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    #[allow(clippy::disallowed_methods)]
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "/campanile-test/{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Settings for a test namespace on `hosts`: small history and short request deadlines.
pub fn config(hosts: &str, chroot: &str) -> ZkConfig {
    let mut config = ZkConfig::from_connect_string(&format!("{hosts}{chroot}"))
        .expect("a valid test connect string");
    config.history_limit = ZkConfig::MIN_HISTORY_LIMIT;
    config.request_timeout = Duration::from_secs(5);
    config
}

/// The conformance suite's factory: each namespace is a fresh chroot with separate coordinators (separate
/// connections) as its clients, deleted at the end of a passing case.
pub struct Factory;

pub fn clients(config: &ZkConfig, n: usize) -> Vec<Arc<dyn Coordinator>> {
    (0..n)
        .map(|_| {
            Arc::new(ZkCoordinator::new(config.clone()).expect("valid config"))
                as Arc<dyn Coordinator>
        })
        .collect()
}

#[async_trait::async_trait]
impl CoordinatorFactory for Factory {
    fn profile(&self) -> BackendProfile {
        BackendProfile {
            min_ttl: Duration::from_secs(1),
            expiry_slack: Duration::from_secs(3),
            long_ttl: Duration::from_secs(40),
            paused_time: false,
            history_limit: ZkConfig::MIN_HISTORY_LIMIT,
            configurable_watch_retention: true,
        }
    }

    async fn namespace(&self, options: NamespaceOptions) -> Result<Namespace, SetupError> {
        let hosts = server()?;
        let mut config = config(&hosts, &fresh_chroot("conformance"));
        if let Some(retention) = options.watch_retention {
            config.watch_retention = retention.max(1);
        }
        let n = options.clients;
        let cleanup = config.clone();
        let restart = config.clone();
        let guard = CleanupGuard::none().on_finish(move || {
            Box::pin(async move {
                if let Err(error) = ZkCoordinator::delete_namespace(&cleanup).await {
                    eprintln!("cleanup of {}: {error}", cleanup.chroot);
                }
            })
        });
        Ok(
            Namespace::new(clients(&config, n), guard).with_restart(Box::new(move || {
                let config = restart.clone();
                Box::pin(async move { Ok(clients(&config, n)) })
            })),
        )
    }
}
