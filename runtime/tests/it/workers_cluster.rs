//! Executor groups with real processes: one `campanile serve` with a cluster port, and `campanile worker`
//! processes in a group. Each job appends `CAMPANILE_FIRE_ID CAMPANILE_WORKER_ID` to a ledger; no fire id may
//! appear twice in it, whatever happens to the workers.
//!
//! Every scenario runs twice: on the in-process default store (`in_process::*`) and on a real etcd
//! (`etcd::*`, `CAMPANILE_TEST_ETCD`; outside CI an unset variable skips those with a notice, under `CI` it
//! fails).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::harness::{BIN, Options, Server, eventually, now_ms};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The store the node runs on.
#[derive(Debug)]
enum Backend {
    /// The in-process default (the node's data directory).
    InProcess,
    /// A real etcd, under a key prefix of the test's own (kept across a node's restart).
    Etcd {
        /// `etcd://HOST:PORT/PREFIX`.
        url: String,
    },
}

impl Backend {
    /// A fresh prefix on `CAMPANILE_TEST_ETCD`, or `None` (with a notice) when it is unset outside CI.
    fn etcd(test: &str) -> Option<Backend> {
        match std::env::var("CAMPANILE_TEST_ETCD") {
            Ok(value) if !value.trim().is_empty() => Some(Backend::Etcd {
                url: format!(
                    "etcd://{}/campanile-it-workers-{test}-{}-{}",
                    value.trim(),
                    std::process::id(),
                    now_ms()
                ),
            }),
            _ if std::env::var_os("CI").is_some() => {
                panic!("CAMPANILE_TEST_ETCD is unset under CI: start etcd with scripts/etcd.sh")
            }
            _ => {
                eprintln!(
                    "workers_cluster::etcd::{test}: skipped: CAMPANILE_TEST_ETCD is unset (export CAMPANILE_TEST_ETCD=$(scripts/etcd.sh start))"
                );
                None
            }
        }
    }

    /// The store's name in `GET /v1/cluster`.
    fn name(&self) -> &'static str {
        match self {
            Backend::InProcess => "inproc",
            Backend::Etcd { .. } => "etcd",
        }
    }

    /// The `serve` arguments that choose this store.
    fn args(&self) -> Vec<String> {
        match self {
            Backend::InProcess => Vec::new(),
            Backend::Etcd { url } => vec!["--coordinator".into(), url.clone()],
        }
    }
}

/// A node with its cluster port on `cluster` (loopback: no cookie needed).
fn node(backend: &Backend, dir: &Path, cluster: u16) -> Server {
    node_with(backend, dir, cluster, &[])
}

/// The same, with more `serve` arguments.
fn node_with(backend: &Backend, dir: &Path, cluster: u16, more: &[String]) -> Server {
    let mut more = more.to_vec();
    more.extend(["--node-id".into(), "node-1".into()]);
    node_args(backend, dir, cluster, &more)
}

/// A node with its cluster port on `cluster` and the `serve` arguments `more` (which name its node id).
fn node_args(backend: &Backend, dir: &Path, cluster: u16, more: &[String]) -> Server {
    let mut args = vec!["--cluster-listen".into(), format!("127.0.0.1:{cluster}")];
    args.extend(backend.args());
    args.extend(more.iter().cloned());
    Server::start_with(
        dir,
        Options {
            args,
            ..Options::default()
        },
    )
}

/// A webhook receiver on loopback: its URL and the events it received.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    use axum::extract::State;
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State(seen): State<Arc<Mutex<Vec<Value>>>>,
                 axum::Json(event): axum::Json<Value>| async move {
                    seen.lock().unwrap().push(event);
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// A running `campanile worker`.
struct WorkerProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl WorkerProcess {
    /// Starts `campanile worker` joining the node at `cluster`, with `args` after the common ones; does not
    /// wait.
    fn spawn(id: &str, cluster: u16, args: &[&str]) -> WorkerProcess {
        let join = format!("127.0.0.1:{cluster}");
        let mut all = vec!["--join", &join];
        all.extend_from_slice(args);
        Self::spawn_with(id, &all)
    }

    /// Starts `campanile worker` in group `billing` with `args`; does not wait.
    fn spawn_with(id: &str, args: &[&str]) -> WorkerProcess {
        let mut child = Command::new(BIN)
            .arg("worker")
            .args(["--group", "billing", "--node-id", id])
            .args(args)
            .env("CAMPANILE_LOG", "info")
            .env_remove("CAMPANILE_CLUSTER_COOKIE_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the campanile binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        WorkerProcess { child, log }
    }

    /// Starts a worker and waits until it runs.
    async fn start(id: &str, cluster: u16) -> WorkerProcess {
        Self::running(Self::spawn(id, cluster, &[])).await
    }

    /// Waits until `worker` runs.
    async fn running(worker: WorkerProcess) -> WorkerProcess {
        eventually("the worker to start", || async {
            worker.log().contains("worker running").then_some(())
        })
        .await;
        worker
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("the signal is sent");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A job of group `billing` every second: it writes `FIRE_ID WORKER_ID` to `ledger`, then sleeps `sleep`.
fn ledger_job(id: &str, ledger: &Path, sleep: &str) -> Value {
    json!({
        "id": id,
        "name": id,
        "schedule": "* * * * * *",
        "executor": {"group": "billing"},
        "target": {
            "type": "command",
            "argv": ["sh", "-c", format!(
                "echo \"$CAMPANILE_FIRE_ID $CAMPANILE_WORKER_ID\" >> {}; sleep {sleep}", ledger.display()
            )],
            "timeout": "10s",
        },
    })
}

/// The ledger's lines as (fire id, worker id), in order.
fn ledger(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(f, w)| (f.to_owned(), w.to_owned()))
        .collect()
}

fn assert_no_fire_twice(lines: &[(String, String)]) {
    let mut seen = BTreeMap::new();
    for (fire, worker) in lines {
        if let Some(first) = seen.insert(fire, worker) {
            panic!("{fire} ran twice: on {first} and on {worker}; ledger: {lines:?}");
        }
    }
}

/// Scheduled instant (Unix ms) of a fire id `JOB@MS`.
fn instant(fire: &str) -> i64 {
    fire.rsplit_once('@')
        .and_then(|(_, ms)| ms.parse().ok())
        .unwrap_or_else(|| panic!("{fire} is not a fire id"))
}

async fn workers_listed(server: &Server, n: usize) {
    eventually(&format!("{n} workers listed"), || async {
        let (_, body) = server.get("/v1/workers").await;
        (body["workers"].as_array().map_or(0, Vec::len) == n).then_some(())
    })
    .await;
}

async fn create(server: &Server, job: Value) {
    let (status, body) = server
        .send(reqwest::Method::POST, "/v1/jobs", Some(job))
        .await;
    assert_eq!(status, 201, "{body}");
}

fn ledger_path(dir: &Path) -> PathBuf {
    dir.join("ledger")
}

async fn a_group_runs_on_its_workers_and_a_worker_killed_mid_run_leaves_its_instant_in_doubt(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = free_port();
    let (hook, received) = webhook().await;
    let config = dir.path().join("campanile.toml");
    std::fs::write(
        &config,
        format!(
            "[[notify.webhooks]]\nname = \"ops\"\nurl = \"{hook}\"\nevents = [\"worker_lost\"]\n"
        ),
    )
    .unwrap();
    let server = node_with(
        &backend,
        dir.path(),
        cluster,
        &["--config".into(), config.display().to_string()],
    );
    let w1 = WorkerProcess::start("w1", cluster).await;
    let w2 = WorkerProcess::start("w2", cluster).await;
    workers_listed(&server, 2).await;
    assert_eq!(server.get("/v1/cluster").await.1["backend"], backend.name());
    let (_, listed) = server.get("/v1/workers").await;
    assert_eq!(listed["workers"][0]["group"], "billing", "{listed}");
    assert_eq!(listed["workers"][0]["node"], "node-1", "{listed}");

    // Runs last 1.5 s, so that a kill right after a run wrote its line lands mid-run.
    let ledger_file = ledger_path(dir.path());
    create(&server, ledger_job("bill", &ledger_file, "1.5")).await;
    let runs = eventually("two runs on the workers", || async {
        let lines = ledger(&ledger_file);
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    assert!(runs.iter().all(|(_, w)| w == "w1" || w == "w2"), "{runs:?}");

    // Kill -9 the worker of the newest run, while it runs.
    let seen = runs.len();
    let (victim_fire, victim) = eventually("a new run", || async {
        let lines = ledger(&ledger_file);
        (lines.len() > seen)
            .then(|| lines.last().cloned())
            .flatten()
    })
    .await;
    let (killed, survivor) = if victim == "w1" {
        (&w1, "w2")
    } else {
        (&w2, "w1")
    };
    killed.signal(Signal::SIGKILL);
    let killed_at = now_ms();

    // Its instant is in doubt (the job is at_most_once), said once, with the reason.
    let record = eventually("the killed run's record", || async {
        server
            .runs("bill")
            .await
            .into_iter()
            .find(|r| r["scheduled_ms"] == instant(&victim_fire))
    })
    .await;
    assert_eq!(record["outcome"], "in_doubt", "{record}");
    assert!(
        record["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("worker {victim} was lost mid-run"))),
        "{record}"
    );
    // The next instants run on the other worker.
    let after = eventually("two runs after the kill on the survivor", || async {
        let lines: Vec<_> = ledger(&ledger_file)
            .into_iter()
            .filter(|(f, _)| instant(f) > killed_at)
            .collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    assert!(after.iter().all(|(_, w)| w == survivor), "{after:?}");
    assert_no_fire_twice(&ledger(&ledger_file));
    let (_, listed) = server.get("/v1/workers").await;
    let ids: BTreeSet<&str> = listed["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    assert_eq!(ids, BTreeSet::from([survivor]), "{listed}");
    // The node reported the lost worker to the webhook.
    let event = eventually("a worker_lost event", || async {
        received.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(event["event"], "worker_lost", "{event}");
    assert_eq!(event["lost_worker"]["id"], victim.as_str(), "{event}");
    assert_eq!(event["lost_worker"]["group"], "billing", "{event}");
    assert_eq!(event["lost_worker"]["in_doubt"], 1, "{event}");
}

async fn an_at_least_once_fire_lost_with_its_worker_runs_again_on_the_other_worker(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = free_port();
    let server = node(&backend, dir.path(), cluster);
    let w1 = WorkerProcess::start("w1", cluster).await;
    let w2 = WorkerProcess::start("w2", cluster).await;
    workers_listed(&server, 2).await;
    let ledger_file = ledger_path(dir.path());
    let mut job = ledger_job("bill", &ledger_file, "1.5");
    job["delivery"] = json!("at_least_once");
    create(&server, job).await;
    let (victim_fire, victim) =
        eventually("a run", || async { ledger(&ledger_file).first().cloned() }).await;
    let (killed, survivor) = if victim == "w1" {
        (&w1, "w2")
    } else {
        (&w2, "w1")
    };
    killed.signal(Signal::SIGKILL);

    // The same fire runs again, on the survivor, and its record says why.
    eventually("the fire to run again", || async {
        ledger(&ledger_file)
            .iter()
            .any(|(f, w)| *f == victim_fire && w == survivor)
            .then_some(())
    })
    .await;
    let record = eventually("its record", || async {
        server
            .runs("bill")
            .await
            .into_iter()
            .find(|r| r["scheduled_ms"] == instant(&victim_fire))
    })
    .await;
    assert_eq!(record["outcome"], "succeeded", "{record}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(&format!("redelivered: worker {victim} was lost mid-run"))
            && reason.ends_with(&format!("worker {survivor}")),
        "{record}"
    );
    // Twice in all (the lost run and its redelivery), no more; every other fire once.
    let lines = ledger(&ledger_file);
    assert_eq!(
        lines.iter().filter(|(f, _)| *f == victim_fire).count(),
        2,
        "{lines:?}"
    );
    assert_no_fire_twice(
        &lines
            .into_iter()
            .filter(|(f, _)| *f != victim_fire)
            .collect::<Vec<_>>(),
    );
}

async fn a_worker_frozen_past_the_deadline_starts_nothing_late_when_thawed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = free_port();
    let server = node(&backend, dir.path(), cluster);
    let worker = WorkerProcess::start("w1", cluster).await;
    workers_listed(&server, 1).await;
    let ledger_file = ledger_path(dir.path());
    create(&server, ledger_job("bill", &ledger_file, "0")).await;
    eventually("a run on the worker", || async {
        (!ledger(&ledger_file).is_empty()).then_some(())
    })
    .await;

    worker.signal(Signal::SIGSTOP);
    let stopped_at = now_ms();
    // The freeze is the fault under test (longer than a send's window and the worker timeout), not a wait
    // for a condition.
    tokio::time::sleep(Duration::from_secs(5)).await;
    worker.signal(Signal::SIGCONT);
    let thawed_at = now_ms();

    // The first instant after the freeze began was sent to the frozen worker; after the thaw it is too late
    // for it, and nobody else may start it: misfired, never run.
    let frozen = (stopped_at / 1000 + 1) * 1000 + if stopped_at % 1000 > 800 { 1000 } else { 0 };
    let record = eventually("the frozen instant's record", || async {
        server
            .runs("bill")
            .await
            .into_iter()
            .find(|r| r["scheduled_ms"] == frozen)
    })
    .await;
    assert_eq!(record["outcome"], "misfired", "{record}");
    assert!(
        record["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("no worker of group billing")),
        "{record}"
    );
    // The worker runs again after the thaw, and refused what came too late.
    eventually("runs after the thaw", || async {
        ledger(&ledger_file)
            .iter()
            .any(|(f, _)| instant(f) > thawed_at)
            .then_some(())
    })
    .await;
    let lines = ledger(&ledger_file);
    assert!(
        lines.iter().all(|(f, _)| instant(f) != frozen),
        "{frozen} ran although it came too late: {lines:?}"
    );
    assert!(worker.log().contains("too late"), "{}", worker.log());
    assert_no_fire_twice(&lines);
}

async fn a_worker_with_the_wrong_cookie_exits_saying_so(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = free_port();
    let node_cookie = dir.path().join("node-cookie");
    std::fs::write(&node_cookie, "right\n").unwrap();
    let worker_cookie = dir.path().join("worker-cookie");
    std::fs::write(&worker_cookie, "wrong\n").unwrap();
    let server = node_with(
        &backend,
        dir.path(),
        cluster,
        &[
            "--cluster-cookie-file".into(),
            node_cookie.display().to_string(),
        ],
    );
    let mut worker = WorkerProcess::spawn(
        "w1",
        cluster,
        &[
            "--cluster-cookie-file",
            &worker_cookie.display().to_string(),
        ],
    );
    let status = eventually("the worker to exit", || {
        let exited = worker.child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert_eq!(status.code(), Some(1));
    let log = worker.log();
    assert!(
        log.contains("no cluster handshake") && log.contains("cookie"),
        "{log}"
    );
    let (_, listed) = server.get("/v1/workers").await;
    assert_eq!(listed["workers"], json!([]), "{listed}");
}

async fn workers_reconnect_after_the_node_restarts(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = free_port();
    let mut server = node(&backend, dir.path(), cluster);
    let _worker = WorkerProcess::start("w1", cluster).await;
    workers_listed(&server, 1).await;
    let ledger_file = ledger_path(dir.path());
    create(&server, ledger_job("bill", &ledger_file, "0")).await;
    eventually("a run on the worker", || async {
        (!ledger(&ledger_file).is_empty()).then_some(())
    })
    .await;

    assert!(server.terminate().success(), "{}", server.log());
    let server = node(&backend, dir.path(), cluster);
    let restarted_at = now_ms();
    workers_listed(&server, 1).await;
    eventually("runs after the restart", || async {
        ledger(&ledger_file)
            .iter()
            .any(|(f, w)| instant(f) > restarted_at && w == "w1")
            .then_some(())
    })
    .await;
    assert_no_fire_twice(&ledger(&ledger_file));
}

/// `campanile worker --coordinator` without `--join`: it finds the node's cluster port in the members on etcd,
/// runs its fires, and links to a second node when it joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_finds_the_nodes_through_the_coordinator() {
    let Some(backend) = Backend::etcd("a_worker_finds_the_nodes_through_the_coordinator") else {
        return;
    };
    let Backend::Etcd { url } = &backend else {
        unreachable!("an etcd backend")
    };
    let dir = tempfile::tempdir().unwrap();
    let cluster = free_port();
    let server = node(&backend, dir.path(), cluster);
    let (_, view) = server.get("/v1/cluster").await;
    assert_eq!(
        view["members"][0]["cluster_address"],
        format!("127.0.0.1:{cluster}"),
        "{view}"
    );
    let worker =
        WorkerProcess::running(WorkerProcess::spawn_with("w1", &["--coordinator", url])).await;
    workers_listed(&server, 1).await;
    let ledger_file = ledger_path(dir.path());
    create(&server, ledger_job("bill", &ledger_file, "0")).await;
    eventually("a run on the worker", || async {
        ledger(&ledger_file)
            .iter()
            .any(|(_, w)| w == "w1")
            .then_some(())
    })
    .await;

    // A node that joins later is found too.
    let second_dir = dir.path().join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let second = node_args(
        &backend,
        &second_dir,
        free_port(),
        &["--node-id".into(), "node-2".into()],
    );
    eventually("the worker on the second node", || async {
        let (_, body) = second.get("/v1/workers?scope=node").await;
        (body["workers"][0]["id"] == "w1").then_some(())
    })
    .await;
    assert!(worker.log().contains("linking to it"), "{}", worker.log());
}

/// `GET /v1/workers` (and `campanile worker ls`) on any node lists the workers of every live node, and names a
/// node that does not answer; `scope=node` lists the answering node's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_lists_the_workers_of_every_node() {
    let Some(backend) = Backend::etcd("any_node_lists_the_workers_of_every_node") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<(Server, u16)> = ["node-1", "node-2"]
        .iter()
        .map(|id| {
            let home = dir.path().join(id);
            std::fs::create_dir_all(&home).unwrap();
            let cluster = free_port();
            let server = node_args(
                &backend,
                &home,
                cluster,
                &["--node-id".into(), (*id).into()],
            );
            (server, cluster)
        })
        .collect();
    // Each worker serves one node only.
    let _w1 = WorkerProcess::start("w1", nodes[0].1).await;
    let _w2 = WorkerProcess::start("w2", nodes[1].1).await;
    let first = &nodes[0].0;
    let listed = eventually("both workers listed by the first node", || async {
        let (status, body) = first.get("/v1/workers").await;
        assert_eq!(status, 200, "{body}");
        (body["workers"].as_array().map_or(0, Vec::len) == 2).then_some(body)
    })
    .await;
    let seen: Vec<(&str, &str)> = listed["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_str().unwrap(), w["node"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("w1", "node-1"), ("w2", "node-2")], "{listed}");
    assert_eq!(listed["nodes"], json!(["node-1", "node-2"]), "{listed}");
    assert_eq!(listed["unreachable"], json!([]), "{listed}");
    let (_, own) = first.get("/v1/workers?scope=node").await;
    assert_eq!(own["workers"].as_array().map(Vec::len), Some(1), "{own}");
    assert_eq!(own["workers"][0]["id"], "w1", "{own}");
    let (status, bad) = first.get("/v1/workers?scope=galaxy").await;
    assert_eq!(status, 400, "{bad}");

    let ls = Command::new(BIN)
        .args(["worker", "ls", "--server", &first.url])
        .env_remove("CAMPANILE_TOKEN")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success(), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("w2") && l.contains("node-2")),
        "{table}"
    );

    // A node that does not answer (frozen, still a member) is named; the others' workers are listed.
    nodes[1].0.signal(Signal::SIGSTOP);
    let (_, partial) = first.get("/v1/workers").await;
    nodes[1].0.signal(Signal::SIGCONT);
    assert_eq!(partial["unreachable"][0]["node"], "node-2", "{partial}");
    assert_eq!(partial["nodes"], json!(["node-1"]), "{partial}");
    assert_eq!(
        partial["workers"].as_array().map(Vec::len),
        Some(1),
        "{partial}"
    );
    let ls_error = partial["unreachable"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(!ls_error.is_empty(), "{partial}");
}

/// Waits for `worker` to exit and returns its status code and log.
async fn exited(worker: &mut WorkerProcess) -> (Option<i32>, String) {
    let status = eventually("the worker to exit", || {
        let exited = worker.child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    (status.code(), worker.log())
}

/// A cluster port with TLS (`[cluster] tls_cert`, `tls_key`; a self-signed certificate made here): a worker
/// given the certificate's CA joins and runs fires; a plaintext worker, and a TLS worker that does not trust
/// the certificate, are refused with a message saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_trusting_worker_joins_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let node_cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = write("node.pem", node_cert.cert.pem());
    let key = write("node-key.pem", node_cert.signing_key.serialize_pem());
    let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let stranger_ca = write("stranger.pem", stranger.cert.pem());
    let config = write(
        "campanile.toml",
        format!("[cluster]\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\n"),
    );
    let cluster = free_port();
    let server = node_with(
        &Backend::InProcess,
        dir.path(),
        cluster,
        &["--config".into(), config],
    );

    let _trusting = WorkerProcess::running(WorkerProcess::spawn(
        "w1",
        cluster,
        &["--cluster-tls-ca", &cert],
    ))
    .await;
    workers_listed(&server, 1).await;
    let ledger_file = ledger_path(dir.path());
    create(&server, ledger_job("bill", &ledger_file, "0")).await;
    eventually("a run on the TLS worker", || async {
        ledger(&ledger_file)
            .iter()
            .any(|(_, w)| w == "w1")
            .then_some(())
    })
    .await;

    let (code, log) = exited(&mut WorkerProcess::spawn("plain", cluster, &[])).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("no cluster handshake") && log.contains("--cluster-tls-ca"),
        "{log}"
    );
    eventually("the node to log the refusal", || async {
        server
            .log()
            .contains("refused a cluster connection: no TLS handshake")
            .then_some(())
    })
    .await;

    let (code, log) = exited(&mut WorkerProcess::spawn(
        "doubter",
        cluster,
        &["--cluster-tls-ca", &stranger_ca],
    ))
    .await;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("TLS handshake failed"), "{log}");
    let (_, listed) = server.get("/v1/workers").await;
    let ids: Vec<&str> = listed["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    assert_eq!(ids, ["w1"], "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_an_in_process_coordinator_and_needs_a_node_to_join() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().join("campanile.redb").display());
    let mut worker = WorkerProcess::spawn_with("w1", &["--coordinator", &store]);
    let status = eventually("the worker to exit", || {
        let exited = worker.child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert_eq!(status.code(), Some(1));
    let log = worker.log();
    assert!(
        log.contains("--coordinator") && log.contains("--join"),
        "{log}"
    );

    let mut worker = WorkerProcess::spawn_with("w1", &[]);
    let status = eventually("the worker to exit", || {
        let exited = worker.child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert_eq!(status.code(), Some(2), "a usage error");
    let log = worker.log();
    assert!(log.contains("--join"), "{log}");
}

/// One named test per scenario and store: `in_process::NAME` and `etcd::NAME`.
macro_rules! on_each_backend {
    ($($scenario:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Backend::InProcess).await;
                }
            )*
        }

        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(backend) = super::Backend::etcd(stringify!($scenario)) {
                        super::$scenario(backend).await;
                    }
                }
            )*
        }
    };
}

on_each_backend!(
    a_group_runs_on_its_workers_and_a_worker_killed_mid_run_leaves_its_instant_in_doubt,
    an_at_least_once_fire_lost_with_its_worker_runs_again_on_the_other_worker,
    a_worker_frozen_past_the_deadline_starts_nothing_late_when_thawed,
    a_worker_with_the_wrong_cookie_exits_saying_so,
    workers_reconnect_after_the_node_restarts,
);
