//! `campanile schedule next`: a schedule's next instants and its plain-language reading, computed locally by
//! the API's own preview code ([`crate::api::schedules::preview`]), so it needs no server and cannot
//! disagree with the console's preview.

use anyhow::Context;
use campanile::clock::Clock;
use campanile::job::{DstPolicy, DstRepeat};

use super::table::Table;
use crate::api::schedules::{PreviewRequest, preview};
use crate::cli::Output;
use crate::outln;

/// Runs `campanile schedule next`.
pub fn schedule_next(
    schedule: &str,
    tz: &str,
    dst: &str,
    dst_repeat: &str,
    count: usize,
    after: Option<&str>,
    output: Output,
) -> anyhow::Result<()> {
    let dst: DstPolicy = serde_json::from_value(serde_json::Value::from(dst))
        .map_err(|_| anyhow::anyhow!("--dst: {dst:?} is not `cronie` or `skip_gap`"))?;
    let dst_repeat: DstRepeat = serde_json::from_value(serde_json::Value::from(dst_repeat))
        .map_err(|_| {
            anyhow::anyhow!("--dst-repeat: {dst_repeat:?} is not `first`, `last` or `both`")
        })?;
    let after = after
        .map(|a| {
            chrono::DateTime::parse_from_rfc3339(a)
                .map(|t| t.to_utc())
                .with_context(|| format!("--after: {a:?} is not an RFC 3339 instant"))
        })
        .transpose()?;
    let request = PreviewRequest {
        schedule: schedule.to_owned(),
        timezone: Some(tz.to_owned()),
        dst: Some(dst),
        dst_repeat: Some(dst_repeat),
        count: Some(count),
        after,
    };
    let now = campanile::clock::SystemClock::new().now_ms();
    let answer = preview(&request, now).map_err(|e| {
        // Name the flag the user typed, not the API's field.
        let flag = match e.field.as_str() {
            "timezone" => "--tz",
            "count" => "--count",
            _ => "schedule",
        };
        anyhow::anyhow!("{flag}: {:?} {}", e.value, e.reason)
    })?;
    if output == Output::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        )?;
        return Ok(());
    }
    outln!("{}", answer.description)?;
    let mut table = Table::new(["LOCAL", "UTC", ""]);
    for instant in &answer.next {
        table.row([
            instant.local.clone(),
            instant.utc.clone(),
            if instant.dst_change {
                "DST change before this".to_owned()
            } else {
                String::new()
            },
        ]);
    }
    crate::out!("{table}")?;
    Ok(())
}
