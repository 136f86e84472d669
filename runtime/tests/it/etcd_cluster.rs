//! Three `campanile serve --coordinator etcd://...` processes on one real etcd (`CAMPANILE_TEST_ETCD`): the
//! jobs spread evenly, a node killed with SIGKILL has its jobs fire on the others within the session TTL
//! plus one second, and the run history holds each scheduled instant once, never twice.
//!
//! Outside CI an unset `CAMPANILE_TEST_ETCD` skips the test with a notice; under `CI` it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::harness::{Server, eventually, every_second, now_ms, start_node};

/// The session TTL of the three nodes.
const TTL: Duration = Duration::from_secs(2);
const JOBS: usize = 12;

fn etcd_endpoint() -> Option<String> {
    match std::env::var("CAMPANILE_TEST_ETCD") {
        Ok(value) if !value.trim().is_empty() => Some(value.trim().to_owned()),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CAMPANILE_TEST_ETCD is unset under CI: start etcd with scripts/etcd.sh")
        }
        _ => {
            eprintln!(
                "etcd_cluster: skipped: CAMPANILE_TEST_ETCD is unset (export CAMPANILE_TEST_ETCD=$(scripts/etcd.sh start))"
            );
            None
        }
    }
}

/// `(scheduled_ms, last_scheduled_ms, node, outcome, started_ms)` of each of a job's records.
fn spans(runs: &[Value]) -> Vec<(i64, i64, String, String, Option<i64>)> {
    let mut spans: Vec<_> = runs
        .iter()
        .map(|r| {
            let first = r["scheduled_ms"].as_i64().expect("scheduled_ms");
            let last = r["last_scheduled_ms"].as_i64().unwrap_or(first);
            (
                first,
                last,
                r["node"].as_str().unwrap_or_default().to_owned(),
                r["outcome"].as_str().unwrap_or_default().to_owned(),
                r["started_ms"].as_i64(),
            )
        })
        .collect();
    spans.sort();
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_spread_jobs_and_take_over_a_killed_node_once() {
    let Some(endpoint) = etcd_endpoint() else {
        return;
    };
    let prefix = format!("campanile-it-{}-{}", std::process::id(), now_ms());
    let url = format!("etcd://{endpoint}/{prefix}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("campanile.toml");
    std::fs::write(
        &config,
        format!("[engine]\nsession_ttl = \"{}s\"\n", TTL.as_secs()),
    )
    .unwrap();
    let mut nodes: Vec<Server> = ["n0", "n1", "n2"]
        .iter()
        .map(|n| start_node(dir.path(), &config, &url, n))
        .collect();

    eventually("three members with a leader", || async {
        let (_, cluster) = nodes[0].get("/v1/cluster").await;
        (cluster["members"].as_array().map_or(0, Vec::len) == 3 && cluster["leader"].is_object())
            .then_some(())
    })
    .await;
    assert_eq!(nodes[0].get("/v1/cluster").await.1["backend"], "etcd");
    let ids: Vec<String> = (0..JOBS).map(|i| format!("tick-{i:02}")).collect();
    for id in &ids {
        let (status, body) = nodes[0]
            .send(
                reqwest::Method::POST,
                "/v1/jobs",
                Some(every_second(id, &["true"])),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    // Spread evenly: 4 jobs per node.
    eventually("12 jobs spread 4/4/4", || async {
        let (_, cluster) = nodes[1].get("/v1/cluster").await;
        let owned: Vec<u64> = cluster["members"]
            .as_array()?
            .iter()
            .map(|m| m["jobs_owned"].as_u64().unwrap_or(0))
            .collect();
        (owned == vec![4, 4, 4]).then_some(())
    })
    .await;

    // Every job runs, and we learn who runs it.
    let owners: BTreeMap<String, String> = eventually("every job ran twice", || async {
        let mut owners = BTreeMap::new();
        for id in &ids {
            let runs = nodes[0].runs(id).await;
            let succeeded: Vec<&Value> = runs
                .iter()
                .filter(|r| r["outcome"] == "succeeded")
                .collect();
            if succeeded.len() < 2 {
                return None;
            }
            owners.insert(id.clone(), succeeded[0]["node"].as_str()?.to_owned());
        }
        Some(owners)
    })
    .await;
    let per_node: BTreeSet<usize> = ["n0", "n1", "n2"]
        .iter()
        .map(|n| owners.values().filter(|o| o == n).count())
        .collect();
    assert_eq!(per_node, BTreeSet::from([4]), "runs per owner: {owners:?}");

    // kill -9 of n2 (dropping a `Server` kills it with SIGKILL).
    let killed_ms = now_ms();
    drop(nodes.pop());
    let moved: Vec<String> = owners
        .iter()
        .filter(|(_, o)| *o == "n2")
        .map(|(id, _)| id.clone())
        .collect();

    // Each of n2's jobs fires on a survivor, within TTL + 1 s of the kill.
    let first_starts: BTreeMap<String, i64> = eventually("n2's jobs run elsewhere", || async {
        let mut starts = BTreeMap::new();
        for id in &moved {
            let runs = nodes[0].runs(id).await;
            let start = runs
                .iter()
                .filter(|r| r["node"] != "n2" && r["outcome"] == "succeeded")
                .filter_map(|r| r["started_ms"].as_i64())
                .filter(|s| *s > killed_ms)
                .min()?;
            starts.insert(id.clone(), start);
        }
        Some(starts)
    })
    .await;
    let worst = first_starts.values().map(|s| s - killed_ms).max().unwrap();
    eprintln!("etcd_cluster: n2's jobs fired elsewhere {worst} ms after the kill at worst");
    assert!(
        worst <= (TTL + Duration::from_secs(1)).as_millis() as i64,
        "a killed node's jobs must fire elsewhere within TTL + 1 s; took {worst} ms: {first_starts:?}"
    );
    let (_, cluster) = nodes[0].get("/v1/cluster").await;
    assert_eq!(
        cluster["members"].as_array().map(Vec::len),
        Some(2),
        "{cluster}"
    );

    // Let every job run on for a while after the takeover, then read the whole history.
    let horizon = killed_ms + 6_000;
    let histories: BTreeMap<String, Vec<Value>> = eventually("runs past the takeover", || async {
        let mut histories = BTreeMap::new();
        for id in &ids {
            let runs = nodes[0].runs(id).await;
            if !runs
                .iter()
                .any(|r| r["scheduled_ms"].as_i64().is_some_and(|s| s > horizon))
            {
                return None;
            }
            histories.insert(id.clone(), runs);
        }
        Some(histories)
    })
    .await;

    // Each scheduled instant has one record, never two (a record may cover a range of missed instants),
    // and none is skipped between the first record and the horizon.
    for (id, runs) in &histories {
        let spans = spans(runs);
        for pair in spans.windows(2) {
            let ((_, end, ..), (next, ..)) = (&pair[0], &pair[1]);
            assert!(
                next > end,
                "job {id}: instants recorded twice: {:?} and {:?}",
                pair[0],
                pair[1]
            );
            if *next <= horizon {
                assert_eq!(
                    *next,
                    end + 1000,
                    "job {id}: instants between {:?} and {:?} have no record",
                    pair[0],
                    pair[1]
                );
            }
        }
    }

    for node in &mut nodes {
        assert!(node.terminate().success());
    }
    delete_prefix(&endpoint, &format!("/{prefix}/")).await;
}

/// `node_lost` is sent once per lost node, by the node that leads: also when the lost node was the leader
/// (its successor, elected after the loss, reports it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_lost_is_sent_once_for_a_killed_leader_and_a_killed_follower() {
    let Some(endpoint) = etcd_endpoint() else {
        return;
    };
    let received: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(event): axum::Json<Value>| {
            let seen = seen.clone();
            async move { seen.lock().unwrap().push(event) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let prefix = format!("campanile-it-lost-{}-{}", std::process::id(), now_ms());
    let url = format!("etcd://{endpoint}/{prefix}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("campanile.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nsession_ttl = \"{}s\"\n[notify]\npoll_interval = \"200ms\"\n\
             [[notify.webhooks]]\nname = \"ops\"\nurl = \"{hook}\"\nevents = [\"node_lost\"]\n",
            TTL.as_secs()
        ),
    )
    .unwrap();
    let mut nodes: BTreeMap<String, Server> = ["n0", "n1", "n2"]
        .iter()
        .map(|n| (n.to_string(), start_node(dir.path(), &config, &url, n)))
        .collect();
    let leader = |cluster: &Value| cluster["leader"]["node"].as_str().map(str::to_owned);
    let first = eventually("three members with a leader", || async {
        let (_, cluster) = nodes.values().next().unwrap().get("/v1/cluster").await;
        (cluster["members"].as_array().map_or(0, Vec::len) == 3)
            .then(|| leader(&cluster))
            .flatten()
    })
    .await;

    // Kill the leader: a survivor becomes leader and reports it.
    drop(nodes.remove(&first));
    let lost = |node: &str| {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "node_lost" && e["lost_node"] == node)
            .cloned()
            .collect::<Vec<Value>>()
    };
    let event = eventually("node_lost for the killed leader", || async {
        lost(&first).into_iter().next()
    })
    .await;
    let second = eventually("a new leader", || async {
        let (_, cluster) = nodes.values().next().unwrap().get("/v1/cluster").await;
        leader(&cluster).filter(|l| *l != first)
    })
    .await;
    assert_eq!(
        event["node"],
        second.as_str(),
        "sent by the new leader: {event}"
    );

    // Kill a follower: the leader reports it.
    let follower = nodes.keys().find(|n| **n != second).unwrap().clone();
    drop(nodes.remove(&follower));
    let event = eventually("node_lost for the killed follower", || async {
        lost(&follower).into_iter().next()
    })
    .await;
    assert_eq!(event["node"], second.as_str(), "{event}");
    // By now every node has looked at the members many times over: each loss was sent once.
    assert_eq!(lost(&first).len(), 1, "{:?}", received.lock().unwrap());
    assert_eq!(lost(&follower).len(), 1, "{:?}", received.lock().unwrap());
    drop(nodes);
    delete_prefix(&endpoint, &format!("/{prefix}/")).await;
}

async fn delete_prefix(endpoint: &str, prefix: &str) {
    let mut client = etcd_client::Client::connect([endpoint], None)
        .await
        .expect("connect to etcd");
    client
        .delete(
            prefix,
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("delete the test's keys");
}
