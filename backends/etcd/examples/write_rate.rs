//! Measures the etcd write rate of one node (transactions per second, read off etcd's revision counter)
//! while it fires `N` jobs every second, for two values of `N`: the figure in `docs/backends.md`.
//!
//! `cargo run --release -p campanile-etcd --example write_rate -- 127.0.0.1:2379 [SECONDS]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use campanile::Scheduler;
use campanile::job::{HandlerTarget, JobId, JobSpec, Target};
use campanile::schedule::Schedule;
use campanile_etcd::{EtcdConfig, EtcdCoordinator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().unwrap_or_else(|| "127.0.0.1:2379".to_owned());
    let seconds: u64 = args.next().map_or(Ok(20), |s| s.parse())?;
    for jobs in [10usize, 500] {
        let prefix = format!("/campanile-write-rate/{jobs}/");
        let fires = Arc::new(AtomicU64::new(0));
        let coordinator = EtcdCoordinator::connect(EtcdConfig::new([&endpoint], &prefix)).await?;
        let counted = Arc::clone(&fires);
        let node = Scheduler::builder()
            .coordinator(Arc::new(coordinator))
            .node_id("rate")
            .session_ttl(Duration::from_secs(10))
            .handler("noop", move |_| {
                let counted = Arc::clone(&counted);
                async move {
                    counted.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            })
            .start()
            .await?;
        for i in 0..jobs {
            let spec = JobSpec::new(
                format!("j{i}"),
                Schedule::parse("* * * * * *")?,
                Target::Handler(HandlerTarget::new("noop")),
            );
            node.create_with_id(JobId::new(format!("j{i}"))?, spec)
                .await?;
        }
        // Warm up, then count revisions (one per transaction) over the window.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut client = etcd_client::Client::connect([&endpoint], None).await?;
        let revision = |r: etcd_client::GetResponse| r.header().map_or(0, |h| h.revision());
        let before = revision(client.get("probe", None).await?);
        let fired_before = fires.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let after = revision(client.get("probe", None).await?);
        let fired = fires.load(Ordering::Relaxed) - fired_before;
        println!(
            "{jobs} jobs every second: {:.1} fires/s, {:.1} etcd writes/s",
            fired as f64 / seconds as f64,
            (after - before) as f64 / seconds as f64
        );
        node.shutdown(Duration::from_secs(10)).await?;
        client
            .delete(
                prefix,
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
            .await?;
    }
    Ok(())
}
