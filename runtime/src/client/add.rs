//! `job add`: one job from flags and a file, or many from a JSON Lines file in batches.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use super::{Client, read_document};
use crate::cli::{AddArgs, Output};
use crate::outln;

/// Most bytes of jobs one `job add --file x.jsonl` request carries (the server's default
/// `http.max_batch_body_bytes` is 16 MiB): a batch ends at 10,000 jobs or at this size.
const BATCH_BYTES: usize = 8 << 20;

/// `job add --file jobs.jsonl`: every line is read and parsed first (a bad line creates nothing), then the
/// jobs go out in batches of up to 10,000 through `POST /v1/jobs:batch`, each all or none. An error names the
/// line and the field.
pub(super) async fn add_many(client: &Client, add: &AddArgs) -> anyhow::Result<()> {
    let path = add.file.as_deref().context("--jsonl needs --file")?;
    let name = if path.as_os_str() == "-" {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    let text = super::read_text(path)?;
    // (line number, raw JSON) of each job, then batches of them.
    let mut jobs: Vec<(usize, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(_)) => jobs.push((i + 1, line)),
            Ok(other) => bail!(
                "{name}:{}: a line must hold one job object, not {}",
                i + 1,
                short_json(&other)
            ),
            Err(e) => bail!("{name}:{}: not valid JSON: {e}", i + 1),
        }
    }
    if jobs.is_empty() {
        bail!("{name}: no jobs (one JSON object a line)");
    }
    let mut created = 0usize;
    let mut answers = Vec::new();
    let mut rest = jobs.as_slice();
    while !rest.is_empty() {
        let mut end = 0;
        let mut bytes = 0;
        while end < rest.len()
            && end < crate::api::jobs::MAX_BATCH
            && (end == 0 || bytes + rest[end].1.len() < BATCH_BYTES)
        {
            bytes += rest[end].1.len() + 1;
            end += 1;
        }
        let (batch, later) = rest.split_at(end);
        rest = later;
        let mut body = String::with_capacity(bytes + 16);
        body.push_str("{\"jobs\":[");
        for (k, (_, job)) in batch.iter().enumerate() {
            if k > 0 {
                body.push(',');
            }
            body.push_str(job);
        }
        body.push_str("]}");
        match client.post_raw("v1/jobs:batch", body).await? {
            Ok(answer) => {
                created += answer["created"].as_u64().unwrap_or(0) as usize;
                answers.push(answer);
            }
            Err(error) => {
                let detail = error.error;
                let index = detail
                    .field
                    .as_deref()
                    .and_then(|f| f.strip_prefix("jobs["))
                    .and_then(|f| f.split_once(']'))
                    .and_then(|(i, _)| i.parse::<usize>().ok())
                    .filter(|&i| i < batch.len());
                let earlier = if created == 0 {
                    "nothing was created".to_owned()
                } else {
                    format!("the {created} jobs of the lines before this batch were created")
                };
                match index {
                    Some(i) => {
                        let prefix = format!("jobs[{i}]");
                        let message = detail
                            .message
                            .replacen(&format!("{prefix}."), "", 1)
                            .replacen(&prefix, "job", 1);
                        bail!(
                            "{name}:{}: {message} ({}; this line's batch of {} was not)",
                            batch[i].0,
                            earlier,
                            batch.len()
                        )
                    }
                    None => bail!(
                        "{name}: lines {}-{}: {} ({}; this batch of {} was not)",
                        batch[0].0,
                        batch[batch.len() - 1].0,
                        detail.message,
                        earlier,
                        batch.len()
                    ),
                }
            }
        }
    }
    if client.output == Output::Json {
        let ids: Vec<Value> = answers
            .iter_mut()
            .flat_map(|a| {
                a["jobs"]
                    .as_array_mut()
                    .map(std::mem::take)
                    .unwrap_or_default()
            })
            .collect();
        client.print_json(&json!({"created": created, "jobs": ids}))?;
    } else {
        outln!("created {created} jobs")?;
    }
    Ok(())
}

fn short_json(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The job JSON for `job add`: the file's (if any), with the flags on top.
pub(super) fn add_body(add: &AddArgs) -> anyhow::Result<Value> {
    let mut body = match &add.file {
        Some(file) => read_document(file)?,
        None => Value::Object(Map::new()),
    };
    let map = body
        .as_object_mut()
        .context("the job file must hold one object")?;
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            map.insert(key.to_owned(), value);
        }
    };
    put("id", add.id.clone().map(Value::from));
    put("schedule", add.schedule.clone().map(Value::from));
    put("timezone", add.tz.clone().map(Value::from));
    put("namespace", add.namespace.clone().map(Value::from));
    put("overlap", add.overlap.clone().map(Value::from));
    if add.paused {
        put("paused", Some(Value::Bool(true)));
    }
    if let Some(url) = &add.http {
        let mut target = json!({"type": "http", "url": url});
        if let Some(timeout) = &add.timeout {
            target["timeout"] = json!(timeout);
        }
        put("target", Some(target));
    } else if !add.argv.is_empty() {
        let mut target = json!({"type": "command", "argv": add.argv});
        if let Some(timeout) = &add.timeout {
            target["timeout"] = json!(timeout);
        }
        put("target", Some(target));
    } else if let Some(timeout) = &add.timeout {
        match map.get_mut("target").and_then(Value::as_object_mut) {
            Some(target) => {
                target.insert("timeout".into(), json!(timeout));
            }
            None => bail!("--timeout needs a target: a command after `--`, --http URL, or a file"),
        }
    }
    if !add.labels.is_empty() {
        let labels = map
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        let labels = labels
            .as_object_mut()
            .context("labels in the job file must be an object")?;
        for pair in &add.labels {
            let (k, v) = pair
                .split_once('=')
                .with_context(|| format!("--label {pair:?}: expected KEY=VALUE"))?;
            labels.insert(k.to_owned(), json!(v));
        }
    }
    if !map.contains_key("name") {
        let name = add
            .name
            .clone()
            .or_else(|| map.get("id").and_then(Value::as_str).map(str::to_owned))
            .or_else(|| {
                add.argv.first().map(|p| {
                    Path::new(p)
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_else(|| p.clone())
                })
            })
            .or_else(|| add.http.clone());
        if let Some(name) = name {
            map.insert("name".into(), json!(name));
        }
    } else if let Some(name) = &add.name {
        map.insert("name".into(), json!(name));
    }
    if !map.contains_key("schedule") {
        bail!("a job needs a schedule: --schedule '*/5 * * * *' or a file with \"schedule\"");
    }
    if !map.contains_key("target") {
        bail!(
            "a job needs a target: a command after `--` (job add --schedule ... -- echo hi), --http URL, or a file"
        );
    }
    Ok(body)
}
