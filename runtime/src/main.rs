//! The `campanile` binary: `serve` runs a node; `job`, `cluster` and `rebalance` talk to one; `config
//! check` validates a file. Exit codes: 0 ok, 1 error, 2 usage (from clap).

use std::process::ExitCode;

use anyhow::Context;
use campanile_runtime::cli::{Cli, Command, ConfigCommand, RebalanceCommand};
use campanile_runtime::config::Config;
use campanile_runtime::{client, server, telemetry};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
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
            println!("# {} is valid; effective configuration:", file.display());
            print!(
                "{}",
                toml::to_string(&config).context("failed to print the configuration")?
            );
            Ok(())
        }
        Command::Serve(args) => {
            let config = Config::load(args.config.as_deref(), &args.overrides)?;
            telemetry::init_logs(&config.log)?;
            runtime()?.block_on(server::serve(config))
        }
        Command::Job { client, command } => runtime()?.block_on(client::job(&client, &command)),
        Command::Cluster { client } => runtime()?.block_on(client::cluster(&client)),
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
