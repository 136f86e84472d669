//! The API end to end on a real listener: jobs fire and their runs are listed; pause, resume, trigger,
//! update, delete; and a restart keeps jobs and history.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, eventually, every_second};

fn outputs(runs: &[Value]) -> Vec<(i64, String)> {
    runs.iter()
        .filter(|r| r["outcome"] == "succeeded")
        .map(|r| {
            (
                r["scheduled_ms"].as_i64().unwrap(),
                r["output"].as_str().unwrap_or("").trim().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_job_fires_every_second_and_its_runs_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, job) = server
        .send(
            Method::POST,
            "/v1/jobs",
            Some(every_second("tick", &["echo", "tick"])),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["id"], "tick");
    let runs = eventually("two succeeded runs", || async {
        let runs = server.runs("tick").await;
        (outputs(&runs).len() >= 2).then_some(runs)
    })
    .await;
    let (first, second) = (&runs[0], &runs[1]);
    assert!(
        first["scheduled_ms"].as_i64() > second["scheduled_ms"].as_i64(),
        "newest first"
    );
    assert_eq!(first["node"], "node-1");
    assert_eq!(outputs(&runs)[0].1, "tick");

    // Listed across jobs too, and filtered by outcome.
    let (status, all) = server.get("/v1/runs?outcome=succeeded&limit=5").await;
    assert_eq!(status, 200);
    assert!(
        all["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "succeeded")
    );
    assert!(!all["runs"].as_array().unwrap().is_empty());

    // Pagination of one job's runs.
    let (_, page) = server.get("/v1/jobs/tick/runs?limit=1").await;
    let before = page["next_before"].as_i64().expect("a next page");
    let (_, next) = server
        .get(&format!("/v1/jobs/tick/runs?limit=1&before={before}"))
        .await;
    assert!(next["runs"][0]["scheduled_ms"].as_i64().unwrap() < before);

    // Preview.
    let (status, next) = server.get("/v1/jobs/tick/next?n=3").await;
    assert_eq!(status, 200);
    let instants: Vec<i64> = next["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["unix_ms"].as_i64().unwrap())
        .collect();
    assert_eq!(instants.len(), 3);
    assert!(
        instants.windows(2).all(|w| w[1] - w[0] == 1000),
        "{instants:?}"
    );

    // The cluster view shows this node, leading and owning the job.
    let (status, cluster) = server.get("/v1/cluster").await;
    assert_eq!(status, 200);
    assert_eq!(cluster["leader"]["node"], "node-1");
    assert_eq!(cluster["members"][0]["id"], "node-1");
    assert_eq!(cluster["members"][0]["jobs_owned"], 1);

    // Rebalance plans of the live cluster: every job stays placed on a join; a drain of the only node
    // leaves it unplaced.
    let (status, plan) = server
        .send(Method::POST, "/v1/rebalance/plan?join=node-2", None)
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["assignment"].as_object().unwrap().len(), 1, "{plan}");
    let (status, plan) = server
        .send(Method::POST, "/v1/rebalance/plan?drain=node-1", None)
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(
        plan["unplaced"],
        json!(["tick"]),
        "draining the only node leaves the job unplaced: {plan}"
    );
}

#[tokio::test]
async fn pause_resume_trigger_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/jobs",
            Some(every_second("job", &["echo", "v1"])),
        )
        .await;
    assert_eq!(status, 201);
    eventually("a first run", || async {
        (!outputs(&server.runs("job").await).is_empty()).then_some(())
    })
    .await;

    // Pause: no scheduled run starts while paused.
    let (status, paused) = server.send(Method::POST, "/v1/jobs/job/pause", None).await;
    assert_eq!((status, &paused["paused"]), (200, &json!(true)));
    let paused_at = paused["updated_ms"].as_i64().unwrap();
    let (_, next) = server.get("/v1/jobs/job/next").await;
    assert_eq!(next["next"], json!([]), "a paused job has no next instants");
    // Observation window: three instants pass; none of them may run (the change reaches the timer within
    // an instant or so: one that was already due may still start).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late: Vec<_> = server
        .runs("job")
        .await
        .into_iter()
        .filter(|r| {
            r["outcome"] == "succeeded" && r["scheduled_ms"].as_i64().unwrap() > paused_at + 2000
        })
        .collect();
    assert!(late.is_empty(), "runs while paused: {late:?}");

    // Trigger runs it now, even while paused.
    let (status, fired) = server
        .send(Method::POST, "/v1/jobs/job/trigger", None)
        .await;
    assert_eq!(status, 202, "{fired}");
    let fire_id = fired["fire_ids"][0].as_str().unwrap().to_owned();
    let at: i64 = fire_id.rsplit_once('@').unwrap().1.parse().unwrap();
    eventually("the triggered run", || async {
        server
            .runs("job")
            .await
            .into_iter()
            .find(|r| r["scheduled_ms"] == at && r["manual"] == true)
    })
    .await;

    // Resume: scheduled runs come back.
    let (status, resumed) = server.send(Method::POST, "/v1/jobs/job/resume", None).await;
    assert_eq!((status, &resumed["paused"]), (200, &json!(false)));
    let resumed_at = resumed["updated_ms"].as_i64().unwrap();
    eventually("a run after resume", || async {
        outputs(&server.runs("job").await)
            .into_iter()
            .find(|(at, _)| *at > resumed_at)
    })
    .await;

    // Update (PUT with the revision): the next instants run the new command.
    let (_, current) = server.get("/v1/jobs/job").await;
    let mut replacement = current.clone();
    replacement["target"]["argv"] = json!(["echo", "v2"]);
    let (status, updated) = server
        .send(Method::PUT, "/v1/jobs/job", Some(replacement))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert!(updated["revision"].as_u64() > current["revision"].as_u64());
    let updated_at = updated["updated_ms"].as_i64().unwrap();
    let first_v2 = eventually("a run of the new command", || async {
        let mut runs = outputs(&server.runs("job").await);
        runs.reverse();
        runs.into_iter()
            .find(|(_, out)| out == "v2")
            .map(|(at, _)| at)
    })
    .await;
    assert!(
        first_v2 <= updated_at + 3000,
        "the update took effect at {first_v2}, more than two instants after {updated_at}"
    );
    let old_after_new: Vec<_> = outputs(&server.runs("job").await)
        .into_iter()
        .filter(|(at, out)| *at > first_v2 && out == "v1")
        .collect();
    assert!(
        old_after_new.is_empty(),
        "old command after the new one: {old_after_new:?}"
    );

    // Delete: the job, its history and its fires are gone.
    let marker = server.data_dir.parent().unwrap().join("marker");
    let (status, _) = server
        .send(
            Method::PATCH,
            "/v1/jobs/job",
            Some(json!({"target": {"argv": ["sh", "-c", format!("echo x >> {}", marker.display())]}})),
        )
        .await;
    assert_eq!(status, 200);
    eventually("the marker file", || async {
        marker.exists().then_some(())
    })
    .await;
    let (status, _) = server.send(Method::DELETE, "/v1/jobs/job", None).await;
    assert_eq!(status, 204);
    assert_eq!(server.get("/v1/jobs/job").await.0, 404);
    assert_eq!(server.get("/v1/jobs/job/runs").await.0, 404);
    // Observation window: a run already started may still append once; after that, nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let lines = std::fs::read_to_string(&marker).unwrap().lines().count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().lines().count(),
        lines,
        "the deleted job still fires"
    );
}

#[tokio::test]
async fn a_restarted_server_keeps_jobs_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/jobs",
            Some(every_second("keep", &["echo", "kept"])),
        )
        .await;
    assert_eq!(status, 201);
    let before = eventually("two runs", || async {
        let runs = outputs(&server.runs("keep").await);
        (runs.len() >= 2).then_some(runs)
    })
    .await;
    let status = server.terminate();
    assert!(
        status.success(),
        "SIGTERM exit: {status:?}\n{}",
        server.log()
    );
    assert!(
        server.log().contains("left the cluster"),
        "{}",
        server.log()
    );

    let server = Server::start(dir.path());
    let (status, job) = server.get("/v1/jobs/keep").await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["target"]["argv"], json!(["echo", "kept"]));
    let after = server.runs("keep").await;
    for (at, _) in &before {
        assert!(
            after.iter().any(|r| r["scheduled_ms"] == *at),
            "run at {at} lost across the restart"
        );
    }
    let last = before[0].0;
    eventually("a run after the restart", || async {
        outputs(&server.runs("keep").await)
            .into_iter()
            .find(|(at, _)| *at > last + 1000)
    })
    .await;
}

#[tokio::test]
async fn jobs_are_listed_by_the_outcome_of_their_newest_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for (id, argv) in [("a-ok", "true"), ("b-bad", "false"), ("c-never", "true")] {
        let job = json!({"id": id, "name": id, "schedule": "@yearly",
            "target": {"type": "command", "argv": [argv]}});
        assert_eq!(
            server.send(Method::POST, "/v1/jobs", Some(job)).await.0,
            201
        );
    }
    for id in ["a-ok", "b-bad"] {
        let (status, body) = server
            .send(Method::POST, &format!("/v1/jobs/{id}/trigger"), None)
            .await;
        assert_eq!(status, 202, "{body}");
        eventually("the triggered run's record", || async {
            (!server.runs(id).await.is_empty()).then_some(())
        })
        .await;
    }
    let ids = |list: &Value| -> Vec<String> {
        list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (outcome, want) in [
        ("failed", "b-bad"),
        ("succeeded", "a-ok"),
        ("none", "c-never"),
    ] {
        let (status, list) = server
            .get(&format!("/v1/jobs?last_outcome={outcome}"))
            .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(ids(&list), [want], "last_outcome={outcome}: {list}");
    }
    // A page of one that holds the last match has nothing to go on from.
    let (_, first) = server.get("/v1/jobs?last_outcome=none&limit=1").await;
    assert_eq!(ids(&first), ["c-never"]);
    assert!(first.get("next_after").is_none(), "{first}");
    let (_, none) = server.get("/v1/jobs?last_outcome=timed_out").await;
    assert_eq!(ids(&none), Vec::<String>::new());
}
