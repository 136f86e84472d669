//! Schedules: when a job fires. Pure: no IO, no clock; the caller passes the instant to search from.
//!
//! Forms accepted by [`Schedule::parse`] (and in the job JSON's `schedule` string):
//! - cron with 5 fields (`m h dom mon dow`), 6 (leading seconds) or 7 (leading seconds, trailing year), with
//!   `L`, `W`, `#`, `?`, names (`MON`, `JAN`), and the macros `@yearly @annually @monthly @weekly @daily
//!   @midnight @hourly`. Weekdays are numbered like cronie (0 or 7 = Sunday). The day fields combine like
//!   cronie's: when either starts with `*` (or `?`) a day must match both, otherwise either is enough, so
//!   `0 0 */2 * 1` is the odd days that are Mondays and `0 0 13 * 5` every 13th and every Friday. A step in the
//!   year field counts from year 1 (`*/4` is 2025, 2029, ...). Read in the job's IANA time zone, with
//!   cronie's DST behaviour by default (see [`DstHandling`] and the `cron` module); past 2099 with the zone's
//!   ongoing rule (the `zone` module).
//! - `@every <duration>` (`@every 30s`, `@every 1h 30m`) with an optional anchor `from <RFC 3339>`: the instants
//!   `anchor + k·interval`. Without an anchor the Unix epoch is the anchor, so `@every 1m` fires on whole minutes.
//!   Before the anchor, the first instant is the anchor itself.
//! - `@at <RFC 3339>`: one instant (one-shot).
//!
//! Keywords, names and units are case-insensitive; errors quote the text as written.
//! Cron parsing is done by `croner` (see docs/dependencies.md for why not `cron`). Parsed cron expressions are
//! interned: jobs with the same expression share one `Arc`, so a million jobs with a handful of distinct
//! expressions cost a handful of parsed schedules.

mod cron;
mod memo;
mod zone;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use chrono::DateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::job::{DstHandling, ValidationError};

use self::cron::CronExpr;

/// The longest interval an `@every` schedule accepts (one year): longer intervals are better written as cron.
const MAX_EVERY_MS: i64 = 366 * 24 * 3600 * 1000;

/// The longest schedule text accepted, in bytes.
const MAX_LEN: usize = 256;

/// A parsed schedule. Serialized as its source text. Cheap to clone.
#[derive(Clone)]
pub struct Schedule {
    source: Arc<str>,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Cron(Arc<CronExpr>),
    Every { every_ms: i64, anchor_ms: i64 },
    At(i64),
}

impl Schedule {
    /// Parses a schedule; errors name the field `schedule` and the value, and say what is wrong and where:
    /// `schedule: "61 * * * *": minute 61 is out of range 0..=59`.
    pub fn parse(source: &str) -> Result<Self, ValidationError> {
        let err = |reason: String| ValidationError::new("schedule", source, reason);
        let text = source.trim();
        if text.is_empty() {
            return Err(err(
                "is empty; expected cron like \"*/5 * * * *\", a macro like @daily, \
                 \"@every 30s\" or \"@at 2026-11-21T12:00:00Z\""
                    .to_owned(),
            ));
        }
        if text.len() > MAX_LEN {
            return Err(err(format!(
                "is {} bytes long; at most {MAX_LEN} are accepted",
                text.len()
            )));
        }
        // The keyword is the first word, compared without regard to case; `rest` is sliced from the
        // original text, so errors quote what the user wrote.
        let (keyword, rest) = match text.find(char::is_whitespace) {
            Some(i) => (&text[..i], text[i..].trim_start()),
            None => (text, ""),
        };
        let kind = if keyword.eq_ignore_ascii_case("@every") {
            parse_every(rest)
        } else if keyword.eq_ignore_ascii_case("@at") {
            parse_at(rest)
        } else {
            cron::parse(text).map(Kind::Cron)
        }
        .map_err(err)?;
        Ok(Self {
            source: Arc::from(text),
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

    /// The first instant strictly after `after_ms` (Unix ms), read in `tz` with the given DST handling (a
    /// [`DstPolicy`](crate::job::DstPolicy) alone, or a job's [`JobSpec::dst_handling`](crate::JobSpec::dst_handling));
    /// `None` when the schedule has no more instants (a passed one-shot, a cron that cannot match before year
    /// 5000).
    ///
    /// Guarantees: the result is `> after_ms`, so iterating `next_after(next_after(..))` never repeats and
    /// never goes back, also across DST transitions.
    pub fn next_after(&self, after_ms: i64, tz: Tz, dst: impl Into<DstHandling>) -> Option<i64> {
        let dst = dst.into();
        match &self.kind {
            Kind::At(at) => (*at > after_ms).then_some(*at),
            Kind::Every {
                every_ms,
                anchor_ms,
            } => {
                if after_ms < *anchor_ms {
                    return Some(*anchor_ms);
                }
                let k = after_ms.checked_sub(*anchor_ms)?.div_euclid(*every_ms) + 1;
                anchor_ms.checked_add(k.checked_mul(*every_ms)?)
            }
            Kind::Cron(cron) => memo::next_after(cron, after_ms, tz, dst),
        }
    }

    /// Reads the schedule's kind (for [`crate::job::Job::warm`]).
    pub(crate) fn warm(&self) -> usize {
        match &self.kind {
            Kind::Cron(_) => 1,
            Kind::Every { every_ms, .. } => usize::from(*every_ms > 0),
            Kind::At(_) => 2,
        }
    }

    /// Up to `n` instants strictly after `after_ms`, in order.
    pub fn preview(
        &self,
        after_ms: i64,
        n: usize,
        tz: Tz,
        dst: impl Into<DstHandling>,
    ) -> Vec<i64> {
        let dst = dst.into();
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

/// `<duration> [from <RFC 3339>]`, after `@every`.
fn parse_every(rest: &str) -> Result<Kind, String> {
    let (interval, anchor) = match split_at_word(rest, "from") {
        Some((interval, anchor)) => (interval, Some(anchor)),
        None => (rest, None),
    };
    if interval.is_empty() {
        return Err(
            "@every needs an interval, like \"@every 30s\" or \"@every 1h from 2026-01-01T00:00:00Z\""
                .to_owned(),
        );
    }
    // humantime's units are lower-case; parse a lower-cased copy, quote the original.
    let every = humantime::parse_duration(&interval.to_ascii_lowercase())
        .map_err(|e| format!("interval {interval:?} is not a duration like 30s or 1h 30m: {e}"))?;
    if every.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "interval {interval:?} is not a whole number of milliseconds"
        ));
    }
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    if every_ms < 1000 {
        return Err(format!(
            "interval {interval:?} is shorter than 1s, the shortest accepted"
        ));
    }
    if every_ms > MAX_EVERY_MS {
        return Err(format!(
            "interval {interval:?} is longer than 366 days; use cron for long periods"
        ));
    }
    let anchor_ms = match anchor {
        None => 0,
        Some("") => {
            return Err(
                "\"from\" needs an RFC 3339 instant after it, like \"from 2026-01-01T00:00:00Z\""
                    .to_owned(),
            );
        }
        Some(anchor) => parse_instant(anchor)?,
    };
    Ok(Kind::Every {
        every_ms,
        anchor_ms,
    })
}

/// `<RFC 3339>`, after `@at`.
fn parse_at(rest: &str) -> Result<Kind, String> {
    if rest.is_empty() {
        return Err("@at needs an RFC 3339 instant, like \"@at 2026-11-21T12:00:00Z\"".to_owned());
    }
    parse_instant(rest).map(Kind::At)
}

/// Splits `text` around its first whitespace-separated word equal to `word` (ASCII case-insensitive);
/// both sides trimmed, both slices of `text`.
fn split_at_word<'a>(text: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let mut start = None;
    let ends = text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')));
    for (i, c) in ends {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                if text[s..i].eq_ignore_ascii_case(word) {
                    return Some((text[..s].trim(), text[i..].trim()));
                }
                start = None;
            }
            _ => {}
        }
    }
    None
}

fn parse_instant(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{text:?} is not an RFC 3339 instant like 2026-11-21T12:00:00Z: {e}"))
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
