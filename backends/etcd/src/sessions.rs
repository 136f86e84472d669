//! Sessions and members: a session is an etcd lease; its node's session key (`sessions/<id>`) and member key
//! (`members/<node>`) live on that lease, so they vanish when it expires or is revoked.

use std::time::Duration;

use campanile::coordinator::{
    CoordError, CoordResult, Key, Member, Members, NodeInfo, Session, SessionId, SessionState,
};
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use tokio::sync::watch;
use tracing::debug;

use crate::coordinator::{Inner, expired};
use crate::error::{Kind, is_lease_not_found, map, timed_out};
use crate::feeds;
use crate::txn::{Answers, Reads};
use crate::{limits, stored};

impl Inner {
    /// The node of a live session; `SessionExpired` if its lease (and so its session key) is gone.
    pub(crate) async fn session_node(&self, session: SessionId) -> CoordResult<NodeInfo> {
        if self.feeds.is_expired(session) {
            return Err(expired(session));
        }
        let response = self
            .get("read session", self.keys().session(session), None)
            .await?;
        match response.kvs().first() {
            Some(kv) => stored::decode(kv.key(), kv.value()),
            None => Err(expired(session)),
        }
    }

    /// Whether the session's key exists (its lease is alive).
    pub(crate) async fn session_alive(&self, session: SessionId) -> CoordResult<bool> {
        let response = self
            .get(
                "read session",
                self.keys().session(session),
                Some(GetOptions::new().with_count_only()),
            )
            .await?;
        Ok(response.count() > 0)
    }

    pub(crate) fn session_exists(&self, session: SessionId) -> Compare {
        Compare::version(self.keys().session(session), CompareOp::Greater, 0)
    }

    pub(crate) async fn open_session(&self, node: NodeInfo, ttl: Duration) -> CoordResult<Session> {
        limits::check_ttl(ttl)?;
        limits::check_node(&node)?;
        // etcd counts TTLs in whole seconds: round up, never down.
        let seconds = (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1);
        let mut lease = self.client.lease_client();
        let grant = self
            .rpc(
                "grant lease",
                Kind::Write,
                lease.grant(seconds as i64, None),
            )
            .await?;
        let id = SessionId(grant.id() as u64);
        let granted = Duration::from_secs(grant.ttl().max(seconds as i64) as u64);
        let member_key = self.keys().member(node.id.as_str());
        let member = Member {
            node: node.clone(),
            session: id,
            draining: false,
        };
        let on_lease = || Some(PutOptions::new().with_lease(grant.id()));
        let mut reads = Reads::new();
        let holder = reads.get(member_key.clone(), None);
        let txn = Txn::new()
            .when(vec![Compare::create_revision(
                member_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then(vec![
                TxnOp::put(self.keys().session(id), stored::encode(&node)?, on_lease()),
                TxnOp::put(member_key.clone(), stored::encode(&member)?, on_lease()),
            ])
            .or_else(reads.ops());
        let result = self.txn("open session", Kind::Write, txn).await;
        let conflict = match &result {
            Ok(response) if response.succeeded() => None,
            Ok(response) => Some(
                Answers::of(response, &reads)?
                    .first(holder)
                    .and_then(|kv| stored::decode::<Member>(kv.key(), kv.value()).ok())
                    .map_or_else(
                        || "a live session".to_owned(),
                        |m| format!("live session {}", m.session),
                    ),
            ),
            Err(_) => Some(String::new()),
        };
        let Some(actual) = conflict else {
            return Ok(Session { id, ttl: granted });
        };
        // Not opened: give the lease back now rather than let it expire.
        if let Err(error) = self
            .rpc("revoke lease", Kind::Write, lease.revoke(grant.id()))
            .await
        {
            debug!(%error, "revoking an unused lease failed; it will expire");
        }
        result?;
        Err(CoordError::Conflict {
            key: Key::Node(node.id.clone()),
            expected: "no live session".to_owned(),
            actual,
        })
    }

    pub(crate) async fn keep_alive(&self, session: SessionId) -> CoordResult<()> {
        if self.feeds.is_expired(session) {
            return Err(expired(session));
        }
        // One keep-alive round trip on a stream of its own: nothing to re-establish after a connection
        // loss, and the session lives at least its TTL from the moment the request was sent.
        let mut lease = self.client.lease_client();
        let call = async {
            let (_keeper, _stream) = lease.keep_alive(session.0 as i64).await?;
            Ok(())
        };
        match tokio::time::timeout(self.config.request_timeout, call).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) if is_lease_not_found(&error) => {
                self.feeds.expire(session);
                Err(expired(session))
            }
            Ok(Err(error)) => Err(map("keep alive", Kind::Write, error)),
            Err(_) => Err(timed_out("keep alive", Kind::Write)),
        }
    }

    pub(crate) async fn close_session(&self, session: SessionId) -> CoordResult<()> {
        let mut lease = self.client.lease_client();
        let call = lease.revoke(session.0 as i64);
        match tokio::time::timeout(self.config.request_timeout, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) if is_lease_not_found(&error) => {}
            Ok(Err(error)) => return Err(map("revoke lease", Kind::Write, error)),
            Err(_) => return Err(timed_out("revoke lease", Kind::Write)),
        }
        self.feeds.expire(session);
        Ok(())
    }

    pub(crate) async fn drain(&self, session: SessionId) -> CoordResult<()> {
        let node = self.session_node(session).await?;
        let member_key = self.keys().member(node.id.as_str());
        let member = Member {
            node,
            session,
            draining: true,
        };
        let txn = Txn::new()
            .when(vec![Compare::lease(
                member_key.clone(),
                CompareOp::Equal,
                session.0 as i64,
            )])
            .and_then(vec![TxnOp::put(
                member_key,
                stored::encode(&member)?,
                Some(PutOptions::new().with_lease(session.0 as i64)),
            )]);
        if self.txn("drain", Kind::Write, txn).await?.succeeded() {
            return Ok(());
        }
        Err(expired(session))
    }

    pub(crate) async fn watch_session(
        &self,
        session: SessionId,
    ) -> CoordResult<watch::Receiver<SessionState>> {
        feeds::ensure_members(&self.feed_ctx());
        let rx = self.feeds.session(session);
        if *rx.borrow() == SessionState::Expired {
            return Ok(rx);
        }
        let mut lease = self.client.lease_client();
        let answer = self
            .rpc(
                "lease time to live",
                Kind::Read,
                lease.time_to_live(session.0 as i64, None),
            )
            .await?;
        if answer.ttl() < 0 {
            self.feeds.expire(session);
        }
        Ok(rx)
    }

    pub(crate) async fn members(&self) -> CoordResult<Members> {
        let (revision, members) =
            feeds::list_members(&self.client, self.keys(), self.config.request_timeout).await?;
        Ok(feeds::membership(revision, &members))
    }

    pub(crate) async fn watch_members(&self) -> CoordResult<watch::Receiver<Members>> {
        feeds::ensure_members(&self.feed_ctx());
        let current = self.members().await?;
        self.feeds.offer_members(current);
        Ok(self.feeds.members.subscribe())
    }
}
