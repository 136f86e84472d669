//! A job's policies: misfire, overlap, retries, delivery and DST handling.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happens to scheduled instants that passed while no node could fire them (all nodes down, the
/// owner's session lost, the job paused is *not* a misfire: paused instants are simply not owed).
///
/// Whatever the policy, every passed instant is accounted for by a run record: either it runs, or a
/// `misfired` record (one record may cover a contiguous range of instants, with its count) says it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum MisfirePolicy {
    /// Record the passed instants as misfired, run none of them.
    Skip,
    /// Run the most recent passed instant once (if it is within `window`), record the rest as misfired.
    #[default]
    FireOnce,
    /// Run up to `max_count` of the most recent passed instants that lie within `window` of now, oldest
    /// first; record the rest as misfired. Never an unbounded replay.
    CatchUp {
        /// At most this many passed instants are run.
        #[serde(default = "default_catch_up_count")]
        max_count: u32,
        /// Only instants at most this old are run.
        #[serde(default = "default_catch_up_window", with = "humantime_serde")]
        window: Duration,
    },
}

fn default_catch_up_count() -> u32 {
    10
}

fn default_catch_up_window() -> Duration {
    Duration::from_secs(3600)
}

impl MisfirePolicy {
    /// How old a passed instant may be and still run under `fire_once` (a fire older than this is only recorded).
    pub const FIRE_ONCE_WINDOW: Duration = Duration::from_secs(24 * 3600);
}

/// What happens when an instant comes while a previous run of the same job is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Start the new run beside the old one.
    Allow,
    /// Record the new instant as `skipped` (the default: cron jobs rarely expect to run twice at once).
    #[default]
    Skip,
    /// Keep at most one pending instant; it starts when the running one ends. Further instants are skipped.
    BufferOne,
    /// Kill the running one (recorded as `failed` with reason `cancelled`) and start the new one.
    CancelPrevious,
}

/// Retries of a failed or timed-out run; all attempts belong to the same fire and share its fire id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts after the first one; 0 disables retries.
    #[serde(default)]
    pub max_retries: u32,
    /// Delay between attempts.
    #[serde(default)]
    pub backoff: Backoff,
}

/// Delay before retry `n` (1-based): `initial * factor^(n-1)`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Delay before the first retry.
    #[serde(with = "humantime_serde", default = "default_initial")]
    pub initial: Duration,
    /// Growth per retry (1.0 = constant).
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// Upper bound of a delay.
    #[serde(with = "humantime_serde", default = "default_max")]
    pub max: Duration,
}

impl Eq for Backoff {}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: default_initial(),
            factor: default_factor(),
            max: default_max(),
        }
    }
}

impl Backoff {
    /// The delay before retry `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self.factor.powi(retry.saturating_sub(1).min(64) as i32);
        let secs = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

fn default_initial() -> Duration {
    Duration::from_secs(1)
}

fn default_factor() -> f64 {
    2.0
}

fn default_max() -> Duration {
    Duration::from_secs(60)
}

/// Delivery of a fire whose outcome is unknown after its owner vanished (claimed, no run record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Never run a fire twice: an in-doubt fire is recorded as `in_doubt` and not re-run.
    #[default]
    AtMostOnce,
    /// Never lose a fire: an in-doubt fire is run again by the new owner (targets de-duplicate by fire id).
    AtLeastOnce,
}

/// How cron wall-clock times that a spring-forward jump skips are handled (the job JSON's `dst`).
///
/// A cron job is a *wildcard* job when its second, minute or hour field starts with `*` (cronie's rule), and a
/// *fixed-time* job otherwise. Wildcard jobs follow real time whatever the policy: nothing in a gap, every real
/// instant of a repeated range once. The policies differ for fixed-time jobs; see docs/schedules.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DstPolicy {
    /// Like cronie: a fixed time in the spring gap runs once right after the jump.
    #[default]
    Cronie,
    /// Fixed times that fall into the spring gap do not run that day.
    SkipGap,
}

/// Which pass of a repeated wall-clock range (the autumn hour) a fixed-time cron job runs on (the job JSON's
/// `dst_repeat`). Wildcard jobs follow real time whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DstRepeat {
    /// The first pass only, like cronie: a repeated time runs once, at its earlier instant.
    #[default]
    First,
    /// The second pass only: a repeated time runs once, at its later instant (after the clocks went back).
    Last,
    /// Both passes: a repeated time runs twice, once per occurrence on the wall clock.
    Both,
}

/// A job's whole DST handling, as the schedule search takes it: `dst` and `dst_repeat` together.
/// A [`DstPolicy`] alone converts into it with the repeat at its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DstHandling {
    /// Fixed times in a spring gap.
    pub gap: DstPolicy,
    /// Fixed times in a repeated range.
    pub repeat: DstRepeat,
}

impl From<DstPolicy> for DstHandling {
    fn from(gap: DstPolicy) -> Self {
        Self {
            gap,
            repeat: DstRepeat::default(),
        }
    }
}
