//! Shared helpers of the cases: the per-case context, fixtures, and waits with failure bounds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::{
    Assignment, ClaimResult, CoordResult, FireClaim, JobClaim, JobEvent, JobWatch, Leader, Members,
    NodeId, NodeInfo, Precondition, Session, SessionId, SessionState,
};
use campanile::job::{
    Backoff, CommandTarget, Delivery, DstPolicy, DstRepeat, HandlerTarget, HttpTarget,
    MisfirePolicy, Overlap, PastSchedule, RetryPolicy, SecretValue,
};
use campanile::{Coordinator, Job, JobId, JobSpec, Outcome, RunRecord, Schedule, Target};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::factory::{BackendProfile, CoordinatorFactory, Namespace, NamespaceOptions, SetupError};

/// Panics with the contract line that a check found broken, and what was seen.
#[track_caller]
pub(crate) fn fail(line: &str, detail: fmt::Arguments<'_>) -> ! {
    panic!("{line}\n    {detail}")
}

/// Reports a case that checks nothing in this mode (a restart case without a restart, compaction without a
/// configurable retention, a backend skipped by its factory). Written to the process's stderr directly, not
/// through `eprintln!`, which the test harness captures and shows only for failing tests: the line appears in
/// a plain `cargo test` run, so a case that checked nothing is never mistaken for a pass.
pub(crate) fn not_run(case: &str, reason: fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "campanile-adapters: NOT RUN {case}: {reason}"
    );
}

/// Unwraps a call that the contract says succeeds here; an error names the line being checked.
#[track_caller]
pub(crate) fn ok<T>(result: CoordResult<T>, line: &str, call: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => fail(line, format_args!("{call} failed unexpectedly: {error:?}")),
    }
}

/// One case's namespace, clients and backend profile.
pub(crate) struct Ctx {
    ns: Namespace,
    pub(crate) profile: BackendProfile,
}

impl Ctx {
    /// A fresh namespace with `clients` clients, or `None` when the factory skips the backend.
    pub(crate) async fn new<F: CoordinatorFactory + ?Sized>(
        factory: &F,
        case: &str,
        options: NamespaceOptions,
    ) -> Option<Self> {
        let profile = factory.profile();
        assert!(
            profile.history_limit >= 100,
            "{}\n    the factory's profile says history_limit {}",
            super::lines::RECORD_HISTORY,
            profile.history_limit
        );
        match factory.namespace(options).await {
            Ok(ns) => Some(Self { ns, profile }),
            Err(SetupError::Skip(reason)) => {
                not_run(
                    case,
                    format_args!("the factory skipped the backend: {reason}"),
                );
                None
            }
            Err(error) => panic!("{case}: {error}"),
        }
    }

    /// Client `i` (wrapping around the clients the factory handed out).
    pub(crate) fn c(&self, i: usize) -> Arc<dyn Coordinator> {
        Arc::clone(self.ns.client(i))
    }

    /// How many distinct clients there are.
    pub(crate) fn clients(&self) -> usize {
        self.ns.clients().len()
    }

    /// The namespace, for restarts.
    pub(crate) fn namespace_mut(&mut self) -> &mut Namespace {
        &mut self.ns
    }

    /// Ends a passing case.
    pub(crate) async fn finish(self) {
        self.ns.cleanup().await;
    }

    /// Opens a session for `node` on client `client` with the long TTL (it outlives the case).
    pub(crate) async fn open(&self, client: usize, node: &str) -> Session {
        ok(
            self.c(client)
                .open_session(node_info(node), self.profile.long_ttl)
                .await,
            super::lines::OPEN_MEMBER,
            &format!("open_session({node})"),
        )
    }

    /// Opens a session for `node` with the smallest TTL; returns it with the instant the call was sent.
    pub(crate) async fn open_short(&self, client: usize, node: &str) -> (Session, Instant) {
        let sent = Instant::now();
        let session = ok(
            self.c(client)
                .open_session(node_info(node), self.profile.min_ttl)
                .await,
            super::lines::OPEN_MEMBER,
            &format!("open_session({node}, min_ttl)"),
        );
        (session, sent)
    }

    /// The bound after which a session of `ttl`, last renewed at `since`, must have been reported expired.
    pub(crate) fn expiry_deadline(&self, since: Instant, ttl: Duration) -> Instant {
        since + ttl + self.profile.expiry_slack
    }

    /// Waits, through the receiver only, until it reports `Expired`; fails with `line` after `deadline`.
    /// Returns the instant the expiry was observed.
    pub(crate) async fn await_expired(
        &self,
        rx: &mut watch::Receiver<SessionState>,
        deadline: Instant,
        line: &str,
    ) -> Instant {
        let outcome =
            tokio::time::timeout_at(deadline, rx.wait_for(|s| *s == SessionState::Expired))
                .await
                .map(|r| r.is_ok());
        match outcome {
            Ok(true) => Instant::now(),
            Ok(false) => fail(
                line,
                format_args!("the watch_session sender was dropped before it reported Expired"),
            ),
            Err(_) => fail(
                line,
                format_args!(
                    "not reported Expired within TTL + expiry_slack ({:?}); last state {:?}",
                    self.profile.expiry_slack,
                    *rx.borrow()
                ),
            ),
        }
    }

    /// Waits until the membership receiver satisfies `pred`; fails with `line` at `deadline`.
    pub(crate) async fn await_members(
        &self,
        rx: &mut watch::Receiver<Members>,
        deadline: Instant,
        line: &str,
        what: &str,
        pred: impl FnMut(&Members) -> bool,
    ) -> Members {
        let outcome = tokio::time::timeout_at(deadline, rx.wait_for(pred))
            .await
            .map(|r| r.map(|m| m.clone()));
        match outcome {
            Ok(Ok(m)) => m,
            Ok(Err(_)) => fail(
                line,
                format_args!("the watch_members sender was dropped while waiting for {what}"),
            ),
            Err(_) => fail(
                line,
                format_args!(
                    "watch_members did not show {what} in time; it holds {:?}",
                    names(&rx.borrow())
                ),
            ),
        }
    }

    /// A generous bound for a notification that needs no expiry (a watch catching up with a write).
    pub(crate) fn notify_bound(&self) -> Duration {
        self.profile.expiry_slack + Duration::from_secs(10)
    }

    /// [`Ctx::notify_bound`] from now.
    pub(crate) fn notify_deadline(&self) -> Instant {
        Instant::now() + self.notify_bound()
    }

    /// Writes `job` unconditionally and returns the new revision.
    pub(crate) async fn put(&self, client: usize, job: &Job) -> u64 {
        ok(
            self.c(client).put_job(job.clone(), Precondition::Any).await,
            super::lines::PUT_REVISION,
            &format!("put_job({})", job.id),
        )
    }

    /// Makes `session` leader; the case expects it to win.
    pub(crate) async fn lead(&self, client: usize, session: SessionId, line: &str) -> Leader {
        match ok(self.c(client).campaign(session).await, line, "campaign") {
            Some(leader) => {
                check!(
                    leader.session == session,
                    line,
                    "campaign of {session:?} returned the leadership of {:?}",
                    leader.session
                );
                leader
            }
            None => fail(
                line,
                format_args!(
                    "campaign of {session:?} lost although no other session holds the leadership"
                ),
            ),
        }
    }

    /// Publishes `owners` as `leader`; returns the version.
    pub(crate) async fn publish(
        &self,
        client: usize,
        leader: &Leader,
        owners: &[(&JobId, &str)],
    ) -> u64 {
        ok(
            self.c(client)
                .publish_assignment(leader.session, leader.epoch, owners_map(owners))
                .await,
            super::lines::PUBLISH_FENCED,
            "publish_assignment by the current leader",
        )
    }

    /// Claims one job and expects a grant.
    pub(crate) async fn grant(
        &self,
        client: usize,
        session: SessionId,
        claim: FireClaim,
        line: &str,
    ) -> (JobClaim, Option<JobClaim>) {
        let job = claim.job.clone();
        let results = ok(
            self.c(client).claim_fires(session, &[claim]).await,
            line,
            "claim_fires",
        );
        check!(
            results.len() == 1,
            line,
            "claim_fires returned {} results for 1 claim",
            results.len()
        );
        match results.into_iter().next() {
            Some(ClaimResult::Granted { claim, previous }) => (claim, previous),
            other => fail(
                line,
                format_args!(
                    "claim of {job} by {session:?} was expected to be granted, got {other:?}"
                ),
            ),
        }
    }
}

/// A node without labels.
pub(crate) fn node_id(name: &str) -> NodeId {
    NodeId::new(name).expect("suite node ids are valid")
}

/// What a node says about itself, with a label and an address so that they round-trip visibly.
pub(crate) fn node_info(name: &str) -> NodeInfo {
    NodeInfo {
        id: node_id(name),
        labels: BTreeSet::from([format!("name={name}"), "zone=a".to_owned()]),
        capacity: Some(1000),
        address: Some(format!("{name}.invalid:7070")),
        cluster_address: Some(format!("{name}.invalid:7946")),
    }
}

/// A job id.
pub(crate) fn job_id(name: &str) -> JobId {
    JobId::new(name).expect("suite job ids are valid")
}

/// The smallest job: fires every minute, runs a handler.
pub(crate) fn simple_job(name: &str) -> Job {
    let spec = JobSpec::new(
        name,
        Schedule::parse("@every 1m").expect("valid schedule"),
        Target::Handler(HandlerTarget::new("noop")),
    );
    Job::new(job_id(name), spec, 1_700_000_000_000)
}

/// A job whose every field differs from its default; `variant` picks the target kind (command, HTTP, handler).
pub(crate) fn full_job(name: &str, variant: usize) -> Job {
    let target = match variant % 3 {
        0 => Target::Command(CommandTarget {
            argv: vec!["/bin/sh".into(), "-c".into(), "echo 'héllo' \"$X\"".into()],
            env: BTreeMap::from([
                ("X".into(), "1 2".into()),
                ("EMPTY".into(), "".into()),
                ("TOKEN".into(), SecretValue::FromEnv("APP_TOKEN".into())),
            ]),
            cwd: Some("/tmp/campanile suite".into()),
            timeout: Some(Duration::from_millis(2500)),
            run_as: Some(campanile::job::RunAs {
                user: "nobody".into(),
                group: None,
            }),
        }),
        1 => Target::Http(HttpTarget {
            url: "https://example.invalid/hook?a=1&b=%20".into(),
            method: "PUT".into(),
            headers: BTreeMap::from([
                ("X-Token".into(), "t0ken".into()),
                (
                    "Authorization".into(),
                    SecretValue::FromFile("/etc/campanile/hook-auth".into()),
                ),
            ]),
            body: Some("{\"k\": [1, 2]}\n".into()),
            expected_status: vec![200, 204],
            timeout: Duration::from_secs(7),
            follow_redirects: true,
        }),
        _ => Target::Handler(HandlerTarget {
            name: "report.daily".into(),
            timeout: Some(Duration::from_secs(90)),
        }),
    };
    let spec = JobSpec {
        name: format!("{name}: every field ✓"),
        namespace: "payments".into(),
        labels: BTreeMap::from([
            ("team".into(), "billing".into()),
            ("tier".into(), "1".into()),
        ]),
        schedule: Schedule::parse("0 30 2 * * MON-FRI").expect("valid schedule"),
        timezone: "Europe/Berlin".into(),
        dst: DstPolicy::SkipGap,
        dst_repeat: DstRepeat::Both,
        target,
        misfire: MisfirePolicy::CatchUp {
            max_count: 3,
            window: Duration::from_secs(90),
        },
        overlap: Overlap::BufferOne,
        retry: RetryPolicy {
            max_retries: 4,
            backoff: Backoff {
                initial: Duration::from_millis(1500),
                factor: 1.5,
                max: Duration::from_secs(120),
            },
        },
        delivery: Delivery::AtLeastOnce,
        jitter: Some(Duration::from_millis(2750)),
        start_at: "2023-11-14T22:13:20.123Z".parse().ok(),
        end_at: "2030-03-17T17:46:40.456+02:00".parse().ok(),
        paused: true,
        weight: 7,
        node_labels: BTreeSet::from(["region=eu".into(), "ssd".into()]),
        executor: Some(campanile::job::ExecutorGroup {
            group: "billing".into(),
        }),
    };
    Job {
        id: job_id(name),
        revision: 0,
        created_ms: 1_700_000_000_001,
        updated_ms: 1_700_000_100_002,
        past_schedules: vec![PastSchedule {
            schedule: Schedule::parse("*/5 * * * *").expect("a valid schedule"),
            timezone: "America/New_York".into(),
            dst: spec.dst,
            dst_repeat: spec.dst_repeat,
            start_at: None,
            end_at: spec.end_at,
            until_ms: 1_700_000_100_002,
        }],
        requests: vec![
            campanile::job::RunRequest::new(1_700_000_200_003, false),
            campanile::job::RunRequest {
                ms: 1_700_000_000_004,
                backfill: true,
                taken: Some(campanile::coordinator::SessionId(5)),
            },
        ],
        last_trigger_ms: 1_700_000_200_003,
        spec: std::sync::Arc::new(spec),
    }
}

/// A run record of `job` at `scheduled_ms`, with every field set so that it round-trips visibly.
pub(crate) fn record(job: &JobId, scheduled_ms: i64, node: &str, outcome: Outcome) -> RunRecord {
    RunRecord {
        job: job.clone(),
        scheduled_ms,
        count: 1,
        last_scheduled_ms: None,
        node: campanile::coordinator::NodeId::new(node).expect("the suite's node ids are valid"),
        attempt: 2,
        started_ms: Some(scheduled_ms + 3),
        ended_ms: Some(scheduled_ms + 40),
        outcome,
        code: Some(3),
        reason: Some(format!("written by {node}")),
        output: format!("out {scheduled_ms}\n"),
        manual: scheduled_ms % 2 == 0,
    }
}

/// A claim request.
pub(crate) fn fire_claim(job: &JobId, from_ms: i64, through_ms: i64, settled_ms: i64) -> FireClaim {
    FireClaim {
        job: job.clone(),
        from_ms,
        through_ms,
        settled_ms,
    }
}

/// An assignment map from pairs.
pub(crate) fn owners_map(owners: &[(&JobId, &str)]) -> BTreeMap<JobId, NodeId> {
    owners
        .iter()
        .map(|(job, node)| ((*job).clone(), node_id(node)))
        .collect()
}

/// The node names of a membership, in its order.
pub(crate) fn names(m: &Members) -> Vec<String> {
    m.members.iter().map(|m| m.node.id.to_string()).collect()
}

/// Checks that a membership is exactly `expected` (sessions and node infos), sorted by node id.
#[track_caller]
pub(crate) fn check_members(m: &Members, expected: &[(&str, SessionId)], line: &str, when: &str) {
    let mut want: Vec<(&str, SessionId)> = expected.to_vec();
    want.sort();
    let got: Vec<(String, SessionId)> = m
        .members
        .iter()
        .map(|m| (m.node.id.to_string(), m.session))
        .collect();
    let want_owned: Vec<(String, SessionId)> =
        want.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect();
    check!(
        got == want_owned,
        line,
        "{when}: members are {got:?}, expected exactly {want_owned:?} (sorted by node id)"
    );
    for member in &m.members {
        check!(
            member.node == node_info(member.node.id.as_str()),
            line,
            "{when}: member {} does not carry the NodeInfo it joined with: {:?}",
            member.node.id,
            member.node
        );
    }
}

/// Whether `assignment` holds exactly `owners`.
pub(crate) fn assignment_is(a: &Option<Arc<Assignment>>, owners: &[(&JobId, &str)]) -> bool {
    a.as_ref().is_some_and(|a| a.owners == owners_map(owners))
}

/// The next event of a job watch; fails with `line` when the watch ends, yields an error, or is silent
/// until `deadline`.
pub(crate) async fn next_event(watch: &mut JobWatch, deadline: Instant, line: &str) -> JobEvent {
    match tokio::time::timeout_at(deadline, watch.recv()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(error))) => fail(line, format_args!("the watch yielded an error: {error:?}")),
        Ok(None) => fail(line, format_args!("the watch ended while an event was due")),
        Err(_) => fail(
            line,
            format_args!("no event arrived in time while one was due"),
        ),
    }
}
