//! The checker finds each kind of violation it names, and none in a clean run.

use super::*;

const T0: i64 = 1_000_000;

fn job(id: &str, changes: Vec<(i64, Change)>) -> JobLog {
    JobLog {
        id: id.into(),
        changes,
        collected_ms: T0 + 100_000,
    }
}

fn record(job: &str, at: i64, outcome: &str, node: &str) -> Record {
    Record {
        job: job.into(),
        scheduled_ms: at,
        last_scheduled_ms: None,
        count: None,
        node: node.into(),
        started_ms: Some(at + 5),
        outcome: outcome.into(),
        reason: None,
        manual: None,
    }
}

fn line(job: &str, at: i64, node: &str) -> LedgerLine {
    LedgerLine {
        fire: format!("{job}@{at}"),
        node: node.into(),
    }
}

/// A job every second from `T0` whose instants `T0+3s ..= T0+20s` all ran once on `n1`.
fn clean() -> (Vec<JobLog>, Vec<Record>, Vec<LedgerLine>) {
    let jobs = vec![job("a", vec![(T0, Change::Create(Sched::Every(1000)))])];
    let mut records = Vec::new();
    let mut ledger = Vec::new();
    for s in 1..=20 {
        let at = T0 + s * 1000;
        records.push(record("a", at, "succeeded", "n1"));
        ledger.push(line("a", at, "n1"));
    }
    (jobs, records, ledger)
}

fn run(jobs: &[JobLog], records: &[Record], ledger: &[LedgerLine], faults: &[Fault]) -> Verdict {
    check(&Input {
        jobs,
        records,
        ledger,
        faults,
        window_end_ms: T0 + 20_000,
        margin_ms: 2_000,
        settle_ms: 10_000,
        ttl_ms: 3_000,
    })
}

#[test]
fn a_clean_run_has_no_violation() {
    let (jobs, records, ledger) = clean();
    let verdict = run(&jobs, &records, &ledger, &[]);
    assert_eq!(verdict.violations, vec![]);
    // Instants 3 s ..= 20 s are checked: the first two lie within the margin of the creation.
    assert_eq!(verdict.counts.instants_checked, 18);
    assert_eq!(verdict.counts.fires, 20);
}

#[test]
fn a_fire_id_run_twice_is_a_double_fire() {
    let (jobs, records, mut ledger) = clean();
    ledger.push(line("a", T0 + 7000, "n2"));
    let verdict = run(&jobs, &records, &ledger, &[]);
    assert_eq!(
        verdict.violations,
        vec![Violation::DoubleFire {
            fire: format!("a@{}", T0 + 7000),
            nodes: vec!["n1".into(), "n2".into()]
        }]
    );
}

#[test]
fn an_instant_without_a_record_is_unaccounted_and_its_ledger_line_has_no_record() {
    let (jobs, mut records, ledger) = clean();
    records.retain(|r| r.scheduled_ms != T0 + 9000);
    let verdict = run(&jobs, &records, &ledger, &[]);
    assert_eq!(
        verdict.violations,
        vec![
            Violation::Unaccounted {
                fire: format!("a@{}", T0 + 9000)
            },
            Violation::LedgerWithoutRecord {
                fire: format!("a@{}", T0 + 9000),
                node: "n1".into(),
                recorded: None
            },
        ]
    );
}

#[test]
fn a_misfired_range_accounts_for_every_instant_it_covers_but_not_for_one_that_ran() {
    let (jobs, mut records, mut ledger) = clean();
    records.retain(|r| !(T0 + 10_000..=T0 + 14_000).contains(&r.scheduled_ms));
    ledger.retain(|l| {
        l.job_and_instant()
            .is_some_and(|(_, at)| !(T0 + 10_000..=T0 + 14_000).contains(&at))
    });
    let mut range = record("a", T0 + 10_000, "misfired", "n2");
    range.last_scheduled_ms = Some(T0 + 14_000);
    range.count = Some(5);
    records.push(range);
    let verdict = run(&jobs, &records, &ledger, &[]);
    assert_eq!(verdict.violations, vec![]);
    assert_eq!(verdict.counts.instants_misfired, 5);

    ledger.push(line("a", T0 + 12_000, "n1"));
    let verdict = run(&jobs, &records, &ledger, &[]);
    assert_eq!(
        verdict.violations,
        vec![Violation::LedgerWithoutRecord {
            fire: format!("a@{}", T0 + 12_000),
            node: "n1".into(),
            recorded: Some("misfired".into()),
        }]
    );
}

#[test]
fn two_records_of_one_instant_are_found() {
    let (jobs, mut records, ledger) = clean();
    records.push(record("a", T0 + 5000, "in_doubt", "n2"));
    let verdict = run(&jobs, &records, &ledger, &[]);
    assert_eq!(
        verdict.violations,
        vec![Violation::TwoRecords {
            fire: format!("a@{}", T0 + 5000),
            records: vec!["succeeded on n1".into(), "in_doubt on n2".into()],
        }]
    );
}

#[test]
fn a_succeeded_record_without_its_ledger_line_is_found() {
    let (jobs, records, mut ledger) = clean();
    ledger.retain(|l| l.fire != format!("a@{}", T0 + 4000));
    let verdict = run(&jobs, &records, &ledger, &[]);
    assert_eq!(
        verdict.violations,
        vec![Violation::RecordWithoutLedger {
            fire: format!("a@{}", T0 + 4000),
            node: "n1".into()
        }]
    );
}

#[test]
fn a_paused_job_owes_nothing_and_must_not_run() {
    let (mut jobs, mut records, mut ledger) = clean();
    jobs[0].changes.push((T0 + 8_500, Change::Pause));
    jobs[0].changes.push((T0 + 16_500, Change::Resume));
    // Paused from 8.5 s to 16.5 s: 11 s ..= 14 s lie outside both margins and must not run.
    records.retain(|r| {
        !(T0 + 11_000..=T0 + 14_000).contains(&r.scheduled_ms) || r.scheduled_ms == T0 + 12_000
    });
    ledger.retain(|l| {
        l.job_and_instant()
            .is_some_and(|(_, at)| !(T0 + 11_000..=T0 + 14_000).contains(&at) || at == T0 + 12_000)
    });
    let verdict = run(&jobs, &records, &ledger, &[]);
    assert_eq!(
        verdict.violations,
        vec![Violation::Unscheduled {
            fire: format!("a@{}", T0 + 12_000),
            node: "n1".into()
        }]
    );
}

#[test]
fn a_misfire_during_a_rolling_restart_is_a_violation_and_failover_is_measured() {
    let (jobs, mut records, mut ledger) = clean();
    let fault = Fault {
        kind: FaultKind::RollingRestart,
        start_ms: T0 + 6_000,
        end_ms: T0 + 9_000,
        victims: vec![],
        detail: String::new(),
    };
    let verdict = run(&jobs, &records, &ledger, std::slice::from_ref(&fault));
    assert_eq!(verdict.violations, vec![]);
    // The every-second job never stalled longer than a second.
    assert_eq!(verdict.failovers.len(), 1);
    assert!(
        verdict.failovers[0].ms.iter().all(|&gap| gap <= 1000),
        "{:?}",
        verdict.failovers
    );
    records.retain(|r| r.scheduled_ms != T0 + 8_000);
    ledger.retain(|l| l.fire != format!("a@{}", T0 + 8_000));
    records.push(record("a", T0 + 8_000, "misfired", "n2"));
    let verdict = run(&jobs, &records, &ledger, &[fault]);
    assert_eq!(
        verdict.violations,
        vec![Violation::MisfireInRollingRestart {
            fire: format!("a@{}", T0 + 8_000),
            count: 1
        }]
    );
}

#[test]
fn a_killed_nodes_jobs_are_timed_to_their_first_fire_elsewhere() {
    let jobs = vec![job("a", vec![(T0, Change::Create(Sched::Every(1000)))])];
    let mut records = Vec::new();
    for s in 1..=40 {
        let at = T0 + s * 1000;
        // n1 runs it until the kill at 10.5 s; n2 from 14 s on (a misfire range between).
        if s <= 10 {
            records.push(record("a", at, "succeeded", "n1"));
        } else if s >= 14 {
            records.push(record("a", at, "succeeded", "n2"));
        }
    }
    let fault = Fault {
        kind: FaultKind::KillNode,
        start_ms: T0 + 10_500,
        end_ms: T0 + 15_000,
        victims: vec!["n1".into()],
        detail: String::new(),
    };
    let verdict = check(&Input {
        jobs: &jobs,
        records: &records,
        ledger: &[],
        faults: &[fault],
        window_end_ms: T0 + 40_000,
        margin_ms: 2_000,
        settle_ms: 10_000,
        ttl_ms: 3_000,
    });
    assert_eq!(verdict.failovers.len(), 1);
    assert_eq!(verdict.failovers[0].ms, vec![14_005 - 10_500]);
}

#[test]
fn schedules_enumerate_their_instants_and_print_as_the_api_reads_them() {
    assert_eq!(
        Sched::Every(5000).instants(1000, 16_000),
        vec![5000, 10_000, 15_000]
    );
    assert_eq!(Sched::At(7000).instants(7000, 9000), Vec::<i64>::new());
    assert_eq!(Sched::Every(1000).to_api(), "* * * * * *");
    assert_eq!(Sched::Every(5000).to_api(), "*/5 * * * * *");
    assert_eq!(Sched::Every(7000).to_api(), "@every 7s");
    assert_eq!(Sched::Every(120_000).to_api(), "*/2 * * * *");
    assert_eq!(
        Sched::At(1_796_650_200_000).to_api(),
        "@at 2026-12-07T13:30:00Z"
    );
    assert_eq!(percentile(&[5, 1, 3], 50.0), Some(3));
    assert_eq!(percentile(&[], 99.0), None);
}
