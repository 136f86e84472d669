//! The node supervisor: the root actor of one Campanile node, and its children.
//!
//! ```text
//!                 node (this actor: supervisor, routes handle requests, runs shutdown)
//!   ┌───────────────┬──────────┴───┬─────────────────┐
//! membership      timer         executor          recorder
//!  session,        next        overlap policy,    batches run
//!  leader,       instants,     runs with          records to the
//!  assignment     claims       timeouts, retries  coordinator
//! ```
//! Fires flow timer → executor → recorder; settled instants flow recorder → timer; owned jobs and the session
//! lease flow membership → timer (and the session to the recorder). The overlap decision is made in the
//! executor (see `overlap`), where runs end, so a fire crosses one mailbox between its wake and its start.
//!
//! **Restart policy** (ractor has none by default and would just stop the parent): if any child fails or stops
//! unexpectedly, the whole set is stopped and started again, crash-only: state lives in the coordinator, the new
//! set opens a new session (after the old one expires, since a node id has at most one live session), and the
//! instants the old set left unsettled are accounted for as after any takeover (in doubt or misfired, per
//! policy). At most [`MAX_RESTARTS`] restarts within [`RESTART_WINDOW`]; one more and the node stops for good
//! (the handle's calls then fail with `SchedulerError::Stopped`), because a child that keeps failing is a bug a
//! restart will not fix.

pub mod executor;
pub mod fire;
pub mod membership;
pub mod overlap;
pub mod recorder;
pub mod timer;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::coordinator::{Coordinator, NodeInfo};

/// The node's session and the wall time (Unix ms) until which it is proven valid, written by the membership
/// actor and read by the executor right before a run starts (`None`: no valid session). A fire starts only
/// if it was claimed under that very session and the time is before the end ([`timer::Lease::permits`], the
/// same check the timer emits by): a shared value rather than a
/// message, so that a fire queued behind others (or behind a freeze) cannot start on stale news, and a new
/// session does not make an old session's fires valid again.
pub type Fence = Arc<std::sync::Mutex<Option<timer::Lease>>>;

/// Jobs reassigned away from this node whose claims it is running out, written by the timer and read by the
/// executor: a fire of such a job must not start after the end of its claim window (a successor may be firing
/// later instants by then). Fires of jobs still owned start whenever they can: their claims are renewed.
pub type Revoked = Arc<std::sync::Mutex<rustc_hash::FxHashSet<crate::job::JobId>>>;

/// Restarts allowed within [`RESTART_WINDOW`].
pub const MAX_RESTARTS: usize = 3;
/// The window in which restarts are counted.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The node supervisor actor.
pub struct Node;

/// Tunables of a node (defaults in the scheduler's builder).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Session TTL.
    pub ttl: Duration,
    /// How far ahead instants are claimed (kept at most half the TTL).
    pub lookahead: Duration,
    /// Later than this, an instant is a misfire.
    pub misfire_threshold: Duration,
    /// Most runs at once on this node.
    pub max_concurrent: usize,
    /// Leader debounce before publishing a new assignment.
    pub rebalance_delay: Duration,
}

/// Messages of the node supervisor.
#[derive(Debug)]
pub enum Msg {
    /// This node's view of itself.
    Status {
        /// The answer.
        reply: RpcReplyPort<membership::NodeStatus>,
    },
    /// Freeze every actor of the node for this long, as if the process were stopped (SIGSTOP): used by the
    /// cluster simulation and chaos tests. Runs already started keep running, as threads of a real process
    /// would not; everything else (timer, keep-alives, claims, records) stands still.
    Freeze(Duration),
    /// Graceful leave: stop firing, hand claims back, wait for running runs up to `deadline`, store their
    /// records, close the session, stop.
    Shutdown {
        /// How long running runs may take.
        deadline: Duration,
        /// Answered when done.
        reply: RpcReplyPort<ShutdownReport>,
    },
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Runs killed because they outlived the deadline.
    pub killed: usize,
    /// Whether every run record reached the coordinator.
    pub records_stored: bool,
}

/// What the node is started with.
pub struct Arguments {
    /// The shared store.
    pub coordinator: Arc<dyn Coordinator>,
    /// Wall time.
    pub clock: Arc<dyn Clock>,
    /// This node.
    pub info: NodeInfo,
    /// Registered handlers.
    pub handlers: Arc<executor::Handlers>,
    /// What commands start from.
    pub base_env: crate::exec::BaseEnv,
    /// Where HTTP targets may connect.
    pub egress: crate::exec::Egress,
    /// Tunables.
    pub config: Config,
    /// Where the recorder announces stored records.
    pub stored: tokio::sync::broadcast::Sender<crate::run::RunRecord>,
    /// The history store accepted records are copied to, if any.
    pub history: Option<Arc<dyn crate::history::HistoryStore>>,
    /// The hub of executor groups, when the node has a cluster port.
    pub hub: Option<crate::cluster::Hub>,
}

struct Children {
    membership: ActorRef<membership::Msg>,
    timer: ActorRef<timer::Msg>,
    executor: ActorRef<executor::Msg>,
    recorder: ActorRef<recorder::Msg>,
}

impl Children {
    fn contains(&self, id: ractor::ActorId) -> bool {
        [
            self.membership.get_id(),
            self.timer.get_id(),
            self.executor.get_id(),
            self.recorder.get_id(),
        ]
        .contains(&id)
    }

    /// Stops every child and waits until each has stopped (and dropped its state).
    async fn stop_all_and_wait(&self) {
        for cell in [
            self.membership.get_cell(),
            self.timer.get_cell(),
            self.executor.get_cell(),
            self.recorder.get_cell(),
        ] {
            let _ = cell
                .stop_and_wait(None, Some(Duration::from_secs(10)))
                .await;
        }
    }

    fn stop_all(&self) {
        self.membership.stop(None);
        self.timer.stop(None);
        self.executor.stop(None);
        self.recorder.stop(None);
    }
}

/// The supervisor's state.
pub struct State {
    args: Arguments,
    children: Children,
    restarts: VecDeque<tokio::time::Instant>,
    stopping: bool,
}

async fn spawn_children(
    myself: &ActorRef<Msg>,
    args: &Arguments,
) -> Result<Children, ActorProcessingErr> {
    let cell = myself.get_cell();
    let node = args.info.id.clone();
    let fence: Fence = Arc::default();
    let revoked: Revoked = Arc::default();
    if let Some(hub) = &args.hub {
        // Workers hear this set's session in the hub's heartbeat.
        hub.set_fence(fence.clone());
    }
    let inbox = Arc::new(recorder::Inbox::default());
    let (recorder, _) = Actor::spawn_linked(
        None,
        recorder::Recorder,
        recorder::Arguments {
            coordinator: args.coordinator.clone(),
            stored: args.stored.clone(),
            inbox: inbox.clone(),
            history: args
                .history
                .clone()
                .map(|store| crate::history::Feed::start(store, args.coordinator.clone())),
        },
        cell.clone(),
    )
    .await?;
    let (executor, _) = Actor::spawn_linked(
        None,
        executor::Executor,
        executor::Arguments {
            node: node.clone(),
            clock: args.clock.clone(),
            handlers: args.handlers.clone(),
            max_concurrent: args.config.max_concurrent,
            records: recorder::Sink::new(recorder.clone(), inbox),
            fence: fence.clone(),
            revoked: revoked.clone(),
            base_env: args.base_env.clone(),
            egress: args.egress.clone(),
            hub: args.hub.clone(),
        },
        cell.clone(),
    )
    .await?;
    let lookahead = args.config.lookahead.min(args.config.ttl / 2);
    let (timer, _) = Actor::spawn_linked(
        None,
        timer::Timer,
        timer::Arguments {
            clock: args.clock.clone(),
            coordinator: args.coordinator.clone(),
            executor: executor.clone(),
            recorder: recorder.clone(),
            node: node.clone(),
            revoked,
            config: timer::Config {
                lookahead,
                misfire_threshold: args.config.misfire_threshold,
            },
        },
        cell.clone(),
    )
    .await?;
    recorder.cast(recorder::Msg::SetTimer(timer.clone()))?;
    let (membership, _) = Actor::spawn_linked(
        None,
        membership::Membership,
        membership::Arguments {
            coordinator: args.coordinator.clone(),
            clock: args.clock.clone(),
            node: args.info.clone(),
            config: membership::Config {
                ttl: args.config.ttl,
                rebalance_delay: args.config.rebalance_delay,
            },
            timer: timer.clone(),
            recorder: recorder.clone(),
            fence,
        },
        cell,
    )
    .await?;
    Ok(Children {
        membership,
        timer,
        executor,
        recorder,
    })
}

// Local only: ractor's `cluster` feature (executor groups) asks every message type to say whether it
// can cross the network; this one cannot.
impl ractor::Message for Msg {}

impl Actor for Node {
    type Msg = Msg;
    type State = State;
    type Arguments = Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        args: Arguments,
    ) -> Result<State, ActorProcessingErr> {
        let children = spawn_children(&myself, &args).await?;
        info!(node = %args.info.id, backend = args.coordinator.backend(), "node started");
        Ok(State {
            args,
            children,
            restarts: VecDeque::new(),
            stopping: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Freeze(pause) => {
                let children = &state.children;
                children.membership.cast(membership::Msg::Freeze(pause))?;
                children.timer.cast(timer::Msg::Freeze(pause))?;
                children.executor.cast(executor::Msg::Freeze(pause))?;
                children.recorder.cast(recorder::Msg::Freeze(pause))?;
                tokio::time::sleep(pause).await;
            }
            Msg::Status { reply } => {
                let status = ractor::call!(state.children.membership, |reply| {
                    membership::Msg::Status { reply }
                })?;
                let _ = reply.send(status);
            }
            Msg::Shutdown { deadline, reply } => {
                state.stopping = true;
                let children = &state.children;
                // 1. Tell the cluster we are leaving. If another node can take our jobs, the leader moves them
                //    away and the timer runs out each claim while the successor's claim starts right after:
                //    no instant missed, none late. Bounded: whatever is left after the wait is given back.
                let successors = ractor::call_t!(
                    children.membership,
                    |reply| membership::Msg::Drain { reply },
                    10_000
                )
                .unwrap_or(false);
                if successors {
                    let config = &state.args.config;
                    let handover = config.lookahead.min(config.ttl / 2) * 2
                        + config.rebalance_delay
                        + Duration::from_secs(5);
                    let _ = ractor::call_t!(
                        children.timer,
                        |reply| timer::Msg::WhenEmpty { reply },
                        handover.as_millis() as u64
                    );
                }
                // 2. Settle what predecessors left unrecorded before leaving: when the whole cluster stops at
                //    once, a predecessor that is leaving too hands its dropped instants to us, and nobody
                //    would account for them until a node starts again (postmortem: simulation seed 275).
                //    Bounded: a predecessor that does not go away within two TTLs is left to our successor.
                let settle_ms =
                    (state.args.config.ttl * 2 + Duration::from_secs(1)).as_millis() as u64;
                let _ = ractor::call_t!(
                    children.timer,
                    |reply| timer::Msg::WhenSettled { reply },
                    settle_ms
                );
                // 3. Stop emitting and hand back every claimed instant not yet emitted.
                let _ =
                    ractor::call_t!(children.timer, |reply| timer::Msg::Drain { reply }, 10_000);
                // 4. Let running runs finish, up to the deadline.
                let wait_ms = (deadline + Duration::from_secs(5)).as_millis() as u64;
                let killed = ractor::call_t!(
                    children.executor,
                    |reply| executor::Msg::Drain { deadline, reply },
                    wait_ms
                )
                .unwrap_or_default();
                // 5. Store their records.
                let records_stored = ractor::call_t!(
                    children.recorder,
                    |reply| recorder::Msg::Flush { reply },
                    10_000
                )
                .unwrap_or(false);
                // 6. Leave: close the session.
                let _ = ractor::call_t!(
                    children.membership,
                    |reply| membership::Msg::Leave { reply },
                    10_000
                );
                children.stop_all_and_wait().await;
                info!(node = %state.args.info.id, killed, records_stored, "node left");
                let _ = reply.send(ShutdownReport {
                    killed,
                    records_stored,
                });
                myself.stop(Some("shutdown".to_owned()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Msg>,
        event: SupervisionEvent,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        let (who, why) = match &event {
            SupervisionEvent::ActorFailed(who, err) => (who.get_id(), format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(who, _, reason) => {
                (who.get_id(), format!("stopped: {reason:?}"))
            }
            _ => return Ok(()),
        };
        // Stop events of a set we replaced (or are stopping) are expected.
        if state.stopping || !state.children.contains(who) {
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        while state
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            state.restarts.pop_front();
        }
        if state.restarts.len() >= MAX_RESTARTS {
            error!(node = %state.args.info.id, child = %who, why, "child failed too often; stopping the node");
            state.stopping = true;
            state.children.stop_all();
            myself.stop(Some("restart intensity exceeded".to_owned()));
            return Ok(());
        }
        warn!(node = %state.args.info.id, child = %who, why, "child failed; restarting the node's actors");
        state.restarts.push_back(now);
        state.children.stop_all();
        state.children = spawn_children(&myself, &state.args).await?;
        Ok(())
    }
}
