//! The command line: `campanile serve`, `config check`, the API client commands (`job ...`, `cluster`,
//! `rebalance plan`), and `completions` and `man`, generated from these definitions. Exit codes: 0 ok (also
//! when the reader of standard output went away, as in `| head -1`), 1 error, 2 usage.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Overrides;

/// Campanile: a distributed cron scheduler.
#[derive(Debug, Parser)]
#[command(name = "campanile", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: the scheduler and its HTTP API (default: in-process store under ./campanile-data,
    /// API on 127.0.0.1:7070).
    Serve(ServeArgs),
    /// Check configuration files.
    Config {
        /// What to check.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage jobs through a server's API.
    Job {
        /// Where and how to connect.
        #[command(flatten)]
        client: ClientArgs,
        /// What to do.
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Show the cluster: members, leader, assignment.
    Cluster {
        /// Where and how to connect.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a worker of an executor group (`campanile worker --join HOST:PORT --group NAME`), or list the
    /// workers connected to a node (`campanile worker ls`).
    Worker(WorkerCli),
    /// Plan rebalances.
    Rebalance {
        /// What to do.
        #[command(subcommand)]
        command: RebalanceCommand,
    },
    /// Work with schedules without a server: `campanile schedule next '30 1 * * *' --tz Europe/London`.
    Schedule {
        /// What to do.
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// Print a shell completion script: `campanile completions bash > /etc/bash_completion.d/campanile`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    Man {
        /// Write `campanile.1` and a page per subcommand (`campanile-job-add.1`, ...) into this directory
        /// instead of printing the main page.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// `campanile serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/operations.md); flags and CAMPANILE_* variables override it.
    #[arg(long, env = "CAMPANILE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Settings that override the file.
    #[command(flatten)]
    pub overrides: Overrides,
}

/// `campanile config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate a configuration file, then print the effective configuration.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

/// How client commands reach the server.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "CAMPANILE_SERVER",
        default_value = "http://127.0.0.1:7070"
    )]
    pub server: String,
    /// API token (sent as Authorization: Bearer).
    #[arg(long, global = true, env = "CAMPANILE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate to trust for an https server (besides the system's).
    #[arg(long, global = true, env = "CAMPANILE_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Output format of client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// `campanile job ...`.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create a job from a JSON or TOML file, or from flags: `job add --schedule '* * * * * *' -- echo hi`;
    /// or many from a JSON Lines file: `job add --file jobs.jsonl`.
    Add(AddArgs),
    /// List jobs.
    Ls(LsArgs),
    /// Show a job.
    Get {
        /// Job id.
        id: String,
    },
    /// Change a job: with flags (a merge patch), with --file (a replacement), or in $EDITOR.
    Edit(EditArgs),
    /// Delete a job and its history.
    Rm {
        /// Job id.
        id: String,
    },
    /// Pause a job.
    Pause {
        /// Job id.
        id: String,
    },
    /// Resume a paused job.
    Resume {
        /// Job id.
        id: String,
    },
    /// Run a job now, once.
    Trigger {
        /// Job id.
        id: String,
    },
    /// Copy a job under a new id.
    Clone {
        /// Job id.
        id: String,
        /// Id of the copy (generated if absent).
        #[arg(long = "id", value_name = "ID")]
        new_id: Option<String>,
        /// Name of the copy.
        #[arg(long)]
        name: Option<String>,
    },
    /// Run every instant in [from, to] that has no run record.
    Backfill {
        /// Job id.
        id: String,
        /// First instant, RFC 3339 (2026-01-01T00:00:00Z).
        #[arg(long)]
        from: String,
        /// Last instant, RFC 3339.
        #[arg(long)]
        to: String,
    },
    /// Preview the next fire times.
    Next {
        /// Job id.
        id: String,
        /// How many.
        #[arg(short, long, default_value_t = 10)]
        n: usize,
    },
    /// List a job's runs, newest first.
    Runs {
        /// Job id.
        id: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only this outcome (succeeded, failed, timed_out, skipped, misfired, in_doubt).
        #[arg(long)]
        outcome: Option<String>,
    },
}

/// `campanile job add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Job file: JSON, or TOML if it ends in .toml; `-` reads JSON from stdin. Flags override its fields.
    /// A file ending in .jsonl or .ndjson (or any file with --jsonl) holds many jobs, one JSON object a line.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Read --file as JSON Lines: one job a line, created in batches of up to 10,000 (each batch all or
    /// none); implied by a .jsonl or .ndjson file name. Use `--file - --jsonl` for stdin.
    #[arg(long, requires = "file", conflicts_with_all = ["id", "name", "schedule", "tz", "namespace", "labels",
        "timeout", "overlap", "paused", "http", "argv"])]
    pub jsonl: bool,
    /// Job id (generated if absent).
    #[arg(long)]
    pub id: Option<String>,
    /// Job name (default: the id, or the program name).
    #[arg(long)]
    pub name: Option<String>,
    /// Schedule: cron (5-7 fields), @daily, "@every 30s", "@at 2026-01-01T00:00:00Z".
    #[arg(long)]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule (default UTC).
    #[arg(long)]
    pub tz: Option<String>,
    /// Namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Label key=value (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Run timeout of the command (30s, 5m).
    #[arg(long)]
    pub timeout: Option<String>,
    /// Overlap policy: allow, skip, buffer_one, cancel_previous.
    #[arg(long)]
    pub overlap: Option<String>,
    /// Create it paused.
    #[arg(long)]
    pub paused: bool,
    /// Call this URL (an HTTP target) instead of running a command.
    #[arg(long, value_name = "URL", conflicts_with = "argv")]
    pub http: Option<String>,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "ARGV")]
    pub argv: Vec<String>,
}

impl AddArgs {
    /// Whether `--file` holds many jobs, one a line.
    pub fn is_jsonl(&self) -> bool {
        self.jsonl
            || self.file.as_ref().is_some_and(|f| {
                f.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson")
                })
            })
    }
}

/// `campanile job ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only jobs with these labels: key=value[,key=value].
    #[arg(long)]
    pub label: Option<String>,
    /// Only paused (true) or active (false) jobs.
    #[arg(long)]
    pub paused: Option<bool>,
}

/// `campanile job edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// Job id.
    pub id: String,
    /// Replace the job with this JSON/TOML file (PUT, checked against the revision read first).
    #[arg(long, short, conflicts_with_all = ["schedule", "tz", "name", "timeout", "set"])]
    pub file: Option<PathBuf>,
    /// New schedule.
    #[arg(long)]
    pub schedule: Option<String>,
    /// New time zone.
    #[arg(long)]
    pub tz: Option<String>,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// New command timeout.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Set any field of the job JSON: KEY=JSON (overlap="allow", retry={"max_retries":3}); dotted keys nest.
    #[arg(long, value_name = "KEY=JSON")]
    pub set: Vec<String>,
}

/// `campanile rebalance ...`.
#[derive(Debug, Subcommand)]
pub enum RebalanceCommand {
    /// What the rebalancer would assign: offline from a scenario file, or for the live cluster.
    Plan(PlanArgs),
}

/// `campanile rebalance plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Scenario file (JSON, or TOML if it ends in .toml): {"jobs": [...], "previous": {...}, "nodes": [...]}.
    /// Planned offline, without a server.
    #[arg(long, short, conflicts_with_all = ["drain", "join"])]
    pub input: Option<PathBuf>,
    /// Plan the live cluster as if this node left.
    #[arg(long)]
    pub drain: Option<String>,
    /// Plan the live cluster as if a node with this id joined.
    #[arg(long)]
    pub join: Option<String>,
    /// Where and how to connect (for live plans).
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `campanile schedule ...`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print a schedule's next instants (DST changes marked) and its plain-language reading, computed here
    /// by the same code as the API's `POST /v1/schedules/preview` (no server needed).
    Next {
        /// The schedule, as a job's `schedule` field (`'30 1 * * *'`, `@daily`, `'@every 90m'`).
        schedule: String,
        /// IANA time zone the schedule is read in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// DST handling of cron wall-clock times: `cronie` or `skip_gap`.
        #[arg(long, default_value = "cronie")]
        dst: String,
        /// Which pass of a repeated autumn hour a fixed time runs in: `first`, `last` or `both`.
        #[arg(long, default_value = "first")]
        dst_repeat: String,
        /// How many instants, 1 to 100.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Start after this instant (RFC 3339) instead of now.
        #[arg(long)]
        after: Option<String>,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// `campanile worker`: run one, or `ls`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct WorkerCli {
    /// `ls`; without one, run a worker.
    #[command(subcommand)]
    pub command: Option<WorkerCommand>,
    /// How to run the worker.
    #[command(flatten)]
    pub run: WorkerArgs,
}

/// `campanile worker ...`.
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// List the workers connected to every live node (`GET /v1/workers`), naming the nodes that did not
    /// answer.
    Ls {
        /// Where and how to connect.
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// How a worker runs.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Cluster addresses of the nodes to serve (HOST:PORT, comma-separated): list every node, since a job's
    /// fires go to workers connected to the node that owns it; optional with --coordinator.
    #[arg(
        long,
        env = "CAMPANILE_JOIN",
        value_name = "HOST:PORT",
        value_delimiter = ',',
        required_unless_present = "coordinator"
    )]
    pub join: Vec<String>,
    /// The nodes' coordinator (etcd://HOST:PORT[,...]/PREFIX or zk://HOST:PORT[,...]/CHROOT): the worker
    /// links to every node that publishes a cluster address there, and follows nodes joining and leaving.
    #[arg(long, env = "CAMPANILE_COORDINATOR", value_name = "URL")]
    pub coordinator: Option<String>,
    /// TOML configuration file whose etcd or zookeeper table says how to reach --coordinator (credentials,
    /// TLS); its other tables are not used.
    #[arg(
        long,
        env = "CAMPANILE_CONFIG",
        value_name = "FILE",
        requires = "coordinator"
    )]
    pub config: Option<PathBuf>,
    /// The executor group this worker serves (jobs name it in "executor": {"group": NAME}).
    #[arg(long, env = "CAMPANILE_GROUP", value_name = "NAME", required = true)]
    pub group: Option<String>,
    /// This worker's id, unique in the cluster [default: HOSTNAME-PID]; commands get it as CAMPANILE_WORKER_ID.
    #[arg(long, env = "CAMPANILE_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,
    /// Labels shown by `worker ls` (k=v, comma-separated).
    #[arg(
        long,
        env = "CAMPANILE_LABELS",
        value_name = "K=V",
        value_delimiter = ','
    )]
    pub labels: Vec<String>,
    /// Most runs at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_concurrent: u32,
    /// File holding the cluster cookie (the nodes' --cluster-cookie-file); required to join a node that is not
    /// on loopback.
    #[arg(long, env = "CAMPANILE_CLUSTER_COOKIE_FILE", value_name = "FILE")]
    pub cluster_cookie_file: Option<PathBuf>,
    /// PEM file of the CA certificates the nodes' cluster-port certificates must chain to: connect over TLS
    /// (to nodes whose cluster table sets tls_cert and tls_key).
    #[arg(long, env = "CAMPANILE_CLUSTER_TLS_CA", value_name = "FILE")]
    pub cluster_tls_ca: Option<PathBuf>,
    /// Environment variables of the worker that commands receive, besides PATH, HOME, LANG and TZ
    /// (comma-separated).
    #[arg(
        long,
        env = "CAMPANILE_INHERIT_ENV",
        value_name = "NAMES",
        value_delimiter = ','
    )]
    pub inherit_env: Vec<String>,
    /// Log filter (info, debug, campanile=debug,info).
    #[arg(
        long,
        env = "CAMPANILE_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log_level: String,
}
