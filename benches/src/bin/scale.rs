//! The scale harness: memory per job, load time, and fire lateness of Campanile at 100,000 and 1,000,000 jobs,
//! beside peers measured in the same run.
//!
//! ```text
//! cargo run --release -p campanile-benches --bin scale -- [--jobs 100000,1000000] [--mode load|spread|burst|all]
//!     [--seconds N] [--fire-jobs 100000] [--peer-max-jobs 100000]
//! ```
//!
//! - `load`: N typical jobs (hourly cron at 12 distinct minutes, so parsed schedules are shared; a handler
//!   target): the time from the first create until the node owns N jobs and its timer holds them, and the
//!   resident memory (and live heap) per job. `campanile` creates through a running node; `campanile-split`
//!   fills the in-process store first, then starts the node, to separate the backend's copy from the engine's.
//!   `campanile-bulk-http` creates them through the API's bulk route (`POST /v1/jobs:batch`, 10,000 jobs a
//!   request) over loopback HTTP, served by the runtime's own router; "of it, creates" is the time until the
//!   last create was acknowledged.
//! - `spread`: `--fire-jobs` jobs at scattered instants (`@every 10s from <anchor + i·100 µs>`; instants are
//!   whole milliseconds, so 10 jobs fall on each millisecond); lateness p50/p99/max and missed fires over
//!   `--seconds`.
//! - `burst`: `--fire-jobs` jobs all due at each whole second (`* * * * * *`); the same, plus fires per instant.
//!
//! Peers, each in its own process like every measurement here: `tokio-tasks`, one tokio task per job that
//! loops on `sleep_until` (the common naive design), `tokio-cron-scheduler` 0.15 and `apalis-cron` 0.7 (in
//! `load` and `burst`, up to `--peer-max-jobs` jobs: neither has sub-second instants, so neither can express
//! `spread`). Lateness = handler start − scheduled instant, from one clock.
//!
//! Every measurement runs in a fresh child process (`--worker`), so memory figures do not include what an
//! earlier measurement left behind, and the parent prints one table per mode. This is a benchmark, not a test:
//! it asserts nothing about the figures.

#![allow(unsafe_code)] // Only in `heap`: the counting global allocator (see there).

// A binary's root resolves modules beside itself (`src/bin/`); these live in `src/bin/scale/`.
#[path = "scale/apalis.rs"]
mod apalis;
#[path = "scale/campanile_http.rs"]
mod campanile_http;
#[path = "scale/campanile_node.rs"]
mod campanile_node;
#[path = "scale/heap.rs"]
mod heap;
#[path = "scale/naive.rs"]
mod naive;
#[path = "scale/tcs.rs"]
mod tcs;
#[path = "scale/workload.rs"]
mod workload;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use campanile_benches::machine;
use campanile_benches::tally::{Summary, Tally};

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

/// What the harness was asked to do.
#[derive(Debug, Clone)]
struct Options {
    jobs: Vec<usize>,
    fire_jobs: usize,
    modes: Vec<Mode>,
    seconds: u64,
    peer_max_jobs: usize,
}

/// One kind of measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Load time and memory per job.
    Load,
    /// Lateness of scattered instants.
    Spread,
    /// Lateness of one instant shared by every job.
    Burst,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Load => "load",
            Mode::Spread => "spread",
            Mode::Burst => "burst",
        }
    }

    fn parse(text: &str) -> Result<Vec<Mode>, String> {
        Ok(match text {
            "load" => vec![Mode::Load],
            "spread" => vec![Mode::Spread],
            "burst" => vec![Mode::Burst],
            "all" => vec![Mode::Load, Mode::Spread, Mode::Burst],
            other => {
                return Err(format!(
                    "--mode {other:?}: expected load, spread, burst or all"
                ));
            }
        })
    }

    /// The systems measured in this mode at `jobs` jobs.
    fn systems(self, jobs: usize, peer_max_jobs: usize) -> Vec<&'static str> {
        let mut systems = match self {
            Mode::Load => vec![
                "campanile",
                "campanile-bulk-http",
                "campanile-split",
                "tokio-tasks",
            ],
            // tokio-cron-scheduler has no sub-second instants: it cannot express the spread workload.
            Mode::Spread => vec!["campanile", "tokio-tasks"],
            Mode::Burst => vec!["campanile", "tokio-tasks"],
        };
        if self != Mode::Spread && jobs <= peer_max_jobs {
            systems.push("tokio-cron-scheduler");
            systems.push("apalis-cron");
        }
        systems
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: scale [--jobs 100000,1000000] [--mode load|spread|burst|all] [--seconds N] \
         [--fire-jobs N] [--peer-max-jobs N]"
    );
    std::process::exit(2)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value.replace('_', "").parse().unwrap_or_else(|_| {
        eprintln!("{flag} {value:?}: expected a number");
        usage()
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = Options {
        jobs: vec![100_000, 1_000_000],
        fire_jobs: 100_000,
        modes: vec![Mode::Load, Mode::Spread, Mode::Burst],
        seconds: 10,
        peer_max_jobs: 100_000,
    };
    let mut worker: Option<(String, String)> = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--jobs" => {
                options.jobs = value().split(',').map(|n| number("--jobs", n)).collect();
            }
            "--fire-jobs" => options.fire_jobs = number("--fire-jobs", &value()),
            "--mode" => {
                options.modes = Mode::parse(&value()).unwrap_or_else(|e| {
                    eprintln!("{e}");
                    usage()
                });
            }
            "--seconds" => options.seconds = number("--seconds", &value()),
            "--peer-max-jobs" => options.peer_max_jobs = number("--peer-max-jobs", &value()),
            "--worker" => {
                let mode = value();
                let system = value();
                worker = Some((mode, system));
            }
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument {other:?}");
                usage()
            }
        }
    }
    match worker {
        Some((mode, system)) => run_worker(&mode, &system, &options),
        None => run_parent(&args, &options),
    }
}

/// One measurement in this process; prints one `RESULT key=value<TAB>...` line.
fn run_worker(mode: &str, system: &str, options: &Options) {
    let jobs = options.jobs.first().copied().unwrap_or(100_000);
    if mode == "load" {
        // Memory per job is read from the live-heap counter; the lateness modes run without it.
        heap::count();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result: Result<BTreeMap<&'static str, String>, String> = rt.block_on(async {
        match (mode, system) {
            ("load", "campanile") => campanile_node::load(jobs).await,
            ("load", "campanile-bulk-http") => campanile_http::load(jobs).await,
            ("load", "campanile-split") => campanile_node::load_split(jobs).await,
            ("load", "tokio-tasks") => naive::load(jobs).await,
            ("load", "tokio-cron-scheduler") => tcs::load(jobs).await,
            ("load", "apalis-cron") => apalis::load(jobs).await,
            ("spread" | "burst", system) => {
                let workload = if mode == "spread" {
                    workload::Workload::Spread
                } else {
                    workload::Workload::Burst
                };
                let seconds = options.seconds;
                match system {
                    "campanile" => campanile_node::lateness(workload, jobs, seconds).await,
                    "tokio-tasks" => naive::lateness(workload, jobs, seconds).await,
                    "tokio-cron-scheduler" => tcs::lateness(workload, jobs, seconds).await,
                    "apalis-cron" => apalis::lateness(workload, jobs, seconds).await,
                    other => Err(format!("unknown system {other}")),
                }
            }
            (mode, system) => Err(format!("unknown measurement {mode}/{system}")),
        }
    });
    let line = match result {
        Ok(mut fields) => {
            // On a shared machine, what else ran matters: the 1-minute load average at the end of the run.
            let load =
                machine::load_average().map_or_else(|| "-".to_owned(), |l| format!("{l:.1}"));
            fields.insert("loadavg", load);
            fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\t")
        }
        Err(error) => format!("error={error}"),
    };
    println!("RESULT {line}");
    // Leave at once: an orderly shutdown of a million jobs measures nothing and takes a while.
    std::process::exit(0);
}

fn run_parent(args: &[String], options: &Options) {
    println!("# Campanile scale harness");
    println!(
        "command: cargo run --release -p campanile-benches --bin scale -- {}",
        args.join(" ")
    );
    println!("machine: {}", machine::describe());
    println!(
        "load average at start: {} (other work on the machine competes with every figure below)",
        machine::load_average().map_or_else(|| "-".to_owned(), |l| format!("{l:.2}"))
    );
    println!(
        "campanile {} (git {}), tokio-cron-scheduler 0.15, apalis-cron 0.7",
        env!("CARGO_PKG_VERSION"),
        git_head()
    );
    println!();
    let exe = std::env::current_exe().expect("the harness knows its own path");
    for &mode in &options.modes {
        let sizes = match mode {
            Mode::Load => options.jobs.clone(),
            Mode::Spread | Mode::Burst => vec![options.fire_jobs],
        };
        let mut rows = Vec::new();
        for jobs in sizes {
            for system in mode.systems(jobs, options.peer_max_jobs) {
                eprintln!("[scale] {} / {system} / {jobs} jobs ...", mode.name());
                let output = Command::new(&exe)
                    .args(["--worker", mode.name(), system])
                    .args(["--jobs", &jobs.to_string()])
                    .args(["--seconds", &options.seconds.to_string()])
                    .stderr(Stdio::inherit())
                    .output();
                let fields = match output {
                    Ok(out) => parse_result(&String::from_utf8_lossy(&out.stdout)),
                    Err(error) => BTreeMap::from([("error".to_owned(), error.to_string())]),
                };
                rows.push((system, jobs, fields));
            }
        }
        match mode {
            Mode::Load => print_load(&rows),
            Mode::Spread | Mode::Burst => print_lateness(mode, options.seconds, &rows),
        }
    }
}

fn git_head() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn parse_result(stdout: &str) -> BTreeMap<String, String> {
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
        return BTreeMap::from([(
            "error".to_owned(),
            "the worker printed no result".to_owned(),
        )]);
    };
    line.split('\t')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

type Row = (&'static str, usize, BTreeMap<String, String>);

fn get<'a>(fields: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    fields.get(key).map_or("-", String::as_str)
}

fn print_load(rows: &[Row]) {
    println!("## load: time to take N typical jobs, memory per job");
    println!();
    println!(
        "| system | jobs | load time | of it, creates | RSS/job | heap/job | load avg | detail |\n\
         |---|---:|---:|---:|---:|---:|---:|---|"
    );
    for (system, jobs, f) in rows {
        if let Some(error) = f.get("error") {
            println!("| {system} | {jobs} | error: {error} | | | | | |");
            continue;
        }
        let create = f
            .get("create_s")
            .map_or_else(|| "-".to_owned(), |s| format!("{s} s"));
        println!(
            "| {system} | {jobs} | {} s | {create} | {} B | {} B | {} | {} |",
            get(f, "load_s"),
            get(f, "rss_per_job"),
            get(f, "heap_per_job"),
            get(f, "loadavg"),
            get(f, "detail"),
        );
    }
    println!();
}

fn print_lateness(mode: Mode, seconds: u64, rows: &[Row]) {
    let what = match mode {
        Mode::Spread => "scattered instants (10 jobs per ms, each every 10 s)",
        _ => "every job due at each whole second",
    };
    println!(
        "## {}: {what}, lateness = handler start − scheduled instant, over {seconds} s",
        mode.name()
    );
    println!();
    println!(
        "| system | jobs | fires (expected) | missed | p50 | p99 | p99.9 | max | fires/instant | latest 100 ms spans | load avg | detail |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
    );
    for (system, jobs, f) in rows {
        if let Some(error) = f.get("error") {
            println!("| {system} | {jobs} | error: {error} | | | | | | | | | |");
            continue;
        }
        println!(
            "| {system} | {jobs} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            get(f, "fires"),
            get(f, "expected"),
            get(f, "missed"),
            get(f, "p50"),
            get(f, "p99"),
            get(f, "p999"),
            get(f, "max"),
            get(f, "per_instant"),
            get(f, "worst_spans"),
            get(f, "loadavg"),
            get(f, "detail"),
        );
    }
    println!();
}

/// Formats µs for the tables: `850 µs`, `12.3 ms`, `8.70 s`.
pub fn human_us(us: u64) -> String {
    match us {
        0..=9_999 => format!("{us} µs"),
        10_000..=9_999_999 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// The lateness fields of a result, from a tally and the number of fires the window should hold.
pub fn lateness_fields(
    summary: &Summary,
    expected: u64,
    tally: &Tally,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("fires", summary.fires.to_string()),
        ("expected", expected.to_string()),
        (
            "missed",
            format!(
                "{} ({:.1} %)",
                expected.saturating_sub(summary.fires),
                100.0 * expected.saturating_sub(summary.fires) as f64 / expected.max(1) as f64
            ),
        ),
        ("p50", human_us(summary.p50_us)),
        ("p99", human_us(summary.p99_us)),
        ("p999", human_us(summary.p999_us)),
        ("max", human_us(summary.max_us)),
        (
            "per_instant",
            if summary.per_instant.0 == summary.per_instant.1 {
                summary.per_instant.0.to_string()
            } else {
                format!("{}..{}", summary.per_instant.0, summary.per_instant.1)
            },
        ),
        ("outside", tally.outside().to_string()),
        (
            "worst_spans",
            summary
                .worst_spans
                .iter()
                .map(|&(at, late)| format!("+{:.1} s: {}", at as f64 / 1e3, human_us(late)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ])
}

/// The process's memory at one moment: live heap and resident bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    heap: u64,
    rss: u64,
}

impl Memory {
    /// Reads it now.
    pub fn now() -> Self {
        Self {
            heap: heap::live_bytes() as u64,
            rss: machine::resident_bytes().unwrap_or(0),
        }
    }
}

/// The fields of a `load` row: the load time, and the memory per job that grew from `before` to `after`.
pub fn load_fields(
    load: Duration,
    before: Memory,
    after: Memory,
    jobs: usize,
    detail: String,
) -> BTreeMap<&'static str, String> {
    let per_job = |from: u64, to: u64| (to.saturating_sub(from) / jobs.max(1) as u64).to_string();
    BTreeMap::from([
        ("load_s", format!("{:.2}", load.as_secs_f64())),
        ("rss_per_job", per_job(before.rss, after.rss)),
        ("heap_per_job", per_job(before.heap, after.heap)),
        ("detail", detail),
    ])
}

/// Polls `done` every 10 ms until it holds or `limit` passes; returns whether it held.
pub async fn wait_until(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let give_up = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < give_up {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
