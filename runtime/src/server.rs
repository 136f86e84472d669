//! `campanile serve`: one node: the coordinator, the engine, the HTTP API, and a graceful exit on
//! SIGTERM/SIGINT.
//!
//! Start-up order: open the coordinator (creating the data directory for the default durable store), bind
//! the listener (so a busy port fails before anything joins the cluster), start the engine, serve. On
//! SIGTERM or SIGINT: `/readyz` turns 503, the engine leaves gracefully (`Scheduler::shutdown`: hands its
//! claims back and waits for running runs up to `shutdown_timeout`), notifications get a few seconds to
//! flush, open HTTP requests get a few seconds to finish, and the process exits 0. A second signal during
//! that exits at once, as a crash would (the cluster recovers the node's jobs after its session TTL).

mod listener;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use campanile::Scheduler;
use campanile::clock::SystemClock;
use campanile::coordinator::Coordinator;
use campanile::exec::BaseEnv;
use campanile::history::{HistoryStore, Retention};
use campanile_inproc::{InprocConfig, InprocCoordinator};
use campanile_zookeeper::{DigestAuth, ZkConfig, ZkCoordinator, ZkTls};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::api::{self, AppState, auth::Tokens};
use crate::config::{Config, CoordinatorUrl, HistoryStoreKind};
use crate::notify::Notifier;

/// Opens the configured coordinator.
pub async fn open_coordinator(config: &Config) -> anyhow::Result<Arc<dyn Coordinator>> {
    Ok(open_backend(config).await?.0)
}

/// Opens the configured coordinator, and hands back the in-process one as such (its history store).
async fn open_backend(
    config: &Config,
) -> anyhow::Result<(Arc<dyn Coordinator>, Option<InprocCoordinator>)> {
    let inproc = InprocConfig {
        history_limit: config.engine.history_limit,
        ..InprocConfig::default()
    };
    let shared = |c: InprocCoordinator| (Arc::new(c.clone()) as Arc<dyn Coordinator>, Some(c));
    match config.coordinator_url()? {
        CoordinatorUrl::Memory => Ok(shared(InprocCoordinator::memory_with(inproc))),
        CoordinatorUrl::File(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("failed to create the data directory {}", dir.display())
                })?;
            }
            let coordinator = InprocCoordinator::open_with(&path, inproc)
                .with_context(|| format!("failed to open the store {}", path.display()))?;
            Ok(shared(coordinator))
        }
        CoordinatorUrl::Etcd { endpoints, prefix } => {
            Ok((Arc::new(open_etcd(config, endpoints, prefix).await?), None))
        }
        CoordinatorUrl::ZooKeeper { servers, chroot } => {
            Ok((Arc::new(open_zookeeper(config, servers, chroot)?), None))
        }
    }
}

/// The node's history store, and whether it holds the whole cluster's history (so the runs API reads it):
/// the in-process backend's (one process is the whole cluster), PostgreSQL (shared by every node), or
/// `local` over the in-process backend. A `local` store under etcd or ZooKeeper holds only this node's
/// records: the API then reads the coordinator, which still holds every record.
async fn open_history(
    config: &Config,
    inproc: Option<&InprocCoordinator>,
) -> anyhow::Result<(Arc<dyn HistoryStore>, bool)> {
    match config.history_store()? {
        HistoryStoreKind::Inproc => {
            let inproc = inproc.context(
                "history.store: the in-process store needs a file:// or memory: coordinator",
            )?;
            Ok((
                inproc
                    .history()
                    .context("failed to open the in-process history store")?,
                true,
            ))
        }
        HistoryStoreKind::Local(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("failed to create the data directory {}", dir.display())
                })?;
            }
            let store = campanile_history::LocalStore::open(&path)
                .with_context(|| format!("history.store: failed to open {}", path.display()))?;
            Ok((Arc::new(store), inproc.is_some()))
        }
        HistoryStoreKind::Postgres(url) => {
            let store =
                campanile_history::PostgresStore::connect(&url, campanile_history::DEFAULT_SCHEMA)
                    .await
                    .context("history.store: failed to open the PostgreSQL history store")?;
            Ok((Arc::new(store), true))
        }
    }
}

/// The `zk://` coordinator: the URL's servers and chroot, with the `[zookeeper]` settings.
fn open_zookeeper(
    config: &Config,
    servers: Vec<String>,
    chroot: String,
) -> anyhow::Result<ZkCoordinator> {
    let settings = &config.zookeeper;
    let mut zk = ZkConfig::new(servers, chroot);
    zk.history_limit = config.engine.history_limit;
    zk.request_timeout = settings.request_timeout;
    if let Some(path) = &settings.auth_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("zookeeper.auth_file: failed to read {}", path.display()))?;
        let auth = DigestAuth::parse(text.trim())
            .with_context(|| format!("zookeeper.auth_file: {}", path.display()))?;
        zk.auth = Some(auth);
    }
    if let Some(ca) = &settings.tls_ca {
        zk.tls = Some(ZkTls {
            ca: ca.clone(),
            identity: settings.tls_cert.clone().zip(settings.tls_key.clone()),
        });
    }
    ZkCoordinator::new(zk).context("invalid zk:// coordinator")
}

/// Connects to etcd: endpoints and prefix from the `etcd://` URL (an empty prefix is `/campanile/`), the
/// rest from `[etcd]`, the user from `CAMPANILE_ETCD_USER` too, the password from `CAMPANILE_ETCD_PASSWORD`
/// or `etcd.password_file`.
async fn open_etcd(
    config: &Config,
    endpoints: Vec<String>,
    prefix: String,
) -> anyhow::Result<campanile_etcd::EtcdCoordinator> {
    let settings = &config.etcd;
    let password = match (&settings.user, std::env::var("CAMPANILE_ETCD_PASSWORD")) {
        (None, _) => None,
        (Some(_), Ok(password)) => Some(password),
        (Some(user), Err(_)) => {
            let Some(file) = &settings.password_file else {
                anyhow::bail!(
                    "etcd.user: {user:?}: needs a password: set CAMPANILE_ETCD_PASSWORD or etcd.password_file"
                );
            };
            let text = std::fs::read_to_string(file).with_context(|| {
                format!("etcd.password_file: failed to read {}", file.display())
            })?;
            Some(text.trim_end_matches(['\r', '\n']).to_owned())
        }
    };
    let tls = (settings.tls_ca.is_some() || settings.tls_cert.is_some()).then(|| {
        campanile_etcd::EtcdTls {
            ca: settings.tls_ca.clone(),
            cert: settings.tls_cert.clone(),
            key: settings.tls_key.clone(),
        }
    });
    let prefix = if prefix.trim_matches('/').is_empty() {
        "/campanile/".to_owned()
    } else {
        prefix
    };
    let etcd = campanile_etcd::EtcdConfig {
        user: settings.user.clone(),
        password,
        tls,
        request_timeout: settings.request_timeout,
        connect_timeout: settings.connect_timeout,
        history_limit: config.engine.history_limit,
        ..campanile_etcd::EtcdConfig::new(endpoints.iter().cloned(), &prefix)
    };
    campanile_etcd::EtcdCoordinator::connect(etcd)
        .await
        .with_context(|| {
            format!(
                "failed to open the coordinator etcd://{}{prefix}",
                endpoints.join(",")
            )
        })
}

/// Runs a node until SIGTERM/SIGINT, then leaves gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let metrics = crate::telemetry::init_metrics()?;
    let tokens = config.token_file.as_deref().map(Tokens::load).transpose()?;
    if tokens.is_none() {
        // `Config::validate` refused this on a non-loopback address unless `insecure_no_auth` says so.
        warn!(listen = %config.listen, "no token file: the API is open to anyone who can reach it");
    }
    let tls = match &config.tls {
        Some(tls) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .with_context(|| {
                    format!(
                        "failed to load TLS certificate {} and key {}",
                        tls.cert.display(),
                        tls.key.display()
                    )
                })?,
        ),
        None => None,
    };
    let (coordinator, inproc) = open_backend(&config).await?;
    let coordinator_url = config.coordinator_url()?;
    let (history, history_complete) = open_history(&config, inproc.as_ref()).await?;
    let _retention = campanile_history::spawn_retention(
        history.clone(),
        Retention {
            limit: config.engine.history_limit,
            max_age: config.history.max_age,
        },
        config.history.prune_interval,
        SystemClock::new().shared(),
    );

    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    listener
        .set_nonblocking(true)
        .context("failed to set up the listener")?;
    let addr: SocketAddr = listener
        .local_addr()
        .context("failed to read the listen address")?;

    let egress = config.egress.policy(Some(addr))?;
    let mut builder = Scheduler::builder()
        .coordinator(coordinator)
        .node_id(&config.node_id)
        .labels(config.labels.iter().cloned())
        .address(config.advertise.clone().unwrap_or_else(|| addr.to_string()))
        .session_ttl(config.engine.session_ttl)
        .claim_lookahead(config.engine.claim_lookahead)
        .misfire_threshold(config.engine.misfire_threshold)
        .max_concurrent_runs(config.engine.max_concurrent_runs)
        .rebalance_delay(config.engine.rebalance_delay)
        .command_env(BaseEnv::inherit(&config.inherit_env).allow_run_as(&config.allow_run_as))
        .egress(egress.clone())
        .history(history.clone());
    if let Some(capacity) = config.capacity {
        builder = builder.capacity(capacity);
    }
    if let Some(cluster) = config.cluster.engine()? {
        tracing::info!(listen = %cluster.listen, "cluster port open for workers");
        builder = builder.cluster(cluster);
    }
    let scheduler = builder.start().await.context("failed to start the node")?;
    let notifier = Notifier::start(&config.notify, &egress, scheduler.clone());

    let state = AppState {
        scheduler: scheduler.clone(),
        clock: SystemClock::new().shared(),
        shutting_down: Arc::new(AtomicBool::new(false)),
        metrics: Some(metrics),
        notifier: notifier.clone(),
        openapi: Arc::new(OnceLock::new()),
        live: api::live::Live::start(&scheduler, SystemClock::new().shared())
            .with_tls(config.tls.is_some()),
        history: history_complete.then(|| history.clone()),
    };
    let app = api::router(state.clone(), tokens, &api::Limits::from_config(&config));
    let handle = axum_server::Handle::new();
    let service = app.into_make_service();
    let max_connections = config.http.max_connections;
    let header_read_timeout = config.http.header_read_timeout;
    let mut server = match tls {
        Some(tls) => {
            let mut server = axum_server::from_tcp_rustls(listener, tls)
                .context("failed to set up the TLS listener")?
                .map(|tls| listener::Limited::new(tls, max_connections, header_read_timeout));
            listener::configure(&mut server, &config.http);
            tokio::spawn(server.handle(handle.clone()).serve(service))
        }
        None => {
            let mut server = axum_server::from_tcp(listener)
                .context("failed to set up the listener")?
                .map(|plain| listener::Limited::new(plain, max_connections, header_read_timeout));
            listener::configure(&mut server, &config.http);
            tokio::spawn(server.handle(handle.clone()).serve(service))
        }
    };
    info!(
        addr = %addr,
        node = %config.node_id,
        coordinator = %coordinator_url,
        tls = config.tls.is_some(),
        "listening"
    );

    let mut term = signal(SignalKind::terminate()).context("failed to watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("failed to watch SIGINT")?;
    let server_failed = tokio::select! {
        biased;
        _ = term.recv() => { info!(signal = "SIGTERM", "shutting down"); None }
        _ = int.recv() => { info!(signal = "SIGINT", "shutting down"); None }
        result = &mut server => Some(result),
    };

    state.shutting_down.store(true, Ordering::SeqCst);
    let leave = async {
        match scheduler.shutdown(config.shutdown_timeout).await {
            Ok(report) => info!(
                killed = report.killed,
                records_stored = report.records_stored,
                "left the cluster"
            ),
            Err(e) => error!(error = %e, "graceful leave failed"),
        }
        if let Some(notifier) = &notifier {
            notifier.stop(Duration::from_secs(5)).await;
        }
    };
    tokio::select! {
        biased;
        _ = term.recv() => { warn!("second signal: exiting without finishing the handover"); std::process::exit(1) }
        _ = int.recv() => { warn!("second signal: exiting without finishing the handover"); std::process::exit(1) }
        () = leave => {}
    }

    handle.graceful_shutdown(Some(Duration::from_secs(5)));
    match server_failed {
        Some(result) => {
            result
                .context("the HTTP server task failed")?
                .context("the HTTP server failed")?;
            anyhow::bail!("the HTTP server stopped unexpectedly")
        }
        None => {
            if let Ok(Err(e)) = server.await {
                warn!(error = %e, "the HTTP server ended with an error");
            }
            info!("stopped");
            Ok(())
        }
    }
}
