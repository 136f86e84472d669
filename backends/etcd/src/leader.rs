//! Leadership and the assignment: the leader key (`leader`) lives on the leader's lease, and its create
//! revision is the term's epoch; the assignment key is written only by a transaction that compares both.

use std::collections::BTreeMap;
use std::sync::Arc;

use campanile::coordinator::{
    Assignment, CoordError, CoordResult, Leader, NodeId, SessionId, rules,
};
use campanile::job::JobId;
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use tokio::sync::watch;

use crate::coordinator::{ATTEMPTS, Inner, contended, expired, lock};
use crate::error::Kind;
use crate::feeds;
use crate::stored;
use crate::txn::{Answers, Reads};

impl Inner {
    pub(crate) async fn campaign(&self, session: SessionId) -> CoordResult<Option<Leader>> {
        let node = self.session_node(session).await?;
        let leader_key = self.keys().leader();
        let value = stored::LeaderValue {
            node: node.id.clone(),
            session,
        };
        let mut reads = Reads::new();
        let session_key = reads.count(self.keys().session(session));
        let current = reads.get(leader_key.clone(), None);
        for _ in 0..ATTEMPTS {
            let txn = Txn::new()
                .when(vec![
                    Compare::create_revision(leader_key.clone(), CompareOp::Equal, 0),
                    self.session_exists(session),
                ])
                .and_then(vec![TxnOp::put(
                    leader_key.clone(),
                    stored::encode(&value)?,
                    Some(PutOptions::new().with_lease(session.0 as i64)),
                )])
                .or_else(reads.ops());
            let response = self.txn("campaign", Kind::Write, txn).await?;
            if response.succeeded() {
                let epoch = response.header().map_or(0, |h| h.revision());
                return Ok(Some(Leader {
                    node: node.id,
                    session,
                    epoch: stored::revision(epoch),
                }));
            }
            let answers = Answers::of(&response, &reads)?;
            if answers.count(session_key) == 0 {
                return Err(expired(session));
            }
            if let Some(kv) = answers.first(current) {
                let leader = stored::leader(kv)?;
                return Ok((leader.session == session).then_some(leader));
            }
            // The leader key vanished between the compare and the read: campaign again.
        }
        Err(contended("campaign"))
    }

    pub(crate) async fn leader(&self) -> CoordResult<Option<Leader>> {
        let response = self.get("read leader", self.keys().leader(), None).await?;
        response.kvs().first().map(stored::leader).transpose()
    }

    pub(crate) async fn resign(&self, session: SessionId) -> CoordResult<()> {
        let leader_key = self.keys().leader();
        let mut reads = Reads::new();
        let session_key = reads.count(self.keys().session(session));
        let txn = Txn::new()
            .when(vec![Compare::lease(
                leader_key.clone(),
                CompareOp::Equal,
                session.0 as i64,
            )])
            .and_then(vec![TxnOp::delete(leader_key, None)])
            .or_else(reads.ops());
        let response = self.txn("resign", Kind::Write, txn).await?;
        if !response.succeeded() && Answers::of(&response, &reads)?.count(session_key) == 0 {
            return Err(expired(session));
        }
        Ok(())
    }

    pub(crate) async fn publish_assignment(
        &self,
        session: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64> {
        rules::check_assignment(owners.len())?;
        let leader_key = self.keys().leader();
        let Ok(term) = i64::try_from(epoch) else {
            return Err(CoordError::Fenced {
                reason: format!("leader epoch {epoch} is not an etcd revision"),
            });
        };
        let value = stored::encode(&stored::AssignmentValue::new(epoch, owners))?;
        let mut reads = Reads::new();
        let session_key = reads.count(self.keys().session(session));
        let leader_at = reads.get(leader_key.clone(), None);
        let txn = Txn::new()
            .when(vec![
                Compare::create_revision(leader_key.clone(), CompareOp::Equal, term),
                Compare::lease(leader_key.clone(), CompareOp::Equal, session.0 as i64),
            ])
            .and_then(vec![TxnOp::put(self.keys().assignment(), value, None)])
            .or_else(reads.ops());
        let response = self.txn("publish assignment", Kind::Write, txn).await?;
        if response.succeeded() {
            return Ok(stored::revision(
                response.header().map_or(0, |h| h.revision()),
            ));
        }
        let answers = Answers::of(&response, &reads)?;
        if answers.count(session_key) == 0 {
            return Err(expired(session));
        }
        let current = answers.first(leader_at).map(stored::leader).transpose()?;
        let reason = match current {
            Some(leader) if leader.session == session => {
                format!("leader epoch {epoch} != current {}", leader.epoch)
            }
            _ => format!("session {session} does not lead term {epoch}"),
        };
        Err(CoordError::Fenced { reason })
    }

    /// The assignment whose key has mod revision `revision` (0: none published), from the cache if it
    /// holds that one.
    pub(crate) async fn assignment_at(
        &self,
        revision: i64,
    ) -> CoordResult<Option<Arc<Assignment>>> {
        if revision == 0 {
            return Ok(None);
        }
        if let Some((cached, assignment)) = lock(&self.assignment_cache).as_ref()
            && *cached == revision
        {
            return Ok(Some(Arc::clone(assignment)));
        }
        let options = GetOptions::new().with_revision(revision);
        let response = self
            .get("read assignment", self.keys().assignment(), Some(options))
            .await?;
        let Some(kv) = response.kvs().first() else {
            return Err(CoordError::unavailable(
                "etcd read assignment: the published assignment was not found at its revision",
            ));
        };
        let assignment = Arc::new(stored::assignment(kv)?);
        *lock(&self.assignment_cache) = Some((revision, Arc::clone(&assignment)));
        Ok(Some(assignment))
    }

    pub(crate) async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>> {
        let response = self
            .get("read assignment", self.keys().assignment(), None)
            .await?;
        Ok(response
            .kvs()
            .first()
            .map(stored::assignment)
            .transpose()?
            .map(Arc::new))
    }

    pub(crate) async fn watch_assignment(
        &self,
    ) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>> {
        feeds::ensure_assignment(&self.feed_ctx());
        if let Some(current) = self.assignment().await? {
            self.feeds.offer_assignment(current);
        }
        Ok(self.feeds.assignment.subscribe())
    }
}
