//! Integration tests of `campanile-inproc` through its public API: what the conformance suite cannot see
//! (durable restarts, timer-driven expiry on paused time, watch back-pressure, history limits, bad input).

mod conformance;
mod history_store;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use campanile::coordinator::{
    ClaimResult, CoordError, Coordinator, FireClaim, JobClaim, JobEvent, NodeId, NodeInfo,
    Precondition, RecordResult, RunQuery, SessionId, SessionState,
};
use campanile::job::{CommandTarget, FireId, HandlerTarget, Job, JobId, JobSpec, Target};
use campanile::run::{Outcome, RunRecord};
use campanile::schedule::Schedule;
use campanile_inproc::{InprocConfig, InprocCoordinator};
use tokio::time::Instant;

const TTL: Duration = Duration::from_secs(10);

fn node(name: &str) -> NodeInfo {
    NodeInfo::new(NodeId::new(name).expect("valid node id"))
}

fn job_id(name: &str) -> JobId {
    JobId::new(name).expect("valid job id")
}

fn job(name: &str) -> Job {
    let spec = JobSpec::new(
        name,
        Schedule::parse("@every 1m").expect("valid schedule"),
        Target::Handler(HandlerTarget::new("noop")),
    );
    Job::new(job_id(name), spec, 1_700_000_000_000)
}

/// A job with many non-default fields, to see that it round-trips through the file.
fn full_job(name: &str) -> Job {
    let mut command = CommandTarget::new(["/bin/sh", "-c", "echo 'héllo' \"$X\""]);
    command.env = BTreeMap::from([("X".to_owned(), "1 2".into())]);
    command.timeout = Some(Duration::from_secs(30));
    let mut spec = JobSpec::new(
        name,
        Schedule::parse("0 30 9 * * MON-FRI").expect("valid schedule"),
        Target::Command(command),
    );
    spec.timezone = "Europe/Paris".to_owned();
    spec.labels = BTreeMap::from([("team".to_owned(), "payments".to_owned())]);
    spec.jitter = Some(Duration::from_millis(1500));
    spec.paused = true;
    spec.weight = 3;
    spec.node_labels = BTreeSet::from(["region=eu".to_owned()]);
    let mut job = Job::new(job_id(name), spec, 1_700_000_000_000);
    job.updated_ms = 1_700_000_050_000;
    job
}

fn claim(job: &str, from_ms: i64, through_ms: i64, settled_ms: i64) -> FireClaim {
    FireClaim {
        job: job_id(job),
        from_ms,
        through_ms,
        settled_ms,
    }
}

fn record(job: &str, scheduled_ms: i64) -> RunRecord {
    let mut record = RunRecord::new(
        &FireId::new(job_id(job), scheduled_ms),
        &campanile::coordinator::NodeId::new("a").unwrap(),
        Outcome::Succeeded,
    );
    record.output = format!("ran {scheduled_ms}");
    record
}

fn granted(result: &ClaimResult) -> JobClaim {
    match result {
        ClaimResult::Granted { claim, .. } => claim.clone(),
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn scheduled(records: &[RunRecord]) -> Vec<i64> {
    records.iter().map(|r| r.scheduled_ms).collect()
}

/// Opens a session for `name`, leads, and assigns every job in `jobs` to it. Returns the session.
async fn lead_and_own(c: &InprocCoordinator, name: &str, jobs: &[&str]) -> SessionId {
    let session = c.open_session(node(name), TTL * 100).await.expect("open");
    let leader = c
        .campaign(session.id)
        .await
        .expect("campaign")
        .expect("leads");
    let owners = jobs
        .iter()
        .map(|j| (job_id(j), NodeId::new(name).expect("valid node id")))
        .collect();
    c.publish_assignment(session.id, leader.epoch, owners)
        .await
        .expect("publish");
    session.id
}

mod durable {
    //! Durable mode: what survives a restart (re-open of the same file), and what does not.

    use super::*;

    /// Writes a bit of everything to a new file at `path`; returns what a reader must find afterwards.
    struct Written {
        session: SessionId,
        epoch: u64,
        revision: u64,
        claim: JobClaim,
        assignment_version: u64,
    }

    async fn write_everything(path: &Path) -> Written {
        let c = InprocCoordinator::open(path).expect("open a new file");
        let session = lead_and_own(&c, "a", &["full", "plain"]).await;
        let epoch = c.leader().await.expect("leader").expect("leads").epoch;
        c.put_job(full_job("full"), Precondition::Absent)
            .await
            .expect("put");
        c.put_job(job("plain"), Precondition::Absent)
            .await
            .expect("put");
        c.put_job(job("gone"), Precondition::Absent)
            .await
            .expect("put");
        let revision = c
            .delete_job(&job_id("gone"), Precondition::Any)
            .await
            .expect("delete");
        let results = c
            .claim_fires(
                session,
                &[claim("full", 1000, 9000, 999), claim("plain", 0, 500, 0)],
            )
            .await
            .expect("claim");
        let claim = granted(&results[0]);
        let recorded = c
            .record_runs(session, vec![record("full", 1000), record("full", 2000)])
            .await
            .expect("record");
        assert_eq!(recorded, vec![RecordResult::Recorded; 2]);
        let assignment_version = c
            .assignment()
            .await
            .expect("assignment")
            .expect("published")
            .version;
        // Dropping the last handle releases the file (the session's reaper holds it only weakly).
        drop(c);
        Written {
            session,
            epoch,
            revision,
            claim,
            assignment_version,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_keeps_jobs_claims_runs_assignment_and_counters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("campanile.redb");
        let before = write_everything(&path).await;

        let c = InprocCoordinator::open(&path).expect("reopen");
        let snapshot = c.list_jobs().await.expect("list");
        assert_eq!(snapshot.revision, before.revision);
        let mut full = full_job("full");
        full.revision = 1;
        let mut plain = job("plain");
        plain.revision = 2;
        assert_eq!(
            snapshot.jobs,
            vec![std::sync::Arc::new(full), std::sync::Arc::new(plain)],
            "jobs round-trip through the file"
        );
        assert_eq!(c.get_job(&job_id("gone")).await.expect("get"), None);

        assert_eq!(
            c.claim_of(&job_id("full")).await.expect("claim_of"),
            Some(before.claim.clone())
        );
        let runs = c
            .runs(&job_id("full"), RunQuery::default())
            .await
            .expect("runs");
        assert_eq!(runs, vec![record("full", 2000), record("full", 1000)]);

        let assignment = c.assignment().await.expect("assignment").expect("kept");
        assert_eq!(assignment.version, before.assignment_version);
        assert_eq!(assignment.epoch, before.epoch);
        assert_eq!(assignment.owners.len(), 2);

        // Sessions, members and leadership are gone; the counters go on.
        assert_eq!(c.leader().await.expect("leader"), None);
        assert!(c.members().await.expect("members").members.is_empty());
        assert!(matches!(
            c.keep_alive(before.session).await,
            Err(CoordError::SessionExpired { .. })
        ));
        let rx = c.watch_session(before.session).await.expect("watch");
        assert_eq!(*rx.borrow(), SessionState::Expired);
        let session = c.open_session(node("a"), TTL).await.expect("open");
        assert!(session.id > before.session, "session ids are never reused");
        let leader = c
            .campaign(session.id)
            .await
            .expect("campaign")
            .expect("leads");
        assert!(leader.epoch > before.epoch, "epochs grow across restarts");
        let version = c
            .publish_assignment(session.id, leader.epoch, assignment.owners.clone())
            .await
            .expect("publish");
        assert!(version > before.assignment_version);

        // Old events are gone: resuming from before the loaded revision is Compacted.
        match c.watch_jobs(before.revision - 1).await {
            Err(CoordError::Compacted { requested, oldest }) => {
                assert_eq!((requested, oldest), (before.revision - 1, before.revision));
            }
            other => panic!("expected Compacted, got {other:?}"),
        }
        let mut watch = c.watch_jobs(before.revision).await.expect("watch");
        let revision = c
            .put_job(job("new"), Precondition::Absent)
            .await
            .expect("put");
        assert_eq!(revision, before.revision + 1);
        let event = watch.recv().await.expect("event").expect("ok");
        assert_eq!(event.revision(), revision);

        // The new session of the same node takes the claim over from the old one.
        let taken = c
            .claim_fires(session.id, &[claim("full", 0, 20_000, 0)])
            .await
            .expect("claim");
        match &taken[0] {
            ClaimResult::Granted { claim, previous } => {
                assert_eq!(claim.from_ms, before.claim.through_ms + 1);
                assert_eq!(previous.as_ref(), Some(&before.claim));
            }
            other => panic!("expected a takeover, got {other:?}"),
        }
        // Fire ids recorded before the restart are still taken.
        let again = c
            .record_runs(session.id, vec![record("full", 2000)])
            .await
            .expect("record");
        assert_eq!(again, vec![RecordResult::Duplicate]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_and_the_history_floor_are_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("campanile.redb");
        let limit = InprocConfig::MIN_HISTORY_LIMIT as i64;
        let config = InprocConfig {
            history_limit: InprocConfig::MIN_HISTORY_LIMIT,
            ..InprocConfig::default()
        };
        {
            let c = InprocCoordinator::open_with(&path, config.clone()).expect("open");
            let session = lead_and_own(&c, "a", &["j"]).await;
            c.put_job(job("j"), Precondition::Absent)
                .await
                .expect("put");
            c.claim_fires(session, &[claim("j", 100, 900, 400)])
                .await
                .expect("claim");
            // A graceful leave: give back what will not be fired, then close.
            c.release_claims(session, &[(job_id("j"), 500)])
                .await
                .expect("release");
            let records = (1..=limit + 1).map(|i| record("j", i * 1000)).collect();
            c.record_runs(session, records).await.expect("record");
            c.close_session(session).await.expect("close");
        }
        let c = InprocCoordinator::open_with(&path, config).expect("reopen");
        let held = c
            .claim_of(&job_id("j"))
            .await
            .expect("claim_of")
            .expect("kept");
        assert_eq!(
            (held.from_ms, held.through_ms, held.settled_ms),
            (100, 500, 400),
            "the release survives, the close changes nothing"
        );
        let session = c.open_session(node("b"), TTL).await.expect("open");
        let again = c
            .record_runs(session.id, vec![record("j", 1000)])
            .await
            .expect("record");
        assert_eq!(
            again,
            vec![RecordResult::Duplicate],
            "the dropped fire id stays taken"
        );
        let runs = c
            .runs(
                &job_id("j"),
                RunQuery {
                    limit: usize::MAX,
                    ..RunQuery::default()
                },
            )
            .await
            .expect("runs");
        assert_eq!(runs.len() as i64, limit);
    }

    #[tokio::test]
    async fn an_unopenable_path_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").expect("write");
        let path = file.join("campanile.redb");
        let e = InprocCoordinator::open(&path).expect_err("a path under a file cannot be opened");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");

        let path = dir.path().join("held.redb");
        let _held = InprocCoordinator::open(&path).expect("open");
        let e = InprocCoordinator::open(&path).expect_err("the file is locked");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
}

mod sessions {
    //! Session expiry is driven by tokio time: it happens without any call, at the TTL.

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_unrenewed_session_expires_by_itself_at_its_ttl() {
        let c = InprocCoordinator::memory();
        let start = Instant::now();
        let session = c.open_session(node("a"), TTL).await.expect("open");
        c.campaign(session.id).await.expect("campaign");
        let mut state = c.watch_session(session.id).await.expect("watch");
        let mut members = c.watch_members().await.expect("members");
        assert_eq!(members.borrow_and_update().members.len(), 1);

        // A keep-alive 9 s in moves the deadline to 19 s.
        tokio::time::advance(Duration::from_secs(9)).await;
        c.keep_alive(session.id).await.expect("keep alive");
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(*state.borrow(), SessionState::Alive);

        // No further call: the expiry arrives by itself, at the deadline.
        state
            .wait_for(|s| *s == SessionState::Expired)
            .await
            .expect("expired is published");
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_secs(19) && elapsed < Duration::from_millis(19_002),
            "expired after {elapsed:?}"
        );
        members.changed().await.expect("members change");
        assert!(members.borrow().members.is_empty());
        assert_eq!(c.leader().await.expect("leader"), None);
        assert!(matches!(
            c.keep_alive(session.id).await,
            Err(CoordError::SessionExpired { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_and_close_keep_claims_as_they_are() {
        let c = InprocCoordinator::memory();
        c.put_job(job("j"), Precondition::Absent)
            .await
            .expect("put");
        c.put_job(job("k"), Precondition::Absent)
            .await
            .expect("put");
        let leader = lead_and_own(&c, "leader", &[]).await;
        let epoch = c.leader().await.expect("leader").expect("leads").epoch;
        let a = c.open_session(node("a"), TTL).await.expect("open");
        let b = c.open_session(node("b"), TTL * 100).await.expect("open");
        let owners = BTreeMap::from([
            (job_id("j"), NodeId::new("a").expect("id")),
            (job_id("k"), NodeId::new("b").expect("id")),
        ]);
        c.publish_assignment(leader, epoch, owners)
            .await
            .expect("publish");
        let held_a = granted(
            &c.claim_fires(a.id, &[claim("j", 0, 5000, 1000)])
                .await
                .expect("claim")[0],
        );
        let held_b = granted(
            &c.claim_fires(b.id, &[claim("k", 0, 5000, 1000)])
                .await
                .expect("claim")[0],
        );

        let mut state = c.watch_session(a.id).await.expect("watch");
        state
            .wait_for(|s| *s == SessionState::Expired)
            .await
            .expect("expired");
        assert_eq!(
            c.claim_of(&job_id("j")).await.expect("claim_of"),
            Some(held_a),
            "an expired session's claim stays for the successor to settle"
        );

        c.close_session(b.id).await.expect("close");
        assert_eq!(
            c.claim_of(&job_id("k")).await.expect("claim_of"),
            Some(held_b),
            "a closed session's claim stays too: settled_ms may lag behind the records"
        );
        c.close_session(b.id).await.expect("closing again is fine");
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_namespace() {
        let c = InprocCoordinator::memory();
        let other = c.clone();
        c.open_session(node("a"), TTL).await.expect("open");
        assert!(matches!(
            other.open_session(node("a"), TTL).await,
            Err(CoordError::Conflict { .. })
        ));
        assert_eq!(other.members().await.expect("members").members.len(), 1);
        assert_eq!(other.backend(), "inproc");
    }
}

mod watches {
    //! Job watches: retention, compaction and slow watchers.

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_watcher_is_cut_off_and_resumes_without_gaps() {
        let c = InprocCoordinator::memory();
        let mut watch = c.watch_jobs(0).await.expect("watch");
        // More than a watch holds beyond its backlog (a whole `put_jobs` batch and 1,024 more).
        let writes = (campanile::coordinator::limits::MAX_CREATE_BATCH + 3000) as u64;
        for i in 0..writes {
            c.put_job(job(&format!("j{i}")), Precondition::Absent)
                .await
                .expect("writers never wait for watchers");
        }
        let mut last = 0;
        while let Some(event) = watch.recv().await {
            let revision = event.expect("event").revision();
            assert_eq!(revision, last + 1, "no gaps");
            last = revision;
        }
        assert!(last < writes, "the slow watch was ended early (at {last})");
        let mut resumed = c.watch_jobs(last).await.expect("resume");
        for expected in last + 1..=writes {
            let event = resumed.recv().await.expect("event").expect("ok");
            assert_eq!(event.revision(), expected);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_retention_compacts_old_revisions() {
        let config = InprocConfig {
            watch_retention: 3,
            ..InprocConfig::default()
        };
        let c = InprocCoordinator::memory_with(config);
        for name in ["a", "b", "c", "d", "e"] {
            c.put_job(job(name), Precondition::Absent)
                .await
                .expect("put");
        }
        match c.watch_jobs(1).await {
            Err(CoordError::Compacted { requested, oldest }) => {
                assert_eq!((requested, oldest), (1, 2));
            }
            other => panic!("expected Compacted, got {other:?}"),
        }
        let mut watch = c.watch_jobs(2).await.expect("watch");
        for expected in 3..=5 {
            let event = watch.recv().await.expect("event").expect("ok");
            assert_eq!(event.revision(), expected);
        }
        c.delete_job(&job_id("a"), Precondition::Any)
            .await
            .expect("delete");
        let event = watch.recv().await.expect("event").expect("ok");
        assert_eq!(
            event,
            JobEvent::Deleted {
                id: job_id("a"),
                revision: 6
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_retention_still_watches_from_the_present() {
        let c = InprocCoordinator::memory_with(InprocConfig {
            watch_retention: 0,
            ..InprocConfig::default()
        });
        c.put_job(job("a"), Precondition::Absent)
            .await
            .expect("put");
        let snapshot = c.list_jobs().await.expect("list");
        let mut watch = c.watch_jobs(snapshot.revision).await.expect("watch");
        c.put_job(job("b"), Precondition::Absent)
            .await
            .expect("put");
        let event = watch.recv().await.expect("event").expect("ok");
        assert_eq!(event.revision(), 2);
        assert!(matches!(
            c.watch_jobs(0).await,
            Err(CoordError::Compacted { .. })
        ));
    }
}

mod history {
    //! Run history: the limit per job, and the floor of dropped fire ids.

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_history_limit_has_a_floor_of_100_and_keeps_the_newest() {
        let c = InprocCoordinator::memory_with(InprocConfig {
            history_limit: 5,
            ..InprocConfig::default()
        });
        c.put_job(job("j"), Precondition::Absent)
            .await
            .expect("put");
        let session = c.open_session(node("a"), TTL).await.expect("open");
        for i in 1..=150 {
            let result = c
                .record_runs(session.id, vec![record("j", i)])
                .await
                .expect("record");
            assert_eq!(result, vec![RecordResult::Recorded]);
        }
        let all = RunQuery {
            limit: 1000,
            ..RunQuery::default()
        };
        let runs = c.runs(&job_id("j"), all.clone()).await.expect("runs");
        assert_eq!(scheduled(&runs), (51..=150).rev().collect::<Vec<_>>());
        let page = c
            .runs(
                &job_id("j"),
                RunQuery {
                    from_ms: Some(60),
                    before_ms: Some(70),
                    limit: 3,
                },
            )
            .await
            .expect("runs");
        assert_eq!(scheduled(&page), vec![69, 68, 67]);
        let old = c
            .record_runs(session.id, vec![record("j", 10), record("j", 151)])
            .await
            .expect("record");
        assert_eq!(old, vec![RecordResult::Duplicate, RecordResult::Recorded]);
    }

    /// A batch of a thousand records (the recorder's largest) is stored in several holds of the lock: every
    /// record is answered in the order sent, duplicates anywhere in it included, and a bad record anywhere
    /// refuses the whole batch.
    #[tokio::test(start_paused = true)]
    async fn a_large_batch_is_answered_in_order_and_refused_whole() {
        let c = InprocCoordinator::memory();
        for name in ["a", "b"] {
            c.put_job(job(name), Precondition::Absent)
                .await
                .expect("put");
        }
        let session = c.open_session(node("n"), TTL).await.expect("open");
        // Stored before: a duplicate late in the batch.
        c.record_runs(session.id, vec![record("b", 991)])
            .await
            .expect("record");
        let batch: Vec<RunRecord> = (0..1000)
            .map(|i| record(if i % 2 == 0 { "a" } else { "b" }, i))
            .chain([record("a", 4)])
            .collect();
        let results = c.record_runs(session.id, batch).await.expect("record");
        let expected: Vec<RecordResult> = (0..1001)
            .map(|i| match i {
                991 | 1000 => RecordResult::Duplicate,
                _ => RecordResult::Recorded,
            })
            .collect();
        assert_eq!(results, expected);
        let all = RunQuery {
            limit: 2000,
            ..RunQuery::default()
        };
        let a = c.runs(&job_id("a"), all.clone()).await.expect("runs");
        assert_eq!(
            scheduled(&a),
            (0..1000).rev().filter(|i| i % 2 == 0).collect::<Vec<i64>>()
        );
        let b = c.runs(&job_id("b"), all.clone()).await.expect("runs");
        assert_eq!(
            scheduled(&b),
            (0..1000).rev().filter(|i| i % 2 == 1).collect::<Vec<i64>>()
        );

        let mut noisy = record("a", 5_999);
        noisy.output = "o".repeat(RunRecord::MAX_OUTPUT + 1);
        let refused: Vec<RunRecord> = (5_000..5_900)
            .map(|i| record("a", i))
            .chain([noisy])
            .collect();
        assert!(matches!(
            c.record_runs(session.id, refused).await,
            Err(CoordError::Invalid(_))
        ));
        let after = c.runs(&job_id("a"), all).await.expect("runs");
        assert_eq!(scheduled(&after), scheduled(&a));
    }
}

mod invalid {
    //! Bad input is `Invalid` (or `Conflict`/`NotFound`), never a panic, and writes nothing.

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bad_requests_are_invalid_and_write_nothing() {
        let c = InprocCoordinator::memory();
        for ttl in [Duration::ZERO, Duration::MAX] {
            assert!(matches!(
                c.open_session(node("a"), ttl).await,
                Err(CoordError::Invalid(_))
            ));
        }
        assert!(c.members().await.expect("members").members.is_empty());

        let mut huge = job("huge");
        huge.spec_mut().name = "x".repeat(2 << 20);
        assert!(matches!(
            c.put_job(huge, Precondition::Any).await,
            Err(CoordError::Invalid(_))
        ));
        assert_eq!(c.list_jobs().await.expect("list").revision, 0);

        let session = lead_and_own(&c, "a", &["j"]).await;
        c.put_job(job("j"), Precondition::Absent)
            .await
            .expect("put");
        assert!(matches!(
            c.claim_fires(session, &[claim("j", 0, 10, 0), claim("j", 0, i64::MAX, 0)])
                .await,
            Err(CoordError::Invalid(_))
        ));
        assert_eq!(c.claim_of(&job_id("j")).await.expect("claim_of"), None);

        let mut noisy = record("j", 5);
        noisy.output = "o".repeat(RunRecord::MAX_OUTPUT + 1);
        assert!(matches!(
            c.record_runs(session, vec![record("j", 1), noisy]).await,
            Err(CoordError::Invalid(_))
        ));
        assert!(
            c.runs(&job_id("j"), RunQuery::default())
                .await
                .expect("runs")
                .is_empty()
        );

        // Extreme query bounds are answered, not panicked on.
        let inverted = RunQuery {
            from_ms: Some(i64::MAX),
            before_ms: Some(i64::MIN),
            limit: usize::MAX,
        };
        assert!(
            c.runs(&job_id("j"), inverted)
                .await
                .expect("runs")
                .is_empty()
        );
    }
}
