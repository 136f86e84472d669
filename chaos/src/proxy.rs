//! A TCP proxy between one node and one coordinator member, which the nemesis can cut.
//!
//! Modes: `Pass` forwards bytes; `Drop` closes every connection and refuses new ones at once (the node sees
//! resets, as when a firewall rejects); `Blackhole` keeps connections open and forwards nothing in either
//! direction (the node sees silence, as when packets vanish) until the mode changes again, then the bytes held
//! in the sockets flow on.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Reset every connection, refuse new ones.
    Drop,
    /// Hold every connection open and silent.
    Blackhole,
}

/// One listening proxy.
pub struct Proxy {
    /// The loopback port the node connects to.
    pub port: u16,
    mode: Arc<watch::Sender<Mode>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (tx, _) = watch::channel(Mode::Pass);
        let mode = Arc::new(tx);
        let accept_mode = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut watcher = accept_mode.subscribe();
                tokio::spawn(async move {
                    // A connection made during a blackhole waits for it to end; during a drop it is closed.
                    loop {
                        let now = *watcher.borrow_and_update();
                        match now {
                            Mode::Pass => break,
                            Mode::Drop => return,
                            Mode::Blackhole => {
                                if watcher.changed().await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let up = pump(client_read, server_write, watcher.clone());
                    let down = pump(server_read, client_write, watcher);
                    tokio::select! {
                        biased;
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        Ok(Proxy { port, mode })
    }

    /// Changes the mode of every connection, present and future.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// Copies one direction until either side closes or the mode is `Drop`; waits while it is `Blackhole`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Drop => return,
            Mode::Blackhole => {
                if mode.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Mode::Pass => {}
        }
        tokio::select! {
            biased;
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
