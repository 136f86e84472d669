//! Metric names and the few helpers that record them, through the `metrics` facade (the runtime installs a
//! Prometheus exporter; an embedding application installs whatever recorder it likes, or none). Install the
//! recorder before starting a node: the per-fire metrics are registered once, when the node's executor
//! starts, not looked up on every fire.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `campanile_fires_total` | counter | | instants handed to an executor (scheduled, catch-up, manual) |
//! | `campanile_fire_lateness_seconds` | histogram | | actual start − scheduled instant (jitter excluded) |
//! | `campanile_runs_total` | counter | `outcome` | run records written, by outcome |
//! | `campanile_misfires_total` | counter | `reason` | instants not run on time: `owner_gap`, `late`, `in_doubt`, `shutdown` |
//! | `campanile_runs_in_flight` | gauge | | runs started and not finished on this node |
//! | `campanile_jobs_owned` | gauge | | jobs this node owns |
//! | `campanile_coordinator_errors_total` | counter | `op` | failed coordinator calls |
//! | `campanile_history_dropped_total` | counter | | accepted run records not copied to the history store: its queue was full |
//! | `campanile_workers` | gauge | `group` | workers connected to this node, by executor group |
//! | `campanile_remote_dispatch_seconds` | histogram | | a fire's send to a worker → the worker's acknowledgement of its start |
//! | `campanile_remote_dispatch_failures_total` | counter | `reason` | sends to workers that did not run: `no_worker`, `not_acknowledged`, `refused`, `worker_lost` |

use crate::run::Outcome;

/// Instants handed to an executor.
pub const FIRES: &str = "campanile_fires_total";
/// Actual start − scheduled instant, seconds.
pub const LATENESS: &str = "campanile_fire_lateness_seconds";
/// Run records written, by `outcome`.
pub const RUNS: &str = "campanile_runs_total";
/// Instants not run on time, by `reason`.
pub const MISFIRES: &str = "campanile_misfires_total";
/// Runs in flight on this node.
pub const IN_FLIGHT: &str = "campanile_runs_in_flight";
/// Jobs owned by this node.
pub const JOBS_OWNED: &str = "campanile_jobs_owned";
/// Failed coordinator calls, by `op`.
pub const COORDINATOR_ERRORS: &str = "campanile_coordinator_errors_total";
/// Accepted run records not copied to the history store (its queue was full).
pub const HISTORY_DROPPED: &str = "campanile_history_dropped_total";

/// Workers connected to this node, by `group`.
pub const WORKERS: &str = "campanile_workers";
/// A fire's send to a worker → the worker's acknowledgement that it started, seconds.
pub const REMOTE_DISPATCH: &str = "campanile_remote_dispatch_seconds";
/// Sends to workers that did not run, by `reason`.
pub const REMOTE_DISPATCH_FAILURES: &str = "campanile_remote_dispatch_failures_total";

/// The counter of written run records with this outcome (registered once by the recorder).
pub(crate) fn runs_counter(outcome: Outcome) -> metrics::Counter {
    metrics::counter!(RUNS, "outcome" => outcome.as_str())
}

/// Counts instants that did not run on time.
pub(crate) fn misfired(reason: &'static str, count: u64) {
    metrics::counter!(MISFIRES, "reason" => reason).increment(count);
}

/// Counts a failed coordinator call.
pub(crate) fn history_dropped(count: u64) {
    metrics::counter!(HISTORY_DROPPED).increment(count);
}

pub(crate) fn coordinator_error(op: &'static str) {
    metrics::counter!(COORDINATOR_ERRORS, "op" => op).increment(1);
}

/// Counts a send to a worker that did not run (`reason` from a fixed set).
pub(crate) fn remote_dispatch_failed(reason: &'static str) {
    metrics::counter!(REMOTE_DISPATCH_FAILURES, "reason" => reason).increment(1);
}
