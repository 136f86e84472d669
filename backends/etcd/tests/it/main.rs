//! Integration tests of `campanile-etcd` against a real etcd: the conformance suite on the shared server
//! named by `CAMPANILE_TEST_ETCD`, and fault tests on private servers this binary starts and stops
//! (`scripts/etcd.sh` or `etcd` on `PATH`).
//!
//! Outside CI, an unset `CAMPANILE_TEST_ETCD` skips these tests with a notice; under `CI` it fails them.

mod conformance;
mod faults;
mod server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use campanile_etcd::{EtcdConfig, EtcdCoordinator};

/// The shared etcd's endpoints, or `None` (after a notice) when the tests should skip.
pub fn shared_endpoints(test: &str) -> Option<Vec<String>> {
    match std::env::var("CAMPANILE_TEST_ETCD") {
        Ok(value) if !value.trim().is_empty() => {
            Some(value.split(',').map(|e| e.trim().to_owned()).collect())
        }
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test}: CAMPANILE_TEST_ETCD is unset under CI: start etcd with scripts/etcd.sh")
        }
        _ => {
            eprintln!(
                "{test}: skipped: CAMPANILE_TEST_ETCD is unset (export CAMPANILE_TEST_ETCD=$(scripts/etcd.sh start))"
            );
            None
        }
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_nanos());
    format!(
        "/campanile-test/{what}-{}-{}-{nanos}/",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The settings the tests use: short deadlines, the smallest history.
pub fn test_config(endpoints: &[String], prefix: &str) -> EtcdConfig {
    EtcdConfig {
        request_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        history_limit: EtcdConfig::MIN_HISTORY_LIMIT,
        ..EtcdConfig::new(endpoints.iter().cloned(), prefix)
    }
}

/// A coordinator on `prefix`.
pub async fn connect(endpoints: &[String], prefix: &str) -> EtcdCoordinator {
    EtcdCoordinator::connect(test_config(endpoints, prefix))
        .await
        .expect("connect to etcd")
}

/// Deletes everything under `prefix` (a test's cleanup).
pub async fn delete_prefix(endpoints: &[String], prefix: &str) {
    let result = async {
        let mut client = etcd_client::Client::connect(endpoints, None).await?;
        client
            .delete(
                prefix,
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
            .await
    };
    if let Err(error) = tokio::time::timeout(Duration::from_secs(5), result).await {
        eprintln!("cleanup of {prefix} failed: {error:?}");
    }
}
