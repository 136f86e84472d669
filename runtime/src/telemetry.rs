//! Logs (`tracing`, text or JSON, to stderr) and metrics (the Prometheus recorder behind `/metrics`).
//!
//! Besides the engine's metrics (`campanile::metrics`), the runtime records:
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `campanile_http_requests_total` | counter | `method`, `route`, `status` | API requests answered |
//! | `campanile_notifications_total` | counter | `webhook`, `result` | webhook deliveries: `sent`, `failed` (after every attempt), `dropped` (queue full) |
//! | `campanile_node_ready` | gauge | | 1 while this node holds a valid session |

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// API requests answered, by `method`, `route` and `status`.
pub const HTTP_REQUESTS: &str = "campanile_http_requests_total";
/// Webhook deliveries, by `webhook` and `result`.
pub const NOTIFICATIONS: &str = "campanile_notifications_total";
/// 1 while this node holds a valid session.
pub const NODE_READY: &str = "campanile_node_ready";

/// Installs the global log subscriber (stderr). Fails if one is installed already.
pub fn init_logs(config: &LogConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.level)
        .with_context(|| format!("invalid log filter {:?}", config.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("failed to install the log subscriber: {e}"))
}

/// Installs the global Prometheus recorder and starts its upkeep task (needs a tokio runtime).
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(campanile::metrics::LATENESS.to_owned()),
            &[
                0.000_1, 0.000_3, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0,
            ],
        )
        .context("failed to configure the metrics recorder")?
        .install_recorder()
        .context("failed to install the metrics recorder")?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    describe();
    Ok(handle)
}

fn describe() {
    use campanile::metrics as m;
    metrics::describe_counter!(
        m::FIRES,
        "instants handed to an executor (scheduled, catch-up, manual)"
    );
    metrics::describe_histogram!(
        m::LATENESS,
        metrics::Unit::Seconds,
        "actual start minus scheduled instant"
    );
    metrics::describe_counter!(m::RUNS, "run records written, by outcome");
    metrics::describe_counter!(m::MISFIRES, "instants not run on time, by reason");
    metrics::describe_gauge!(m::IN_FLIGHT, "runs started and not finished on this node");
    metrics::describe_gauge!(m::JOBS_OWNED, "jobs this node owns");
    metrics::describe_counter!(m::COORDINATOR_ERRORS, "failed coordinator calls, by op");
    metrics::describe_counter!(HTTP_REQUESTS, "API requests answered");
    metrics::describe_counter!(NOTIFICATIONS, "webhook deliveries, by result");
    metrics::describe_gauge!(NODE_READY, "1 while this node holds a valid session");
}
