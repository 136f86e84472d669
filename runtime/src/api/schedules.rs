//! `POST /v1/schedules/preview`: the next instants of a schedule being written (before any job has it), with
//! DST transitions marked, and the schedule in plain language. The same computation serves
//! `campanile schedule next` ([`preview`]), so the console, the API and the CLI cannot disagree.

use axum::Json;
use axum::extract::State;
use campanile::job::{DstHandling, DstPolicy, DstRepeat};
use campanile::{Schedule, ValidationError};
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::body::JsonObject;
use super::error::{ApiError, ErrorBody};
use super::schema::{DstPolicyDoc, DstRepeatDoc};

/// Most instants one preview lists.
pub const MAX_PREVIEW: usize = 100;

/// `POST /v1/schedules/preview` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The schedule, as a job's `schedule` field.
    #[schema(example = "30 1 * * *")]
    pub schedule: String,
    /// IANA time zone (default `UTC`).
    #[serde(default)]
    #[schema(example = "Europe/London")]
    pub timezone: Option<String>,
    /// DST handling (default `cronie`).
    #[serde(default)]
    #[schema(value_type = Option<DstPolicyDoc>)]
    pub dst: Option<DstPolicy>,
    /// Which pass of a repeated autumn hour a fixed time runs in (default `first`).
    #[serde(default)]
    #[schema(value_type = Option<DstRepeatDoc>)]
    pub dst_repeat: Option<DstRepeat>,
    /// How many instants, 1 to 100 (default 10).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub count: Option<usize>,
    /// Start strictly after this instant (RFC 3339; default now).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub after: Option<DateTime<Utc>>,
}

/// A schedule's next instants and its plain-language reading.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Preview {
    /// The schedule, trimmed.
    pub schedule: String,
    /// The time zone it is read in.
    pub timezone: String,
    /// The schedule in plain language (`at 01:30 every day, Europe/London`).
    pub description: String,
    /// The instants, in order (fewer than asked when the schedule ends).
    pub next: Vec<PreviewInstant>,
}

/// One instant of a preview.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PreviewInstant {
    /// Unix ms.
    pub unix_ms: i64,
    /// RFC 3339, UTC.
    pub utc: String,
    /// RFC 3339, in the schedule's time zone.
    pub local: String,
    /// Whether the zone's UTC offset changed since the previous instant (or since `after`, for the first):
    /// a DST transition lies between them.
    pub dst_change: bool,
}

/// Parses a time zone, naming the field.
pub fn zone(name: &str) -> Result<Tz, ValidationError> {
    name.parse().map_err(|_| {
        ValidationError::new(
            "timezone",
            name,
            "is not an IANA time zone name like \"Europe/London\" or \"UTC\"",
        )
    })
}

/// The preview of `request` from `now_ms`: every error names its field.
pub fn preview(request: &PreviewRequest, now_ms: i64) -> Result<Preview, ValidationError> {
    let schedule = Schedule::parse(&request.schedule)?;
    let timezone = request.timezone.as_deref().unwrap_or("UTC");
    let tz = zone(timezone)?;
    let count = request.count.unwrap_or(10);
    if !(1..=MAX_PREVIEW).contains(&count) {
        return Err(ValidationError::new(
            "count",
            count.to_string(),
            format!("must be 1 to {MAX_PREVIEW}"),
        ));
    }
    let after = request.after.map_or(now_ms, |a| a.timestamp_millis());
    let offset = |ms: i64| {
        Utc.timestamp_millis_opt(ms)
            .single()
            .map(|t| t.with_timezone(&tz).offset().fix().local_minus_utc())
    };
    let mut previous = offset(after);
    let next = schedule
        .preview(
            after,
            count,
            tz,
            DstHandling {
                gap: request.dst.unwrap_or_default(),
                repeat: request.dst_repeat.unwrap_or_default(),
            },
        )
        .into_iter()
        .filter_map(|ms| {
            let utc = Utc.timestamp_millis_opt(ms).single()?;
            let here = offset(ms);
            let dst_change = here != previous;
            previous = here;
            Some(PreviewInstant {
                unix_ms: ms,
                utc: utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                local: utc
                    .with_timezone(&tz)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
                dst_change,
            })
        })
        .collect();
    Ok(Preview {
        schedule: schedule.as_str().to_owned(),
        timezone: timezone.to_owned(),
        description: crate::describe::describe(schedule.as_str(), timezone),
        next,
    })
}

/// Preview a schedule: its next instants (DST transitions marked) and its plain-language reading. Reads
/// nothing and changes nothing, so a read-only token may call it.
#[utoipa::path(post, path = "/v1/schedules/preview", tag = "jobs", request_body = PreviewRequest,
    responses((status = 200, body = Preview), (status = 400, body = ErrorBody)))]
pub async fn preview_route(
    State(app): State<AppState>,
    body: JsonObject,
) -> Result<Json<Preview>, ApiError> {
    let request: PreviewRequest = body.into_typed()?;
    Ok(Json(preview(&request, app.clock.now_ms())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(schedule: &str, timezone: &str, after: &str) -> PreviewRequest {
        PreviewRequest {
            schedule: schedule.to_owned(),
            timezone: Some(timezone.to_owned()),
            dst: None,
            dst_repeat: None,
            count: Some(3),
            after: Some(after.parse().unwrap()),
        }
    }

    #[test]
    fn london_instants_across_the_autumn_change_are_marked() {
        // 2026-10-25 01:00 UTC: Europe/London goes from BST (+01:00) back to GMT.
        let p = preview(
            &request("30 1 * * *", "Europe/London", "2026-10-23T12:00:00Z"),
            0,
        )
        .unwrap();
        let local: Vec<&str> = p.next.iter().map(|i| i.local.as_str()).collect();
        assert_eq!(
            local,
            [
                "2026-10-24T01:30:00+01:00",
                "2026-10-25T01:30:00+01:00",
                "2026-10-26T01:30:00+00:00"
            ]
        );
        let marked: Vec<bool> = p.next.iter().map(|i| i.dst_change).collect();
        assert_eq!(marked, [false, false, true]);
        assert_eq!(p.description, "at 01:30 every day, Europe/London");
    }

    #[test]
    fn dst_repeat_both_runs_a_fixed_time_in_both_passes_of_the_autumn_hour() {
        // 2026-10-25: Europe/London repeats 01:00-02:00 (BST, then GMT).
        let mut both = request("30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z");
        both.dst_repeat = Some(DstRepeat::Both);
        let local: Vec<String> = preview(&both, 0)
            .unwrap()
            .next
            .into_iter()
            .map(|i| i.local)
            .collect();
        assert_eq!(
            local,
            [
                "2026-10-25T01:30:00+01:00",
                "2026-10-25T01:30:00+00:00",
                "2026-10-26T01:30:00+00:00"
            ]
        );
        both.dst_repeat = Some(DstRepeat::Last);
        let last = preview(&both, 0).unwrap();
        assert_eq!(last.next[0].local, "2026-10-25T01:30:00+00:00");
    }

    #[test]
    fn errors_name_the_field() {
        let mut bad = request("61 * * * *", "UTC", "2026-01-01T00:00:00Z");
        assert_eq!(preview(&bad, 0).unwrap_err().field, "schedule");
        bad.schedule = "@daily".to_owned();
        bad.timezone = Some("Mars/Olympus".to_owned());
        assert_eq!(preview(&bad, 0).unwrap_err().field, "timezone");
        bad.timezone = None;
        bad.count = Some(101);
        assert_eq!(preview(&bad, 0).unwrap_err().field, "count");
    }
}
