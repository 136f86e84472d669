//! Settings of the in-process coordinator.

/// Settings of an [`InprocCoordinator`](crate::InprocCoordinator). Build it with struct update syntax:
/// `InprocConfig { history_limit: 500, ..InprocConfig::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InprocConfig {
    /// Run records kept per job: the newest ones by scheduled instant. Default 1000; values below
    /// [`InprocConfig::MIN_HISTORY_LIMIT`] are raised to it (the `Coordinator` contract promises at least 100).
    pub history_limit: usize,
    /// Job-store events kept so that a job watch can resume from an older revision. Default 100 000.
    /// A watch resuming from before the oldest kept event gets `CoordError::Compacted`. Zero keeps none: a
    /// watch can then only start from the current revision (list, then watch from the listed revision).
    pub watch_retention: usize,
}

impl InprocConfig {
    /// The smallest accepted `history_limit`.
    pub const MIN_HISTORY_LIMIT: usize = 100;

    /// The settings actually used: `history_limit` raised to its minimum.
    pub(crate) fn normalized(mut self) -> Self {
        self.history_limit = self.history_limit.max(Self::MIN_HISTORY_LIMIT);
        self
    }
}

impl Default for InprocConfig {
    fn default() -> Self {
        Self {
            history_limit: 1000,
            watch_retention: 100_000,
        }
    }
}
