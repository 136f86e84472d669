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
/// A case that cannot check anything in a mode is never reported as passed:
/// - known when the macro expands (`session_expiry_follows_tokio_time` without `paused_time`): no test is
///   generated for it, so `cargo test` lists nothing under its name (real-time backends show session expiry
///   through `session_expires_without_keep_alive` and `watch_members_sees_expiry` instead);
/// - known only at run time (no [`Namespace::with_restart`](crate::Namespace::with_restart), no
///   configurable watch retention, [`SetupError::Skip`](crate::SetupError::Skip)): the case writes
///   `campanile-adapters: NOT RUN <case>: <reason>` straight to the process's stderr, which the test harness
///   does not capture, so the line shows in a plain `cargo test` run.
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
/// expands to `$crate::callback!((args) [paused-time-only case, ...] case, case, ...)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! {
            ($($args)*)
            [session_expiry_follows_tokio_time]
            session_ids_are_never_reused,
            session_ttl_is_at_least_requested,
            duplicate_node_id_conflicts,
            keep_alive_extends_session,
            closed_session_fails_every_call,
            session_expires_without_keep_alive,
            unknown_session_watch_holds_expired,
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
    (($attrs:tt, $paused:tt, $factory:expr) [] $($case:ident),*) => {
        $(
            #[::tokio::test $attrs]
            async fn $case() {
                let factory = $factory;
                $crate::suite::expect_clock(&factory, $paused);
                $crate::suite::$case(&factory).await;
            }
        )*
    };
    (($attrs:tt, true, $factory:expr) [$($paused_only:ident),*] $($case:ident),*) => {
        $(
            #[::tokio::test $attrs]
            async fn $paused_only() {
                let factory = $factory;
                $crate::suite::expect_clock(&factory, true);
                $crate::suite::$paused_only(&factory).await;
            }
        )*
        $crate::__conformance_test! { ($attrs, true, $factory) [] $($case),* }
    };
    // On real time the cases that only paused tokio time can show are not generated at all: a test that
    // checks nothing is neither listed as passed nor left behind as an ignored one.
    (($attrs:tt, false, $factory:expr) [$($paused_only:ident),*] $($case:ident),*) => {
        $crate::__conformance_test! { ($attrs, false, $factory) [] $($case),* }
    };
}

/// The case names as a `&[&str]`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_names {
    (() [$($paused_only:ident),*] $($case:ident),*) => {
        &[$(stringify!($paused_only),)* $(stringify!($case)),*]
    };
}

/// A `match` on a case name that runs the case: see [`suite::run_case`](crate::suite::run_case).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_dispatch {
    (($name:expr, $factory:expr) [$($paused_only:ident),*] $($case:ident),*) => {
        match $name {
            $(stringify!($paused_only) => {
                $crate::suite::$paused_only($factory).await;
                true
            })*
            $(stringify!($case) => {
                $crate::suite::$case($factory).await;
                true
            })*
            _ => false,
        }
    };
}

/// Expands to one `#[tokio::test]` per case of the [history store suite](mod@crate::history_suite), each named
/// after its case and calling it with a [`HistoryFactory`](crate::HistoryFactory) built from the given
/// expression (evaluated once per test). The tests run on a multi-threaded runtime (2 workers), real time.
///
/// ```text
/// mod local {
///     campanile_adapters::history_suite!(crate::LocalFactory);
/// }
/// ```
#[macro_export]
macro_rules! history_suite {
    ($factory:expr $(,)?) => {
        $crate::__history_tests! {
            ($factory)
            append_then_read_back,
            append_is_idempotent_on_fire_id,
            job_runs_honours_query,
            runs_pages_across_jobs,
            prune_keeps_newest_per_job,
            prune_drops_older_than_max_age,
            forget_job_drops_only_that_job
        }
    };
}

/// One `#[tokio::test]` per history case.
#[doc(hidden)]
#[macro_export]
macro_rules! __history_tests {
    (($factory:expr) $($case:ident),*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = $factory;
                $crate::history_suite::$case(&factory).await;
            }
        )*
    };
}
