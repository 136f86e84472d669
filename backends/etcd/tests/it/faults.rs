//! Fault tests against real etcd servers of their own: etcd stopped and restarted under running nodes, a
//! node's connection cut until its lease expires, a job watch that falls behind a compaction.
//!
//! Nodes are engine nodes (`campanile::Scheduler`) in this process, each with its own connection; every job
//! fires an in-process handler that logs the fire, so the tests see exactly which node ran which instant.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campanile::Scheduler;
use campanile::coordinator::{CoordError, Coordinator, JobEvent, Precondition};
use campanile::job::{HandlerTarget, Job, JobId, JobSpec, Target};
use campanile::schedule::Schedule;

use super::server::{PrivateEtcd, Proxy, private_servers_wanted};

const TTL: Duration = Duration::from_secs(2);
/// Bound of every awaited condition.
const PATIENCE: Duration = Duration::from_secs(30);

/// One executed fire: node, job, scheduled instant, wall time it started.
#[derive(Debug, Clone)]
struct Fire {
    node: String,
    job: String,
    scheduled_ms: i64,
    at_ms: i64,
}

type FireLog = Arc<Mutex<Vec<Fire>>>;

#[allow(clippy::disallowed_methods)] // Wall time, as the engine's system clock sees it.
fn now_ms() -> i64 {
    std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_millis() as i64)
}

async fn node(endpoint: &str, prefix: &str, id: &str, log: &FireLog) -> Scheduler {
    let coordinator = super::connect(&[endpoint.to_owned()], prefix).await;
    let log = Arc::clone(log);
    Scheduler::builder()
        .coordinator(Arc::new(coordinator))
        .node_id(id)
        .session_ttl(TTL)
        .rebalance_delay(Duration::from_millis(50))
        .handler("log", move |ctx| {
            let log = Arc::clone(&log);
            async move {
                log.lock().unwrap().push(Fire {
                    node: ctx.node.to_string(),
                    job: ctx.fire.job.to_string(),
                    scheduled_ms: ctx.fire.scheduled_ms,
                    at_ms: now_ms(),
                });
                Ok(())
            }
        })
        .start()
        .await
        .expect("the node starts")
}

fn every_second(id: &str) -> JobSpec {
    JobSpec::new(
        id,
        Schedule::parse("* * * * * *").expect("schedule"),
        Target::Handler(HandlerTarget::new("log")),
    )
}

/// Waits until `check` holds, polling (no event tells when a fire happens on another node), at most
/// [`PATIENCE`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// No fire id ran twice.
fn assert_no_double_fire(log: &FireLog) {
    let fires = log.lock().unwrap();
    let mut seen: HashMap<(&str, i64), &Fire> = HashMap::new();
    for fire in fires.iter() {
        if let Some(first) = seen.insert((&fire.job, fire.scheduled_ms), fire) {
            panic!(
                "fire {}@{} ran twice: {first:?} and {fire:?}",
                fire.job, fire.scheduled_ms
            );
        }
    }
}

/// Jobs with a fire scheduled after `after_ms`, by node.
fn fired_after(log: &FireLog, after_ms: i64) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_node: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for fire in log
        .lock()
        .unwrap()
        .iter()
        .filter(|f| f.scheduled_ms > after_ms)
    {
        by_node
            .entry(fire.node.clone())
            .or_default()
            .insert(fire.job.clone());
    }
    by_node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_under_running_nodes_no_double_fire_and_they_resume() {
    if !private_servers_wanted("etcd_restart_under_running_nodes") {
        return;
    }
    let mut etcd = PrivateEtcd::start().await;
    let prefix = super::unique_prefix("restart");
    let log = FireLog::default();
    let a = node(&etcd.endpoint(), &prefix, "a", &log).await;
    let b = node(&etcd.endpoint(), &prefix, "b", &log).await;
    for i in 0..4 {
        a.create_with_id(
            JobId::new(format!("j{i}")).unwrap(),
            every_second(&format!("j{i}")),
        )
        .await
        .expect("create");
    }
    let start = now_ms();
    eventually("both nodes fire", || fired_after(&log, start).len() == 2).await;

    // etcd crashes for longer than the session TTL, then comes back with its data.
    etcd.stop();
    let down_ms = now_ms();
    tokio::time::sleep(TTL + Duration::from_secs(1)).await; // the outage itself, not a synchronization

    // Until the restart begins etcd is certainly down; once its process starts, a node may reach it before
    // `restart` has seen it healthy, and a fire granted then is legitimate.
    let restarting_ms = now_ms();
    etcd.restart().await;
    let up_ms = now_ms();

    // Both nodes fire again by themselves, and every job runs.
    eventually("both nodes fire after the restart", || {
        let after = fired_after(&log, up_ms + 1000);
        after.len() == 2 && after.values().flatten().collect::<BTreeSet<_>>().len() == 4
    })
    .await;
    assert_no_double_fire(&log);
    // While etcd was down, nothing fired past the validity proven before the outage.
    let late: Vec<Fire> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|f| f.at_ms > down_ms + TTL.as_millis() as i64 && f.at_ms < restarting_ms)
        .cloned()
        .collect();
    assert!(
        late.is_empty(),
        "fired while etcd was down beyond the session's proven validity: {late:?}"
    );
    let members = a.coordinator().members().await.expect("members");
    assert_eq!(members.members.len(), 2, "{members:?}");

    a.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    b.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    assert_no_double_fire(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_node_stops_firing_before_its_jobs_move() {
    if !private_servers_wanted("a_cut_node_stops_firing_before_its_jobs_move") {
        return;
    }
    let etcd = PrivateEtcd::start().await;
    let proxy = Proxy::start(etcd.endpoint()).await;
    let prefix = super::unique_prefix("cut");
    let log = FireLog::default();
    // `a` reaches etcd through the proxy, `b` directly.
    let a = node(&proxy.endpoint(), &prefix, "a", &log).await;
    let b = node(&etcd.endpoint(), &prefix, "b", &log).await;
    for i in 0..4 {
        b.create_with_id(
            JobId::new(format!("j{i}")).unwrap(),
            every_second(&format!("j{i}")),
        )
        .await
        .expect("create");
    }
    let start = now_ms();
    eventually("both nodes fire", || fired_after(&log, start).len() == 2).await;
    let a_jobs = fired_after(&log, start).remove("a").unwrap_or_default();

    // Cut `a` off until its lease expires and `b` has taken over every job.
    proxy.cut();
    let cut_ms = now_ms();
    eventually("b runs a's jobs", || {
        fired_after(&log, cut_ms)
            .get("b")
            .is_some_and(|jobs| a_jobs.is_subset(jobs))
    })
    .await;
    {
        let fires = log.lock().unwrap();
        for job in &a_jobs {
            let a_last = fires
                .iter()
                .filter(|f| f.node == "a" && &f.job == job)
                .map(|f| f.at_ms)
                .max()
                .unwrap_or(0);
            let b_first = fires
                .iter()
                .filter(|f| f.node == "b" && &f.job == job && f.at_ms > cut_ms)
                .map(|f| f.at_ms)
                .min()
                .expect("b took it over");
            assert!(
                a_last < b_first,
                "job {job}: the cut node fired at {a_last} after the takeover at {b_first}"
            );
        }
    }
    assert_no_double_fire(&log);

    // Healed, `a` rejoins by itself with a new session and gets jobs back.
    proxy.heal();
    let healed_ms = now_ms();
    eventually("a fires again", || {
        fired_after(&log, healed_ms).contains_key("a")
    })
    .await;
    assert_no_double_fire(&log);
    a.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    b.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    assert_no_double_fire(&log);
}

fn plain_job(id: &str) -> Job {
    Job::new(JobId::new(id).unwrap(), every_second(id), 1_700_000_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_behind_a_compaction_resyncs_and_misses_nothing() {
    if !private_servers_wanted("a_watch_behind_a_compaction_resyncs") {
        return;
    }
    let etcd = PrivateEtcd::start().await;
    let proxy = Proxy::start(etcd.endpoint()).await;
    let prefix = super::unique_prefix("compaction");
    let writer = super::connect(&[etcd.endpoint()], &prefix).await;
    let reader = super::connect(&[proxy.endpoint()], &prefix).await;
    for id in ["a", "b"] {
        writer
            .put_job(plain_job(id), Precondition::Absent)
            .await
            .expect("put");
    }

    // The reader's view: list, then watch; on `Compacted`, list again (what the engine's job feed does).
    let snapshot = reader.list_jobs().await.expect("list");
    assert_eq!(snapshot.jobs.len(), 2);
    let mut watch = reader.watch_jobs(snapshot.revision).await.expect("watch");

    // The reader loses its connection; meanwhile jobs change and etcd compacts its history.
    proxy.cut();
    writer
        .put_job(plain_job("c"), Precondition::Absent)
        .await
        .expect("put");
    writer
        .delete_job(&JobId::new("a").unwrap(), Precondition::Any)
        .await
        .expect("delete");
    writer
        .put_job(plain_job("b"), Precondition::Any)
        .await
        .expect("update");
    let compacted = etcd.compact().await;
    proxy.heal();

    // The watch resumes from its last revision, finds it compacted, and says so; a direct resume too.
    let item = tokio::time::timeout(PATIENCE, watch.recv())
        .await
        .expect("the watch answers after the reconnect");
    match item {
        Some(Err(CoordError::Compacted { requested, oldest })) => {
            assert_eq!(requested, snapshot.revision);
            assert!(
                oldest >= requested,
                "oldest {oldest} < requested {requested}"
            );
        }
        other => panic!("expected Compacted after the compaction at {compacted}, got {other:?}"),
    }
    // A direct resume from there is `Compacted` too: at the call or as the first item.
    let oldest = match reader.watch_jobs(snapshot.revision).await {
        Err(CoordError::Compacted { oldest, .. }) => oldest,
        Ok(mut resumed) => match tokio::time::timeout(PATIENCE, resumed.recv()).await {
            Ok(Some(Err(CoordError::Compacted { oldest, .. }))) => oldest,
            other => panic!("expected Compacted as the first item, got {other:?}"),
        },
        Err(other) => panic!("expected Compacted, got {other:?}"),
    };
    // From the oldest revision it names, a watch works: the next change arrives.
    let mut from_oldest = reader.watch_jobs(oldest).await.expect("watch from oldest");
    let revision = writer
        .put_job(plain_job("e"), Precondition::Absent)
        .await
        .expect("put");
    loop {
        let item = tokio::time::timeout(PATIENCE, from_oldest.recv())
            .await
            .expect("an event")
            .expect("open")
            .expect("no error from the oldest revision");
        if item.revision() == revision {
            break;
        }
    }
    writer
        .delete_job(&JobId::new("e").unwrap(), Precondition::Any)
        .await
        .expect("delete");

    // Resync: list again, then watch from the snapshot; later changes arrive; nothing was missed.
    let snapshot = reader.list_jobs().await.expect("relist");
    let mut view: BTreeMap<JobId, u64> = snapshot
        .jobs
        .iter()
        .map(|j| (j.id.clone(), j.revision))
        .collect();
    let mut watch = reader.watch_jobs(snapshot.revision).await.expect("watch");
    let revision = writer
        .put_job(plain_job("d"), Precondition::Absent)
        .await
        .expect("put");
    let event = tokio::time::timeout(PATIENCE, watch.recv())
        .await
        .expect("an event")
        .expect("open")
        .expect("ok");
    match event {
        JobEvent::Put(job) => {
            assert_eq!(job.revision, revision);
            view.insert(job.id.clone(), job.revision);
        }
        other => panic!("expected the put of d, got {other:?}"),
    }
    let truth: BTreeMap<JobId, u64> = writer
        .list_jobs()
        .await
        .expect("list")
        .jobs
        .iter()
        .map(|j| (j.id.clone(), j.revision))
        .collect();
    assert_eq!(view, truth, "the resynced view equals the store");
    assert_eq!(
        view.keys().map(JobId::as_str).collect::<Vec<_>>(),
        vec!["b", "c", "d"]
    );
}
