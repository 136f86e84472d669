//! The CLI client: each `campanile job|cluster|rebalance` command is one or two API calls, printed as a
//! table (or, with `--output json`, as the API's JSON).

mod add;
mod schedule;
mod table;

pub use self::schedule::schedule_next;

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::api::error::ErrorBody;
use crate::api::rebalance::{Scenario, plan};
use crate::cli::{ClientArgs, EditArgs, JobCommand, LsArgs, Output, PlanArgs};

use self::add::{add_body, add_many};
use self::table::{Table, format_ms};
use crate::{out, outln};

/// A connection to a server.
pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    token: Option<String>,
    output: Output,
}

/// A successful answer.
struct Answer {
    body: Value,
    etag: Option<String>,
}

impl Client {
    /// A client for `args.server`.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let base = reqwest::Url::parse(&args.server)
            .with_context(|| format!("invalid server URL {:?}", args.server))?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("campanile-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60));
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("failed to read CA certificate {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("invalid CA certificate {}", path.display()))?;
            builder = builder.tls_certs_merge(certs);
        }
        Ok(Self {
            http: builder.build().context("failed to build the HTTP client")?,
            base,
            token: args.token.clone().filter(|t| !t.is_empty()),
            output: args.output,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let url = self
            .base
            .join(path)
            .with_context(|| format!("invalid path {path}"))?;
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(etag) = if_match {
            request = request.header(header::IF_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("failed to reach {}", self.base))?;
        let status = response.status();
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response
            .text()
            .await
            .with_context(|| format!("failed to read the answer to {method} {path}"))?;
        if !status.is_success() {
            if let Ok(error) = serde_json::from_str::<ErrorBody>(&text) {
                bail!(
                    "{} ({}): {}",
                    status.as_u16(),
                    error.error.code,
                    error.error.message
                );
            }
            bail!("{method} {path}: HTTP {status}: {}", text.trim());
        }
        let body = if status == StatusCode::NO_CONTENT || text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("the answer to {method} {path} is not JSON"))?
        };
        Ok(Answer { body, etag })
    }

    /// POSTs a JSON body given as text; an error answer in the API's JSON form is returned as a value (its
    /// `field` tells the caller which input failed), anything else as an error.
    async fn post_raw(&self, path: &str, body: String) -> anyhow::Result<Result<Value, ErrorBody>> {
        let url = self
            .base
            .join(path)
            .with_context(|| format!("invalid path {path}"))?;
        let mut request = self
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("failed to reach {}", self.base))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("failed to read the answer to POST {path}"))?;
        if status.is_success() {
            return Ok(Ok(serde_json::from_str(&text).with_context(|| {
                format!("the answer to POST {path} is not JSON")
            })?));
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(mut error) => {
                error.error.message = format!(
                    "{} ({}): {}",
                    status.as_u16(),
                    error.error.code,
                    error.error.message
                );
                Ok(Err(error))
            }
            Err(_) => bail!("POST {path}: HTTP {status}: {}", text.trim()),
        }
    }

    fn print_json(&self, value: &Value) -> std::io::Result<()> {
        outln!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        )
    }

    fn print_job(&self, job: &Value) -> std::io::Result<()> {
        if self.output == Output::Json {
            return self.print_json(job);
        }
        let mut table = Table::new(["FIELD", "VALUE"]);
        let get = |k: &str| job.get(k).cloned().unwrap_or(Value::Null);
        table.row(["id".into(), text(&get("id"))]);
        table.row(["name".into(), text(&get("name"))]);
        table.row(["namespace".into(), text(&get("namespace"))]);
        table.row(["schedule".into(), text(&get("schedule"))]);
        table.row(["timezone".into(), text(&get("timezone"))]);
        table.row(["target".into(), target_summary(&get("target"))]);
        table.row(["paused".into(), text(&get("paused"))]);
        for key in [
            "misfire",
            "overlap",
            "retry",
            "delivery",
            "labels",
            "node_labels",
            "executor",
            "jitter",
        ] {
            let value = get(key);
            if !value.is_null() {
                table.row([key.into(), compact(&value)]);
            }
        }
        table.row(["revision".into(), text(&get("revision"))]);
        table.row(["created".into(), format_ms(get("created_ms").as_i64())]);
        table.row(["updated".into(), format_ms(get("updated_ms").as_i64())]);
        out!("{table}")
    }
}

/// Runs `campanile job ...`.
pub async fn job(args: &ClientArgs, command: &JobCommand) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    match command {
        JobCommand::Add(add) if add.is_jsonl() => add_many(&client, add).await?,
        JobCommand::Add(add) => {
            let body = add_body(add)?;
            let answer = client
                .call(Method::POST, "v1/jobs", Some(&body), None)
                .await?;
            if client.output == Output::Json {
                client.print_json(&answer.body)?;
            } else {
                outln!("created job {}", text(&answer.body["id"]))?;
            }
        }
        JobCommand::Ls(ls) => list(&client, ls).await?,
        JobCommand::Get { id } => {
            let answer = client
                .call(Method::GET, &job_path(id, ""), None, None)
                .await?;
            client.print_job(&answer.body)?;
        }
        JobCommand::Edit(edit) => edit_job(&client, edit).await?,
        JobCommand::Rm { id } => {
            client
                .call(Method::DELETE, &job_path(id, ""), None, None)
                .await?;
            if client.output == Output::Json {
                client.print_json(&json!({"deleted": id}))?;
            } else {
                outln!("deleted job {id}")?;
            }
        }
        JobCommand::Pause { id } | JobCommand::Resume { id } => {
            let action = if matches!(command, JobCommand::Pause { .. }) {
                "pause"
            } else {
                "resume"
            };
            let answer = client
                .call(Method::POST, &job_path(id, action), None, None)
                .await?;
            if client.output == Output::Json {
                client.print_json(&answer.body)?;
            } else {
                outln!("{action}d job {id}")?;
            }
        }
        JobCommand::Trigger { id } => {
            let answer = client
                .call(Method::POST, &job_path(id, "trigger"), None, None)
                .await?;
            if client.output == Output::Json {
                client.print_json(&answer.body)?;
            } else {
                outln!("triggered {}", text(&answer.body["fire_ids"][0]))?;
            }
        }
        JobCommand::Clone { id, new_id, name } => {
            let body = json!({"id": new_id, "name": name});
            let answer = client
                .call(Method::POST, &job_path(id, "clone"), Some(&body), None)
                .await?;
            if client.output == Output::Json {
                client.print_json(&answer.body)?;
            } else {
                outln!("created job {} (a copy of {id})", text(&answer.body["id"]))?;
            }
        }
        JobCommand::Backfill { id, from, to } => {
            let body = json!({"from": from, "to": to});
            let answer = client
                .call(Method::POST, &job_path(id, "backfill"), Some(&body), None)
                .await?;
            if client.output == Output::Json {
                client.print_json(&answer.body)?;
            } else {
                let fires = answer.body["fire_ids"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                outln!("backfilling {} instants of job {id}", fires.len())?;
                for fire in fires {
                    outln!("  {}", text(&fire))?;
                }
            }
        }
        JobCommand::Next { id, n } => {
            let answer = client
                .call(
                    Method::GET,
                    &format!("{}?n={n}", job_path(id, "next")),
                    None,
                    None,
                )
                .await?;
            if client.output == Output::Json {
                client.print_json(&answer.body)?;
                return Ok(());
            }
            let mut table = Table::new(["UTC", "LOCAL", "UNIX_MS"]);
            for instant in answer.body["next"].as_array().into_iter().flatten() {
                table.row([
                    text(&instant["utc"]),
                    text(&instant["local"]),
                    text(&instant["unix_ms"]),
                ]);
            }
            out!("{table}")?;
        }
        JobCommand::Runs { id, limit, outcome } => {
            let mut path = format!("{}?limit={limit}", job_path(id, "runs"));
            if let Some(outcome) = outcome {
                path.push_str(&format!("&outcome={}", encode(outcome)));
            }
            let answer = client.call(Method::GET, &path, None, None).await?;
            if client.output == Output::Json {
                client.print_json(&answer.body)?;
                return Ok(());
            }
            let mut table = Table::new([
                "SCHEDULED",
                "OUTCOME",
                "NODE",
                "ATTEMPT",
                "LATE_MS",
                "CODE",
                "REASON",
            ]);
            for run in answer.body["runs"].as_array().into_iter().flatten() {
                let late = match (run["started_ms"].as_i64(), run["scheduled_ms"].as_i64()) {
                    (Some(start), Some(at)) => (start - at).to_string(),
                    _ => "-".into(),
                };
                let mut outcome = text(&run["outcome"]);
                if let Some(count) = run["count"].as_u64() {
                    outcome = format!("{outcome} x{count}");
                }
                table.row([
                    format_ms(run["scheduled_ms"].as_i64()),
                    outcome,
                    text(&run["node"]),
                    text(&run["attempt"]),
                    late,
                    text(&run["code"]),
                    text(&run["reason"]),
                ]);
            }
            out!("{table}")?;
        }
    }
    Ok(())
}

async fn list(client: &Client, ls: &LsArgs) -> anyhow::Result<()> {
    let mut jobs = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec!["limit=1000".to_owned()];
        if let Some(ns) = &ls.namespace {
            query.push(format!("namespace={}", encode(ns)));
        }
        if let Some(label) = &ls.label {
            query.push(format!("label={}", encode(label)));
        }
        if let Some(paused) = ls.paused {
            query.push(format!("paused={paused}"));
        }
        if let Some(after) = &after {
            query.push(format!("after={}", encode(after)));
        }
        let answer = client
            .call(
                Method::GET,
                &format!("v1/jobs?{}", query.join("&")),
                None,
                None,
            )
            .await?;
        jobs.extend(answer.body["jobs"].as_array().cloned().unwrap_or_default());
        match answer.body["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    if client.output == Output::Json {
        client.print_json(&json!({"jobs": jobs}))?;
        return Ok(());
    }
    let mut table = Table::new(["ID", "NAME", "SCHEDULE", "TZ", "TARGET", "PAUSED", "REV"]);
    for job in &jobs {
        table.row([
            text(&job["id"]),
            text(&job["name"]),
            text(&job["schedule"]),
            text(&job["timezone"]),
            target_summary(&job["target"]),
            text(&job["paused"]),
            text(&job["revision"]),
        ]);
    }
    out!("{table}")?;
    Ok(())
}

async fn edit_job(client: &Client, edit: &EditArgs) -> anyhow::Result<()> {
    let path = job_path(&edit.id, "");
    let mut patch = Map::new();
    let mut set = |key: &str, value: Value| {
        let mut parts = key.split('.').collect::<Vec<_>>();
        let last = parts.pop().unwrap_or(key);
        let mut node = &mut patch;
        for part in parts {
            node = node
                .entry(part.to_owned())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("patch nodes are objects");
        }
        node.insert(last.to_owned(), value);
    };
    if let Some(v) = &edit.schedule {
        set("schedule", json!(v));
    }
    if let Some(v) = &edit.tz {
        set("timezone", json!(v));
    }
    if let Some(v) = &edit.name {
        set("name", json!(v));
    }
    if let Some(v) = &edit.timeout {
        set("target.timeout", json!(v));
    }
    for pair in &edit.set {
        let (key, raw) = pair
            .split_once('=')
            .with_context(|| format!("--set {pair:?}: expected KEY=JSON"))?;
        // A bare word is taken as a string, so `--set overlap=allow` works without quotes.
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        set(key, value);
    }
    let answer = if !patch.is_empty() {
        client
            .call(Method::PATCH, &path, Some(&Value::Object(patch)), None)
            .await?
    } else {
        let current = client.call(Method::GET, &path, None, None).await?;
        let replacement = match &edit.file {
            Some(file) => read_document(file)?,
            None => edit_in_editor(&current.body)?,
        };
        client
            .call(
                Method::PUT,
                &path,
                Some(&replacement),
                current.etag.as_deref(),
            )
            .await?
    };
    if client.output == Output::Json {
        client.print_json(&answer.body)?;
    } else {
        outln!(
            "updated job {} (revision {})",
            edit.id,
            text(&answer.body["revision"])
        )?;
    }
    Ok(())
}

fn edit_in_editor(job: &Value) -> anyhow::Result<Value> {
    if !std::io::stdin().is_terminal() {
        bail!("job edit needs a terminal for $EDITOR; pass --file FILE or field flags instead");
    }
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_owned());
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        "campanile-{}-{}.json",
        text(&job["id"]),
        std::process::id()
    ));
    std::fs::write(&path, serde_json::to_string_pretty(job)? + "\n")
        .with_context(|| format!("failed to write {}", path.display()))?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status()
        .with_context(|| format!("failed to start the editor {editor:?}"))?;
    let edited = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    if !status.success() {
        bail!("the editor exited with {status}; nothing changed");
    }
    let edited = edited.context("failed to read the edited file")?;
    serde_json::from_str(&edited).context("the edited job is not valid JSON; nothing changed")
}

/// Runs `campanile cluster`.
pub async fn cluster(args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let answer = client.call(Method::GET, "v1/cluster", None, None).await?;
    let body = &answer.body;
    if client.output == Output::Json {
        client.print_json(body)?;
        return Ok(());
    }
    outln!(
        "backend {}, leader {} (epoch {}), assignment version {} ({} jobs)",
        text(&body["backend"]),
        text(&body["leader"]["node"]),
        text(&body["leader"]["epoch"]),
        text(&body["assignment"]["version"]),
        text(&body["assignment"]["jobs"]),
    )?;
    let mut table = Table::new(["NODE", "LEADER", "JOBS", "ADDRESS", "LABELS", "SESSION"]);
    for member in body["members"].as_array().into_iter().flatten() {
        table.row([
            text(&member["id"]),
            if member["leader"].as_bool() == Some(true) {
                "*".into()
            } else {
                String::new()
            },
            text(&member["jobs_owned"]),
            text(&member["address"]),
            member["labels"]
                .as_array()
                .map(|l| l.iter().map(text).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
            text(&member["session"]),
        ]);
    }
    out!("{table}")?;
    Ok(())
}

/// Runs `campanile worker ls`.
pub async fn workers(args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let answer = client.call(Method::GET, "v1/workers", None, None).await?;
    let body = &answer.body;
    if client.output == Output::Json {
        client.print_json(body)?;
        return Ok(());
    }
    if body["listening"].as_bool() == Some(false) {
        outln!(
            "node {} has no cluster port (serve --cluster-listen HOST:PORT): no worker can connect",
            text(&body["node"])
        )?;
    }
    let mut table = Table::new([
        "GROUP",
        "WORKER",
        "NODE",
        "RUNNING",
        "MAX",
        "LAST HEARTBEAT",
        "VERSION",
        "LABELS",
    ]);
    for worker in body["workers"].as_array().into_iter().flatten() {
        table.row([
            text(&worker["group"]),
            text(&worker["id"]),
            text(&worker["node"]),
            text(&worker["running"]),
            text(&worker["max_concurrent"]),
            format_ms(worker["last_heartbeat_ms"].as_i64()),
            text(&worker["version"]),
            worker["labels"]
                .as_object()
                .map(|l| {
                    l.iter()
                        .map(|(k, v)| format!("{k}={}", text(v)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        ]);
    }
    out!("{table}")?;
    for node in body["unreachable"].as_array().into_iter().flatten() {
        outln!(
            "node {} did not answer, so its workers are not listed: {}",
            text(&node["node"]),
            text(&node["error"])
        )?;
    }
    Ok(())
}

/// Runs `campanile rebalance plan`.
pub async fn rebalance_plan(args: &PlanArgs) -> anyhow::Result<()> {
    let plan_value = match &args.input {
        Some(file) => {
            let scenario: Scenario = serde_json::from_value(read_document(file)?)
                .with_context(|| format!("invalid scenario {}", file.display()))?;
            let plan = plan(&scenario).map_err(|e| anyhow::anyhow!("{}", e.message))?;
            serde_json::to_value(plan)?
        }
        None => {
            let client = Client::new(&args.client)?;
            let mut query = Vec::new();
            if let Some(drain) = &args.drain {
                query.push(format!("drain={}", encode(drain)));
            }
            if let Some(join) = &args.join {
                query.push(format!("join={}", encode(join)));
            }
            client
                .call(
                    Method::POST,
                    &format!("v1/rebalance/plan?{}", query.join("&")),
                    None,
                    None,
                )
                .await?
                .body
        }
    };
    if args.client.output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&plan_value)?)?;
        return Ok(());
    }
    outln!(
        "moves: {}, evicted: {}, unplaced: {}",
        text(&plan_value["moves"]),
        text(&plan_value["evicted"]),
        plan_value["unplaced"].as_array().map_or(0, Vec::len)
    )?;
    let mut table = Table::new(["JOB", "NODE"]);
    for (job, node) in plan_value["assignment"].as_object().into_iter().flatten() {
        table.row([job.clone(), text(node)]);
    }
    out!("{table}")?;
    Ok(())
}

/// The whole text of a file, or of stdin for `-`.
fn read_text(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("failed to read stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
    }
}

/// Reads a JSON document, or TOML if the file name ends in `.toml`; `-` is JSON on stdin.
pub fn read_document(path: &Path) -> anyhow::Result<Value> {
    let text = read_text(path)?;
    if path.extension().is_some_and(|e| e == "toml") {
        let value: toml::Value =
            toml::from_str(&text).with_context(|| format!("invalid TOML in {}", path.display()))?;
        serde_json::to_value(value).context("failed to convert TOML to JSON")
    } else {
        serde_json::from_str(&text).with_context(|| format!("invalid JSON in {}", path.display()))
    }
}

fn job_path(id: &str, action: &str) -> String {
    if action.is_empty() {
        format!("v1/jobs/{}", encode(id))
    } else {
        format!("v1/jobs/{}/{action}", encode(id))
    }
}

/// Percent-encodes a path segment or query value.
fn encode(raw: &str) -> String {
    form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

/// A JSON scalar as table text (`-` for null).
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn target_summary(target: &Value) -> String {
    match target["type"].as_str() {
        Some("command") => {
            let argv: Vec<String> = target["argv"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            argv.join(" ")
        }
        Some("http") => format!(
            "{} {}",
            target["method"].as_str().unwrap_or("POST"),
            text(&target["url"])
        ),
        Some("handler") => format!("handler {}", text(&target["name"])),
        _ => compact(target),
    }
}
