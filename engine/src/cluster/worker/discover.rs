//! Nodes found through the coordinator: every live member publishes its cluster address with its membership
//! (`NodeInfo::cluster_address`), and a worker given the coordinator links to each of them, following the
//! members as nodes join and leave.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::link::{Sessions, keep_linked};
use crate::cluster::tls::Dial;
use crate::coordinator::{Coordinator, Members};

/// The cluster addresses the members publish, resolved (an address that does not resolve is logged and
/// skipped: one node's bad setting must not keep a worker from the others), each remembered by `dial` as
/// the name its TLS certificate must carry.
pub(super) async fn addresses(members: &Members, dial: &Dial) -> BTreeSet<SocketAddr> {
    let mut found = BTreeSet::new();
    for member in &members.members {
        let Some(address) = &member.node.cluster_address else {
            continue;
        };
        match tokio::net::lookup_host(address.as_str()).await {
            Ok(mut resolved) => {
                if let Some(addr) = resolved.next() {
                    dial.remember(addr, address);
                    found.insert(addr);
                }
            }
            Err(e) => {
                warn!(node = %member.node.id, %address, error = %e, "a node's cluster address does not resolve")
            }
        }
    }
    found
}

/// A link task that ends when this is dropped.
struct Linked(JoinHandle<()>);

impl Drop for Linked {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps the worker linked to every member that publishes a cluster address, beside the `join` addresses
/// (`fixed`, linked by their own tasks). `initial` are the links the worker's start made from the members it
/// read; a member that leaves has its link closed, a new one is linked. Ends (closing its links) when aborted.
pub(super) async fn follow(
    coordinator: Arc<dyn Coordinator>,
    server: ActorRef<NodeServerMessage>,
    dial: Dial,
    sessions: Sessions,
    fixed: BTreeSet<SocketAddr>,
    initial: Vec<(SocketAddr, JoinHandle<()>)>,
    handshake_timeout: Duration,
) {
    let mut links: HashMap<SocketAddr, Linked> = initial
        .into_iter()
        .map(|(addr, task)| (addr, Linked(task)))
        .collect();
    let mut backoff = Duration::from_millis(200);
    loop {
        match coordinator.watch_members().await {
            Ok(mut members) => {
                backoff = Duration::from_millis(200);
                loop {
                    let current = members.borrow_and_update().clone();
                    let wanted: BTreeSet<SocketAddr> = addresses(&current, &dial)
                        .await
                        .into_iter()
                        .filter(|a| !fixed.contains(a))
                        .collect();
                    links.retain(|addr, _| {
                        let keep = wanted.contains(addr);
                        if !keep {
                            info!(node = %addr, "a node left the members; closing its link");
                        }
                        keep
                    });
                    for addr in wanted {
                        links.entry(addr).or_insert_with(|| {
                            info!(node = %addr, "a node joined the members; linking to it");
                            Linked(tokio::spawn(keep_linked(
                                server.clone(),
                                dial.clone(),
                                addr,
                                sessions.watch(addr),
                                handshake_timeout,
                            )))
                        });
                    }
                    if members.changed().await.is_err() {
                        break;
                    }
                }
                debug!("the coordinator's member watch ended; watching again");
            }
            Err(e) => warn!(error = %e, "cannot watch the coordinator's members; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
