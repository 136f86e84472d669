//! `LocalSession`: a Campanile session opened by this process, held as a ZooKeeper session of its own.
//!
//! # Ids
//!
//! A ZooKeeper session id is not a Campanile session id: a standalone server derives its session ids from a
//! monotonic clock that restarts with the machine, so ids can repeat across restarts. The Campanile id is the
//! zxid of a write to `/meta/session-seq` made when the session opens: zxids are unique and grow for the
//! life of the ensemble, so an id is never handed out twice in a namespace, also across server restarts.
//!
//! # Liveness
//!
//! The session is alive while its ephemeral znode `/sessions/<id>` exists; every fenced write checks that
//! znode in the same `multi`. Three things end it, and each is final:
//! - its TTL passes without a successful keep-alive (a `tokio::time` timer: a node whose engine stopped
//!   renewing must lose its jobs even though the ZooKeeper client would keep pinging);
//! - ZooKeeper expires or closes the ZooKeeper session (the process was cut off longer than the session
//!   timeout), or the client fails authentication;
//! - `/sessions/<id>` is deleted (a close, possibly by another client).
//!
//! Ending drops the session's client, which closes the ZooKeeper session, so its ephemeral znodes (session,
//! member, election candidate) disappear at once for every other node. The ZooKeeper session timeout is the
//! TTL (the server must grant at least the TTL, or the open fails), so a process that dies or is cut off
//! loses its znodes no earlier than TTL after its last successful keep-alive was *sent*: a keep-alive is a
//! round trip on the session's own connection, which resets the server's expiry countdown after it was sent.
//! The engine fences itself at that same bound, so a disconnected node stops firing before anyone can take
//! its jobs. While disconnected the state is `Suspended`; it never goes back to `Alive` after `Expired`, and
//! an expired session is never reconnected under the same id: the engine opens a new one.
//!
//! # Other clients
//!
//! The conformance suite, and embedded users with several coordinators in one process, may act for a
//! session through another coordinator than the one that opened it. Sessions are therefore registered
//! process-wide by namespace and id; calls that must run on the session's own connection (keep-alive,
//! campaign) find it there. Fenced writes need no registry: any connection can check `/sessions/<id>`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use campanile::coordinator::{CoordResult, NodeInfo, SessionId, SessionState};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, info};
use zookeeper_client as zk;

use crate::error::expired;

/// Sessions opened in this process, by namespace and id.
type Registry = HashMap<(Arc<str>, u64), Weak<LocalSession>>;
static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // The registry holds no invariant a panic could break (it maps keys to weak handles).
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The session `id` of namespace `namespace`, if this process opened it and it is not dropped.
pub(crate) fn lookup(namespace: &Arc<str>, id: SessionId) -> Option<Arc<LocalSession>> {
    registry()
        .get(&(Arc::clone(namespace), id.0))
        .and_then(Weak::upgrade)
}

/// The election candidate a session holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Its znode, `/election/c-<session>-<sequence>`.
    pub(crate) path: String,
    /// Its czxid: the epoch of the term, should it lead.
    pub(crate) epoch: u64,
    /// Whether a campaign confirmed it as leader (its znode is at version 1).
    pub(crate) confirmed: bool,
}

/// A Campanile session opened by this process.
pub(crate) struct LocalSession {
    pub(crate) id: SessionId,
    pub(crate) node: NodeInfo,
    pub(crate) ttl: Duration,
    namespace: Arc<str>,
    /// Taken when the session ends: dropping the last clone closes the ZooKeeper session.
    client: Mutex<Option<zk::Client>>,
    state: watch::Sender<SessionState>,
    /// It ends when `tokio::time::Instant::now()` reaches this without a keep-alive.
    deadline: Mutex<Instant>,
    /// The election candidate, once created. Campaigns of this session are serialized by this lock.
    pub(crate) candidate: tokio::sync::Mutex<Option<Candidate>>,
    supervisor: Mutex<Option<AbortHandle>>,
}

impl std::fmt::Debug for LocalSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSession")
            .field("id", &self.id)
            .field("node", &self.node.id)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every value behind these locks is replaced whole, so a poisoned one is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LocalSession {
    /// Wraps an opened session (its znodes exist) and starts watching it. `opened` is when its znodes were
    /// created: the TTL counts from there.
    pub(crate) fn start(
        namespace: Arc<str>,
        id: SessionId,
        node: NodeInfo,
        ttl: Duration,
        client: zk::Client,
        opened: Instant,
    ) -> Arc<Self> {
        let states = client.state_watcher();
        let session = Arc::new(Self {
            id,
            node,
            ttl,
            namespace: Arc::clone(&namespace),
            client: Mutex::new(Some(client.clone())),
            state: watch::Sender::new(SessionState::Alive),
            deadline: Mutex::new(opened + ttl),
            candidate: tokio::sync::Mutex::new(None),
            supervisor: Mutex::new(None),
        });
        registry().insert((namespace, id.0), Arc::downgrade(&session));
        let task = tokio::spawn(supervise(Arc::downgrade(&session), states, client));
        *lock(&session.supervisor) = Some(task.abort_handle());
        session
    }

    /// The session's client, or `SessionExpired` once it ended.
    pub(crate) fn client(&self) -> CoordResult<zk::Client> {
        lock(&self.client).clone().ok_or_else(|| expired(self.id))
    }

    /// Whether the session ended.
    pub(crate) fn is_ended(&self) -> bool {
        *self.state.borrow() == SessionState::Expired
    }

    /// A receiver of the session's state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<SessionState> {
        self.state.subscribe()
    }

    /// When the session ends without a keep-alive.
    pub(crate) fn deadline(&self) -> Instant {
        *lock(&self.deadline)
    }

    /// A keep-alive sent at `sent` succeeded: the session lives at least its TTL from then.
    pub(crate) fn extend(&self, sent: Instant) {
        let mut deadline = lock(&self.deadline);
        *deadline = (*deadline).max(sent + self.ttl);
    }

    fn set_state(&self, state: SessionState) {
        self.state.send_if_modified(|current| {
            if *current == SessionState::Expired || *current == state {
                return false;
            }
            *current = state;
            true
        });
    }

    /// Ends the session for good: reports `Expired`, stops watching, and drops the client (closing the
    /// ZooKeeper session once no call still holds a clone of it).
    pub(crate) fn end(&self, reason: &str) {
        let first = self.state.send_if_modified(|current| {
            let changed = *current != SessionState::Expired;
            *current = SessionState::Expired;
            changed
        });
        if first {
            info!(session = %self.id, node = %self.node.id, reason, "session ended");
        }
        let client = lock(&self.client).take();
        if let Some(task) = lock(&self.supervisor).take() {
            task.abort();
        }
        drop(client);
    }
}

impl Drop for LocalSession {
    fn drop(&mut self) {
        self.end("its coordinator was dropped");
        let mut registry = registry();
        let key = (Arc::clone(&self.namespace), self.id.0);
        if registry.get(&key).is_some_and(|w| w.strong_count() == 0) {
            registry.remove(&key);
        }
    }
}

/// Follows one session until it ends: its TTL, its ZooKeeper session's state, and its `/sessions` znode.
/// Nothing here waits on the connection outside the `select!`, so the TTL is enforced while disconnected.
async fn supervise(session: Weak<LocalSession>, mut states: zk::StateWatcher, client: zk::Client) {
    let Some(path) = session.upgrade().map(|s| crate::paths::session(s.id)) else {
        return;
    };
    let node_gone = async {
        loop {
            match client.check_and_watch_stat(&path).await {
                Ok((None, _)) => return "its znode was deleted".to_owned(),
                Ok((Some(_), watcher)) => {
                    let event = watcher.changed().await;
                    if event.event_type == zk::EventType::NodeDeleted {
                        return "its znode was deleted".to_owned();
                    }
                    if event.session_state.is_terminated() {
                        return format!("the ZooKeeper session ended ({})", event.session_state);
                    }
                }
                Err(
                    error @ (zk::Error::SessionExpired
                    | zk::Error::ClientClosed
                    | zk::Error::AuthFailed),
                ) => return format!("the ZooKeeper session ended ({error})"),
                Err(error) => {
                    debug!(%error, "watching the session znode failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    tokio::pin!(node_gone);
    loop {
        let Some(deadline) = session.upgrade().map(|s| s.deadline()) else {
            return;
        };
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(deadline) => {
                let Some(s) = session.upgrade() else { return };
                if Instant::now() >= s.deadline() {
                    retire(&client, &s).await;
                    s.end("no keep-alive within the ttl");
                    return;
                }
            }
            state = states.changed() => {
                let Some(s) = session.upgrade() else { return };
                match state {
                    zk::SessionState::Disconnected => s.set_state(SessionState::Suspended),
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        s.set_state(SessionState::Alive);
                    }
                    terminal => {
                        s.end(&format!("the ZooKeeper session ended ({terminal})"));
                        return;
                    }
                }
            }
            reason = &mut node_gone => {
                if let Some(s) = session.upgrade() {
                    s.end(&reason);
                }
                return;
            }
        }
    }
}

/// Removes what this ZooKeeper session owns (its member, session and election znodes) before the session is
/// reported `Expired`, so that every client's `members` and `leader` agree with the report at once instead of
/// when the server expires the session, up to a tick later. Bounded; when the server cannot be reached the
/// znodes go with the server's expiry, as before. Only znodes whose ephemeral owner is this ZooKeeper session
/// are deleted, so a later session of the same node is never touched.
async fn retire(client: &zk::Client, session: &LocalSession) {
    const BOUND: Duration = Duration::from_secs(1);
    let owner = client.session_id().0;
    let work = async {
        let mut paths = vec![
            crate::paths::member(&session.node.id),
            crate::paths::session(session.id),
        ];
        let prefix = crate::paths::candidate_prefix(session.id);
        if let Ok(names) = client.list_children(crate::paths::ELECTION).await {
            paths.extend(
                names
                    .into_iter()
                    .map(|name| format!("{}/{name}", crate::paths::ELECTION))
                    .filter(|path| path.starts_with(&prefix)),
            );
        }
        for path in paths {
            if let Ok(Some(stat)) = client.check_stat(&path).await
                && stat.ephemeral_owner == owner
                && let Err(error) = client.delete(&path, Some(stat.version)).await
            {
                debug!(%error, path, "removing an ephemeral of an ended session failed");
            }
        }
    };
    if tokio::time::timeout(BOUND, work).await.is_err() {
        debug!(session = %session.id, "removing an ended session's ephemerals timed out; the server will");
    }
}
