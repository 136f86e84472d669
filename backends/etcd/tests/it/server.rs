//! Private etcd servers that a fault test may stop and restart, and a TCP proxy that cuts connections.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A single-member etcd on loopback with its own data directory, for one test.
pub struct PrivateEtcd {
    dir: tempfile::TempDir,
    port: u16,
    peer: u16,
    child: Option<Child>,
}

/// Whether private servers can run here: under `CI` they must; outside, a missing `etcd` or an unset
/// `CAMPANILE_TEST_ETCD` (the signal that real-server tests are wanted) skips with a notice.
pub fn private_servers_wanted(test: &str) -> bool {
    let has_etcd = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if std::env::var_os("CI").is_some() {
        assert!(
            has_etcd,
            "{test}: etcd is not installed under CI (scripts/etcd.sh installs it)"
        );
        return true;
    }
    if super::shared_endpoints(test).is_none() {
        return false;
    }
    if !has_etcd {
        eprintln!("{test}: skipped: no etcd binary on PATH");
    }
    has_etcd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PrivateEtcd {
    /// Starts a new etcd and waits until it answers.
    pub async fn start() -> Self {
        let mut etcd = Self {
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            peer: free_port(),
            child: None,
        };
        etcd.restart().await;
        etcd
    }

    /// `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: a crash) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same ports and data, and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let data: PathBuf = self.dir.path().join("data");
        let client = format!("http://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log");
        let child = Command::new("etcd")
            .args(["--name", "private"])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("private={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
        let endpoint = self.endpoint();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let up = async {
                let mut client = etcd_client::Client::connect([&endpoint], None).await?;
                client.get("health-probe", None).await
            };
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), up).await {
                return;
            }
            let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
            assert!(
                tokio::time::Instant::now() < deadline,
                "the private etcd did not come up; its log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Compacts the history up to the current revision.
    pub async fn compact(&self) -> i64 {
        let mut client = etcd_client::Client::connect([self.endpoint()], None)
            .await
            .expect("connect");
        let revision = client
            .get("compact-probe", None)
            .await
            .expect("get")
            .header()
            .map_or(0, |h| h.revision());
        client
            .compact(
                revision,
                Some(etcd_client::CompactionOptions::new().with_physical()),
            )
            .await
            .expect("compact");
        revision
    }
}

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy to `upstream` whose connections can be cut (all closed, new ones refused) and healed.
pub struct Proxy {
    addr: SocketAddr,
    open: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port.
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(watch::Sender::new(true));
        let task = tokio::spawn({
            let open = Arc::clone(&open);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let mut state = open.subscribe();
                    if !*state.borrow_and_update() {
                        continue; // refused: dropped at once
                    }
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = state.wait_for(|open| !*open) => {}
                        }
                    });
                }
            }
        });
        Self { addr, open, task }
    }

    /// `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Accepts connections again.
    pub fn heal(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
