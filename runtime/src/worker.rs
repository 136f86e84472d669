//! `campanile worker`: a worker of an executor group. It joins the listed nodes' cluster ports, registers in
//! its group, and runs the command and HTTP targets the nodes send it (see `docs/workers.md`), until SIGTERM
//! or SIGINT.

use std::collections::BTreeMap;

use anyhow::Context;
use campanile::Worker;
use campanile::exec::BaseEnv;

use crate::cli::WorkerArgs;

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
    let mut builder = Worker::builder()
        .join(args.join.iter().cloned())
        .group(&group)
        .max_concurrent(args.max_concurrent)
        .cookie(cookie)
        .base_env(BaseEnv::inherit(&args.inherit_env));
    if let Some(id) = &args.node_id {
        builder = builder.id(id);
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
