//! The jobs each measurement creates, the same for every system under test.

use campanile::Schedule;
use chrono::{DateTime, SecondsFormat, Utc};

/// Distinct expressions of the typical jobs (`load`): hourly, at minutes 0, 5, …, 55.
pub const TYPICAL_EXPRESSIONS: usize = 12;

/// What the jobs of a measurement look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Hourly cron at one of 12 minutes (parsed schedules are shared).
    Typical,
    /// `@every 10s from <anchor + i·100 µs>` (whole ms, so 10 jobs per millisecond).
    Spread,
    /// `* * * * * *`: every job due at each whole second.
    Burst,
}

impl Workload {
    /// Campanile's schedule text of job `i`; `anchor_ms` is a whole 10 s (used by `Spread`).
    pub fn campanile_text(self, i: usize, anchor_ms: i64) -> String {
        match self {
            Workload::Typical => format!("{} * * * *", (i % TYPICAL_EXPRESSIONS) * 5),
            Workload::Spread => {
                let at = anchor_ms + (i as i64 * 100) / 1000;
                let at = DateTime::<Utc>::from_timestamp_millis(at).expect("a valid instant");
                format!(
                    "@every 10s from {}",
                    at.to_rfc3339_opts(SecondsFormat::Millis, true)
                )
            }
            Workload::Burst => "* * * * * *".to_owned(),
        }
    }

    /// tokio-cron-scheduler's text of job `i` (6 fields, seconds first); `None` where it has no equivalent.
    pub fn tcs_text(self, i: usize) -> Option<String> {
        match self {
            Workload::Typical => Some(format!("0 {} * * * *", (i % TYPICAL_EXPRESSIONS) * 5)),
            Workload::Spread => None,
            Workload::Burst => Some("* * * * * *".to_owned()),
        }
    }

    /// Parsed schedules of `jobs` jobs; repeated texts share one parsed value.
    pub fn schedules(self, jobs: usize, anchor_ms: i64) -> Vec<Schedule> {
        let distinct: Vec<Schedule> = match self {
            Workload::Typical => (0..TYPICAL_EXPRESSIONS)
                .map(|i| Schedule::parse(&self.campanile_text(i, anchor_ms)).expect("valid"))
                .collect(),
            Workload::Burst => {
                vec![Schedule::parse(&self.campanile_text(0, anchor_ms)).expect("valid")]
            }
            Workload::Spread => Vec::new(),
        };
        (0..jobs)
            .map(|i| match self {
                Workload::Spread => {
                    Schedule::parse(&self.campanile_text(i, anchor_ms)).expect("valid")
                }
                _ => distinct[i % distinct.len()].clone(),
            })
            .collect()
    }
}

/// Instants of `schedules` in `[from_ms, to_ms)`, all jobs together.
pub fn expected(schedules: &[Schedule], from_ms: i64, to_ms: i64) -> u64 {
    let mut n = 0;
    for schedule in schedules {
        let mut cursor = from_ms - 1;
        while let Some(t) = schedule.next_after(
            cursor,
            chrono_tz::UTC,
            campanile::job::DstHandling::default(),
        ) {
            if t >= to_ms {
                break;
            }
            n += 1;
            cursor = t;
        }
    }
    n
}

/// A whole 10 s at or before `now_ms`: the spread workload's anchor.
pub fn anchor(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(10_000)
}

/// The measurement window: from the first whole second at least `lead_ms` after `now_ms`, `seconds` long.
pub fn window(now_ms: i64, lead_ms: i64, seconds: u64) -> (i64, i64) {
    let from = (now_ms + lead_ms).div_euclid(1000) * 1000 + 1000;
    (from, from + seconds as i64 * 1000)
}
