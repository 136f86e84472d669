//! The assignment: `/assignment` holds the published `Assignment` (epoch, version, owners), with the owners
//! moved to `/assignment-chunks/<version>-<i>` when they do not fit one znode.
//!
//! A publication writes its chunks first, then flips `/assignment` in one `multi` that checks the leader's
//! session and election candidate (its term) and compare-and-sets `/assignment`'s znode version, and deletes
//! older chunks. Readers read `/assignment`, then its chunks; a chunk missing means a newer publication
//! replaced it, and the read starts over. Claims fence on `/assignment`'s znode version.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::{Assignment, CoordError, CoordResult, NodeId, SessionId, rules};
use campanile::job::JobId;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::conn::{Shared, acls};
use crate::coordinator::Inner;
use crate::error::{Kind, decode, encode, expired, from_zk};
use crate::paths;
use crate::runs::session_error;

/// Bytes of owners per znode, well below ZooKeeper's 1 MiB limit.
const CHUNK_BYTES: usize = 512 * 1024;
/// Rounds of re-reading when a publication or a read races another publication.
const ATTEMPTS: u32 = 16;

/// The newest assignment seen, with the znode version of `/assignment` it was read at.
pub(crate) type Seen = (i32, Option<Arc<Assignment>>);
/// The coordinator's cache of [`Seen`], shared with the watch that keeps it fresh.
pub(crate) type Cache = Arc<std::sync::Mutex<Option<Seen>>>;

/// `/assignment`: the assignment, its owners inline or in `chunks` chunk znodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Doc {
    epoch: u64,
    version: u64,
    #[serde(default)]
    chunks: u32,
    #[serde(default)]
    owners: BTreeMap<JobId, NodeId>,
}

/// Splits owners into maps of about `CHUNK_BYTES` of JSON each.
fn chunk(owners: BTreeMap<JobId, NodeId>) -> Vec<BTreeMap<JobId, NodeId>> {
    let mut chunks = vec![BTreeMap::new()];
    let mut bytes = 0;
    for (job, node) in owners {
        let size = job.as_str().len() + node.as_str().len() + 6;
        if bytes + size > CHUNK_BYTES {
            chunks.push(BTreeMap::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(last) = chunks.last_mut() {
            last.insert(job, node);
        }
    }
    chunks
}

impl Inner {
    /// Reads the published assignment with the znode version of `/assignment`.
    pub(crate) async fn read_assignment(&self, client: &zk::Client) -> CoordResult<Seen> {
        read_assignment(client, self.config.request_timeout).await
    }

    /// The assignment as last seen, and the znode version to fence on; re-read when `fresh` or unknown.
    pub(crate) async fn cached_assignment(&self, fresh: bool) -> CoordResult<Seen> {
        if !fresh && let Some(cached) = self.assignment_cache.lock().ok().and_then(|c| c.clone()) {
            return Ok(cached);
        }
        let client = self.shared.client().await?;
        let read = self.read_assignment(&client).await?;
        self.remember_assignment(read.clone());
        Ok(read)
    }

    /// Keeps the newest assignment seen (by znode version) for claims to fence on.
    pub(crate) fn remember_assignment(&self, read: Seen) {
        if let Ok(mut cache) = self.assignment_cache.lock()
            && cache.as_ref().is_none_or(|(v, _)| read.0 >= *v)
        {
            *cache = Some(read);
        }
    }

    /// The znode of the election candidate through which `id` leads term `epoch`, or `Fenced`.
    async fn term(&self, client: &zk::Client, id: SessionId, epoch: u64) -> CoordResult<String> {
        let children = self
            .zk(
                "list /election",
                Kind::Read,
                client.list_children(paths::ELECTION),
            )
            .await?
            .map_err(|e| from_zk(e, "list /election", Kind::Read))?;
        let mut ours = children
            .iter()
            .filter(|name| paths::parse_candidate(name).is_some_and(|(s, _)| s == id));
        let fenced = || CoordError::Fenced {
            reason: format!("session {id} does not lead term {epoch}"),
        };
        let Some(name) = ours.next() else {
            return Err(fenced());
        };
        let path = format!("{}/{name}", paths::ELECTION);
        let stat = self
            .zk("read a candidate", Kind::Read, client.check_stat(&path))
            .await?
            .map_err(|e| from_zk(e, &format!("read {path}"), Kind::Read))?;
        match stat {
            Some(stat) if stat.czxid as u64 == epoch && stat.version >= 1 => Ok(path),
            _ => Err(fenced()),
        }
    }

    pub(crate) async fn publish_assignment(
        &self,
        id: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64> {
        rules::check_assignment(owners.len())?;
        let acting = self.acting(id).await?;
        let client = self.writer(&acting).await?;
        let candidate = self.term(&client, id, epoch).await?;
        let options = zk::CreateMode::Persistent.with_acls(acls(&self.config));
        let mut chunks = chunk(owners.clone());
        let inline = chunks.len() == 1;
        for _ in 0..ATTEMPTS {
            let (data, stat) = self
                .zk(
                    "read /assignment",
                    Kind::Read,
                    client.get_data(paths::ASSIGNMENT),
                )
                .await?
                .map_err(|e| from_zk(e, "read /assignment", Kind::Read))?;
            let previous: Option<Doc> = decode(paths::ASSIGNMENT, &data)?;
            let version = previous.as_ref().map_or(0, |d| d.version) + 1;
            let doc = Doc {
                epoch,
                version,
                chunks: if inline { 0 } else { chunks.len() as u32 },
                owners: if inline {
                    chunks.pop().unwrap_or_default()
                } else {
                    BTreeMap::new()
                },
            };
            if !inline {
                // Written before the flip, under a name no other publication uses (the version); a
                // publication that is then fenced leaves them behind for the next one to delete.
                for (i, part) in chunks.iter().enumerate() {
                    let path = paths::assignment_chunk(version, i);
                    let data = encode("assignment chunk", part)?;
                    let write = async {
                        match client.create(&path, &data, &options).await {
                            Err(zk::Error::NodeExists) => {
                                client.set_data(&path, &data, None).await.map(drop)
                            }
                            other => other.map(drop),
                        }
                    };
                    self.zk("write an assignment chunk", Kind::Write, write)
                        .await?
                        .map_err(|e| from_zk(e, &format!("write {path}"), Kind::Write))?;
                }
            }
            let stale: Vec<String> = self
                .zk(
                    "list assignment chunks",
                    Kind::Read,
                    client.list_children(paths::ASSIGNMENT_CHUNKS),
                )
                .await?
                .map_err(|e| from_zk(e, "list /assignment-chunks", Kind::Read))?
                .into_iter()
                .filter(|name| inline || paths::chunk_version(name) != Some(version))
                .collect();
            let encoded = encode("assignment", &doc)?;
            let mut multi = client.new_multi_writer();
            let built: Result<(), zk::Error> = (|| {
                multi.add_check_version(&paths::session(id), 0)?;
                multi.add_check_version(&candidate, 1)?;
                multi.add_set_data(paths::ASSIGNMENT, &encoded, Some(stat.version))?;
                for name in stale.iter().take(1000) {
                    multi.add_delete(&format!("{}/{name}", paths::ASSIGNMENT_CHUNKS), None)?;
                }
                Ok(())
            })();
            built.map_err(|e| from_zk(e, "publish_assignment", Kind::Write))?;
            match self
                .zk("publish_assignment", Kind::Write, multi.commit())
                .await?
            {
                Ok(results) => {
                    let zk_version = results
                        .iter()
                        .find_map(|r| match r {
                            zk::MultiWriteResult::SetData { stat } => Some(stat.version),
                            _ => None,
                        })
                        .unwrap_or(stat.version + 1);
                    let assignment = Assignment {
                        epoch,
                        version,
                        owners,
                    };
                    let assignment = Arc::new(assignment);
                    self.remember_assignment((zk_version, Some(Arc::clone(&assignment))));
                    self.assignment_published(assignment);
                    return Ok(version);
                }
                Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => {
                    return Err(expired(id));
                }
                Err(zk::MultiWriteError::OperationFailed { index: 1, .. }) => {
                    return Err(CoordError::Fenced {
                        reason: format!("session {id} no longer leads term {epoch}"),
                    });
                }
                Err(zk::MultiWriteError::OperationFailed {
                    source: zk::Error::BadVersion | zk::Error::NoNode,
                    ..
                }) => {
                    if !inline {
                        chunks = chunk(owners.clone());
                    } else {
                        chunks = vec![owners.clone()];
                    }
                }
                Err(zk::MultiWriteError::OperationFailed { source, .. }) => {
                    return Err(from_zk(source, "publish_assignment", Kind::Write));
                }
                Err(zk::MultiWriteError::RequestFailed { source }) => {
                    return Err(session_error(source, id, "publish_assignment"));
                }
            }
        }
        Err(CoordError::Unavailable {
            message: format!("publish_assignment: raced other publications {ATTEMPTS} times"),
            certainly_aborted: false,
            source: None,
        })
    }

    pub(crate) async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>> {
        let client = self.shared.reader().await?;
        let read = self.read_assignment(&client).await?;
        self.remember_assignment(read.clone());
        Ok(read.1)
    }
}

/// Reads `/assignment` and its chunks.
async fn read_assignment(client: &zk::Client, timeout: Duration) -> CoordResult<Seen> {
    let call = |what: &'static str| move |e| from_zk(e, what, Kind::Read);
    for _ in 0..ATTEMPTS {
        let (data, stat) = crate::error::deadline(timeout, "read /assignment", Kind::Read, async {
            client
                .get_data(paths::ASSIGNMENT)
                .await
                .map_err(call("read /assignment"))
        })
        .await?;
        let Some(mut doc) = decode::<Option<Doc>>(paths::ASSIGNMENT, &data)? else {
            return Ok((stat.version, None));
        };
        if doc.chunks > 0 {
            let reads =
                crate::error::deadline(timeout, "read assignment chunks", Kind::Read, async {
                    Ok(futures::future::join_all(
                        (0..doc.chunks as usize)
                            .map(|i| client.get_data(&paths::assignment_chunk(doc.version, i))),
                    )
                    .await)
                })
                .await?;
            let mut complete = true;
            for (i, read) in reads.into_iter().enumerate() {
                let path = paths::assignment_chunk(doc.version, i);
                match read {
                    Ok((data, _)) => {
                        let part: BTreeMap<JobId, NodeId> = decode(&path, &data)?;
                        doc.owners.extend(part);
                    }
                    Err(zk::Error::NoNode) => complete = false,
                    Err(e) => return Err(from_zk(e, &format!("read {path}"), Kind::Read)),
                }
            }
            if !complete {
                continue;
            }
        }
        let assignment = Assignment {
            epoch: doc.epoch,
            version: doc.version,
            owners: doc.owners,
        };
        return Ok((stat.version, Some(Arc::new(assignment))));
    }
    Err(CoordError::unavailable(
        "read /assignment: replaced by newer publications under every attempt",
    ))
}

/// Follows `/assignment` with a persistent watch: publishes every newer assignment to `tx` and to the
/// coordinator's claim cache; re-reads after reconnects; moves to a new connection when the shared one's
/// session ends.
pub(crate) async fn follow_assignment(
    shared: Arc<Shared>,
    timeout: Duration,
    tx: watch::Sender<Option<Arc<Assignment>>>,
    cache: Cache,
) {
    crate::conn::follow(
        shared,
        timeout,
        paths::ASSIGNMENT,
        zk::AddWatchMode::Persistent,
        |client| async move { read_assignment(&client, timeout).await },
        |(zk_version, assignment): (i32, Option<Arc<Assignment>>)| {
            if let Ok(mut cached) = cache.lock()
                && cached.as_ref().is_none_or(|(v, _)| zk_version >= *v)
            {
                *cached = Some((zk_version, assignment.clone()));
            }
            crate::coordinator::publish_newer(&tx, assignment);
        },
    )
    .await;
}
