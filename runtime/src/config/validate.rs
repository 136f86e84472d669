//! [`Config::validate`]: the checks the types cannot make, each error naming the key and the value.

use std::time::Duration;

use campanile::ValidationError;
use campanile::coordinator::NodeId;

use super::Config;

impl Config {
    /// Checks what the types cannot; the error names the key and the value.
    pub fn validate(&self) -> Result<(), ValidationError> {
        NodeId::new(&self.node_id)?;
        if let Some(label) = self.labels.iter().find(|l| {
            l.is_empty() || l.len() > 128 || l.chars().any(|c| c.is_whitespace() || c == ',')
        }) {
            return Err(ValidationError::new(
                "labels",
                label,
                "a label is 1 to 128 characters without whitespace or commas",
            ));
        }
        if self.capacity == Some(0) {
            return Err(ValidationError::new("capacity", 0, "must be positive"));
        }
        self.coordinator_url()?;
        if self.token_file.is_none() && !self.listen.ip().is_loopback() && !self.insecure_no_auth {
            return Err(ValidationError::new(
                "listen",
                self.listen,
                "is reachable from other machines, and without a token file anyone who reaches it may run \
                 any command as this user: set token_file (--token-file FILE, see the Security section of \
                 docs/operations.md), listen on 127.0.0.1, or set insecure_no_auth = true \
                 (--insecure-no-auth) to serve an open API on purpose",
            ));
        }
        if let Some(name) = self.inherit_env.iter().find(|n| {
            n.is_empty() || n.contains('=') || n.contains('\0') || n.starts_with("CAMPANILE_")
        }) {
            return Err(ValidationError::new(
                "inherit_env",
                name,
                "a variable name is not empty, has no '=' or NUL, and does not start with CAMPANILE_ \
                 (the node's own settings and secrets, and the fire variables, never pass through)",
            ));
        }
        if let Some(user) = self.allow_run_as.iter().find(|u| {
            !(1..=32).contains(&u.len())
                || !u
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        }) {
            return Err(ValidationError::new(
                "allow_run_as",
                user,
                "a user name or uid is 1 to 32 characters of [A-Za-z0-9._-]",
            ));
        }
        self.egress.policy(None)?;
        self.cluster.validate()?;
        let http = &self.http;
        if !(1..=1_000_000).contains(&http.max_connections) {
            return Err(ValidationError::new(
                "http.max_connections",
                http.max_connections,
                "must be 1 to 1000000",
            ));
        }
        if !(256..=32 << 10).contains(&http.max_uri_bytes) {
            return Err(ValidationError::new(
                "http.max_uri_bytes",
                http.max_uri_bytes,
                "must be 256 to 32768",
            ));
        }
        if !(1024..=48 << 10).contains(&http.max_header_bytes) {
            return Err(ValidationError::new(
                "http.max_header_bytes",
                http.max_header_bytes,
                "must be 1024 to 49152",
            ));
        }
        if !(1024..=256 << 20).contains(&http.max_batch_body_bytes) {
            return Err(ValidationError::new(
                "http.max_batch_body_bytes",
                http.max_batch_body_bytes,
                "must be 1024 to 268435456",
            ));
        }
        if !(1024..=64 << 20).contains(&self.max_body_bytes) {
            return Err(ValidationError::new(
                "max_body_bytes",
                self.max_body_bytes,
                "must be 1024 to 67108864",
            ));
        }
        if self.shutdown_timeout > Duration::from_secs(3600) {
            return Err(ValidationError::new(
                "shutdown_timeout",
                humantime::format_duration(self.shutdown_timeout),
                "must be at most 1h",
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            ValidationError::new(
                "log.level",
                &self.log.level,
                format!("not a log filter: {e}"),
            )
        })?;
        let engine = &self.engine;
        let dur = |field: &str, value: Duration, min: Duration, max: Duration| {
            if value < min || value > max {
                return Err(ValidationError::new(
                    field,
                    humantime::format_duration(value),
                    format!(
                        "must be {} to {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                ));
            }
            Ok(())
        };
        let secs = Duration::from_secs;
        dur(
            "http.header_read_timeout",
            http.header_read_timeout,
            Duration::from_millis(100),
            secs(3600),
        )?;
        dur(
            "http.body_read_timeout",
            http.body_read_timeout,
            Duration::from_millis(100),
            secs(3600),
        )?;
        dur(
            "engine.session_ttl",
            engine.session_ttl,
            secs(1),
            secs(86_400),
        )?;
        dur(
            "zookeeper.request_timeout",
            self.zookeeper.request_timeout,
            Duration::from_millis(10),
            secs(600),
        )?;
        let zk = &self.zookeeper;
        if zk.tls_cert.is_some() != zk.tls_key.is_some() {
            let given = zk.tls_cert.as_ref().or(zk.tls_key.as_ref());
            return Err(ValidationError::new(
                if zk.tls_cert.is_some() {
                    "zookeeper.tls_cert"
                } else {
                    "zookeeper.tls_key"
                },
                given.map_or(String::new(), |p| p.display().to_string()),
                "zookeeper.tls_cert and zookeeper.tls_key go together",
            ));
        }
        if let (None, Some(cert)) = (&zk.tls_ca, &zk.tls_cert) {
            return Err(ValidationError::new(
                "zookeeper.tls_cert",
                cert.display(),
                "a client certificate needs zookeeper.tls_ca (TLS to the servers)",
            ));
        }
        dur(
            "engine.claim_lookahead",
            engine.claim_lookahead,
            Duration::from_millis(100),
            secs(3600),
        )?;
        dur(
            "engine.misfire_threshold",
            engine.misfire_threshold,
            Duration::ZERO,
            secs(86_400),
        )?;
        dur(
            "engine.rebalance_delay",
            engine.rebalance_delay,
            Duration::ZERO,
            secs(60),
        )?;
        if engine.max_concurrent_runs == 0 {
            return Err(ValidationError::new(
                "engine.max_concurrent_runs",
                0,
                "must be positive",
            ));
        }
        self.history_store()?;
        dur(
            "history.prune_interval",
            self.history.prune_interval,
            Duration::from_secs(1),
            secs(86_400),
        )?;
        if let Some(age) = self.history.max_age {
            dur(
                "history.max_age",
                age,
                Duration::from_secs(60),
                secs(100 * 365 * 86_400),
            )?;
        }
        if engine.history_limit < 100 {
            return Err(ValidationError::new(
                "engine.history_limit",
                engine.history_limit,
                "must be at least 100",
            ));
        }
        dur(
            "etcd.request_timeout",
            self.etcd.request_timeout,
            Duration::from_millis(100),
            secs(300),
        )?;
        dur(
            "etcd.connect_timeout",
            self.etcd.connect_timeout,
            Duration::from_millis(100),
            secs(300),
        )?;
        if self.etcd.tls_cert.is_some() != self.etcd.tls_key.is_some() {
            let value = self.etcd.tls_cert.as_ref().or(self.etcd.tls_key.as_ref());
            return Err(ValidationError::new(
                "etcd.tls_cert",
                value.map(|p| p.display().to_string()).unwrap_or_default(),
                "etcd.tls_cert and etcd.tls_key go together",
            ));
        }
        dur(
            "notify.poll_interval",
            self.notify.poll_interval,
            Duration::from_millis(100),
            secs(3600),
        )?;
        if !(1..=1_000_000).contains(&self.notify.queue) {
            return Err(ValidationError::new(
                "notify.queue",
                self.notify.queue,
                "must be 1 to 1000000",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, hook) in self.notify.webhooks.iter().enumerate() {
            let field = |name: &str| format!("notify.webhooks[{i}].{name}");
            if hook.name.is_empty()
                || !hook
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(ValidationError::new(
                    field("name"),
                    &hook.name,
                    "must be 1 or more characters of [A-Za-z0-9._-]",
                ));
            }
            if !names.insert(hook.name.as_str()) {
                return Err(ValidationError::new(
                    field("name"),
                    &hook.name,
                    "is used by another webhook",
                ));
            }
            let lower = hook.url.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://"))
                || reqwest::Url::parse(&hook.url).is_err()
            {
                return Err(ValidationError::new(
                    field("url"),
                    &hook.url,
                    "must be an http:// or https:// URL",
                ));
            }
            if !(1..=20).contains(&hook.max_attempts) {
                return Err(ValidationError::new(
                    field("max_attempts"),
                    hook.max_attempts,
                    "must be 1 to 20",
                ));
            }
            dur(
                &field("timeout"),
                hook.timeout,
                Duration::from_millis(100),
                secs(300),
            )?;
            for (name, value) in &hook.headers {
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(ValidationError::new(
                        field("headers"),
                        name,
                        "is not a valid header name",
                    ));
                }
                if reqwest::header::HeaderValue::from_str(value).is_err() {
                    return Err(ValidationError::new(
                        format!("{}.{name}", field("headers")),
                        value,
                        "is not a valid header value",
                    ));
                }
            }
        }
        Ok(())
    }
}
