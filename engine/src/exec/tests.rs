//! Tests of the target runners: real processes, and (feature `http`) a one-request server on loopback.
//!
//! These run on real time: a timeout is the thing under test. Nothing sleeps to synchronize: the tests await
//! the run, a FIFO or a socket, and poll only to observe that a killed process has died, with a failure bound.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::net::unix::pipe;

use super::tail::OutputTail;
use super::{AttemptResult, BaseEnv, FireContext};
use crate::coordinator::NodeId;
use crate::job::{CommandTarget, FireId, JobId, SecretValue};
use crate::run::{Outcome, RunRecord};

fn ctx() -> FireContext {
    FireContext {
        fire: FireId::new(JobId::new("backup-db").unwrap(), 1_700_000_000_123),
        job_name: "nightly backup".to_owned(),
        attempt: 2,
        node: NodeId::new("node-a").unwrap(),
    }
}

/// One attempt from the default base environment.
async fn run_command(cmd: &CommandTarget, ctx: &FireContext) -> AttemptResult {
    super::run_command(cmd, ctx, &BaseEnv::default()).await
}

fn sh(script: &str) -> CommandTarget {
    CommandTarget::new(["sh", "-c", script])
}

/// `sh -c script sh arg`: the script sees `arg` as `$1`.
fn sh_with_arg(script: &str, arg: &std::path::Path) -> CommandTarget {
    CommandTarget::new(["sh", "-c", script, "sh", arg.to_str().unwrap()])
}

/// The state letter of a process from `/proc/PID/stat` (`R`, `S`, `Z`...), `None` if it does not exist.
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": comm may hold spaces and parentheses, so the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Asserts that `pid` dies: it no longer exists, or is a zombie (dead, waiting for its parent to reap it: an
/// orphan's new parent, init, may do so late, or never in a container). `SIGKILL` takes effect
/// asynchronously, so a process may still be running for a moment after `kill` returned; the 5 s are only a
/// failure bound, a passing run returns at the first check or shortly after.
async fn assert_dies(pid: i32) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match process_state(pid) {
            None | Some('Z') => return,
            Some(state) if tokio::time::Instant::now() >= give_up => {
                panic!("process {pid} still alive (state {state}) 5 s after its group was killed")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Parses the "leader_pid background_pid" line that the group-kill tests' scripts write.
fn parse_pids(line: &str) -> Option<[i32; 2]> {
    let mut pids = line.split_whitespace().map(str::parse);
    match (pids.next(), pids.next()) {
        (Some(Ok(leader)), Some(Ok(background))) => Some([leader, background]),
        _ => None,
    }
}

/// A script that starts a background `sleep` in its process group, writes "$$ $!" to `$1`, then sleeps.
const LEADER_AND_BACKGROUND: &str = r#"sleep 300 & echo "$$ $!" > "$1"; sleep 300"#;

fn assert_outcome(result: &AttemptResult, outcome: Outcome, code: Option<i32>) {
    assert_eq!((result.outcome, result.code), (outcome, code), "{result:?}");
}

#[tokio::test]
async fn command_gets_the_fire_env_its_own_env_and_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = sh(
        r#"printf '%s\n' "$CAMPANILE_FIRE_ID" "$CAMPANILE_JOB_ID" "$CAMPANILE_JOB_NAME" \
        "$CAMPANILE_SCHEDULED_AT" "$CAMPANILE_ATTEMPT" "$CAMPANILE_NODE_ID" "$GREETING" \
        "${PATH:+inherited PATH}" "$(pwd -P)""#,
    );
    cmd.env.insert("GREETING".to_owned(), "hello world".into());
    // A job's env cannot forge the fire's identity.
    cmd.env
        .insert("CAMPANILE_FIRE_ID".to_owned(), "forged@0".into());
    cmd.cwd = Some(dir.path().to_owned());

    let result = run_command(&cmd, &ctx()).await;

    assert_outcome(&result, Outcome::Succeeded, Some(0));
    assert_eq!(result.reason, None);
    let cwd = dir.path().canonicalize().unwrap();
    assert_eq!(
        result.output,
        format!(
            "backup-db@1700000000123\nbackup-db\nnightly backup\n2023-11-14T22:13:20.123Z\n2\nnode-a\n\
             hello world\ninherited PATH\n{}\n",
            cwd.display()
        )
    );
}

#[tokio::test]
async fn command_starts_from_the_base_env_never_the_nodes_secrets() {
    // The node's own environment holds a secret (as a server's holds `CAMPANILE_TOKEN`); the base names PATH,
    // HOME and one more variable; the job's env overrides the base.
    let base = BaseEnv::from_vars([
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("HOME".into(), "/home/campanile".into()),
        ("HTTPS_PROXY".into(), "http://proxy:3128".into()),
        ("LANG".into(), "C.UTF-8".into()),
    ]);
    let mut cmd = sh(r#"env | grep -v '^PWD=' | grep -v '^SHLVL=' | grep -v '^_=' | sort"#);
    cmd.env.insert("LANG".to_owned(), "de_DE.UTF-8".into());
    cmd.env.insert("GREETING".to_owned(), "hi".into());

    let result = super::run_command(&cmd, &ctx(), &base).await;

    assert_outcome(&result, Outcome::Succeeded, Some(0));
    let expected = [
        "CAMPANILE_ATTEMPT=2",
        "CAMPANILE_FIRE_ID=backup-db@1700000000123",
        "CAMPANILE_JOB_ID=backup-db",
        "CAMPANILE_JOB_NAME=nightly backup",
        "CAMPANILE_NODE_ID=node-a",
        "CAMPANILE_SCHEDULED_AT=2023-11-14T22:13:20.123Z",
        "GREETING=hi",
        "HOME=/home/campanile",
        "HTTPS_PROXY=http://proxy:3128",
        "LANG=de_DE.UTF-8",
        "PATH=/usr/bin:/bin",
    ];
    assert_eq!(result.output.lines().collect::<Vec<_>>(), expected);
}

#[tokio::test]
async fn secret_references_are_resolved_when_the_command_starts() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "file-secret\n").unwrap();
    // `PATH` is in every test process's environment: a reference the test need not set.
    let path = std::env::var("PATH").unwrap();
    let mut cmd = sh(r#"printf '%s|%s' "$FROM_FILE" "$FROM_ENV""#);
    cmd.env
        .insert("FROM_FILE".to_owned(), SecretValue::FromFile(key.clone()));
    cmd.env
        .insert("FROM_ENV".to_owned(), SecretValue::FromEnv("PATH".into()));

    let result = run_command(&cmd, &ctx()).await;

    assert_outcome(&result, Outcome::Succeeded, Some(0));
    assert_eq!(result.output, format!("file-secret|{path}"));

    // A reference that cannot be resolved fails the run, naming it, and starts nothing.
    cmd.env.insert(
        "MISSING".to_owned(),
        SecretValue::FromEnv("CAMPANILE_TEST_UNSET_VARIABLE_X".into()),
    );
    let result = run_command(&cmd, &ctx()).await;
    assert_outcome(&result, Outcome::Failed, None);
    let reason = result.reason.unwrap();
    assert!(
        reason.contains("MISSING") && reason.contains("CAMPANILE_TEST_UNSET_VARIABLE_X"),
        "{reason}"
    );
}

#[test]
fn base_env_takes_the_always_names_and_the_named_ones_from_the_process() {
    // `cargo test` runs with PATH and HOME set; a name the process does not have is left out.
    let base = BaseEnv::inherit(["CAMPANILE_TEST_NO_SUCH_VARIABLE", "PATH"]);
    let names: Vec<_> = base
        .vars()
        .map(|(n, _)| n.to_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"PATH".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "CAMPANILE_TEST_NO_SUCH_VARIABLE"),
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "PATH").count(),
        1,
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| BaseEnv::ALWAYS.contains(&n.as_str())),
        "only the ALWAYS names: {names:?}"
    );
    // Without a PATH, commands still find the usual programs.
    let bare = BaseEnv::from_vars([]);
    assert_eq!(
        bare.vars().collect::<Vec<_>>(),
        [(&"PATH".into(), &BaseEnv::DEFAULT_PATH.into())]
    );
}

#[tokio::test]
async fn exit_code_decides_the_outcome() {
    for (script, outcome, code, reason) in [
        ("exit 0", Outcome::Succeeded, 0, None),
        ("exit 3", Outcome::Failed, 3, Some("exit code 3")),
        ("exit 255", Outcome::Failed, 255, Some("exit code 255")),
    ] {
        let result = run_command(&sh(script), &ctx()).await;
        assert_outcome(&result, outcome, Some(code));
        assert_eq!(result.reason.as_deref(), reason, "{script}");
    }
}

#[tokio::test]
async fn stdout_and_stderr_share_one_output_in_order_and_stdin_is_empty() {
    let result = run_command(
        &sh("echo out; echo err >&2; cat; echo out again; exit 1"),
        &ctx(),
    )
    .await;
    assert_outcome(&result, Outcome::Failed, Some(1));
    assert_eq!(result.output, "out\nerr\nout again\n");
}

#[tokio::test]
async fn death_by_signal_is_a_failure_naming_the_signal() {
    let result = run_command(&sh("echo before; kill -TERM $$"), &ctx()).await;
    assert_outcome(&result, Outcome::Failed, None);
    assert_eq!(
        result.reason.as_deref(),
        Some("killed by SIGTERM (signal 15)")
    );
    assert_eq!(result.output, "before\n");
}

#[tokio::test]
async fn output_keeps_the_last_bytes_of_a_large_write() {
    // 3 MB through the pipe; only the tail is kept.
    let result = run_command(&sh("yes 0123456789 | head -c 3000000; printf END"), &ctx()).await;
    assert_outcome(&result, Outcome::Succeeded, Some(0));
    assert_eq!(result.output.len(), RunRecord::MAX_OUTPUT);
    // 3,000,000 = 272,727 lines of 11 bytes and "012".
    assert!(
        result.output.ends_with("0123456789\n012END"),
        "{:?}",
        &result.output[4000..]
    );
}

#[tokio::test]
async fn a_command_writing_without_pause_still_times_out_with_bounded_output() {
    let mut cmd = CommandTarget::new(["yes", "campanile"]);
    cmd.timeout = Some(Duration::from_millis(300));
    let result = run_command(&cmd, &ctx()).await;
    assert_outcome(&result, Outcome::TimedOut, None);
    assert_eq!(result.reason.as_deref(), Some("timeout 300ms"));
    assert!(result.output.len() <= RunRecord::MAX_OUTPUT);
    // Whole lines between a first and a last that the tail and the kill may have cut.
    let lines: Vec<&str> = result.output.split('\n').collect();
    let inner = &lines[1.min(lines.len())..lines.len().saturating_sub(1)];
    assert!(
        inner.iter().all(|line| *line == "campanile"),
        "{:?}",
        result.output
    );
}

#[tokio::test]
async fn a_program_that_cannot_start_fails_with_its_name_and_the_os_error() {
    let missing = run_command(
        &CommandTarget::new(["/nonexistent/campanile-no-such-program", "--flag"]),
        &ctx(),
    )
    .await;
    assert_outcome(&missing, Outcome::Failed, None);
    assert_eq!(
        missing.reason.as_deref(),
        Some(
            "failed to start \"/nonexistent/campanile-no-such-program\": \
             No such file or directory (os error 2)"
        )
    );

    let not_in_path = run_command(&CommandTarget::new(["campanile-no-such-program"]), &ctx()).await;
    assert_outcome(&not_in_path, Outcome::Failed, None);
    assert!(
        not_in_path
            .reason
            .as_deref()
            .unwrap()
            .starts_with("failed to start \"campanile-no-such-program\": "),
        "{not_in_path:?}"
    );

    // Without any execute bit even root may not run a file.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let denied = run_command(&CommandTarget::new([script.to_str().unwrap()]), &ctx()).await;
    assert_outcome(&denied, Outcome::Failed, None);
    assert_eq!(
        denied.reason,
        Some(format!(
            "failed to start {:?}: Permission denied (os error 13)",
            script.to_str().unwrap()
        ))
    );

    let mut bad_cwd = CommandTarget::new(["true"]);
    bad_cwd.cwd = Some(dir.path().join("missing"));
    let bad_cwd = run_command(&bad_cwd, &ctx()).await;
    assert_eq!(
        bad_cwd.reason,
        Some(format!(
            "failed to start \"true\" in {}: No such file or directory (os error 2)",
            dir.path().join("missing").display()
        ))
    );

    let empty = run_command(&CommandTarget::new(Vec::<String>::new()), &ctx()).await;
    assert_outcome(&empty, Outcome::Failed, None);
    assert_eq!(
        empty.reason.as_deref(),
        Some("argv is empty: no program to run")
    );
}

#[tokio::test]
async fn timeout_kills_the_command_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    // The deadline races the script's own start: on a loaded machine `sh` may be killed before it wrote both
    // pids, and then this case shows nothing. It is then run again with a longer timeout.
    for timeout in [300, 1_000, 5_000].map(Duration::from_millis) {
        let mut cmd = sh_with_arg(LEADER_AND_BACKGROUND, &pidfile);
        cmd.timeout = Some(timeout);

        let result = run_command(&cmd, &ctx()).await;

        assert_outcome(&result, Outcome::TimedOut, None);
        assert_eq!(
            result.reason,
            Some(format!("timeout {}", humantime::format_duration(timeout)))
        );
        let written = std::fs::read_to_string(&pidfile).unwrap_or_default();
        let Some(pids) = parse_pids(&written) else {
            continue;
        };
        for pid in pids {
            assert_dies(pid).await;
        }
        return;
    }
    panic!("sh never got to start its background process, even with a 5 s timeout");
}

#[tokio::test]
async fn dropping_the_run_kills_the_command_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pids");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo: {made}");
    // Read-write, so that opening does not wait for the writer and the read waits for the pids instead.
    let pids = pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&fifo)
        .unwrap();
    let mut pids = tokio::io::BufReader::new(pids);
    let mut line = String::new();
    let cmd = sh_with_arg(LEADER_AND_BACKGROUND, &fifo);
    let ctx = ctx();

    // The run has no timeout: only dropping it can stop it. `select!` drops it once both pids are known.
    tokio::select! {
        biased;
        read = pids.read_line(&mut line) => { read.unwrap(); }
        result = run_command(&cmd, &ctx) => panic!("the command ended by itself: {result:?}"),
    }

    let pids = parse_pids(&line).unwrap_or_else(|| panic!("bad pid line {line:?}"));
    for pid in pids {
        assert_dies(pid).await;
    }
}

#[tokio::test]
async fn a_background_process_holding_the_output_does_not_hold_the_run() {
    // The command exits at once, but the `sleep` it leaves behind keeps the pipe open.
    let result = run_command(&sh("sleep 300 & echo $!"), &ctx()).await;

    assert_outcome(&result, Outcome::Succeeded, Some(0));
    let pid: i32 = result.output.trim().parse().unwrap();
    // A command that exited by itself leaves its group alone (as cron does): the test cleans up.
    assert!(process_state(pid).is_some_and(|state| state != 'Z'));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_dies(pid).await;
}

#[test]
fn tail_keeps_the_last_bytes() {
    let mut tail = OutputTail::new(8);
    tail.push(b"abc");
    tail.push(b"defgh");
    tail.push(b"ij");
    assert_eq!(tail.total(), 10);
    assert_eq!(tail.into_string(), "cdefghij");

    let mut tail = OutputTail::new(4);
    tail.push(b"0123456789");
    assert_eq!(tail.into_string(), "6789");

    let mut tail = OutputTail::new(4);
    tail.push(b"ab");
    assert_eq!(tail.into_string(), "ab");
}

#[test]
fn tail_cuts_at_a_char_boundary() {
    // "é" is 2 bytes: 5 of them and an "x" are 11 bytes; the last 8 start inside an "é".
    let mut tail = OutputTail::new(8);
    tail.push("ééééé".as_bytes());
    tail.push(b"x");
    assert_eq!(tail.into_string(), "éééx");

    // A cut inside a 4-byte char drops its 3 remaining bytes.
    let mut tail = OutputTail::new(5);
    tail.push("a🦀🦀".as_bytes());
    assert_eq!(tail.into_string(), "🦀");
}

#[test]
fn tail_stays_within_the_cap_when_invalid_utf8_expands() {
    // Each invalid byte becomes U+FFFD, 3 bytes long.
    let mut tail = OutputTail::new(RunRecord::MAX_OUTPUT);
    tail.push(&[0xff; 10_000]);
    let text = tail.into_string();
    assert!(text.len() <= RunRecord::MAX_OUTPUT, "{}", text.len());
    assert!(text.chars().all(|c| c == char::REPLACEMENT_CHARACTER));
    assert_eq!(text.chars().count(), RunRecord::MAX_OUTPUT / 3);

    // An invalid byte that is not a cut stays visible.
    let mut tail = OutputTail::new(16);
    tail.push(b"ok\xffok");
    assert_eq!(tail.into_string(), "ok\u{fffd}ok");
}

#[cfg(feature = "http")]
mod http {
    //! The HTTP runner against a one-request server on loopback.

    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::{assert_outcome, ctx};
    use crate::exec::run_http;
    use crate::job::HttpTarget;
    use crate::run::{Outcome, RunRecord};

    /// The request the server saw.
    #[derive(Debug)]
    struct Seen {
        method: String,
        path: String,
        /// Lower-case names.
        headers: BTreeMap<String, String>,
        body: String,
    }

    /// How the server answers.
    enum Answer {
        Status(u16, String),
        /// Never answer; hold the connection until the sender is dropped.
        Hang(oneshot::Receiver<()>),
    }

    /// Serves one request on a fresh loopback port; returns the base URL and the request, once answered.
    async fn serve_once(answer: Answer) -> (String, JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut raw = Vec::new();
            let head_end = loop {
                let mut buf = [0; 4096];
                let n = stream.read(&mut buf).await.unwrap();
                assert_ne!(n, 0, "connection closed before the request head ended");
                raw.extend_from_slice(&buf[..n]);
                if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at;
                }
            };
            let head = String::from_utf8(raw[..head_end].to_vec()).unwrap();
            let mut lines = head.split("\r\n");
            let mut request_line = lines.next().unwrap().split(' ');
            let method = request_line.next().unwrap().to_owned();
            let path = request_line.next().unwrap().to_owned();
            let headers: BTreeMap<String, String> = lines
                .map(|line| {
                    let (name, value) = line.split_once(':').unwrap();
                    (name.to_ascii_lowercase(), value.trim().to_owned())
                })
                .collect();
            let length: usize = headers
                .get("content-length")
                .map_or(0, |len| len.parse().unwrap());
            let mut body = raw[head_end + 4..].to_vec();
            while body.len() < length {
                let mut buf = [0; 4096];
                let n = stream.read(&mut buf).await.unwrap();
                assert_ne!(n, 0, "connection closed before the request body ended");
                body.extend_from_slice(&buf[..n]);
            }
            match answer {
                Answer::Status(status, reply) => {
                    let response = format!(
                        "HTTP/1.1 {status} Whatever\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                    stream.write_all(response.as_bytes()).await.unwrap();
                    stream.shutdown().await.unwrap();
                }
                Answer::Hang(release) => {
                    let _ = release.await;
                }
            }
            Seen {
                method,
                path,
                headers,
                body: String::from_utf8(body).unwrap(),
            }
        });
        (base, server)
    }

    fn client() -> crate::exec::HttpClients {
        crate::exec::HttpClients::new(crate::exec::Egress::default()).unwrap()
    }

    fn target(url: String) -> HttpTarget {
        HttpTarget {
            url,
            method: "POST".to_owned(),
            headers: BTreeMap::new(),
            body: None,
            expected_status: Vec::new(),
            timeout: Duration::from_secs(10),
            follow_redirects: false,
        }
    }

    #[tokio::test]
    async fn request_carries_the_fire_headers_method_and_body() {
        let (base, server) = serve_once(Answer::Status(200, "accepted".to_owned())).await;
        let mut target = target(format!("{base}/hooks/backup?run=1"));
        target.method = "PUT".to_owned();
        target.headers.insert("X-Token".to_owned(), "s3cret".into());
        // A job's headers cannot forge the fire's identity.
        target
            .headers
            .insert("Campanile-Fire-Id".to_owned(), "forged@0".into());
        target.body = Some(r#"{"full":true}"#.to_owned());

        let result = run_http(&client(), &target, &ctx()).await;

        assert_outcome(&result, Outcome::Succeeded, Some(200));
        assert_eq!(result.output, "accepted");
        assert_eq!(result.reason, None);
        let seen = server.await.unwrap();
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.path, "/hooks/backup?run=1");
        assert_eq!(seen.body, r#"{"full":true}"#);
        for (name, value) in [
            ("x-token", "s3cret"),
            ("campanile-fire-id", "backup-db@1700000000123"),
            ("campanile-job-id", "backup-db"),
            ("campanile-scheduled-at", "2023-11-14T22:13:20.123Z"),
            ("campanile-attempt", "2"),
            ("campanile-node-id", "node-a"),
        ] {
            assert_eq!(
                seen.headers.get(name).map(String::as_str),
                Some(value),
                "{name} in {:?}",
                seen.headers
            );
        }
    }

    #[tokio::test]
    async fn status_is_checked_against_expected_status_or_2xx() {
        for (status, expected, outcome, reason) in [
            (204, vec![], Outcome::Succeeded, None),
            (
                500,
                vec![],
                Outcome::Failed,
                Some("unexpected status 500 (expected 2xx)"),
            ),
            (404, vec![404, 410], Outcome::Succeeded, None),
            (
                200,
                vec![202, 204],
                Outcome::Failed,
                Some("unexpected status 200 (expected one of 202, 204)"),
            ),
        ] {
            let (base, server) = serve_once(Answer::Status(status, String::new())).await;
            let mut target = target(base);
            target.expected_status = expected;
            let result = run_http(&client(), &target, &ctx()).await;
            assert_outcome(&result, outcome, Some(i32::from(status)));
            assert_eq!(result.reason.as_deref(), reason, "status {status}");
            server.await.unwrap();
        }
    }

    #[tokio::test]
    async fn response_body_keeps_its_tail() {
        let body = format!("{}END", "x".repeat(1_000_000));
        let (base, server) = serve_once(Answer::Status(503, body)).await;
        let result = run_http(&client(), &target(base), &ctx()).await;
        assert_outcome(&result, Outcome::Failed, Some(503));
        assert_eq!(result.output.len(), RunRecord::MAX_OUTPUT);
        assert!(result.output.ends_with("xxEND"));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_server_that_does_not_answer_times_out() {
        let (release, hang) = oneshot::channel();
        let (base, server) = serve_once(Answer::Hang(hang)).await;
        let mut target = target(base);
        target.timeout = Duration::from_millis(300);

        let result = run_http(&client(), &target, &ctx()).await;

        assert_outcome(&result, Outcome::TimedOut, None);
        assert_eq!(result.reason.as_deref(), Some("timeout 300ms"));
        drop(release);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_url_fails_without_naming_the_url() {
        // A port that was just free: nothing listens there.
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let target = target(format!("http://127.0.0.1:{port}/token-abc123"));
        let result = run_http(&client(), &target, &ctx()).await;
        assert_outcome(&result, Outcome::Failed, None);
        let reason = result.reason.unwrap();
        assert!(reason.starts_with("error sending request"), "{reason}");
        assert!(!reason.contains("token-abc123"), "{reason}");
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_not_sent() {
        let mut bad_header = target("http://127.0.0.1:9/".to_owned());
        bad_header
            .headers
            .insert("Bad Header".to_owned(), "x".into());
        let result = run_http(&client(), &bad_header, &ctx()).await;
        assert_outcome(&result, Outcome::Failed, None);
        assert_eq!(
            result.reason.as_deref(),
            Some("header \"Bad Header\" is not a valid header name")
        );

        let bad_url = target("not a url".to_owned());
        let result = run_http(&client(), &bad_url, &ctx()).await;
        assert_outcome(&result, Outcome::Failed, None);
        assert_eq!(
            result.reason.as_deref(),
            Some("url is not valid: relative URL without a base")
        );
    }

    /// A server that answers every request with a redirect to `location`; how many requests it saw.
    async fn redirecting(location: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0; 4096];
                let _ = stream.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (base, seen)
    }

    #[tokio::test]
    async fn a_link_local_target_is_not_sent() {
        let target = target("http://169.254.169.254/latest/meta-data/".to_owned());

        let result = run_http(&client(), &target, &ctx()).await;

        assert_outcome(&result, Outcome::Failed, None);
        let reason = result.reason.unwrap();
        assert!(reason.contains("denied by default"), "{reason}");
    }

    #[tokio::test]
    async fn the_nodes_own_listener_and_denied_hosts_are_not_reached() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let own = listener.local_addr().unwrap();
        let egress = crate::exec::Egress::new(
            Vec::new(),
            vec![crate::exec::EgressRule::parse("*.denied.test").unwrap()],
            Some(own),
        );
        let clients = crate::exec::HttpClients::new(egress).unwrap();

        for url in [
            format!("http://{own}/v1/jobs"),
            format!("http://localhost:{}/v1/jobs", own.port()),
            "http://api.denied.test/".to_owned(),
        ] {
            let result = run_http(&clients, &target(url.clone()), &ctx()).await;
            assert_outcome(&result, Outcome::Failed, None);
            let reason = result.reason.unwrap();
            assert!(reason.contains("egress"), "{url}: {reason}");
        }
    }

    #[tokio::test]
    async fn redirects_are_followed_only_when_asked_and_only_where_permitted() {
        let (base, seen) = redirecting("http://169.254.169.254/latest/meta-data/").await;

        let result = run_http(&client(), &target(base.clone()), &ctx()).await;
        assert_outcome(&result, Outcome::Failed, Some(302));

        let mut follow = target(base);
        follow.follow_redirects = true;
        let result = run_http(&client(), &follow, &ctx()).await;
        assert_outcome(&result, Outcome::Failed, None);
        let reason = result.reason.unwrap();
        assert!(reason.contains("egress"), "{reason}");
        assert_eq!(
            seen.load(Ordering::SeqCst),
            2,
            "one request each, none to the redirect's target"
        );
    }
}

/// `id -u; id -g; echo $HOME` as `run_as`.
fn whoami_as(user: &str, group: Option<&str>) -> CommandTarget {
    let mut cmd = sh("id -u; id -g; id -G; echo \"$HOME\"");
    cmd.run_as = Some(crate::job::RunAs {
        user: user.to_owned(),
        group: group.map(str::to_owned),
    });
    cmd
}

#[tokio::test]
async fn run_as_a_user_the_node_does_not_allow_never_starts() {
    let result = run_command(&whoami_as("nobody", None), &ctx()).await;
    assert_outcome(&result, Outcome::Failed, None);
    let reason = result.reason.unwrap();
    assert!(
        reason.contains("run_as.user")
            && reason.contains("\"nobody\"")
            && reason.contains("allow_run_as"),
        "{reason}"
    );
    assert!(result.output.is_empty(), "{}", result.output);
}

#[tokio::test]
async fn run_as_an_allowed_user_runs_as_that_user_when_the_node_is_root() {
    let base = BaseEnv::default().allow_run_as(["nobody", "no-such-user-here"]);
    let result = super::run_command(&whoami_as("nobody", Some("nogroup")), &ctx(), &base).await;
    if nix::unistd::geteuid().is_root() {
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        let nogroup = nix::unistd::Group::from_name("nogroup").unwrap().unwrap();
        assert_outcome(&result, Outcome::Succeeded, Some(0));
        // uid, gid, every group (no supplementary one of the node's), HOME.
        assert_eq!(
            result.output,
            format!(
                "{}\n{}\n{}\n{}\n",
                nobody.uid,
                nogroup.gid,
                nogroup.gid,
                nobody.dir.display()
            )
        );
        let result = super::run_command(&whoami_as("no-such-user-here", None), &ctx(), &base).await;
        assert_outcome(&result, Outcome::Failed, None);
        let reason = result.reason.unwrap();
        assert!(reason.contains("no such user"), "{reason}");
    } else {
        // Not root: the run fails, saying why, and nothing ran as the node's user instead.
        assert_outcome(&result, Outcome::Failed, None);
        let reason = result.reason.unwrap();
        assert!(reason.contains("not root"), "{reason}");
        assert!(result.output.is_empty(), "{}", result.output);
    }
}
