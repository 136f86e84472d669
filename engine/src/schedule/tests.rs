//! Unit tests of schedules: forms, errors, interning, DST.

use super::*;

const UTC: Tz = chrono_tz::UTC;

fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

#[test]
fn five_field_cron_fires_on_the_minute() {
    let s = Schedule::parse("*/15 * * * *").unwrap();
    let next = s
        .next_after(ms("2026-11-21T10:07:30Z"), UTC, DstPolicy::Cronie)
        .unwrap();
    assert_eq!(next, ms("2026-11-21T10:15:00Z"));
}

#[test]
fn every_and_at() {
    let every = Schedule::parse("@every 30s").unwrap();
    assert_eq!(
        every.next_after(ms("2026-11-21T10:00:00Z"), UTC, DstPolicy::Cronie),
        Some(ms("2026-11-21T10:00:30Z"))
    );
    let at = Schedule::parse("@at 2026-11-21T12:00:00Z").unwrap();
    assert!(at.is_one_shot());
    assert_eq!(
        at.next_after(ms("2026-11-21T10:00:00Z"), UTC, DstPolicy::Cronie),
        Some(ms("2026-11-21T12:00:00Z"))
    );
    assert_eq!(
        at.next_after(ms("2026-11-21T12:00:00Z"), UTC, DstPolicy::Cronie),
        None
    );
}

#[test]
fn same_expression_shares_one_parse() {
    let a = Schedule::parse("0 3 * * MON").unwrap();
    let b = Schedule::parse("0 3 * * MON").unwrap();
    assert!(a.shares_parsed_with(&b));
}
