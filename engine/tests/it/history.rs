//! A node given a history store copies every record the coordinator accepted into it; a record the
//! coordinator answered `Duplicate` reaches the store as the coordinator holds it.

use std::sync::Arc;
use std::time::Duration;

use campanile::clock::SystemClock;
use campanile::coordinator::{NodeId, NodeInfo, RecordResult};
use campanile::history::{Feed, HistoryStore, JobHistoryQuery};
use campanile::run::Outcome;
use campanile::{Coordinator, FireId, JobId, RunQuery, RunRecord, Scheduler};
use campanile_inproc::InprocCoordinator;

use super::*;

/// Polls `store` until it holds `want` records of `job` (a bound on virtual time, not a synchronization).
async fn until_stored(store: &dyn HistoryStore, job: &JobId, want: usize) -> Vec<RunRecord> {
    let wait = async {
        loop {
            let query = JobHistoryQuery {
                runs: RunQuery {
                    limit: want + 10,
                    ..RunQuery::default()
                },
                outcome: None,
            };
            let held = store.job_runs(job, query).await.unwrap();
            if held.len() >= want {
                return held;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("the store never held {want} records of {job}"))
}

#[tokio::test(start_paused = true)]
async fn every_accepted_record_reaches_the_history_store() {
    let coordinator = InprocCoordinator::memory();
    let store = coordinator.history().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let scheduler = Scheduler::builder()
        .coordinator(Arc::new(coordinator.clone()))
        .node_id("node-1")
        .clock(SystemClock::starting_at(T0).shared())
        .session_ttl(Duration::from_secs(4))
        .history(store.clone())
        .handler("record", move |ctx| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ctx.fire);
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    assert!(scheduler.history().is_some());
    let job = scheduler
        .create_with_id(JobId::new("h").unwrap(), recording("h", "* * * * * *"))
        .await
        .unwrap();
    until_fired(&mut rx, &job.id, T0 + 5000).await;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
    let mut in_coordinator = history(&scheduler, &job.id).await;
    in_coordinator.reverse();
    assert!(in_coordinator.len() >= 5, "{in_coordinator:?}");
    let held = until_stored(&*store, &job.id, in_coordinator.len()).await;
    assert_eq!(
        held, in_coordinator,
        "the store holds exactly the coordinator's records"
    );
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_reaches_the_store_as_the_coordinator_holds_it() {
    let coordinator = InprocCoordinator::memory();
    let store = coordinator.history().unwrap();
    let node = NodeId::new("successor").unwrap();
    let session = coordinator
        .open_session(NodeInfo::new(node.clone()), Duration::from_secs(60))
        .await
        .unwrap()
        .id;
    let job_id = JobId::new("d").unwrap();
    let job = campanile::Job::new(job_id.clone(), recording("d", "* * * * * *"), T0);
    coordinator
        .put_job(job, campanile::coordinator::Precondition::Absent)
        .await
        .unwrap();
    let fire = FireId::new(job_id.clone(), T0);
    // The successor accounted for the instant first: in doubt.
    let kept = RunRecord::new(&fire, &node, Outcome::InDoubt);
    let answer = coordinator
        .record_runs(session, vec![kept.clone()])
        .await
        .unwrap();
    assert_eq!(answer, vec![RecordResult::Recorded]);
    // This node's own record of it came back `Duplicate`: the store gets the coordinator's.
    let ours = RunRecord::new(&fire, &NodeId::new("node-1").unwrap(), Outcome::Succeeded);
    let feed = Feed::start(store.clone(), Arc::new(coordinator.clone()));
    feed.accepted(&[ours], &[RecordResult::Duplicate]);
    let held = until_stored(&*store, &job_id, 1).await;
    assert_eq!(held, vec![kept]);
}

/// A store whose appends wait until the gate opens.
struct Gated {
    inner: Arc<dyn HistoryStore>,
    open: tokio::sync::watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl HistoryStore for Gated {
    fn kind(&self) -> &'static str {
        "gated"
    }
    async fn append(&self, records: &[RunRecord]) -> campanile::history::HistoryResult<()> {
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        self.inner.append(records).await
    }
    async fn job_runs(
        &self,
        job: &JobId,
        query: JobHistoryQuery,
    ) -> campanile::history::HistoryResult<Vec<RunRecord>> {
        self.inner.job_runs(job, query).await
    }
    async fn runs(
        &self,
        query: campanile::history::HistoryQuery,
    ) -> campanile::history::HistoryResult<Vec<RunRecord>> {
        self.inner.runs(query).await
    }
    async fn prune(
        &self,
        retention: campanile::history::Retention,
        now_ms: i64,
    ) -> campanile::history::HistoryResult<campanile::history::Pruned> {
        self.inner.prune(retention, now_ms).await
    }
    async fn forget_job(&self, job: &JobId) -> campanile::history::HistoryResult<()> {
        self.inner.forget_job(job).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_that_stops_taking_records_holds_at_most_its_bound() {
    let coordinator = InprocCoordinator::memory();
    let (gate, open) = tokio::sync::watch::channel(false);
    let store = Arc::new(Gated {
        inner: coordinator.history().unwrap(),
        open,
    });
    const BOUND: usize = 50;
    let feed = Feed::with_bound(store.clone(), Arc::new(coordinator.clone()), BOUND);
    let node = NodeId::new("node-1").unwrap();
    let job = JobId::new("q").unwrap();
    let batch = |from: i64, n: i64| -> Vec<RunRecord> {
        (from..from + n)
            .map(|ms| RunRecord::new(&FireId::new(job.clone(), ms), &node, Outcome::Succeeded))
            .collect()
    };
    let per_batch = 10;
    let batches = (BOUND / per_batch) as i64;
    for b in 0..batches {
        let records = batch(b * per_batch as i64, per_batch as i64);
        feed.accepted(&records, &vec![RecordResult::Recorded; records.len()]);
    }
    assert_eq!(feed.queued(), BOUND);
    // Full: the next batch is dropped, not queued.
    let over = batch(i64::from(u32::MAX), 10);
    feed.accepted(&over, &[RecordResult::Recorded; 10]);
    assert_eq!(feed.queued(), BOUND);
    // The store comes back: the queue empties into it (a failure bound, not a synchronization), and the store
    // holds every queued record and none of the dropped ones.
    gate.send_replace(true);
    let drained = async {
        while feed.queued() > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), drained)
        .await
        .expect("the queue empties");
    let held = until_stored(&*store, &job, BOUND).await;
    assert_eq!(held.len(), BOUND);
    assert!(held.iter().all(|r| r.scheduled_ms < i64::from(u32::MAX)));
}
