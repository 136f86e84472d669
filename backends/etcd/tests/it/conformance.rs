//! The conformance suite of `campanile-adapters` against the shared etcd, one connection per client.

use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::Coordinator;
use campanile_adapters::{
    BackendProfile, CleanupGuard, CoordinatorFactory, Namespace, NamespaceOptions, SetupError,
};
use campanile_etcd::{EtcdConfig, EtcdCoordinator};

/// Fresh namespaces (key prefixes) on the etcd named by `CAMPANILE_TEST_ETCD`.
struct Etcd;

#[async_trait::async_trait]
impl CoordinatorFactory for Etcd {
    fn profile(&self) -> BackendProfile {
        BackendProfile {
            // etcd's smallest lease TTL with its default election timeout (1 s) is 2 s.
            min_ttl: Duration::from_secs(2),
            // Leases are revoked by the etcd leader's expiry loop (every 500 ms), then the member watch
            // sees the deletion; generous for a shared 2-core machine.
            expiry_slack: Duration::from_secs(5),
            long_ttl: Duration::from_secs(600),
            paused_time: false,
            history_limit: EtcdConfig::MIN_HISTORY_LIMIT,
            // Compaction is server-wide in etcd: a case cannot compact its own namespace without
            // disturbing the others. The fault tests check `Compacted` on a private etcd.
            configurable_watch_retention: false,
        }
    }

    async fn namespace(&self, options: NamespaceOptions) -> Result<Namespace, SetupError> {
        let endpoints = match std::env::var("CAMPANILE_TEST_ETCD") {
            Ok(value) if !value.trim().is_empty() => value
                .split(',')
                .map(|e| e.trim().to_owned())
                .collect::<Vec<_>>(),
            _ if std::env::var_os("CI").is_some() => {
                return Err(SetupError::Failed(
                    "CAMPANILE_TEST_ETCD is unset under CI".to_owned(),
                ));
            }
            _ => {
                return Err(SetupError::Skip(
                    "CAMPANILE_TEST_ETCD is unset (export CAMPANILE_TEST_ETCD=$(scripts/etcd.sh start))"
                        .to_owned(),
                ));
            }
        };
        let prefix = super::unique_prefix("conformance");
        let mut clients: Vec<Arc<dyn Coordinator>> = Vec::new();
        for _ in 0..options.clients {
            let client = EtcdCoordinator::connect(super::test_config(&endpoints, &prefix))
                .await
                .map_err(SetupError::failed)?;
            clients.push(Arc::new(client));
        }
        let guard = CleanupGuard::none().on_finish(move || {
            Box::pin(async move { super::delete_prefix(&endpoints, &prefix).await })
        });
        Ok(Namespace::new(clients, guard))
    }
}

mod real_server {
    campanile_adapters::conformance_suite!(super::Etcd);
}
