//! The node's configuration: defaults, then one TOML file (`--config`), then `CAMPANILE_*` environment
//! variables, then flags; unknown keys are errors, durations are humane strings (`"5s"`), and
//! [`Config::validate`] names the offending key and value.
//!
//! Every key is documented in `docs/operations.md`; a test checks that each key of [`Config`] appears there.

mod cluster;
#[cfg(test)]
mod tests;
mod validate;

pub use cluster::{ClusterConfig, client_tls, read_cookie};

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use campanile::ValidationError;
use serde::{Deserialize, Serialize};

/// The whole configuration of `campanile serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's id, unique among live nodes (`[A-Za-z0-9._-]`, 1 to 64 characters).
    pub node_id: String,
    /// Labels that jobs' `node_labels` are matched against (`region=eu`).
    pub labels: Vec<String>,
    /// Most total job weight this node owns; unlimited if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    /// Address and port the HTTP API listens on.
    pub listen: SocketAddr,
    /// Address shown to operators in `/v1/cluster`; the listen address if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// Directory of the durable in-process store (the default coordinator); created if missing.
    pub data_dir: PathBuf,
    /// The coordination backend as one URL: `memory:`, `file://PATH`, `etcd://HOST:PORT[,...]/PREFIX` or
    /// `zk://HOST:PORT[,...]/CHROOT`. Default: `file://{data_dir}/campanile.redb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<String>,
    /// File of API tokens (see [`crate::api::auth`]); without one the API is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Serve without a token file on an address other than loopback (an API open to anyone who reaches it,
    /// which runs any command as this user). Without it, `serve` refuses such a configuration.
    pub insecure_no_auth: bool,
    /// Environment variables of the node that commands receive, besides `PATH`, `HOME`, `LANG` and `TZ`
    /// (commands never get the node's whole environment).
    pub inherit_env: Vec<String>,
    /// Users that jobs' commands may run as (`target.run_as.user`, as written there: a name or a uid); none
    /// by default. Switching users needs the node to run as root.
    pub allow_run_as: Vec<String>,
    /// Largest request body accepted, in bytes; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// Limits of the HTTP listener: timeouts, connections, request head sizes.
    pub http: HttpConfig,
    /// Where HTTP targets and webhooks may connect.
    pub egress: EgressConfig,
    /// On SIGTERM/SIGINT, how long running runs may take to finish before they are killed.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Logging.
    pub log: LogConfig,
    /// TLS for the HTTP listener; plain HTTP if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Engine tunables.
    pub engine: EngineConfig,
    /// Webhook notifications.
    pub notify: NotifyConfig,
    /// Settings of a `zk://` coordinator.
    pub zookeeper: ZooKeeperConfig,
    /// How to reach etcd when `coordinator` is an `etcd://` URL.
    pub etcd: EtcdConfig,
    /// The cluster port for workers of executor groups.
    pub cluster: ClusterConfig,
    /// Where run history is kept for reading, and for how long.
    pub history: HistoryConfig,
}

/// `[history]`: the history store that run records are copied to once the coordinator accepted them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// `local` (`{data_dir}/history.redb`, the records this node wrote) or `postgres://…` (one database shared
    /// by every node). Default: the in-process backend's own file (or memory) for `file://` and `memory:`
    /// coordinators, `local` for etcd and ZooKeeper.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Records scheduled longer ago than this are dropped; kept until `engine.history_limit` says otherwise
    /// if absent.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_age: Option<Duration>,
    /// How often retention runs.
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            store: None,
            max_age: None,
            prune_interval: Duration::from_secs(60),
        }
    }
}

/// Where the history lives, as `[history] store` and the coordinator say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryStoreKind {
    /// The in-process backend's own store (its file, or memory).
    Inproc,
    /// A redb file of this node.
    Local(PathBuf),
    /// A PostgreSQL database, by URL.
    Postgres(String),
}

/// `[etcd]`: authentication, TLS and timing towards etcd (the endpoints and key prefix are in the
/// `coordinator` URL). The password is read from `CAMPANILE_ETCD_PASSWORD`, else from `password_file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdConfig {
    /// User for etcd's authentication (also `CAMPANILE_ETCD_USER`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// File holding the user's password (one line); `CAMPANILE_ETCD_PASSWORD` takes precedence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PEM CA certificate that signed etcd's server certificates: connect over TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate chain, for etcd's `--client-cert-auth` (with `tls_key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Deadline of each call to etcd.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Deadline of connecting to one endpoint.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            user: None,
            password_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// `[log]`: how the node logs (to stderr).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (human) or `json` (one object per line).
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `campanile=debug,info`.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[http]`: what one client may hold of the listener, before any token is checked: so that slow or
/// oversized requests cannot starve `/healthz` or grow memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Time a client has to send a whole request head, from the moment the connection opens or the previous
    /// answer was sent: so an idle kept-alive connection is closed after it too.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest pause while a request body is received; the request is answered 408 after it.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Most open connections; further ones are closed at once, until some end.
    pub max_connections: usize,
    /// Longest request target (path and query), in bytes; longer ones are answered 414.
    pub max_uri_bytes: usize,
    /// Most bytes of request header fields; more is answered 431.
    pub max_header_bytes: usize,
    /// Largest body of `POST /v1/jobs:batch` (up to 10,000 jobs), which `max_body_bytes` does not bound;
    /// larger ones are answered 413.
    pub max_batch_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_uri_bytes: 8 << 10,
            max_header_bytes: 16 << 10,
            max_batch_body_bytes: 16 << 20,
        }
    }
}

/// `[egress]`: where HTTP targets and webhooks may connect. Link-local networks and this node's own listener
/// are denied unless an `allow` rule names them; a `deny` rule beats an `allow` rule; a non-empty `allow`
/// list denies what it does not name. Rules: `host.name`, `*.domain`, an IP address, or a network
/// `10.0.0.0/8`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Destinations permitted; empty: everything not denied.
    pub allow: Vec<String>,
    /// Destinations denied.
    pub deny: Vec<String>,
}

impl EgressConfig {
    /// The policy, with `listener` (the node's own API address) denied by default.
    pub fn policy(
        &self,
        listener: Option<SocketAddr>,
    ) -> Result<campanile::exec::Egress, ValidationError> {
        let parse = |key: &str, rules: &[String]| {
            rules
                .iter()
                .enumerate()
                .map(|(i, rule)| {
                    campanile::exec::EgressRule::parse(rule).map_err(|reason| {
                        ValidationError::new(format!("egress.{key}[{i}]"), rule, reason)
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(campanile::exec::Egress::new(
            parse("allow", &self.allow)?,
            parse("deny", &self.deny)?,
            listener,
        ))
    }
}

/// `[tls]`: serve the API over TLS (rustls) with this certificate chain and key, both PEM files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[engine]`: the scheduler's tunables (see `campanile::Builder`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Session TTL: a crashed node's jobs move to other nodes after this long.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// How far ahead instants are claimed (capped at half the TTL).
    #[serde(with = "humantime_serde")]
    pub claim_lookahead: Duration,
    /// An instant that could not start within this long is a misfire, handled by the job's policy.
    #[serde(with = "humantime_serde")]
    pub misfire_threshold: Duration,
    /// Most runs at once on this node; further fires wait in order.
    pub max_concurrent_runs: usize,
    /// How long the leader waits after a change before publishing a new assignment.
    #[serde(with = "humantime_serde")]
    pub rebalance_delay: Duration,
    /// Run records kept per job by the in-process, etcd and ZooKeeper backends (at least 100).
    pub history_limit: usize,
}

/// `[zookeeper]`: how a `zk://` coordinator authenticates and encrypts (the URL says where).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZooKeeperConfig {
    /// File holding `user:password` for digest authentication; the cluster's znodes are then created with
    /// the ACL `auth::cdrwa` (only that user can read or write them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<PathBuf>,
    /// PEM CA certificates of the servers: connect with TLS (to their secure client port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate chain, for servers that authenticate clients (with `tls_key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Deadline of every ZooKeeper request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for ZooKeeperConfig {
    fn default() -> Self {
        Self {
            auth_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// `[notify]`: webhooks told about failed, timed-out, misfired and in-doubt runs and lost nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// How often the member list is checked for lost nodes (run events are pushed, not polled).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Events waiting per webhook; when full, new events are dropped (and counted), never waited for.
    pub queue: usize,
    /// The webhooks.
    pub webhooks: Vec<WebhookConfig>,
}

/// `[[notify.webhooks]]`: one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name a job's `notify` label can select (`notify=ops,pager`).
    pub name: String,
    /// `http://` or `https://` URL that receives a `POST` of the event JSON.
    pub url: String,
    /// Events sent; all of them if empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventKind>,
    /// Extra request headers (`Authorization`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Timeout of one delivery attempt.
    #[serde(default = "default_webhook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per event (1 = no retry); retries back off from 1 s, doubling, up to 60 s.
    #[serde(default = "default_webhook_attempts")]
    pub max_attempts: u32,
}

/// What a notification is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A run failed.
    RunFailed,
    /// A run was killed at its timeout.
    RunTimedOut,
    /// Instants were not run on time (recorded `misfired`).
    Misfired,
    /// An instant's outcome is unknown after its owner vanished (recorded `in_doubt`).
    InDoubt,
    /// A member left the cluster (session expired or closed).
    NodeLost,
    /// A worker of an executor group connected to this node was lost (its link broke, or it went silent).
    WorkerLost,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 6] = [
        EventKind::RunFailed,
        EventKind::RunTimedOut,
        EventKind::Misfired,
        EventKind::InDoubt,
        EventKind::NodeLost,
        EventKind::WorkerLost,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunFailed => "run_failed",
            EventKind::RunTimedOut => "run_timed_out",
            EventKind::Misfired => "misfired",
            EventKind::InDoubt => "in_doubt",
            EventKind::NodeLost => "node_lost",
            EventKind::WorkerLost => "worker_lost",
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: "node-1".to_owned(),
            labels: Vec::new(),
            capacity: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            advertise: None,
            data_dir: PathBuf::from("campanile-data"),
            coordinator: None,
            token_file: None,
            insecure_no_auth: false,
            inherit_env: Vec::new(),
            allow_run_as: Vec::new(),
            max_body_bytes: 1 << 20,
            http: HttpConfig::default(),
            egress: EgressConfig::default(),
            shutdown_timeout: Duration::from_secs(30),
            log: LogConfig::default(),
            tls: None,
            engine: EngineConfig::default(),
            notify: NotifyConfig::default(),
            zookeeper: ZooKeeperConfig::default(),
            etcd: EtcdConfig::default(),
            cluster: ClusterConfig::default(),
            history: HistoryConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(10),
            claim_lookahead: Duration::from_secs(5),
            misfire_threshold: Duration::from_secs(5),
            max_concurrent_runs: 10_000,
            rebalance_delay: Duration::from_millis(100),
            history_limit: 1000,
        }
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            queue: 1024,
            webhooks: Vec::new(),
        }
    }
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_webhook_attempts() -> u32 {
    5
}

/// The coordination backend, parsed from the `coordinator` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorUrl {
    /// `memory:`: nothing survives the process.
    Memory,
    /// `file://PATH`: the durable in-process store in one redb file.
    File(PathBuf),
    /// `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
    Etcd {
        /// `HOST:PORT` of each endpoint.
        endpoints: Vec<String>,
        /// Key prefix.
        prefix: String,
    },
    /// `zk://HOST:PORT[,HOST:PORT...]/CHROOT`.
    ZooKeeper {
        /// `HOST:PORT` of each server.
        servers: Vec<String>,
        /// Chroot path.
        chroot: String,
    },
}

impl FromStr for CoordinatorUrl {
    type Err = ValidationError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ValidationError::new("coordinator", url, reason);
        if url == "memory:" || url == "memory" || url == "memory://" {
            return Ok(CoordinatorUrl::Memory);
        }
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(err(
                    "file:// needs a path, like file://./campanile-data/campanile.redb",
                ));
            }
            return Ok(CoordinatorUrl::File(PathBuf::from(path)));
        }
        let hosts_and_path =
            |rest: &str, what: &str| -> Result<(Vec<String>, String), ValidationError> {
                let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
                let hosts: Vec<String> = hosts.split(',').map(str::to_owned).collect();
                if hosts.iter().any(|h| {
                    h.rsplit_once(':')
                        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                }) {
                    return Err(err(&format!(
                        "expected {what}://HOST:PORT[,HOST:PORT...]/PATH with a port on every host"
                    )));
                }
                Ok((hosts, format!("/{path}")))
            };
        if let Some(rest) = url.strip_prefix("etcd://") {
            let (endpoints, prefix) = hosts_and_path(rest, "etcd")?;
            return Ok(CoordinatorUrl::Etcd { endpoints, prefix });
        }
        if let Some(rest) = url.strip_prefix("zk://") {
            let (servers, chroot) = hosts_and_path(rest, "zk")?;
            return Ok(CoordinatorUrl::ZooKeeper { servers, chroot });
        }
        Err(err(
            "expected memory:, file://PATH, etcd://HOST:PORT[,...]/PREFIX or zk://HOST:PORT[,...]/CHROOT",
        ))
    }
}

impl fmt::Display for CoordinatorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoordinatorUrl::Memory => f.write_str("memory:"),
            CoordinatorUrl::File(path) => write!(f, "file://{}", path.display()),
            CoordinatorUrl::Etcd { endpoints, prefix } => {
                write!(f, "etcd://{}{prefix}", endpoints.join(","))
            }
            CoordinatorUrl::ZooKeeper { servers, chroot } => {
                write!(f, "zk://{}{chroot}", servers.join(","))
            }
        }
    }
}

/// Settings given on the command line or in `CAMPANILE_*` variables; each one, when set, replaces the
/// file's value.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// The coordination backend: memory:, file://PATH, etcd://HOST:PORT[,...]/PREFIX, zk://HOST:PORT[,...]/CHROOT.
    #[arg(long, env = "CAMPANILE_COORDINATOR", value_name = "URL")]
    pub coordinator: Option<String>,
    /// Address the HTTP API listens on [default: 127.0.0.1:7070].
    #[arg(long, env = "CAMPANILE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// This node's id [default: node-1].
    #[arg(long, env = "CAMPANILE_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,
    /// Node labels, comma-separated (region=eu,ssd).
    #[arg(
        long,
        env = "CAMPANILE_LABELS",
        value_name = "LABELS",
        value_delimiter = ','
    )]
    pub labels: Option<Vec<String>>,
    /// Directory of the default durable store [default: ./campanile-data].
    #[arg(long, env = "CAMPANILE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// File of API tokens: one bare token per line grants admin; `read-only TOKEN` grants reads only.
    #[arg(long, env = "CAMPANILE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(
        long,
        env = "CAMPANILE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "CAMPANILE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "CAMPANILE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter (info, debug, campanile=debug,info).
    #[arg(long, env = "CAMPANILE_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// User for etcd's authentication (the password comes from CAMPANILE_ETCD_PASSWORD or etcd.password_file).
    #[arg(long, env = "CAMPANILE_ETCD_USER", value_name = "USER")]
    pub etcd_user: Option<String>,
    /// Serve an open API (no token file) on an address other than loopback: anyone who reaches it can run
    /// any command as this user.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Open the cluster port where workers of executor groups connect (HOST:PORT).
    #[arg(long, env = "CAMPANILE_CLUSTER_LISTEN", value_name = "ADDR")]
    pub cluster_listen: Option<SocketAddr>,
    /// File holding the cluster cookie workers must present (required unless --cluster-listen is loopback).
    #[arg(long, env = "CAMPANILE_CLUSTER_COOKIE_FILE", value_name = "FILE")]
    pub cluster_cookie_file: Option<PathBuf>,
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read config file {}", path.display()))?;
        let config: Config = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("invalid config file {}", path.display()))?;
        Ok(config)
    }

    /// The configuration `campanile serve` runs with: the file (if any) under the overrides, validated.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    /// Replaces the settings that `overrides` sets.
    pub fn apply(&mut self, overrides: &Overrides) {
        let o = overrides.clone();
        if let Some(v) = o.coordinator {
            self.coordinator = Some(v);
        }
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = o.node_id {
            self.node_id = v;
        }
        if let Some(v) = o.labels {
            self.labels = v.into_iter().filter(|l| !l.is_empty()).collect();
        }
        if let Some(v) = o.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = o.token_file {
            self.token_file = Some(v);
        }
        if let (Some(cert), Some(key)) = (o.tls_cert, o.tls_key) {
            self.tls = Some(TlsConfig { cert, key });
        }
        if let Some(v) = o.log_format {
            self.log.format = v;
        }
        if let Some(v) = o.log_level {
            self.log.level = v;
        }
        if let Some(v) = o.etcd_user {
            self.etcd.user = Some(v);
        }
        if o.insecure_no_auth {
            self.insecure_no_auth = true;
        }
        if let Some(v) = o.cluster_listen {
            self.cluster.listen = Some(v);
        }
        if let Some(v) = o.cluster_cookie_file {
            self.cluster.cookie_file = Some(v);
        }
    }

    /// The coordinator URL, with the default (`file://{data_dir}/campanile.redb`) filled in.
    pub fn coordinator_url(&self) -> Result<CoordinatorUrl, ValidationError> {
        match &self.coordinator {
            Some(url) => url.parse(),
            None => Ok(CoordinatorUrl::File(self.data_dir.join("campanile.redb"))),
        }
    }

    /// The history store, with the default filled in from the coordinator.
    pub fn history_store(&self) -> Result<HistoryStoreKind, ValidationError> {
        match self.history.store.as_deref() {
            None => Ok(match self.coordinator_url()? {
                CoordinatorUrl::Memory | CoordinatorUrl::File(_) => HistoryStoreKind::Inproc,
                _ => HistoryStoreKind::Local(self.data_dir.join("history.redb")),
            }),
            Some("local") => Ok(HistoryStoreKind::Local(self.data_dir.join("history.redb"))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(HistoryStoreKind::Postgres(url.to_owned()))
            }
            Some(other) => Err(ValidationError::new(
                "history.store",
                redact_userinfo(other),
                "expected \"local\" or a postgres:// URL",
            )),
        }
    }

    /// This configuration with its secrets replaced by `"(redacted)"`, to print it: webhook header values
    /// and passwords in webhook URLs. (Other secrets are only named by their file.)
    pub fn redacted(&self) -> Self {
        let mut config = self.clone();
        for hook in &mut config.notify.webhooks {
            hook.headers
                .values_mut()
                .for_each(|value| *value = "(redacted)".to_owned());
            if let Ok(mut url) = reqwest::Url::parse(&hook.url)
                && url.password().is_some()
                && url.set_password(Some("(redacted)")).is_ok()
            {
                hook.url = url.to_string();
            }
        }
        if let Some(store) = &mut config.history.store {
            *store = redact_userinfo(store);
        }
        config
    }

    /// A configuration with every optional key set: the source of the key list checked against
    /// `docs/operations.md`.
    pub fn example() -> Self {
        Config {
            capacity: Some(1000),
            labels: vec!["region=eu".to_owned()],
            advertise: Some("10.0.0.5:7070".to_owned()),
            coordinator: Some("file://./campanile-data/campanile.redb".to_owned()),
            token_file: Some(PathBuf::from("/etc/campanile/tokens")),
            inherit_env: vec!["HTTPS_PROXY".to_owned()],
            allow_run_as: vec!["nobody".to_owned()],
            egress: EgressConfig {
                allow: vec!["*.example.com".to_owned()],
                deny: vec!["10.0.0.0/8".to_owned()],
            },
            tls: Some(TlsConfig {
                cert: PathBuf::from("/etc/campanile/cert.pem"),
                key: PathBuf::from("/etc/campanile/key.pem"),
            }),
            notify: NotifyConfig {
                webhooks: vec![WebhookConfig {
                    name: "ops".to_owned(),
                    url: "https://hooks.example.com/campanile".to_owned(),
                    events: vec![EventKind::RunFailed],
                    headers: BTreeMap::from([("Authorization".to_owned(), "Bearer x".to_owned())]),
                    timeout: default_webhook_timeout(),
                    max_attempts: default_webhook_attempts(),
                }],
                ..NotifyConfig::default()
            },
            zookeeper: ZooKeeperConfig {
                auth_file: Some(PathBuf::from("/etc/campanile/zookeeper-auth")),
                tls_ca: Some(PathBuf::from("/etc/campanile/zookeeper-ca.pem")),
                tls_cert: Some(PathBuf::from("/etc/campanile/zookeeper-cert.pem")),
                tls_key: Some(PathBuf::from("/etc/campanile/zookeeper-key.pem")),
                ..ZooKeeperConfig::default()
            },
            history: HistoryConfig {
                store: Some("postgres://campanile@db.example.com:5432/campanile".to_owned()),
                max_age: Some(Duration::from_secs(30 * 86_400)),
                ..HistoryConfig::default()
            },
            etcd: EtcdConfig {
                user: Some("campanile".to_owned()),
                password_file: Some(PathBuf::from("/etc/campanile/etcd-password")),
                tls_ca: Some(PathBuf::from("/etc/campanile/etcd-ca.pem")),
                tls_cert: Some(PathBuf::from("/etc/campanile/etcd-client.pem")),
                tls_key: Some(PathBuf::from("/etc/campanile/etcd-client-key.pem")),
                ..EtcdConfig::default()
            },
            ..Config::default()
        }
    }

    /// Every key of the configuration as a dotted path (`engine.session_ttl`, `notify.webhooks.url`).
    pub fn keys() -> Vec<String> {
        fn walk(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
            match value {
                toml::Value::Table(table) => {
                    for (key, value) in table {
                        let path = if prefix.is_empty() {
                            key.clone()
                        } else {
                            format!("{prefix}.{key}")
                        };
                        let is_map = path.ends_with(".headers");
                        out.push(path.clone());
                        if !is_map {
                            walk(&path, value, out);
                        }
                    }
                }
                toml::Value::Array(items) => {
                    if let Some(first @ toml::Value::Table(_)) = items.first() {
                        walk(prefix, first, out);
                    }
                }
                _ => {}
            }
        }
        let value = toml::Value::try_from(Self::example()).expect("the example serializes");
        let mut out = Vec::new();
        walk("", &value, &mut out);
        out
    }
}

/// A URL with the password of its user info replaced (`postgres://app:***@db/x`); other text unchanged.
fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme && url[scheme + 3..at].contains(':') => {
            let user = url[scheme + 3..at].split(':').next().unwrap_or("");
            format!("{}{user}:(redacted){}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
