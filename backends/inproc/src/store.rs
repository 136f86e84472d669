//! `Store`: the redb file of durable mode. It loads the durable state at open and writes each committed
//! batch of [`Change`]s in one write transaction. The table layout is documented in the crate docs.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use campanile::coordinator::{Assignment, CoordError, CoordResult, JobClaim, NodeId};
use campanile::job::{Job, JobId};
use campanile::run::RunRecord;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::change::Change;
use crate::error::InprocError;
use crate::state::{Durable, JobEntry};

/// The storage layout this build reads and writes (meta key `format`).
pub(crate) const FORMAT_VERSION: u64 = 1;

/// Table names (also named in `InprocError::Corrupt`).
mod name {
    pub(super) const META: &str = "meta";
    pub(super) const JOBS: &str = "jobs";
    pub(super) const OWNERS: &str = "owners";
    pub(super) const CLAIMS: &str = "claims";
    pub(super) const RUNS: &str = "runs";
    pub(super) const RUN_FLOORS: &str = "run_floors";
}

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(name::META);
const JOBS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(name::JOBS);
const OWNERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(name::OWNERS);
const CLAIMS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(name::CLAIMS);
const RUNS: TableDefinition<'_, (&str, i64), &[u8]> = TableDefinition::new(name::RUNS);
const RUN_FLOORS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(name::RUN_FLOORS);

/// Keys of the `meta` table.
const FORMAT: &str = "format";
const REVISION: &str = "revision";
const LEADER_EPOCH: &str = "leader_epoch";
const SESSION_ID: &str = "session_id";
const ASSIGNMENT: &str = "assignment";

/// The assignment without its owners (those are rows of the `owners` table).
#[derive(Debug, Serialize, Deserialize)]
struct AssignmentHead {
    epoch: u64,
    version: u64,
}

/// An open redb file.
pub(crate) struct Store {
    /// Shared with the history store (`history_*` tables of the same file).
    db: Arc<Database>,
    path: PathBuf,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the file at `path` and loads what it holds.
    ///
    /// The integrity of the whole file is checked at open: a damaged file fails with an error rather than
    /// being trusted (a plain redb open may panic on one), and everything is read at open anyway.
    pub(crate) fn open(path: &Path) -> Result<(Self, Durable), InprocError> {
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|source| InprocError::Open {
                path: path.to_owned(),
                source,
            })?;
        let store = Self {
            db: Arc::new(db),
            path: path.to_owned(),
        };
        store.init()?;
        let durable = store.load()?;
        Ok((store, durable))
    }

    /// The open database, for the history store that keeps its tables in the same file.
    pub(crate) fn database(&self) -> Arc<Database> {
        Arc::clone(&self.db)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables of a new file and checks the format of an existing one.
    fn init(&self) -> Result<(), InprocError> {
        let storage = |source: redb::Error| InprocError::Storage {
            path: self.path.clone(),
            source,
        };
        let txn = self.db.begin_write().map_err(|e| storage(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| storage(e.into()))?;
            let found = meta
                .get(FORMAT)
                .map_err(|e| storage(e.into()))?
                .map(|value| value.value().to_vec());
            match found {
                Some(found) => {
                    let found: u64 = self.decode(name::META, FORMAT, &found)?;
                    if found != FORMAT_VERSION {
                        return Err(InprocError::UnsupportedFormat {
                            path: self.path.clone(),
                            found,
                            supported: FORMAT_VERSION,
                        });
                    }
                }
                None => {
                    // A number's JSON form is its decimal text.
                    let format = FORMAT_VERSION.to_string();
                    meta.insert(FORMAT, format.as_bytes())
                        .map_err(|e| storage(e.into()))?;
                }
            }
            // Opening a table in a write transaction creates it, so that reads below find every table.
            for table in [JOBS, OWNERS, CLAIMS, RUN_FLOORS] {
                txn.open_table(table).map_err(|e| storage(e.into()))?;
            }
            txn.open_table(RUNS).map_err(|e| storage(e.into()))?;
        }
        txn.commit().map_err(|e| storage(e.into()))
    }

    /// Reads the durable state.
    fn load(&self) -> Result<Durable, InprocError> {
        let storage = |source: redb::Error| InprocError::Storage {
            path: self.path.clone(),
            source,
        };
        let txn = self.db.begin_read().map_err(|e| storage(e.into()))?;
        let mut durable = Durable::default();

        let meta = txn.open_table(META).map_err(|e| storage(e.into()))?;
        let counter = |key: &str| -> Result<u64, InprocError> {
            match meta.get(key).map_err(|e| storage(e.into()))? {
                Some(value) => self.decode(name::META, key, value.value()),
                None => Ok(0),
            }
        };
        durable.revision = counter(REVISION)?;
        durable.leader_epoch = counter(LEADER_EPOCH)?;
        durable.last_session = counter(SESSION_ID)?;
        let head: Option<AssignmentHead> =
            match meta.get(ASSIGNMENT).map_err(|e| storage(e.into()))? {
                Some(value) => Some(self.decode(name::META, ASSIGNMENT, value.value())?),
                None => None,
            };

        let jobs = txn.open_table(JOBS).map_err(|e| storage(e.into()))?;
        for row in jobs.iter().map_err(|e| storage(e.into()))? {
            let (key, value) = row.map_err(|e| storage(e.into()))?;
            let id = self.job_id(name::JOBS, key.value())?;
            let job: Job = self.decode(name::JOBS, key.value(), value.value())?;
            if job.id != id {
                return Err(self.corrupt(name::JOBS, key.value(), format!("holds job {}", job.id)));
            }
            durable.jobs.insert(id, JobEntry::new(Arc::new(job)));
        }

        let claims = txn.open_table(CLAIMS).map_err(|e| storage(e.into()))?;
        for row in claims.iter().map_err(|e| storage(e.into()))? {
            let (key, value) = row.map_err(|e| storage(e.into()))?;
            let id = self.job_id(name::CLAIMS, key.value())?;
            let claim: JobClaim = self.decode(name::CLAIMS, key.value(), value.value())?;
            match durable.jobs.get_mut(&id) {
                Some(entry) => entry.claim = Some(claim),
                None => {
                    warn!(path = %self.path.display(), job = %id, "ignoring the claim of a missing job")
                }
            }
        }

        let runs = txn.open_table(RUNS).map_err(|e| storage(e.into()))?;
        for row in runs.iter().map_err(|e| storage(e.into()))? {
            let (key, value) = row.map_err(|e| storage(e.into()))?;
            let (job, scheduled_ms) = key.value();
            let shown = format!("({job}, {scheduled_ms})");
            let id = self.job_id(name::RUNS, job)?;
            let record: RunRecord = self.decode(name::RUNS, &shown, value.value())?;
            if record.job != id || record.scheduled_ms != scheduled_ms {
                return Err(self.corrupt(
                    name::RUNS,
                    &shown,
                    format!("holds {}", record.fire_id()),
                ));
            }
            match durable.jobs.get_mut(&id) {
                Some(entry) => {
                    entry.runs.insert(scheduled_ms, record);
                }
                None => {
                    warn!(path = %self.path.display(), job = %id, "ignoring a run record of a missing job")
                }
            }
        }

        let floors = txn.open_table(RUN_FLOORS).map_err(|e| storage(e.into()))?;
        for row in floors.iter().map_err(|e| storage(e.into()))? {
            let (key, value) = row.map_err(|e| storage(e.into()))?;
            let id = self.job_id(name::RUN_FLOORS, key.value())?;
            let floor: i64 = self.decode(name::RUN_FLOORS, key.value(), value.value())?;
            if let Some(entry) = durable.jobs.get_mut(&id) {
                entry.run_floor = Some(floor);
            }
        }

        if let Some(head) = head {
            let mut owners = BTreeMap::new();
            let table = txn.open_table(OWNERS).map_err(|e| storage(e.into()))?;
            for row in table.iter().map_err(|e| storage(e.into()))? {
                let (key, value) = row.map_err(|e| storage(e.into()))?;
                let id = self.job_id(name::OWNERS, key.value())?;
                let node: NodeId = self.decode(name::OWNERS, key.value(), value.value())?;
                owners.insert(id, node);
            }
            durable.assignment = Some(Assignment {
                epoch: head.epoch,
                version: head.version,
                owners,
            });
        }
        Ok(durable)
    }

    /// Writes `changes` in one transaction (volatile changes are skipped; nothing is written if none is
    /// durable). `previous` is the assignment before these changes, to write only the owners that differ.
    ///
    /// On error nothing of the batch is applied in memory. An error before the commit certainly aborted the
    /// write; an error of the commit itself may have reached the disk, so it says `certainly_aborted: false`
    /// (after an IO error redb refuses further writes until the file is opened again).
    pub(crate) fn write(
        &self,
        changes: &[Change],
        previous: Option<&Assignment>,
    ) -> CoordResult<()> {
        if !changes.iter().any(Change::is_durable) {
            return Ok(());
        }
        let txn = self
            .db
            .begin_write()
            .map_err(|e| self.unavailable(WriteError::Redb(e.into()), true))?;
        if let Err(e) = stage(&txn, changes, previous) {
            // Dropping an uncommitted transaction aborts it too; an abort error adds nothing to `e`.
            let _ = txn.abort();
            return Err(self.unavailable(e, true));
        }
        txn.commit()
            .map_err(|e| self.unavailable(WriteError::Redb(e.into()), false))
    }

    fn unavailable(&self, e: WriteError, certainly_aborted: bool) -> CoordError {
        error!(path = %self.path.display(), error = %e, certainly_aborted, "inproc store write failed");
        let message = format!("inproc store {}: {e}", self.path.display());
        CoordError::unavailable_from(message, certainly_aborted, e)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        table: &'static str,
        key: &str,
        bytes: &[u8],
    ) -> Result<T, InprocError> {
        serde_json::from_slice(bytes).map_err(|e| self.corrupt(table, key, e.to_string()))
    }

    fn job_id(&self, table: &'static str, key: &str) -> Result<JobId, InprocError> {
        JobId::new(key).map_err(|e| self.corrupt(table, key, e.to_string()))
    }

    fn corrupt(&self, table: &'static str, key: &str, reason: String) -> InprocError {
        InprocError::Corrupt {
            path: self.path.clone(),
            table,
            key: key.to_owned(),
            reason,
        }
    }
}

/// Why a write transaction failed.
#[derive(Debug)]
enum WriteError {
    Redb(redb::Error),
    Encode(serde_json::Error),
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WriteError::Redb(e) => Some(e),
            WriteError::Encode(e) => Some(e),
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Redb(e) => write!(f, "{e}"),
            WriteError::Encode(e) => write!(f, "cannot encode a value: {e}"),
        }
    }
}

impl From<redb::StorageError> for WriteError {
    fn from(e: redb::StorageError) -> Self {
        WriteError::Redb(e.into())
    }
}

impl From<redb::TableError> for WriteError {
    fn from(e: redb::TableError) -> Self {
        WriteError::Redb(e.into())
    }
}

/// A value as stored: JSON.
fn try_encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WriteError> {
    serde_json::to_vec(value).map_err(WriteError::Encode)
}

/// Stages `changes` in `txn`.
fn stage(
    txn: &WriteTransaction,
    changes: &[Change],
    previous: Option<&Assignment>,
) -> Result<(), WriteError> {
    let mut meta = txn.open_table(META)?;
    let mut jobs = txn.open_table(JOBS)?;
    let mut owners = txn.open_table(OWNERS)?;
    let mut claims = txn.open_table(CLAIMS)?;
    let mut runs = txn.open_table(RUNS)?;
    let mut floors = txn.open_table(RUN_FLOORS)?;
    let mut previous = previous;
    for change in changes {
        match change {
            Change::PutJob(job) => {
                jobs.insert(job.id.as_str(), try_encode(&**job)?.as_slice())?;
                meta.insert(REVISION, try_encode(&job.revision)?.as_slice())?;
            }
            Change::DeleteJob { id, revision } => {
                let id = id.as_str();
                jobs.remove(id)?;
                claims.remove(id)?;
                floors.remove(id)?;
                runs.retain_in((id, i64::MIN)..=(id, i64::MAX), |_, _| false)?;
                meta.insert(REVISION, try_encode(revision)?.as_slice())?;
            }
            Change::Assignment(assignment) => {
                // Write the difference only: a rebalance moves few jobs, an assignment may hold millions.
                let before = previous.map(|p| &p.owners);
                if let Some(before) = before {
                    for job in before
                        .keys()
                        .filter(|j| !assignment.owners.contains_key(*j))
                    {
                        owners.remove(job.as_str())?;
                    }
                }
                for (job, node) in &assignment.owners {
                    if before.and_then(|b| b.get(job)) != Some(node) {
                        owners.insert(job.as_str(), try_encode(node)?.as_slice())?;
                    }
                }
                let head = AssignmentHead {
                    epoch: assignment.epoch,
                    version: assignment.version,
                };
                meta.insert(ASSIGNMENT, try_encode(&head)?.as_slice())?;
                previous = Some(assignment);
            }
            Change::Claim { job, claim } => {
                claims.insert(job.as_str(), try_encode(claim)?.as_slice())?;
            }
            Change::PutRun(record) => {
                let key = (record.job.as_str(), record.scheduled_ms);
                runs.insert(key, try_encode(record)?.as_slice())?;
            }
            Change::DropRun { job, scheduled_ms } => {
                runs.remove((job.as_str(), *scheduled_ms))?;
            }
            Change::RunFloor { job, floor_ms } => {
                floors.insert(job.as_str(), try_encode(floor_ms)?.as_slice())?;
            }
            Change::LeaderEpoch(epoch) => {
                meta.insert(LEADER_EPOCH, try_encode(epoch)?.as_slice())?;
            }
            Change::SessionCounter(last) => {
                meta.insert(SESSION_ID, try_encode(last)?.as_slice())?;
            }
            Change::OpenSession { .. }
            | Change::KeepAlive { .. }
            | Change::Drain(_)
            | Change::EndSession(_)
            | Change::Leader(_) => {}
        }
    }
    Ok(())
}
