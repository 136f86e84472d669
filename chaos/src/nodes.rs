//! The `campanile serve` processes under test: started, killed, frozen, restarted and stopped by the harness.
//! A node keeps its id, its listen port and its data directory across restarts.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One node process.
pub struct Node {
    /// Its id (`n1`, `n2`, ...).
    pub id: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    home: PathBuf,
    args: Vec<String>,
    binary: PathBuf,
    child: Option<Child>,
}

/// A free loopback port (bound, then released for the node to take).
fn free_port() -> anyhow::Result<u16> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?.port())
}

impl Node {
    /// A node (not started) with its home in `dir/ID`, run from `binary` with `config` and `coordinator`.
    pub fn new(
        binary: &Path,
        dir: &Path,
        id: &str,
        config: &Path,
        coordinator: &str,
    ) -> anyhow::Result<Node> {
        let home = dir.join(id);
        std::fs::create_dir_all(&home)?;
        let port = free_port()?;
        let args = vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            home.join("data").display().to_string(),
            "--config".into(),
            config.display().to_string(),
            "--coordinator".into(),
            coordinator.to_owned(),
            "--node-id".into(),
            id.to_owned(),
        ];
        Ok(Node {
            id: id.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            port,
            home,
            args,
            binary: binary.to_owned(),
            child: None,
        })
    }

    /// Whether the process runs (possibly frozen).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the process; its output goes to `ID/node.log`.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("{} runs already", self.id);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("node.log"))?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .env(
                "CAMPANILE_LOG",
                std::env::var("CHAOS_NODE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("CAMPANILE_CONFIG")
            .current_dir(&self.home)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("failed to start {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the node answers `/readyz` with 200 (a valid session), within `patience`.
    pub async fn await_ready(
        &mut self,
        http: &reqwest::Client,
        patience: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Ok(response) = http.get(format!("{}/readyz", self.url)).send().await
                && response.status().as_u16() == 200
            {
                return Ok(());
            }
            if !self.is_running() {
                bail!(
                    "{} exited while starting; see {}",
                    self.id,
                    self.home.join("node.log").display()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} was not ready within {patience:?} (port {})",
                    self.id,
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from_raw(c.id() as i32))
    }

    /// Sends `signal` to the process, if it runs.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, signal);
        }
    }

    /// SIGKILL, and waits for the exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (a graceful leave: the node hands its jobs over), and waits up to `patience` for the exit,
    /// then SIGKILL.
    pub async fn terminate(&mut self, patience: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGCONT);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {patience:?} of SIGTERM", self.id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
