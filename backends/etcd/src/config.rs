//! `EtcdConfig`: where the etcd cluster is, how to authenticate, and the timing of calls.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::EtcdError;

/// How to reach and use an etcd cluster.
///
/// Build it with struct update syntax from [`EtcdConfig::new`], then [`EtcdConfig::validate`] (done by
/// [`EtcdCoordinator::connect`](crate::EtcdCoordinator::connect) too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `HOST:PORT` of each endpoint (or `http://` / `https://` URLs). Calls go to any endpoint that is up.
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster's data (`/campanile/`): clusters with different prefixes share nothing.
    /// Normalized to start and end with `/`.
    pub prefix: String,
    /// User name for etcd's authentication; with [`EtcdConfig::password`].
    pub user: Option<String>,
    /// Password of [`EtcdConfig::user`].
    pub password: Option<String>,
    /// TLS towards etcd; plain HTTP/2 if absent.
    pub tls: Option<EtcdTls>,
    /// Deadline of each call to etcd (a coordinator call may make a few, each with this deadline).
    pub request_timeout: Duration,
    /// Deadline of establishing a connection to one endpoint.
    pub connect_timeout: Duration,
    /// Run records kept per job (at least 100); older ones are dropped in batches.
    pub history_limit: usize,
    /// Most compares (and most operations) per transaction: etcd's `--max-txn-ops` (default 128). Batches
    /// of claims and run records are split to fit.
    pub max_txn_ops: usize,
}

/// TLS files (PEM) for the connection to etcd.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    /// CA certificate(s) that signed the servers' certificates; the system roots are not used.
    pub ca: Option<PathBuf>,
    /// Client certificate chain, for etcd's `--client-cert-auth`; with [`EtcdTls::key`].
    pub cert: Option<PathBuf>,
    /// Private key of [`EtcdTls::cert`].
    pub key: Option<PathBuf>,
}

impl EtcdConfig {
    /// Smallest accepted [`EtcdConfig::history_limit`].
    pub const MIN_HISTORY_LIMIT: usize = 100;

    /// A configuration for `endpoints` and `prefix` with default settings: no auth, no TLS, 5 s call
    /// deadline, 3 s connect deadline, 1000 run records per job, 128 operations per transaction.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>, prefix: &str) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: prefix.to_owned(),
            user: None,
            password: None,
            tls: None,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            history_limit: 1000,
            max_txn_ops: 128,
        }
    }

    /// Checks what the types cannot; the error names the field and the value.
    pub fn validate(&self) -> Result<(), EtcdError> {
        let bad = |field: &str, value: &str, reason: &str| EtcdError::Config {
            field: field.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        if self.endpoints.is_empty() {
            return Err(bad("endpoints", "", "at least one HOST:PORT is needed"));
        }
        for endpoint in &self.endpoints {
            let hostport = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"))
                .unwrap_or(endpoint);
            let ok = hostport
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(bad("endpoints", endpoint, "expected HOST:PORT"));
            }
        }
        if self.prefix.is_empty()
            || self.prefix.len() > 256
            || self.prefix.chars().any(|c| c.is_control())
        {
            return Err(bad(
                "prefix",
                &self.prefix,
                "must be 1 to 256 characters without control characters",
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(bad(
                "user",
                self.user.as_deref().unwrap_or(""),
                "user and password go together",
            ));
        }
        if let Some(tls) = &self.tls
            && tls.cert.is_some() != tls.key.is_some()
        {
            let value = tls.cert.as_ref().or(tls.key.as_ref());
            return Err(bad(
                "tls.cert",
                &value.map(|p| p.display().to_string()).unwrap_or_default(),
                "a client certificate and its key go together",
            ));
        }
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&self.request_timeout)
        {
            return Err(bad(
                "request_timeout",
                &ms(self.request_timeout),
                "must be 100ms to 5m",
            ));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&self.connect_timeout)
        {
            return Err(bad(
                "connect_timeout",
                &ms(self.connect_timeout),
                "must be 100ms to 5m",
            ));
        }
        if self.history_limit < Self::MIN_HISTORY_LIMIT {
            return Err(bad(
                "history_limit",
                &self.history_limit.to_string(),
                "must be at least 100",
            ));
        }
        if self.max_txn_ops < 8 {
            return Err(bad(
                "max_txn_ops",
                &self.max_txn_ops.to_string(),
                "must be at least 8",
            ));
        }
        Ok(())
    }

    /// The prefix as used in keys: starting and ending with `/`.
    pub(crate) fn normalized_prefix(&self) -> String {
        let trimmed = self.prefix.trim_matches('/');
        if trimmed.is_empty() {
            "/".to_owned()
        } else {
            format!("/{trimmed}/")
        }
    }
}
