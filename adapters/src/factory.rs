//! The factory trait a backend implements to run the conformance suite: fresh namespaces, clients onto them,
//! a cleanup guard, and the backend's timing.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use campanile::Coordinator;
use futures::future::BoxFuture;

/// Builds fresh, empty namespaces of one backend for the conformance suite.
///
/// Every case asks for its own namespace, so cases never see each other's sessions, jobs or revisions.
/// A backend on a shared server (etcd, ZooKeeper) gives each namespace its own key prefix or chroot and
/// removes it in the [`CleanupGuard`].
#[async_trait]
pub trait CoordinatorFactory: Send + Sync {
    /// The backend's timing and settings. Called at the start of every case, before
    /// [`CoordinatorFactory::namespace`], and once more by each test of
    /// [`conformance_suite!`](crate::conformance_suite) to check its clock option: twice per test through the
    /// macro, once through [`suite::run_case`](crate::suite::run_case) or a case called directly. It must be
    /// cheap and return the same profile every time.
    fn profile(&self) -> BackendProfile;

    /// Builds a fresh, empty namespace and `options.clients` coordinator clients onto it.
    ///
    /// For an in-process backend the clients may all be the same shared instance; for a networked backend
    /// they should be separate connections, so that the suite sees what different nodes see.
    async fn namespace(&self, options: NamespaceOptions) -> Result<Namespace, SetupError>;
}

/// The timing and settings of a backend, as the suite must know them.
///
/// Build it with struct update syntax from [`BackendProfile::default`], which describes a real-time
/// backend with second-scale TTLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendProfile {
    /// The smallest TTL the backend honours. Sessions that a case wants to see expire ask for this one; the
    /// backend may round it up (the suite then uses the granted TTL).
    pub min_ttl: Duration,
    /// How late after its TTL elapsed an expiry may be observed through `watch_session` or `watch_members`:
    /// the server's expiry tick, plus scheduling noise on a loaded machine. A case fails when an expiry is
    /// later than TTL + this slack.
    pub expiry_slack: Duration,
    /// A TTL comfortably longer than any case: sessions that must stay alive through a case use it and are
    /// never kept alive by the suite.
    pub long_ttl: Duration,
    /// Whether the cases run on paused tokio time (the `paused_time` option of
    /// [`conformance_suite!`](crate::conformance_suite)) and the backend's expiry is driven by it. A backend
    /// whose clock is a server's (etcd, ZooKeeper) must say `false`.
    pub paused_time: bool,
    /// The backend's `history_limit` (run records kept per job, at least 100) in the namespaces this factory
    /// builds.
    pub history_limit: usize,
    /// Whether the factory honours [`NamespaceOptions::watch_retention`]. When false, the suite cannot make
    /// the backend compact, and the `Compacted` line of `watch_jobs` is not checked.
    pub configurable_watch_retention: bool,
}

impl Default for BackendProfile {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(2),
            expiry_slack: Duration::from_secs(5),
            long_ttl: Duration::from_secs(600),
            paused_time: false,
            history_limit: 100,
            configurable_watch_retention: false,
        }
    }
}

/// What a case asks of a new namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamespaceOptions {
    /// How many coordinator clients to hand out (at least 1).
    pub clients: usize,
    /// When set, and [`BackendProfile::configurable_watch_retention`] is true: the job store keeps only about
    /// this many of its latest revisions for `watch_jobs` to resume from (older ones are compacted). The
    /// factory maps it onto the backend's own setting; the suite asks for a small value only in the
    /// compaction case.
    pub watch_retention: Option<u64>,
}

impl NamespaceOptions {
    /// `clients` clients, default retention.
    pub fn clients(clients: usize) -> Self {
        Self {
            clients: clients.max(1),
            watch_retention: None,
        }
    }

    /// The same, with a watch retention of `revisions`.
    pub fn with_watch_retention(mut self, revisions: u64) -> Self {
        self.watch_retention = Some(revisions);
        self
    }
}

/// Reconnects to the same namespace after every client was dropped: see [`Namespace::with_restart`].
pub type RestartFn = Box<
    dyn FnMut() -> BoxFuture<'static, Result<Vec<Arc<dyn Coordinator>>, SetupError>> + Send + Sync,
>;

/// A fresh namespace, the clients onto it, and what to clean up afterwards.
pub struct Namespace {
    clients: Vec<Arc<dyn Coordinator>>,
    guard: CleanupGuard,
    restart: Option<RestartFn>,
}

impl Namespace {
    /// A namespace reached through `clients` (at least one), cleaned up by `guard`.
    pub fn new(clients: Vec<Arc<dyn Coordinator>>, guard: CleanupGuard) -> Self {
        assert!(!clients.is_empty(), "a namespace needs at least one client");
        Self {
            clients,
            guard,
            restart: None,
        }
    }

    /// Declares that the backend can be restarted over this namespace's durable state (a durable
    /// in-process file reopened, a fresh connection to a server). `restart` is a [`RestartFn`]: a boxed
    /// `FnMut() -> BoxFuture<'static, Result<Vec<Arc<dyn Coordinator>>, SetupError>>`, called (possibly several
    /// times) after every client of the namespace was dropped; its future returns as many new clients onto the
    /// same namespace. Do the blocking part (reopening a file) before the `Box::pin(async move { .. })`, or
    /// inside it. The suite then checks what the contract promises across restarts: session ids are never
    /// reused, epochs and store revisions keep growing. A memory-only backend does not declare it: its
    /// namespace does not outlive its process, and the restart case reports itself not run.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use campanile::Coordinator;
    /// # use campanile_adapters::{CleanupGuard, Namespace, RestartFn, SetupError};
    /// # fn open(path: &std::path::Path) -> Result<Arc<dyn Coordinator>, String> { unimplemented!() }
    /// # fn build(path: std::path::PathBuf, first: Arc<dyn Coordinator>) -> Namespace {
    /// let restart: RestartFn = Box::new(move || {
    ///     let reopened = open(&path);
    ///     Box::pin(async move { Ok(vec![reopened.map_err(SetupError::failed)?]) })
    /// });
    /// Namespace::new(vec![first], CleanupGuard::none()).with_restart(restart)
    /// # }
    /// ```
    pub fn with_restart(mut self, restart: RestartFn) -> Self {
        self.restart = Some(restart);
        self
    }

    /// Wraps every client, now and after each restart, with `wrap` (a fault-injecting, counting or logging
    /// wrapper over any factory's namespace).
    pub fn wrap<W>(mut self, wrap: W) -> Self
    where
        W: Fn(Arc<dyn Coordinator>) -> Arc<dyn Coordinator> + Send + Sync + 'static,
    {
        let wrap = Arc::new(wrap);
        self.clients = self.clients.into_iter().map(|c| wrap(c)).collect();
        if let Some(mut restart) = self.restart.take() {
            self.restart = Some(Box::new(move || {
                let reopened = restart();
                let wrap = Arc::clone(&wrap);
                Box::pin(async move { Ok(reopened.await?.into_iter().map(|c| wrap(c)).collect()) })
            }));
        }
        self
    }

    /// The clients, at least one.
    pub fn clients(&self) -> &[Arc<dyn Coordinator>] {
        &self.clients
    }

    /// Client `i`, wrapping around: `client(k)` for any `k` is one of the clients.
    pub fn client(&self, i: usize) -> &Arc<dyn Coordinator> {
        &self.clients[i % self.clients.len()]
    }

    /// Whether [`Namespace::restart`] is supported.
    pub fn can_restart(&self) -> bool {
        self.restart.is_some()
    }

    /// Drops every client, then restarts the backend over the same namespace and takes the new clients.
    /// Returns false (and changes nothing) when the backend declared no restart. Clones of the old clients
    /// that the caller still holds must be dropped before.
    pub async fn restart(&mut self) -> Result<bool, SetupError> {
        let Some(restart) = self.restart.as_mut() else {
            return Ok(false);
        };
        let count = self.clients.len();
        self.clients.clear();
        let clients = restart().await?;
        if clients.len() != count {
            return Err(SetupError::Failed(format!(
                "restart returned {} clients, expected {count}",
                clients.len()
            )));
        }
        self.clients = clients;
        Ok(true)
    }

    /// Drops the clients, then runs the guard's cleanup. The suite calls it at the end of a passing case; a
    /// failing case only drops the namespace (the guard's held values are dropped, its async cleanup is not run).
    pub async fn cleanup(mut self) {
        self.clients.clear();
        self.restart = None;
        self.guard.finish().await;
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("clients", &self.clients.len())
            .field("can_restart", &self.can_restart())
            .finish_non_exhaustive()
    }
}

/// An async cleanup step: see [`CleanupGuard::on_finish`].
pub type CleanupFn = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send + Sync>;

/// What to clean up after a case: values to keep alive until then (a temporary directory) and an async
/// step (delete an etcd prefix). Dropping the guard drops the held values; the async step runs only through
/// [`Namespace::cleanup`], at the end of a passing case.
#[derive(Default)]
pub struct CleanupGuard {
    held: Vec<Box<dyn Any + Send + Sync>>,
    on_finish: Vec<CleanupFn>,
}

impl CleanupGuard {
    /// Nothing to clean up (a memory namespace dies with its clients).
    pub fn none() -> Self {
        Self::default()
    }

    /// Keeps `value` alive until the case ends, then drops it (a `tempfile::TempDir`).
    pub fn hold(mut self, value: impl Any + Send + Sync) -> Self {
        self.held.push(Box::new(value));
        self
    }

    /// Runs `step` at the end of a passing case, after every client was dropped.
    pub fn on_finish<F>(mut self, step: F) -> Self
    where
        F: FnOnce() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        self.on_finish.push(Box::new(step));
        self
    }

    pub(crate) async fn finish(mut self) {
        for step in self.on_finish.drain(..) {
            step().await;
        }
        self.held.clear();
    }
}

impl fmt::Debug for CleanupGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CleanupGuard")
            .field("held", &self.held.len())
            .field("on_finish", &self.on_finish.len())
            .finish()
    }
}

/// Why a factory could not build a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupError {
    /// The backend is not available here and the case should pass without checking anything, after printing
    /// the reason (a real-server test whose `CAMPANILE_TEST_ETCD` is unset outside CI).
    Skip(String),
    /// The namespace could not be built: the case fails with this message.
    Failed(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Skip(reason) => write!(f, "skipped: {reason}"),
            SetupError::Failed(reason) => write!(f, "setup failed: {reason}"),
        }
    }
}

impl std::error::Error for SetupError {}

impl SetupError {
    /// A failure from any error.
    pub fn failed(error: impl fmt::Display) -> Self {
        SetupError::Failed(error.to_string())
    }
}
