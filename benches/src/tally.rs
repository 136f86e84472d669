//! The lateness tally every scheduler under test reports into: lateness = start − scheduled instant, in µs,
//! for the fires whose scheduled instant lies in the measurement window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// Largest lateness recorded as is (one hour); later fires are recorded at this value.
const MAX_US: u64 = 3_600_000_000;

/// Lateness of fires in a window `[from_ms, to_ms)` of scheduled instants, shared by the handlers.
#[derive(Debug)]
pub struct Tally {
    from_ms: AtomicI64,
    to_ms: AtomicI64,
    /// Fires whose instant is outside the window (before it: warm-up; after it: cool-down).
    outside: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    lateness_us: Histogram<u64>,
    /// Fires that started before their instant (recorded as 0 µs late).
    early: u64,
    /// Fires and the largest lateness (µs) per scheduled instant.
    per_instant: HashMap<i64, (u64, u64)>,
}

/// What a tally saw.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Fires in the window.
    pub fires: u64,
    /// Fires that started before their instant.
    pub early: u64,
    /// Lateness percentiles and maximum, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// Fewest and most fires seen for one scheduled instant.
    pub per_instant: (u64, u64),
    /// Distinct scheduled instants seen.
    pub instants: usize,
    /// The three latest 100 ms spans of the window: `(span start − window start in ms, largest lateness in µs)`,
    /// latest first. Shows whether lateness is spread out or comes from a few stalls.
    pub worst_spans: Vec<(i64, u64)>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    /// A tally with no window yet: every fire counts as outside until [`Tally::set_window`].
    pub fn new() -> Self {
        Self {
            from_ms: AtomicI64::new(i64::MAX),
            to_ms: AtomicI64::new(i64::MIN),
            outside: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                lateness_us: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid bounds"),
                early: 0,
                per_instant: HashMap::new(),
            }),
        }
    }

    /// Counts fires scheduled in `[from_ms, to_ms)` from now on.
    pub fn set_window(&self, from_ms: i64, to_ms: i64) {
        self.to_ms.store(to_ms, Ordering::SeqCst);
        self.from_ms.store(from_ms, Ordering::SeqCst);
    }

    /// Records a fire of `scheduled_ms` that started at `started_us` (both Unix, from the same clock).
    pub fn record(&self, scheduled_ms: i64, started_us: i64) {
        if scheduled_ms < self.from_ms.load(Ordering::Relaxed)
            || scheduled_ms >= self.to_ms.load(Ordering::Relaxed)
        {
            self.outside.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let late = started_us - scheduled_ms * 1000;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if late < 0 {
            inner.early += 1;
        }
        let late = u64::try_from(late).unwrap_or(0).clamp(1, MAX_US);
        inner.lateness_us.saturating_record(late);
        let instant = inner.per_instant.entry(scheduled_ms).or_default();
        instant.0 += 1;
        instant.1 = instant.1.max(late);
    }

    /// Fires seen outside the window so far.
    pub fn outside(&self) -> u64 {
        self.outside.load(Ordering::Relaxed)
    }

    /// What was seen so far.
    pub fn summary(&self) -> Summary {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let h = &inner.lateness_us;
        let (lo, hi) = inner
            .per_instant
            .values()
            .fold((u64::MAX, 0), |(lo, hi), &(n, _)| (lo.min(n), hi.max(n)));
        let from = self.from_ms.load(Ordering::Relaxed);
        let mut spans: HashMap<i64, u64> = HashMap::new();
        for (&at, &(_, late)) in &inner.per_instant {
            let span = spans.entry((at - from).div_euclid(100) * 100).or_default();
            *span = (*span).max(late);
        }
        let mut worst_spans: Vec<(i64, u64)> = spans.into_iter().collect();
        worst_spans.sort_by_key(|&(at, late)| (std::cmp::Reverse(late), at));
        worst_spans.truncate(3);
        Summary {
            fires: h.len(),
            early: inner.early,
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            per_instant: if inner.per_instant.is_empty() {
                (0, 0)
            } else {
                (lo, hi)
            },
            instants: inner.per_instant.len(),
            worst_spans,
        }
    }
}
