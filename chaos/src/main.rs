//! `chaos`: a seeded fault-injection run of real `campanile serve` processes on a multi-member etcd cluster or
//! ZooKeeper ensemble, checked against a ledger of what ran (see docs/chaos.md).
//!
//! One run: start the coordinator (`scripts/etcd.sh start-cluster`, `scripts/zookeeper.sh start-ensemble`), a
//! TCP proxy from every node to every member, the nodes, and the workload; then, until the time is up, the
//! nemesis injects faults while the workload changes jobs and the collector reads their run records; then
//! everything is healed, the records are read a last time after the cluster settles, and the checker reads
//! the records and the ledger. The report (`report.md`, `report.json`, `timeline.png`) lands in the output
//! directory; the exit status is 1 when the checker found a violation.

mod api;
mod check;
mod cluster;
mod model;
mod nemesis;
mod nodes;
mod proxy;
mod report;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::Mutex;

use crate::cluster::{Backend, Cluster};
use crate::model::{LedgerLine, now_ms};
use crate::nodes::Node;
use crate::proxy::Proxy;
use crate::workload::Workload;

/// A seeded chaos run of campanile on a real coordinator cluster.
#[derive(Debug, Clone, Parser, serde::Serialize)]
#[command(name = "chaos")]
pub struct Args {
    /// The coordinator.
    #[arg(long, value_enum)]
    pub backend: Backend,
    /// `campanile serve` processes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Coordinator members.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Jobs created at the start (the workload creates and deletes more during the run).
    #[arg(long, default_value_t = 200)]
    pub jobs: usize,
    /// Length of the fault phase, in minutes (fractions allowed).
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// The seed of the workload and of the nemesis.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The nodes' session TTL, in seconds.
    #[arg(long, default_value_t = 3)]
    pub ttl: u64,
    /// Where the run writes its state and report (default: `target/chaos/BACKEND-SEED` of the workspace).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The `campanile` binary (default: the one beside this binary).
    #[arg(long)]
    pub campanile: Option<PathBuf>,
    /// The kinds of fault to inject, comma-separated (default: every kind), to study one kind alone.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Vec<model::FaultKind>,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs and checks; `Ok(false)` when a violation was found.
async fn run(args: Args) -> anyhow::Result<bool> {
    if args.nodes < 2 || args.members < 1 {
        bail!("--nodes must be at least 2 and --members at least 1");
    }
    if args.minutes.is_nan() || args.minutes <= 0.0 {
        bail!("--minutes must be positive, not {}", args.minutes);
    }
    let backend_name = match args.backend {
        Backend::Etcd => "etcd",
        Backend::Zk => "zk",
    };
    let out = args.out.clone().unwrap_or_else(|| {
        workspace()
            .join("target/chaos")
            .join(format!("{backend_name}-{}", args.seed))
    });
    let binary = match &args.campanile {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the binary has no directory")?
            .join("campanile"),
    };
    if !binary.exists() {
        bail!(
            "{} does not exist: build it (cargo build [--release] -p campanile-runtime --bin campanile) or pass --campanile",
            binary.display()
        );
    }
    if out.exists() {
        std::fs::remove_dir_all(&out)
            .with_context(|| format!("failed to clear {}", out.display()))?;
    }
    std::fs::create_dir_all(&out)?;
    let ttl = Duration::from_secs(args.ttl);
    println!(
        "chaos: {backend_name}, {} nodes, {} members, seed {}, output in {}",
        args.nodes,
        args.members,
        args.seed,
        out.display()
    );

    // The coordinator, and a proxy from every node to every member.
    let scripts = workspace().join("scripts");
    let coord_dir = out.join("coordinator");
    let (backend, members) = (args.backend, args.members);
    let cluster = {
        let (scripts, coord_dir) = (scripts.clone(), coord_dir.clone());
        tokio::task::spawn_blocking(move || Cluster::start(backend, &scripts, &coord_dir, members))
            .await??
    };
    let cluster = Arc::new(cluster);
    let result = run_on(&args, &out, &binary, cluster.clone(), ttl).await;
    let stop = cluster.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || stop.stop()).await? {
        eprintln!("chaos: stopping the coordinator: {e:#}");
    }
    result
}

async fn run_on(
    args: &Args,
    out: &std::path::Path,
    binary: &std::path::Path,
    cluster: Arc<Cluster>,
    ttl: Duration,
) -> anyhow::Result<bool> {
    let mut proxies = Vec::new();
    for _ in 0..args.nodes {
        let mut mine = Vec::new();
        for &port in &cluster.ports {
            mine.push(Proxy::start(port).await?);
        }
        proxies.push(mine);
    }
    let config = out.join("campanile.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nsession_ttl = \"{}s\"\nrebalance_delay = \"100ms\"\nhistory_limit = 2000\n",
            ttl.as_secs()
        ),
    )?;
    let mut nodes = Vec::new();
    for (i, mine) in proxies.iter().enumerate() {
        let endpoints: Vec<String> = mine
            .iter()
            .map(|p| format!("127.0.0.1:{}", p.port))
            .collect();
        let url = format!("{}://{}/chaos", cluster.scheme(), endpoints.join(","));
        let mut node = Node::new(
            binary,
            &out.join("nodes"),
            &format!("n{}", i + 1),
            &config,
            &url,
        )?;
        node.spawn()?;
        nodes.push(node);
    }
    let api = Arc::new(api::Api::new(
        nodes.iter().map(|n| n.url.clone()).collect(),
        Duration::from_secs(3),
    )?);
    for node in &mut nodes {
        node.await_ready(api.http(), Duration::from_secs(60))
            .await?;
    }
    wait_for_members(&api, args.nodes).await?;
    println!("chaos: {} nodes ready", args.nodes);

    // The workload.
    let ledger = out.join("ledger.log");
    std::fs::write(&ledger, "")?;
    let run_ms = (args.minutes * 60_000.0) as i64;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut workload = Workload::new(&ledger);
    let started_ms = now_ms();
    let until_ms = started_ms + run_ms;
    for _ in 0..args.jobs {
        let id = workload.new_id();
        let sched = Workload::draw_schedule(&mut rng, until_ms);
        workload.create(&api, &id, sched).await?;
    }
    println!("chaos: {} jobs created; faults until {until_ms}", args.jobs);
    let workload = Arc::new(Mutex::new(workload));

    // Changes to jobs, collection of records, and the nemesis, until the time is up.
    let mutations = {
        let (api, workload) = (api.clone(), workload.clone());
        let mut rng = StdRng::seed_from_u64(args.seed.wrapping_add(1));
        tokio::spawn(async move {
            let mut done = 0usize;
            while now_ms() < until_ms - 10_000 {
                let pause = rand::Rng::random_range(&mut rng, 2_000..6_000);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let mut w = workload.lock().await;
                match w.mutate(&api, &mut rng, until_ms).await {
                    Ok(what) => {
                        println!("workload: {} {what}", now_ms());
                        done += 1;
                    }
                    Err(e) => eprintln!("chaos: a job change failed: {e:#}"),
                }
            }
            done
        })
    };
    let collector = {
        let (api, workload) = (api.clone(), workload.clone());
        tokio::spawn(async move {
            while now_ms() < until_ms {
                collect_all(&api, &workload).await;
                tokio::time::sleep(Duration::from_secs(20)).await;
            }
        })
    };
    let nodes = Arc::new(Mutex::new(nodes));
    let nemesis = nemesis::Nemesis {
        nodes: nodes.clone(),
        proxies: Arc::new(proxies),
        cluster: cluster.clone(),
        http: api.http().clone(),
        ttl,
        log: std::fs::File::create(out.join("nemesis.log"))?,
        kinds: if args.faults.is_empty() {
            model::FaultKind::ALL.to_vec()
        } else {
            args.faults.clone()
        },
    };
    let faults = nemesis
        .run(StdRng::seed_from_u64(args.seed.wrapping_add(2)), until_ms)
        .await;
    let changes = mutations.await?;
    collector.await?;

    // Heal (the nemesis healed each fault; make sure every node runs), settle, read everything.
    let healed_ms = now_ms();
    {
        let mut nodes = nodes.lock().await;
        for node in nodes.iter_mut() {
            node.signal(nix::sys::signal::Signal::SIGCONT);
            if !node.is_running() {
                node.spawn()?;
            }
        }
    }
    let settle = ttl * 3 + Duration::from_secs(15);
    println!("chaos: faults over at {healed_ms}; settling for {settle:?}");
    tokio::time::sleep(settle).await;
    collect_all(&api, &workload).await;
    let collected_ms = now_ms();
    {
        let mut nodes = nodes.lock().await;
        for node in nodes.iter_mut() {
            if let Err(e) = node.terminate(Duration::from_secs(40)).await {
                eprintln!("chaos: {e:#}");
            }
        }
    }

    // Check and report.
    let workload = workload.lock().await;
    let ledger_lines: Vec<LedgerLine> = std::fs::read_to_string(&ledger)?
        .lines()
        .filter_map(LedgerLine::parse)
        .collect();
    let jobs: Vec<_> = workload.logs.values().cloned().collect();
    let mut records: Vec<_> = workload.records.values().cloned().collect();
    records.sort_by(|a, b| (&a.job, a.scheduled_ms).cmp(&(&b.job, b.scheduled_ms)));
    let settle_ms = settle.as_millis() as i64;
    let input = check::Input {
        jobs: &jobs,
        records: &records,
        ledger: &ledger_lines,
        faults: &faults,
        window_end_ms: collected_ms - settle_ms,
        margin_ms: ttl.as_millis() as i64 + 2_000,
        settle_ms,
        ttl_ms: ttl.as_millis() as i64,
    };
    let verdict = check::check(&input);
    let run = report::Run {
        args: args.clone(),
        started_ms,
        until_ms,
        healed_ms,
        collected_ms,
        job_changes: changes,
        jobs_total: jobs.len(),
    };
    report::write(out, &run, &input, &verdict)?;
    let ok = verdict.violations.is_empty();
    println!(
        "chaos: {} fires, {} instants checked, {} faults, {} violations: {} (report in {})",
        verdict.counts.fires,
        verdict.counts.instants_checked,
        faults.len(),
        verdict.violations.len(),
        if ok { "PASS" } else { "FAIL" },
        out.join("report.md").display()
    );
    Ok(ok)
}

/// Waits until the cluster lists `n` members and a leader.
async fn wait_for_members(api: &api::Api, n: usize) -> anyhow::Result<()> {
    let deadline = now_ms() + 60_000;
    loop {
        if let Ok((200, cluster)) = api.send(reqwest::Method::GET, "/v1/cluster", None).await
            && cluster["members"].as_array().map_or(0, Vec::len) == n
            && cluster["leader"].is_object()
        {
            return Ok(());
        }
        if now_ms() > deadline {
            bail!("the cluster did not list {n} members with a leader within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads the recent records of every live job, one job at a time (the workload stays free in between).
async fn collect_all(api: &api::Api, workload: &Mutex<Workload>) {
    let ids = workload.lock().await.live_ids();
    let mut failed = 0;
    for id in ids {
        let mut w = workload.lock().await;
        if let Err(e) = w.collect(api, &id).await {
            failed += 1;
            if failed <= 3 {
                eprintln!("chaos: collecting {id}: {e:#}");
            }
        }
    }
    if failed > 3 {
        eprintln!("chaos: collecting failed for {failed} jobs this round");
    }
}
