//! The job store: one key per job (`jobs/<id>`), whose mod revision is the job's revision. Preconditions
//! are compares on the job key; `put_jobs` writes chunks of new jobs and takes them back if a later chunk
//! fails; `watch_jobs` follows the `jobs/` prefix and re-opens a dead stream from the last revision it
//! delivered.

use std::sync::Arc;

use campanile::coordinator::{
    CoordError, CoordResult, JobEvent, JobSnapshot, JobWatch, Key, Precondition, rules,
};
use campanile::job::{Job, JobId};
use etcd_client::{
    Compare, CompareOp, DeleteOptions, EventType, GetOptions, SortOrder, SortTarget, Txn, TxnOp,
    WatchOptions, WatchStream,
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::backoff;
use crate::coordinator::Inner;
use crate::error::Kind;
use crate::keys;
use crate::txn::{Answers, ReadAt, Reads};
use crate::{limits, stored};

/// Room of a job watch's channel.
const WATCH_BUFFER: usize = 1024;
/// Jobs per page of `list_jobs`.
const PAGE: i64 = 1000;

impl Inner {
    pub(crate) async fn put_job(
        &self,
        mut job: Job,
        precondition: Precondition,
    ) -> CoordResult<u64> {
        limits::check_job(&job)?;
        let key = self.keys().job(&job.id);
        let compares = match precondition {
            Precondition::Absent => {
                vec![Compare::create_revision(key.clone(), CompareOp::Equal, 0)]
            }
            Precondition::Revision(r) => {
                let Ok(r) = i64::try_from(r) else {
                    return Err(precondition_error(&job.id, precondition, None));
                };
                vec![
                    Compare::mod_revision(key.clone(), CompareOp::Equal, r),
                    Compare::version(key.clone(), CompareOp::Greater, 0),
                ]
            }
            Precondition::Exists => vec![Compare::version(key.clone(), CompareOp::Greater, 0)],
            Precondition::Any => Vec::new(),
        };
        // The revision is the key's mod revision, filled in on every read.
        job.revision = 0;
        let mut reads = Reads::new();
        let stored_at = reads.keys_only(key.clone());
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![TxnOp::put(key, stored::encode(&job)?, None)])
            .or_else(reads.ops());
        let response = self.txn("put job", Kind::Write, txn).await?;
        if response.succeeded() {
            return Ok(stored::revision(
                response.header().map_or(0, |h| h.revision()),
            ));
        }
        let current = Answers::of(&response, &reads)?
            .first(stored_at)
            .map(|kv| stored::revision(kv.mod_revision()));
        Err(precondition_error(&job.id, precondition, current))
    }

    pub(crate) async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>> {
        limits::check_jobs(&jobs, limits::MAX_JOB_BYTES)?;
        let mut encoded = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            // The revision is the key's mod revision, filled in on every read.
            job.revision = 0;
            let value = stored::encode(&job)?;
            encoded.push((job.id, value));
        }
        let chunks = put_chunks(&encoded, self.max_ops());
        let mut revisions = Vec::with_capacity(encoded.len());
        let mut created: Vec<(JobId, i64)> = Vec::new();
        for range in chunks {
            let chunk = &encoded[range];
            let keys: Vec<String> = chunk.iter().map(|(id, _)| self.keys().job(id)).collect();
            let mut reads = Reads::new();
            let stored_at: Vec<ReadAt> = keys.iter().map(|k| reads.keys_only(k.clone())).collect();
            let txn = Txn::new()
                .when(
                    keys.iter()
                        .map(|k| Compare::create_revision(k.clone(), CompareOp::Equal, 0))
                        .collect::<Vec<_>>(),
                )
                .and_then(
                    keys.iter()
                        .zip(chunk)
                        .map(|(k, (_, value))| TxnOp::put(k.clone(), value.clone(), None))
                        .collect::<Vec<_>>(),
                )
                .or_else(reads.ops());
            let failure = match self.txn("put jobs", Kind::Write, txn).await {
                Ok(response) if response.succeeded() => {
                    let revision = response.header().map_or(0, |h| h.revision());
                    created.extend(chunk.iter().map(|(id, _)| (id.clone(), revision)));
                    revisions.extend(chunk.iter().map(|_| stored::revision(revision)));
                    continue;
                }
                Ok(response) => match Answers::of(&response, &reads) {
                    Ok(found) => {
                        let existing = chunk
                            .iter()
                            .zip(&stored_at)
                            .find_map(|((id, _), &at)| found.first(at).map(|kv| (id, kv)));
                        match existing {
                            Some((id, kv)) => CoordError::Conflict {
                                key: Key::Job(id.clone()),
                                expected: "absent".to_owned(),
                                actual: format!("revision {}", stored::revision(kv.mod_revision())),
                            },
                            None => CoordError::unavailable(
                                "etcd: a batch of new jobs was refused although none of them exists",
                            ),
                        }
                    }
                    Err(error) => error,
                },
                // The chunk may have been written (a timeout): take back whatever of it holds our bytes.
                Err(error) if !error.is_certainly_aborted() => {
                    match self.written_by_us(chunk).await {
                        Ok(ours) => created.extend(ours),
                        Err(_) => {
                            // Still take back what is known; the rest stays uncertain.
                            let _ = self.undo(&created).await;
                            return Err(self.undo_failed(error, &created, chunk.len()));
                        }
                    }
                    error
                }
                Err(error) => error,
            };
            return Err(match self.undo(&created).await {
                Ok(()) => failure,
                Err(_) => self.undo_failed(failure, &created, 0),
            });
        }
        Ok(revisions)
    }

    pub(crate) async fn delete_job(
        &self,
        id: &JobId,
        precondition: Precondition,
    ) -> CoordResult<u64> {
        let key = self.keys().job(id);
        let mut compares = vec![Compare::version(key.clone(), CompareOp::Greater, 0)];
        match precondition {
            Precondition::Absent => {
                compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
            }
            Precondition::Revision(r) => {
                let r = i64::try_from(r).unwrap_or(-1);
                compares.push(Compare::mod_revision(key.clone(), CompareOp::Equal, r));
            }
            Precondition::Exists | Precondition::Any => {}
        }
        let mut reads = Reads::new();
        let stored_at = reads.keys_only(key.clone());
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![
                TxnOp::delete(key.clone(), None),
                TxnOp::delete(self.keys().claim(id), None),
                TxnOp::delete(
                    self.keys().runs(id),
                    Some(DeleteOptions::new().with_prefix()),
                ),
                TxnOp::delete(self.keys().run_floor(id), None),
            ])
            .or_else(reads.ops());
        let response = self.txn("delete job", Kind::Write, txn).await?;
        if response.succeeded() {
            return Ok(stored::revision(
                response.header().map_or(0, |h| h.revision()),
            ));
        }
        let current = Answers::of(&response, &reads)?
            .first(stored_at)
            .map(|kv| stored::revision(kv.mod_revision()));
        match current {
            None => Err(CoordError::job_not_found(id)),
            Some(_) => Err(precondition_error(id, precondition, current)),
        }
    }

    pub(crate) async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>> {
        let response = self.get("get job", self.keys().job(id), None).await?;
        response.kvs().first().map(stored::job).transpose()
    }

    pub(crate) async fn list_jobs(&self) -> CoordResult<JobSnapshot> {
        let prefix = self.keys().jobs();
        let end = keys::prefix_end(&prefix);
        let mut jobs = Vec::new();
        let mut from = prefix.into_bytes();
        let mut revision = 0;
        loop {
            // Every page reads the revision of the first one: together, one consistent snapshot.
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE)
                .with_sort(SortTarget::Key, SortOrder::Ascend);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let mut kv = self.client.kv_client();
            let response = self
                .rpc("list jobs", Kind::Read, kv.get(from.clone(), Some(options)))
                .await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            for kv in response.kvs() {
                jobs.push(Arc::new(stored::job(kv)?));
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(JobSnapshot {
            jobs,
            revision: stored::revision(revision),
        })
    }

    pub(crate) async fn watch_jobs(self: &Arc<Self>, after_revision: u64) -> CoordResult<JobWatch> {
        let Some(start) = i64::try_from(after_revision)
            .ok()
            .and_then(|r| r.checked_add(1))
        else {
            return Err(CoordError::Invalid(format!(
                "after_revision: {after_revision}: out of range"
            )));
        };
        let stream = self.open_job_watch(start).await?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(forward_jobs(
            WatchCtx {
                coordinator: Arc::downgrade(self),
                closed: self.closed.clone(),
            },
            stream,
            tx,
            after_revision,
        ));
        Ok(rx)
    }

    /// Opens a job watch starting at `start` and waits until etcd confirms it (or reports compaction).
    pub(crate) async fn open_job_watch(&self, start: i64) -> CoordResult<WatchStream> {
        let mut watcher = self.client.watch_client();
        let options = WatchOptions::new().with_prefix().with_start_revision(start);
        let mut stream = self
            .rpc(
                "watch jobs",
                Kind::Read,
                watcher.watch(self.keys().jobs(), Some(options)),
            )
            .await?;
        let first = self.rpc("watch jobs", Kind::Read, stream.message()).await?;
        match first {
            Some(response) if response.compact_revision() > 0 => Err(CoordError::Compacted {
                requested: stored::revision(start - 1),
                oldest: stored::revision(response.compact_revision() - 1),
            }),
            Some(response) if response.canceled() => Err(CoordError::unavailable(format!(
                "etcd watch jobs: canceled: {}",
                response.cancel_reason()
            ))),
            Some(_) => Ok(stream),
            None => Err(CoordError::unavailable("etcd watch jobs: stream closed")),
        }
    }

    /// The jobs of `chunk` whose key holds exactly the value this call wrote, with their mod revision:
    /// what a write that may have happened did write.
    pub(crate) async fn written_by_us(
        &self,
        chunk: &[(JobId, Vec<u8>)],
    ) -> CoordResult<Vec<(JobId, i64)>> {
        let mut ours = Vec::new();
        for (id, value) in chunk {
            let response = self
                .get("read a new job", self.keys().job(id), None)
                .await?;
            if let Some(kv) = response.kvs().first()
                && kv.value() == value.as_slice()
            {
                ours.push((id.clone(), kv.mod_revision()));
            }
        }
        Ok(ours)
    }

    /// Deletes jobs a failed `put_jobs` created, each only if still at the revision it was created with (a
    /// job changed meanwhile was taken over by another writer and is left), with what a delete of the job
    /// removes besides (claim, runs, floor).
    pub(crate) async fn undo(&self, created: &[(JobId, i64)]) -> CoordResult<()> {
        // One transaction per job: a batch would delete none if one of them had changed. This is the failure
        // path only.
        for (id, revision) in created {
            let key = self.keys().job(id);
            let txn = Txn::new()
                .when(vec![Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    *revision,
                )])
                .and_then(vec![
                    TxnOp::delete(key, None),
                    TxnOp::delete(self.keys().claim(id), None),
                    TxnOp::delete(
                        self.keys().runs(id),
                        Some(DeleteOptions::new().with_prefix()),
                    ),
                    TxnOp::delete(self.keys().run_floor(id), None),
                ]);
            self.txn("undo put jobs", Kind::Write, txn).await?;
        }
        Ok(())
    }

    /// The error of a `put_jobs` whose compensation failed: some of its jobs may be left.
    pub(crate) fn undo_failed(
        &self,
        cause: CoordError,
        created: &[(JobId, i64)],
        unknown: usize,
    ) -> CoordError {
        warn!(%cause, created = created.len(), "put_jobs failed and could not delete what it created");
        CoordError::Unavailable {
            message: format!(
                "etcd put_jobs failed ({cause}), and it could not make sure that none of its jobs remain (of the \
                 {} it had created, plus up to {unknown} whose write may have happened): list them before retrying",
                created.len()
            ),
            certainly_aborted: false,
            source: None,
        }
    }
}

/// Most bytes of job values in one `put_jobs` transaction: below etcd's default `--max-request-bytes`
/// (1.5 MiB) with room for keys and framing.
const PUT_JOBS_TXN_BYTES: usize = 1 << 20;

/// Splits encoded new jobs into transactions of at most `max_ops` jobs (one compare and one put each) and
/// [`PUT_JOBS_TXN_BYTES`] of values (a single larger job, within the job limit, goes alone).
fn put_chunks(jobs: &[(JobId, Vec<u8>)], max_ops: usize) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, value)) in jobs.iter().enumerate() {
        if i > start && (i - start == max_ops || bytes + value.len() > PUT_JOBS_TXN_BYTES) {
            chunks.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += value.len();
    }
    if start < jobs.len() {
        chunks.push(start..jobs.len());
    }
    chunks
}

/// The error of a job write whose `precondition` failed on a job at revision `current` (`None`: absent).
fn precondition_error(id: &JobId, precondition: Precondition, current: Option<u64>) -> CoordError {
    // The compare and the read are one transaction, so the rule holding cannot happen; answer it safely.
    rules::check_precondition(id, precondition, current)
        .err()
        .unwrap_or_else(|| {
            CoordError::unavailable(format!(
                "etcd: the write of job {id} was refused although its precondition holds"
            ))
        })
}

/// What a job watch's forwarding task holds: the coordinator weakly (a watch must not keep a dropped
/// coordinator alive) and its lifetime signal.
struct WatchCtx {
    coordinator: std::sync::Weak<Inner>,
    closed: watch::Receiver<()>,
}

/// Forwards a job watch; when etcd's stream dies, re-opens it from the last revision delivered (a few
/// times, with a short backoff) before ending the channel, after which the caller resumes itself.
async fn forward_jobs(
    mut ctx: WatchCtx,
    mut stream: WatchStream,
    tx: mpsc::Sender<CoordResult<JobEvent>>,
    mut last: u64,
) {
    'stream: loop {
        loop {
            let message = tokio::select! {
                biased;
                _ = ctx.closed.changed() => return,
                () = tx.closed() => return,
                message = stream.message() => message,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) | Err(_) => break,
            };
            if response.compact_revision() > 0 {
                let _ = tx
                    .send(Err(CoordError::Compacted {
                        requested: last,
                        oldest: stored::revision(response.compact_revision() - 1),
                    }))
                    .await;
                return;
            }
            if response.canceled() {
                break;
            }
            let Some(inner) = ctx.coordinator.upgrade() else {
                return;
            };
            let keys = inner.keys.clone();
            drop(inner);
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let item = match event.event_type() {
                    EventType::Put => stored::job(kv).map(|job| JobEvent::Put(Arc::new(job))),
                    EventType::Delete => match keys.job_id(kv.key()) {
                        Some(id) => Ok(JobEvent::Deleted {
                            id,
                            revision: stored::revision(kv.mod_revision()),
                        }),
                        None => Err(crate::error::corrupt(kv.key(), "not a job key")),
                    },
                };
                let failed = item.is_err();
                if let Ok(event) = &item {
                    last = event.revision();
                }
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        }
        // The stream died (connection lost, etcd restarting): re-open it from the last revision delivered.
        for attempt in 0..3u32 {
            tokio::select! {
                biased;
                _ = ctx.closed.changed() => return,
                () = tokio::time::sleep(backoff::RECONNECT.delay(attempt + 2)) => {}
            }
            let Some(inner) = ctx.coordinator.upgrade() else {
                return;
            };
            let reopened = inner.open_job_watch(last as i64 + 1).await;
            drop(inner);
            match reopened {
                Ok(reopened) => {
                    stream = reopened;
                    continue 'stream;
                }
                Err(error @ CoordError::Compacted { .. }) => {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
                Err(error) => debug!(%error, attempt, "re-opening the job watch failed"),
            }
        }
        return;
    }
}
