//! The CLI against a running server: exit codes 0/1/2, tables and JSON.

use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::{BIN, Server, eventually};

fn campanile(server: &Server, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("CAMPANILE_SERVER", &server.url)
        .env_remove("CAMPANILE_TOKEN")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn ok(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[tokio::test]
async fn job_commands_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let out = ok(campanile(
        &server,
        &[
            "job",
            "add",
            "--id",
            "hello",
            "--schedule",
            "* * * * * *",
            "--label",
            "team=ops",
            "--",
            "echo",
            "hi",
        ],
    ));
    assert!(out.contains("created job hello"), "{out}");
    let table = ok(campanile(&server, &["job", "ls"]));
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    assert!(
        table.contains("hello") && table.contains("echo hi"),
        "{table}"
    );
    let json: Value = serde_json::from_str(&ok(campanile(
        &server,
        &["job", "ls", "--label", "team=ops", "-o", "json"],
    )))
    .unwrap();
    assert_eq!(json["jobs"][0]["id"], "hello");

    eventually("a run listed by the CLI", || async {
        let out = campanile(&server, &["job", "runs", "hello"]);
        stdout(&out).contains("succeeded").then_some(())
    })
    .await;
    let runs: Value = serde_json::from_str(&ok(campanile(
        &server,
        &["job", "runs", "hello", "--output", "json"],
    )))
    .unwrap();
    assert_eq!(runs["runs"][0]["outcome"], "succeeded");

    assert!(ok(campanile(&server, &["job", "get", "hello"])).contains("* * * * * *"));
    let next = ok(campanile(&server, &["job", "next", "hello", "-n", "2"]));
    assert_eq!(next.lines().count(), 3, "{next}");
    ok(campanile(
        &server,
        &[
            "job",
            "edit",
            "hello",
            "--schedule",
            "*/2 * * * * *",
            "--set",
            "overlap=allow",
        ],
    ));
    let job: Value = serde_json::from_str(&ok(campanile(
        &server,
        &["job", "get", "hello", "-o", "json"],
    )))
    .unwrap();
    assert_eq!(
        (job["schedule"].as_str(), job["overlap"].as_str()),
        (Some("*/2 * * * * *"), Some("allow"))
    );

    // edit --file: a replacement checked against the revision read first.
    let file = dir.path().join("hello.toml");
    std::fs::write(&file, "name = \"hello\"\nschedule = \"* * * * * *\"\n[target]\ntype = \"command\"\nargv = [\"echo\", \"toml\"]\n").unwrap();
    ok(campanile(
        &server,
        &["job", "edit", "hello", "--file", file.to_str().unwrap()],
    ));
    let job: Value = serde_json::from_str(&ok(campanile(
        &server,
        &["job", "get", "hello", "-o", "json"],
    )))
    .unwrap();
    assert_eq!(job["target"]["argv"][1], "toml");

    ok(campanile(&server, &["job", "pause", "hello"]));
    ok(campanile(&server, &["job", "resume", "hello"]));
    assert!(ok(campanile(&server, &["job", "trigger", "hello"])).contains("triggered hello@"));
    assert!(
        ok(campanile(
            &server,
            &["job", "clone", "hello", "--id", "copy"]
        ))
        .contains("created job copy")
    );
    let backfill = ok(campanile(
        &server,
        &[
            "job",
            "backfill",
            "copy",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-01T00:00:02Z",
        ],
    ));
    assert!(backfill.contains("3 instants"), "{backfill}");
    assert!(ok(campanile(&server, &["cluster"])).contains("node-1"));

    // job add from a JSON file.
    let file = dir.path().join("job.json");
    std::fs::write(&file, r#"{"id": "from-file", "name": "f", "schedule": "@daily", "target": {"type": "http", "url": "http://127.0.0.1:9/x"}}"#).unwrap();
    ok(campanile(
        &server,
        &[
            "job",
            "add",
            "--file",
            file.to_str().unwrap(),
            "--tz",
            "Europe/London",
        ],
    ));
    let job: Value = serde_json::from_str(&ok(campanile(
        &server,
        &["job", "get", "from-file", "-o", "json"],
    )))
    .unwrap();
    assert_eq!(job["timezone"], "Europe/London");

    // Errors: exit 1, with the server's message naming the field.
    let bad = campanile(
        &server,
        &["job", "add", "--schedule", "61 * * * *", "--", "true"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("schedule") && stderr(&bad).contains("61"),
        "{}",
        stderr(&bad)
    );
    let bad = campanile(
        &server,
        &[
            "job",
            "add",
            "--schedule",
            "* * * * *",
            "--tz",
            "Mars/Base",
            "--",
            "true",
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("timezone"), "{}", stderr(&bad));
    let missing = campanile(&server, &["job", "get", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("404"), "{}", stderr(&missing));
    // Usage errors: exit 2.
    assert_eq!(
        campanile(&server, &["job", "explode"]).status.code(),
        Some(2)
    );
    assert_eq!(
        campanile(&server, &["job", "add", "--bogus"]).status.code(),
        Some(2)
    );

    ok(campanile(&server, &["job", "rm", "hello"]));
    assert_eq!(
        campanile(&server, &["job", "get", "hello"]).status.code(),
        Some(1)
    );
}

#[test]
fn a_server_that_is_not_there_is_an_error_not_a_hang() {
    let out = Command::new(BIN)
        .args(["job", "ls", "--server", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("failed to reach"), "{}", stderr(&out));
}

#[test]
fn config_check_and_offline_plans() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "node_id = \"a\"\n[engine]\nsession_ttl = \"5s\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("session_ttl = \"5s\""),
        "{}",
        stdout(&out)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "node_id = \"a\"\nlisten_on = \"x\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("listen_on"), "{}", stderr(&out));

    let bad = dir.path().join("bad-ttl.toml");
    std::fs::write(&bad, "[engine]\nsession_ttl = \"1ms\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("engine.session_ttl"),
        "{}",
        stderr(&out)
    );

    let scenario = dir.path().join("scenario.json");
    std::fs::write(
        &scenario,
        r#"{"jobs": [{"id": "a"}, {"id": "a"}], "nodes": ["n1"]}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["rebalance", "plan", "--input"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("listed twice"), "{}", stderr(&out));

    std::fs::write(
        &scenario,
        r#"{"jobs": [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}],
            "previous": {"a": "n1", "b": "n1", "c": "n1", "d": "n1"}, "nodes": ["n1", {"id": "n2"}]}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["rebalance", "plan", "-o", "json", "--input"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["moves"], 2, "{plan}");
    let on_n2 = plan["assignment"]
        .as_object()
        .unwrap()
        .values()
        .filter(|n| *n == "n2")
        .count();
    assert_eq!(on_n2, 2, "{plan}");
    let toml = dir.path().join("scenario.toml");
    std::fs::write(&toml, "nodes = [\"n1\"]\n[[jobs]]\nid = \"a\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["rebalance", "plan", "--input"])
        .arg(&toml)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("moves: 0"), "{}", stdout(&out));

    // An etcd user without a password is refused before connecting, naming the key.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args([
            "--coordinator",
            "etcd://127.0.0.1:2379/x",
            "--etcd-user",
            "ops",
        ])
        .env_remove("CAMPANILE_ETCD_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("etcd.user") && stderr(&out).contains("CAMPANILE_ETCD_PASSWORD"),
        "{}",
        stderr(&out)
    );
}

/// Runs the binary with its standard output on a pipe whose reader is already gone, as `| head -1` leaves
/// it after the first line: every write fails with a broken pipe.
fn into_closed_pipe(server: Option<&Server>, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("CAMPANILE_TOKEN")
        .stdout(writer);
    if let Some(server) = server {
        command.env("CAMPANILE_SERVER", &server.url);
    }
    command.output().unwrap()
}

#[track_caller]
fn quiet_exit(out: &Output, what: &str) {
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(141)),
        "{what} into a closed pipe exited {:?}; stderr:\n{}",
        out.status,
        stderr(out)
    );
    assert!(
        !stderr(out).contains("panicked") && !stderr(out).contains("error"),
        "{what} into a closed pipe complained:\n{}",
        stderr(out)
    );
}

#[tokio::test]
async fn output_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    ok(campanile(
        &server,
        &[
            "job",
            "add",
            "--id",
            "piped",
            "--schedule",
            "* * * * * *",
            "--",
            "true",
        ],
    ));
    eventually("a run of piped", || async {
        (!server.runs("piped").await.is_empty()).then_some(())
    })
    .await;
    for args in [
        &["job", "runs", "piped"][..],
        &["job", "runs", "piped", "--output", "json"],
        &["job", "next", "piped", "--n", "500"],
        &["job", "next", "piped", "--n", "500", "-o", "json"],
        &["job", "ls"],
        &["job", "get", "piped"],
        &["cluster"],
    ] {
        quiet_exit(&into_closed_pipe(Some(&server), args), &args.join(" "));
    }
    // An error is still an error when stdout is gone: it goes to stderr, with status 1.
    let out = into_closed_pipe(Some(&server), &["job", "get", "missing"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
}

#[test]
fn generated_output_into_a_closed_pipe_exits_quietly() {
    for args in [&["completions", "bash"][..], &["man"]] {
        quiet_exit(&into_closed_pipe(None, args), &args.join(" "));
    }
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.contains("complete -F _campanile"), "{bash}");
    assert!(
        bash.contains("--coordinator"),
        "bash completes serve's flags"
    );
    let zsh = run(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef campanile"), "{zsh}");
    let fish = run(&["completions", "fish"]);
    assert!(fish.contains("complete -c campanile"), "{fish}");
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    assert!(stderr(&out).contains("tcsh"), "{}", stderr(&out));

    let man = run(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH campanile"),
        "{man}"
    );
    assert!(man.contains("serve"), "the main page lists the subcommands");

    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    run(&["man", "--out-dir", pages.to_str().unwrap()]);
    for page in [
        "campanile.1",
        "campanile-serve.1",
        "campanile-job.1",
        "campanile-job-add.1",
    ] {
        let text = std::fs::read_to_string(pages.join(page))
            .unwrap_or_else(|e| panic!("man --out-dir wrote no {page}: {e}"));
        assert!(text.contains(".TH"), "{page}: {text}");
    }
}

#[test]
fn the_packaged_example_config_is_valid() {
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/campanile.toml");
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("data_dir = \"/var/lib/campanile\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn config_check_never_prints_webhook_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hooks.toml");
    std::fs::write(
        &file,
        "[[notify.webhooks]]\nname = \"ops\"\nurl = \"https://bot:url-secret@hooks.example.com/x\"\n\
         headers = { Authorization = \"Bearer header-secret\" }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(!printed.contains("header-secret"), "{printed}");
    assert!(!printed.contains("url-secret"), "{printed}");
    assert!(printed.contains("Authorization"), "{printed}");
    assert!(printed.contains("hooks.example.com"), "{printed}");
}

#[test]
fn schedule_next_previews_without_a_server() {
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env_remove("CAMPANILE_SERVER")
            .output()
            .unwrap()
    };
    let table = ok(run(&[
        "schedule",
        "next",
        "30 1 * * *",
        "--tz",
        "Europe/London",
        "--count",
        "4",
        "--after",
        "2027-03-26T00:00:00Z",
    ]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "at 01:30 every day, Europe/London");
    assert!(lines[3].starts_with("2027-03-27T01:30:00+00:00"), "{table}");
    assert!(!lines[3].ends_with("DST change before this"), "{table}");
    assert!(lines[4].starts_with("2027-03-28T02:00:00+01:00"), "{table}");
    assert!(lines[4].ends_with("DST change before this"), "{table}");
    assert!(lines[5].starts_with("2027-03-29T01:30:00+01:00"), "{table}");
    assert_eq!(lines.len(), 6, "{table}");

    let json: Value = serde_json::from_str(&ok(run(&[
        "schedule",
        "next",
        "@every 90m",
        "--count",
        "2",
        "-o",
        "json",
    ])))
    .unwrap();
    assert_eq!(json["description"], "every 1 hour 30 minutes");
    assert_eq!(json["next"].as_array().unwrap().len(), 2);

    for (args, wanted) in [
        (&["schedule", "next", "61 * * * *"][..], "minute 61"),
        (
            &["schedule", "next", "@daily", "--tz", "Mars/Olympus"][..],
            "--tz",
        ),
        (
            &["schedule", "next", "@daily", "--count", "101"][..],
            "--count",
        ),
        (
            &["schedule", "next", "@daily", "--dst", "sometimes"][..],
            "--dst",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(wanted), "{args:?}: {}", stderr(&out));
    }
}
