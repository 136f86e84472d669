//! Schedules: when a job fires. Pure: no IO, no clock; the caller passes the instant to search from.
//!
//! Forms accepted by [`Schedule::parse`] (and in the job JSON's `schedule` string):
//! - cron with 5 fields (`m h dom mon dow`), 6 (leading seconds) or 7 (trailing year), with `L`, `W`, `#`, `?`,
//!   names (`MON`, `JAN`), and the macros `@yearly @annually @monthly @weekly @daily @midnight @hourly`.
//!   Weekdays are numbered like cronie (0 or 7 = Sunday). Read in the job's IANA time zone.
//! - `@every <duration>` (`@every 30s`, `@every 1h 30m`) with an optional anchor `from <RFC 3339>`: the instants
//!   `anchor + k·interval`. Without an anchor the Unix epoch is the anchor, so `@every 1m` fires on whole minutes.
//! - `@at <RFC 3339>`: one instant (one-shot).
//!
//! Cron parsing is done by `croner` (see docs/dependencies.md for why not `cron`). Parsed cron expressions are
//! interned: jobs with the same expression share one `Arc`, so a million jobs with a handful of distinct
//! expressions cost a handful of parsed schedules.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::job::{DstPolicy, ValidationError};

/// The longest interval an `@every` schedule accepts (one year): longer intervals are better written as cron.
const MAX_EVERY_MS: i64 = 366 * 24 * 3600 * 1000;

/// A parsed schedule. Serialized as its source text. Cheap to clone.
#[derive(Clone)]
pub struct Schedule {
    source: Arc<str>,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Cron(Arc<Cron>),
    Every { every_ms: i64, anchor_ms: i64 },
    At(i64),
}

impl Schedule {
    /// Parses a schedule; errors name the field `schedule` and the value.
    pub fn parse(source: &str) -> Result<Self, ValidationError> {
        let trimmed = source.trim();
        let err = |reason: String| ValidationError::new("schedule", source, reason);
        if trimmed.is_empty() {
            return Err(err("is empty".to_owned()));
        }
        if trimmed.len() > 256 {
            return Err(err("is longer than 256 characters".to_owned()));
        }
        let lower = trimmed.to_ascii_lowercase();
        let kind = if let Some(rest) = lower.strip_prefix("@every") {
            let rest = rest.trim();
            let (interval, anchor) = match rest.split_once(" from ") {
                Some((interval, anchor)) => (interval.trim(), Some(anchor.trim())),
                None => (rest, None),
            };
            let every = humantime::parse_duration(interval).map_err(|e| {
                err(format!(
                    "interval {interval:?} is not a duration like 30s or 1h 30m: {e}"
                ))
            })?;
            let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
            if every_ms < 1000 {
                return Err(err(format!("interval {interval:?} is shorter than 1s")));
            }
            if every_ms > MAX_EVERY_MS {
                return Err(err(format!(
                    "interval {interval:?} is longer than 366 days"
                )));
            }
            let anchor_ms = match anchor {
                // Parse the original-case text so the error shows what the user wrote.
                Some(_) => {
                    let original = &trimmed[trimmed
                        .to_ascii_lowercase()
                        .find(" from ")
                        .map_or(0, |i| i + 6)..];
                    parse_instant(original.trim()).map_err(err)?
                }
                None => 0,
            };
            Kind::Every {
                every_ms,
                anchor_ms,
            }
        } else if lower.starts_with("@at") {
            let at = trimmed[3..].trim();
            Kind::At(parse_instant(at).map_err(err)?)
        } else {
            Kind::Cron(intern_cron(trimmed).map_err(err)?)
        };
        Ok(Self {
            source: Arc::from(trimmed),
            kind,
        })
    }

    /// The source text, as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the schedule fires at most once.
    pub fn is_one_shot(&self) -> bool {
        matches!(self.kind, Kind::At(_))
    }

    /// The first instant strictly after `after_ms` (Unix ms), read in `tz` with the given DST policy; `None` when
    /// the schedule has no more instants (a passed one-shot, a cron that cannot match before year 5000).
    ///
    /// Guarantees: the result is `> after_ms`, so iterating `next_after(next_after(..))` never repeats and
    /// never goes back, also across DST transitions.
    pub fn next_after(&self, after_ms: i64, tz: Tz, dst: DstPolicy) -> Option<i64> {
        match &self.kind {
            Kind::At(at) => (*at > after_ms).then_some(*at),
            Kind::Every {
                every_ms,
                anchor_ms,
            } => {
                if after_ms < *anchor_ms {
                    return Some(*anchor_ms);
                }
                let k = (after_ms - anchor_ms).div_euclid(*every_ms) + 1;
                anchor_ms.checked_add(k.checked_mul(*every_ms)?)
            }
            Kind::Cron(cron) => next_cron(cron, after_ms, tz, dst),
        }
    }

    /// Up to `n` instants strictly after `after_ms`, in order.
    pub fn preview(&self, after_ms: i64, n: usize, tz: Tz, dst: DstPolicy) -> Vec<i64> {
        let mut out = Vec::with_capacity(n.min(1000));
        let mut cursor = after_ms;
        while out.len() < n {
            match self.next_after(cursor, tz, dst) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    /// Whether two schedules share one parsed cron expression (interning is observable for tests).
    pub fn shares_parsed_with(&self, other: &Schedule) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::Cron(a), Kind::Cron(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

fn next_cron(cron: &Cron, after_ms: i64, tz: Tz, dst: DstPolicy) -> Option<i64> {
    // Cron has second resolution: search from the whole second that contains `after_ms`, exclusive, so the
    // result is the first matching second strictly after it.
    let mut from: DateTime<Tz> =
        tz.from_utc_datetime(&DateTime::<Utc>::from_timestamp_millis(after_ms)?.naive_utc());
    loop {
        let next = cron.find_next_occurrence(&from, false).ok()?;
        let next_ms = next.timestamp_millis();
        debug_assert!(
            next_ms > after_ms,
            "croner returned {next_ms} <= {after_ms}"
        );
        if next_ms <= after_ms {
            // croner promises forward progress; never trust it with a repeat.
            from = tz.from_utc_datetime(
                &DateTime::<Utc>::from_timestamp_millis(after_ms + 1000)?.naive_utc(),
            );
            continue;
        }
        // croner moves a fixed time that falls into a spring-forward gap to just after the gap; the result then
        // does not match the pattern's wall-clock fields. `skip_gap` drops that instant.
        if dst == DstPolicy::SkipGap && !cron.is_time_matching(&next).unwrap_or(true) {
            from = next;
            continue;
        }
        return Some(next_ms);
    }
}

fn parse_instant(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{text:?} is not an RFC 3339 instant like 2026-11-21T12:00:00Z: {e}"))
}

/// Parses cron text, sharing one parsed value among all schedules with the same text.
fn intern_cron(text: &str) -> Result<Arc<Cron>, String> {
    static CACHE: OnceLock<Mutex<HashMap<Box<str>, Weak<Cron>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(text)
        .and_then(Weak::upgrade)
    {
        return Ok(hit);
    }
    let fields = text.split_whitespace().count();
    if !text.starts_with('@') && !(5..=7).contains(&fields) {
        return Err(format!(
            "has {fields} fields; expected 5 (m h dom mon dow), 6 (with seconds) or 7 (with year)"
        ));
    }
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Optional)
        .build();
    let cron = parser.parse(text).map_err(|e| e.to_string())?;
    let cron = Arc::new(cron);
    let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
    // Drop dead entries now and then, so a churn of distinct expressions does not grow the map for ever.
    if guard.len() > 1024 && guard.len().is_power_of_two() {
        guard.retain(|_, weak| weak.strong_count() > 0);
    }
    let entry = guard.entry(text.into()).or_default();
    match entry.upgrade() {
        Some(existing) => Ok(existing),
        None => {
            *entry = Arc::downgrade(&cron);
            Ok(cron)
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.source)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Schedule {}

impl std::str::FromStr for Schedule {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Schedule::parse(&text).map_err(serde::de::Error::custom)
    }
}
