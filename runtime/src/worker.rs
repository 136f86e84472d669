//! `campanile worker`: a worker of an executor group. It joins the listed nodes' cluster ports (and, with
//! `--coordinator`, those the nodes publish there), registers in its group, and runs the command and HTTP
//! targets the nodes send it (see `docs/workers.md`), until SIGTERM or SIGINT.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use campanile::Worker;
use campanile::exec::BaseEnv;

use crate::cli::WorkerArgs;
use crate::config::{Config, CoordinatorUrl};

/// The coordinator `--coordinator` names, opened for reading the members (with `--config`'s `[etcd]` or
/// `[zookeeper]` settings).
async fn coordinator(args: &WorkerArgs) -> anyhow::Result<Option<Arc<dyn campanile::Coordinator>>> {
    let Some(url) = &args.coordinator else {
        return Ok(None);
    };
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.coordinator = Some(url.clone());
    match config.coordinator_url()? {
        CoordinatorUrl::Etcd { .. } | CoordinatorUrl::ZooKeeper { .. } => {}
        CoordinatorUrl::Memory | CoordinatorUrl::File(_) => anyhow::bail!(
            "--coordinator: {url:?}: a worker finds nodes in a shared coordinator (etcd:// or zk://); an \
             in-process store belongs to its node's process: give the node's cluster address with --join"
        ),
    }
    let coordinator = crate::server::open_coordinator(&config)
        .await
        .with_context(|| format!("--coordinator: {url}"))?;
    Ok(Some(coordinator))
}

/// Runs a worker until it is told to stop. Fails at once, saying why, on a bad flag, a wrong cookie (no
/// handshake in time) or when no listed node can be reached.
pub async fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    let group = args.group.clone().unwrap_or_default();
    let mut labels = BTreeMap::new();
    for label in args.labels.iter().filter(|l| !l.is_empty()) {
        let Some((key, value)) = label.split_once('=') else {
            anyhow::bail!("--labels: {label:?} is not k=v");
        };
        labels.insert(key.to_owned(), value.to_owned());
    }
    if let Some(name) = args.inherit_env.iter().find(|n| {
        n.is_empty() || n.contains('=') || n.contains('\0') || n.starts_with("CAMPANILE_")
    }) {
        anyhow::bail!(
            "--inherit-env: {name:?} is not a variable a command may inherit (not empty, no '=', not CAMPANILE_*)"
        );
    }
    let cookie = match &args.cluster_cookie_file {
        Some(path) => crate::config::read_cookie(path).context("--cluster-cookie-file")?,
        None => {
            for addr in &args.join {
                let loopback = tokio::net::lookup_host(addr.as_str())
                    .await
                    .with_context(|| format!("--join: cannot resolve {addr:?}"))?
                    .all(|a| a.ip().is_loopback());
                anyhow::ensure!(
                    loopback,
                    "--join: {addr} is not a loopback address, so the node has a cookie of its own: give the \
                     same file with --cluster-cookie-file FILE"
                );
            }
            campanile::cluster::LOOPBACK_COOKIE.to_owned()
        }
    };
    let coordinator = coordinator(args).await?;
    let mut builder = Worker::builder()
        .join(args.join.iter().cloned())
        .group(&group)
        .max_concurrent(args.max_concurrent)
        .cookie(cookie)
        .base_env(BaseEnv::inherit(&args.inherit_env));
    if let Some(id) = &args.node_id {
        builder = builder.id(id);
    }
    if let Some(coordinator) = coordinator {
        builder = builder.coordinator(coordinator);
    }
    if let Some(ca) = &args.cluster_tls_ca {
        builder = builder.tls(crate::config::client_tls(ca)?);
    }
    for (key, value) in labels {
        builder = builder.label(key, value);
    }
    let worker = builder
        .start()
        .await
        .context("the worker could not start")?;
    tracing::info!(worker = worker.id(), %group, "worker running; stop with SIGTERM");
    wait_for_signal().await?;
    tracing::info!(
        running = worker.running(),
        "stopping: running attempts are killed and recorded in doubt by their owners"
    );
    worker.stop().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        biased;
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
