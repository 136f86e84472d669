//! Run records: one key per fire id (`runs/<job>/<instant>`), created only if absent, fenced by the session
//! key, the job key and the job's history floor (`run_floor/<job>`: instants at or before it were trimmed and
//! count as recorded). History is trimmed per job in steps of a tenth of `history_limit`.

use std::collections::{HashMap, HashSet};

use campanile::coordinator::{CoordResult, RecordResult, RunQuery, SessionId};
use campanile::job::JobId;
use campanile::run::RunRecord;
use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, SortOrder, SortTarget, Txn, TxnOp,
};
use tracing::warn;

use crate::backoff;
use crate::coordinator::{ATTEMPTS, Inner, contended, distinct, expired};
use crate::error::Kind;
use crate::txn::{Answers, ReadAt, Reads};
use crate::{keys, limits, stored};

impl Inner {
    pub(crate) async fn record_runs(
        &self,
        session: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>> {
        limits::check_batch("records", records.len())?;
        records.iter().try_for_each(limits::check_record)?;
        if !self.session_alive(session).await? {
            return Err(expired(session));
        }
        // Chunks whose reads and compares fit one transaction: one per transaction, two per job, one per
        // record.
        let budget = self.max_ops().max(4);
        let mut chunks: Vec<Vec<RunRecord>> = Vec::new();
        let mut current: Vec<RunRecord> = Vec::new();
        let mut jobs_in_current: HashSet<JobId> = HashSet::new();
        for record in records {
            let new_job = !jobs_in_current.contains(&record.job);
            let cost = 1 + 2 * (jobs_in_current.len() + usize::from(new_job)) + current.len() + 1;
            if cost > budget && !current.is_empty() {
                chunks.push(std::mem::take(&mut current));
                jobs_in_current.clear();
            }
            jobs_in_current.insert(record.job.clone());
            current.push(record);
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        let mut taken = HashSet::new();
        let mut results = Vec::new();
        let mut touched: Vec<JobId> = Vec::new();
        for chunk in &chunks {
            let answers = self.record_chunk(session, chunk, &mut taken).await?;
            for (record, answer) in chunk.iter().zip(&answers) {
                if *answer == RecordResult::Recorded && !touched.contains(&record.job) {
                    touched.push(record.job.clone());
                }
            }
            results.extend(answers);
        }
        let touched: Vec<&JobId> = touched.iter().collect();
        if let Err(error) = self.trim(&touched).await {
            // The records are stored; trimming is retried by the next call that records for the job.
            warn!(%error, "trimming run history failed");
        }
        Ok(results)
    }

    /// Records a few run records (at most one transaction's worth); `taken` holds the fire ids this call
    /// already answered `Recorded`.
    async fn record_chunk(
        &self,
        session: SessionId,
        records: &[RunRecord],
        taken: &mut HashSet<(JobId, i64)>,
    ) -> CoordResult<Vec<RecordResult>> {
        let jobs: Vec<&JobId> = distinct(records.iter().map(|r| &r.job));
        for attempt in 0..ATTEMPTS {
            let mut reads = Reads::new();
            let session_key = reads.count(self.keys().session(session));
            let job_keys: Vec<(ReadAt, ReadAt)> = jobs
                .iter()
                .map(|job| {
                    (
                        reads.keys_only(self.keys().job(job)),
                        reads.get(self.keys().run_floor(job), None),
                    )
                })
                .collect();
            let run_keys: Vec<ReadAt> = records
                .iter()
                .map(|r| reads.count(self.keys().run(&r.job, r.scheduled_ms)))
                .collect();
            let response = self
                .txn("read runs", Kind::Read, Txn::new().and_then(reads.ops()))
                .await?;
            let answers = Answers::of(&response, &reads)?;
            if answers.count(session_key) == 0 {
                return Err(expired(session));
            }
            // Per job: (job key mod revision if it exists, floor, floor key mod revision).
            let mut seen: HashMap<&JobId, (Option<i64>, Option<i64>, i64)> = HashMap::new();
            for (job, &(job_at, floor_at)) in jobs.iter().zip(&job_keys) {
                let job_revision = answers.first(job_at).map(KeyValue::mod_revision);
                let (floor, floor_revision) = match answers.first(floor_at) {
                    Some(kv) => (
                        Some(stored::decode::<i64>(kv.key(), kv.value())?),
                        kv.mod_revision(),
                    ),
                    None => (None, 0),
                };
                seen.insert(*job, (job_revision, floor, floor_revision));
            }
            let mut local = HashSet::new();
            let mut results = Vec::with_capacity(records.len());
            let mut compares = vec![self.session_exists(session)];
            let mut puts = Vec::new();
            let mut fenced_jobs = HashSet::new();
            for (record, &run_at) in records.iter().zip(&run_keys) {
                let (job_revision, floor, floor_revision) = seen[&record.job];
                let Some(job_revision) = job_revision else {
                    // The job is gone (deleted while the fire ran): its history went with it.
                    results.push(RecordResult::Recorded);
                    continue;
                };
                let exists = answers.count(run_at) > 0;
                let fire = (record.job.clone(), record.scheduled_ms);
                let duplicate = exists
                    || floor.is_some_and(|f| record.scheduled_ms <= f)
                    || taken.contains(&fire)
                    || !local.insert(fire);
                if duplicate {
                    results.push(RecordResult::Duplicate);
                    continue;
                }
                results.push(RecordResult::Recorded);
                let key = self.keys().run(&record.job, record.scheduled_ms);
                compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
                puts.push(TxnOp::put(key, stored::encode(record)?, None));
                if fenced_jobs.insert(&record.job) {
                    compares.push(Compare::mod_revision(
                        self.keys().job(&record.job),
                        CompareOp::Equal,
                        job_revision,
                    ));
                    compares.push(Compare::mod_revision(
                        self.keys().run_floor(&record.job),
                        CompareOp::Equal,
                        floor_revision,
                    ));
                }
            }
            if puts.is_empty() {
                return Ok(results);
            }
            let txn = Txn::new().when(compares).and_then(puts);
            if self.txn("record runs", Kind::Write, txn).await?.succeeded() {
                taken.extend(local);
                return Ok(results);
            }
            backoff::raced(session, attempt).await;
        }
        Err(contended("record_runs"))
    }

    /// Drops the oldest run records of `jobs` that hold more than `history_limit` plus a tenth, down to
    /// `history_limit`, and raises their floors. Trimming in steps of a tenth keeps it rare: one extra
    /// transaction per job per `history_limit / 10` records.
    async fn trim(&self, jobs: &[&JobId]) -> CoordResult<()> {
        let limit = self.config.history_limit;
        let slack = (limit / 10).max(1);
        for chunk in jobs.chunks(self.max_ops().max(1)) {
            let mut reads = Reads::new();
            let counts: Vec<ReadAt> = chunk
                .iter()
                .map(|job| {
                    reads.get(
                        self.keys().runs(job),
                        Some(GetOptions::new().with_prefix().with_count_only()),
                    )
                })
                .collect();
            let response = self
                .txn("count runs", Kind::Read, Txn::new().and_then(reads.ops()))
                .await?;
            let answers = Answers::of(&response, &reads)?;
            for (job, &at) in chunk.iter().zip(&counts) {
                let count = answers.count(at).max(0) as usize;
                if count > limit + slack {
                    self.trim_job(job, count - limit).await?;
                }
            }
        }
        Ok(())
    }

    async fn trim_job(&self, job: &JobId, excess: usize) -> CoordResult<()> {
        let prefix = self.keys().runs(job);
        let oldest = self
            .get(
                "read runs",
                prefix.clone(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_keys_only()
                        .with_sort(SortTarget::Key, SortOrder::Ascend)
                        .with_limit(excess as i64),
                ),
            )
            .await?;
        let Some(last) = oldest.kvs().last() else {
            return Ok(());
        };
        let Some(floor_ms) = keys::parse_instant(last.key()) else {
            return Err(crate::error::corrupt(last.key(), "not a run record key"));
        };
        let floor_key = self.keys().run_floor(job);
        let floor = self.get("read run floor", floor_key.clone(), None).await?;
        let (old_floor, floor_revision) = match floor.kvs().first() {
            Some(kv) => (
                Some(stored::decode::<i64>(kv.key(), kv.value())?),
                kv.mod_revision(),
            ),
            None => (None, 0),
        };
        let mut end = last.key().to_vec();
        end.push(0);
        let txn = Txn::new()
            .when(vec![
                Compare::version(self.keys().job(job), CompareOp::Greater, 0),
                Compare::mod_revision(floor_key.clone(), CompareOp::Equal, floor_revision),
            ])
            .and_then(vec![
                TxnOp::delete(prefix, Some(DeleteOptions::new().with_range(end))),
                TxnOp::put(
                    floor_key,
                    stored::encode(&old_floor.max(Some(floor_ms)))?,
                    None,
                ),
            ]);
        // A failed compare means another writer trimmed or the job is gone: nothing left to do.
        self.txn("trim runs", Kind::Write, txn).await?;
        Ok(())
    }

    pub(crate) async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        if let (Some(from), Some(before)) = (query.from_ms, query.before_ms)
            && from >= before
        {
            return Ok(Vec::new());
        }
        let prefix = self.keys().runs(job);
        let start = match query.from_ms {
            Some(from) => self.keys().run(job, from),
            None => prefix.clone(),
        };
        let end = match query.before_ms {
            Some(before) => self.keys().run(job, before).into_bytes(),
            None => keys::prefix_end(&prefix),
        };
        let options = GetOptions::new()
            .with_range(end)
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(i64::try_from(query.limit).unwrap_or(i64::MAX));
        let response = self.get("read runs", start, Some(options)).await?;
        response
            .kvs()
            .iter()
            .map(|kv| stored::decode(kv.key(), kv.value()))
            .collect()
    }
}
