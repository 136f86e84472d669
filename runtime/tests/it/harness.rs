//! Starting and stopping server processes, and waiting for conditions with a deadline.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

/// The built binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_campanile");

/// How long any awaited condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running `campanile serve`.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` (or https).
    pub url: String,
    /// Its data directory (kept for restarts).
    pub data_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    /// An HTTP client without a token.
    pub http: reqwest::Client,
}

/// What a server is started with, besides a free port and JSON logs.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra arguments after `serve`.
    pub args: Vec<String>,
    /// `https` with this CA certificate.
    pub tls_ca: Option<PathBuf>,
    /// Start the server with this limit of open files (`ulimit -n`).
    pub max_open_files: Option<u32>,
}

impl Server {
    /// Starts a server on a fresh data directory inside `dir`.
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, Options::default())
    }

    /// Starts a server with options; waits until it listens.
    pub fn start_with(dir: &Path, options: Options) -> Server {
        let data_dir = dir.join("data");
        let mut command = match options.max_open_files {
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
                sh
            }
            None => Command::new(BIN),
        };
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&options.args)
            .env("CAMPANILE_LOG", "info")
            .env_remove("CAMPANILE_CONFIG")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the campanile binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(entry) = serde_json::from_str::<Value>(&line)
                        && entry["message"] == "listening"
                    {
                        let _ = tx.send(entry["addr"].as_str().unwrap_or_default().to_owned());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let addr = match rx.recv_timeout(PATIENCE) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not start listening; its log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        let scheme = if options.tls_ca.is_some() {
            "https"
        } else {
            "http"
        };
        let host = if options.tls_ca.is_some() {
            addr.replace("127.0.0.1", "localhost")
        } else {
            addr
        };
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some(ca) = &options.tls_ca {
            let pem = std::fs::read(ca).unwrap();
            http = http.tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).unwrap());
        }
        Server {
            child: Some(child),
            url: format!("{scheme}://{host}"),
            data_dir,
            log,
            http: http.build().unwrap(),
        }
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits for the exit.
    #[allow(clippy::disallowed_methods)] // A failure bound in real time.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the server did not exit after SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal to the server process (`SIGSTOP`, `SIGCONT`: a freeze and its end).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("the server is running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    }

    /// GET as JSON; panics on a transport error.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.at(path)).send().await.unwrap();
        status_and_json(response).await
    }

    /// A request with a JSON body; panics on a transport error.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.at(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        status_and_json(request.send().await.unwrap()).await
    }

    /// The job's runs, newest first.
    pub async fn runs(&self, job: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v1/jobs/{job}/runs?limit=1000")).await;
        if status != 200 {
            return Vec::new();
        }
        body["runs"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Status and JSON body (`Null` when empty, a string when not JSON).
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Polls `check` until it yields a value, failing the test after [`PATIENCE`].
#[allow(clippy::disallowed_methods)] // A failure bound measured in real time, not engine time.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A job JSON that runs `argv` every second.
pub fn every_second(id: &str, argv: &[&str]) -> Value {
    serde_json::json!({
        "id": id,
        "name": id,
        "schedule": "* * * * * *",
        "target": {"type": "command", "argv": argv, "timeout": "10s"},
        "overlap": "allow",
    })
}

/// Asserts an error answer: the status, the JSON form, the code, and (if given) the field.
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str, field: Option<&str>) {
    let (got, body) = answer;
    assert_eq!(*got, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "code of {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message of {body}"
    );
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "field of {body}");
    }
}

/// Wall time of the test (Unix ms), to compare with the nodes' run records.
#[allow(clippy::disallowed_methods)] // The test's own clock, not the engine's.
pub fn now_ms() -> i64 {
    std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_millis() as i64)
}

/// A node of a cluster: `campanile serve` in `dir/NODE`, with a configuration file, a coordinator URL and
/// a node id.
pub fn start_node(dir: &Path, config: &Path, coordinator: &str, node: &str) -> Server {
    let home = dir.join(node);
    std::fs::create_dir_all(&home).unwrap();
    Server::start_with(
        &home,
        Options {
            args: vec![
                "--config".into(),
                config.display().to_string(),
                "--coordinator".into(),
                coordinator.to_owned(),
                "--node-id".into(),
                node.to_owned(),
            ],
            ..Options::default()
        },
    )
}

/// A job every second whose command appends its fire id to `ledger` (a few milliseconds), with a 10 s timeout
/// and the default policies.
pub fn ledger_job(id: &str, ledger: &Path) -> Value {
    serde_json::json!({
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
