//! Three `campanile serve` processes on a private coordinator (etcd, or a ZooKeeper server) of the test's
//! own, with jobs every second that run for milliseconds under the default overlap policy (`skip`), through
//! three faults: `kill -9` of a node, a coordinator stop of 5 s and restart, and a freeze
//! (SIGSTOP) of another node past its session TTL. Nothing of a job is running when its next instant comes,
//! so no instant may be recorded `skipped`, on the survivors or anywhere: the instants that pass while a job
//! changes hands (or while a lease has run out) run late, one after another, or go through the misfire
//! policy. Every instant still ends as exactly one record.
//!
//! Real-server tests: outside CI they need `CAMPANILE_TEST_ETCD` (resp. `CAMPANILE_TEST_ZK`) set, as the
//! signal that real servers are wanted, and skip with a notice otherwise; under `CI` they run. The servers
//! are private (started by the test on free ports), so that stopping one disturbs no other test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::harness::{Options, Server, eventually};

/// The nodes' session TTL.
const TTL: Duration = Duration::from_secs(2);
/// How long the coordinator stays down.
const OUTAGE: Duration = Duration::from_secs(5);
/// How long a node stays frozen: well past its TTL, so its jobs move.
const FREEZE: Duration = Duration::from_secs(4);
const JOBS: usize = 9;

#[allow(clippy::disallowed_methods)] // Wall time: the processes' clocks are the wall clock.
fn now_ms() -> i64 {
    std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_millis() as i64)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether a real-server test runs: under `CI` always; outside only if `signal` is set.
fn wanted(test: &str, signal: &str) -> bool {
    if std::env::var_os("CI").is_some() || std::env::var(signal).is_ok_and(|v| !v.trim().is_empty())
    {
        return true;
    }
    eprintln!("{test}: skipped: {signal} is unset (real-server tests are not wanted here)");
    false
}

/// A coordinator the test can stop and start again with its data.
trait Private {
    /// The `--coordinator` URL of a fresh namespace.
    fn url(&self, namespace: &str) -> String;
    /// Stops the server (its data stays).
    fn stop(&mut self);
    /// Starts it again on the same port and data, and returns once it answers.
    async fn start(&mut self);
}

/// A single-member etcd on loopback with a data directory of its own.
struct PrivateEtcd {
    dir: tempfile::TempDir,
    port: u16,
    peer: u16,
    child: Option<Child>,
}

impl PrivateEtcd {
    async fn new() -> Self {
        let mut etcd = Self {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            peer: free_port(),
            child: None,
        };
        etcd.start().await;
        etcd
    }
}

impl Private for PrivateEtcd {
    fn url(&self, namespace: &str) -> String {
        format!("etcd://127.0.0.1:{}/{namespace}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn start(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        let child = Command::new("etcd")
            .args(["--name", "private", "--data-dir"])
            .arg(self.dir.path().join("data"))
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
            .expect("etcd starts (scripts/etcd.sh installs it)");
        self.child = Some(child);
        let endpoint = format!("127.0.0.1:{}", self.port);
        eventually("the private etcd answers", || async {
            let up = async {
                let mut client = etcd_client::Client::connect([&endpoint], None).await?;
                client.get("health-probe", None).await
            };
            let answered = tokio::time::timeout(Duration::from_secs(1), up).await;
            if !matches!(answered, Ok(Ok(_))) {
                return None;
            }
            Some(())
        })
        .await;
    }
}

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A standalone ZooKeeper in a directory of its own, on a fixed port so that it can restart
/// (`scripts/zookeeper.sh`).
struct PrivateZk {
    dir: PathBuf,
    port: u16,
}

impl PrivateZk {
    fn new() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "campanile-zookeeper.failover-{}-{port}",
            std::process::id()
        ));
        let zk = Self { dir, port };
        zk.run("start");
        zk
    }

    fn run(&self, command: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/zookeeper.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(command)
            .arg(&self.dir)
            .env("ZK_PORT", self.port.to_string())
            .output()
            .expect("run scripts/zookeeper.sh");
        assert!(
            out.status.success(),
            "scripts/zookeeper.sh {command} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Private for PrivateZk {
    fn url(&self, namespace: &str) -> String {
        format!("zk://127.0.0.1:{}/{namespace}", self.port)
    }

    fn stop(&mut self) {
        self.run("halt");
    }

    async fn start(&mut self) {
        self.run("start");
    }
}

impl Drop for PrivateZk {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/zookeeper.sh");
        let _ = Command::new("bash")
            .arg(script)
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_node(dir: &Path, config: &Path, url: &str, node: &str) -> Server {
    let dir = dir.join(node);
    std::fs::create_dir_all(&dir).unwrap();
    Server::start_with(
        &dir,
        Options {
            args: vec![
                "--config".into(),
                config.display().to_string(),
                "--coordinator".into(),
                url.to_owned(),
                "--node-id".into(),
                node.to_owned(),
            ],
            ..Options::default()
        },
    )
}

/// A job every second that appends its fire id to a file (a few milliseconds), with the default policies
/// (`overlap: skip`, at-most-once) and a 10 s timeout.
fn millisecond_job(id: &str, ledger: &Path) -> Value {
    json!({
        "id": id,
        "name": id,
        "schedule": "* * * * * *",
        "target": {
            "type": "command",
            "argv": ["sh", "-c", format!("echo \"$CAMPANILE_FIRE_ID\" >> {}", ledger.display())],
            "timeout": "10s",
        },
    })
}

/// Waits until every job has a record of an instant after `after_ms`, as `observer` reads them.
async fn every_job_recorded_after(observer: &Server, jobs: &[String], after_ms: i64, what: &str) {
    eventually(what, || async {
        for id in jobs {
            let runs = observer.runs(id).await;
            if !runs
                .iter()
                .any(|r| r["scheduled_ms"].as_i64().is_some_and(|s| s > after_ms))
            {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// The scheduled instants one run record covers.
fn covered(record: &Value) -> Vec<i64> {
    let first = record["scheduled_ms"].as_i64().unwrap();
    let last = record["last_scheduled_ms"].as_i64().unwrap_or(first);
    let count = record["count"].as_i64().unwrap_or(1).max(1);
    if count == 1 {
        return vec![first];
    }
    let step = (last - first) / (count - 1);
    (0..count).map(|i| first + i * step).collect()
}

/// The scenario, on a coordinator the test owns; the coordinator restart only with `restart`.
async fn survivors_skip_nothing(backend: &mut impl Private, restart: bool, name: &str) {
    let namespace = format!("failover-{}-{}", std::process::id(), now_ms());
    let url = backend.url(&namespace);
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let config = dir.path().join("campanile.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nsession_ttl = \"{}s\"\nrebalance_delay = \"100ms\"\n",
            TTL.as_secs()
        ),
    )
    .unwrap();
    let mut nodes: BTreeMap<&str, Server> = ["n0", "n1", "n2"]
        .into_iter()
        .map(|n| (n, start_node(dir.path(), &config, &url, n)))
        .collect();
    eventually("three members with a leader", || async {
        let (_, cluster) = nodes["n0"].get("/v1/cluster").await;
        (cluster["members"].as_array().map_or(0, Vec::len) == 3 && cluster["leader"].is_object())
            .then_some(())
    })
    .await;
    let jobs: Vec<String> = (0..JOBS).map(|i| format!("ms-{i:02}")).collect();
    for id in &jobs {
        let (status, body) = nodes["n0"]
            .send(
                reqwest::Method::POST,
                "/v1/jobs",
                Some(millisecond_job(id, &ledger)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    eventually("the jobs spread over the three nodes", || async {
        let (_, cluster) = nodes["n0"].get("/v1/cluster").await;
        let owned: Vec<u64> = cluster["members"]
            .as_array()?
            .iter()
            .map(|m| m["jobs_owned"].as_u64().unwrap_or(0))
            .collect();
        (owned == [3, 3, 3]).then_some(())
    })
    .await;
    every_job_recorded_after(&nodes["n0"], &jobs, now_ms(), "every job runs").await;

    // 1. kill -9 of n2 (dropping a `Server` kills it with SIGKILL); the others take its jobs over.
    let killed_ms = now_ms();
    drop(nodes.remove("n2"));
    let settled = killed_ms + (TTL + Duration::from_secs(3)).as_millis() as i64;
    every_job_recorded_after(&nodes["n0"], &jobs, settled, "runs after the takeover").await;

    // 2. The coordinator stops for longer than the TTL and comes back: the nodes stop at the end of their
    // leases and resume by themselves. The wait is the length of the outage, not a synchronization.
    let mut restarted_ms = None;
    if restart {
        backend.stop();
        tokio::time::sleep(OUTAGE).await;
        backend.start().await;
        let back = now_ms();
        every_job_recorded_after(
            &nodes["n0"],
            &jobs,
            back + 3000,
            "runs after the coordinator restart",
        )
        .await;
        restarted_ms = Some(back);
    }

    // 3. n1 is frozen past its TTL (SIGSTOP), n0 takes its jobs over, n1 resumes (SIGCONT) and rejoins. The
    // wait is the length of the freeze.
    nodes["n1"].signal(Signal::SIGSTOP);
    tokio::time::sleep(FREEZE).await;
    nodes["n1"].signal(Signal::SIGCONT);
    let resumed_ms = now_ms();
    every_job_recorded_after(
        &nodes["n0"],
        &jobs,
        resumed_ms + 3000,
        "runs after the freeze",
    )
    .await;
    let horizon = resumed_ms + 2000;

    // No instant skipped; each instant up to the horizon recorded once.
    let mut skipped = Vec::new();
    let mut counts: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    let histories: Vec<(String, Vec<Value>)> = {
        let mut out = Vec::new();
        for id in &jobs {
            out.push((id.clone(), nodes["n0"].runs(id).await));
        }
        out
    };
    for (id, runs) in &histories {
        let mut instants = std::collections::BTreeSet::new();
        for record in runs {
            let outcome = record["outcome"].as_str().unwrap_or_default();
            *counts.entry(outcome).or_default().entry(id).or_default() += 1;
            if outcome == "skipped" {
                skipped.push(format!(
                    "{id}@{} by {}: {}",
                    record["scheduled_ms"], record["node"], record["reason"]
                ));
            }
            for at in covered(record) {
                assert!(instants.insert(at), "{id}: instant {at} has two records");
            }
        }
        let first = *instants.first().expect("records");
        let missing: Vec<i64> = (first / 1000..=horizon / 1000)
            .map(|s| s * 1000)
            .filter(|at| !instants.contains(at))
            .collect();
        assert!(
            missing.is_empty(),
            "{id}: instants without a record: {missing:?}"
        );
    }
    eprintln!("{name}: records by outcome and job: {counts:?}");
    // And no fire ran twice: each run appended its fire id to the ledger.
    let ledger = std::fs::read_to_string(&ledger).unwrap_or_default();
    let mut ran: BTreeMap<&str, usize> = BTreeMap::new();
    for fire in ledger.lines() {
        *ran.entry(fire).or_default() += 1;
    }
    let twice: Vec<_> = ran.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{name}: fires that ran twice: {twice:?}");
    assert!(
        skipped.is_empty(),
        "{name}: {} instants recorded skipped although every run ends within milliseconds (kill at {killed_ms}, \
         coordinator back at {restarted_ms:?}, n1 resumed at {resumed_ms}):\n{}",
        skipped.len(),
        skipped.join("\n")
    );
    for node in nodes.values_mut() {
        node.signal(Signal::SIGCONT);
        assert!(node.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_survivors_skip_nothing_after_a_kill_a_restart_and_a_freeze() {
    let test = "etcd_survivors_skip_nothing";
    if !wanted(test, "CAMPANILE_TEST_ETCD") {
        return;
    }
    let mut etcd = PrivateEtcd::new().await;
    survivors_skip_nothing(&mut etcd, true, test).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_survivors_skip_nothing_after_a_kill_a_restart_and_a_freeze() {
    let test = "zookeeper_survivors_skip_nothing";
    if !wanted(test, "CAMPANILE_TEST_ZK") {
        return;
    }
    let mut zk = PrivateZk::new();
    // The restart once made the new leader publish an assignment without any job (its members view did not
    // show its new session yet) and every job stopped; a leader now publishes only from a view that shows it.
    survivors_skip_nothing(&mut zk, true, test).await;
}
