//! Executor groups: jobs that name `"executor": {"group": …}` run on workers of that group, over
//! `ractor_cluster`, with the guarantees of a local run.
//!
//! ```text
//!  owning node                                         worker (campanile worker, or an embedded Worker)
//!  executor run task ──Start{start_by, session}──▶  WorkerActor: an offer; holds a slot, starts nothing
//!        ▲   ◀──────────Ready / Refused─────────────
//!        │   ──────────Go (to that worker only)────▶  starts only before start_by and while the owner's
//!        │   ◀──────────Acked / Refused─────────────    session is valid as last heard, then runs the target
//!   hub (registry) ◀────────Finished{result}────────    (command, HTTP, or a registered handler)
//!        │  ──Heartbeat{session, valid_until}──▶       every 250 ms
//!        │  ◀────────Alive{info, running}──────        every 500 ms (registers the worker)
//! ```
//!
//! - [`protocol`]: the wire messages.
//! - `hub` (cluster/hub.rs): the owner's registry of workers and [`Hub::attempt`], one fire attempt
//!   offered, told to go, acknowledged and answered, or accounted for as `misfired`/`in_doubt`.
//! - [`RemoteProgress`]: how far a dispatched fire got (waiting for a worker, maybe started, ran), which the
//!   owner's executor reads to judge overlap and to record a fire it withdraws.
//! - `worker` (cluster/worker.rs): [`Worker`], the other end.
//!
//! **Architecture Invariant:** leadership, assignment, claims and fencing never go through this module: the
//! owning node claims and fences every instant in the coordinator as for a local run, and a worker only ever
//! narrows what may start (a deadline, the owner's session); losing a message can make a fire `misfired` or
//! `in_doubt`, never run it twice.

use std::net::SocketAddr;
use std::sync::Arc;

use ractor::{Actor, ActorRef};
use ractor_cluster::{NodeServer, NodeServerMessage};

use crate::clock::Clock;
use crate::coordinator::NodeId;

mod hub;
mod progress;
pub mod protocol;
mod tls;
mod worker;

pub use hub::{
    HEARTBEAT, Hub, RemoteAttempt, SEND_WINDOW, UNCLAIMED_WINDOW, WORKER_TIMEOUT, WorkerEvent,
    WorkerStatus,
};
pub use progress::{RemotePhase, RemoteProgress};
pub use tls::{HANDSHAKE_TIMEOUT as TLS_HANDSHAKE_TIMEOUT, MAX_HANDSHAKES as MAX_TLS_HANDSHAKES};
pub use worker::{ALIVE_EVERY, LOOPBACK_COOKIE, Worker, WorkerBuilder, WorkerError};

/// A node's cluster port, where workers connect.
#[derive(Clone)]
pub struct ClusterConfig {
    /// Address to listen on (`127.0.0.1:7946`).
    pub listen: SocketAddr,
    /// The cookie workers must present.
    pub cookie: String,
    /// The address workers reach the port at, published with the node's membership for workers that find
    /// nodes through the coordinator; `listen` if absent.
    pub advertise: Option<String>,
    /// TLS on the port (the node's certificate and key); plain TCP if absent. Workers then need
    /// [`WorkerBuilder::tls`].
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ClusterConfig {
    /// The address published with the node's membership.
    pub fn advertised(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }
}

/// A node's open cluster port and hub; stopped with the node.
pub(crate) struct Listening {
    pub(crate) hub: Hub,
    /// The port (`None`: a hub for in-process workers only).
    pub(crate) listen: Option<SocketAddr>,
    server: Option<ActorRef<NodeServerMessage>>,
    hub_actor: ActorRef<protocol::ToHub>,
    /// The TLS listener, with TLS.
    tls: Option<tokio::task::JoinHandle<()>>,
}

impl Listening {
    /// Opens the port and starts the hub.
    pub(crate) async fn start(
        node: NodeId,
        clock: Arc<dyn Clock>,
        config: &ClusterConfig,
    ) -> Result<Self, String> {
        // With TLS the port is ours (tls.rs) and ractor_cluster's server listens on an ephemeral loopback
        // port; without, the server listens on the port itself.
        let tls_listener = match &config.tls {
            Some(_) => Some(tls::bind(config.listen).await?),
            None => {
                // Bind once ourselves to report a port in use as an error (ractor_cluster's listener would
                // only log it and stop).
                drop(
                    std::net::TcpListener::bind(config.listen)
                        .map_err(|e| format!("cluster listen address {}: {e}", config.listen))?,
                );
                None
            }
        };
        let (port, ip) = match &tls_listener {
            Some(_) => (0, std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            None => (config.listen.port(), config.listen.ip()),
        };
        let server = NodeServer::new(
            port,
            config.cookie.clone(),
            format!("campanile-node-{node}"),
            ip.to_string(),
            None,
            None,
        )
        .with_listen_addr(ip);
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| format!("cluster server: {e}"))?;
        let tls = tls_listener
            .zip(config.tls.clone())
            .map(|(listener, tls)| tokio::spawn(tls::serve(listener, tls, server.clone())));
        let hub = Hub::new(node, clock);
        let (hub_actor, _) = Actor::spawn(None, hub::HubActor, hub.clone())
            .await
            .map_err(|e| format!("cluster hub: {e}"))?;
        Ok(Self {
            hub,
            listen: Some(config.listen),
            server: Some(server),
            hub_actor,
            tls,
        })
    }

    /// A hub without a port: workers are in-process actors ([`Hub::attach`]).
    #[cfg(feature = "testing")]
    pub(crate) async fn local(node: NodeId, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let hub = Hub::new(node, clock);
        let (hub_actor, _) = Actor::spawn(None, hub::HubActor, hub.clone())
            .await
            .map_err(|e| format!("cluster hub: {e}"))?;
        Ok(Self {
            hub,
            listen: None,
            server: None,
            hub_actor,
            tls: None,
        })
    }

    /// Closes the port (workers see the link break) and stops the hub.
    pub(crate) async fn stop(&self) {
        if let Some(tls) = &self.tls {
            tls.abort();
        }
        let timeout = Some(std::time::Duration::from_secs(5));
        let _ = self.hub_actor.get_cell().stop_and_wait(None, timeout).await;
        if let Some(server) = &self.server {
            let _ = server.get_cell().stop_and_wait(None, timeout).await;
        }
    }
}
