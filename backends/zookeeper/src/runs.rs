//! Run records: one znode per fire id, `/runs/<job>/<instant>`, created in `multi`s fenced by the session;
//! the history bounded per job.
//!
//! "At most one record per fire id" is the `create` itself: a second create of the same znode fails, also
//! under concurrent writers. `/runs/<job>` holds the job's history floor, the newest instant whose record was
//! dropped: a record at or before it is `Duplicate`, so `Recorded` is answered at most once per fire id, ever.
//! Every record `multi` checks the floor's znode version, so a concurrent trim makes it retry.

use std::collections::{BTreeMap, BTreeSet};

use campanile::coordinator::{CoordError, CoordResult, RecordResult, RunQuery, SessionId};
use campanile::job::JobId;
use campanile::run::RunRecord;
use serde::{Deserialize, Serialize};
use tracing::debug;
use zookeeper_client as zk;

use crate::backoff;
use crate::conn::acls;
use crate::coordinator::Inner;
use crate::error::{Kind, decode, encode, expired, from_zk};
use crate::{limits, paths};

/// The data of `/runs/<job>` when the job is created.
pub(crate) const EMPTY_META: &[u8] = br#"{"floor":null}"#;

/// Bytes of record data per `multi`, well below ZooKeeper's 1 MiB request limit.
const MULTI_BYTES: usize = 512 * 1024;
/// Rounds of re-reading after losing a race (a concurrent record of the same fire id, or a trim).
const ATTEMPTS: u32 = 16;

/// `/runs/<job>`: the history floor.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct RunsMeta {
    floor: Option<i64>,
}

/// What a record call knows about one job's history.
struct History {
    meta: RunsMeta,
    version: i32,
    count: usize,
}

/// One operation of a record `multi`, to tell which one failed.
enum Op {
    Session,
    Floor,
    Create(usize),
}

impl Inner {
    pub(crate) async fn record_runs(
        &self,
        id: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>> {
        limits::check_batch("records", records.len())?;
        records.iter().try_for_each(limits::check_record)?;
        let acting = self.acting(id).await?;
        let client = self.writer(&acting).await?;
        let options = zk::CreateMode::Persistent.with_acls(acls(&self.config));
        let mut results: Vec<Option<RecordResult>> = vec![None; records.len()];
        let mut pending: BTreeMap<JobId, Vec<usize>> = BTreeMap::new();
        for (i, record) in records.iter().enumerate() {
            pending.entry(record.job.clone()).or_default().push(i);
        }
        let mut checked = false;
        for attempt in 0..ATTEMPTS {
            if pending.is_empty() && checked {
                break;
            }
            if attempt > 0 {
                backoff::raced(id.0, attempt - 1).await;
            }
            let histories = self.histories(&client, pending.keys()).await?;
            // Decide each pending record from what was read: duplicate, dropped, or to create.
            let mut creates: BTreeMap<JobId, Vec<(usize, String)>> = BTreeMap::new();
            let mut candidates = Vec::new();
            for (job, indices) in &pending {
                let Some(history) = histories.get(job) else {
                    // The job is gone (deleted while the fire ran): its history went with it.
                    for &i in indices {
                        results[i] = Some(RecordResult::Recorded);
                    }
                    continue;
                };
                let mut seen = BTreeSet::new();
                for &i in indices {
                    let at = records[i].scheduled_ms;
                    if history.meta.floor.is_some_and(|floor| at <= floor) || !seen.insert(at) {
                        results[i] = Some(RecordResult::Duplicate);
                    } else {
                        candidates.push((job.clone(), i, paths::run(job, at)));
                    }
                }
            }
            let exists = self
                .zk("check run records", Kind::Read, async {
                    Ok(futures::future::join_all(
                        candidates
                            .iter()
                            .map(|(_, _, path)| client.check_stat(path)),
                    )
                    .await)
                })
                .await?
                .map_err(|e: zk::Error| from_zk(e, "check run records", Kind::Read))?;
            for ((job, i, path), exists) in candidates.into_iter().zip(exists) {
                match exists {
                    Ok(Some(_)) => results[i] = Some(RecordResult::Duplicate),
                    Ok(None) => creates.entry(job).or_default().push((i, path)),
                    Err(e) => return Err(from_zk(e, &format!("check {path}"), Kind::Read)),
                }
            }
            pending.retain(|job, _| creates.contains_key(job));
            // Group jobs into multis of bounded size; each checks the session and the floors it relies on.
            let mut batches: Vec<Vec<JobId>> = vec![Vec::new()];
            let mut bytes = 0;
            let mut encoded: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
            for (job, items) in &creates {
                let size: usize = items
                    .iter()
                    .map(|(i, _)| {
                        let data = serde_json::to_vec(&records[*i]).unwrap_or_default();
                        let len = data.len() + 100;
                        encoded.insert(*i, data);
                        len
                    })
                    .sum();
                if bytes + size > MULTI_BYTES && batches.last().is_some_and(|b| !b.is_empty()) {
                    batches.push(Vec::new());
                    bytes = 0;
                }
                bytes += size;
                if let Some(batch) = batches.last_mut() {
                    batch.push(job.clone());
                }
            }
            let mut lost = false;
            for batch in batches {
                if batch.is_empty() && checked {
                    continue;
                }
                let mut ops = vec![Op::Session];
                let mut multi = client.new_multi_writer();
                let built: Result<(), zk::Error> = (|| {
                    multi.add_check_version(&paths::session(id), 0)?;
                    for job in &batch {
                        let version = histories.get(job).map_or(0, |h| h.version);
                        multi.add_check_version(&paths::runs(job), version)?;
                        ops.push(Op::Floor);
                        for (i, path) in creates.get(job).into_iter().flatten() {
                            let data = encoded.get(i).map_or(&[][..], Vec::as_slice);
                            multi.add_create(path, data, &options)?;
                            ops.push(Op::Create(*i));
                        }
                    }
                    Ok(())
                })();
                built.map_err(|e| from_zk(e, "record_runs", Kind::Write))?;
                match self.zk("record_runs", Kind::Write, multi.commit()).await? {
                    Ok(_) => {
                        checked = true;
                        for job in &batch {
                            let created = creates.get(job).map_or(0, Vec::len);
                            for (i, _) in creates.get(job).into_iter().flatten() {
                                results[*i] = Some(RecordResult::Recorded);
                            }
                            pending.remove(job);
                            if let Some(history) = histories.get(job) {
                                self.trim_runs(&client, job, history.count + created).await;
                            }
                        }
                    }
                    Err(zk::MultiWriteError::OperationFailed { index, source }) => {
                        match (ops.get(index), source) {
                            (Some(Op::Session), _) => return Err(expired(id)),
                            (Some(Op::Floor), _) => {}
                            (Some(Op::Create(i)), zk::Error::NodeExists) => {
                                // Recorded concurrently by someone else: this one is the duplicate.
                                results[*i] = Some(RecordResult::Duplicate);
                                if let Some(indices) = pending.values_mut().find(|v| v.contains(i))
                                {
                                    indices.retain(|x| x != i);
                                }
                            }
                            (_, source) => return Err(from_zk(source, "record_runs", Kind::Write)),
                        }
                        lost = true;
                        break;
                    }
                    Err(zk::MultiWriteError::RequestFailed { source }) => {
                        return Err(session_error(source, id, "record_runs"));
                    }
                }
            }
            pending.retain(|_, v| !v.is_empty());
            if !lost {
                break;
            }
        }
        if !pending.is_empty() || !checked {
            return Err(CoordError::Unavailable {
                message: format!(
                    "record_runs: lost {ATTEMPTS} races for the same fire ids or floors"
                ),
                certainly_aborted: false,
                source: None,
            });
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(RecordResult::Duplicate))
            .collect())
    }

    /// The history floor and size of each job, for the jobs that exist.
    async fn histories<'a>(
        &self,
        client: &zk::Client,
        jobs: impl Iterator<Item = &'a JobId>,
    ) -> CoordResult<BTreeMap<JobId, History>> {
        let jobs: Vec<&JobId> = jobs.collect();
        let reads = self
            .zk("read run histories", Kind::Read, async {
                Ok(futures::future::join_all(
                    jobs.iter().map(|job| client.get_data(&paths::runs(job))),
                )
                .await)
            })
            .await?
            .map_err(|e: zk::Error| from_zk(e, "read run histories", Kind::Read))?;
        let mut out = BTreeMap::new();
        for (job, read) in jobs.into_iter().zip(reads) {
            let path = paths::runs(job);
            match read {
                Ok((data, stat)) => {
                    out.insert(
                        job.clone(),
                        History {
                            meta: decode(&path, &data)?,
                            version: stat.version,
                            count: usize::try_from(stat.num_children).unwrap_or(0),
                        },
                    );
                }
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(from_zk(e, &format!("read {path}"), Kind::Read)),
            }
        }
        Ok(out)
    }

    /// Drops a job's oldest records once it has more than the limit plus some slack (so that trims are
    /// batched), and raises the floor to the newest dropped instant. Best effort.
    async fn trim_runs(&self, client: &zk::Client, job: &JobId, count: usize) {
        let limit = self.config.history_limit;
        let slack = (limit / 10).max(8);
        if count <= limit + slack {
            return;
        }
        let path = paths::runs(job);
        let read = async {
            let (data, stat) = client.get_data(&path).await?;
            let children = client.list_children(&path).await?;
            Ok::<_, zk::Error>((data, stat, children))
        };
        let Ok(Ok((data, stat, children))) = self.zk("read a run history", Kind::Read, read).await
        else {
            return;
        };
        let Ok(meta) = decode::<RunsMeta>(&path, &data) else {
            return;
        };
        let mut instants: Vec<i64> = children
            .iter()
            .filter_map(|c| paths::parse_instant(c))
            .collect();
        instants.sort_unstable();
        let excess = instants.len().saturating_sub(limit);
        let dropped = &instants[..excess];
        let Some(&newest) = dropped.last() else {
            return;
        };
        let floor = meta.floor.max(Some(newest));
        let Ok(new_meta) = encode("runs meta", &RunsMeta { floor }) else {
            return;
        };
        let mut multi = client.new_multi_writer();
        let built: Result<(), zk::Error> = (|| {
            multi.add_set_data(&path, &new_meta, Some(stat.version))?;
            for &at in dropped {
                multi.add_delete(&paths::run(job, at), None)?;
            }
            Ok(())
        })();
        if built.is_err() {
            return;
        }
        match self
            .zk("trim a run history", Kind::Write, multi.commit())
            .await
        {
            Ok(Ok(_)) => debug!(job = %job, dropped = excess, "run history trimmed"),
            Ok(Err(error)) => debug!(job = %job, %error, "trimming a run history failed"),
            Err(error) => debug!(job = %job, %error, "trimming a run history failed"),
        }
    }

    pub(crate) async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>> {
        if let (Some(from), Some(before)) = (query.from_ms, query.before_ms)
            && from >= before
        {
            return Ok(Vec::new());
        }
        let client = self.shared.reader().await?;
        let path = paths::runs(job);
        let children = match self
            .zk("list run records", Kind::Read, client.list_children(&path))
            .await?
        {
            Ok(children) => children,
            Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(from_zk(e, &format!("list {path}"), Kind::Read)),
        };
        let mut instants = Vec::with_capacity(children.len());
        for child in &children {
            let at = paths::parse_instant(child).ok_or_else(|| {
                crate::error::corrupt(&format!("{path}/{child}"), "not a run record name")
            })?;
            if query.from_ms.is_none_or(|from| at >= from)
                && query.before_ms.is_none_or(|before| at < before)
            {
                instants.push(at);
            }
        }
        instants.sort_unstable_by(|a, b| b.cmp(a));
        instants.truncate(query.limit);
        let mut out = Vec::with_capacity(instants.len());
        for chunk in instants.chunks(256) {
            let reads = self
                .zk("read run records", Kind::Read, async {
                    Ok(futures::future::join_all(
                        chunk
                            .iter()
                            .map(|&at| client.get_data(&paths::run(job, at))),
                    )
                    .await)
                })
                .await?
                .map_err(|e: zk::Error| from_zk(e, "read run records", Kind::Read))?;
            for (&at, read) in chunk.iter().zip(reads) {
                let record_path = paths::run(job, at);
                match read {
                    Ok((data, _)) => out.push(decode(&record_path, &data)?),
                    // Trimmed since the listing.
                    Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(from_zk(e, &format!("read {record_path}"), Kind::Read)),
                }
            }
        }
        Ok(out)
    }
}

/// A failed request of session `id`: `SessionExpired` if the session's ZooKeeper session is gone.
pub(crate) fn session_error(error: zk::Error, id: SessionId, what: &str) -> CoordError {
    match error {
        zk::Error::SessionExpired | zk::Error::ClientClosed => expired(id),
        other => from_zk(other, what, Kind::Write),
    }
}
