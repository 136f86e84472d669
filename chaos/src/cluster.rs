//! The coordinator under test: a multi-member etcd cluster or ZooKeeper ensemble on loopback, started and
//! acted on through the project's scripts (`scripts/etcd.sh`, `scripts/zookeeper.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Which coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// etcd, through `scripts/etcd.sh start-cluster`.
    Etcd,
    /// ZooKeeper, through `scripts/zookeeper.sh start-ensemble`.
    Zk,
}

/// A running cluster of coordinator members, numbered from 1.
pub struct Cluster {
    backend: Backend,
    script: PathBuf,
    dir: PathBuf,
    /// The client port of each member, member 1 first.
    pub ports: Vec<u16>,
}

impl Cluster {
    /// Starts `members` members with their state in `dir`.
    pub fn start(
        backend: Backend,
        scripts: &Path,
        dir: &Path,
        members: usize,
    ) -> anyhow::Result<Cluster> {
        let (script, verb) = match backend {
            Backend::Etcd => (scripts.join("etcd.sh"), "start-cluster"),
            Backend::Zk => (scripts.join("zookeeper.sh"), "start-ensemble"),
        };
        let cluster = Cluster {
            backend,
            script,
            dir: dir.to_owned(),
            ports: Vec::new(),
        };
        let endpoints = cluster.run(&[verb, &members.to_string()])?;
        let ports = endpoints
            .trim()
            .split(',')
            .map(|e| {
                e.rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .with_context(|| {
                        format!("bad endpoint {e:?} from {}", cluster.script.display())
                    })
            })
            .collect::<anyhow::Result<Vec<u16>>>()?;
        if ports.len() != members {
            bail!(
                "{} printed {endpoints:?}, not {members} endpoints",
                cluster.script.display()
            );
        }
        Ok(Cluster { ports, ..cluster })
    }

    /// Runs the script with `args` and the cluster's directory (after the verb); returns its stdout.
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = Command::new("bash");
        command.arg(&self.script).arg(args[0]);
        match args[0] {
            "start-cluster" | "start-ensemble" => {
                command.args(&args[1..]).arg(&self.dir);
            }
            _ => {
                command.arg(&self.dir).args(&args[1..]);
            }
        }
        let output = command
            .output()
            .with_context(|| format!("failed to run {}", self.script.display()))?;
        if !output.status.success() {
            bail!(
                "{} {} failed: {}",
                self.script.display(),
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The number of the member that leads now.
    pub fn leader(&self) -> anyhow::Result<usize> {
        let out = self.run(&["leader"])?;
        out.trim()
            .parse()
            .with_context(|| format!("bad leader {out:?}"))
    }

    /// SIGKILLs member `i`.
    pub fn kill(&self, i: usize) -> anyhow::Result<()> {
        self.run(&["kill", &i.to_string()]).map(drop)
    }

    /// Starts member `i` again and waits until it serves.
    pub fn restart(&self, i: usize) -> anyhow::Result<()> {
        self.run(&["restart", &i.to_string()]).map(drop)
    }

    /// SIGSTOPs member `i`.
    pub fn freeze(&self, i: usize) -> anyhow::Result<()> {
        self.run(&["freeze", &i.to_string()]).map(drop)
    }

    /// SIGCONTs member `i`.
    pub fn thaw(&self, i: usize) -> anyhow::Result<()> {
        self.run(&["thaw", &i.to_string()]).map(drop)
    }

    /// The coordinator URL scheme.
    pub fn scheme(&self) -> &'static str {
        match self.backend {
            Backend::Etcd => "etcd",
            Backend::Zk => "zk",
        }
    }

    /// Stops every member and removes their data, keeping their logs in `DIR-logs`.
    pub fn stop(&self) -> anyhow::Result<()> {
        let logs = self.dir.with_extension("logs");
        std::fs::create_dir_all(&logs)?;
        for member in std::fs::read_dir(&self.dir)?.flatten() {
            let Ok(files) = std::fs::read_dir(member.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.ends_with(".log") {
                    let to = logs.join(format!("{}-{name}", member.file_name().to_string_lossy()));
                    let _ = std::fs::copy(file.path(), to);
                }
            }
        }
        self.run(&["stop"]).map(drop)
    }
}
