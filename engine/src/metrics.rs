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

/// The counter of written run records with this outcome (registered once by the recorder).
pub(crate) fn runs_counter(outcome: Outcome) -> metrics::Counter {
    metrics::counter!(RUNS, "outcome" => outcome.as_str())
}

/// Counts instants that did not run on time.
pub(crate) fn misfired(reason: &'static str, count: u64) {
    metrics::counter!(MISFIRES, "reason" => reason).increment(count);
}

/// Counts a failed coordinator call.
pub(crate) fn coordinator_error(op: &'static str) {
    metrics::counter!(COORDINATOR_ERRORS, "op" => op).increment(1);
}
