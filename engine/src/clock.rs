//! The injected clock: the only place in the engine that reads the time.
//!
//! The engine reads wall time (Unix ms: scheduled instants are wall-clock instants) through [`Clock::now_ms`] and
//! waits through `tokio::time`. [`SystemClock`] derives wall time from `tokio::time::Instant`, anchored to the
//! system clock once at construction: under a paused tokio runtime (tests, the cluster simulation) wall time
//! then advances exactly with `tokio::time::advance`, and in production it is the real time.

use std::sync::Arc;
use std::time::Duration;

/// A source of wall time, in Unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// The current wall time, Unix ms.
    fn now_ms(&self) -> i64;

    /// The current wall time, Unix µs (lateness is measured in µs).
    fn now_us(&self) -> i64 {
        self.now_ms() * 1000
    }

    /// The tokio instant at which wall time reaches `at_ms` (now if it already has).
    fn deadline(&self, at_ms: i64) -> tokio::time::Instant {
        let wait_us = (at_ms * 1000 - self.now_us()).max(0);
        tokio::time::Instant::now() + Duration::from_micros(wait_us as u64)
    }

    /// Whether this clock is real time, so that the timer may wait on an OS thread (below tokio's 1 ms timer
    /// resolution). False for virtual clocks (paused tokio time), whose waits must go through `tokio::time`.
    fn is_real_time(&self) -> bool {
        false
    }
}

/// Wall time from a monotonic tokio instant plus a fixed offset, taken once from the system clock (or given).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    base: tokio::time::Instant,
    base_us: i64,
    real_time: bool,
}

impl SystemClock {
    /// Anchored to the system clock now.
    #[allow(clippy::disallowed_methods)] // The one place that reads the system clock.
    pub fn new() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            real_time: true,
            ..Self::starting_at_us(i64::try_from(now.as_micros()).unwrap_or(i64::MAX))
        }
    }

    /// Anchored so that now is `unix_ms`: a virtual clock for tests and simulations on paused tokio time
    /// (waits never spin).
    pub fn starting_at(unix_ms: i64) -> Self {
        Self::starting_at_us(unix_ms * 1000)
    }

    fn starting_at_us(base_us: i64) -> Self {
        Self {
            base: tokio::time::Instant::now(),
            base_us,
            real_time: false,
        }
    }

    /// As an `Arc<dyn Clock>`.
    pub fn shared(self) -> Arc<dyn Clock> {
        Arc::new(self)
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        self.now_us().div_euclid(1000)
    }

    fn now_us(&self) -> i64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.base);
        self.base_us + i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
    }

    fn is_real_time(&self) -> bool {
        self.real_time
    }

    fn deadline(&self, at_ms: i64) -> tokio::time::Instant {
        let at_us = at_ms.saturating_mul(1000);
        let offset = u64::try_from(at_us - self.base_us).unwrap_or(0);
        self.base + Duration::from_micros(offset)
    }
}
