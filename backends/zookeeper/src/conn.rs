//! Connections: opening a ZooKeeper client onto the namespace (auth, TLS, chroot), creating the namespace's
//! layout once, and the coordinator's shared connection, which is replaced when its ZooKeeper session ends.
//!
//! The shared connection carries everything that is not done for one Campanile session: job-store reads
//! and writes, and the watches of members, assignment and job log. Its ZooKeeper session owns no ephemeral
//! znode, so replacing it after an expiry loses nothing; the watches are set again on the new one. A
//! Campanile session has a ZooKeeper connection of its own (see `session.rs`), which is never replaced.

use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::{CoordError, CoordResult};
use tokio::sync::Mutex;
use tracing::{debug, info};
use zookeeper_client as zk;

use crate::config::ZkConfig;
use crate::error::{Kind, deadline, from_zk};
use crate::paths;

/// The session timeout asked for the shared connection.
const SHARED_SESSION_TIMEOUT: Duration = Duration::from_secs(30);

/// The ACL of every znode the coordinator creates.
pub(crate) fn acls(config: &ZkConfig) -> zk::Acls<'static> {
    if config.auth.is_some() {
        zk::Acls::creator_all()
    } else {
        zk::Acls::anyone_all()
    }
}

/// Connects to the ensemble with a ZooKeeper session of `session_timeout`, rooted at the namespace's
/// chroot. The chroot itself must exist (see [`Shared::client`]).
pub(crate) async fn connect(
    config: &ZkConfig,
    session_timeout: Duration,
) -> CoordResult<zk::Client> {
    let client = connect_root(config, session_timeout).await?;
    client.chroot(config.chroot.as_str()).map_err(|_| {
        CoordError::Invalid(format!(
            "zookeeper.chroot: {:?}: not a valid znode path",
            config.chroot
        ))
    })
}

/// Connects without chroot.
pub(crate) async fn connect_root(
    config: &ZkConfig,
    session_timeout: Duration,
) -> CoordResult<zk::Client> {
    let mut connector = zk::Client::connector()
        .with_session_timeout(session_timeout)
        .with_fail_eagerly();
    if let Some(auth) = &config.auth {
        let credentials = format!("{}:{}", auth.user, auth.password);
        connector = connector.with_auth("digest", credentials.as_bytes());
    }
    let hosts = config.hosts();
    let what = format!("connect to ZooKeeper {hosts}");
    let connecting = async {
        let result = match &config.tls {
            None => connector.connect(&hosts).await,
            Some(tls) => {
                let options = tls_options(tls)?;
                connector.with_tls(options).secure_connect(&hosts).await
            }
        };
        result.map_err(|e| from_zk(e, &what, Kind::Read))
    };
    deadline(config.connect_timeout, &what, Kind::Read, connecting).await
}

fn tls_options(tls: &crate::config::ZkTls) -> CoordResult<zk::TlsOptions> {
    let read = |path: &std::path::Path, field: &str| {
        std::fs::read_to_string(path).map_err(|e| CoordError::Unavailable {
            message: format!("zookeeper.tls.{field}: {}: {e}", path.display()),
            certainly_aborted: true,
            source: None,
        })
    };
    let bad = |field: &str, path: &std::path::Path, e: zk::Error| CoordError::Unavailable {
        message: format!("zookeeper.tls.{field}: {}: {e}", path.display()),
        certainly_aborted: true,
        source: None,
    };
    let mut options = zk::TlsOptions::new()
        .with_pem_ca(&read(&tls.ca, "ca")?)
        .map_err(|e| bad("ca", &tls.ca, e))?;
    if let Some((cert, key)) = &tls.identity {
        options = options
            .with_pem_identity(&read(cert, "cert")?, &read(key, "key")?)
            .map_err(|e| bad("cert", cert, e))?;
    }
    Ok(options)
}

/// The coordinator's shared connection: connected on first use, replaced after its session ended.
pub(crate) struct Shared {
    config: Arc<ZkConfig>,
    current: Mutex<Option<zk::Client>>,
}

impl Shared {
    pub(crate) fn new(config: Arc<ZkConfig>) -> Self {
        Self {
            config,
            current: Mutex::new(None),
        }
    }

    /// A live client, connecting (and laying out the namespace) if there is none or the last one's session
    /// ended. Concurrent callers share one connection attempt.
    pub(crate) async fn client(&self) -> CoordResult<zk::Client> {
        let mut current = self.current.lock().await;
        if let Some(client) = current.as_ref()
            && !client.state().is_terminated()
        {
            return Ok(client.clone());
        }
        if current.is_some() {
            info!("the shared ZooKeeper session ended; reconnecting");
        }
        *current = None;
        let client = connect(&self.config, SHARED_SESSION_TIMEOUT).await?;
        ensure_layout(&self.config, &client).await?;
        debug!(session = %client.session_id(), "shared ZooKeeper connection open");
        *current = Some(client.clone());
        Ok(client)
    }

    /// Like [`Shared::client`], after a `sync` when the config asks for synced reads.
    pub(crate) async fn reader(&self) -> CoordResult<zk::Client> {
        let client = self.client().await?;
        if self.config.sync_reads {
            let timeout = self.config.request_timeout;
            deadline(timeout, "sync", Kind::Read, async {
                client
                    .sync("/")
                    .await
                    .map_err(|e| from_zk(e, "sync", Kind::Read))
            })
            .await?;
        }
        Ok(client)
    }
}

/// Creates the chroot and the namespace's directories and counters if missing; refuses a namespace written
/// with another layout version.
async fn ensure_layout(config: &ZkConfig, client: &zk::Client) -> CoordResult<()> {
    let timeout = config.request_timeout;
    let read = |e| from_zk(e, "read /meta/format", Kind::Read);
    let format = deadline(timeout, "read /meta/format", Kind::Read, async {
        match client.get_data(paths::FORMAT_NODE).await {
            Ok((data, _)) => Ok(Some(data)),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(read(e)),
        }
    })
    .await?;
    if let Some(data) = format {
        if data != paths::FORMAT.as_bytes() {
            return Err(CoordError::Unavailable {
                message: format!(
                    "namespace {}: layout version {:?}, this build reads version {}",
                    config.chroot,
                    String::from_utf8_lossy(&data),
                    paths::FORMAT
                ),
                certainly_aborted: true,
                source: None,
            });
        }
        return Ok(());
    }
    let acls = acls(config);
    let options = zk::CreateMode::Persistent.with_acls(acls);
    // The chroot and its parents: through a client without chroot.
    let root = connect_root(config, SHARED_SESSION_TIMEOUT).await?;
    deadline(timeout, "create the chroot", Kind::Write, async {
        match root.mkdir(&config.chroot, &options).await {
            Ok(()) | Err(zk::Error::NodeExists) => Ok(()),
            Err(e) => Err(from_zk(
                e,
                &format!("create {}", config.chroot),
                Kind::Write,
            )),
        }
    })
    .await?;
    drop(root);
    let head = crate::jobs::Head::default();
    let head = crate::error::encode("head", &head)?;
    let nodes: Vec<(&str, &[u8])> = paths::DIRECTORIES
        .iter()
        .map(|p| (*p, &b""[..]))
        .chain([
            (paths::HEAD, head.as_slice()),
            (paths::SESSION_SEQ, &b""[..]),
            (paths::ASSIGNMENT, &b"null"[..]),
            // Last: its presence says the layout is complete.
            (paths::FORMAT_NODE, paths::FORMAT.as_bytes()),
        ])
        .collect();
    for (path, data) in nodes {
        deadline(timeout, "lay out the namespace", Kind::Write, async {
            match client.create(path, data, &options).await {
                Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                Err(e) => Err(from_zk(e, &format!("create {path}"), Kind::Write)),
            }
        })
        .await?;
    }
    info!(chroot = %config.chroot, "laid out a new namespace");
    Ok(())
}

/// Follows `path` with a persistent watch of `mode` on the shared connection: `read`s it and `publish`es what it
/// read at the start and after every change, re-reads after reconnects (events during a disconnection are not
/// replayed), moves to a new connection when the shared one's session ends, and backs off after failures
/// (`campanile::coordinator::backoff::RECONNECT`). Runs until its task is aborted.
pub(crate) async fn follow<T, Fut>(
    shared: Arc<Shared>,
    timeout: Duration,
    path: &'static str,
    mode: zk::AddWatchMode,
    mut read: impl FnMut(zk::Client) -> Fut,
    mut publish: impl FnMut(T),
) where
    Fut: std::future::Future<Output = CoordResult<T>>,
{
    let what = format!("watch {path}");
    let mut failures = 0u32;
    loop {
        let result: CoordResult<()> = async {
            let client = shared.client().await?;
            let mut watcher = deadline(timeout, &what, Kind::Read, async {
                client
                    .watch(path, mode)
                    .await
                    .map_err(|e| from_zk(e, &what, Kind::Read))
            })
            .await?;
            loop {
                publish(read(client.clone()).await?);
                failures = 0;
                if !crate::coordinator::next_change(&mut watcher).await {
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(error) = result {
            failures += 1;
            debug!(%error, failures, path, "following failed");
            tokio::time::sleep(campanile::coordinator::backoff::RECONNECT.delay(failures)).await;
        }
    }
}
