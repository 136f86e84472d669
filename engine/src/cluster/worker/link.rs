//! A worker's links to its nodes: `ractor_cluster` neither reconnects nor reports a wrong cookie, so each
//! address has a task that connects, waits for the session to become ready within the handshake timeout,
//! and connects again with backoff after the session is lost.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::{NodeEventSubscription, NodeServerMessage};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cluster::tls::Dial;

/// Session readiness by peer address, fed by the node server's events.
#[derive(Clone, Default)]
pub(super) struct Sessions(Arc<Mutex<HashMap<String, watch::Sender<bool>>>>);

impl Sessions {
    pub(super) fn watch(&self, addr: SocketAddr) -> watch::Receiver<bool> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(addr.to_string())
            .or_insert_with(|| watch::channel(false).0)
            .subscribe()
    }

    fn set(&self, peer: &str, ready: bool) {
        if let Some(tx) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(peer) {
            tx.send_replace(ready);
        }
    }
}

impl NodeEventSubscription for Sessions {
    fn node_session_opened(&self, _: ractor_cluster::node::NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        self.set(&ses.peer_addr, false);
    }

    fn node_session_authenticated(&self, _: ractor_cluster::node::NodeServerSessionInformation) {}

    fn node_session_ready(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        self.set(&ses.peer_addr, true);
    }
}

pub(super) enum Link {
    Handshake,
    Connect(String),
}

/// Connects once and waits for the session to be ready.
pub(super) async fn connect_once(
    server: &ActorRef<NodeServerMessage>,
    dial: &Dial,
    addr: SocketAddr,
    mut ready: watch::Receiver<bool>,
    timeout: Duration,
) -> Result<(), Link> {
    dial.connect(server, addr).await.map_err(Link::Connect)?;
    match tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(Link::Handshake),
    }
}

/// Keeps one node linked: waits for the session to drop, then connects again with backoff.
pub(super) async fn keep_linked(
    server: ActorRef<NodeServerMessage>,
    dial: Dial,
    addr: SocketAddr,
    mut ready: watch::Receiver<bool>,
    timeout: Duration,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if *ready.borrow() {
            if ready.wait_for(|r| !*r).await.is_err() {
                return;
            }
            warn!(node = %addr, "lost the link to a node; reconnecting");
            backoff = Duration::from_millis(200);
        }
        match connect_once(&server, &dial, addr, ready.clone(), timeout).await {
            Ok(()) => {
                info!(node = %addr, "linked to a node");
                continue;
            }
            Err(Link::Handshake) => {
                warn!(node = %addr, "no cluster handshake with a node in time (wrong cookie?); retrying");
            }
            Err(Link::Connect(e)) => {
                tracing::debug!(node = %addr, error = %e, "could not connect to a node")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
