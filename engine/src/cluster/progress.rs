//! How far a fire sent to a worker got, as its owner knows it: written by [`crate::cluster::Hub::attempt`]
//! as the dispatch goes on, read by the owner's executor, which must tell a fire that is still waiting for a
//! worker from a run going on.
//!
//! - Until a worker is told to go, the fire has certainly not started: it is not a run going on (a fire of
//!   the job that comes meanwhile met no run), and if the owner withdraws it (`cancel_previous`, the shutdown
//!   deadline), it never ran and is recorded as such.
//! - After the go and before the worker's acknowledgement or result, it may have started (the go may have
//!   arrived and the acknowledgement been lost): withdrawn then, it is `in_doubt`.
//! - From the acknowledgement (or a result) it ran. Its span, as far as the owner can prove it, runs from the
//!   first acknowledgement to the last attempt's result; a run whose acknowledgement or result never came has
//!   no known span and justifies no `overlap: skip`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// How far one fire sent to workers got (all its attempts): see the module docs.
#[derive(Debug)]
pub struct RemoteProgress {
    /// Unix ms of the first acknowledgement, [`RemoteProgress::NONE`] before.
    acked_ms: AtomicI64,
    /// Unix ms of the current attempt's result, [`RemoteProgress::NONE`] before it (reset at each go).
    finished_ms: AtomicI64,
    /// A worker acknowledged or answered one of its attempts: it ran.
    ran: AtomicBool,
    /// A worker was told to go and has neither acknowledged, answered nor refused.
    go_open: AtomicBool,
}

/// Where a fire sent to workers stands, for the owner's decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemotePhase {
    /// No worker was told to go (or every one told refused): it has not started.
    Waiting,
    /// A worker was told to go and has not answered: it may have started.
    MayHaveStarted,
    /// A worker acknowledged it or answered with a result.
    Ran,
}

impl Default for RemoteProgress {
    fn default() -> Self {
        Self {
            acked_ms: AtomicI64::new(Self::NONE),
            finished_ms: AtomicI64::new(Self::NONE),
            ran: AtomicBool::new(false),
            go_open: AtomicBool::new(false),
        }
    }
}

impl RemoteProgress {
    const NONE: i64 = i64::MIN;

    /// A worker is told to go.
    pub(crate) fn go(&self) {
        self.finished_ms.store(Self::NONE, Ordering::Relaxed);
        self.go_open.store(true, Ordering::Relaxed);
    }

    /// The worker acknowledged the start, at `now_ms`.
    pub(crate) fn acked(&self, now_ms: i64) {
        self.ran.store(true, Ordering::Relaxed);
        self.go_open.store(false, Ordering::Relaxed);
        let _ = self.acked_ms.compare_exchange(
            Self::NONE,
            now_ms,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The worker's result arrived, at `now_ms`.
    pub(crate) fn finished(&self, now_ms: i64) {
        self.ran.store(true, Ordering::Relaxed);
        self.go_open.store(false, Ordering::Relaxed);
        self.finished_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The worker refused at the go: it did not start.
    pub(crate) fn refused(&self) {
        self.go_open.store(false, Ordering::Relaxed);
    }

    /// Where the fire stands.
    pub fn phase(&self) -> RemotePhase {
        if self.ran.load(Ordering::Relaxed) {
            RemotePhase::Ran
        } else if self.go_open.load(Ordering::Relaxed) {
            RemotePhase::MayHaveStarted
        } else {
            RemotePhase::Waiting
        }
    }

    /// Unix ms it was first acknowledged, if it was: from then a run was going.
    pub fn started_ms(&self) -> Option<i64> {
        Some(self.acked_ms.load(Ordering::Relaxed)).filter(|&t| t != Self::NONE)
    }

    /// Its known span (first acknowledgement, last result), Unix ms, if the owner saw both.
    pub fn span_ms(&self) -> Option<(i64, i64)> {
        let end = self.finished_ms.load(Ordering::Relaxed);
        let start = self.started_ms()?;
        (end != Self::NONE && end >= start).then_some((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fire_is_waiting_until_the_go_and_ran_from_the_acknowledgement() {
        let p = RemoteProgress::default();
        assert_eq!(p.phase(), RemotePhase::Waiting);
        p.go();
        assert_eq!(p.phase(), RemotePhase::MayHaveStarted);
        p.refused();
        assert_eq!(p.phase(), RemotePhase::Waiting, "a refusal at the go");
        p.go();
        p.acked(1_000);
        assert_eq!(p.phase(), RemotePhase::Ran);
        assert_eq!(p.started_ms(), Some(1_000));
        assert_eq!(p.span_ms(), None, "no result yet");
        p.finished(1_500);
        assert_eq!(p.span_ms(), Some((1_000, 1_500)));
        // A retry: the span runs from the first acknowledgement to the last result, unknown until it comes.
        p.go();
        assert_eq!(p.phase(), RemotePhase::Ran);
        assert_eq!(p.span_ms(), None);
        p.acked(2_000);
        p.finished(2_500);
        assert_eq!(p.span_ms(), Some((1_000, 2_500)));
    }

    #[test]
    fn a_result_without_an_acknowledgement_ran_with_no_known_span() {
        let p = RemoteProgress::default();
        p.go();
        p.finished(1_500);
        assert_eq!(p.phase(), RemotePhase::Ran);
        assert_eq!(p.started_ms(), None);
        assert_eq!(p.span_ms(), None);
    }
}
