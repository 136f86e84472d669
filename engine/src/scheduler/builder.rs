//! [`Builder`]: what a node is made of (coordinator, identity, handlers, limits), checked and started as a
//! [`Scheduler`].

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::Actor;
use rand::SeedableRng;

use crate::clock::{Clock, SystemClock};
use crate::coordinator::{Coordinator, NodeId, NodeInfo};
use crate::exec::{BaseEnv, Egress, FireContext};
use crate::node;
use crate::node::executor::{Handler, HandlerError, HandlerFuture, Handlers};

use super::{Inner, RUN_FEED_CAPACITY, Scheduler, SchedulerError};

/// Builds and starts a [`Scheduler`] node.
pub struct Builder {
    coordinator: Option<Arc<dyn Coordinator>>,
    node_id: Option<String>,
    labels: BTreeSet<String>,
    capacity: Option<u64>,
    address: Option<String>,
    handlers: Handlers,
    base_env: Option<BaseEnv>,
    egress: Egress,
    clock: Option<Arc<dyn Clock>>,
    seed: Option<u64>,
    config: node::Config,
    cluster: Option<crate::cluster::ClusterConfig>,
    /// A hub without a cluster port (in-process workers only): the simulation's.
    #[cfg(feature = "testing")]
    local_hub: bool,
    history: Option<Arc<dyn crate::history::HistoryStore>>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            coordinator: None,
            node_id: None,
            labels: BTreeSet::new(),
            capacity: None,
            address: None,
            handlers: Handlers::default(),
            base_env: None,
            egress: Egress::default(),
            clock: None,
            seed: None,
            cluster: None,
            #[cfg(feature = "testing")]
            local_hub: false,
            history: None,
            config: node::Config {
                ttl: Duration::from_secs(10),
                lookahead: Duration::from_secs(5),
                misfire_threshold: Duration::from_secs(5),
                max_concurrent: 10_000,
                rebalance_delay: Duration::from_millis(100),
            },
        }
    }
}

impl Builder {
    /// The coordinator (required): `campanile_inproc::InprocCoordinator`, etcd, ZooKeeper, or your own.
    pub fn coordinator(mut self, coordinator: Arc<dyn Coordinator>) -> Self {
        self.coordinator = Some(coordinator);
        self
    }

    /// This node's id (default `node-1`); unique among live nodes.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(id.into());
        self
    }

    /// Labels that jobs' `node_labels` are matched against.
    pub fn labels<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// Most total job weight this node owns.
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The node's API address, shown to operators.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Registers an in-process handler under `name` (for `Target::Handler`). Return an error to fail the run
    /// (any error: `?` works; its text becomes the run's reason; text alone is `Err("why".into())`); a panic
    /// fails the run too, and never the node.
    pub fn handler<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(FireContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx| -> HandlerFuture { Box::pin(handler(ctx)) });
        self.handlers.insert(name.into(), handler);
        self
    }

    /// The environment commands start from, before their job's `env` and the `CAMPANILE_*` fire variables
    /// (default: [`BaseEnv::default`], this process's `PATH`, `HOME`, `LANG` and `TZ` when the node starts).
    /// Commands never inherit the rest of the node's environment: name more with [`BaseEnv::inherit`].
    pub fn command_env(mut self, env: BaseEnv) -> Self {
        self.base_env = Some(env);
        self
    }

    /// Where HTTP targets may connect (default: anywhere but link-local networks, [`Egress::default`]).
    pub fn egress(mut self, egress: Egress) -> Self {
        self.egress = egress;
        self
    }

    /// Most runs at once on this node (default 10,000); further fires wait in order.
    pub fn max_concurrent_runs(mut self, max: usize) -> Self {
        self.config.max_concurrent = max.max(1);
        self
    }

    /// The clock (default: [`SystemClock`]). Tests use `SystemClock::starting_at` on paused tokio time.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Seed of the RNG that generates job ids (default: derived from the clock and node id).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Session TTL (default 10 s): a crashed node's jobs move after this long.
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// How far ahead instants are claimed (default 5 s, capped at half the TTL).
    pub fn claim_lookahead(mut self, lookahead: Duration) -> Self {
        self.config.lookahead = lookahead.max(Duration::from_millis(100));
        self
    }

    /// An instant that could not start within this long is a misfire, handled by its policy (default 5 s).
    pub fn misfire_threshold(mut self, threshold: Duration) -> Self {
        self.config.misfire_threshold = threshold;
        self
    }

    /// How long the leader waits after a change before publishing a new assignment (default 100 ms).
    pub fn rebalance_delay(mut self, delay: Duration) -> Self {
        self.config.rebalance_delay = delay;
        self
    }

    /// Opens a cluster port where workers of executor groups connect (`campanile worker`, or an application's
    /// [`crate::Worker`]); jobs with `"executor": {"group": …}` run on them. Without it such jobs' fires are
    /// recorded `misfired`.
    pub fn cluster(mut self, config: crate::cluster::ClusterConfig) -> Self {
        self.cluster = Some(config);
        self
    }

    /// A hub of executor groups without a cluster port: workers are in-process actors attached with
    /// [`crate::cluster::Hub::attach`] (the cluster simulation). Ignored with [`Builder::cluster`].
    #[cfg(feature = "testing")]
    pub fn local_hub(mut self) -> Self {
        self.local_hub = true;
        self
    }

    /// A history store: every run record the coordinator accepts from this node is copied into it (at least
    /// once, in the background; see `campanile::history`), and [`Scheduler::history`] hands it back for reading.
    pub fn history(mut self, store: Arc<dyn crate::history::HistoryStore>) -> Self {
        self.history = Some(store);
        self
    }

    /// Starts the node: it joins, takes its jobs and fires them until [`Scheduler::shutdown`].
    pub async fn start(self) -> Result<Scheduler, SchedulerError> {
        let coordinator = self
            .coordinator
            .ok_or_else(|| SchedulerError::Build("a coordinator is required".into()))?;
        let node_id = NodeId::new(self.node_id.as_deref().unwrap_or("node-1"))?;
        let clock = self.clock.unwrap_or_else(|| SystemClock::new().shared());
        let seed = self.seed.unwrap_or_else(|| {
            let salt = node_id
                .as_str()
                .bytes()
                .fold(0u64, |h, b| h.rotate_left(7) ^ u64::from(b));
            clock.now_us() as u64 ^ salt
        });
        let info = NodeInfo {
            id: node_id.clone(),
            labels: self.labels,
            capacity: self.capacity,
            address: self.address,
            cluster_address: self
                .cluster
                .as_ref()
                .map(crate::cluster::ClusterConfig::advertised),
        };
        let (stored, _) = tokio::sync::broadcast::channel(RUN_FEED_CAPACITY);
        let base_env = self.base_env.unwrap_or_default();
        let cluster = match &self.cluster {
            Some(config) => Some(
                crate::cluster::Listening::start(node_id.clone(), clock.clone(), config)
                    .await
                    .map_err(SchedulerError::Build)?,
            ),
            #[cfg(feature = "testing")]
            None if self.local_hub => Some(
                crate::cluster::Listening::local(node_id.clone(), clock.clone())
                    .await
                    .map_err(SchedulerError::Build)?,
            ),
            None => None,
        };
        let args = node::Arguments {
            coordinator: coordinator.clone(),
            clock: clock.clone(),
            info,
            handlers: Arc::new(self.handlers),
            base_env: base_env.clone(),
            egress: self.egress,
            config: self.config,
            stored: stored.clone(),
            history: self.history.clone(),
            hub: cluster.as_ref().map(|c| c.hub.clone()),
        };
        let (node, _) = Actor::spawn(None, node::Node, args)
            .await
            .map_err(|e| SchedulerError::Build(e.to_string()))?;
        Ok(Scheduler {
            inner: Arc::new(Inner {
                coordinator,
                clock,
                node,
                node_id,
                stored,
                history: self.history,
                rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
                base_env,
                cluster,
            }),
        })
    }
}
