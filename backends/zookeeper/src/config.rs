//! Settings of the ZooKeeper coordinator: where the ensemble is, which chroot holds the namespace, how to
//! authenticate, and the limits of the namespace.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use campanile::ValidationError;

/// Settings of a [`ZkCoordinator`](crate::ZkCoordinator). Build it with [`ZkConfig::new`] or
/// [`ZkConfig::from_connect_string`], then change fields with struct update syntax and call
/// [`ZkConfig::validate`] (the coordinator's constructor does).
#[derive(Clone, PartialEq, Eq)]
pub struct ZkConfig {
    /// `HOST:PORT` of each server of the ensemble.
    pub servers: Vec<String>,
    /// The namespace: an absolute znode path (`/campanile`), created with its parents if missing. Every
    /// znode of the cluster lives below it, so one ensemble can hold several clusters.
    pub chroot: String,
    /// Digest authentication (`user:password`). When set, every znode is created with the ACL
    /// `auth::cdrwa` (only clients authenticated as this user can read or write them); without it znodes are
    /// world-readable and world-writable (`world:anyone:cdrwa`).
    pub auth: Option<DigestAuth>,
    /// TLS to the servers (their secure client port). Plain TCP if absent.
    pub tls: Option<ZkTls>,
    /// Deadline of every request (a read, a write, a session's keep-alive). A write that times out is
    /// reported as `Unavailable { certainly_aborted: false }`: it may still happen.
    pub request_timeout: Duration,
    /// How long connecting (and establishing the ZooKeeper session) may take.
    pub connect_timeout: Duration,
    /// Run records kept per job: the newest ones by scheduled instant. At least 100.
    pub history_limit: usize,
    /// Job-store changes kept in the change log (`/log`) for `watch_jobs` to resume from. At least 1.
    pub watch_retention: u64,
    /// Issue a `sync` before the reads that must see every acknowledged write (members, leader,
    /// assignment, jobs, claims, runs), so that a client connected to a lagging follower reads no stale
    /// state. Default true; costs one round trip per such read.
    pub sync_reads: bool,
}

/// Digest credentials (`addauth digest user:password`).
#[derive(Clone, PartialEq, Eq)]
pub struct DigestAuth {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for DigestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl DigestAuth {
    /// Parses `user:password`.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(Self {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err(ValidationError::new(
                "zookeeper.auth",
                "<redacted>",
                "expected user:password, both non-empty",
            )),
        }
    }
}

/// TLS settings: PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkTls {
    /// CA certificates that sign the servers' certificates.
    pub ca: PathBuf,
    /// Client certificate chain and key, for servers that require client authentication.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl fmt::Debug for ZkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkConfig")
            .field("servers", &self.servers)
            .field("chroot", &self.chroot)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("history_limit", &self.history_limit)
            .field("watch_retention", &self.watch_retention)
            .field("sync_reads", &self.sync_reads)
            .finish()
    }
}

impl ZkConfig {
    /// The smallest accepted `history_limit`.
    pub const MIN_HISTORY_LIMIT: usize = 100;

    /// Settings for `servers` and `chroot` with the defaults: no auth, no TLS, requests time out after 5 s,
    /// connecting after 10 s, 1000 run records per job, 10 000 job changes retained.
    pub fn new(servers: Vec<String>, chroot: impl Into<String>) -> Self {
        Self {
            servers,
            chroot: chroot.into(),
            auth: None,
            tls: None,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            history_limit: 1000,
            watch_retention: 10_000,
            sync_reads: true,
        }
    }

    /// Parses a connect string with chroot, `HOST:PORT[,HOST:PORT...]/CHROOT` (the part of a `zk://` URL
    /// after the scheme), and validates it.
    pub fn from_connect_string(text: &str) -> Result<Self, ValidationError> {
        let (hosts, chroot) = match text.find('/') {
            Some(at) => (&text[..at], &text[at..]),
            None => (text, ""),
        };
        let servers = hosts.split(',').map(str::to_owned).collect();
        let config = Self::new(servers, chroot);
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the error names the field and the value.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.servers.is_empty() {
            return Err(ValidationError::new(
                "zookeeper.servers",
                "",
                "at least one HOST:PORT is needed",
            ));
        }
        for server in &self.servers {
            let ok = server.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
            if !ok {
                return Err(ValidationError::new(
                    "zookeeper.servers",
                    server,
                    "expected HOST:PORT with a port from 1 to 65535",
                ));
            }
        }
        let chroot = &self.chroot;
        let components_ok = chroot
            .split('/')
            .skip(1)
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.chars().any(char::is_control));
        if !chroot.starts_with('/') || chroot == "/" || !components_ok || chroot == "/zookeeper" {
            return Err(ValidationError::new(
                "zookeeper.chroot",
                chroot,
                "expected an absolute znode path below the root, like /campanile (no empty, `.` or `..` components, not /zookeeper)",
            ));
        }
        if self.request_timeout.is_zero() || self.request_timeout > Duration::from_secs(600) {
            return Err(ValidationError::new(
                "zookeeper.request_timeout",
                humantime(self.request_timeout),
                "must be positive and at most 10m",
            ));
        }
        if self.connect_timeout.is_zero() || self.connect_timeout > Duration::from_secs(600) {
            return Err(ValidationError::new(
                "zookeeper.connect_timeout",
                humantime(self.connect_timeout),
                "must be positive and at most 10m",
            ));
        }
        if self.history_limit < Self::MIN_HISTORY_LIMIT {
            return Err(ValidationError::new(
                "zookeeper.history_limit",
                self.history_limit,
                format!("must be at least {}", Self::MIN_HISTORY_LIMIT),
            ));
        }
        if self.watch_retention == 0 {
            return Err(ValidationError::new(
                "zookeeper.watch_retention",
                self.watch_retention,
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The connect string without chroot (`host:port,host:port`).
    pub(crate) fn hosts(&self) -> String {
        self.servers.join(",")
    }

    /// What identifies the namespace within this process: its ensemble and chroot.
    pub(crate) fn namespace_key(&self) -> String {
        let mut servers = self.servers.clone();
        servers.sort();
        format!("{}{}", servers.join(","), self.chroot)
    }
}

fn humantime(d: Duration) -> String {
    format!("{d:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_strings_parse_and_bad_ones_name_the_field() {
        let c = ZkConfig::from_connect_string("a:2181,b:2182/campanile/prod").expect("valid");
        assert_eq!(c.servers, vec!["a:2181", "b:2182"]);
        assert_eq!(c.chroot, "/campanile/prod");
        for (bad, field) in [
            ("a:2181", "zookeeper.chroot"),
            ("a:2181/", "zookeeper.chroot"),
            ("a:2181/x//y", "zookeeper.chroot"),
            ("a:2181/x/..", "zookeeper.chroot"),
            ("a/x", "zookeeper.servers"),
            ("a:0/x", "zookeeper.servers"),
            (":1/x", "zookeeper.servers"),
            ("a:1,/x", "zookeeper.servers"),
        ] {
            let e = ZkConfig::from_connect_string(bad).expect_err(bad);
            assert_eq!(e.field, field, "{bad}: {e}");
        }
    }

    #[test]
    fn limits_are_checked_and_the_password_is_never_shown() {
        let mut c = ZkConfig::new(vec!["h:1".into()], "/c");
        c.history_limit = 5;
        assert_eq!(
            c.validate().expect_err("small").field,
            "zookeeper.history_limit"
        );
        let auth = DigestAuth::parse("user:s3cret").expect("auth");
        assert!(!format!("{auth:?}").contains("s3cret"));
        let e = DigestAuth::parse("nopassword").expect_err("bad");
        assert!(!e.to_string().contains("nopassword"));
    }
}
