//! Unit tests of schedules: forms, errors, interning. DST and properties are in `tests/`.

mod dst;
mod props;

use chrono::{SecondsFormat, Utc};

use super::*;
use crate::job::{DstPolicy, DstRepeat};

const UTC: Tz = chrono_tz::UTC;

fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// An instant as an RFC 3339 UTC string, so that failing assertions read as times.
fn rfc(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
        .replace(".000Z", "Z")
}

/// The first `n` instants of `expr` in `tz` strictly after `from`, as RFC 3339 UTC strings.
fn instants(expr: &str, tz: Tz, dst: impl Into<DstHandling>, from: &str, n: usize) -> Vec<String> {
    Schedule::parse(expr)
        .unwrap()
        .preview(ms(from), n, tz, dst)
        .into_iter()
        .map(rfc)
        .collect()
}

/// [`instants`] in UTC with the default DST policy.
fn utc(expr: &str, from: &str, n: usize) -> Vec<String> {
    instants(expr, UTC, DstPolicy::Cronie, from, n)
}

/// The error for `source`, after checking that it names the field `schedule` and quotes the value.
fn rejection(source: &str) -> String {
    let err = Schedule::parse(source).expect_err(source);
    assert_eq!(err.field, "schedule", "{err}");
    if source.len() <= 200 {
        assert_eq!(err.value, source, "{err}");
    }
    err.to_string()
}

#[test]
fn five_field_cron_fires_on_the_minute() {
    assert_eq!(
        utc("*/15 * * * *", "2026-11-21T10:07:30Z", 2),
        ["2026-11-21T10:15:00Z", "2026-11-21T10:30:00Z"]
    );
}

#[test]
fn six_fields_lead_with_seconds() {
    assert_eq!(
        utc("30 */15 * * * *", "2026-11-21T10:07:30Z", 2),
        ["2026-11-21T10:15:30Z", "2026-11-21T10:30:30Z"]
    );
    assert_eq!(
        utc("*/20 * * * * *", "2026-11-21T10:07:30.500Z", 3),
        [
            "2026-11-21T10:07:40Z",
            "2026-11-21T10:08:00Z",
            "2026-11-21T10:08:20Z"
        ]
    );
}

#[test]
fn seven_fields_end_with_a_year() {
    let s = Schedule::parse("0 0 12 1 1 * 2028").unwrap();
    let first = s.next_after(ms("2026-11-21T00:00:00Z"), UTC, DstPolicy::Cronie);
    assert_eq!(first.map(rfc).as_deref(), Some("2028-01-01T12:00:00Z"));
    assert_eq!(s.next_after(first.unwrap(), UTC, DstPolicy::Cronie), None);
    assert_eq!(
        utc("0 0 12 1 1 * 2027-2029/2", "2026-11-21T00:00:00Z", 3),
        ["2027-01-01T12:00:00Z", "2029-01-01T12:00:00Z"]
    );
}

#[test]
fn l_is_the_last_day_of_the_month() {
    assert_eq!(
        utc("0 0 L * *", "2026-01-15T00:00:00Z", 3),
        [
            "2026-01-31T00:00:00Z",
            "2026-02-28T00:00:00Z",
            "2026-03-31T00:00:00Z"
        ]
    );
    assert_eq!(
        utc("0 0 L 2 *", "2027-03-01T00:00:00Z", 1),
        ["2028-02-29T00:00:00Z"]
    );
    // In the day-of-week field, `5L` is the last Friday.
    assert_eq!(
        utc("0 0 * * 5L", "2026-11-01T00:00:00Z", 2),
        ["2026-11-27T00:00:00Z", "2026-12-25T00:00:00Z"]
    );
}

#[test]
fn w_is_the_nearest_weekday_within_the_month() {
    // 2026-08-15 is a Saturday: the Friday before. 2026-11-15 is a Sunday: the Monday after.
    assert_eq!(
        utc("0 9 15W * *", "2026-08-01T00:00:00Z", 4),
        [
            "2026-08-14T09:00:00Z",
            "2026-09-15T09:00:00Z",
            "2026-10-15T09:00:00Z",
            "2026-11-16T09:00:00Z"
        ]
    );
    // 2026-08-01 is a Saturday: W does not leave the month, so Monday the 3rd.
    assert_eq!(
        utc("0 9 1W * *", "2026-07-15T00:00:00Z", 1),
        ["2026-08-03T09:00:00Z"]
    );
    // LW: the last weekday of the month (2026-10-31 is a Saturday).
    assert_eq!(
        utc("0 9 LW * *", "2026-10-01T00:00:00Z", 1),
        ["2026-10-30T09:00:00Z"]
    );
}

/// postmortem: croner reads `LW` as a flag of the whole day-of-month field, which turned off a plain `L` in
/// the same list: `L,LW` fired only on the last weekday. A list is a union of its items.
#[test]
fn l_and_lw_in_one_list_fire_on_both_days() {
    // 2026-10-31 is a Saturday: the last weekday is Friday the 30th. In November and December the last day is
    // a weekday: one fire.
    assert_eq!(
        utc("0 0 L,LW * *", "2026-10-01T00:00:00Z", 4),
        [
            "2026-10-30T00:00:00Z",
            "2026-10-31T00:00:00Z",
            "2026-11-30T00:00:00Z",
            "2026-12-31T00:00:00Z"
        ]
    );
    assert_eq!(
        utc("0 0 LW,L * *", "2026-10-01T00:00:00Z", 4),
        utc("0 0 L,LW * *", "2026-10-01T00:00:00Z", 4)
    );
    // With other items too, and with a restricted day of week (either field is enough).
    assert_eq!(
        utc("0 0 1,L,LW * 3", "2026-09-30T12:00:00Z", 6),
        [
            "2026-10-01T00:00:00Z",
            "2026-10-07T00:00:00Z",
            "2026-10-14T00:00:00Z",
            "2026-10-21T00:00:00Z",
            "2026-10-28T00:00:00Z",
            "2026-10-30T00:00:00Z"
        ]
    );
    assert_eq!(
        utc("0 0 1,L,LW * 3", "2026-10-29T00:00:00Z", 3),
        [
            "2026-10-30T00:00:00Z",
            "2026-10-31T00:00:00Z",
            "2026-11-01T00:00:00Z"
        ]
    );
}

#[test]
fn hash_is_the_nth_weekday_of_the_month() {
    assert_eq!(
        utc("0 9 * * 1#2", "2026-11-01T00:00:00Z", 2),
        ["2026-11-09T09:00:00Z", "2026-12-14T09:00:00Z"]
    );
    assert_eq!(
        utc("0 9 * * FRI#3", "2026-11-01T00:00:00Z", 1),
        ["2026-11-20T09:00:00Z"]
    );
}

#[test]
fn question_mark_is_a_wildcard_for_days() {
    assert_eq!(
        utc("0 9 ? * MON", "2026-11-21T00:00:00Z", 2),
        utc("0 9 * * MON", "2026-11-21T00:00:00Z", 2)
    );
    assert_eq!(
        utc("0 9 1 * ?", "2026-11-21T00:00:00Z", 1),
        ["2026-12-01T09:00:00Z"]
    );
}

#[test]
fn names_are_case_insensitive() {
    let expected = ["2027-01-01T09:00:00Z", "2027-01-04T09:00:00Z"];
    assert_eq!(
        utc("0 9 * JAN,JUL MON-FRI", "2026-11-21T00:00:00Z", 2),
        expected
    );
    assert_eq!(
        utc("0 9 * jan,jul mon-fri", "2026-11-21T00:00:00Z", 2),
        expected
    );
    assert_eq!(
        utc("0 9 * Jan,Jul Mon-Fri", "2026-11-21T00:00:00Z", 2),
        expected
    );
}

#[test]
fn macros() {
    // 2026-11-21 is a Saturday.
    let from = "2026-11-21T10:07:30Z";
    for (expr, next) in [
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@annually", "2027-01-01T00:00:00Z"),
        ("@monthly", "2026-12-01T00:00:00Z"),
        ("@weekly", "2026-11-22T00:00:00Z"),
        ("@daily", "2026-11-22T00:00:00Z"),
        ("@midnight", "2026-11-22T00:00:00Z"),
        ("@hourly", "2026-11-21T11:00:00Z"),
        ("@DAILY", "2026-11-22T00:00:00Z"),
        ("  @Hourly  ", "2026-11-21T11:00:00Z"),
    ] {
        assert_eq!(utc(expr, from, 1), [next], "{expr}");
    }
}

#[test]
fn weekdays_are_numbered_like_cronie() {
    let from = "2026-11-21T10:00:00Z";
    let sunday = ["2026-11-22T00:00:00Z"];
    assert_eq!(utc("0 0 * * 0", from, 1), sunday);
    assert_eq!(utc("0 0 * * 7", from, 1), sunday);
    assert_eq!(utc("0 0 * * SUN", from, 1), sunday);
    assert_eq!(
        utc("0 0 * * 5-7", "2026-11-19T10:00:00Z", 3),
        [
            "2026-11-20T00:00:00Z",
            "2026-11-21T00:00:00Z",
            "2026-11-22T00:00:00Z"
        ]
    );
    assert_eq!(
        utc("0 0 * * 1", from, 1),
        ["2026-11-23T00:00:00Z"],
        "1 is Monday"
    );
}

#[test]
fn day_of_month_or_day_of_week_like_cronie() {
    // Both restricted: either is enough (Fridays, and the 13th).
    assert_eq!(
        utc("0 0 13 * 5", "2026-11-01T00:00:00Z", 6),
        [
            "2026-11-06T00:00:00Z",
            "2026-11-13T00:00:00Z",
            "2026-11-20T00:00:00Z",
            "2026-11-27T00:00:00Z",
            "2026-12-04T00:00:00Z",
            "2026-12-11T00:00:00Z"
        ]
    );
}

/// postmortem: croner counted a day field as unrestricted only when it was exactly `*`, so `0 0 */2 * 1`
/// fired on every odd day and every Monday. cronie (and Vixie cron) decide by the field's first character:
/// when either day field starts with `*`, a day must match both; only when neither does is either enough.
#[test]
fn a_day_field_that_starts_with_a_star_makes_both_required_like_cronie() {
    // Odd days that are Mondays (2026-11-09, 11-23, 12-07, 12-21).
    assert_eq!(
        utc("0 0 */2 * 1", "2026-11-01T00:00:00Z", 4),
        [
            "2026-11-09T00:00:00Z",
            "2026-11-23T00:00:00Z",
            "2026-12-07T00:00:00Z",
            "2026-12-21T00:00:00Z"
        ]
    );
    // The same from the other side: the 13th, when it is a Sunday, Tuesday, Thursday or Saturday.
    assert_eq!(
        utc("0 0 13 * */2", "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-13T00:00:00Z",
            "2026-06-13T00:00:00Z",
            "2026-08-13T00:00:00Z"
        ]
    );
    // Both required, and no month of the pattern has the day: refused, as with a day-of-week `*`.
    assert!(
        rejection("0 0 30 2 */2").contains("never fires: day-of-month 30 does not occur in FEB"),
        "{}",
        rejection("0 0 30 2 */2")
    );
    // `?` is a star too.
    assert_eq!(
        utc("0 0 ? * 1", "2026-11-01T00:00:00Z", 2),
        ["2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z"]
    );
    // Neither starts with `*`: either is enough, even when one lists every day.
    assert_eq!(
        utc("0 0 1-31 * 1", "2026-10-31T12:00:00Z", 3),
        [
            "2026-11-01T00:00:00Z",
            "2026-11-02T00:00:00Z",
            "2026-11-03T00:00:00Z"
        ]
    );
    assert_eq!(
        utc("0 0 1-10/2 * 0-6/3", "2026-10-31T12:00:00Z", 5),
        [
            "2026-11-01T00:00:00Z",
            "2026-11-03T00:00:00Z",
            "2026-11-04T00:00:00Z",
            "2026-11-05T00:00:00Z",
            "2026-11-07T00:00:00Z"
        ]
    );
}

/// A step in the year field counts from year 1, the field's lowest value: `*/4` is 2025, 2029, 2033, not the
/// leap years.
#[test]
fn year_steps_count_from_year_one() {
    assert_eq!(
        utc("0 0 0 1 1 * */4", "2026-06-01T00:00:00Z", 2),
        ["2029-01-01T00:00:00Z", "2033-01-01T00:00:00Z"]
    );
    assert_eq!(
        utc("0 0 0 1 1 * 2028-2099/4", "2026-06-01T00:00:00Z", 2),
        ["2028-01-01T00:00:00Z", "2032-01-01T00:00:00Z"]
    );
}

#[test]
fn cron_is_read_in_the_time_zone() {
    let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
    assert_eq!(
        instants(
            "0 9 * * *",
            tokyo,
            DstPolicy::Cronie,
            "2026-11-21T00:00:00Z",
            2
        ),
        ["2026-11-22T00:00:00Z", "2026-11-23T00:00:00Z"]
    );
}

#[test]
fn every_without_anchor_counts_from_the_epoch() {
    assert_eq!(
        utc("@every 30s", "2026-11-21T10:00:00Z", 2),
        ["2026-11-21T10:00:30Z", "2026-11-21T10:01:00Z"]
    );
    let s = Schedule::parse("@every 7m").unwrap();
    for at in s.preview(ms("2026-11-21T10:00:00Z"), 5, UTC, DstPolicy::Cronie) {
        assert_eq!(at % (7 * 60_000), 0, "{}", rfc(at));
    }
    assert_eq!(
        utc("@every 1h 30m", "2026-11-21T10:00:00Z", 1),
        ["2026-11-21T10:30:00Z"]
    );
    assert_eq!(
        utc("@every 1h30m", "2026-11-21T10:00:00Z", 1),
        ["2026-11-21T10:30:00Z"]
    );
}

#[test]
fn every_with_anchor_is_anchor_plus_multiples() {
    let expr = "@every 90m from 2026-11-21T10:00:00Z";
    let anchor = ms("2026-11-21T10:00:00Z");
    // Before the anchor, the first instant is the anchor.
    assert_eq!(
        utc(expr, "2026-01-01T00:00:00Z", 3),
        [
            "2026-11-21T10:00:00Z",
            "2026-11-21T11:30:00Z",
            "2026-11-21T13:00:00Z"
        ]
    );
    // At the anchor, and between two instants: the next multiple.
    assert_eq!(
        utc(expr, "2026-11-21T10:00:00Z", 1),
        ["2026-11-21T11:30:00Z"]
    );
    assert_eq!(
        utc(expr, "2026-11-22T00:00:00.001Z", 1),
        ["2026-11-22T01:00:00Z"]
    );
    let s = Schedule::parse(expr).unwrap();
    for at in s.preview(ms("2027-03-01T12:34:56Z"), 20, UTC, DstPolicy::Cronie) {
        assert_eq!((at - anchor) % (90 * 60_000), 0, "{}", rfc(at));
    }
    // The anchor may carry an offset; it is an instant, not a wall-clock time.
    assert_eq!(
        utc(
            "@every 1d from 2026-11-21T10:00:00+01:00",
            "2026-11-21T00:00:00Z",
            2
        ),
        ["2026-11-21T09:00:00Z", "2026-11-22T09:00:00Z"]
    );
}

#[test]
fn every_keywords_are_case_insensitive_and_any_whitespace_separates() {
    let expected = ["2026-11-21T10:00:00Z", "2026-11-21T11:00:00Z"];
    for expr in [
        "@every 1h from 2026-11-21T10:00:00Z",
        "@EVERY 1H FROM 2026-11-21T10:00:00Z",
        "@Every 1h From 2026-11-21T10:00:00Z",
        "@every\t1h\tfrom\t2026-11-21T10:00:00Z",
        "@every   1h   from   2026-11-21T10:00:00Z",
    ] {
        assert_eq!(utc(expr, "2026-11-20T00:00:00Z", 2), expected, "{expr:?}");
    }
}

#[test]
fn every_is_not_moved_by_dst() {
    let london: Tz = "Europe/London".parse().unwrap();
    assert_eq!(
        instants(
            "@every 1h",
            london,
            DstPolicy::Cronie,
            "2026-03-29T00:30:00Z",
            3
        ),
        [
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z",
            "2026-03-29T03:00:00Z"
        ]
    );
}

#[test]
fn at_fires_once() {
    let at = Schedule::parse("@at 2026-11-21T12:00:00Z").unwrap();
    assert!(at.is_one_shot());
    assert!(!Schedule::parse("@hourly").unwrap().is_one_shot());
    assert_eq!(
        at.preview(ms("2020-01-01T00:00:00Z"), 5, UTC, DstPolicy::Cronie),
        [ms("2026-11-21T12:00:00Z")]
    );
    assert_eq!(
        at.next_after(ms("2026-11-21T11:59:59.999Z"), UTC, DstPolicy::Cronie),
        Some(ms("2026-11-21T12:00:00Z"))
    );
    assert_eq!(
        at.next_after(ms("2026-11-21T12:00:00Z"), UTC, DstPolicy::Cronie),
        None
    );
    assert_eq!(
        utc("@AT 2026-11-21T13:00:00+01:00", "2026-01-01T00:00:00Z", 2),
        ["2026-11-21T12:00:00Z"]
    );
}

#[test]
fn impossible_and_exhausted_schedules_end_with_none() {
    // A year in the past: parses (it is a valid expression) but has no more instants.
    let s = Schedule::parse("0 0 0 1 1 * 2020").unwrap();
    assert_eq!(
        s.next_after(ms("2026-01-01T00:00:00Z"), UTC, DstPolicy::Cronie),
        None
    );
    // Out of chrono's range: no instant, no panic.
    assert_eq!(
        Schedule::parse("* * * * *")
            .unwrap()
            .next_after(i64::MAX, UTC, DstPolicy::Cronie),
        None
    );
    assert_eq!(
        Schedule::parse("@every 1s from 2026-01-01T00:00:00Z")
            .unwrap()
            .next_after(i64::MAX - 500, UTC, DstPolicy::Cronie),
        None
    );
    // Without an anchor the epoch is the anchor, and before the anchor the first instant is the anchor.
    assert_eq!(
        Schedule::parse("@every 1s")
            .unwrap()
            .next_after(i64::MIN, UTC, DstPolicy::Cronie),
        Some(0)
    );
}

#[test]
fn out_of_range_fields_are_named_with_their_range() {
    for (source, reason) in [
        ("61 * * * *", "minute 61 is out of range 0..=59"),
        ("* 24 * * *", "hour 24 is out of range 0..=23"),
        ("0 0 32 * *", "day-of-month 32 is out of range 1..=31"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1..=31"),
        ("0 0 * 13 *", "month 13 is out of range 1..=12"),
        (
            "0 0 * * 8",
            "day-of-week 8 is out of range 0..=7 (0 and 7 are Sunday)",
        ),
        ("60 0 0 * * *", "second 60 is out of range 0..=59"),
        ("0 0 0 1 1 * 6000", "year 6000 is out of range 1..=5000"),
        ("0-60 * * * *", "minute 60 is out of range 0..=59"),
        ("0 1,2,99 * * *", "hour 99 is out of range 0..=23"),
        (
            "99999999999999999999 * * * *",
            "minute 99999999999999999999 is out of range 0..=59",
        ),
    ] {
        assert_eq!(
            rejection(source),
            format!("schedule: {source:?}: {reason}"),
            "{source}"
        );
    }
}

#[test]
fn field_count_errors_say_what_is_expected() {
    for source in ["* * * *", "* * * * * * * *", "0"] {
        let err = rejection(source);
        let n = source.split_whitespace().count();
        assert!(
            err.contains(&format!("has {n} fields; expected 5 (minute hour day-of-month month day-of-week), 6 (with a leading second) or 7")),
            "{err}"
        );
    }
}

#[test]
fn common_mistakes_get_specific_errors() {
    for (source, reason) in [
        (
            "0 MON * * *",
            "hour field \"MON\": weekday name \"MON\" is only allowed in the day-of-week field",
        ),
        (
            "0 0 * * JAN",
            "day-of-week field \"JAN\": month name \"JAN\" is only allowed in the month field",
        ),
        (
            "0 0 * FOO *",
            "month field \"FOO\": \"FOO\" is not a month number 1-12 or name JAN-DEC",
        ),
        (
            "0 0 * * FUNDAY",
            "day-of-week field \"FUNDAY\": \"FUNDAY\" is not a weekday number 0-7 (0 and 7 are Sunday), a name SUN-SAT or L",
        ),
        (
            "*/0 * * * *",
            "minute field \"*/0\": a step must be at least 1",
        ),
        (
            "0 0 * * MON#6",
            "day-of-week field \"MON#6\": #6 is out of range #1..=#5 (the nth weekday of the month)",
        ),
        (
            "0 0 1#2 * *",
            "day-of-month field \"1#2\": character '#' is not allowed; # (nth weekday) is only allowed in the day-of-week field",
        ),
        (
            "? * * * *",
            "minute field \"?\": character '?' is not allowed; ? is only allowed in the day-of-month and day-of-week fields",
        ),
        (
            "1,,2 * * * *",
            "minute field \"1,,2\": a list has an empty item",
        ),
        (
            "0 22-2 * * *",
            "hour field \"22-2\": range 22-2 runs backwards; to wrap around write 22-23,0-2",
        ),
        (
            "0 0 * * L",
            "day-of-week field \"L\": L needs a weekday before it, like 5L (the last Friday of the month)",
        ),
        (
            "0 0 30 2 *",
            "never fires: day-of-month 30 does not occur in FEB",
        ),
        (
            "0 0 31 4,6 *",
            "never fires: day-of-month 31 does not occur in APR, JUN",
        ),
        ("-5 * * * *", "minute field \"-5\": Invalid start of range"),
        (
            "0 0 W * *",
            "day-of-month field \"W\": \"W\" is not L (the last day), LW (the last weekday) or a day and W (15W: the weekday nearest the 15th)",
        ),
        (
            "0 9 1W9 * *",
            "day-of-month field \"1W9\": \"1W9\" is not L (the last day), LW (the last weekday) or a day and W (15W: the weekday nearest the 15th)",
        ),
        (
            "0 0 L-2 * *",
            "day-of-month field \"L-2\": \"L-2\" is not L (the last day), LW (the last weekday) or a day and W (15W: the weekday nearest the 15th)",
        ),
        (
            "0 9 * * MON#4L",
            "day-of-week field \"MON#4L\": \"MON#4L\" is not a weekday and #n, like 5#3 or FRI#3 (the third Friday)",
        ),
        (
            "0 9 * * 1,5L5",
            "day-of-week field \"1,5L5\": \"5L5\" is not a weekday and L, like 5L (the last Friday)",
        ),
        (
            "0 1 L * ?/2",
            "day-of-week field \"?/2\": ? stands alone, for any day",
        ),
        (
            "0 0 5-? * *",
            "day-of-month field \"5-?\": ? stands alone, for any day",
        ),
        (
            "@reboot",
            "unknown macro \"@reboot\"; expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, \"@every <duration> [from <RFC 3339>]\" or \"@at <RFC 3339>\"",
        ),
        ("@daily 5", "@daily takes nothing after it"),
    ] {
        assert_eq!(
            rejection(source),
            format!("schedule: {source:?}: {reason}"),
            "{source}"
        );
    }
    // Possible dates are not rejected: February 29 exists in leap years, and a restricted day-of-week
    // matches on its own (Mondays in February).
    assert_eq!(
        utc("0 0 29 2 *", "2026-01-01T00:00:00Z", 1),
        ["2028-02-29T00:00:00Z"]
    );
    assert_eq!(
        utc("0 0 30 2 MON", "2026-11-21T00:00:00Z", 1),
        ["2027-02-01T00:00:00Z"]
    );
    assert!(rejection("@everyday").contains("unknown macro \"@everyday\""));
}

#[test]
fn every_and_at_errors_quote_what_was_written() {
    for (source, reason) in [
        (
            "@every 0s",
            "interval \"0s\" is shorter than 1s, the shortest accepted",
        ),
        (
            "@every 500ms",
            "interval \"500ms\" is shorter than 1s, the shortest accepted",
        ),
        (
            "@every 400d",
            "interval \"400d\" is longer than 366 days; use cron for long periods",
        ),
        (
            "@every 1s 1ns",
            "interval \"1s 1ns\" is not a whole number of milliseconds",
        ),
        (
            "@every",
            "@every needs an interval, like \"@every 30s\" or \"@every 1h from 2026-01-01T00:00:00Z\"",
        ),
        (
            "@every from 2026-01-01T00:00:00Z",
            "@every needs an interval, like \"@every 30s\" or \"@every 1h from 2026-01-01T00:00:00Z\"",
        ),
        (
            "@EVERY 1H FROM",
            "\"from\" needs an RFC 3339 instant after it, like \"from 2026-01-01T00:00:00Z\"",
        ),
        (
            "@at",
            "@at needs an RFC 3339 instant, like \"@at 2026-11-21T12:00:00Z\"",
        ),
    ] {
        assert_eq!(
            rejection(source),
            format!("schedule: {source:?}: {reason}"),
            "{source}"
        );
    }
    for (source, quoted) in [
        (
            "@every soon",
            "interval \"soon\" is not a duration like 30s or 1h 30m: ",
        ),
        (
            "@EVERY 1X",
            "interval \"1X\" is not a duration like 30s or 1h 30m: ",
        ),
        (
            "@Every 1h From 2026-11-21T25:00:00Z",
            "\"2026-11-21T25:00:00Z\" is not an RFC 3339 instant like 2026-11-21T12:00:00Z: ",
        ),
        (
            "@every 1h from yesterday",
            "\"yesterday\" is not an RFC 3339 instant",
        ),
        ("@at tomorrow", "\"tomorrow\" is not an RFC 3339 instant"),
        (
            "@AT 2026-13-01T00:00:00Z",
            "\"2026-13-01T00:00:00Z\" is not an RFC 3339 instant",
        ),
        (
            "@at 2026-11-21",
            "\"2026-11-21\" is not an RFC 3339 instant",
        ),
    ] {
        let err = rejection(source);
        assert!(err.contains(quoted), "{source}: {err}");
    }
}

#[test]
fn empty_long_and_garbage_inputs_are_rejected_without_panic() {
    assert!(rejection("").contains("is empty; expected cron like"));
    assert!(rejection(" \t\n ").contains("is empty"));
    let long = "* ".repeat(200);
    let err = Schedule::parse(&long).unwrap_err();
    assert_eq!(err.field, "schedule");
    assert_eq!(err.reason, "is 399 bytes long; at most 256 are accepted");
    assert!(err.value.ends_with('…') && err.value.chars().count() == 201);
    assert!(rejection("hello world").contains("has 2 fields"));
    assert!(rejection("every day at noon please").contains("minute field \"every\""));
    assert!(rejection("* * * * * * ; rm -rf /").contains("has 10 fields; expected 5"));
    assert!(rejection("0 0 * * * * 2026 ;").contains("has 8 fields"));
}

#[test]
fn non_ascii_input_is_rejected_without_panic() {
    for (source, reason) in [
        (
            "é * * * *",
            "minute field \"é\": character 'é' is not allowed",
        ),
        (
            "０ * * * *",
            "minute field \"０\": character '０' is not allowed",
        ),
        (
            "0 0 * * ＭＯＮ",
            "day-of-week field \"ＭＯＮ\": character 'Ｍ' is not allowed",
        ),
        ("@еvery 1h", "unknown macro \"@еvery\""),
        (
            "@every 1ч",
            "interval \"1ч\" is not a duration like 30s or 1h 30m: ",
        ),
        ("@EVERY 1Ω FROM 2026-01-01T00:00:00Z", "interval \"1Ω\""),
        (
            "@every 1h from 2026-01-01T00:00:00Z🙂",
            "\"2026-01-01T00:00:00Z🙂\" is not an RFC 3339 instant",
        ),
        (
            "@EVERY 1H FRÖM 2026-01-01T00:00:00Z",
            "interval \"1H FRÖM 2026-01-01T00:00:00Z\" is not a duration",
        ),
        (
            "@at ２０２６-01-01T00:00:00Z",
            "\"２０２６-01-01T00:00:00Z\" is not an RFC 3339 instant",
        ),
        ("İ", "has 1 fields"),
    ] {
        let err = rejection(source);
        assert!(err.contains(reason), "{source}: {err}");
    }
    // Multi-byte characters at the 256-byte limit and in the truncated value.
    let long = "ü".repeat(200);
    let err = Schedule::parse(&long).unwrap_err();
    assert_eq!(err.reason, "is 400 bytes long; at most 256 are accepted");
    assert_eq!(err.value.chars().count(), 101);
}

#[test]
fn json_errors_name_the_field_and_value() {
    let err = serde_json::from_str::<Schedule>(r#""61 * * * *""#).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("schedule: \"61 * * * *\": minute 61 is out of range 0..=59"),
        "{err}"
    );
    let s: Schedule = serde_json::from_str(r#"" @every 1h ""#).unwrap();
    assert_eq!(s.as_str(), "@every 1h");
    assert_eq!(serde_json::to_string(&s).unwrap(), r#""@every 1h""#);
}

#[test]
fn display_parse_round_trip() {
    for source in [
        "*/15 * * * *",
        "  0 9 * * MON-FRI ",
        "@daily",
        "@every 90m from 2026-11-21T10:00:00Z",
        "@at 2026-11-21T12:00:00Z",
        "0 0 12 1 1 * 2028",
    ] {
        let s = Schedule::parse(source).unwrap();
        assert_eq!(s.to_string(), source.trim());
        let again: Schedule = s.as_str().parse().unwrap();
        assert_eq!(again, s);
        assert_eq!(
            again.preview(ms("2026-11-21T00:00:00Z"), 3, UTC, DstPolicy::Cronie),
            s.preview(ms("2026-11-21T00:00:00Z"), 3, UTC, DstPolicy::Cronie)
        );
    }
}

#[test]
fn same_expression_shares_one_parse() {
    let a = Schedule::parse("0 3 * * MON").unwrap();
    let b = Schedule::parse("0 3 * * MON").unwrap();
    assert!(a.shares_parsed_with(&b));
    let c = Schedule::parse("0 4 * * MON").unwrap();
    assert!(!a.shares_parsed_with(&c));
    let every = Schedule::parse("@every 1h").unwrap();
    assert!(!every.shares_parsed_with(&every.clone()));
}
