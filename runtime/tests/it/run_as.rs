//! `run_as`: a command runs as another user only when the node's configuration lists that user, and only when
//! the node runs as root.

use reqwest::Method;
use serde_json::json;

use crate::harness::{Options, Server, assert_error, eventually};

fn job(id: &str, user: &str, group: Option<&str>) -> serde_json::Value {
    let mut run_as = json!({"user": user});
    if let Some(group) = group {
        run_as["group"] = json!(group);
    }
    json!({"id": id, "name": id, "schedule": "@yearly",
        "target": {"type": "command", "argv": ["sh", "-c", "id -u; id -g"], "run_as": run_as}})
}

#[tokio::test]
async fn a_job_running_as_a_user_the_node_does_not_allow_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let answer = server
        .send(
            Method::POST,
            "/v1/jobs",
            Some(job("as-nobody", "nobody", None)),
        )
        .await;
    assert_error(&answer, 400, "invalid", Some("target.run_as.user"));
    let message = answer.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nobody") && message.contains("allow_run_as"),
        "{message}"
    );

    // A bad name is refused whatever the configuration says.
    let answer = server
        .send(Method::POST, "/v1/jobs", Some(job("bad", "no body", None)))
        .await;
    assert_error(&answer, 400, "invalid", Some("target.run_as.user"));

    // Nor can an update bring it in.
    let plain = json!({"id": "plain", "name": "plain", "schedule": "@yearly",
        "target": {"type": "command", "argv": ["true"]}});
    assert_eq!(
        server.send(Method::POST, "/v1/jobs", Some(plain)).await.0,
        201
    );
    let answer = server
        .send(
            Method::PATCH,
            "/v1/jobs/plain",
            Some(json!({"target": {"run_as": {"user": "nobody"}}})),
        )
        .await;
    assert_error(&answer, 400, "invalid", Some("target.run_as.user"));
}

#[tokio::test]
async fn a_job_running_as_an_allowed_user_runs_as_that_user_or_fails_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("campanile.toml");
    std::fs::write(&config, "allow_run_as = [\"nobody\"]\n").unwrap();
    let server = Server::start_with(
        dir.path(),
        Options {
            args: vec!["--config".into(), config.display().to_string()],
            ..Options::default()
        },
    );
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/jobs",
            Some(job("as-nobody", "nobody", Some("nogroup"))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["target"]["run_as"],
        json!({"user": "nobody", "group": "nogroup"})
    );
    let (status, body) = server
        .send(Method::POST, "/v1/jobs/as-nobody/trigger", None)
        .await;
    assert_eq!(status, 202, "{body}");
    let run = eventually("the triggered run's record", || async {
        server.runs("as-nobody").await.into_iter().next()
    })
    .await;
    if nix::unistd::geteuid().is_root() {
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        let nogroup = nix::unistd::Group::from_name("nogroup").unwrap().unwrap();
        assert_eq!(run["outcome"], "succeeded", "{run}");
        assert_eq!(
            run["output"],
            format!("{}\n{}\n", nobody.uid, nogroup.gid),
            "{run}"
        );
    } else {
        assert_eq!(run["outcome"], "failed", "{run}");
        assert!(
            run["reason"].as_str().unwrap().contains("not root"),
            "{run}"
        );
    }
}
