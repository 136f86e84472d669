//! Cron expressions: parsing with errors that name the field, interning, and the search for the next
//! instant in a time zone, with cronie's DST behaviour.
//!
//! `croner` parses the expression and matches wall-clock times: it is only ever asked about
//! `NaiveDateTime`s. Mapping wall-clock times to instants around DST transitions is done here (through the
//! `zone` module, which carries each zone's rule past 2099).
//!
//! Where cronie defines a meaning, it is cronie's (its `entry.c` and `cron.c`), also where croner reads the
//! text otherwise:
//! - the day fields: when either starts with `*` (or `?`), a day must match both; when neither does, either is
//!   enough. croner only treats a field that is exactly `*` that way, so the expression is parsed with croner's
//!   "both" option exactly when cronie would require both;
//! - DST: a job is a wildcard job when its second, minute or hour field starts with `*`, and a fixed-time job
//!   otherwise (croner looks for a `*` anywhere in the field);
//! - a list is a union: croner reads `LW` as a flag of the whole day-of-month field, which turns off an `L`
//!   beside it, so `L,LW` is parsed as two expressions that fire together.
//!
//! postmortem: the first version let croner 4.0.3 search in the job's zone and relied on its DST rules.
//! croner calls a job "fixed-time" only when its second, minute and hour fields are each one plain value, so
//! `0 1,13 * * *` or `0 1-3 * * *` were "interval" jobs to it: in London on 2026-10-25 `0 1,13 * * *` ran at
//! 01:00 BST and again at 01:00 GMT, and on 2026-03-29 `30 1,13 * * *` skipped its 01:30 run. cronie calls a
//! job "wildcard" only when its minute or hour field starts with `*`, and every other job runs its times once:
//! once right after a spring-forward jump, once on the first pass of a repeated hour. The regression tests are
//! `tests::dst::lists_and_ranges_are_fixed_times_like_cronie`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, TimeDelta, Timelike};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::zone;
use crate::job::{DstHandling, DstPolicy, DstRepeat};

/// A parsed cron expression, shared by every schedule with the same text.
pub(super) struct CronExpr {
    /// The expression as croner holds it: one, or two when its day-of-month list has both `L` and `LW`
    /// (see the module docs). It matches a wall-clock time when any of them does.
    crons: Box<[Cron]>,
    /// cronie's "wildcard job": the second, minute or hour field starts with `*` (`*`, `*/15`). Such a job
    /// follows real time across DST transitions (nothing in a spring gap, every real instant of a repeated
    /// range once); any other job is a fixed-time job, handled by the job's [`DstHandling`].
    follows_real_time: bool,
}

/// The macros and the cron text they stand for (cronie's; `@weekly` is Sunday midnight).
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Gaps and repeated ranges longer than this are not searched for (the longest on record is Samoa's
/// skipped day in 2011); wall-clock times in such a range are skipped.
const MAX_DST_RUN_SECS: i64 = 4 * 24 * 3600;

/// How many gaps, repeated ranges or passed times one search steps over before it gives up: only a
/// pattern that matches nothing but times in DST gaps under `skip_gap` gets there.
const MAX_SKIPS: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

/// One field of a cron expression: its name in errors, its value range, and its place in croner's 7 fields.
#[derive(Clone, Copy)]
struct Field {
    kind: FieldKind,
    name: &'static str,
    min: u32,
    max: u32,
    slot: usize,
}

const SECOND: Field = Field {
    kind: FieldKind::Second,
    name: "second",
    min: 0,
    max: 59,
    slot: 0,
};
const MINUTE: Field = Field {
    kind: FieldKind::Minute,
    name: "minute",
    min: 0,
    max: 59,
    slot: 1,
};
const HOUR: Field = Field {
    kind: FieldKind::Hour,
    name: "hour",
    min: 0,
    max: 23,
    slot: 2,
};
const DAY_OF_MONTH: Field = Field {
    kind: FieldKind::DayOfMonth,
    name: "day-of-month",
    min: 1,
    max: 31,
    slot: 3,
};
const MONTH: Field = Field {
    kind: FieldKind::Month,
    name: "month",
    min: 1,
    max: 12,
    slot: 4,
};
const DAY_OF_WEEK: Field = Field {
    kind: FieldKind::DayOfWeek,
    name: "day-of-week",
    min: 0,
    max: 7,
    slot: 5,
};
const YEAR: Field = Field {
    kind: FieldKind::Year,
    name: "year",
    min: croner::YEAR_LOWER_LIMIT as u32,
    max: croner::YEAR_UPPER_LIMIT as u32,
    slot: 6,
};

/// The fields of an expression with `n` fields, in order.
fn layout(n: usize) -> Option<&'static [Field]> {
    const FIVE: [Field; 5] = [MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK];
    const SIX: [Field; 6] = [SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK];
    const SEVEN: [Field; 7] = [SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR];
    match n {
        5 => Some(&FIVE),
        6 => Some(&SIX),
        7 => Some(&SEVEN),
        _ => None,
    }
}

/// croner's parser. `both_days`: a day must match the day-of-month and the day-of-week fields (cronie's rule
/// when either starts with `*`); otherwise either is enough. Weekdays are 0-7 with 0 and 7 both Sunday, as in
/// cronie (croner's default).
fn parser(both_days: bool) -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Optional)
        .dom_and_dow(both_days)
        .build()
}

/// Parses cron text or a macro, sharing one parsed value among all schedules with the same text.
/// The error is the reason only; the caller adds the field and the value.
pub(super) fn parse(text: &str) -> Result<Arc<CronExpr>, String> {
    static CACHE: OnceLock<Mutex<HashMap<Box<str>, Weak<CronExpr>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(text)
        .and_then(Weak::upgrade)
    {
        return Ok(hit);
    }
    let parsed = Arc::new(parse_uncached(text)?);
    let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
    // Drop dead entries now and then, so a churn of distinct expressions does not grow the map for ever.
    if guard.len() > 1024 && guard.len().is_power_of_two() {
        guard.retain(|_, weak| weak.strong_count() > 0);
    }
    let entry = guard.entry(text.into()).or_default();
    match entry.upgrade() {
        Some(existing) => Ok(existing),
        None => {
            *entry = Arc::downgrade(&parsed);
            Ok(parsed)
        }
    }
}

fn parse_uncached(text: &str) -> Result<CronExpr, String> {
    let expanded = if text.starts_with('@') {
        let mut words = text.split_whitespace();
        let word = words.next().unwrap_or_default();
        let Some((name, cron)) = MACROS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
        else {
            return Err(format!(
                "unknown macro {word:?}; expected @yearly, @annually, @monthly, @weekly, @daily, \
                 @midnight, @hourly, \"@every <duration> [from <RFC 3339>]\" or \"@at <RFC 3339>\""
            ));
        };
        if words.next().is_some() {
            return Err(format!("{name} takes nothing after it"));
        }
        *cron
    } else {
        text
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let Some(layout) = layout(fields.len()) else {
        return Err(format!(
            "has {} fields; expected 5 (minute hour day-of-month month day-of-week), \
             6 (with a leading second) or 7 (with a leading second and a trailing year)",
            fields.len()
        ));
    };
    for (field, value) in layout.iter().zip(&fields) {
        check_field(field, value)?;
    }
    // cronie's flags, from the first character of each field as written (`entry.c`: MIN_STAR, HR_STAR,
    // DOM_STAR, DOW_STAR); `?` is this syntax's star for the day fields.
    let starts_with_star = |kinds: &[FieldKind]| {
        layout
            .iter()
            .zip(&fields)
            .any(|(field, value)| kinds.contains(&field.kind) && value.starts_with(['*', '?']))
    };
    let both_days = starts_with_star(&[FieldKind::DayOfMonth, FieldKind::DayOfWeek]);
    let follows_real_time =
        starts_with_star(&[FieldKind::Second, FieldKind::Minute, FieldKind::Hour]);
    let crons = union_of_items(layout, &fields)
        .iter()
        .map(|text| {
            parser(both_days)
                .parse(text)
                .map_err(|whole| blame_field(layout, &fields).unwrap_or_else(|| tidy(&whole)))
        })
        .collect::<Result<Box<[Cron]>, String>>()?;
    if let [cron] = &*crons {
        check_possible(cron)?;
    }
    Ok(CronExpr {
        crons,
        follows_real_time,
    })
}

/// The expression as texts whose union it is, each one croner reads as written: `fields` joined, or, when the
/// day-of-month list holds both `L` and `LW`, one text with the list without `LW` and one with `LW` alone.
fn union_of_items(layout: &[Field], fields: &[&str]) -> Vec<String> {
    let dom = layout
        .iter()
        .position(|field| field.kind == FieldKind::DayOfMonth);
    let with_dom = |value: &str| {
        let mut fields = fields.to_vec();
        if let Some(i) = dom {
            fields[i] = value;
        }
        fields.join(" ")
    };
    let Some(items) = dom.and_then(|i| fields.get(i)).map(|v| v.split(',')) else {
        return vec![fields.join(" ")];
    };
    let (last_weekday, rest): (Vec<&str>, Vec<&str>) =
        items.partition(|item| item.eq_ignore_ascii_case("LW"));
    if last_weekday.is_empty() || !rest.iter().any(|item| item.eq_ignore_ascii_case("L")) {
        return vec![fields.join(" ")];
    }
    vec![with_dom(&rest.join(",")), with_dom("LW")]
}

/// Catches the common mistakes before croner sees them, so the error names the field and the allowed values:
/// characters that do not belong, names in the wrong field, numbers out of range.
fn check_field(field: &Field, value: &str) -> Result<(), String> {
    let name = field.name;
    let is_dom = field.kind == FieldKind::DayOfMonth;
    let is_dow = field.kind == FieldKind::DayOfWeek;
    for c in value.chars() {
        let allowed = c.is_ascii_alphanumeric()
            || matches!(c, '*' | '/' | ',' | '-')
            || (c == '#' && is_dow)
            || (c == '?' && (is_dom || is_dow));
        if !allowed {
            let hint = match c {
                '#' => "; # (nth weekday) is only allowed in the day-of-week field",
                '?' => "; ? is only allowed in the day-of-month and day-of-week fields",
                _ => "",
            };
            return Err(format!(
                "{name} field {value:?}: character {c:?} is not allowed{hint}"
            ));
        }
    }
    if value.split(',').any(str::is_empty) {
        return Err(format!("{name} field {value:?}: a list has an empty item"));
    }
    for (start, word) in runs(value, |c| c.is_ascii_alphabetic()) {
        let upper = word.to_ascii_uppercase();
        let upper = upper.as_str();
        let after_digit = value[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_digit());
        if is_dow && upper == "L" && !after_digit {
            return Err(format!(
                "{name} field {value:?}: L needs a weekday before it, like 5L (the last Friday of the month)"
            ));
        }
        let ok = match field.kind {
            FieldKind::Month => MONTHS.contains(&upper),
            FieldKind::DayOfWeek => WEEKDAYS.contains(&upper) || upper == "L",
            FieldKind::DayOfMonth => matches!(upper, "L" | "W" | "LW"),
            _ => false,
        };
        if ok {
            continue;
        }
        let reason = if WEEKDAYS.contains(&upper) {
            format!("weekday name {word:?} is only allowed in the day-of-week field")
        } else if MONTHS.contains(&upper) {
            format!("month name {word:?} is only allowed in the month field")
        } else {
            let expected = match field.kind {
                FieldKind::Month => "a month number 1-12 or name JAN-DEC",
                FieldKind::DayOfWeek => {
                    "a weekday number 0-7 (0 and 7 are Sunday), a name SUN-SAT or L"
                }
                FieldKind::DayOfMonth => "a day number 1-31, L (last day) or W (nearest weekday)",
                _ => "a number",
            };
            format!("{word:?} is not {expected}")
        };
        return Err(format!("{name} field {value:?}: {reason}"));
    }
    for (start, digits) in runs(value, |c| c.is_ascii_digit()) {
        let number = digits.parse::<u32>().ok();
        match value[..start].chars().next_back() {
            Some('/') => {
                if number == Some(0) {
                    return Err(format!("{name} field {value:?}: a step must be at least 1"));
                }
            }
            Some('#') => {
                if !matches!(number, Some(1..=5)) {
                    return Err(format!(
                        "{name} field {value:?}: #{digits} is out of range #1..=#5 (the nth weekday of the month)"
                    ));
                }
            }
            _ => {
                if !number.is_some_and(|n| (field.min..=field.max).contains(&n)) {
                    let note = if is_dow { " (0 and 7 are Sunday)" } else { "" };
                    return Err(format!(
                        "{name} {digits} is out of range {}..={}{note}",
                        field.min, field.max
                    ));
                }
            }
        }
    }
    if value.contains('?') && value != "?" {
        return Err(format!(
            "{name} field {value:?}: ? stands alone, for any day"
        ));
    }
    for item in value.split(',') {
        check_modifiers(field, value, item)?;
        let range = item.split('/').next().unwrap_or_default();
        if let Some((low, high)) = range.split_once('-')
            && let (Ok(low), Ok(high)) = (low.parse::<u32>(), high.parse::<u32>())
            && low > high
        {
            return Err(format!(
                "{name} field {value:?}: range {range} runs backwards; to wrap around write {low}-{},{}-{high}",
                field.max, field.min
            ));
        }
    }
    Ok(())
}

/// `L`, `W` and `#` only in the shapes cron gives them a meaning: croner ignores what follows them
/// (it took `1W9` for `1W` and `MON#4L` for something).
fn check_modifiers(field: &Field, value: &str, item: &str) -> Result<(), String> {
    let name = field.name;
    let upper = item.to_ascii_uppercase();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let weekday = |s: &str| digits(s) || WEEKDAYS.contains(&s);
    let expected = match field.kind {
        FieldKind::DayOfMonth if upper.contains(['L', 'W']) => {
            let ok = upper == "L" || upper == "LW" || upper.strip_suffix('W').is_some_and(digits);
            (!ok).then_some(
                "L (the last day), LW (the last weekday) or a day and W (15W: the weekday nearest the 15th)",
            )
        }
        FieldKind::DayOfWeek if upper.contains('#') => {
            let ok = upper
                .split_once('#')
                .is_some_and(|(day, nth)| weekday(day) && digits(nth));
            (!ok).then_some("a weekday and #n, like 5#3 or FRI#3 (the third Friday)")
        }
        FieldKind::DayOfWeek if upper.contains('L') => {
            (!upper.strip_suffix('L').is_some_and(digits))
                .then_some("a weekday and L, like 5L (the last Friday)")
        }
        _ => None,
    };
    match expected {
        Some(expected) => Err(format!(
            "{name} field {value:?}: {item:?} is not {expected}"
        )),
        None => Ok(()),
    }
}

/// Rejects a day of month that no month of the pattern has (`0 0 30 2 *`): such a job would never fire.
fn check_possible(cron: &Cron) -> Result<(), String> {
    const LONGEST: [u16; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let pattern = &cron.pattern;
    // A day-of-week that does not start with `*` beside a day-of-month that does not either matches on its
    // own (cronie's "either"); otherwise a day must be in the day-of-month list whatever the weekday. L and W
    // always find a day.
    let day_of_month_required = pattern.is_dow_wildcard() || pattern.matches_dom_and_dow();
    if !day_of_month_required || pattern.days.has_modifiers() {
        return Ok(());
    }
    let Some(&first_day) = pattern.days.values().first() else {
        return Ok(());
    };
    let months = pattern.months.values();
    let longest = |m: &u16| LONGEST.get(usize::from(*m).wrapping_sub(1)).copied();
    if months
        .iter()
        .all(|m| longest(m).is_some_and(|days| first_day > days))
    {
        let names: Vec<&str> = months
            .iter()
            .filter_map(|m| MONTHS.get(usize::from(*m).wrapping_sub(1)).copied())
            .collect();
        return Err(format!(
            "never fires: day-of-month {first_day} does not occur in {}",
            names.join(", ")
        ));
    }
    Ok(())
}

/// The maximal runs of characters that satisfy `keep`, with their byte offsets.
fn runs(text: &str, keep: impl Fn(char) -> bool) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (keep(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

/// croner's errors do not say which field is wrong: parse each field alone, among wildcards, to find it.
fn blame_field(layout: &[Field], fields: &[&str]) -> Option<String> {
    layout.iter().zip(fields).find_map(|(field, value)| {
        let mut alone = ["0", "*", "*", "*", "*", "*", "*"];
        alone[field.slot] = value;
        parser(false)
            .parse(&alone.join(" "))
            .err()
            .map(|e| format!("{} field {value:?}: {}", field.name, tidy(&e)))
    })
}

/// croner's message without its type prefix and trailing period.
fn tidy(error: &croner::errors::CronError) -> String {
    let text = error.to_string();
    let text = text
        .strip_prefix("Component error: ")
        .or_else(|| text.strip_prefix("Invalid pattern: "))
        .unwrap_or(&text);
    text.trim_end_matches('.').to_owned()
}

/// What a wall-clock time is in a zone: skipped by a spring-forward jump, or repeated by a fall-back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Odd {
    Gap,
    Repeated,
}

fn is_odd(tz: Tz, wall: NaiveDateTime, odd: Odd) -> bool {
    matches!(
        (zone::from_local(tz, &wall), odd),
        (LocalResult::None, Odd::Gap) | (LocalResult::Ambiguous(..), Odd::Repeated)
    )
}

/// From `wall`, which is `odd` in `tz`, the last wall-clock second in direction `dir` (+1 or -1) that still is.
/// Gaps and repeated ranges are contiguous and months apart, so a doubling probe and a bisection find the edge
/// in a few dozen zone lookups. `None` beyond [`MAX_DST_RUN_SECS`].
fn edge_of(tz: Tz, wall: NaiveDateTime, odd: Odd, dir: i64) -> Option<NaiveDateTime> {
    let at = |secs: i64| wall.checked_add_signed(TimeDelta::try_seconds(dir * secs)?);
    let (mut inside, mut outside) = (0_i64, 1_i64);
    while is_odd(tz, at(outside)?, odd) {
        inside = outside;
        outside *= 2;
        if outside > MAX_DST_RUN_SECS {
            return None;
        }
    }
    while outside - inside > 1 {
        let mid = inside + (outside - inside) / 2;
        if is_odd(tz, at(mid)?, odd) {
            inside = mid;
        } else {
            outside = mid;
        }
    }
    at(inside)
}

/// The wall-clock second right after the gap or repeated range that contains `wall`.
fn after_run(tz: Tz, wall: NaiveDateTime, odd: Odd) -> Option<NaiveDateTime> {
    edge_of(tz, wall, odd, 1)?.checked_add_signed(TimeDelta::seconds(1))
}

/// Which passes of a repeated wall-clock range a job fires on.
#[derive(Clone, Copy)]
struct Passes {
    first: bool,
    second: bool,
}

impl CronExpr {
    /// The first instant strictly after `after_ms` at which the expression fires, read in `tz`.
    ///
    /// Every wall-clock time the expression matches fires at the instant(s) it names, except around DST:
    /// - in a spring-forward gap, a fixed-time job fires once at the first instant after the jump
    ///   (`DstPolicy::SkipGap`: not at all); a real-time job does not fire (those minutes do not exist);
    /// - in a repeated range, a fixed-time job fires on the pass(es) its `DstRepeat` names (the first by
    ///   default); a real-time job on both passes.
    pub(super) fn next_after(&self, after_ms: i64, tz: Tz, dst: DstHandling) -> Option<i64> {
        let after = zone::to_local(tz, after_ms)?;
        // Cron has second resolution: searching from the whole wall-clock second that contains `after_ms`,
        // exclusive, yields matches whose instants are all later than `after_ms`.
        let wall_after = after.naive_local().with_nanosecond(0)?;
        let passes = if self.follows_real_time {
            Passes {
                first: true,
                second: true,
            }
        } else {
            Passes {
                first: dst.repeat != DstRepeat::Last,
                second: dst.repeat != DstRepeat::First,
            }
        };
        let ahead = self.first_in_wall_order(after_ms, wall_after, tz, dst.gap, passes);
        let second_pass = self.on_second_pass(after_ms, &after, wall_after, tz, passes);
        let next = match (ahead, second_pass) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        debug_assert!(next.is_none_or(|n| n > after_ms), "{next:?} <= {after_ms}");
        next
    }

    /// The first wall-clock time the expression matches after `from` (or at it, when `inclusive`).
    fn next_wall(&self, from: &NaiveDateTime, inclusive: bool) -> Option<NaiveDateTime> {
        self.crons
            .iter()
            .filter_map(|cron| cron.find_next_occurrence(from, inclusive).ok())
            .min()
    }

    /// The first fire of a wall-clock time after `wall_after`. Walking wall-clock times in order meets their
    /// instants in order too, but for the second pass of a repeated range, which [`Self::on_second_pass`] covers
    /// while `after_ms` is still on the first one.
    fn first_in_wall_order(
        &self,
        after_ms: i64,
        wall_after: NaiveDateTime,
        tz: Tz,
        gap: DstPolicy,
        passes: Passes,
    ) -> Option<i64> {
        let mut from = wall_after;
        let mut inclusive = false;
        for _ in 0..MAX_SKIPS {
            let wall = self.next_wall(&from, inclusive)?;
            match zone::from_local(tz, &wall) {
                LocalResult::Single(at) => {
                    let at = at.timestamp_millis();
                    if at > after_ms {
                        return Some(at);
                    }
                    (from, inclusive) = (wall, false);
                }
                LocalResult::Ambiguous(earlier, later) => {
                    let earlier = earlier.timestamp_millis();
                    if passes.first && earlier > after_ms {
                        return Some(earlier);
                    }
                    let later = later.timestamp_millis();
                    if passes.second && later > after_ms {
                        return Some(later);
                    }
                    // The job fires no more times of this range after `after_ms`: it is on the second pass
                    // (or past the times of the second pass) already, or the job skips the pass it is on.
                    if passes.second {
                        // Matches later in this range have later second passes: keep walking them.
                        (from, inclusive) = (wall, false);
                    } else {
                        (from, inclusive) = (after_run(tz, wall, Odd::Repeated)?, true);
                    }
                }
                LocalResult::None => {
                    let end = after_run(tz, wall, Odd::Gap)?;
                    if !self.follows_real_time && gap == DstPolicy::Cronie {
                        let jump = zone::from_local(tz, &end).earliest()?.timestamp_millis();
                        if jump > after_ms {
                            return Some(jump);
                        }
                    }
                    (from, inclusive) = (end, true);
                }
            }
        }
        None
    }

    /// While `after` is on the first pass of a repeated range, a real-time job's first match in that range
    /// fires again on the second pass, possibly before any match after `wall_after`.
    fn on_second_pass(
        &self,
        after_ms: i64,
        after: &DateTime<FixedOffset>,
        wall_after: NaiveDateTime,
        tz: Tz,
        passes: Passes,
    ) -> Option<i64> {
        if !passes.second {
            return None;
        }
        let LocalResult::Ambiguous(earlier, _) = zone::from_local(tz, &wall_after) else {
            return None;
        };
        if after.offset() != earlier.offset() {
            return None;
        }
        let start = edge_of(tz, wall_after, Odd::Repeated, -1)?;
        let wall = self.next_wall(&start, true)?;
        match zone::from_local(tz, &wall) {
            LocalResult::Ambiguous(_, later) => {
                Some(later.timestamp_millis()).filter(|&at| at > after_ms)
            }
            _ => None,
        }
    }
}
