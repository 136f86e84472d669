//! A small per-thread memo of cron searches.
//!
//! Cron expressions are interned (one `Arc` per distinct expression), and jobs that share an expression are
//! often due together: 100,000 jobs of `0 * * * *` all ask for the instant after the same top of the hour. The
//! search is pure, so its answer for `(expression, after, zone, DST policy)` can be reused: the timer computes
//! it once per expression and instant instead of once per job.
//!
//! One entry per slot, slots chosen by the expression's address; an entry holds its expression's `Arc`, so the
//! address cannot be reused by another expression while the entry lives (and at most [`SLOTS`] expressions per
//! thread are kept alive by it).

use std::cell::RefCell;
use std::sync::Arc;

use chrono_tz::Tz;

use super::cron::CronExpr;
use crate::job::DstHandling;

/// Entries per thread.
const SLOTS: usize = 16;

struct Entry {
    expr: Arc<CronExpr>,
    after_ms: i64,
    tz: Tz,
    dst: DstHandling,
    next: Option<i64>,
}

thread_local! {
    static MEMO: RefCell<[Option<Entry>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

/// `expr.next_after(after_ms, tz, dst)`, answered from the memo when this thread asked it last.
pub(super) fn next_after(
    expr: &Arc<CronExpr>,
    after_ms: i64,
    tz: Tz,
    dst: DstHandling,
) -> Option<i64> {
    // Allocations are at least 8-aligned: drop the low bits that are always zero.
    let slot = (Arc::as_ptr(expr) as usize >> 4) % SLOTS;
    let hit = MEMO.with(|memo| {
        let memo = memo.borrow();
        memo[slot].as_ref().and_then(|e| {
            (Arc::ptr_eq(&e.expr, expr) && e.after_ms == after_ms && e.tz == tz && e.dst == dst)
                .then_some(e.next)
        })
    });
    if let Some(next) = hit {
        return next;
    }
    let next = expr.next_after(after_ms, tz, dst);
    MEMO.with(|memo| {
        memo.borrow_mut()[slot] = Some(Entry {
            expr: expr.clone(),
            after_ms,
            tz,
            dst,
            next,
        });
    });
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::DstPolicy;

    fn expr(text: &str) -> Arc<CronExpr> {
        super::super::cron::parse(text).expect("valid cron")
    }

    #[test]
    fn answers_as_the_search_does_for_every_key() {
        let hourly = expr("0 0 * * * *");
        let daily = expr("0 30 1 * * *");
        let london: Tz = "Europe/London".parse().unwrap();
        // 2026-03-29 00:59:59 UTC: the hour before London springs forward.
        let t = 1_774_745_999_000;
        for _ in 0..2 {
            for e in [&hourly, &daily] {
                for tz in [Tz::UTC, london] {
                    for dst in [DstPolicy::default(), DstPolicy::SkipGap].map(DstHandling::from) {
                        for after in [t, t + 1, t + 3_600_000] {
                            assert_eq!(
                                next_after(e, after, tz, dst),
                                e.next_after(after, tz, dst),
                                "{after} {tz} {dst:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn an_expression_at_a_reused_address_is_not_answered_from_the_memo() {
        // The memo keeps its expressions alive, so a new one never takes an address it holds.
        let first = expr("0 0 * * * *");
        let t = 1_774_745_999_000;
        let hourly = next_after(&first, t, Tz::UTC, DstHandling::default());
        drop(first);
        let second = expr("0 0 0 1 1 *");
        assert_ne!(
            next_after(&second, t, Tz::UTC, DstHandling::default()),
            hourly
        );
    }
}
