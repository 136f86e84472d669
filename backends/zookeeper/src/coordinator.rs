//! `ZkCoordinator`: the `Coordinator` implementation, its shared state (`Inner`), and sessions: open,
//! keep-alive, close, and watching them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use campanile::ValidationError;
use campanile::coordinator::{
    Assignment, ClaimResult, CoordError, CoordResult, Coordinator, FireClaim, JobClaim,
    JobSnapshot, JobWatch, Key, Leader, Member, Members, NodeId, NodeInfo, Precondition,
    RecordResult, RunQuery, Session, SessionId, SessionState,
};
use campanile::job::{Job, JobId};
use campanile::run::RunRecord;
use tokio::sync::{OnceCell, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::warn;
use zookeeper_client as zk;

use crate::config::ZkConfig;
use crate::conn::{Shared, acls, connect};
use crate::error::{Kind, deadline, decode, encode, expired, from_zk};
use crate::session::LocalSession;
use crate::{limits, paths, session};

/// A [`Coordinator`] on a ZooKeeper ensemble. See the crate docs for the znode layout and the behaviour
/// the contract leaves to the backend.
///
/// Creating one does not connect: the shared connection opens on the first call, and every session opens
/// a connection of its own. Cloning is cheap and shares everything; give a clone to each engine node of a
/// process, or one coordinator per node. Dropping the last clone closes every connection, which ends the
/// sessions it opened.
#[derive(Clone)]
pub struct ZkCoordinator {
    inner: Arc<Inner>,
}

/// What the clones of a coordinator share.
pub(crate) struct Inner {
    pub(crate) config: Arc<ZkConfig>,
    /// The namespace's identity in this process (ensemble and chroot), for the session registry.
    pub(crate) namespace: Arc<str>,
    pub(crate) shared: Arc<Shared>,
    /// The sessions this coordinator opened (strong: they live as long as it does).
    sessions: Mutex<HashMap<u64, Arc<LocalSession>>>,
    members: OnceCell<watch::Sender<Members>>,
    assignment: OnceCell<watch::Sender<Option<Arc<Assignment>>>>,
    head: OnceCell<watch::Sender<u64>>,
    /// The newest assignment seen, with its znode version: what claims fence on.
    pub(crate) assignment_cache: crate::assignment::Cache,
    /// Background tasks (watch followers, job watches), aborted when the coordinator is dropped.
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().map(std::mem::take).unwrap_or_default() {
            task.abort();
        }
        let sessions = self
            .sessions
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for session in sessions.values() {
            session.end("its coordinator was dropped");
        }
    }
}

/// The session a call acts for.
pub(crate) struct Acting {
    /// Its node.
    pub(crate) node: NodeId,
    /// The session, when this process opened it.
    pub(crate) local: Option<Arc<LocalSession>>,
}

/// Publishes `assignment` to `tx` if it is newer than what `tx` holds.
pub(crate) fn publish_newer(
    tx: &watch::Sender<Option<Arc<Assignment>>>,
    assignment: Option<Arc<Assignment>>,
) {
    tx.send_if_modified(|current| {
        let newer = match (current.as_ref(), assignment.as_ref()) {
            (None, Some(_)) => true,
            (Some(old), Some(new)) => new.version > old.version,
            _ => false,
        };
        if newer {
            *current = assignment;
        }
        newer
    });
}

/// Waits for the next reason to re-read what a persistent watch covers: a node event, or a reconnect
/// (events during a disconnection are not replayed, ZOOKEEPER-4698). False when the watch's session ended:
/// the caller must watch again on a new connection (and must not wait on this watcher again).
pub(crate) async fn next_change(watcher: &mut zk::PersistentWatcher) -> bool {
    loop {
        let event = watcher.changed().await;
        if event.event_type != zk::EventType::Session {
            return true;
        }
        match event.session_state {
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => return true,
            zk::SessionState::Disconnected => {}
            _ => return false,
        }
    }
}

impl ZkCoordinator {
    /// A coordinator for the namespace `config` describes. Checks the config; connects on first use.
    pub fn new(config: ZkConfig) -> Result<Self, ValidationError> {
        config.validate()?;
        let namespace: Arc<str> = Arc::from(config.namespace_key());
        let config = Arc::new(config);
        Ok(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared::new(Arc::clone(&config))),
                config,
                namespace,
                sessions: Mutex::new(HashMap::new()),
                members: OnceCell::new(),
                assignment: OnceCell::new(),
                head: OnceCell::new(),
                assignment_cache: Arc::new(Mutex::new(None)),
                tasks: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &ZkConfig {
        &self.inner.config
    }

    /// Deletes the whole namespace (the chroot and everything below it). For tests and for decommissioning
    /// a cluster; every node of it must be stopped first.
    pub async fn delete_namespace(config: &ZkConfig) -> CoordResult<()> {
        config
            .validate()
            .map_err(|e| CoordError::Invalid(e.to_string()))?;
        let client = crate::conn::connect_root(config, Duration::from_secs(30)).await?;
        let timeout = config.request_timeout;
        // Depth first, children before their parent.
        let mut stack = vec![(config.chroot.clone(), false)];
        while let Some((path, expanded)) = stack.pop() {
            if expanded {
                deadline(timeout, "delete the namespace", Kind::Write, async {
                    match client.delete(&path, None).await {
                        Ok(()) | Err(zk::Error::NoNode) => Ok(()),
                        Err(e) => Err(from_zk(e, &format!("delete {path}"), Kind::Write)),
                    }
                })
                .await?;
                continue;
            }
            let children = deadline(timeout, "delete the namespace", Kind::Read, async {
                match client.list_children(&path).await {
                    Ok(children) => Ok(children),
                    Err(zk::Error::NoNode) => Ok(Vec::new()),
                    Err(e) => Err(from_zk(e, &format!("list {path}"), Kind::Read)),
                }
            })
            .await?;
            stack.push((path.clone(), true));
            stack.extend(
                children
                    .into_iter()
                    .map(|child| (format!("{path}/{child}"), false)),
            );
        }
        Ok(())
    }
}

impl fmt::Debug for ZkCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkCoordinator")
            .field("servers", &self.inner.config.servers)
            .field("chroot", &self.inner.config.chroot)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Runs a ZooKeeper call under the request deadline. The outer error is the timeout; the inner one is
    /// ZooKeeper's, for the caller to match.
    pub(crate) async fn zk<T, E>(
        &self,
        what: &str,
        kind: Kind,
        call: impl Future<Output = Result<T, E>>,
    ) -> CoordResult<Result<T, E>> {
        deadline(self.config.request_timeout, what, kind, async {
            Ok(call.await)
        })
        .await
    }

    /// Keeps a background task until the coordinator is dropped.
    pub(crate) fn own(&self, task: AbortHandle) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
    }

    /// The session `id` if this process opened it.
    fn local(&self, id: SessionId) -> Option<Arc<LocalSession>> {
        let own = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(&id.0).cloned());
        own.or_else(|| session::lookup(&self.namespace, id))
    }

    /// The session a call acts for, or `SessionExpired` if it is not alive. A session of this process is
    /// known locally; another one is alive while its `/sessions` znode exists (the fenced write that follows
    /// checks that again, atomically).
    pub(crate) async fn acting(&self, id: SessionId) -> CoordResult<Acting> {
        if let Some(local) = self.local(id) {
            if local.is_ended() {
                return Err(expired(id));
            }
            return Ok(Acting {
                node: local.node.id.clone(),
                local: Some(local),
            });
        }
        let client = self.shared.client().await?;
        let path = paths::session(id);
        match self
            .zk("read a session", Kind::Read, client.get_data(&path))
            .await?
        {
            Ok((data, _)) => {
                let node = std::str::from_utf8(&data)
                    .ok()
                    .and_then(|s| NodeId::new(s).ok())
                    .ok_or_else(|| crate::error::corrupt(&path, "not a node id"))?;
                Ok(Acting { node, local: None })
            }
            Err(zk::Error::NoNode) => Err(expired(id)),
            Err(e) => Err(from_zk(e, &format!("read {path}"), Kind::Read)),
        }
    }

    /// The connection to write through for `acting`: the session's own, else the shared one.
    pub(crate) async fn writer(&self, acting: &Acting) -> CoordResult<zk::Client> {
        match &acting.local {
            Some(local) => local.client(),
            None => self.shared.client().await,
        }
    }

    /// A receiver of the job store's revision, following `/meta/head`.
    pub(crate) async fn head_watch(&self) -> CoordResult<watch::Receiver<u64>> {
        let tx = self
            .head
            .get_or_try_init(|| async {
                let client = self.shared.client().await?;
                let (head, _) = self.read_head(&client).await?;
                let tx = watch::Sender::new(head.revision);
                let task = tokio::spawn(crate::jobs::follow_head(
                    Arc::clone(&self.shared),
                    self.config.request_timeout,
                    tx.clone(),
                ));
                self.own(task.abort_handle());
                Ok::<_, CoordError>(tx)
            })
            .await?;
        Ok(tx.subscribe())
    }

    async fn open_session(&self, node: NodeInfo, ttl: Duration) -> CoordResult<Session> {
        limits::check_ttl(ttl)?;
        limits::check_node(&node)?;
        // The namespace must be laid out before a session's connection writes into it.
        self.shared.client().await?;
        let client = connect(&self.config, ttl).await?;
        let granted = client.session_timeout();
        if granted < ttl {
            return Err(CoordError::Invalid(format!(
                "ttl: {ttl:?}: the ZooKeeper ensemble grants sessions of at most {granted:?} (its maxSessionTimeout); ask for a shorter ttl or raise maxSessionTimeout"
            )));
        }
        let stat = self
            .zk(
                "open_session",
                Kind::Write,
                client.set_data(paths::SESSION_SEQ, b"", None),
            )
            .await?
            .map_err(|e| from_zk(e, "open_session: allocate an id", Kind::Write))?;
        let id = SessionId(stat.mzxid as u64);
        let member = Member {
            node: node.clone(),
            session: id,
            draining: false,
        };
        let member_data = encode("member", &member)?;
        let options = zk::CreateMode::Ephemeral.with_acls(acls(&self.config));
        let member_path = paths::member(&node.id);
        let mut multi = client.new_multi_writer();
        let built: Result<(), zk::Error> = (|| {
            multi.add_create(&paths::session(id), node.id.as_str().as_bytes(), &options)?;
            multi.add_create(&member_path, &member_data, &options)?;
            Ok(())
        })();
        built.map_err(|e| from_zk(e, "open_session", Kind::Write))?;
        match self.zk("open_session", Kind::Write, multi.commit()).await? {
            Ok(_) => {}
            Err(zk::MultiWriteError::OperationFailed {
                index: 1,
                source: zk::Error::NodeExists,
            }) => {
                let holder = match client.get_data(&member_path).await {
                    Ok((data, _)) => decode::<Member>(&member_path, &data)
                        .map(|m| format!("live session {}", m.session))
                        .unwrap_or_else(|_| "a live session".to_owned()),
                    Err(_) => "a live session".to_owned(),
                };
                return Err(CoordError::Conflict {
                    key: Key::Node(node.id.clone()),
                    expected: "no live session".to_owned(),
                    actual: holder,
                });
            }
            Err(e) => return Err(from_zk(e.into(), "open_session", Kind::Write)),
        }
        let opened = Instant::now();
        let local = LocalSession::start(
            Arc::clone(&self.namespace),
            id,
            node,
            granted,
            client,
            opened,
        );
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, s| !s.is_ended());
            sessions.insert(id.0, local);
        }
        Ok(Session { id, ttl: granted })
    }

    async fn keep_alive(&self, id: SessionId) -> CoordResult<()> {
        let Some(local) = self.local(id) else {
            // Not ours: alive or not, this process cannot renew it.
            self.acting(id).await?;
            return Err(CoordError::Invalid(format!(
                "keep_alive: session {id} was opened by another process; renew it through its own coordinator"
            )));
        };
        let client = local.client()?;
        let sent = Instant::now();
        // A round trip on the session's own connection: the server resets the session's expiry when it
        // receives it, which is after `sent`.
        let exists = self
            .zk(
                "keep_alive",
                Kind::Read,
                client.check_stat(&paths::session(id)),
            )
            .await?;
        match exists {
            Ok(Some(_)) if !local.is_ended() && Instant::now() < local.deadline() => {
                local.extend(sent);
                Ok(())
            }
            Ok(Some(_)) => Err(expired(id)),
            Ok(None) => {
                local.end("its znode was deleted");
                Err(expired(id))
            }
            Err(zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed) => {
                local.end("the ZooKeeper session ended");
                Err(expired(id))
            }
            Err(e) => Err(from_zk(e, "keep_alive", Kind::Read)),
        }
    }

    async fn close_session(&self, id: SessionId) -> CoordResult<()> {
        let local = self.local(id);
        if let Some(local) = &local {
            if local.is_ended() {
                return Ok(());
            }
            // Delete the znodes first, through the session's own connection, so that every client sees the
            // session gone when this returns; then drop the connection.
            if let Ok(client) = local.client() {
                let deleted = self.delete_session_nodes(&client, id, &local.node.id).await;
                if let Err(error) = deleted {
                    warn!(session = %id, %error, "closing: deleting the session's znodes failed; they go with its connection");
                }
            }
            local.end("closed");
            return Ok(());
        }
        let acting = match self.acting(id).await {
            Ok(acting) => acting,
            Err(CoordError::SessionExpired { .. }) => return Ok(()),
            Err(error) => return Err(error),
        };
        let client = self.shared.client().await?;
        self.delete_session_nodes(&client, id, &acting.node).await
    }

    /// Deletes a session's znodes (session, member, election candidates) in one multi.
    async fn delete_session_nodes(
        &self,
        client: &zk::Client,
        id: SessionId,
        node: &NodeId,
    ) -> CoordResult<()> {
        for _ in 0..8 {
            let names = self
                .zk(
                    "list /election",
                    Kind::Read,
                    client.list_children(paths::ELECTION),
                )
                .await?
                .map_err(|e| from_zk(e, "list /election", Kind::Read))?;
            let member_path = paths::member(node);
            let member = match self
                .zk("read a member", Kind::Read, client.get_data(&member_path))
                .await?
            {
                Ok((data, stat)) => decode::<Member>(&member_path, &data)
                    .ok()
                    .filter(|m| m.session == id)
                    .map(|_| stat.version),
                Err(_) => None,
            };
            let mut multi = client.new_multi_writer();
            let built: Result<(), zk::Error> = (|| {
                multi.add_delete(&paths::session(id), None)?;
                if let Some(version) = member {
                    multi.add_delete(&member_path, Some(version))?;
                }
                for name in &names {
                    if paths::parse_candidate(name).is_some_and(|(s, _)| s == id) {
                        multi.add_delete(&format!("{}/{name}", paths::ELECTION), None)?;
                    }
                }
                Ok(())
            })();
            built.map_err(|e| from_zk(e, "close_session", Kind::Write))?;
            match self
                .zk("close_session", Kind::Write, multi.commit())
                .await?
            {
                Ok(_) => return Ok(()),
                Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => return Ok(()),
                Err(zk::MultiWriteError::OperationFailed {
                    source: zk::Error::NoNode | zk::Error::BadVersion,
                    ..
                }) => {}
                Err(e) => return Err(from_zk(e.into(), "close_session", Kind::Write)),
            }
        }
        Err(CoordError::unavailable(
            "close_session: the session's znodes changed under every attempt",
        ))
    }

    async fn watch_session(&self, id: SessionId) -> CoordResult<watch::Receiver<SessionState>> {
        if let Some(local) = self.local(id) {
            return Ok(local.subscribe());
        }
        let client = self.shared.client().await?;
        let path = paths::session(id);
        let (exists, watcher) = self
            .zk(
                "watch a session",
                Kind::Read,
                client.check_and_watch_stat(&path),
            )
            .await?
            .map_err(|e| from_zk(e, &format!("watch {path}"), Kind::Read))?;
        if exists.is_none() {
            return Ok(watch::channel(SessionState::Expired).1);
        }
        let (tx, rx) = watch::channel(SessionState::Alive);
        let shared = Arc::clone(&self.shared);
        let timeout = self.config.request_timeout;
        let task = tokio::spawn(async move {
            let mut watcher = Some(watcher);
            loop {
                if let Some(w) = watcher.take() {
                    let event = tokio::select! {
                        biased;
                        () = tx.closed() => return,
                        event = w.changed() => event,
                    };
                    if event.event_type == zk::EventType::NodeDeleted {
                        tx.send_replace(SessionState::Expired);
                        return;
                    }
                }
                // Any other event, or the shared session ended: look again (on a new connection if need be).
                let look = async {
                    let client = shared.client().await?;
                    deadline(timeout, "watch a session", Kind::Read, async {
                        client
                            .check_and_watch_stat(&path)
                            .await
                            .map_err(|e| from_zk(e, "watch a session", Kind::Read))
                    })
                    .await
                };
                match look.await {
                    Ok((None, _)) => {
                        tx.send_replace(SessionState::Expired);
                        return;
                    }
                    Ok((Some(_), w)) => watcher = Some(w),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        self.own(task.abort_handle());
        Ok(rx)
    }

    async fn watch_members(&self) -> CoordResult<watch::Receiver<Members>> {
        let tx = self
            .members
            .get_or_try_init(|| async {
                let client = self.shared.reader().await?;
                let current =
                    crate::members::read_members(&client, self.config.request_timeout).await?;
                let tx = watch::Sender::new(current);
                let task = tokio::spawn(crate::members::follow_members(
                    Arc::clone(&self.shared),
                    self.config.request_timeout,
                    tx.clone(),
                ));
                self.own(task.abort_handle());
                Ok::<_, CoordError>(tx)
            })
            .await?;
        // The follower may not have caught up with a change made just before this call: a new receiver must
        // hold the current set, so read it now.
        let client = self.shared.reader().await?;
        let current = crate::members::read_members(&client, self.config.request_timeout).await?;
        tx.send_if_modified(|held| {
            let newer = current.version > held.version;
            if newer {
                *held = current;
            }
            newer
        });
        Ok(tx.subscribe())
    }

    async fn watch_assignment(&self) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>> {
        let tx = self
            .assignment
            .get_or_try_init(|| async {
                let client = self.shared.reader().await?;
                let read = self.read_assignment(&client).await?;
                self.remember_assignment(read.clone());
                let tx = watch::Sender::new(read.1);
                let task = tokio::spawn(crate::assignment::follow_assignment(
                    Arc::clone(&self.shared),
                    self.config.request_timeout,
                    tx.clone(),
                    Arc::clone(&self.assignment_cache),
                ));
                self.own(task.abort_handle());
                Ok::<_, CoordError>(tx)
            })
            .await?;
        // As for members: a new receiver holds the current assignment, even if the follower lags.
        let client = self.shared.reader().await?;
        let read = self.read_assignment(&client).await?;
        self.remember_assignment(read.clone());
        publish_newer(tx, read.1);
        Ok(tx.subscribe())
    }

    /// Shows a publication of this coordinator to its own assignment receivers at once.
    pub(crate) fn assignment_published(&self, assignment: Arc<Assignment>) {
        if let Some(tx) = self.assignment.get() {
            publish_newer(tx, Some(assignment));
        }
    }

    /// A failed session call whose local session ended meanwhile is `SessionExpired`.
    fn refine(&self, id: SessionId, error: CoordError) -> CoordError {
        match &error {
            CoordError::Unavailable { .. } if self.local(id).is_some_and(|l| l.is_ended()) => {
                expired(id)
            }
            _ => error,
        }
    }
}

#[async_trait]
impl Coordinator for ZkCoordinator {
    fn backend(&self) -> &'static str {
        "zookeeper"
    }

    async fn open_session(&self, node: NodeInfo, ttl: Duration) -> CoordResult<Session> {
        self.inner.open_session(node, ttl).await
    }

    async fn keep_alive(&self, session: SessionId) -> CoordResult<()> {
        let result = self.inner.keep_alive(session).await;
        result.map_err(|e| self.inner.refine(session, e))
    }

    async fn close_session(&self, session: SessionId) -> CoordResult<()> {
        self.inner.close_session(session).await
    }

    async fn drain(&self, session: SessionId) -> CoordResult<()> {
        let result = self.inner.drain(session).await;
        result.map_err(|e| self.inner.refine(session, e))
    }

    async fn watch_session(
        &self,
        session: SessionId,
    ) -> CoordResult<watch::Receiver<SessionState>> {
        self.inner.watch_session(session).await
    }

    async fn members(&self) -> CoordResult<Members> {
        self.inner.members().await
    }

    async fn watch_members(&self) -> CoordResult<watch::Receiver<Members>> {
        self.inner.watch_members().await
    }

    async fn campaign(&self, session: SessionId) -> CoordResult<Option<Leader>> {
        let result = self.inner.campaign(session).await;
        result.map_err(|e| self.inner.refine(session, e))
    }

    async fn leader(&self) -> CoordResult<Option<Leader>> {
        self.inner.leader().await
    }

    async fn resign(&self, session: SessionId) -> CoordResult<()> {
        let result = self.inner.resign(session).await;
        result.map_err(|e| self.inner.refine(session, e))
    }

    async fn campaign_turn(&self, session: SessionId) -> CoordResult<()> {
        self.inner.campaign_turn(session).await
    }

    async fn put_job(&self, job: Job, precondition: Precondition) -> CoordResult<u64> {
        self.inner.put_job(job, precondition).await
    }

    async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>> {
        self.inner.put_jobs(jobs).await
    }

    async fn delete_job(&self, id: &JobId, precondition: Precondition) -> CoordResult<u64> {
        self.inner.delete_job(id, precondition).await
    }

    async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>> {
        self.inner.get_job(id).await
    }

    async fn list_jobs(&self) -> CoordResult<JobSnapshot> {
        self.inner.list_jobs().await
    }

    async fn watch_jobs(&self, after_revision: u64) -> CoordResult<JobWatch> {
        self.inner.watch_jobs(after_revision).await
    }

    async fn publish_assignment(
        &self,
        session: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64> {
        let result = self.inner.publish_assignment(session, epoch, owners).await;
        result.map_err(|e| self.inner.refine(session, e))
    }

    async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>> {
        self.inner.assignment().await
    }

    async fn watch_assignment(&self) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>> {
        self.inner.watch_assignment().await
    }

    async fn claim_fires(
        &self,
        session: SessionId,
        claims: &[FireClaim],
    ) -> CoordResult<Vec<ClaimResult>> {
        let result = self.inner.claim_fires(session, claims).await;
        result.map_err(|e| self.inner.refine(session, e))
    }

    async fn release_claims(
        &self,
        session: SessionId,
        releases: &[(JobId, i64)],
    ) -> CoordResult<()> {
        let result = self.inner.release_claims(session, releases).await;
        result.map_err(|e| self.inner.refine(session, e))
    }

    async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>> {
        self.inner.claim_of(job).await
    }

    async fn record_runs(
        &self,
        session: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>> {
        let result = self.inner.record_runs(session, records).await;
        result.map_err(|e| self.inner.refine(session, e))
    }

    async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>> {
        self.inner.runs(job, query).await
    }
}
