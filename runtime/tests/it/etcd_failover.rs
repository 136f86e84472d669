//! Endpoint failover on a real 3-member etcd cluster: a node configured with every member's endpoint keeps
//! scheduling while the members are killed one after the other (so whichever member it talks to is killed at
//! some point), runs each fire id once, and leaves no instant without its record.
//!
//! The cluster is private (`scripts/etcd.sh start-cluster 3 DIR`), so the shared server is not disturbed. It runs
//! where the real-server tests run (`CAMPANILE_TEST_ETCD` set); outside CI, without it, the test prints why and
//! passes; under `CI` it fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::{eventually, ledger_job, now_ms, start_node};

fn enabled() -> bool {
    match std::env::var("CAMPANILE_TEST_ETCD") {
        Ok(value) if !value.trim().is_empty() => true,
        _ if std::env::var_os("CI").is_some() => {
            panic!("CAMPANILE_TEST_ETCD is unset under CI: start etcd with scripts/etcd.sh")
        }
        _ => {
            eprintln!(
                "etcd_failover: skipped: CAMPANILE_TEST_ETCD is unset (export CAMPANILE_TEST_ETCD=$(scripts/etcd.sh start))"
            );
            false
        }
    }
}

/// A private cluster, stopped (data removed) when dropped.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/etcd.sh")
    }

    fn run(args: &[&str]) -> String {
        let output = Command::new("bash")
            .arg(Self::script())
            .args(args)
            .output()
            .expect("bash runs scripts/etcd.sh");
        assert!(
            output.status.success(),
            "scripts/etcd.sh {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Starts three members; returns the cluster and its endpoints, comma-separated.
    fn start(dir: PathBuf) -> (Cluster, String) {
        let endpoints = Self::run(&["start-cluster", "3", &dir.display().to_string()]);
        (Cluster { dir }, endpoints)
    }

    fn member(&self, verb: &str, i: usize) {
        Self::run(&[verb, &self.dir.display().to_string(), &i.to_string()]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Self::script())
            .args(["stop", &self.dir.display().to_string()])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_scheduling_while_the_member_it_talks_to_is_killed() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cluster, endpoints) = Cluster::start(dir.path().join("etcd"));
    let config = dir.path().join("campanile.toml");
    std::fs::write(&config, "[engine]\nsession_ttl = \"10s\"\n").unwrap();
    let url = format!("etcd://{endpoints}/failover");
    let node = start_node(dir.path(), &config, &url, "n1");
    let ledger = dir.path().join("ledger.log");
    let (status, body) = node
        .send(
            reqwest::Method::POST,
            "/v1/jobs",
            Some(ledger_job("tick", &ledger)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    eventually("the job ran", || async {
        node.runs("tick")
            .await
            .iter()
            .any(|r| r["outcome"] == "succeeded")
            .then_some(())
    })
    .await;

    for member in 1..=3 {
        cluster.member("kill", member);
        let killed_ms = now_ms();
        // Scheduling goes on: an instant after the kill runs and is recorded, through another member.
        eventually(
            &format!("a fire recorded after member {member} was killed"),
            || async {
                node.runs("tick")
                    .await
                    .iter()
                    .any(|r| {
                        r["outcome"] == "succeeded"
                            && r["scheduled_ms"].as_i64() > Some(killed_ms + 1000)
                    })
                    .then_some(())
            },
        )
        .await;
        cluster.member("restart", member);
    }

    // Each fire ran once, and every instant from the first record to the last has exactly one record.
    let last_kill_over = now_ms();
    eventually("a fire after the last restart", || async {
        node.runs("tick")
            .await
            .iter()
            .any(|r| r["scheduled_ms"].as_i64() > Some(last_kill_over + 1000))
            .then_some(())
    })
    .await;
    let runs = node.runs("tick").await;
    let log = std::fs::read_to_string(&ledger).unwrap();
    let mut ran = BTreeSet::new();
    for line in log.lines().filter(|l| !l.is_empty()) {
        assert!(ran.insert(line.to_owned()), "fire {line} ran twice");
    }
    let mut instants = BTreeSet::new();
    for record in &runs {
        let first = record["scheduled_ms"].as_i64().unwrap();
        let last = record["last_scheduled_ms"].as_i64().unwrap_or(first);
        for at in (first..=last).step_by(1000) {
            assert!(
                instants.insert(at),
                "instant {at} has two records: {runs:?}"
            );
        }
    }
    let (first, last) = (*instants.first().unwrap(), *instants.last().unwrap());
    let missing: Vec<i64> = (first..=last)
        .step_by(1000)
        .filter(|at| !instants.contains(at))
        .collect();
    assert!(missing.is_empty(), "instants without a record: {missing:?}");
    drop(node);
    drop(cluster);
}
