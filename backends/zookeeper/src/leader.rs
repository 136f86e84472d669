//! Leadership: ephemeral sequential candidates under `/election`, one per campaigning session, created on
//! the session's own connection so that a candidate dies with its session.
//!
//! The lowest candidate may lead, but leads only once it has *confirmed* its term by a campaign (a
//! compare-and-set of its znode from version 0 to 1): `leader` is the lowest candidate if it is confirmed.
//! That keeps the contract's "leadership is taken by `campaign`": after a resign or an expiry nobody leads
//! until the next candidate in line campaigns (the engine campaigns every TTL/3). Losers stay queued, so a
//! campaign that loses costs a read, not a write.
//!
//! The epoch of a term is its candidate's czxid. Sequence numbers and zxids are both assigned in commit
//! order, so the queue is in czxid order, and a term is only ever confirmed by the lowest candidate: every
//! earlier term was confirmed by a lower, hence older, candidate, with a smaller czxid. Zxids grow across
//! server restarts too.
//!
//! No herd: nobody watches the leader's znode. Each candidate watches the one just ahead of it in the queue
//! (`campaign_turn`, a one-shot watch: nothing holds a persistent watch under `/election`, and one-shot and
//! persistent watches must not share a path, ZOOKEEPER-4466), so when a leader's session ends, only the next
//! candidate hears of it, campaigns at once, and confirms its term, instead of waiting for its next
//! keep-alive round.

use campanile::coordinator::{CoordError, CoordResult, Leader, NodeId, SessionId};
use zookeeper_client as zk;

use crate::coordinator::Inner;
use crate::error::{Kind, expired, from_zk};
use crate::paths;
use crate::runs::session_error;
use crate::session::Candidate;

/// The candidates in queue order: sequence number, session, name.
async fn queue(inner: &Inner, client: &zk::Client) -> CoordResult<Vec<(u64, SessionId, String)>> {
    let names = inner
        .zk(
            "list /election",
            Kind::Read,
            client.list_children(paths::ELECTION),
        )
        .await?
        .map_err(|e| from_zk(e, "list /election", Kind::Read))?;
    let mut queue: Vec<(u64, SessionId, String)> = names
        .into_iter()
        .filter_map(|name| paths::parse_candidate(&name).map(|(s, seq)| (seq, s, name)))
        .collect();
    queue.sort();
    Ok(queue)
}

impl Inner {
    pub(crate) async fn campaign(&self, id: SessionId) -> CoordResult<Option<Leader>> {
        let acting = self.acting(id).await?;
        let Some(local) = acting.local.clone() else {
            return Err(CoordError::Invalid(format!(
                "campaign: session {id} was opened by another process; campaign through its own coordinator"
            )));
        };
        let client = local.client()?;
        let mut candidate = local.candidate.lock().await;
        let mut queue = queue(self, &client).await?;
        if let Some(held) = candidate.as_ref()
            && !queue
                .iter()
                .any(|(_, _, name)| held.path.ends_with(&format!("/{name}")))
        {
            // Resigned through another client.
            *candidate = None;
        }
        if candidate.is_none() {
            let options =
                zk::CreateMode::EphemeralSequential.with_acls(crate::conn::acls(&self.config));
            let mut multi = client.new_multi_writer();
            let built: Result<(), zk::Error> = (|| {
                multi.add_check_version(&paths::session(id), 0)?;
                multi.add_create(
                    &paths::candidate_prefix(id),
                    local.node.id.as_str().as_bytes(),
                    &options,
                )?;
                Ok(())
            })();
            built.map_err(|e| from_zk(e, "campaign", Kind::Write))?;
            let results = match self.zk("campaign", Kind::Write, multi.commit()).await? {
                Ok(results) => results,
                Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => {
                    return Err(expired(id));
                }
                Err(zk::MultiWriteError::OperationFailed { source, .. }) => {
                    return Err(from_zk(source, "campaign", Kind::Write));
                }
                Err(zk::MultiWriteError::RequestFailed { source }) => {
                    return Err(session_error(source, id, "campaign"));
                }
            };
            let Some(zk::MultiWriteResult::Create { path, stat }) = results.into_iter().nth(1)
            else {
                return Err(CoordError::unavailable(
                    "campaign: no result for the created candidate",
                ));
            };
            let czxid = if stat.czxid > 0 {
                stat.czxid
            } else {
                // Some servers answer a create inside a multi without its stat (ZOOKEEPER-4026).
                self.zk("read a candidate", Kind::Read, client.check_stat(&path))
                    .await?
                    .map_err(|e| from_zk(e, &format!("read {path}"), Kind::Read))?
                    .map_or(0, |s| s.czxid)
            };
            *candidate = Some(Candidate {
                path,
                epoch: czxid as u64,
                confirmed: false,
            });
            queue = self::queue(self, &client).await?;
        }
        let Some(held) = candidate.clone() else {
            return Ok(None);
        };
        let first = queue
            .first()
            .map(|(_, _, name)| format!("{}/{name}", paths::ELECTION));
        if first.as_deref() != Some(held.path.as_str()) {
            return Ok(None);
        }
        let leader = Leader {
            node: local.node.id.clone(),
            session: id,
            epoch: held.epoch,
        };
        if held.confirmed {
            // Still first in the queue, and the candidate is ours: the term goes on, no write needed.
            return Ok(Some(leader));
        }
        let confirm = client.set_data(&held.path, local.node.id.as_str().as_bytes(), Some(0));
        match self.zk("campaign", Kind::Write, confirm).await? {
            // Confirmed now, or by an earlier campaign whose answer was lost.
            Ok(_) | Err(zk::Error::BadVersion) => {
                if let Some(c) = candidate.as_mut() {
                    c.confirmed = true;
                }
                Ok(Some(leader))
            }
            Err(zk::Error::NoNode) => {
                *candidate = None;
                if local.is_ended() {
                    Err(expired(id))
                } else {
                    Ok(None)
                }
            }
            Err(e) => Err(session_error(e, id, "campaign")),
        }
    }

    /// Returns when the candidate just ahead of this session's in the queue changes (it went away, or
    /// confirmed its term), or at once if this session has no candidate or is first in line: its next
    /// campaign may then have another answer.
    pub(crate) async fn campaign_turn(&self, id: SessionId) -> CoordResult<()> {
        let acting = self.acting(id).await?;
        let Some(local) = acting.local.clone() else {
            // A session of another process: that process campaigns for it.
            return std::future::pending().await;
        };
        let client = local.client()?;
        let Some(held) = local.candidate.lock().await.clone() else {
            return Ok(());
        };
        let queue = queue(self, &client).await?;
        let ours = queue
            .iter()
            .position(|(_, _, name)| held.path.ends_with(&format!("/{name}")));
        let Some(ahead) = ours.and_then(|i| i.checked_sub(1)) else {
            return Ok(()); // gone, or first: campaign now
        };
        let path = format!("{}/{}", paths::ELECTION, queue[ahead].2);
        let (stat, watcher) = self
            .zk(
                "watch the candidate ahead",
                Kind::Read,
                client.check_and_watch_stat(&path),
            )
            .await?
            .map_err(|e| from_zk(e, &format!("watch {path}"), Kind::Read))?;
        if stat.is_some() {
            // Any event will do: deleted (its session ended or it resigned), changed (it confirmed), or this
            // connection's session broke (the campaign then says what holds).
            watcher.changed().await;
        }
        Ok(())
    }

    pub(crate) async fn resign(&self, id: SessionId) -> CoordResult<()> {
        let acting = self.acting(id).await?;
        let client = self.writer(&acting).await?;
        let mut guard = match &acting.local {
            Some(local) => Some(local.candidate.lock().await),
            None => None,
        };
        let queue = queue(self, &client).await?;
        for (_, session, name) in queue.iter().filter(|(_, s, _)| *s == id) {
            let path = format!("{}/{name}", paths::ELECTION);
            match self
                .zk("resign", Kind::Write, client.delete(&path, None))
                .await?
            {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(session_error(e, *session, "resign")),
            }
        }
        if let Some(candidate) = guard.as_mut() {
            **candidate = None;
        }
        Ok(())
    }

    pub(crate) async fn leader(&self) -> CoordResult<Option<Leader>> {
        let client = self.shared.reader().await?;
        for _ in 0..8 {
            let queue = queue(self, &client).await?;
            let Some((_, session, name)) = queue.first() else {
                return Ok(None);
            };
            let path = format!("{}/{name}", paths::ELECTION);
            match self
                .zk("read the leader", Kind::Read, client.get_data(&path))
                .await?
            {
                Ok((data, stat)) => {
                    if stat.version < 1 {
                        return Ok(None);
                    }
                    let node = std::str::from_utf8(&data)
                        .ok()
                        .and_then(|s| NodeId::new(s).ok())
                        .ok_or_else(|| crate::error::corrupt(&path, "not a node id"))?;
                    return Ok(Some(Leader {
                        node,
                        session: *session,
                        epoch: stat.czxid as u64,
                    }));
                }
                // Gone since the listing: look again.
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(from_zk(e, &format!("read {path}"), Kind::Read)),
            }
        }
        Err(CoordError::unavailable(
            "leader: the election queue changed under every attempt",
        ))
    }
}
