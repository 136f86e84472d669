//! The command runner: one attempt of a [`CommandTarget`] as a child process in its own process group,
//! with its output captured into a bounded tail and the whole group killed on timeout or cancellation.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::tail::OutputTail;
use super::{AttemptResult, BaseEnv, FireContext, timeout_reason};
use crate::job::{CommandTarget, FireId};
use crate::run::{Outcome, RunRecord};

/// How long output is still read after the command ended (exited, or was killed) while something keeps the
/// pipe open: a process it started in another session or process group, which the group kill does not
/// reach. Output already in the pipe is read at once; this only bounds the wait for such stragglers, so that
/// they cannot hold the attempt (and the executor's slot) forever.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Size of one read from the output pipe. Memory stays at this plus `RunRecord::MAX_OUTPUT`, whatever the
/// command writes.
const CHUNK: usize = 64 * 1024;

/// Runs a command target once.
///
/// - `argv` is executed directly (no shell), `argv[0]` looked up in the child's `PATH` if it has no `/`. The
///   child's environment is `base` (never the node's whole environment), then `cmd.env` (references
///   resolved now: one that cannot be is the run's failure, naming it), then `CAMPANILE_FIRE_ID`, `CAMPANILE_JOB_ID`,
///   `CAMPANILE_JOB_NAME`, `CAMPANILE_SCHEDULED_AT`, `CAMPANILE_ATTEMPT` and `CAMPANILE_NODE_ID`, which are set
///   last so that a job's `env` cannot forge the fire's identity. stdin is `/dev/null`; stdout and stderr share
///   one pipe (as `2>&1` would), of which the last `RunRecord::MAX_OUTPUT` bytes are kept.
/// - The child leads a new process group. On timeout the whole group gets `SIGKILL` and the child is reaped:
///   outcome `TimedOut`, reason `timeout 5s`. If this future is dropped before the child was reaped (the
///   executor cancels the run), the group gets `SIGKILL` too, and tokio reaps the child in the background.
///   Processes that the command moved to another group or session (`setsid`) are out of reach, as with any
///   process-group kill. A command that exits by itself is reaped and its group left alone (as cron does):
///   background processes it leaves behind keep running, and their output is read until they close the pipe,
///   or for at most half a second after the command ended.
/// - Exit 0 is `Succeeded`; another code is `Failed` with that code; death by a signal is `Failed` with a reason
///   naming the signal; a program that cannot start is `Failed` with a reason naming `argv[0]` and the OS error.
///
/// Needs a tokio runtime with IO and time enabled (as `tokio::process` does).
pub async fn run_command(cmd: &CommandTarget, ctx: &FireContext, base: &BaseEnv) -> AttemptResult {
    let Some(program) = cmd.argv.first() else {
        return AttemptResult::not_started("argv is empty: no program to run".to_owned());
    };
    let (output, mut group) = match spawn(cmd, ctx, base) {
        Ok(spawned) => spawned,
        Err(reason) => {
            warn!(fire = %ctx.fire, attempt = ctx.attempt, %reason, "command did not start");
            return AttemptResult::not_started(reason);
        }
    };
    debug!(fire = %ctx.fire, attempt = ctx.attempt, program = %program, pgid = group.pgid.as_raw(), "command started");

    let started = Instant::now();
    let deadline = cmd.timeout.map(|timeout| started + timeout);
    let expired = sleep_until(deadline);
    tokio::pin!(expired);
    let mut output = Some(output);
    let mut tail = OutputTail::new(RunRecord::MAX_OUTPUT);
    let mut chunk = vec![0; CHUNK];

    // Read output until the child ends or the deadline passes. Exit and deadline come first (`biased`), so a
    // command that writes without pause cannot starve either of them.
    let ended = loop {
        tokio::select! {
            biased;
            status = group.wait() => break Some(status),
            () = &mut expired => break None,
            read = read_some(output.as_ref(), &mut chunk) => {
                if !keep(read, &chunk, &mut tail, &ctx.fire) {
                    output = None;
                }
            }
        }
    };

    let (outcome, code, reason) = match ended {
        Some(Ok(status)) => classify(status),
        Some(Err(err)) => (
            Outcome::Failed,
            None,
            Some(format!("failed to wait for {program:?}: {err}")),
        ),
        None => {
            let timeout = cmd.timeout.unwrap_or_default();
            warn!(
                fire = %ctx.fire,
                attempt = ctx.attempt,
                pgid = group.pgid.as_raw(),
                timeout = %humantime::format_duration(timeout),
                "command timed out, killing its process group"
            );
            // The child is not reaped yet, so the group id cannot have been reused: this reaches our processes
            // only.
            group.kill();
            if let Err(err) = group.wait().await {
                warn!(fire = %ctx.fire, pgid = group.pgid.as_raw(), %err, "failed to reap a killed command");
            }
            (Outcome::TimedOut, None, Some(timeout_reason(timeout)))
        }
    };

    // What the command wrote just before it ended may still sit in the pipe.
    if let Some(pipe) = output {
        let drain = async {
            while keep(
                read_some(Some(&pipe), &mut chunk).await,
                &chunk,
                &mut tail,
                &ctx.fire,
            ) {}
        };
        if tokio::time::timeout(DRAIN_GRACE, drain).await.is_err() {
            warn!(
                fire = %ctx.fire,
                grace = %humantime::format_duration(DRAIN_GRACE),
                "output still open after the command ended, stopped reading"
            );
        }
    }

    debug!(
        fire = %ctx.fire,
        attempt = ctx.attempt,
        outcome = outcome.as_str(),
        code,
        output_bytes = tail.total(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "command ended"
    );
    AttemptResult {
        outcome,
        code,
        output: tail.into_string(),
        reason,
    }
}

/// Who a command runs as, resolved on this node.
struct Identity {
    uid: u32,
    gid: u32,
    home: std::path::PathBuf,
}

/// Resolves a job's `run_as` on this node: allowed here, the node running as root, the user and group known.
/// Errors are the run's failure reason, naming the field and the value.
fn run_as(run_as: &crate::job::RunAs, base: &BaseEnv) -> Result<Identity, String> {
    use nix::unistd::{Gid, Group, Uid, User, geteuid};

    if !base.allows_run_as(&run_as.user) {
        return Err(format!(
            "run_as.user: {:?}: this node does not allow running commands as that user (allow_run_as)",
            run_as.user
        ));
    }
    let me = geteuid();
    if !me.is_root() {
        return Err(format!(
            "run_as.user: {:?}: the node runs as uid {me}, not root, so it cannot run commands as another user",
            run_as.user
        ));
    }
    let user = match run_as.user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(&run_as.user),
    }
    .map_err(|e| format!("run_as.user: {:?}: failed to look it up: {e}", run_as.user))?
    .ok_or_else(|| format!("run_as.user: {:?}: no such user on this node", run_as.user))?;
    let gid = match &run_as.group {
        None => user.gid,
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => Gid::from_raw(gid),
            Err(_) => {
                Group::from_name(group)
                    .map_err(|e| format!("run_as.group: {group:?}: failed to look it up: {e}"))?
                    .ok_or_else(|| format!("run_as.group: {group:?}: no such group on this node"))?
                    .gid
            }
        },
    };
    Ok(Identity {
        uid: user.uid.as_raw(),
        gid: gid.as_raw(),
        home: user.dir,
    })
}

/// Starts the child with its output pipe. Errors are the run's failure reason.
fn spawn(
    cmd: &CommandTarget,
    ctx: &FireContext,
    base: &BaseEnv,
) -> Result<(pipe::Receiver, ProcessGroup), String> {
    let pipe_failed = |err: io::Error| format!("failed to create the output pipe: {err}");
    // `io::pipe` sets close-on-exec on both ends, so commands spawned concurrently do not inherit our write
    // end (which would delay the end of output until they exit).
    let (reader, writer) = io::pipe().map_err(pipe_failed)?;
    let output = pipe::Receiver::from_owned_fd(reader.into()).map_err(pipe_failed)?;
    let stderr = writer.try_clone().map_err(pipe_failed)?;

    let mut env = Vec::with_capacity(cmd.env.len());
    for (name, value) in &cmd.env {
        env.push((
            name,
            value
                .resolve()
                .map_err(|reason| format!("env {name}: {reason}"))?,
        ));
    }
    let user = cmd.run_as.as_ref().map(|r| run_as(r, base)).transpose()?;
    let mut command = Command::new(&cmd.argv[0]);
    command
        .args(&cmd.argv[1..])
        .env_clear()
        .envs(base.vars())
        .envs(env)
        .env("CAMPANILE_FIRE_ID", ctx.fire.to_string())
        .env("CAMPANILE_JOB_ID", ctx.fire.job.as_str())
        .env("CAMPANILE_JOB_NAME", &ctx.job_name)
        .env("CAMPANILE_SCHEDULED_AT", ctx.scheduled_at())
        .env("CAMPANILE_ATTEMPT", ctx.attempt.to_string())
        .env("CAMPANILE_NODE_ID", ctx.node.to_string())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr)
        .process_group(0)
        // Dropping the `Child` must not just kill the leader: `ProcessGroup` kills the group instead.
        .kill_on_drop(false);
    if let Some(cwd) = &cmd.cwd {
        command.current_dir(cwd);
    }
    if let Some(user) = &user {
        // std drops the supplementary groups (`setgroups(0)`), then sets the gid, then the uid, in the child
        // before it executes the program.
        command.uid(user.uid).gid(user.gid);
        if !cmd.env.contains_key("HOME") {
            command.env("HOME", &user.home);
        }
    }
    let child = command.spawn().map_err(|err| match &cmd.cwd {
        Some(cwd) => format!(
            "failed to start {:?} in {}: {err}",
            cmd.argv[0],
            cwd.display()
        ),
        None => format!("failed to start {:?}: {err}", cmd.argv[0]),
    })?;
    // `command` still holds the parent's copies of the pipe's write end; they close when it is dropped on
    // return, so that the reader sees the end of output once the command's processes have closed theirs.
    let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
        // A child is only without a pid once reaped, which nothing did yet.
        return Err(format!("started {:?} but it has no pid", cmd.argv[0]));
    };
    Ok((
        output,
        ProcessGroup {
            child,
            pgid: Pid::from_raw(pid),
            reaped: false,
            fire: ctx.fire.clone(),
        },
    ))
}

/// The child and the process group it leads (`pgid` = its pid).
///
/// While the child is not reaped its pid, and so the group id, cannot be reused, which makes `kill` safe.
/// Once it is reaped, the id may name someone else's group: so the group is killed on drop only if the
/// child was not reaped (the run was cancelled), and never after.
struct ProcessGroup {
    child: Child,
    pgid: Pid,
    /// The child was reaped (or `wait` failed, so it may have been reaped elsewhere): its pid is no longer ours.
    reaped: bool,
    fire: FireId,
}

impl ProcessGroup {
    /// Waits for the child to end and reaps it. Cancel-safe.
    async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await;
        self.reaped = true;
        status
    }

    /// Sends `SIGKILL` to the whole group.
    fn kill(&self) {
        debug_assert!(
            !self.reaped,
            "killing a process group after reaping its leader"
        );
        match killpg(self.pgid, Signal::SIGKILL) {
            // ESRCH: every process of the group has already exited.
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => {
                warn!(fire = %self.fire, pgid = self.pgid.as_raw(), %err, "failed to kill a process group");
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.reaped {
            info!(fire = %self.fire, pgid = self.pgid.as_raw(), "run cancelled, killing its process group");
            self.kill();
            // Dropping `child` next hands it to tokio's orphan queue, which reaps it.
        }
    }
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Reads what is available from the pipe (0 at end of output); pending forever without a pipe. Cancel-safe:
/// nothing is consumed before `try_read`, which does not wait.
async fn read_some(pipe: Option<&pipe::Receiver>, buf: &mut [u8]) -> io::Result<usize> {
    let Some(pipe) = pipe else {
        return std::future::pending().await;
    };
    loop {
        pipe.readable().await?;
        match pipe.try_read(buf) {
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            read => return read,
        }
    }
}

/// Appends a read to the tail; false when reading should stop (end of output, or an error: the pipe is then
/// dropped, so that the command gets `EPIPE` instead of blocking on a full pipe nobody reads).
fn keep(read: io::Result<usize>, chunk: &[u8], tail: &mut OutputTail, fire: &FireId) -> bool {
    match read {
        Ok(0) => false,
        Ok(n) => {
            tail.push(&chunk[..n]);
            true
        }
        Err(err) => {
            warn!(fire = %fire, %err, "failed to read command output, dropping the rest");
            false
        }
    }
}

/// Outcome, code and reason of a child that ended by itself.
fn classify(status: ExitStatus) -> (Outcome, Option<i32>, Option<String>) {
    if let Some(code) = status.code() {
        return if code == 0 {
            (Outcome::Succeeded, Some(0), None)
        } else {
            (
                Outcome::Failed,
                Some(code),
                Some(format!("exit code {code}")),
            )
        };
    }
    let reason = match status.signal() {
        Some(signal) => {
            let name = Signal::try_from(signal).map_or("unknown signal", Signal::as_str);
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("killed by {name} (signal {signal}){core}")
        }
        None => format!("ended with {status}"),
    };
    (Outcome::Failed, None, Some(reason))
}
