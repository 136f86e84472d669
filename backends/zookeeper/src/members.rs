//! Members: `/members/<node>` is an ephemeral znode of the member's session holding its `Member`; the
//! membership version is the newest zxid that touched the set (the parent's `pzxid` for joins and leaves,
//! a member's `mzxid` for a drain), the same on every client and growing with every change.

use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::{CoordResult, Member, Members, SessionId};
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::conn::Shared;
use crate::coordinator::Inner;
use crate::error::{Kind, decode, encode, expired, from_zk};
use crate::paths;
use crate::runs::session_error;

/// Rounds of re-reading when the member set changes during a read.
const ATTEMPTS: u32 = 16;

/// Reads the members consistently: list, read them all with the parent in one multi-read, and start over
/// if the parent's `pzxid` moved in between (a join or leave the read would have half seen).
pub(crate) async fn read_members(client: &zk::Client, timeout: Duration) -> CoordResult<Members> {
    let err = |what: &'static str| move |e| from_zk(e, what, Kind::Read);
    for _ in 0..ATTEMPTS {
        let (names, parent) = crate::error::deadline(timeout, "list /members", Kind::Read, async {
            client
                .get_children(paths::MEMBERS)
                .await
                .map_err(err("list /members"))
        })
        .await?;
        let mut reader = client.new_multi_reader();
        let built: Result<(), zk::Error> = (|| {
            reader.add_get_data(paths::MEMBERS)?;
            for name in &names {
                reader.add_get_data(&format!("{}/{name}", paths::MEMBERS))?;
            }
            Ok(())
        })();
        built.map_err(err("read /members"))?;
        let results = crate::error::deadline(timeout, "read /members", Kind::Read, async {
            reader.commit().await.map_err(err("read /members"))
        })
        .await?;
        let mut results = results.into_iter();
        let Some(zk::MultiReadResult::Data { stat: now, .. }) = results.next() else {
            continue;
        };
        if now.pzxid != parent.pzxid {
            continue;
        }
        let mut version = now.pzxid;
        let mut members = Vec::with_capacity(names.len());
        for (name, result) in names.iter().zip(results) {
            let path = format!("{}/{name}", paths::MEMBERS);
            match result {
                zk::MultiReadResult::Data { data, stat } => {
                    version = version.max(stat.mzxid);
                    members.push(decode::<Member>(&path, &data)?);
                }
                zk::MultiReadResult::Error { err: e } => return Err(from_zk(e, &path, Kind::Read)),
                _ => return Err(crate::error::corrupt(&path, "unexpected multi-read result")),
            }
        }
        members.sort_by(|a, b| a.node.id.cmp(&b.node.id));
        return Ok(Members {
            version: version.max(0) as u64,
            members,
        });
    }
    Err(campanile::CoordError::unavailable(
        "read /members: the member set changed under every attempt",
    ))
}

impl Inner {
    pub(crate) async fn members(&self) -> CoordResult<Members> {
        let client = self.shared.reader().await?;
        read_members(&client, self.config.request_timeout).await
    }

    pub(crate) async fn drain(&self, id: SessionId) -> CoordResult<()> {
        let acting = self.acting(id).await?;
        let client = self.writer(&acting).await?;
        let path = paths::member(&acting.node);
        for _ in 0..ATTEMPTS {
            let read = self
                .zk("read a member", Kind::Read, client.get_data(&path))
                .await?;
            let (data, stat) = match read {
                Ok(found) => found,
                Err(zk::Error::NoNode) => return Err(expired(id)),
                Err(e) => return Err(session_error(e, id, "drain")),
            };
            let mut member: Member = decode(&path, &data)?;
            if member.session != id {
                return Err(expired(id));
            }
            if member.draining {
                return Ok(());
            }
            member.draining = true;
            let data = encode("member", &member)?;
            let mut multi = client.new_multi_writer();
            let built: Result<(), zk::Error> = (|| {
                multi.add_check_version(&paths::session(id), 0)?;
                multi.add_set_data(&path, &data, Some(stat.version))?;
                Ok(())
            })();
            built.map_err(|e| from_zk(e, "drain", Kind::Write))?;
            match self.zk("drain", Kind::Write, multi.commit()).await? {
                Ok(_) => return Ok(()),
                Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => {
                    return Err(expired(id));
                }
                Err(zk::MultiWriteError::OperationFailed {
                    source: zk::Error::BadVersion,
                    ..
                }) => {}
                Err(zk::MultiWriteError::OperationFailed { source, .. }) => {
                    return Err(from_zk(source, "drain", Kind::Write));
                }
                Err(zk::MultiWriteError::RequestFailed { source }) => {
                    return Err(session_error(source, id, "drain"));
                }
            }
        }
        Err(campanile::CoordError::unavailable(
            "drain: the member changed under every attempt",
        ))
    }
}

/// Follows `/members` with a persistent recursive watch (joins, leaves, drains) and publishes every newer
/// membership; re-reads after reconnects; moves to a new connection when the shared one's session ends.
pub(crate) async fn follow_members(
    shared: Arc<Shared>,
    timeout: Duration,
    tx: watch::Sender<Members>,
) {
    crate::conn::follow(
        shared,
        timeout,
        paths::MEMBERS,
        zk::AddWatchMode::PersistentRecursive,
        |client| async move { read_members(&client, timeout).await },
        |members: Members| {
            tx.send_if_modified(|current| {
                let newer = members.version > current.version;
                if newer {
                    *current = members;
                }
                newer
            });
        },
    )
    .await;
}
