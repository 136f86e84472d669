//! Property tests: iterated `next_after` moves strictly forward and never repeats an instant, and a search
//! started anywhere between two consecutive instants finds the second one (a node may restart at any moment).

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

/// Zones with DST in both hemispheres, half-hour and 45-minute offsets and shifts, and none.
const ZONES: [Tz; 10] = [
    chrono_tz::UTC,
    chrono_tz::Europe::London,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::America::Santiago,
    chrono_tz::Pacific::Chatham,
    chrono_tz::America::St_Johns,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Africa::Casablanca,
    chrono_tz::Europe::Berlin,
];

/// The 2026 transitions of London, New York and Lord Howe, where starts are drawn most often.
const TRANSITIONS: [&str; 6] = [
    "2026-03-29T01:00:00Z",
    "2026-10-25T01:00:00Z",
    "2026-03-08T07:00:00Z",
    "2026-11-01T06:00:00Z",
    "2026-04-04T15:00:00Z",
    "2026-10-03T15:30:00Z",
];

/// One cron field over `lo..=hi`: the forms that matter for DST are `*`, steps, single values, ranges and lists.
fn field(lo: u32, hi: u32) -> BoxedStrategy<String> {
    prop_oneof![
        Just("*".to_owned()),
        (1..=(hi - lo + 1)).prop_map(|n| format!("*/{n}")),
        (lo..=hi).prop_map(|v| v.to_string()),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{a},{b}")),
        (lo..=hi, lo..=hi, 1..=10_u32).prop_map(|(a, b, s)| format!(
            "{}-{}/{s}",
            a.min(b),
            a.max(b)
        )),
    ]
    .boxed()
}

fn second() -> BoxedStrategy<String> {
    prop_oneof![3 => Just("0".to_owned()), 1 => field(0, 59)].boxed()
}

/// Hours favour 0-3, where the transitions are.
fn hour() -> BoxedStrategy<String> {
    prop_oneof![field(0, 3), field(0, 23)].boxed()
}

fn day_of_month() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just("*".to_owned()),
        1 => Just("?".to_owned()),
        1 => Just("L".to_owned()),
        1 => Just("LW".to_owned()),
        1 => (1..=28_u32).prop_map(|d| format!("{d}W")),
        2 => field(1, 28),
    ]
    .boxed()
}

fn month() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just("*".to_owned()),
        1 => Just("MAR,OCT,NOV".to_owned()),
        1 => Just("jan-jun".to_owned()),
        2 => field(1, 12),
    ]
    .boxed()
}

fn day_of_week() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just("*".to_owned()),
        1 => Just("?".to_owned()),
        1 => Just("MON-FRI".to_owned()),
        1 => (0..=6_u32, 1..=5_u32).prop_map(|(d, n)| format!("{d}#{n}")),
        1 => (0..=6_u32).prop_map(|d| format!("{d}L")),
        2 => field(0, 7),
    ]
    .boxed()
}

/// Expressions from a small grammar: cron with 5, 6 or 7 fields, macros, `@every` and `@at`.
fn expression() -> impl Strategy<Value = String> {
    let five = (field(0, 59), hour(), day_of_month(), month(), day_of_week())
        .prop_map(|(mi, h, dom, mo, dow)| format!("{mi} {h} {dom} {mo} {dow}"));
    let six = (
        second(),
        field(0, 59),
        hour(),
        day_of_month(),
        month(),
        day_of_week(),
    )
        .prop_map(|(s, mi, h, dom, mo, dow)| format!("{s} {mi} {h} {dom} {mo} {dow}"));
    let seven = (
        second(),
        field(0, 59),
        hour(),
        day_of_month(),
        prop_oneof![Just("*"), Just("2026-2030"), Just("2026,2028")],
    )
        .prop_map(|(s, mi, h, dom, y)| format!("{s} {mi} {h} {dom} * * {y}"));
    let macros = prop::sample::select(vec![
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ])
    .prop_map(str::to_owned);
    let every =
        (1..=100_000_u32, prop::option::of(0..=40_000_000_u32)).prop_map(|(secs, anchor)| {
            match anchor {
                None => format!("@every {secs}s"),
                Some(minutes) => format!(
                    "@every {secs}s from {}",
                    rfc(i64::from(minutes) * 60_000 - 600_000_000_000)
                ),
            }
        });
    let at = (0..=600_000_u32).prop_map(|minutes| {
        format!(
            "@at {}",
            rfc(ms("2026-01-01T00:00:00Z") + i64::from(minutes) * 60_000)
        )
    });
    prop_oneof![4 => five, 2 => six, 1 => seven, 1 => macros, 1 => every, 1 => at]
}

/// A start instant in 2026, half of the time within three hours of a transition; now and then one in
/// 2099..2102, across the end of chrono-tz's tables.
fn start() -> impl Strategy<Value = i64> {
    let year = ms("2026-01-01T00:00:00Z")..ms("2027-01-01T00:00:00Z");
    let near = (
        prop::sample::select(TRANSITIONS.to_vec()),
        -3 * 3_600_000..3 * 3_600_000_i64,
    )
        .prop_map(|(at, delta)| ms(at) + delta);
    let far = ms("2099-01-01T00:00:00Z")..ms("2102-01-01T00:00:00Z");
    prop_oneof![4 => year, 4 => near, 1 => far]
}

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(ZONES.to_vec())
}

fn policy() -> impl Strategy<Value = DstHandling> {
    let gap = prop_oneof![Just(DstPolicy::Cronie), Just(DstPolicy::SkipGap)];
    let repeat = prop_oneof![
        Just(DstRepeat::First),
        Just(DstRepeat::Last),
        Just(DstRepeat::Both)
    ];
    (gap, repeat).prop_map(|(gap, repeat)| DstHandling { gap, repeat })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn next_after_is_strictly_increasing_and_consistent(
        expr in expression(),
        tz in zone(),
        dst in policy(),
        start in start(),
        cut in 0.0..1.0_f64,
    ) {
        let schedule = Schedule::parse(&expr);
        prop_assert!(schedule.is_ok(), "{expr}: {schedule:?}");
        let schedule = schedule.unwrap();
        let mut seen = HashSet::new();
        let mut previous = start;
        for _ in 0..50 {
            let Some(next) = schedule.next_after(previous, tz, dst) else {
                break;
            };
            prop_assert!(next > previous, "{expr} in {tz}: {} after {}", rfc(next), rfc(previous));
            prop_assert!(seen.insert(next), "{expr} in {tz}: {} twice", rfc(next));
            // Nothing fires between two consecutive instants, so a search from anywhere in between finds
            // the second one.
            for from in [next - 1, previous + ((next - previous - 1) as f64 * cut) as i64] {
                let again = schedule.next_after(from, tz, dst);
                prop_assert_eq!(
                    again, Some(next),
                    "{} in {}: from {} expected {}", expr, tz, rfc(from), rfc(next)
                );
            }
            previous = next;
        }
    }
}
