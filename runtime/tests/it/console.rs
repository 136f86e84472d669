//! The web console in a real headless browser: Debian's `chromium` driven by `chromedriver` over WebDriver
//! (`fantoccini`). One browser session walks the scenarios an operator does, in order: sign in (a wrong token
//! is refused at the field), create a job through the form (an invalid schedule shows the API's error at the
//! schedule field; the preview lists a Europe/London schedule's instants across the spring DST change), see
//! it in the table, trigger it and watch the run arrive in the live feed, edit it, clone it and delete the
//! copy, pause it, see failures on the overview, reach a page by keyboard alone, check a phone-sized screen,
//! and, signed in with a read-only token, see no write action (and a write refused with 403). A second test runs three nodes on a real etcd:
//! the run feed of one carries the runs the other two store (fanned in, without a browser), and the cluster
//! page shows the three nodes.
//!
//! chromedriver comes from `CAMPANILE_TEST_CHROMEDRIVER` or `PATH` (scripts/chromium.sh installs it). Unset and
//! not installed: skipped with a notice, except under `CI`, where it fails. Each page's screenshot (1280x800
//! PNG) is written into `CAMPANILE_CONSOLE_SCREENSHOTS` (default: a directory under the system's temp dir);
//! docs/console/ holds the current ones.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::harness::{Options, Server, eventually, start_node};

const ADMIN: &str = "console-admin-0123456789abcdef";
const READER: &str = "console-reader-0123456789abcdef";

/// chromedriver's path, or `None` (with a notice) outside CI when there is none.
fn chromedriver() -> Option<PathBuf> {
    let configured = std::env::var_os("CAMPANILE_TEST_CHROMEDRIVER")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let found = configured.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("chromedriver"))
                .find(|p| p.is_file())
        })
    });
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => {
            panic!("chromedriver is missing under CI: install it with scripts/chromium.sh")
        }
        None => {
            eprintln!(
                "console: skipped: no chromedriver (export CAMPANILE_TEST_CHROMEDRIVER=$(scripts/chromium.sh))"
            );
            None
        }
    }
}

/// A chromedriver process on a free loopback port, and a browser session through it; both end on drop.
struct Browser {
    client: Client,
    driver: Child,
    profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    async fn start(driver: &PathBuf) -> Browser {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        // In a process group of its own, so that a failed test ends Chromium with it (see `Drop`).
        let child = Command::new(driver)
            .process_group(0)
            .arg(format!("--port={port}"))
            // The viewer's zone in the pages (and the backfill range typed in the test) is UTC.
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver {} does not start: {e}", driver.display()));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("chromedriver to answer", || {
            let request = http.get(format!("{url}/status")).send();
            async move { request.await.ok().filter(|r| r.status().is_success()) }
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        // The machine may have no internet: without these flags Chromium waits on connections of its own.
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,800".to_owned(),
            "--lang=en-GB".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.push("--force-prefers-reduced-motion".to_owned());
        let mut options = json!({ "args": args });
        if let Some(binary) = std::env::var_os("CAMPANILE_TEST_CHROMIUM") {
            options["binary"] = json!(binary.to_string_lossy());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("chromedriver opens a Chromium session");
        let shots = std::env::var_os("CAMPANILE_CONSOLE_SCREENSHOTS")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("campanile-console-screenshots"));
        std::fs::create_dir_all(&shots).unwrap();
        let browser = Browser {
            client,
            driver: child,
            profile,
            shots,
        };
        browser.viewport(1280, 800).await;
        browser
    }

    /// Sizes the window so that the page gets `width` x `height` (the window is that plus whatever the
    /// browser keeps for itself): screenshots are of the viewport.
    async fn viewport(&self, width: u64, height: u64) {
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap();
        let (w, h) = self.client.get_window_size().await.unwrap();
        let grow = |outer: u64, inner: &Value, want: u64| {
            (outer + want).saturating_sub(inner.as_u64().unwrap_or(want)) as u32
        };
        self.client
            .set_window_size(grow(w, &inner[0], width), grow(h, &inner[1], height))
            .await
            .unwrap();
    }

    /// Writes a screenshot of the viewport as `NAME.png`.
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("console: screenshot {}", path.display());
    }

    /// The text of the first element matching `css`, once one exists and `ok` holds for its text. On a
    /// timeout, the page's text and a `failure.png` screenshot say what the browser showed instead.
    #[allow(clippy::disallowed_methods)] // A failure bound in real time, as `eventually`.
    async fn text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + super::harness::PATIENCE;
        let mut last = None;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if ok(&text) {
                    return text;
                }
                last = Some(text);
            }
            if std::time::Instant::now() > deadline {
                self.shot("failure").await;
                let page = match self.client.find(Locator::Css("body")).await {
                    Ok(body) => body.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                panic!(
                    "timed out waiting for {css} as expected; its text: {last:?}; the page:\n{page}"
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// How many elements match `css`, once `ok` holds for the count.
    async fn count(&self, css: &str, ok: impl Fn(usize) -> bool) -> usize {
        let client = self.client.clone();
        let ok = &ok;
        eventually(&format!("the number of {css}"), || {
            let client = client.clone();
            async move {
                let n = client.find_all(Locator::Css(css)).await.ok()?.len();
                ok(n).then_some(n)
            }
        })
        .await
    }

    async fn click(&self, css: &str) {
        self.text(css, |_| true).await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.text(css, |_| true).await;
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn sign_in(&self, token: &str) {
        self.type_into("#token", token).await;
        self.click("#sign-in").await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the browsers it started; a test that finished closed its session already.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.driver.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.driver.wait();
        let _ = &self.profile;
    }
}

fn server_with_tokens(dir: &std::path::Path) -> Server {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("admin {ADMIN}\nread-only {READER}\n")).unwrap();
    Server::start_with(
        dir,
        Options {
            args: vec!["--token-file".into(), tokens.display().to_string()],
            ..Options::default()
        },
    )
}

async fn admin_call(server: &Server, method: reqwest::Method, path: &str) -> (u16, Value) {
    let response = server
        .http
        .request(method, server.at(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    super::harness::status_and_json(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_the_scheduler_from_the_console() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_tokens(dir.path());
    // Scheduled runs for the overview, the table and the feed: one succeeds every second, one fails every two.
    for (id, schedule, argv) in [
        ("heartbeat", "* * * * * *", json!(["/bin/true"])),
        ("flaky", "*/2 * * * * *", json!(["sh", "-c", "exit 3"])),
    ] {
        let job = json!({"id": id, "name": id, "schedule": schedule,
            "target": {"type": "command", "argv": argv}, "overlap": "allow"});
        let response = server
            .http
            .post(server.at("/v1/jobs"))
            .bearer_auth(ADMIN)
            .json(&job)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let browser = Browser::start(&driver).await;
    let base = server.at("/");

    // Sign in: an unknown token is refused, the admin token is taken and kept for the tab.
    browser.goto(&base).await;
    browser.sign_in("not-a-token-this-server-knows").await;
    browser
        .text("#login-error", |t| t.contains("does not know"))
        .await;
    browser.shot("login").await;
    browser.sign_in(ADMIN).await;
    browser.text("#who", |t| t.starts_with("admin")).await;

    // Create through the form: the API's error shows at the schedule field as it is typed.
    browser.goto(&format!("{base}#/new")).await;
    browser.type_into("#f-id", "nightly").await;
    browser.type_into("#f-name", "Nightly report").await;
    browser
        .type_into("#f-target-argv", "/bin/echo\nhello")
        .await;
    browser.type_into("#f-schedule", "61 * * * *").await;
    let error = browser
        .text("#f-schedule-error", |t| t.contains("minute 61"))
        .await;
    assert!(error.contains("out of range"), "{error}");
    let invalid = browser
        .client
        .find(Locator::Css("#f-schedule"))
        .await
        .unwrap()
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    browser.shot("form-error").await;

    // The preview of a Europe/London schedule across the spring change (2027-03-28, 01:00 GMT → 02:00 BST):
    // 01:30 falls into the gap that day and runs right after the jump (cronie), then 01:30 BST.
    browser.type_into("#f-schedule", "30 1 * * *").await;
    browser.type_into("#f-timezone", "Europe/London").await;
    browser
        .type_into("#preview-from", "2027-03-25T00:00:00Z")
        .await;
    browser
        .text("#preview-reading", |t| {
            t == "at 01:30 every day, Europe/London"
        })
        .await;
    browser.text("#f-schedule-error", |t| t.is_empty()).await;
    let instants = eventually("the preview's ten instants from 2027-03-25", || {
        let client = browser.client.clone();
        async move {
            let mut out = Vec::new();
            for li in client.find_all(Locator::Css("#preview li")).await.ok()? {
                let time = li.find(Locator::Css("time")).await.ok()?;
                let marked = li.attr("class").await.ok()?.unwrap_or_default() == "dst";
                out.push((time.attr("datetime").await.ok()??, marked));
            }
            (out.len() == 10 && out[0].0.starts_with("2027-03-25")).then_some(out)
        }
    })
    .await;
    let expected = [
        ("2027-03-25T01:30:00+00:00", false),
        ("2027-03-26T01:30:00+00:00", false),
        ("2027-03-27T01:30:00+00:00", false),
        ("2027-03-28T02:00:00+01:00", true),
        ("2027-03-29T01:30:00+01:00", false),
        ("2027-03-30T01:30:00+01:00", false),
        ("2027-03-31T01:30:00+01:00", false),
        ("2027-04-01T01:30:00+01:00", false),
        ("2027-04-02T01:30:00+01:00", false),
        ("2027-04-03T01:30:00+01:00", false),
    ];
    let got: Vec<(&str, bool)> = instants.iter().map(|(t, m)| (t.as_str(), *m)).collect();
    assert_eq!(got, expected);
    browser.shot("form").await;
    browser.click("#save").await;
    browser
        .text("h1", |t| t.starts_with("Nightly report"))
        .await;
    let (status, job) = admin_call(&server, reqwest::Method::GET, "/v1/jobs/nightly").await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["schedule"], "30 1 * * *");
    assert_eq!(job["timezone"], "Europe/London");
    assert_eq!(job["target"]["argv"], json!(["/bin/echo", "hello"]));

    // The table lists it with its schedule in plain language.
    browser.goto(&format!("{base}#/jobs")).await;
    browser
        .text("tr[data-job=\"nightly\"]", |t| {
            t.contains("Nightly report") && t.contains("at 01:30 every day, Europe/London")
        })
        .await;
    browser.shot("jobs").await;

    // The last-outcome filter is applied by the server: "failed" lists only the failing job.
    eventually("a failed run of flaky", || async {
        server_runs(&server, "flaky")
            .await
            .iter()
            .any(|r| r["outcome"] == "failed")
            .then_some(())
    })
    .await;
    let select = |value: &'static str| {
        let client = browser.client.clone();
        async move {
            client
                .find(Locator::Css("#outcome"))
                .await
                .unwrap()
                .select_by_value(value)
                .await
                .unwrap();
        }
    };
    select("failed").await;
    browser.count("tbody tr[data-job]", |n| n == 1).await;
    browser
        .text("tbody tr[data-job=\"flaky\"]", |t| t.contains("flaky"))
        .await;
    select("").await;
    browser.count("tbody tr[data-job]", |n| n >= 3).await;

    // Trigger from the job's page; the run is stored.
    browser.goto(&format!("{base}#/jobs/nightly")).await;
    browser.count("#next li", |n| n == 10).await;
    browser.click("#trigger").await;
    browser
        .text("#action-message", |t| t.contains("Triggered: nightly@"))
        .await;
    eventually("the triggered run's record", || async {
        (!server_runs(&server, "nightly").await.is_empty()).then_some(())
    })
    .await;
    browser.client.refresh().await.unwrap();
    browser
        .text("#runs tbody tr", |t| {
            t.contains("succeeded") && t.contains("manual")
        })
        .await;
    browser.shot("job").await;

    // The live feed: a run triggered while the page is open arrives without a reload.
    browser.goto(&format!("{base}#/runs")).await;
    browser.text("#feed-state", |t| t == "live").await;
    let before = browser
        .count("#feed-rows tr[data-job=\"nightly\"]", |_| true)
        .await;
    let (status, fired) =
        admin_call(&server, reqwest::Method::POST, "/v1/jobs/nightly/trigger").await;
    assert_eq!(status, 202, "{fired}");
    browser
        .count("#feed-rows tr[data-job=\"nightly\"]", |n| n == before + 1)
        .await;
    browser.shot("runs").await;

    // Backfill: a range of four days shows its four instants before it runs them.
    browser.goto(&format!("{base}#/jobs/nightly")).await;
    browser.text("#backfill-count", |_| true).await;
    let day = |back: i64| {
        chrono::DateTime::from_timestamp_millis(super::harness::now_ms() - back * 86_400_000)
            .unwrap()
            .format("%Y-%m-%dT00:00:00")
            .to_string()
    };
    for (input, value) in [("#backfill-from", day(5)), ("#backfill-to", day(1))] {
        browser
            .client
            .execute(
                "const el = document.querySelector(arguments[0]); el.value = arguments[1]; \
                 el.dispatchEvent(new Event('change'));",
                vec![json!(input), json!(value)],
            )
            .await
            .unwrap();
    }
    browser
        .text("#backfill-count", |t| t.starts_with("4 instants will run"))
        .await;
    browser.click("#backfill").await;
    browser
        .text("#action-message", |t| t == "Backfill started 4 runs.")
        .await;

    // Edit: the form comes filled in with the job; a new name is saved. A requested run is taken by the
    // job's owner under the job's revision, and once its run is recorded the owner's next take drops it from
    // the job, another revision (docs/operations.md): the form is opened once the backfill's requests have
    // left the job, so that the revision it saves against is the job's last.
    eventually("the requested runs ran and left the job", || async {
        let (_, job) = admin_call(&server, reqwest::Method::GET, "/v1/jobs/nightly").await;
        job["requests"]
            .as_array()
            .is_none_or(|requests| requests.is_empty())
            .then_some(())
    })
    .await;
    browser.goto(&format!("{base}#/jobs/nightly/edit")).await;
    eventually("the edit form filled in with the job's name", || {
        let client = browser.client.clone();
        async move {
            let name = client.find(Locator::Css("#f-name")).await.ok()?;
            let value = name.prop("value").await.ok()??;
            (value == "Nightly report").then_some(())
        }
    })
    .await;
    browser.type_into("#f-name", "Nightly summary").await;
    browser.click("#save").await;
    browser
        .text("h1", |t| t.starts_with("Nightly summary"))
        .await;

    // Clone, then delete the copy after confirming.
    browser.type_into("#clone-id", "nightly-copy").await;
    browser.click("#clone").await;
    browser.text("h1", |t| t.contains("nightly-copy")).await;
    browser.click("#delete").await;
    browser.click("#confirm-delete-yes").await;
    browser.text("h1", |t| t == "Jobs").await;
    let (status, _) = admin_call(&server, reqwest::Method::GET, "/v1/jobs/nightly-copy").await;
    assert_eq!(status, 404, "the copy was deleted");

    // Pause from the job's page.
    browser.goto(&format!("{base}#/jobs/nightly")).await;
    browser.click("#pause").await;
    browser.text("#resume", |t| t == "Resume").await;
    let (_, job) = admin_call(&server, reqwest::Method::GET, "/v1/jobs/nightly").await;
    assert_eq!(job["paused"], true, "{job}");

    // The overview counts what this node ran: the failing job's failures stand out.
    browser.goto(&base).await;
    let failures = browser
        .text("#totals .tile.bad", |t| t.contains("failures"))
        .await;
    let count: u64 = failures.split_whitespace().next().unwrap().parse().unwrap();
    assert!(count >= 1, "{failures}");
    browser.shot("overview").await;
    browser.click("#theme").await;
    browser.shot("overview-dark").await;
    browser.click("#theme").await;

    // Keyboard only: from the top of the page, Tab reaches the skip link first, then the page links; Enter
    // on one opens it.
    browser.client.refresh().await.unwrap();
    browser.text("#totals", |t| t.contains("failures")).await;
    press(&browser.client, Key::Tab).await;
    let first = browser.client.active_element().await.unwrap();
    assert_eq!(first.text().await.unwrap(), "Skip to content");
    let mut reached = false;
    for _ in 0..10 {
        press(&browser.client, Key::Tab).await;
        let id = browser
            .client
            .active_element()
            .await
            .unwrap()
            .attr("id")
            .await
            .unwrap();
        if id.as_deref() == Some("nav-jobs") {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the Jobs link");
    press(&browser.client, Key::Enter).await;
    browser.text("#next-page", |t| t == "Next page").await;

    // A phone's screen: one column, nothing cut off sideways but the tables, which scroll.
    browser.viewport(390, 844).await;
    browser.goto(&format!("{base}#/jobs")).await;
    browser
        .text("tr[data-job=\"nightly\"]", |t| t.contains("Nightly"))
        .await;
    let overflow = browser
        .client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow, json!(0), "the page scrolls sideways on a phone");
    browser.shot("jobs-phone").await;
    browser.viewport(1280, 800).await;

    // A read-only token: no write action anywhere, and a write is refused.
    browser.click("#logout").await;
    browser.sign_in(READER).await;
    browser.text("#who", |t| t.starts_with("read-only")).await;
    let new_link = browser.client.find(Locator::Css("#nav-new")).await.unwrap();
    assert!(
        !new_link.is_displayed().await.unwrap(),
        "read-only sees New job"
    );
    browser.goto(&format!("{base}#/jobs/nightly")).await;
    browser.count("#runs tbody tr", |n| n >= 2).await;
    for action in [
        "#pause",
        "#resume",
        "#trigger",
        "#edit",
        "#delete",
        "#backfill",
        "#clone",
    ] {
        assert_eq!(
            browser.count(action, |_| true).await,
            0,
            "a read-only token sees {action}"
        );
    }
    browser.shot("job-read-only").await;
    let status = browser
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               fetch("/v1/jobs/nightly/trigger", {method: "POST",
                 headers: {Authorization: "Bearer " + sessionStorage.getItem("campanile.token")}})
                 .then(r => done(r.status), e => done(String(e)));"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));

    browser.client.clone().close().await.unwrap();
}

/// Presses and releases one key in the focused element, as a keyboard does.
async fn press(client: &Client, key: Key) {
    let key: char = key.into();
    let keys = KeyActions::new("keyboard".to_owned())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    client.perform_actions(keys).await.unwrap();
}

async fn server_runs(server: &Server, job: &str) -> Vec<Value> {
    let (_, body) = admin_call(
        server,
        reqwest::Method::GET,
        &format!("/v1/jobs/{job}/runs"),
    )
    .await;
    body["runs"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_page_shows_three_etcd_nodes() {
    let Some(endpoint) = std::env::var("CAMPANILE_TEST_ETCD")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CAMPANILE_TEST_ETCD is unset under CI: start etcd with scripts/etcd.sh"
        );
        eprintln!("console cluster: skipped: CAMPANILE_TEST_ETCD is unset");
        return;
    };
    let prefix = format!(
        "campanile-console-{}-{}",
        std::process::id(),
        super::harness::now_ms()
    );
    let url = format!("etcd://{}/{prefix}", endpoint.trim());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("campanile.toml");
    std::fs::write(&config, "[engine]\nsession_ttl = \"3s\"\n").unwrap();
    let nodes: Vec<Server> = ["n0", "n1", "n2"]
        .iter()
        .map(|n| start_node(dir.path(), &config, &url, n))
        .collect();
    for i in 0..6 {
        let job = json!({"id": format!("job-{i}"), "name": format!("job {i}"), "schedule": "@hourly",
            "target": {"type": "command", "argv": ["/bin/true"]}});
        let (status, body) = nodes[0]
            .send(reqwest::Method::POST, "/v1/jobs", Some(job))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    eventually("three members, a leader and all jobs placed", || async {
        let (_, c) = nodes[0].get("/v1/cluster").await;
        (c["members"].as_array().map_or(0, Vec::len) == 3
            && c["leader"].is_object()
            && c["assignment"]["jobs"] == 6)
            .then_some(())
    })
    .await;

    // The run feed is the cluster's: a stream opened on n1 carries the runs n0 and n2 store (a trigger runs
    // on the job's owner, and the six jobs are spread over the three nodes), read by n1 from their streams.
    let mut stream = reqwest::get(nodes[1].at("/v1/runs/stream?seconds=25"))
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut seen = std::collections::BTreeSet::new();
    let mut text = String::new();
    let read = async {
        loop {
            // Until n1 has relayed a run of n0 and of n2: trigger every job (n1 may not have reached their
            // streams when the first triggers run), then read what n1 sends for up to a second.
            for i in 0..6 {
                let (status, body) = nodes[0]
                    .send(
                        reqwest::Method::POST,
                        &format!("/v1/jobs/job-{i}/trigger"),
                        None,
                    )
                    .await;
                assert_eq!(status, 202, "{body}");
            }
            let Ok(chunk) =
                tokio::time::timeout(std::time::Duration::from_secs(1), stream.chunk()).await
            else {
                continue;
            };
            let Some(chunk) = chunk.unwrap() else {
                return;
            };
            text.push_str(&String::from_utf8_lossy(&chunk));
            for block in text.split("\n\n") {
                if let Some(data) = block
                    .lines()
                    .skip_while(|l| *l != "event: run")
                    .find_map(|l| l.strip_prefix("data: "))
                    && let Ok(record) = serde_json::from_str::<Value>(data)
                {
                    seen.insert(record["node"].as_str().unwrap_or_default().to_owned());
                }
            }
            if seen.contains("n0") && seen.contains("n2") {
                return;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(25), read)
        .await
        .unwrap_or_else(|_| panic!("n1's stream carried runs of {seen:?} only: {text}"));
    assert!(
        seen.contains("n0") && seen.contains("n2"),
        "n1's stream ended with runs of {seen:?} only: {text}"
    );
    // The overview's counts are the cluster's too: n1 ran none of those runs, and counts them.
    let fires = |stats: &Value| {
        stats["minutes"].as_array().map_or(0, |m| {
            m.iter()
                .map(|m| m["fires"].as_u64().unwrap_or(0))
                .sum::<u64>()
        })
    };
    let stats = eventually("n1's cluster stats count the runs of n0 and n2", || async {
        let (_, stats) = nodes[1].get("/v1/stats").await;
        (fires(&stats) >= 2).then_some(stats)
    })
    .await;
    assert_eq!(stats["nodes"], json!(["n0", "n1", "n2"]), "{stats}");
    assert_eq!(stats["unreachable"], json!([]), "{stats}");
    let (_, own) = nodes[1].get("/v1/stats?scope=node").await;
    assert!(fires(&own) < fires(&stats), "{own} {stats}");

    let Some(driver) = chromedriver() else {
        return;
    };
    let browser = Browser::start(&driver).await;
    browser
        .goto(&format!("{}#/cluster", nodes[1].at("/")))
        .await;
    browser.count("#members tbody tr", |n| n == 3).await;
    for node in ["n0", "n1", "n2"] {
        browser
            .text(&format!("#members tr[data-node=\"{node}\"]"), |t| {
                t.contains(node)
            })
            .await;
    }
    let leader = browser.text("#leader", |t| t.starts_with('n')).await;
    browser
        .text(&format!("#members tr[data-node=\"{leader}\"]"), |t| {
            t.contains("leader · epoch")
        })
        .await;
    browser.text("#health", |t| t.contains("ready")).await;
    browser.shot("cluster").await;
    browser.client.clone().close().await.unwrap();
}
