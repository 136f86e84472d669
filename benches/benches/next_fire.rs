//! Criterion benchmark of next-fire computation (`Schedule::next_after`) and of parsing a repeated
//! expression (which hits the intern table: jobs with the same text share one parsed schedule).
//!
//! Each `next_after` benchmark iterates forward from the previous result, as the timer does after each fire,
//! so DST transitions and month/weekday rollovers are crossed at their natural rate.

use std::hint::black_box;

use campanile::Schedule;
use campanile::job::DstPolicy;
use chrono_tz::Tz;
use criterion::{Criterion, criterion_group, criterion_main};

/// 2026-09-21T14:13:20Z.
const T0: i64 = 1_790_000_000_000;
/// Iteration restarts from `T0` past this (ten years on), so sparse schedules never run off the calendar.
const HORIZON: i64 = T0 + 10 * 366 * 86_400_000;

fn next_after(c: &mut Criterion) {
    let mut group = c.benchmark_group("next_after");
    let cases: [(&str, &str, Tz); 4] = [
        ("every_second_utc", "* * * * * *", chrono_tz::UTC),
        ("daily_0130_london", "30 1 * * *", chrono_tz::Europe::London),
        (
            "every_5min_weekdays_new_york",
            "0 */5 * * * MON-FRI",
            chrono_tz::America::New_York,
        ),
        ("every_30s", "@every 30s", chrono_tz::UTC),
    ];
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
