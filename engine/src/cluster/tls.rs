//! TLS on the cluster port. `ractor_cluster` can accept TLS itself, but it does the handshake inside its one
//! accept loop: a client that connects and says nothing would stall every later connection. So a node with TLS
//! runs its own listener: each connection's handshake runs in a task of its own, within
//! [`HANDSHAKE_TIMEOUT`], at most [`MAX_HANDSHAKES`] at once; a finished one is handed to the node's
//! `ractor_cluster` server as an external stream, where the cookie handshake follows as on a plain
//! connection. (The server then listens on an ephemeral loopback port of its own, which only takes the cookie,
//! as a worker's does.) A worker with TLS connects, completes the handshake, and hands the stream to its own
//! server the same way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::{BoxRead, BoxWrite, ClusterBidiStream, NodeServerMessage};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// How long a connection may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most TLS handshakes in progress at once on a node's cluster port; further connections wait in the
/// kernel's accept queue.
pub const MAX_HANDSHAKES: usize = 64;

/// A TLS stream as `ractor_cluster` takes an external transport, labelled with the peer's address (the
/// worker's link tasks know a session by it).
struct Stream<S> {
    inner: S,
    peer: String,
    local: String,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> ClusterBidiStream for Stream<S> {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let (read, write) = tokio::io::split(self.inner);
        (Box::new(read), Box::new(write))
    }

    fn peer_label(&self) -> Option<String> {
        Some(self.peer.clone())
    }

    fn local_label(&self) -> Option<String> {
        Some(self.local.clone())
    }
}

/// Accepts connections on `listener` and hands each one that completes the TLS handshake to `server`.
/// Runs until aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    server: ActorRef<NodeServerMessage>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                warn!(error = %e, "the cluster port could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let local = stream
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let stream = Stream {
                        inner: tls,
                        peer: peer.to_string(),
                        local,
                    };
                    let _ = server.cast(NodeServerMessage::ConnectionOpenedExternal {
                        stream: Box::new(stream),
                        is_server: true,
                    });
                    debug!(%peer, "cluster TLS session opened");
                }
                Ok(Err(e)) => warn!(
                    %peer,
                    error = %e,
                    "refused a cluster connection: no TLS handshake (a worker without --cluster-tls-ca, or not a worker)"
                ),
                Err(_) => warn!(%peer, "refused a cluster connection: no TLS handshake within 5s"),
            }
        });
    }
}

/// How a worker dials its nodes: plain TCP, or TLS with a client configuration and the name each node's
/// certificate must carry (the host of the address the worker was given, a DNS name or an IP).
#[derive(Clone, Default)]
pub(crate) struct Dial {
    tls: Option<tokio_rustls::TlsConnector>,
    names: Arc<Mutex<HashMap<SocketAddr, ServerName<'static>>>>,
}

impl Dial {
    pub(crate) fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self {
            tls: tls.map(tokio_rustls::TlsConnector::from),
            names: Arc::default(),
        }
    }

    /// Remembers that `addr` was given as `given` (`host:port`), so that its certificate is checked for that
    /// host.
    pub(crate) fn remember(&self, addr: SocketAddr, given: &str) {
        let host = given
            .rsplit_once(':')
            .map_or(given, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        if let Ok(name) = ServerName::try_from(host.to_owned()) {
            self.names
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(addr, name);
        }
    }

    /// Opens a connection to `addr` and hands it to `server`, which then runs the cookie handshake.
    pub(crate) async fn connect(
        &self,
        server: &ActorRef<NodeServerMessage>,
        addr: SocketAddr,
    ) -> Result<(), String> {
        let Some(connector) = &self.tls else {
            return ractor_cluster::client_connect(server, addr)
                .await
                .map_err(|e| e.to_string());
        };
        let name = self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&addr)
            .cloned()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("no TCP connection within {HANDSHAKE_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream))
            .await
            .map_err(|_| "no TLS handshake within 5s (is the node's cluster port TLS?)".to_owned())?
            .map_err(|e| {
                format!("TLS handshake failed: {e} (is the node's cluster port TLS, with a certificate for this address signed by the CA given?)")
            })?;
        ractor_cluster::client_connect_external(
            server,
            Box::new(Stream {
                inner: tls,
                peer: addr.to_string(),
                local,
            }),
        )
        .await
        .map_err(|e| e.to_string())
    }
}

/// Binds the cluster port for the TLS listener.
pub(crate) async fn bind(listen: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cluster listen address {listen}: {e}"))
}
