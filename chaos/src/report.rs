//! The report of a run: `report.json` (everything), `report.md` (for people and docs/chaos.md) and
//! `timeline.png` (fires per node per second, faults shaded), drawn with `plotters`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde_json::json;

use crate::Args;
use crate::check::{Input, Verdict, percentile};
use crate::model::{FaultKind, LedgerLine};

/// The facts of the run besides what the checker read.
pub struct Run {
    /// The command line.
    pub args: Args,
    /// Unix ms the jobs were created.
    pub started_ms: i64,
    /// Unix ms the fault phase was to end.
    pub until_ms: i64,
    /// Unix ms every fault was healed.
    pub healed_ms: i64,
    /// Unix ms of the last collection.
    pub collected_ms: i64,
    /// Job changes made during the run.
    pub job_changes: usize,
    /// Jobs that existed at some point.
    pub jobs_total: usize,
}

/// Failover statistics of one fault kind.
struct KindStats {
    faults: usize,
    values: Vec<i64>,
    not_seen: usize,
}

fn by_kind(verdict: &Verdict) -> BTreeMap<FaultKind, KindStats> {
    let mut out: BTreeMap<FaultKind, KindStats> = BTreeMap::new();
    for f in &verdict.failovers {
        let entry = out.entry(f.kind).or_insert(KindStats {
            faults: 0,
            values: Vec::new(),
            not_seen: 0,
        });
        entry.faults += 1;
        entry.values.extend(&f.ms);
        entry.not_seen += f.not_seen;
    }
    out
}

fn command(args: &Args) -> String {
    let backend = match args.backend {
        crate::cluster::Backend::Etcd => "etcd",
        crate::cluster::Backend::Zk => "zk",
    };
    format!(
        "cargo run --release -p campanile-chaos --bin chaos -- --backend {backend} --nodes {} --members {} --jobs {} --minutes {} --seed {} --ttl {}",
        args.nodes, args.members, args.jobs, args.minutes, args.seed, args.ttl
    )
}

fn opt_ms(v: Option<i64>) -> String {
    v.map_or("–".into(), |v| v.to_string())
}

/// Writes the three files into `out`.
pub fn write(out: &Path, run: &Run, input: &Input<'_>, verdict: &Verdict) -> anyhow::Result<()> {
    let ttl_ms = input.ttl_ms;
    let budget = ttl_ms + 1000;
    let stats = by_kind(verdict);
    let failover_json: serde_json::Map<String, serde_json::Value> = stats
        .iter()
        .map(|(kind, s)| {
            (
                kind.name().to_owned(),
                json!({
                    "faults": s.faults,
                    "measured": s.values.len(),
                    "p50_ms": percentile(&s.values, 50.0),
                    "p99_ms": percentile(&s.values, 99.0),
                    "max_ms": s.values.iter().max(),
                    "over_ttl_plus_1s": s.values.iter().filter(|&&v| v > budget).count(),
                    "not_seen": s.not_seen,
                }),
            )
        })
        .collect();
    let report = json!({
        "command": command(&run.args),
        "args": run.args,
        "verdict": if verdict.violations.is_empty() { "pass" } else { "fail" },
        "started_ms": run.started_ms,
        "until_ms": run.until_ms,
        "healed_ms": run.healed_ms,
        "collected_ms": run.collected_ms,
        "window_end_ms": input.window_end_ms,
        "margin_ms": input.margin_ms,
        "ttl_ms": ttl_ms,
        "jobs_total": run.jobs_total,
        "job_changes": run.job_changes,
        "counts": verdict.counts,
        "failover": failover_json,
        "faults": input.faults,
        "failovers": verdict.failovers,
        "violations": verdict.violations,
    });
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    // What the checker read, to look into a violation.
    std::fs::write(out.join("jobs.json"), serde_json::to_vec(input.jobs)?)?;
    std::fs::write(out.join("records.json"), serde_json::to_vec(input.records)?)?;

    let mut md = String::new();
    let backend = report["args"]["backend"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let minutes = (run.until_ms - run.started_ms) as f64 / 60_000.0;
    writeln!(
        md,
        "### {backend}, seed {}: {}",
        run.args.seed,
        if verdict.violations.is_empty() {
            "pass"
        } else {
            "FAIL"
        }
    )?;
    writeln!(md)?;
    writeln!(md, "`{}`", command(&run.args))?;
    writeln!(md)?;
    writeln!(
        md,
        "{} nodes on {} members, TTL {} s, {:.1} min of faults; {} jobs ({} created at the start), {} job changes during the run.",
        run.args.nodes,
        run.args.members,
        run.args.ttl,
        minutes,
        run.jobs_total,
        run.args.jobs,
        run.job_changes
    )?;
    writeln!(md)?;
    let c = &verdict.counts;
    writeln!(
        md,
        "| fires run (ledger lines) | instants checked (exactly one record) | instants near a job change (at most one) | misfired instants | records |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    let records: Vec<String> = c.records.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(
        md,
        "| {} | {} | {} | {} | {} |",
        c.fires,
        c.instants_checked,
        c.instants_in_margins,
        c.instants_misfired,
        records.join(", ")
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "Failover (ms; node faults: fault → first fire of each moved job on a surviving node; others: longest gap between fires of each every-second job), budget TTL + 1 s = {budget} ms:"
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "| fault | faults | jobs measured | p50 | p99 | max | over budget | moved, no fire seen |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for kind in FaultKind::ALL {
        let Some(s) = stats.get(&kind) else { continue };
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            kind.name(),
            s.faults,
            s.values.len(),
            opt_ms(percentile(&s.values, 50.0)),
            opt_ms(percentile(&s.values, 99.0)),
            opt_ms(s.values.iter().max().copied()),
            s.values.iter().filter(|&&v| v > budget).count(),
            s.not_seen
        )?;
    }
    writeln!(md)?;
    if verdict.violations.is_empty() {
        writeln!(md, "Violations: none.")?;
    } else {
        writeln!(
            md,
            "Violations ({}; the first 50, with the faults around each):",
            verdict.violations.len()
        )?;
        writeln!(md)?;
        for v in verdict.violations.iter().take(50) {
            let around: Vec<String> = v
                .instant()
                .map(|at| {
                    input
                        .faults
                        .iter()
                        .filter(|f| f.start_ms - 15_000 <= at && at <= f.end_ms + 15_000)
                        .map(|f| {
                            format!(
                                "{} at +{} s ({})",
                                f.kind.name(),
                                (f.start_ms - run.started_ms) / 1000,
                                f.detail
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            writeln!(
                md,
                "- `{}`; around it: {}",
                serde_json::to_string(v)?,
                if around.is_empty() {
                    "no fault".into()
                } else {
                    around.join("; ")
                }
            )?;
        }
    }
    writeln!(md)?;
    writeln!(
        md,
        "<details><summary>Faults ({})</summary>",
        input.faults.len()
    )?;
    writeln!(md)?;
    for f in input.faults {
        writeln!(
            md,
            "- +{} s, {} s: {}: {}",
            (f.start_ms - run.started_ms) / 1000,
            (f.end_ms - f.start_ms) / 1000,
            f.kind.name(),
            f.detail
        )?;
    }
    writeln!(md)?;
    writeln!(md, "</details>")?;
    std::fs::write(out.join("report.md"), md)?;

    timeline(&out.join("timeline.png"), run, input)?;
    Ok(())
}

/// Colours of the fault kinds (shading) and of the nodes (lines).
fn fault_colour(kind: FaultKind) -> RGBColor {
    match kind {
        FaultKind::KillNode => RGBColor(230, 80, 80),
        FaultKind::FreezeNode => RGBColor(80, 140, 230),
        FaultKind::CutDrop => RGBColor(240, 170, 60),
        FaultKind::CutBlackhole => RGBColor(120, 120, 120),
        FaultKind::KillCoordinatorLeader => RGBColor(170, 60, 200),
        FaultKind::FreezeCoordinatorMember => RGBColor(60, 190, 190),
        FaultKind::RollingRestart => RGBColor(90, 190, 90),
        FaultKind::Combined => RGBColor(40, 40, 40),
    }
}

/// Registers DejaVu Sans (Debian's `fonts-dejavu-core`) for the labels; without it the picture has none.
fn font() -> bool {
    for path in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ] {
        if let Ok(bytes) = std::fs::read(path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

fn timeline(path: &Path, run: &Run, input: &Input<'_>) -> anyhow::Result<()> {
    let text = font();
    let t0 = run.started_ms;
    let seconds = ((run.collected_ms - t0) / 1000).max(1);
    let mut per_node: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for line in input.ledger {
        let Some((_, at)) = LedgerLine::job_and_instant(line) else {
            continue;
        };
        let s = (at - t0) / 1000;
        if s < 0 || s >= seconds {
            continue;
        }
        per_node
            .entry(line.node.as_str())
            .or_insert_with(|| vec![0; seconds as usize])[s as usize] += 1;
    }
    let top = per_node
        .values()
        .flat_map(|v| v.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.15;
    let root = BitMapBackend::new(path, (1600, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root);
    chart.margin(12);
    if text {
        chart
            .caption(
                format!(
                    "{}, seed {}: fires per node per second, faults shaded",
                    match run.args.backend {
                        crate::cluster::Backend::Etcd => "etcd",
                        crate::cluster::Backend::Zk => "ZooKeeper",
                    },
                    run.args.seed
                ),
                ("sans-serif", 22),
            )
            .x_label_area_size(40)
            .y_label_area_size(50);
    }
    let mut chart = chart.build_cartesian_2d(0f64..seconds as f64, 0f64..top)?;
    if text {
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("seconds since the jobs were created")
            .y_desc("fires / s")
            .label_style(("sans-serif", 14))
            .draw()?;
    }
    let mut labelled = std::collections::BTreeSet::new();
    for fault in input.faults {
        let (a, b) = (
            (fault.start_ms - t0) as f64 / 1000.0,
            ((fault.end_ms - t0) as f64 / 1000.0).max((fault.start_ms - t0) as f64 / 1000.0 + 1.0),
        );
        let colour = fault_colour(fault.kind);
        let series = chart.draw_series(std::iter::once(Rectangle::new(
            [(a, 0.0), (b, top)],
            colour.mix(0.25).filled(),
        )))?;
        // One legend entry per kind, not per fault.
        if labelled.insert(fault.kind) {
            series.label(fault.kind.name()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.mix(0.5).filled())
            });
        }
    }
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
    ];
    for (i, (node, counts)) in per_node.iter().enumerate() {
        let colour = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(
                counts
                    .iter()
                    .enumerate()
                    .map(|(s, &c)| (s as f64 + 0.5, f64::from(c))),
                colour.stroke_width(1),
            ))?
            .label(node.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
            });
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::LowerLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
