//! Three `campanile serve` processes on one real ZooKeeper (`CAMPANILE_TEST_ZK`, started by
//! `scripts/zookeeper.sh`): the jobs spread evenly; after `kill -9` of one node, then of the leader, their jobs
//! fire on the others within the session TTL + 1 s (the next candidate in the election queue watches the
//! leader's and campaigns when it goes); every fire id is executed at most once (each run appends its fire id
//! to a shared file) and every scheduled instant ends as exactly one run record.
//!
//! Outside CI, without `CAMPANILE_TEST_ZK`, the test prints why and passes; under `CI` it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use campanile_zookeeper::{ZkConfig, ZkCoordinator};
use serde_json::Value;

use crate::harness::{Server, eventually, ledger_job, now_ms, start_node};

/// The session TTL of the nodes.
const TTL_MS: i64 = 2000;

fn zookeeper() -> Option<String> {
    match std::env::var("CAMPANILE_TEST_ZK") {
        Ok(hosts) if !hosts.trim().is_empty() => Some(hosts.trim().to_owned()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CAMPANILE_TEST_ZK is unset under CI: start a server with scripts/zookeeper.sh start"
            );
            eprintln!(
                "zk_cluster: skipped: CAMPANILE_TEST_ZK is unset (export CAMPANILE_TEST_ZK=$(scripts/zookeeper.sh start))"
            );
            None
        }
    }
}

/// A job that appends its fire id to `fires` every second, runs overlapping allowed.
fn recording_job(id: &str, fires: &Path) -> Value {
    let mut job = ledger_job(id, fires);
    job["overlap"] = "allow".into();
    job
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_spread_jobs_and_take_over_after_kill_9() {
    let Some(hosts) = zookeeper() else { return };
    #[allow(clippy::disallowed_methods)]
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let chroot = format!("/campanile-test/cluster-{}-{nanos:x}", std::process::id());
    let coordinator = format!("zk://{hosts}{chroot}");
    let dir = tempfile::tempdir().unwrap();
    let fires = dir.path().join("fires.log");
    let config = dir.path().join("campanile.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nsession_ttl = \"{TTL_MS}ms\"\nclaim_lookahead = \"1s\"\nrebalance_delay = \"100ms\"\n"
        ),
    )
    .unwrap();

    let mut nodes: BTreeMap<String, Server> = ["n1", "n2", "n3"]
        .into_iter()
        .map(|id| {
            (
                id.to_owned(),
                start_node(dir.path(), &config, &coordinator, id),
            )
        })
        .collect();
    eventually("three members", || async {
        let (_, cluster) = nodes["n1"].get("/v1/cluster").await;
        (cluster["members"].as_array().map_or(0, Vec::len) == 3).then_some(())
    })
    .await;

    let jobs: Vec<String> = (0..9).map(|i| format!("job-{i}")).collect();
    for id in &jobs {
        let (status, body) = nodes["n1"]
            .send(
                reqwest::Method::POST,
                "/v1/jobs",
                Some(recording_job(id, &fires)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    // Spread evenly: loads differ by at most one, so 3 each.
    let cluster = eventually("the jobs spread over the three nodes", || async {
        let (_, cluster) = nodes["n2"].get("/v1/cluster").await;
        let owned: Vec<u64> = cluster["members"]
            .as_array()?
            .iter()
            .map(|m| m["jobs_owned"].as_u64().unwrap_or(0))
            .collect();
        (owned == [3, 3, 3]).then_some(cluster)
    })
    .await;
    let leader = cluster["leader"]["node"].as_str().unwrap().to_owned();

    // Every job runs; learn who runs what.
    let owners: BTreeMap<String, String> = eventually("every job ran", || async {
        let mut owners = BTreeMap::new();
        for id in &jobs {
            let runs = nodes["n1"].runs(id).await;
            let run = runs.iter().find(|r| r["outcome"] == "succeeded")?;
            owners.insert(id.clone(), run["node"].as_str()?.to_owned());
        }
        Some(owners)
    })
    .await;

    // kill -9 a node that is not the leader, then the leader (its failover adds a campaign: the last node is
    // next in line and campaigns when the leader's candidate goes).
    let victim = ["n1", "n2", "n3"]
        .into_iter()
        .find(|n| *n != leader)
        .unwrap()
        .to_owned();
    kill_and_take_over(&mut nodes, &victim, &owners).await;
    let observer = nodes.values().next().unwrap();
    let since = now_ms() + 1000;
    let owners: BTreeMap<String, String> =
        eventually("every job ran after the first takeover", || async {
            let mut owners = BTreeMap::new();
            for id in &jobs {
                let runs = observer.runs(id).await;
                let run = runs
                    .iter()
                    .filter(|r| r["outcome"] == "succeeded")
                    .filter(|r| r["scheduled_ms"].as_i64().is_some_and(|s| s >= since))
                    .max_by_key(|r| r["scheduled_ms"].as_i64())?;
                owners.insert(id.clone(), run["node"].as_str()?.to_owned());
            }
            Some(owners)
        })
        .await;
    assert!(
        owners.values().any(|node| *node == leader),
        "the leader runs jobs too: {owners:?}"
    );
    kill_and_take_over(&mut nodes, &leader, &owners).await;
    let observer = nodes.values().next().unwrap();

    // Let every job run a few more seconds under the new assignment, then stop the survivors gracefully.
    let settle_ms = now_ms() + 3000;
    eventually("every job ran after the takeover", || async {
        for id in &jobs {
            let runs = observer.runs(id).await;
            runs.iter()
                .find(|r| r["scheduled_ms"].as_i64().is_some_and(|s| s >= settle_ms))?;
        }
        Some(())
    })
    .await;
    let mut records: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for id in &jobs {
        records.insert(id.clone(), observer.runs(id).await);
    }
    for (_, mut node) in nodes {
        node.terminate();
    }

    // At most once: every fire id was executed once.
    let log = std::fs::read_to_string(&fires).unwrap();
    let mut executed = BTreeSet::new();
    for line in log.lines().filter(|l| !l.is_empty()) {
        assert!(executed.insert(line.to_owned()), "fire {line} ran twice");
    }
    // Exactly one record per instant, none missing between the first and the last recorded one.
    for (id, runs) in &records {
        let mut instants = BTreeSet::new();
        for record in runs {
            for at in covered(record) {
                assert!(
                    instants.insert(at),
                    "{id}: instant {at} has two records: {runs:?}"
                );
            }
        }
        let (Some(&first), Some(&last)) = (instants.first(), instants.last()) else {
            panic!("{id}: no records");
        };
        let missing: Vec<i64> = (first / 1000..=last / 1000)
            .map(|s| s * 1000)
            .filter(|at| !instants.contains(at))
            .collect();
        assert!(
            missing.is_empty(),
            "{id}: instants without a record: {missing:?}"
        );
        // Every executed fire of this job is accounted for by a record.
        for fire in executed.iter().filter(|f| f.starts_with(&format!("{id}@"))) {
            let at: i64 = fire.rsplit('@').next().unwrap().parse().unwrap();
            assert!(
                at > last || instants.contains(&at),
                "{id}: fire {fire} ran but has no record"
            );
        }
    }

    let mut cleanup = ZkConfig::from_connect_string(&format!("{hosts}{chroot}")).unwrap();
    cleanup.request_timeout = Duration::from_secs(5);
    ZkCoordinator::delete_namespace(&cleanup).await.unwrap();
}

/// `kill -9` of `victim`; the jobs it ran (by `owners`) must first run on another node within TTL + 1 s.
async fn kill_and_take_over(
    nodes: &mut BTreeMap<String, Server>,
    victim: &str,
    owners: &BTreeMap<String, String>,
) {
    let victim_jobs: Vec<String> = owners
        .iter()
        .filter(|(_, node)| *node == victim)
        .map(|(job, _)| job.clone())
        .collect();
    let killed_ms = now_ms();
    drop(nodes.remove(victim)); // SIGKILL, then wait for the exit.
    let observer = nodes.values().next().unwrap();
    let taken_over: BTreeMap<String, i64> =
        eventually(&format!("the jobs of {victim} run elsewhere"), || async {
            let mut firsts = BTreeMap::new();
            for id in &victim_jobs {
                let runs = observer.runs(id).await;
                let first = runs
                    .iter()
                    .filter(|r| r["node"] != victim && r["outcome"] == "succeeded")
                    .filter_map(|r| r["started_ms"].as_i64())
                    .filter(|&started| started >= killed_ms)
                    .min()?;
                firsts.insert(id.clone(), first);
            }
            Some(firsts)
        })
        .await;
    for (job, started) in &taken_over {
        let after = started - killed_ms;
        eprintln!(
            "zk_cluster: {job} of the killed {victim} ran elsewhere {after} ms after the kill"
        );
        assert!(
            after <= TTL_MS + 1000,
            "{job} of the killed {victim} first ran elsewhere {after} ms after the kill (TTL {TTL_MS} ms + 1 s)"
        );
    }
}
