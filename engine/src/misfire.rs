//! Misfire planning: what to do with instants that passed without being fired. Pure.

use crate::job::MisfirePolicy;

/// The decision for a run of missed instants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MisfirePlan {
    /// Instants to run now (late), oldest first.
    pub run: Vec<i64>,
    /// Contiguous ranges of instants to record as misfired: `(first, last, count)`.
    pub skip: Vec<(i64, i64, u32)>,
}

/// Decides, for `missed` instants (ascending, all before `now_ms`), which to run and which to record as
/// misfired, per `policy`. Every instant ends up in exactly one of the two.
pub fn plan(policy: MisfirePolicy, missed: &[i64], now_ms: i64) -> MisfirePlan {
    let (window_ms, max_run) = match policy {
        MisfirePolicy::Skip => (0, 0),
        MisfirePolicy::FireOnce => (duration_ms(MisfirePolicy::FIRE_ONCE_WINDOW), 1),
        MisfirePolicy::CatchUp { max_count, window } => (duration_ms(window), max_count as usize),
    };
    // The newest eligible instants run; everything else is skipped.
    let eligible_from = missed.partition_point(|&t| t < now_ms.saturating_sub(window_ms));
    let run_from = missed.len().saturating_sub(max_run).max(eligible_from);
    let mut plan = MisfirePlan {
        run: missed[run_from..].to_vec(),
        skip: Vec::new(),
    };
    if run_from > 0 {
        let skipped = &missed[..run_from];
        plan.skip.push((
            skipped[0],
            skipped[skipped.len() - 1],
            u32::try_from(skipped.len()).unwrap_or(u32::MAX),
        ));
    }
    plan
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_instant_is_either_run_or_skipped() {
        let missed: Vec<i64> = (0..10).map(|i| i * 1000).collect();
        let policies = [
            MisfirePolicy::Skip,
            MisfirePolicy::FireOnce,
            MisfirePolicy::CatchUp {
                max_count: 3,
                window: Duration::from_secs(3600),
            },
            MisfirePolicy::CatchUp {
                max_count: 100,
                window: Duration::from_millis(4500),
            },
        ];
        for policy in policies {
            let p = plan(policy, &missed, 10_000);
            let skipped: u32 = p.skip.iter().map(|s| s.2).sum();
            assert_eq!(
                p.run.len() + skipped as usize,
                missed.len(),
                "{policy:?}: {p:?}"
            );
        }
    }

    #[test]
    fn policies_choose_the_newest() {
        let missed = [1000, 2000, 3000, 4000];
        assert_eq!(
            plan(MisfirePolicy::Skip, &missed, 5000),
            MisfirePlan {
                run: vec![],
                skip: vec![(1000, 4000, 4)]
            }
        );
        assert_eq!(
            plan(MisfirePolicy::FireOnce, &missed, 5000),
            MisfirePlan {
                run: vec![4000],
                skip: vec![(1000, 3000, 3)]
            }
        );
        let catch_up = MisfirePolicy::CatchUp {
            max_count: 10,
            window: Duration::from_millis(2500),
        };
        assert_eq!(
            plan(catch_up, &missed, 5000),
            MisfirePlan {
                run: vec![3000, 4000],
                skip: vec![(1000, 2000, 2)]
            }
        );
        assert_eq!(
            plan(MisfirePolicy::FireOnce, &[], 5000),
            MisfirePlan::default()
        );
    }
}
