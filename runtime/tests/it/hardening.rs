//! What a client without a token can do to a server: nothing that grows its memory (metric labels from a
//! fixed set), starves it (header and body timeouts, a connection limit), or gets a non-JSON error (sizes);
//! and a server that would be open to other machines refuses to start without a token.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{BIN, Options, PATIENCE, Server, assert_error, eventually};

/// A server started with `config` (TOML) as its file.
fn server_with(dir: &Path, config: &str, options: Options) -> Server {
    let file = dir.join("campanile.toml");
    std::fs::write(&file, config).unwrap();
    let mut args = vec!["--config".to_owned(), file.display().to_string()];
    args.extend(options.args.iter().cloned());
    Server::start_with(dir, Options { args, ..options })
}

/// `host:port` of a server.
fn addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or fails it); the answer so far. Bounded by [`PATIENCE`].
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The JSON body of a raw HTTP/1.1 answer.
fn json_body(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"))
}

#[tokio::test]
async fn metric_labels_never_take_what_the_client_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for i in 0..20 {
        let method =
            Method::from_bytes(format!("XMETHOD{i}{}", "A".repeat(200)).as_bytes()).unwrap();
        let answer = server
            .http
            .request(method.clone(), server.at(&format!("/no/such/path{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 404);
        let answer = server
            .http
            .request(method, server.at("/v1/jobs"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 405);
    }
    let metrics = server
        .http
        .get(server.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let requests: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("campanile_http_requests_total{"))
        .collect();
    assert!(!metrics.contains("XMETHOD"), "{requests:#?}");
    assert!(!metrics.contains("/no/such/path"), "{requests:#?}");
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"method="other""#) && l.contains(r#"route="unmatched""#)),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"method="other""#) && l.contains(r#"route="/v1/jobs""#)),
        "{requests:#?}"
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        "[http]\nheader_read_timeout = \"500ms\"\n",
        Options::default(),
    );
    let mut slow = TcpStream::connect(addr(&server)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    // Never sends the blank line: the server closes the connection (after at most the timeout; PATIENCE is
    // only the failure bound).
    read_to_close(&mut slow).await;
}

#[tokio::test]
async fn slow_clients_beyond_the_open_file_limit_do_not_starve_healthz() {
    let dir = tempfile::tempdir().unwrap();
    // 300 half-sent requests against a process that may open 256 files: without a connection limit the
    // process runs out of descriptors, and without a header timeout it never gets them back.
    let server = server_with(
        dir.path(),
        "[http]\nheader_read_timeout = \"1s\"\nmax_connections = 100\n",
        Options {
            max_open_files: Some(256),
            ..Options::default()
        },
    );
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(mut stream) = TcpStream::connect(addr(&server)).await {
            let _ = stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await;
            held.push(stream);
        }
    }

    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    eventually(
        "/healthz to answer while slow clients hold connections",
        || {
            let health = health.clone();
            let url = server.at("/healthz");
            async move {
                let answer = health.get(url).send().await.ok()?;
                (answer.status().as_u16() == 200).then_some(())
            }
        },
    )
    .await;
    drop(held);
}

#[tokio::test]
async fn oversized_targets_and_headers_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let long = format!("/v1/jobs/{}", "a".repeat(10_000));
    let answer = server.http.get(server.at(&long)).send().await.unwrap();
    let answer = crate::harness::status_and_json(answer).await;
    assert_error(&answer, 414, "uri_too_long", None);

    let answer = server
        .http
        .get(server.at("/v1/jobs"))
        .header("X-Padding", "p".repeat(20_000))
        .send()
        .await
        .unwrap();
    let answer = crate::harness::status_and_json(answer).await;
    assert_error(&answer, 431, "headers_too_large", None);

    let answer = server
        .send(
            Method::POST,
            "/v1/jobs",
            Some(serde_json::json!({"name": "x".repeat(2 << 20)})),
        )
        .await;
    assert_error(&answer, 413, "payload_too_large", None);
}

#[tokio::test]
async fn a_body_that_stops_coming_is_answered_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        "[http]\nbody_read_timeout = \"500ms\"\n",
        Options::default(),
    );
    let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
    stream
        .write_all(
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\n{\"name\":",
        )
        .await
        .unwrap();

    let answer = read_to_close(&mut stream).await;

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert_eq!(json_body(&answer)["error"]["code"], "request_timeout");
}

/// Runs `campanile serve ARGS`, expecting it to exit by itself; its exit code and stderr. A server that
/// starts instead is killed once it logs that it listens.
fn serve_expecting_exit(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--coordinator", "memory:", "--log-format", "json"])
        .args(args)
        .env_remove("CAMPANILE_CONFIG")
        .env_remove("CAMPANILE_TOKEN_FILE")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
        let listening = line.contains("\"listening\"");
        lines.push(line);
        if listening {
            let _ = child.kill();
            break;
        }
    }
    let status = child.wait().unwrap();
    (status.code(), lines.join("\n"))
}

#[tokio::test]
async fn serve_refuses_an_open_api_on_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();

    let (code, stderr) = serve_expecting_exit(dir.path(), &["--listen", "0.0.0.0:0"]);

    assert_eq!(code, Some(1), "{stderr}");
    for hint in ["listen", "0.0.0.0:0", "token_file", "--insecure-no-auth"] {
        assert!(
            stderr.contains(hint),
            "the refusal names {hint:?}: {stderr}"
        );
    }

    // Said explicitly, it serves (and still warns).
    let (code, stderr) =
        serve_expecting_exit(dir.path(), &["--listen", "0.0.0.0:0", "--insecure-no-auth"]);
    assert_ne!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no token file"), "{stderr}");
}

#[tokio::test]
async fn http_targets_cannot_reach_the_nodes_own_api_or_link_local_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        "[egress]\ndeny = [\"*.denied.test\"]\n",
        Options::default(),
    );
    for (id, url) in [
        ("own-api", server.at("/v1/jobs")),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".to_owned(),
        ),
        ("denied-host", "http://api.denied.test/".to_owned()),
    ] {
        let job = serde_json::json!({"id": id, "name": id, "schedule": "* * * * * *",
            "target": {"type": "http", "method": "GET", "url": url}});
        assert_eq!(
            server.send(Method::POST, "/v1/jobs", Some(job)).await.0,
            201
        );
    }
    for id in ["own-api", "metadata", "denied-host"] {
        let reason = eventually(&format!("a run of {id}"), || async {
            let runs = server.runs(id).await;
            runs.first()
                .and_then(|r| r["reason"].as_str().map(str::to_owned))
        })
        .await;
        assert!(reason.contains("egress"), "{id}: {reason}");
    }
}

#[tokio::test]
async fn a_page_of_large_jobs_ends_early_with_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    // Six jobs of about 900 KB each: more than one page's 4 MiB.
    let big = "x".repeat(900_000);
    for i in 0..6 {
        let job = serde_json::json!({"id": format!("big-{i}"), "name": "big", "schedule": "@yearly",
            "target": {"type": "command", "argv": ["true", big]}});
        let (status, body) = server.send(Method::POST, "/v1/jobs", Some(job)).await;
        assert_eq!(status, 201, "{body}");
    }

    let mut seen = Vec::new();
    let mut path = "/v1/jobs?limit=1000".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200);
        pages += 1;
        let jobs = page["jobs"].as_array().unwrap();
        assert!(
            page.to_string().len() <= 5 << 20,
            "a page of {} bytes",
            page.to_string().len()
        );
        seen.extend(jobs.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        match page["next_after"].as_str() {
            Some(after) => path = format!("/v1/jobs?limit=1000&after={after}"),
            None => break,
        }
    }
    assert!(pages > 1, "one page held everything");
    assert_eq!(seen, (0..6).map(|i| format!("big-{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        "[http]\nheader_read_timeout = \"500ms\"\n",
        Options::default(),
    );
    // Not a byte: the server cannot tell HTTP/1 from HTTP/2, and still closes the connection.
    let mut silent = TcpStream::connect(addr(&server)).await.unwrap();
    read_to_close(&mut silent).await;
}

#[tokio::test]
async fn an_http2_client_that_never_finishes_its_request_head_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        "[http]\nheader_read_timeout = \"500ms\"\n",
        Options::default(),
    );
    let mut slow = TcpStream::connect(addr(&server)).await.unwrap();
    // The preface, an empty SETTINGS frame, and a HEADERS frame of 100 bytes of which 3 are sent.
    let mut start = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    start.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    start.extend_from_slice(&[0, 0, 100, 0x1, 0x4, 0, 0, 0, 1, 0x82, 0x86, 0x84]);
    slow.write_all(&start).await.unwrap();
    // Never sends the rest: the server closes the connection (after at most the timeout; PATIENCE is only
    // the failure bound).
    read_to_close(&mut slow).await;

    // A complete HTTP/2 request is answered as before.
    let mut quick = TcpStream::connect(addr(&server)).await.unwrap();
    let mut request = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    request.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    // HEADERS, END_STREAM | END_HEADERS, stream 1: :method GET, :scheme http, :path /healthz (literal,
    // not indexed), :authority x.
    let mut block = vec![0x82, 0x86, 0x04, 8];
    block.extend_from_slice(b"/healthz");
    block.extend_from_slice(&[0x41, 1, b'x']);
    let len = u8::try_from(block.len()).unwrap();
    request.extend_from_slice(&[0, 0, len, 0x1, 0x5, 0, 0, 0, 1]);
    request.extend_from_slice(&block);
    quick.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    let got_headers = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            let n = quick.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return false;
            }
            answer.extend_from_slice(&buf[..n]);
            // A HEADERS frame on stream 1 from the server: the answer.
            let mut at = 0;
            while at + 9 <= answer.len() {
                let length = usize::from(answer[at]) << 16
                    | usize::from(answer[at + 1]) << 8
                    | usize::from(answer[at + 2]);
                if answer[at + 3] == 0x1 && answer[at + 8] == 1 {
                    return true;
                }
                at += 9 + length;
            }
        }
    })
    .await;
    assert_eq!(got_headers, Ok(true), "no answer on stream 1: {answer:?}");
}
