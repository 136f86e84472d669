//! The `campanile` binary: `serve` runs a node; `worker` runs a worker of an executor group; `job`, `cluster`,
//! `worker ls` and `rebalance` talk to a node; `config
//! check` validates a file; `completions` and `man` print what packaging installs. Exit codes: 0 ok (also
//! when standard output's reader went away: `| head -1`), 1 error, 2 usage (from clap).

use std::process::ExitCode;

use anyhow::Context;
use campanile_runtime::cli::{
    Cli, Command, ConfigCommand, RebalanceCommand, ScheduleCommand, WorkerCommand,
};
use campanile_runtime::config::{Config, LogConfig};
use campanile_runtime::output::write_bytes;
use campanile_runtime::{client, out, output, server, telemetry};
use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`campanile job runs ID | head -1`): it has what it wanted.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let config = Config::from_file(&file)?;
            let effective =
                toml::to_string(&config.redacted()).context("failed to print the configuration")?;
            out!(
                "# {} is valid; effective configuration:\n{effective}",
                file.display()
            )?;
            Ok(())
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "campanile", &mut script);
            Ok(write_bytes(&script)?)
        }
        Command::Man { out_dir: None } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            Ok(write_bytes(&page)?)
        }
        Command::Man { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create --out-dir {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))
        }
        Command::Serve(args) => {
            let config = Config::load(args.config.as_deref(), &args.overrides)?;
            telemetry::init_logs(&config.log)?;
            runtime()?.block_on(server::serve(config))
        }
        Command::Job { client, command } => runtime()?.block_on(client::job(&client, &command)),
        Command::Cluster { client } => runtime()?.block_on(client::cluster(&client)),
        Command::Worker(worker) => match worker.command {
            Some(WorkerCommand::Ls { client }) => runtime()?.block_on(client::workers(&client)),
            None => {
                telemetry::init_logs(&LogConfig {
                    level: worker.run.log_level.clone(),
                    ..LogConfig::default()
                })?;
                runtime()?.block_on(campanile_runtime::worker::run(&worker.run))
            }
        },
        Command::Schedule {
            command:
                ScheduleCommand::Next {
                    schedule,
                    tz,
                    dst,
                    dst_repeat,
                    count,
                    after,
                    output,
                },
        } => client::schedule_next(
            &schedule,
            &tz,
            &dst,
            &dst_repeat,
            count,
            after.as_deref(),
            output,
        ),
        Command::Rebalance {
            command: RebalanceCommand::Plan(args),
        } => runtime()?.block_on(client::rebalance_plan(&args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}
