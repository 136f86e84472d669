//! The job store: jobs with a store revision, the change log that `watch_jobs` replays, and consistent
//! snapshots.
//!
//! The store revision is a counter in `/meta/head`, not a zxid, so that revisions are dense and the change
//! log can be read by name. Every job write is one `multi` that compare-and-sets the head (its znode
//! version), writes the job's znodes, and appends `/log/<revision>` with the change (the whole job for a
//! put). Concurrent writers of different jobs therefore retry on the head; that is fine for a store written
//! by operators and the API, not by fires.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::{
    CoordError, CoordResult, JobEvent, JobSnapshot, JobWatch, Key, Precondition, rules,
};
use campanile::job::{Job, JobId};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tracing::debug;
use zookeeper_client as zk;

use crate::conn::{Shared, acls};
use crate::coordinator::Inner;
use crate::error::{Kind, decode, encode, from_zk};
use crate::{backoff, limits, paths, runs};

/// How often a job write retries after losing the head to a concurrent writer.
const WRITE_ATTEMPTS: u32 = 64;
/// How many log entries a watch or a snapshot reads per round trip batch.
const READ_BATCH: u64 = 256;
/// Room in a job watch's channel; a slow reader only slows its own reading of the log.
const WATCH_BUFFER: usize = 256;

/// `/meta/head`: the store revision and the newest revision dropped from the change log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Head {
    /// The revision of the last job write.
    pub(crate) revision: u64,
    /// Change-log entries up to here are deleted: a watch must start at or after it.
    pub(crate) compacted: u64,
}

/// `/log/<revision>`: one change of the job store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
enum LogEntry {
    /// A job was created or updated (the job as written, with its revision).
    Put { job: Box<Job> },
    /// A job was deleted.
    Deleted { id: JobId, revision: u64 },
}

impl LogEntry {
    fn into_event(self) -> JobEvent {
        match self {
            LogEntry::Put { job } => JobEvent::Put(Arc::new(*job)),
            LogEntry::Deleted { id, revision } => JobEvent::Deleted { id, revision },
        }
    }
}

/// Whether a failed `multi` lost a race (re-read and retry) rather than failed.
fn lost_race(error: &zk::MultiWriteError) -> bool {
    matches!(
        error,
        zk::MultiWriteError::OperationFailed {
            source: zk::Error::BadVersion
                | zk::Error::NodeExists
                | zk::Error::NoNode
                | zk::Error::NotEmpty,
            ..
        }
    )
}

impl Inner {
    /// Reads the head and its znode version.
    pub(crate) async fn read_head(&self, client: &zk::Client) -> CoordResult<(Head, i32)> {
        let (data, stat) = self
            .zk("read /meta/head", Kind::Read, client.get_data(paths::HEAD))
            .await?
            .map_err(|e| from_zk(e, "read /meta/head", Kind::Read))?;
        Ok((decode(paths::HEAD, &data)?, stat.version))
    }

    /// Reads a job and the version of its znode.
    async fn read_job(&self, client: &zk::Client, id: &JobId) -> CoordResult<Option<(Job, i32)>> {
        let path = paths::job(id);
        match self
            .zk("read a job", Kind::Read, client.get_data(&path))
            .await?
        {
            Ok((data, stat)) => Ok(Some((decode(&path, &data)?, stat.version))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(from_zk(e, &format!("read {path}"), Kind::Read)),
        }
    }

    pub(crate) async fn put_job(
        &self,
        mut job: Job,
        precondition: Precondition,
    ) -> CoordResult<u64> {
        limits::check_job(&job)?;
        let client = self.shared.client().await?;
        let options = zk::CreateMode::Persistent.with_acls(acls(&self.config));
        let job_path = paths::job(&job.id);
        for attempt in 0..WRITE_ATTEMPTS {
            let (head, head_version) = self.read_head(&client).await?;
            let current = self.read_job(&client, &job.id).await?;
            rules::check_precondition(
                &job.id,
                precondition,
                current.as_ref().map(|(j, _)| j.revision),
            )?;
            let revision = head.revision + 1;
            job.revision = revision;
            let data = encode("job", &job)?;
            let entry = encode(
                "log entry",
                &LogEntry::Put {
                    job: Box::new(job.clone()),
                },
            )?;
            let new_head = encode("head", &Head { revision, ..head })?;
            let mut multi = client.new_multi_writer();
            let built: Result<(), zk::Error> = (|| {
                multi.add_set_data(paths::HEAD, &new_head, Some(head_version))?;
                match &current {
                    None => {
                        multi.add_create(&job_path, &data, &options)?;
                        multi.add_create(&paths::claim(&job.id), b"null", &options)?;
                        multi.add_create(&paths::runs(&job.id), runs::EMPTY_META, &options)?;
                    }
                    Some((_, version)) => multi.add_set_data(&job_path, &data, Some(*version))?,
                }
                multi.add_create(&paths::log_entry(revision), &entry, &options)?;
                Ok(())
            })();
            built.map_err(|e| from_zk(e, "put_job", Kind::Write))?;
            match self.zk("put_job", Kind::Write, multi.commit()).await? {
                Ok(_) => {
                    self.trim_log(&client, revision).await;
                    return Ok(revision);
                }
                Err(e) if lost_race(&e) => {
                    backoff::raced(u64::from(std::process::id()), attempt).await;
                }
                Err(e) => return Err(from_zk(e.into(), "put_job", Kind::Write)),
            }
        }
        Err(contended("put_job"))
    }

    /// Creates many jobs, none of which may exist, in `multi`s of at most [`PUT_JOBS_MULTI_BYTES`]: each
    /// `multi` compare-and-sets the head once and, per job, creates its znodes and its log entry, with the
    /// next revisions in order. A later `multi` that fails (a job exists, or ZooKeeper fails) has the jobs of
    /// the earlier ones deleted again, each at the revision it was created with.
    pub(crate) async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>> {
        limits::check_jobs(&jobs)?;
        let client = self.shared.client().await?;
        let mut revisions = Vec::with_capacity(jobs.len());
        let mut created: Vec<(JobId, u64)> = Vec::new();
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some(job) = jobs.next_if(|job| {
                let size = encoded_len(job);
                chunk.is_empty() || (bytes + 2 * size + 512 <= PUT_JOBS_MULTI_BYTES)
            }) {
                bytes += 2 * encoded_len(&job) + 512;
                chunk.push(job);
            }
            match self.put_chunk(&client, &mut chunk).await {
                Ok(()) => {
                    created.extend(chunk.iter().map(|j| (j.id.clone(), j.revision)));
                    revisions.extend(chunk.iter().map(|j| j.revision));
                }
                Err((error, maybe_written)) => {
                    let mut unknown = 0;
                    if maybe_written {
                        // The multi may have been applied: take back whichever of its jobs carry the revision
                        // this call gave them.
                        for job in &chunk {
                            match self.read_job(&client, &job.id).await {
                                Ok(Some((stored, _))) if stored.revision == job.revision => {
                                    created.push((job.id.clone(), job.revision));
                                }
                                Ok(_) => {}
                                Err(_) => {
                                    unknown = chunk.len();
                                    break;
                                }
                            }
                        }
                    }
                    let mut undone = true;
                    for (id, revision) in &created {
                        match self.delete_job(id, Precondition::Revision(*revision)).await {
                            // Changed or deleted by another writer meanwhile: no longer this call's to undo.
                            Ok(_)
                            | Err(CoordError::Conflict { .. } | CoordError::NotFound { .. }) => {}
                            Err(_) => undone = false,
                        }
                    }
                    if !undone || unknown > 0 {
                        return Err(undo_failed(error, created.len(), unknown));
                    }
                    return Err(error);
                }
            }
        }
        Ok(revisions)
    }

    /// Writes one `multi` of new jobs, setting each job's revision. On failure, the error and whether the
    /// `multi` may have been applied.
    async fn put_chunk(
        &self,
        client: &zk::Client,
        chunk: &mut [Job],
    ) -> Result<(), (CoordError, bool)> {
        let options = zk::CreateMode::Persistent.with_acls(acls(&self.config));
        let certain = |e: CoordError| {
            let maybe = !e.is_certainly_aborted();
            (e, maybe)
        };
        for attempt in 0..WRITE_ATTEMPTS {
            let (head, head_version) = self.read_head(client).await.map_err(certain)?;
            let mut encoded = Vec::with_capacity(chunk.len());
            for (revision, job) in (head.revision + 1..).zip(chunk.iter_mut()) {
                job.revision = revision;
                let data = encode("job", &*job).map_err(certain)?;
                let entry = encode(
                    "log entry",
                    &LogEntry::Put {
                        job: Box::new(job.clone()),
                    },
                )
                .map_err(certain)?;
                encoded.push((data, entry));
            }
            let revision = head.revision + chunk.len() as u64;
            let new_head = encode("head", &Head { revision, ..head }).map_err(certain)?;
            let mut multi = client.new_multi_writer();
            // Index of each job's create in the multi: 1 + 4·i.
            let built: Result<(), zk::Error> = (|| {
                multi.add_set_data(paths::HEAD, &new_head, Some(head_version))?;
                for (job, (data, entry)) in chunk.iter().zip(&encoded) {
                    multi.add_create(&paths::job(&job.id), data, &options)?;
                    multi.add_create(&paths::claim(&job.id), b"null", &options)?;
                    multi.add_create(&paths::runs(&job.id), runs::EMPTY_META, &options)?;
                    multi.add_create(&paths::log_entry(job.revision), entry, &options)?;
                }
                Ok(())
            })();
            built.map_err(|e| certain(from_zk(e, "put_jobs", Kind::Write)))?;
            match self
                .zk("put_jobs", Kind::Write, multi.commit())
                .await
                .map_err(certain)?
            {
                Ok(_) => {
                    self.trim_log(client, revision).await;
                    return Ok(());
                }
                Err(zk::MultiWriteError::OperationFailed {
                    index,
                    source: zk::Error::NodeExists,
                }) if index % 4 == 1 => {
                    let job = &chunk[index / 4];
                    let actual = match self.read_job(client, &job.id).await {
                        Ok(Some((stored, _))) => format!("revision {}", stored.revision),
                        _ => "present".to_owned(),
                    };
                    return Err((
                        CoordError::Conflict {
                            key: Key::Job(job.id.clone()),
                            expected: "absent".to_owned(),
                            actual,
                        },
                        false,
                    ));
                }
                Err(e) if lost_race(&e) => {
                    backoff::raced(u64::from(std::process::id()), attempt).await;
                }
                Err(e) => {
                    let e = from_zk(e.into(), "put_jobs", Kind::Write);
                    let maybe = !e.is_certainly_aborted();
                    return Err((e, maybe));
                }
            }
        }
        Err((contended("put_jobs"), false))
    }

    pub(crate) async fn delete_job(
        &self,
        id: &JobId,
        precondition: Precondition,
    ) -> CoordResult<u64> {
        let client = self.shared.client().await?;
        let options = zk::CreateMode::Persistent.with_acls(acls(&self.config));
        let runs_path = paths::runs(id);
        let claim_path = paths::claim(id);
        for attempt in 0..WRITE_ATTEMPTS {
            let (head, head_version) = self.read_head(&client).await?;
            let Some((job, version)) = self.read_job(&client, id).await? else {
                return Err(CoordError::job_not_found(id));
            };
            rules::check_precondition(id, precondition, Some(job.revision))?;
            let runs = match self
                .zk("list runs", Kind::Read, client.list_children(&runs_path))
                .await?
            {
                Ok(children) => Some(children),
                Err(zk::Error::NoNode) => None,
                Err(e) => return Err(from_zk(e, &format!("list {runs_path}"), Kind::Read)),
            };
            let claim = self
                .zk("read a claim", Kind::Read, client.check_stat(&claim_path))
                .await?
                .map_err(|e| from_zk(e, &format!("read {claim_path}"), Kind::Read))?;
            let revision = head.revision + 1;
            let entry = encode(
                "log entry",
                &LogEntry::Deleted {
                    id: id.clone(),
                    revision,
                },
            )?;
            let new_head = encode("head", &Head { revision, ..head })?;
            let mut multi = client.new_multi_writer();
            let built: Result<(), zk::Error> = (|| {
                multi.add_set_data(paths::HEAD, &new_head, Some(head_version))?;
                multi.add_delete(&paths::job(id), Some(version))?;
                if claim.is_some() {
                    multi.add_delete(&claim_path, None)?;
                }
                if let Some(children) = &runs {
                    for child in children {
                        multi.add_delete(&format!("{runs_path}/{child}"), None)?;
                    }
                    multi.add_delete(&runs_path, None)?;
                }
                multi.add_create(&paths::log_entry(revision), &entry, &options)?;
                Ok(())
            })();
            built.map_err(|e| from_zk(e, "delete_job", Kind::Write))?;
            match self.zk("delete_job", Kind::Write, multi.commit()).await? {
                Ok(_) => {
                    self.trim_log(&client, revision).await;
                    return Ok(revision);
                }
                Err(e) if lost_race(&e) => {
                    backoff::raced(u64::from(std::process::id()), attempt).await;
                }
                Err(e) => return Err(from_zk(e.into(), "delete_job", Kind::Write)),
            }
        }
        Err(contended("delete_job"))
    }

    /// Drops the oldest change-log entries once more than the retention (plus some slack, so that trims are
    /// batched) are kept. Best effort: a failed trim is retried after a later write.
    async fn trim_log(&self, client: &zk::Client, revision: u64) {
        let retention = self.config.watch_retention;
        let slack = (retention / 8).clamp(1, 1024);
        let Ok((head, version)) = self.read_head(client).await else {
            return;
        };
        if head.revision.saturating_sub(head.compacted) <= retention + slack {
            return;
        }
        // At most 4096 deletes per trim keeps the request small; a backlog takes several writes to clear.
        let compacted = (head.revision - retention).min(head.compacted + 4096);
        let Ok(new_head) = encode("head", &Head { compacted, ..head }) else {
            return;
        };
        let mut multi = client.new_multi_writer();
        let built: Result<(), zk::Error> = (|| {
            multi.add_set_data(paths::HEAD, &new_head, Some(version))?;
            for r in head.compacted + 1..=compacted {
                multi.add_delete(&paths::log_entry(r), None)?;
            }
            Ok(())
        })();
        if built.is_err() {
            return;
        }
        match self
            .zk("trim the job log", Kind::Write, multi.commit())
            .await
        {
            Ok(Ok(_)) => debug!(revision, compacted, "job log trimmed"),
            Ok(Err(error)) => debug!(%error, "trimming the job log failed"),
            Err(error) => debug!(%error, "trimming the job log failed"),
        }
    }

    pub(crate) async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>> {
        let client = self.shared.reader().await?;
        Ok(self.read_job(&client, id).await?.map(|(job, _)| job))
    }

    /// A consistent snapshot without a multi-key transaction: read the head (`r1`), every job, the head
    /// again (`r2`), then replay the log entries `(r1, r2]` over the jobs read. The client's reads are
    /// ordered, so each job was read in a state at or before `r2`; a job untouched in `(r1, r2]` was read in
    /// its state at `r2`, and a touched one gets that state from its last log entry.
    pub(crate) async fn list_jobs(&self) -> CoordResult<JobSnapshot> {
        let client = self.shared.reader().await?;
        for _ in 0..8 {
            let (first, _) = self.read_head(&client).await?;
            let names = self
                .zk("list /jobs", Kind::Read, client.list_children(paths::JOBS))
                .await?
                .map_err(|e| from_zk(e, "list /jobs", Kind::Read))?;
            let mut jobs: BTreeMap<JobId, Arc<Job>> = BTreeMap::new();
            for chunk in names.chunks(512) {
                let reads = chunk.iter().map(|name| {
                    let path = format!("{}/{name}", paths::JOBS);
                    let read = client.get_data(&path);
                    async move { (path, read.await) }
                });
                let results = self
                    .zk("read jobs", Kind::Read, async {
                        Ok(futures::future::join_all(reads).await)
                    })
                    .await?
                    .map_err(|e: zk::Error| from_zk(e, "read jobs", Kind::Read))?;
                for (path, result) in results {
                    match result {
                        Ok((data, _)) => {
                            let job: Job = decode(&path, &data)?;
                            jobs.insert(job.id.clone(), Arc::new(job));
                        }
                        Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(from_zk(e, &format!("read {path}"), Kind::Read)),
                    }
                }
            }
            let (last, _) = self.read_head(&client).await?;
            match self
                .read_log(&client, first.revision + 1, last.revision)
                .await?
            {
                Some(events) => {
                    for event in events {
                        match event {
                            JobEvent::Put(job) => {
                                jobs.insert(job.id.clone(), job);
                            }
                            JobEvent::Deleted { id, .. } => {
                                jobs.remove(&id);
                            }
                        }
                    }
                    return Ok(JobSnapshot {
                        jobs: jobs.into_values().collect(),
                        revision: last.revision,
                    });
                }
                // The entries were trimmed while we read: start over.
                None => continue,
            }
        }
        Err(CoordError::unavailable(
            "list_jobs: the job log was trimmed under every attempt at a snapshot",
        ))
    }

    /// The log entries `from..=to` in order, or `None` if one of them is no longer retained.
    async fn read_log(
        &self,
        client: &zk::Client,
        from: u64,
        to: u64,
    ) -> CoordResult<Option<Vec<JobEvent>>> {
        read_log(&self.shared, client, self.config.request_timeout, from, to).await
    }

    pub(crate) async fn watch_jobs(self: &Arc<Self>, after_revision: u64) -> CoordResult<JobWatch> {
        let client = self.shared.reader().await?;
        let (head, _) = self.read_head(&client).await?;
        if after_revision < head.compacted {
            return Err(CoordError::Compacted {
                requested: after_revision,
                oldest: head.compacted,
            });
        }
        let heads = self.head_watch().await?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let shared = Arc::clone(&self.shared);
        let timeout = self.config.request_timeout;
        let task = tokio::spawn(follow_log(shared, timeout, heads, after_revision, tx));
        self.own(task.abort_handle());
        Ok(rx)
    }
}

/// Reads the log entries `from..=to`; `None` if one is missing (trimmed).
async fn read_log(
    _shared: &Shared,
    client: &zk::Client,
    timeout: Duration,
    from: u64,
    to: u64,
) -> CoordResult<Option<Vec<JobEvent>>> {
    let mut events = Vec::new();
    let mut next = from;
    while next <= to {
        let end = to.min(next + READ_BATCH - 1);
        let reads = (next..=end).map(|r| {
            let path = paths::log_entry(r);
            let read = client.get_data(&path);
            async move { (path, read.await) }
        });
        let results = crate::error::deadline(timeout, "read the job log", Kind::Read, async {
            Ok(futures::future::join_all(reads).await)
        })
        .await?;
        for (path, result) in results {
            match result {
                Ok((data, _)) => {
                    let entry: LogEntry = decode(&path, &data)?;
                    events.push(entry.into_event());
                }
                Err(zk::Error::NoNode) => return Ok(None),
                Err(e) => return Err(from_zk(e, &format!("read {path}"), Kind::Read)),
            }
        }
        next = end + 1;
    }
    Ok(Some(events))
}

/// Feeds one job watch: the log entries after `after`, then each new one as the head moves. Ends (dropping
/// the sender, so the caller resumes from the last revision it saw) on any error, after sending
/// `Compacted` if the entries it needs were trimmed.
async fn follow_log(
    shared: Arc<Shared>,
    timeout: Duration,
    mut heads: watch::Receiver<u64>,
    after: u64,
    tx: mpsc::Sender<CoordResult<JobEvent>>,
) {
    let mut last = after;
    loop {
        let head = *heads.borrow_and_update();
        if head > last {
            let Ok(client) = shared.client().await else {
                return;
            };
            let to = head.min(last + READ_BATCH);
            match read_log(&shared, &client, timeout, last + 1, to).await {
                Ok(Some(events)) => {
                    for event in events {
                        let revision = event.revision();
                        if revision <= last {
                            continue;
                        }
                        if tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                        last = revision;
                    }
                    last = last.max(to);
                    continue;
                }
                Ok(None) => {
                    let oldest = match read_head_of(&client, timeout).await {
                        Ok(head) => head.compacted,
                        Err(_) => last + 1,
                    };
                    let _ = tx
                        .send(Err(CoordError::Compacted {
                            requested: last,
                            oldest,
                        }))
                        .await;
                    return;
                }
                Err(error) => {
                    debug!(%error, "job watch ends after a failed read");
                    return;
                }
            }
        }
        tokio::select! {
            biased;
            () = tx.closed() => return,
            changed = heads.changed() => if changed.is_err() { return },
        }
    }
}

async fn read_head_of(client: &zk::Client, timeout: Duration) -> CoordResult<Head> {
    let (data, _) = crate::error::deadline(timeout, "read /meta/head", Kind::Read, async {
        client
            .get_data(paths::HEAD)
            .await
            .map_err(|e| from_zk(e, "read /meta/head", Kind::Read))
    })
    .await?;
    decode(paths::HEAD, &data)
}

/// Follows `/meta/head` with a persistent watch and publishes the store revision; re-reads after every
/// reconnect (events during a disconnection are not replayed) and moves to a new connection when the shared
/// one's session ends.
pub(crate) async fn follow_head(shared: Arc<Shared>, timeout: Duration, tx: watch::Sender<u64>) {
    crate::conn::follow(
        shared,
        timeout,
        paths::HEAD,
        zk::AddWatchMode::Persistent,
        |client| async move { read_head_of(&client, timeout).await },
        |head: Head| {
            tx.send_if_modified(|current| {
                let newer = head.revision > *current;
                if newer {
                    *current = head.revision;
                }
                newer
            });
        },
    )
    .await;
}

/// Most bytes of one `put_jobs` `multi` (each job counts twice, for its znode and its log entry, plus paths):
/// well below ZooKeeper's default `jute.maxbuffer` of 1 MiB.
pub(crate) const PUT_JOBS_MULTI_BYTES: usize = 768 * 1024;

/// A job's JSON size (as [`limits::check_jobs`] measured it, within [`limits::MAX_JOB_BYTES`]).
fn encoded_len(job: &Job) -> usize {
    serde_json::to_vec(job).map_or(limits::MAX_JOB_BYTES, |v| v.len())
}

/// The error of a `put_jobs` whose compensation failed: some of its jobs may be left.
fn undo_failed(cause: CoordError, created: usize, unknown: usize) -> CoordError {
    CoordError::Unavailable {
        message: format!(
            "zookeeper put_jobs failed ({cause}), and it could not make sure that none of its jobs remain (of the \
             {created} it had created, plus up to {unknown} whose write may have happened): list them before retrying"
        ),
        certainly_aborted: false,
        source: None,
    }
}

fn contended(what: &str) -> CoordError {
    CoordError::Unavailable {
        message: format!("{what}: lost {WRITE_ATTEMPTS} races in a row for the job store's head"),
        certainly_aborted: true,
        source: None,
    }
}
