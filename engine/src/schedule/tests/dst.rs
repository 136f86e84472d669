//! DST: cronie's behaviour around the 2026 transitions, as exact instants.
//!
//! London: spring forward 2026-03-29 01:00 UTC (01:00 GMT becomes 02:00 BST), fall back 2026-10-25 01:00 UTC
//! (02:00 BST becomes 01:00 GMT). New York: spring forward 2026-03-08 07:00 UTC (02:00 EST becomes 03:00 EDT),
//! fall back 2026-11-01 06:00 UTC (02:00 EDT becomes 01:00 EST).
//! A fixed time in the gap runs once right after the jump; a fixed time in the repeated hour runs once, on the
//! first pass; `*` in the second, minute or hour field follows real time: every real instant once, none twice.

use super::*;
use crate::job::DstHandling;

const LONDON: Tz = chrono_tz::Europe::London;
const NEW_YORK: Tz = chrono_tz::America::New_York;

fn cronie(expr: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
    instants(expr, tz, DstPolicy::Cronie, from, n)
}

fn skip_gap(expr: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
    instants(expr, tz, DstPolicy::SkipGap, from, n)
}

#[test]
fn london_spring_forward() {
    // 01:30 does not exist on 2026-03-29: it runs once at 02:00 BST, right after the jump.
    assert_eq!(
        cronie("30 1 * * *", LONDON, "2026-03-27T12:00:00Z", 4),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z"
        ]
    );
    assert_eq!(
        cronie("*/30 * * * *", LONDON, "2026-03-29T00:15:00Z", 5),
        [
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-29T02:00:00Z",
            "2026-03-29T02:30:00Z"
        ]
    );
    assert_eq!(
        cronie("0 * * * *", LONDON, "2026-03-28T23:30:00Z", 4),
        [
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z",
            "2026-03-29T03:00:00Z"
        ]
    );
}

#[test]
fn london_fall_back() {
    // 01:30 happens twice on 2026-10-25 (00:30 and 01:30 UTC): it runs on the first.
    assert_eq!(
        cronie("30 1 * * *", LONDON, "2026-10-23T12:00:00Z", 4),
        [
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z"
        ]
    );
    assert_eq!(
        cronie("*/30 * * * *", LONDON, "2026-10-24T23:45:00Z", 6),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T02:30:00Z"
        ]
    );
    assert_eq!(
        cronie("0 * * * *", LONDON, "2026-10-24T22:30:00Z", 5),
        [
            "2026-10-24T23:00:00Z",
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T03:00:00Z"
        ]
    );
}

#[test]
fn new_york_spring_forward() {
    // 01:30 is before the gap: unaffected.
    assert_eq!(
        cronie("30 1 * * *", NEW_YORK, "2026-03-06T12:00:00Z", 3),
        [
            "2026-03-07T06:30:00Z",
            "2026-03-08T06:30:00Z",
            "2026-03-09T05:30:00Z"
        ]
    );
    // 02:30 is in the gap: it runs once at 03:00 EDT.
    assert_eq!(
        cronie("30 2 * * *", NEW_YORK, "2026-03-06T12:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z"
        ]
    );
    assert_eq!(
        cronie("*/30 * * * *", NEW_YORK, "2026-03-08T06:15:00Z", 4),
        [
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-08T08:00:00Z"
        ]
    );
    assert_eq!(
        cronie("0 * * * *", NEW_YORK, "2026-03-08T05:30:00Z", 3),
        [
            "2026-03-08T06:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T08:00:00Z"
        ]
    );
}

#[test]
fn new_york_fall_back() {
    // 01:30 happens twice on 2026-11-01 (05:30 EDT and 06:30 EST in UTC): it runs on the first.
    assert_eq!(
        cronie("30 1 * * *", NEW_YORK, "2026-10-30T12:00:00Z", 3),
        [
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z"
        ]
    );
    // 02:30 happens once (EST).
    assert_eq!(
        cronie("30 2 * * *", NEW_YORK, "2026-10-30T12:00:00Z", 3),
        [
            "2026-10-31T06:30:00Z",
            "2026-11-01T07:30:00Z",
            "2026-11-02T07:30:00Z"
        ]
    );
    assert_eq!(
        cronie("*/30 * * * *", NEW_YORK, "2026-11-01T04:45:00Z", 6),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T07:30:00Z"
        ]
    );
    assert_eq!(
        cronie("0 * * * *", NEW_YORK, "2026-11-01T04:30:00Z", 4),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T08:00:00Z"
        ]
    );
}

/// A node that restarts inside the repeated hour searches from there: a fixed time that ran on the first pass
/// does not run again, and a real-time job still runs the second pass.
#[test]
fn searches_that_start_inside_the_repeated_hour() {
    let daily = |from| cronie("30 1 * * *", NEW_YORK, from, 1);
    assert_eq!(daily("2026-11-01T05:10:00Z"), ["2026-11-01T05:30:00Z"]); // 01:10 EDT
    assert_eq!(daily("2026-11-01T05:40:00Z"), ["2026-11-02T06:30:00Z"]); // 01:40 EDT
    assert_eq!(daily("2026-11-01T06:10:00Z"), ["2026-11-02T06:30:00Z"]); // 01:10 EST
    assert_eq!(daily("2026-11-01T06:40:00Z"), ["2026-11-02T06:30:00Z"]); // 01:40 EST
    let half_hourly = |from| cronie("*/30 * * * *", NEW_YORK, from, 2);
    assert_eq!(
        half_hourly("2026-11-01T05:40:00Z"),
        ["2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z"]
    );
    assert_eq!(
        half_hourly("2026-11-01T05:59:59.999Z"),
        ["2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z"]
    );
    assert_eq!(
        half_hourly("2026-11-01T06:10:00Z"),
        ["2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"]
    );
    // At :45 of every hour, from 01:50 EDT: 01:45 EST comes before 02:45 EST.
    assert_eq!(
        cronie("45 * * * *", NEW_YORK, "2026-11-01T05:50:00Z", 2),
        ["2026-11-01T06:45:00Z", "2026-11-01T07:45:00Z"]
    );
    assert_eq!(
        cronie("* * * * * *", NEW_YORK, "2026-11-01T05:59:58Z", 3),
        [
            "2026-11-01T05:59:59Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:00:01Z"
        ]
    );
    assert_eq!(
        cronie("* * * * * *", NEW_YORK, "2026-03-08T06:59:58Z", 3),
        [
            "2026-03-08T06:59:59Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:00:01Z"
        ]
    );
}

/// Over 48 hours around each transition, `*` schedules fire at every real period, none skipped, none twice.
#[test]
fn wildcards_follow_real_time_across_every_transition() {
    let transitions = [
        (LONDON, "2026-03-28T01:00:00Z"),
        (LONDON, "2026-10-24T01:00:00Z"),
        (NEW_YORK, "2026-03-07T07:00:00Z"),
        (NEW_YORK, "2026-10-31T06:00:00Z"),
    ];
    for (tz, from) in transitions {
        for (expr, period_min) in [
            ("*/30 * * * *", 30),
            ("0 * * * *", 60),
            ("*/5 * * * *", 5),
            ("@hourly", 60),
        ] {
            let period = period_min * 60_000;
            let n = (48 * 60 / period_min) as usize;
            let fires = Schedule::parse(expr)
                .unwrap()
                .preview(ms(from), n, tz, DstPolicy::Cronie);
            assert_eq!(fires.len(), n);
            for pair in fires.windows(2) {
                assert_eq!(
                    pair[1] - pair[0],
                    period,
                    "{expr} in {tz} after {}",
                    rfc(pair[0])
                );
            }
        }
    }
}

/// postmortem: croner 4.0.3 treats lists and ranges in the time fields as interval jobs, so they ran twice in
/// the repeated hour and not at all in the gap. cronie treats them as fixed times. See the `cron` module.
#[test]
fn lists_and_ranges_are_fixed_times_like_cronie() {
    assert_eq!(
        cronie("0 1,13 * * *", LONDON, "2026-10-24T12:30:00Z", 4),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T13:00:00Z",
            "2026-10-26T01:00:00Z",
            "2026-10-26T13:00:00Z"
        ]
    );
    assert_eq!(
        cronie("30 1,13 * * *", LONDON, "2026-03-28T20:00:00Z", 3),
        [
            "2026-03-29T01:00:00Z",
            "2026-03-29T12:30:00Z",
            "2026-03-30T00:30:00Z"
        ]
    );
    assert_eq!(
        cronie("0 1-3 * * *", NEW_YORK, "2026-11-01T00:00:00Z", 4),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T08:00:00Z",
            "2026-11-02T06:00:00Z"
        ]
    );
    assert_eq!(
        cronie("30 2,14 * * *", NEW_YORK, "2026-03-08T00:00:00Z", 3),
        [
            "2026-03-08T07:00:00Z",
            "2026-03-08T18:30:00Z",
            "2026-03-09T06:30:00Z"
        ]
    );
    assert_eq!(
        cronie("0,30 1 * * *", NEW_YORK, "2026-11-01T04:00:00Z", 3),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:00:00Z"
        ]
    );
}

#[test]
fn several_times_in_one_gap_fire_once() {
    assert_eq!(
        cronie("0,30 2 * * *", NEW_YORK, "2026-03-08T00:00:00Z", 3),
        [
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:00:00Z",
            "2026-03-09T06:30:00Z"
        ]
    );
    // 02:00 and 02:30 do not exist and 03:00 EDT is the instant of the jump: one run for the three.
    assert_eq!(
        cronie("0,30 2,3 * * *", NEW_YORK, "2026-03-08T00:00:00Z", 3),
        [
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-09T06:00:00Z"
        ]
    );
}

#[test]
fn skip_gap_drops_fixed_times_in_the_gap_only() {
    assert_eq!(
        skip_gap("30 2 * * *", NEW_YORK, "2026-03-06T12:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z"
        ]
    );
    assert_eq!(
        skip_gap("30 1 * * *", LONDON, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z"
        ]
    );
    // 03:00 EDT exists: it is not dropped with the times of the gap.
    assert_eq!(
        skip_gap("0,30 2,3 * * *", NEW_YORK, "2026-03-08T00:00:00Z", 3),
        [
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-09T06:00:00Z"
        ]
    );
    // The repeated hour and real-time jobs behave as under the default policy.
    for (expr, tz, from, n) in [
        ("30 1 * * *", LONDON, "2026-10-23T12:00:00Z", 4),
        ("30 1 * * *", NEW_YORK, "2026-10-30T12:00:00Z", 3),
        ("*/30 * * * *", NEW_YORK, "2026-03-08T06:15:00Z", 4),
        ("*/30 * * * *", LONDON, "2026-10-24T23:45:00Z", 6),
    ] {
        assert_eq!(
            skip_gap(expr, tz, from, n),
            cronie(expr, tz, from, n),
            "{expr}"
        );
    }
}

#[test]
fn half_hour_shift_on_lord_howe() {
    // 2026-10-04 02:00 (+10:30) becomes 02:30 (+11:00); 02:15 runs at the jump.
    let lord_howe: Tz = chrono_tz::Australia::Lord_Howe;
    assert_eq!(
        cronie("15 2 * * *", lord_howe, "2026-10-02T00:00:00Z", 3),
        [
            "2026-10-02T15:45:00Z",
            "2026-10-03T15:30:00Z",
            "2026-10-04T15:15:00Z"
        ]
    );
    let fires = Schedule::parse("*/30 * * * *").unwrap().preview(
        ms("2026-10-03T12:00:00Z"),
        12,
        lord_howe,
        DstPolicy::Cronie,
    );
    for pair in fires.windows(2) {
        assert_eq!(pair[1] - pair[0], 30 * 60_000, "after {}", rfc(pair[0]));
    }
}

#[test]
fn a_skipped_day_in_samoa() {
    // Pacific/Apia skipped 2011-12-30 entirely (-10:00 to +14:00 at midnight).
    let apia: Tz = chrono_tz::Pacific::Apia;
    assert_eq!(
        cronie("0 12 * * *", apia, "2011-12-29T00:00:00Z", 3),
        [
            "2011-12-29T22:00:00Z",
            "2011-12-30T10:00:00Z",
            "2011-12-30T22:00:00Z"
        ]
    );
    assert_eq!(
        skip_gap("0 12 * * *", apia, "2011-12-29T00:00:00Z", 2),
        ["2011-12-29T22:00:00Z", "2011-12-30T22:00:00Z"]
    );
    let fires = Schedule::parse("0 * * * *").unwrap().preview(
        ms("2011-12-30T00:00:00Z"),
        24,
        apia,
        DstPolicy::Cronie,
    );
    for pair in fires.windows(2) {
        assert_eq!(pair[1] - pair[0], 3_600_000, "after {}", rfc(pair[0]));
    }
}

/// postmortem: croner marks a field "from a wildcard" when any item of it is a `*` step, so `5,*/20 1 * * *`
/// followed real time (nothing in the spring gap, both passes of the autumn hour). cronie classifies a job by
/// the first character of its minute and hour fields only: this one is a fixed-time job.
#[test]
fn a_time_field_that_does_not_start_with_a_star_is_a_fixed_time_like_cronie() {
    // Spring: 01:00, 01:05, 01:20 and 01:40 do not exist; one run right after the jump.
    assert_eq!(
        cronie("5,*/20 1 * * *", LONDON, "2026-03-28T23:00:00Z", 5),
        [
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:00:00Z",
            "2026-03-30T00:05:00Z",
            "2026-03-30T00:20:00Z",
            "2026-03-30T00:40:00Z"
        ]
    );
    // Autumn: the first pass only.
    assert_eq!(
        cronie("5,*/20 1 * * *", LONDON, "2026-10-24T23:30:00Z", 5),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:05:00Z",
            "2026-10-25T00:20:00Z",
            "2026-10-25T00:40:00Z",
            "2026-10-26T01:00:00Z"
        ]
    );
    // A star first in the hour field makes it a wildcard job, whatever the minute field says.
    assert_eq!(
        cronie("30 */1 * * *", LONDON, "2026-10-25T00:00:00Z", 3),
        [
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T02:30:00Z"
        ]
    );
}

/// postmortem: chrono-tz's tables end with 2099 (chronotope/chrono-tz#155): after the last transition a zone
/// keeps its last offset for ever, so `0 12 1 7 *` in London fired at 12:00 GMT, 13:00 BST, in July 2100. Past
/// 2099 the zone's ongoing rule is applied: each year is read as the year of 2072..=2099 with the same
/// calendar (leap or not, same weekday on January 1st).
#[test]
fn years_past_2099_follow_the_zones_ongoing_rule() {
    assert_eq!(
        cronie("0 12 1 7 *", LONDON, "2100-06-01T00:00:00Z", 2),
        ["2100-07-01T11:00:00Z", "2101-07-01T11:00:00Z"]
    );
    assert_eq!(
        cronie(
            "0 12 1 1,7 *",
            chrono_tz::Australia::Sydney,
            "2100-06-01T00:00:00Z",
            2
        ),
        ["2100-07-01T02:00:00Z", "2101-01-01T01:00:00Z"]
    );
    // London's spring jump in 2100 is on Sunday 28 March, the fall back on Sunday 31 October.
    assert_eq!(
        cronie("30 1 * * *", LONDON, "2100-03-27T12:00:00Z", 2),
        ["2100-03-28T01:00:00Z", "2100-03-29T00:30:00Z"]
    );
    assert_eq!(
        cronie("30 1 * * *", LONDON, "2100-10-30T12:00:00Z", 2),
        ["2100-10-31T00:30:00Z", "2100-11-01T01:30:00Z"]
    );
    // New York, far out: the repeated hour of Sunday 4 November 2412, first pass.
    assert_eq!(
        cronie("30 1 * * *", NEW_YORK, "2412-11-03T12:00:00Z", 2),
        ["2412-11-04T05:30:00Z", "2412-11-05T06:30:00Z"]
    );
}

fn repeat(expr: &str, tz: Tz, repeat: DstRepeat, from: &str, n: usize) -> Vec<String> {
    let dst = DstHandling {
        gap: DstPolicy::Cronie,
        repeat,
    };
    instants(expr, tz, dst, from, n)
}

/// `dst_repeat`: which pass of the repeated autumn hour a fixed time runs on. London repeats 01:00-01:59 on
/// 2026-10-25 (00:00-00:59 UTC in BST, then 01:00-01:59 UTC in GMT).
#[test]
fn dst_repeat_chooses_the_pass_of_a_repeated_fixed_time() {
    let daily = "30 1 * * *";
    let from = "2026-10-24T12:00:00Z";
    assert_eq!(
        repeat(daily, LONDON, DstRepeat::First, from, 3),
        [
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z"
        ]
    );
    assert_eq!(
        repeat(daily, LONDON, DstRepeat::Last, from, 3),
        [
            "2026-10-25T01:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z"
        ]
    );
    assert_eq!(
        repeat(daily, LONDON, DstRepeat::Both, from, 3),
        [
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-26T01:30:00Z"
        ]
    );
    // Several times in the range, searched from inside its first pass: with `last`, every one on the second
    // pass, the earliest first.
    assert_eq!(
        repeat(
            "0,30 1 * * *",
            LONDON,
            DstRepeat::Last,
            "2026-10-25T00:10:00Z",
            3
        ),
        [
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-26T01:00:00Z"
        ]
    );
    assert_eq!(
        repeat(
            "0,30 1 * * *",
            LONDON,
            DstRepeat::Both,
            "2026-10-25T00:10:00Z",
            4
        ),
        [
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-26T01:00:00Z"
        ]
    );
    // New York repeats 01:00-01:59 on 2026-11-01 (05:00-05:59 UTC in EDT, then 06:00-06:59 UTC in EST).
    assert_eq!(
        repeat(
            "30 1 * * *",
            NEW_YORK,
            DstRepeat::Last,
            "2026-10-31T12:00:00Z",
            2
        ),
        ["2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"]
    );
    // The spring gap is `dst`'s business: every choice runs 01:30 once at the jump.
    for choice in [DstRepeat::First, DstRepeat::Last, DstRepeat::Both] {
        assert_eq!(
            repeat(daily, LONDON, choice, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
            "{choice:?}"
        );
    }
    // Wildcard jobs follow real time whatever the choice: every real instant once.
    for choice in [DstRepeat::First, DstRepeat::Last, DstRepeat::Both] {
        assert_eq!(
            repeat("*/30 * * * *", LONDON, choice, "2026-10-24T23:45:00Z", 6),
            cronie("*/30 * * * *", LONDON, "2026-10-24T23:45:00Z", 6),
            "{choice:?}"
        );
    }
}
