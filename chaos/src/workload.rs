//! The workload: jobs every second, every few seconds, every minute or two, one-shots, and during the run a
//! seeded stream of creates, schedule updates, pauses, resumes and deletes. Every change is logged with the
//! time the API took it, for the checker; every target appends `CAMPANILE_FIRE_ID CAMPANILE_NODE_ID` to the
//! ledger.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::bail;
use rand::Rng;
use rand::rngs::StdRng;
use reqwest::Method;
use serde_json::{Value, json};

use crate::api::Api;
use crate::model::{Change, JobLog, Record, Sched, now_ms};

/// Where every job stands, and everything collected.
pub struct Workload {
    /// Change logs by job id.
    pub logs: BTreeMap<String, JobLog>,
    /// Records by (job, scheduled instant): the newest copy read.
    pub records: HashMap<(String, i64), Record>,
    ledger: PathBuf,
    next_id: usize,
}

/// The schedules updates switch between, besides the job's own kind.
const PERIODS_S: [i64; 6] = [1, 2, 3, 5, 7, 10];

/// How far before its last collection a job's records are read again. A record may be written long after its
/// instant: a successor records a predecessor's unsettled instants `in_doubt` once the coordinator answers it,
/// which under coordinator faults took over a minute (etcd, seed 3: a job's instants of 22:10:18–22:10:51 were
/// settled again and again until 22:12:00, and the checker found them without a record, as a window of one
/// minute before a collection at 22:11:51 leaves them). Five minutes is 300 records of an every-second job, well
/// within the history a coordinator keeps.
const COLLECT_LOOKBACK_MS: i64 = 300_000;

impl Workload {
    /// An empty workload whose targets append to `ledger`.
    pub fn new(ledger: &Path) -> Workload {
        Workload {
            logs: BTreeMap::new(),
            records: HashMap::new(),
            ledger: ledger.to_owned(),
            next_id: 0,
        }
    }

    fn job_json(&self, id: &str, sched: Sched) -> Value {
        json!({
            "id": id,
            "name": id,
            "schedule": sched.to_api(),
            "target": {
                "type": "command",
                "argv": ["sh", "-c", format!("echo \"$CAMPANILE_FIRE_ID $CAMPANILE_NODE_ID\" >> {}", self.ledger.display())],
                "timeout": "10s",
            },
        })
    }

    /// A schedule for a new job: 45 % every second, 25 % every few seconds, 15 % every minute or two,
    /// 15 % one instant between 20 s from now and `until_ms`.
    pub fn draw_schedule(rng: &mut StdRng, until_ms: i64) -> Sched {
        let roll = rng.random_range(0..100);
        if roll < 45 {
            Sched::Every(1000)
        } else if roll < 70 {
            Sched::Every(PERIODS_S[rng.random_range(1..PERIODS_S.len())] * 1000)
        } else if roll < 85 {
            Sched::Every(if rng.random_bool(0.5) {
                60_000
            } else {
                120_000
            })
        } else {
            let now = now_ms();
            let at = rng.random_range(now + 20_000..until_ms.max(now + 21_000));
            Sched::At(at / 1000 * 1000)
        }
    }

    /// A new job id.
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("j{:04}", self.next_id)
    }

    /// Creates job `id` with `sched`.
    pub async fn create(&mut self, api: &Api, id: &str, sched: Sched) -> anyhow::Result<()> {
        let body = self.job_json(id, sched);
        let sent = now_ms();
        let (status, answer) = api.send(Method::POST, "/v1/jobs", Some(&body)).await?;
        // 409: an earlier attempt that seemed to fail was taken.
        if status != 201 && status != 409 {
            bail!("create {id}: {status} {answer}");
        }
        let at = (sent + now_ms()) / 2;
        self.logs.insert(
            id.to_owned(),
            JobLog {
                id: id.to_owned(),
                changes: vec![(at, Change::Create(sched))],
                collected_ms: at,
            },
        );
        Ok(())
    }

    fn live(&self) -> impl Iterator<Item = &JobLog> {
        self.logs
            .values()
            .filter(|j| !j.changes.iter().any(|(_, c)| *c == Change::Delete))
    }

    fn state(log: &JobLog) -> (Option<Sched>, bool) {
        let mut sched = None;
        let mut paused = false;
        for (_, change) in &log.changes {
            match change {
                Change::Create(s) | Change::Update(s) => sched = Some(*s),
                Change::Pause => paused = true,
                Change::Resume => paused = false,
                Change::Delete => {}
            }
        }
        (sched, paused)
    }

    /// One change drawn from `rng`: create (20 %), update (30 %), pause or resume (35 %: whichever applies),
    /// delete (15 %).
    /// Returns what it did.
    pub async fn mutate(
        &mut self,
        api: &Api,
        rng: &mut StdRng,
        until_ms: i64,
    ) -> anyhow::Result<String> {
        let roll = rng.random_range(0..100);
        let live: Vec<String> = self.live().map(|j| j.id.clone()).collect();
        let pick = rng.random_range(0..live.len().max(1));
        let sched = Self::draw_schedule(rng, until_ms);
        if roll < 20 || live.is_empty() {
            let id = self.new_id();
            self.create(api, &id, sched).await?;
            return Ok(format!("create {id} {}", sched.to_api()));
        }
        let id = live[pick].clone();
        let (current, paused) = Self::state(&self.logs[&id]);
        let (method, path, body, change) = if roll < 50 {
            // Another period, or the same kind of one-shot later.
            let new = match (current, sched) {
                (Some(Sched::Every(_)), Sched::At(_)) => {
                    Sched::Every(PERIODS_S[pick % PERIODS_S.len()] * 1000)
                }
                (_, s) => s,
            };
            // A merge patch of the schedule alone: a PUT of the whole job would also resume a paused one.
            let patch = json!({ "schedule": new.to_api() });
            (
                Method::PATCH,
                format!("/v1/jobs/{id}"),
                Some(patch),
                Change::Update(new),
            )
        } else if roll < 85 && !paused {
            (
                Method::POST,
                format!("/v1/jobs/{id}/pause"),
                None,
                Change::Pause,
            )
        } else if roll < 85 {
            (
                Method::POST,
                format!("/v1/jobs/{id}/resume"),
                None,
                Change::Resume,
            )
        } else {
            // Read its history first: a delete removes it.
            self.collect(api, &id).await?;
            (
                Method::DELETE,
                format!("/v1/jobs/{id}"),
                None,
                Change::Delete,
            )
        };
        let sent = now_ms();
        let (status, answer) = api.send(method, &path, body.as_ref()).await?;
        let ok = match change {
            Change::Delete => status == 204 || status == 200 || status == 404,
            _ => status == 200 || status == 201 || status == 204,
        };
        if !ok {
            bail!("{path}: {status} {answer}");
        }
        let at = (sent + now_ms()) / 2;
        let log = self.logs.get_mut(&id).expect("a live job has a log");
        log.changes.push((at, change));
        Ok(format!("{change:?} {id}"))
    }

    /// Reads the records of job `id` scheduled since [`COLLECT_LOOKBACK_MS`] before its last collection.
    pub async fn collect(&mut self, api: &Api, id: &str) -> anyhow::Result<()> {
        let Some(log) = self.logs.get(id) else {
            return Ok(());
        };
        let since = log
            .changes
            .first()
            .map_or(0, |(t, _)| *t - 2_000)
            .max(log.collected_ms - COLLECT_LOOKBACK_MS);
        let started = now_ms();
        let mut before: Option<i64> = None;
        loop {
            let mut path = format!("/v1/jobs/{id}/runs?limit=1000&from={since}");
            if let Some(b) = before {
                path.push_str(&format!("&before={b}"));
            }
            let (status, page) = api.send(Method::GET, &path, None).await?;
            if status == 404 {
                return Ok(());
            }
            if status != 200 {
                bail!("{path}: {status} {page}");
            }
            let runs: Vec<Record> = serde_json::from_value(page["runs"].clone())?;
            for record in runs {
                self.records
                    .insert((record.job.clone(), record.scheduled_ms), record);
            }
            match page["next_before"].as_i64() {
                Some(b) if Some(b) != before => before = Some(b),
                _ => break,
            }
        }
        if let Some(log) = self.logs.get_mut(id) {
            log.collected_ms = started;
        }
        Ok(())
    }

    /// The ids of jobs not deleted.
    pub fn live_ids(&self) -> Vec<String> {
        self.live().map(|j| j.id.clone()).collect()
    }
}
