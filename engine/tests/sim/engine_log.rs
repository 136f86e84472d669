//! The engine's own logs in the simulation's trace: a minimal `tracing` subscriber, installed on the run's
//! thread only when `CAMPANILE_SIM_LOG` names a level (`warn`, `info`, `debug`), that writes each event into
//! the trace with its virtual time, so a failure report shows what the nodes said beside what the driver did.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};

use campanile::clock::{Clock, SystemClock};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, span};

use super::trace::Trace;

/// Writes `tracing` events at or above a level into a [`Trace`].
pub struct EngineLog {
    trace: Trace,
    clock: SystemClock,
    level: Level,
    spans: AtomicU64,
}

impl EngineLog {
    /// The subscriber `CAMPANILE_SIM_LOG` asks for, if any.
    pub fn from_env(trace: Trace, clock: SystemClock) -> Option<Self> {
        let level = std::env::var("CAMPANILE_SIM_LOG").ok()?.parse().ok()?;
        Some(Self {
            trace,
            clock,
            level,
            spans: AtomicU64::new(1),
        })
    }
}

/// Formats an event's fields as `message key=value ...`.
#[derive(Default)]
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl tracing::Subscriber for EngineLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.level
    }

    fn new_span(&self, _span: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(self.spans.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _span: &span::Id, _values: &span::Record<'_>) {}

    fn record_follows_from(&self, _span: &span::Id, _follows: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        self.trace.event(
            self.clock.now_ms(),
            format!("[{} {}] {}", metadata.level(), metadata.target(), fields.0),
        );
    }

    fn enter(&self, _span: &span::Id) {}

    fn exit(&self, _span: &span::Id) {}
}
