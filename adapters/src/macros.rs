//! The `conformance_suite!` macro: one named `#[tokio::test]` per case of the suite.

/// Expands to one `#[tokio::test]` per case of the [conformance suite](crate::suite), each named after its
/// case and calling it with a factory built from the given expression (evaluated once per test).
///
/// ```text
/// mod memory {
///     campanile_adapters::conformance_suite!(crate::MyFactory::memory(), paused_time);
/// }
/// mod etcd {
///     campanile_adapters::conformance_suite!(crate::EtcdFactory::from_env());
/// }
/// ```
///
/// - Without an option the tests run on a multi-threaded runtime (2 workers) on real time: for backends whose
///   clock is a server's.
/// - With `paused_time` they run on a current-thread runtime with `start_paused = true`: for backends whose
///   expiry is driven by `tokio::time`. The factory's [`BackendProfile::paused_time`](crate::BackendProfile)
///   must agree; every test checks that first.
///
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features (and `test-util` for
/// `paused_time`, which this crate enables). Invoke the macro once per module: the test names are the case
/// names.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr, paused_time $(,)?) => {
        $crate::__conformance_cases! {
            __conformance_test!((flavor = "current_thread", start_paused = true), true, $factory)
        }
    };
    ($factory:expr $(,)?) => {
        $crate::__conformance_cases! {
            __conformance_test!((flavor = "multi_thread", worker_threads = 2), false, $factory)
        }
    };
}

/// The list of cases, handed to a callback macro of this crate: `__conformance_cases!(callback!(args))`
/// expands to `$crate::callback!((args) case, case, ...)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! {
            ($($args)*)
            session_ids_are_never_reused,
            session_ttl_is_at_least_requested,
            duplicate_node_id_conflicts,
            keep_alive_extends_session,
            closed_session_fails_every_call,
            session_expires_without_keep_alive,
            unknown_session_watch_holds_expired,
            session_expiry_follows_tokio_time,
            restart_keeps_ids_epochs_and_revisions_growing,
            members_follow_joins_and_leaves,
            watch_members_sees_expiry,
            drain_marks_the_member_leaving,
            campaign_elects_exactly_one_leader,
            epochs_increase_across_terms,
            leadership_ends_with_session,
            publish_assignment_is_fenced,
            assignment_versions_increase,
            put_job_revisions_increase,
            put_job_preconditions,
            concurrent_writers_one_wins,
            job_fields_round_trip,
            put_jobs_creates_every_job,
            put_jobs_checks_before_writing,
            put_jobs_conflict_leaves_nothing,
            delete_job_preconditions,
            delete_job_removes_claims_and_runs,
            reads_see_acknowledged_writes,
            list_jobs_is_consistent_snapshot,
            watch_jobs_resumes_without_gaps,
            watch_jobs_reports_compaction,
            claims_require_ownership,
            expired_session_is_fenced_from_claims,
            takeover_starts_after_previous,
            claim_extension_is_monotonic,
            release_lets_successor_start_next,
            close_keeps_claims,
            concurrent_claimers_never_overlap,
            record_runs_once_per_fire_id,
            run_history_keeps_newest,
            records_of_missing_job_are_dropped,
            runs_query_filters_newest_first
        }
    };
}

/// One `#[tokio::test]` per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    (($attrs:tt, $paused:expr, $factory:expr) $($case:ident),*) => {
        $(
            #[::tokio::test $attrs]
            async fn $case() {
                let factory = $factory;
                $crate::suite::expect_clock(&factory, $paused);
                $crate::suite::$case(&factory).await;
            }
        )*
    };
}

/// The case names as a `&[&str]`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_names {
    (() $($case:ident),*) => {
        &[$(stringify!($case)),*]
    };
}
