//! The conformance suite: generic `pub async fn` cases that check a [`Coordinator`](campanile::Coordinator)
//! backend against every line of the trait's `### To ensure correctness:` lists.
//!
//! Run it with [`conformance_suite!`](crate::conformance_suite), which expands to one `#[tokio::test]` per
//! case; or call a case yourself with a [`CoordinatorFactory`]. Each case builds its own fresh namespace, so
//! cases run in parallel and in any order. A failed check panics with the contract line it checks (see
//! [`lines`]) and what it saw, e.g.
//!
//! ```text
//! claim_fires: no instant is ever granted to two sessions: a takeover starts at max(from_ms, previous.through_ms + 1) and returns the previous claim
//!     job contended-1: SessionId(3) was granted [1000, 1400] and SessionId(5) [1300, 2100]
//! ```
//!
//! # Written for real servers too
//!
//! No case depends on paused time unless the factory's profile says the backend runs on it. A case waits
//! for an expiry by awaiting the `watch_session` (or `watch_members`) receiver, bounded by the granted TTL
//! plus the profile's `expiry_slack`, never by sleeping; the only sleeps are in `keep_alive_extends_session`,
//! where the passing of time is what is under test, and its checks count only when made on time. Sessions that
//! must not expire use the profile's `long_ttl` and are never kept alive.
//!
//! # What it cannot check
//!
//! - **Linearizability in general.** The cases check what a black box can: a write acknowledged on one client
//!   is seen by the next read on any client, concurrent conditional writes have one winner, a sequential
//!   observer never sees epochs go back, snapshots equal the replay of the change log. They do not run a
//!   linearizability checker over arbitrary histories, and cannot produce real network partitions, leader
//!   failovers of an etcd or ZooKeeper cluster, or clock jumps on the server: those belong to the chaos test.
//! - **"At most one leader at any time" between observations.** Leadership is sampled by `campaign` and
//!   `leader` calls; two leaders that overlap between samples go unseen.
//! - **Which clock drives expiry** on a real-time backend: `session_expiry_follows_tokio_time` checks it only
//!   when the profile runs on paused time.
//! - **Restarts** (session ids never reused, epochs and revisions growing across restarts) only when the
//!   factory declares a restart ([`Namespace::with_restart`](crate::Namespace::with_restart)); a memory
//!   backend's namespace does not outlive its process.
//! - **Compaction** (`Compacted`) only when the factory can configure the watch retention
//!   ([`BackendProfile::configurable_watch_retention`](crate::BackendProfile::configurable_watch_retention)).
//! - **A watch that the backend drops** (`JobWatch` ending with `None`): the suite cannot make a backend drop
//!   a watch; it checks that resuming from the last seen revision after the caller drops it misses nothing.
//! - **"Expired is final" between observations**: a `watch` receiver keeps only the latest value, so a
//!   state that flipped and flipped back between two looks is invisible.
//! - **Keep-alive timing on an overloaded machine**: checks made after the TTL since the last keep-alive are
//!   inconclusive and the case starts over (at most three times).
//! - **`Suspended`**: a backend reports it when it loses its server; the suite cannot cut that connection.
//!   The fault-injecting wrapper ([`FaultyCoordinator`](crate::FaultyCoordinator)) lets the engine's simulation
//!   exercise it.
//! - **Run history beyond the bound**: "older ones may be dropped" promises nothing to check; the suite checks
//!   that the newest `history_limit` records are kept.
//!
//! # Checked against a broken backend
//!
//! For every line there is a [`ContractBreak`](crate::ContractBreak) that makes
//! [`FaultyCoordinator`](crate::FaultyCoordinator) break exactly that rule, and the case
//! ([`ContractBreak::case`](crate::ContractBreak::case)) that must then fail on that line; [`run_case`] runs a
//! case by name. `campanile-inproc`'s tests run every break and fail on a break the suite misses.

/// Fails the running case unless `cond` holds, naming the contract line and what was seen.
macro_rules! check {
    ($cond:expr, $line:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::suite::support::fail($line, format_args!($($arg)+))
        }
    };
}

/// Fails the running case, naming the contract line and what was seen.
macro_rules! fail {
    ($line:expr, $($arg:tt)+) => {
        $crate::suite::support::fail($line, format_args!($($arg)+))
    };
}

mod assignment;
mod batch;
mod claims;
mod deletes;
mod jobs;
mod leadership;
pub mod lines;
mod members;
mod release;
mod runs;
mod sessions;
pub(crate) mod support;
mod watch;

#[cfg(test)]
mod tests;

pub use assignment::{assignment_versions_increase, publish_assignment_is_fenced};
pub use batch::{
    put_jobs_checks_before_writing, put_jobs_conflict_leaves_nothing, put_jobs_creates_every_job,
};
pub use claims::{
    claim_extension_is_monotonic, claims_require_ownership, concurrent_claimers_never_overlap,
    expired_session_is_fenced_from_claims, takeover_starts_after_previous,
};
pub use deletes::{delete_job_preconditions, delete_job_removes_claims_and_runs};
pub use jobs::{
    concurrent_writers_one_wins, job_fields_round_trip, list_jobs_is_consistent_snapshot,
    put_job_preconditions, put_job_revisions_increase, reads_see_acknowledged_writes,
};
pub use leadership::{
    campaign_elects_exactly_one_leader, epochs_increase_across_terms, leadership_ends_with_session,
};
pub use members::{
    drain_marks_the_member_leaving, members_follow_joins_and_leaves, watch_members_sees_expiry,
};
pub use release::{close_keeps_claims, release_lets_successor_start_next};
pub use runs::{
    record_runs_once_per_fire_id, records_of_missing_job_are_dropped, run_history_keeps_newest,
    runs_query_filters_newest_first,
};
pub use sessions::{
    closed_session_fails_every_call, duplicate_node_id_conflicts, keep_alive_extends_session,
    restart_keeps_ids_epochs_and_revisions_growing, session_expires_without_keep_alive,
    session_expiry_follows_tokio_time, session_ids_are_never_reused,
    session_ttl_is_at_least_requested, unknown_session_watch_holds_expired,
};
pub use watch::{watch_jobs_reports_compaction, watch_jobs_resumes_without_gaps};

use crate::factory::CoordinatorFactory;

/// The name of every case, in the order the macro expands them.
pub const CASES: &[&str] = crate::__conformance_cases! { __conformance_names!() };

/// Runs the case named `case` (one of [`CASES`]) against `factory`, panicking as the case does when a check
/// fails; returns false when no case has that name. The suite's own tests use it to run the case that
/// each [`ContractBreak`](crate::ContractBreak) must fail.
pub async fn run_case<F: CoordinatorFactory + ?Sized>(case: &str, factory: &F) -> bool {
    crate::__conformance_cases! { __conformance_dispatch!(case, factory) }
}

/// Checks that the macro's clock option agrees with the factory's profile; the macro calls it first in
/// every test.
#[doc(hidden)]
pub fn expect_clock<F: CoordinatorFactory + ?Sized>(factory: &F, paused_time: bool) {
    let profile = factory.profile();
    assert!(
        profile.paused_time == paused_time,
        "the factory's profile says paused_time: {}, but the suite was invoked {}",
        profile.paused_time,
        if paused_time {
            "with `paused_time`"
        } else {
            "without `paused_time`"
        }
    );
}
