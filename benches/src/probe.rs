//! A minimal `metrics` recorder for the harness: it keeps the few engine metrics the harness needs
//! (jobs the timer holds, fires handed to executors, misfires, skipped runs) in atomics and drops everything
//! else.
//!
//! The engine records through the `metrics` facade only, so installing this recorder is how the harness learns
//! that the timer (not only the membership actor) holds every job, without reaching into the actors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// The engine metrics the harness reads.
#[derive(Debug, Default)]
pub struct Probe {
    /// `campanile_jobs_owned`: jobs the timer holds (an `f64` gauge, stored as its bits).
    jobs_owned: Arc<AtomicU64>,
    /// `campanile_fires_total`.
    fires: Arc<AtomicU64>,
    /// `campanile_misfires_total`, all reasons.
    misfires: Arc<AtomicU64>,
    /// `campanile_runs_total{outcome="skipped"}`: instants not run because of the overlap policy.
    skipped: Arc<AtomicU64>,
}

impl Probe {
    /// Installs a probe as the process's global recorder and returns it; `None` if a recorder is already set.
    pub fn install() -> Option<&'static Probe> {
        let probe: &'static Probe = Box::leak(Box::default());
        metrics::set_global_recorder(probe).ok()?;
        Some(probe)
    }

    /// Jobs the timer holds, as it last reported.
    pub fn jobs_owned(&self) -> u64 {
        f64::from_bits(self.jobs_owned.load(Ordering::Relaxed)) as u64
    }

    /// Fires handed to executors so far.
    pub fn fires(&self) -> u64 {
        self.fires.load(Ordering::Relaxed)
    }

    /// Instants counted as misfired (late, owner gap, in doubt) so far.
    pub fn misfires(&self) -> u64 {
        self.misfires.load(Ordering::Relaxed)
    }

    /// Records of instants skipped by the overlap policy, stored so far.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

impl Recorder for Probe {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        // The facade registers on every macro call, so this is on the fire path: compare names only.
        match key.name() {
            campanile::metrics::FIRES => Counter::from_arc(self.fires.clone()),
            campanile::metrics::MISFIRES => Counter::from_arc(self.misfires.clone()),
            campanile::metrics::RUNS
                if key
                    .labels()
                    .any(|l| l.key() == "outcome" && l.value() == "skipped") =>
            {
                Counter::from_arc(self.skipped.clone())
            }
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match key.name() {
            campanile::metrics::JOBS_OWNED => Gauge::from_arc(self.jobs_owned.clone()),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}
