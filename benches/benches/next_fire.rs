//! Criterion benchmark of next-fire computation (`Schedule::next_after`) and of parsing a repeated
//! expression (which hits the intern table: jobs with the same text share one parsed schedule).
//!
//! Each `next_after` benchmark iterates forward from the previous result, as the timer does after each fire,
//! so DST transitions and month/weekday rollovers are crossed at their natural rate.
//!
//! The peer, measured in the same run: `croner` 4 (which Campanile parses and matches with) asked directly for
//! the next occurrence in the zone, without Campanile's cronie DST handling (`peer_croner/*`).

use std::hint::black_box;

use campanile::Schedule;
use campanile::job::DstPolicy;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use criterion::{Criterion, criterion_group, criterion_main};
use croner::parser::{CronParser, Seconds, Year};

/// 2026-09-21T14:13:20Z.
const T0: i64 = 1_790_000_000_000;
/// Iteration restarts from `T0` past this (ten years on), so sparse schedules never run off the calendar.
const HORIZON: i64 = T0 + 10 * 366 * 86_400_000;

/// The cron cases, with the zone each is read in.
const CRON_CASES: [(&str, &str, Tz); 3] = [
    ("every_second_utc", "* * * * * *", chrono_tz::UTC),
    ("daily_0130_london", "30 1 * * *", chrono_tz::Europe::London),
    (
        "every_5min_weekdays_new_york",
        "0 */5 * * * MON-FRI",
        chrono_tz::America::New_York,
    ),
];

fn croner_parser() -> CronParser {
    // As Campanile configures it: optional seconds and year.
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Optional)
        .build()
}

fn next_after(c: &mut Criterion) {
    let mut group = c.benchmark_group("next_after");
    let cases = CRON_CASES
        .into_iter()
        .chain([("every_30s", "@every 30s", chrono_tz::UTC)]);
    for (name, text, tz) in cases {
        let schedule = Schedule::parse(text).expect("valid schedule");
        let mut cursor = T0;
        group.bench_function(name, |b| {
            b.iter(|| {
                let next = schedule
                    .next_after(black_box(cursor), tz, DstPolicy::Cronie)
                    .expect("the schedule has a next instant");
                cursor = if next > HORIZON { T0 } else { next };
                next
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("peer_croner");
    for (name, text, tz) in CRON_CASES {
        let cron = croner_parser().parse(text).expect("valid cron");
        let start = DateTime::<Utc>::from_timestamp_millis(T0)
            .expect("valid instant")
            .with_timezone(&tz);
        let mut cursor = start;
        group.bench_function(name, |b| {
            b.iter(|| {
                let next = cron
                    .find_next_occurrence(black_box(&cursor), false)
                    .expect("the pattern has a next occurrence");
                cursor = if next.timestamp_millis() > HORIZON {
                    start
                } else {
                    next
                };
                next
            })
        });
    }
    group.bench_function("parse_uncached", |b| {
        b.iter(|| croner_parser().parse(black_box("0 15 10 ? * MON-FRI")))
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    // Keep one parsed copy alive, as a loaded node does, so every parse below is an intern-table hit.
    let _held = Schedule::parse("0 */5 * * * MON-FRI").expect("valid schedule");
    group.bench_function("cron_interned_hit", |b| {
        b.iter(|| Schedule::parse(black_box("0 */5 * * * MON-FRI")))
    });
    // Nobody holds this text, so each parse misses the table (its `Weak` is dead) and parses afresh.
    group.bench_function("cron_uncached", |b| {
        b.iter(|| Schedule::parse(black_box("0 15 10 ? * MON-FRI")))
    });
    group.bench_function("every_30s", |b| {
        b.iter(|| Schedule::parse(black_box("@every 30s")))
    });
    group.finish();
}

criterion_group!(benches, next_after, parse);
criterion_main!(benches);
