//! The membership actor: keeps the node's session alive, follows the job store and the assignment, tells the
//! timer which jobs this node owns, and, while leader, computes and publishes the assignment.
//!
//! Session validity is proven, not assumed: after a keep-alive *sent* at `t` succeeds, the session is valid until
//! `t + ttl`; the timer gets a lease up to `t + ttl − margin` and stops firing at its end unless a later
//! keep-alive extends it (self-fencing). An expired session is final: the node drops every claim and opens a new
//! session, with no operator action.
//!
//! The coordinator's streams (job watch, members, assignment) are read by small forwarding tasks that turn each
//! item into a message, so every decision happens in `handle`, in order. Calls to the coordinator made while
//! running (open, keep-alive, campaign, publish) are spawned and answer with a message too: `handle` never
//! awaits one, so a slow campaign or publish cannot delay `SessionExpired` or a keep-alive's answer. Only the
//! graceful leave (`Drain`, `Leave`) awaits its call, since nothing else is left to do then.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::{recorder, timer};
use crate::clock::Clock;
use crate::coordinator::{
    Assignment, CoordError, Coordinator, JobEvent, JobSnapshot, Member, Members, NodeId, NodeInfo,
    Session, SessionState,
};
use crate::job::{Job, JobId};

mod feeds;
mod known;
mod place;
mod turn;

use feeds::{spawn_feeds, spawn_job_feed};
use known::Known;
use place::is_constrained;

/// The membership actor.
pub struct Membership;

/// Session and leadership timing.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Session TTL asked for.
    pub ttl: Duration,
    /// How long the leader waits after a change before publishing, so that a burst of changes (a rolling
    /// restart, a bulk import) causes one publication.
    pub rebalance_delay: Duration,
}

/// Most job changes the feed hands over in one message.
pub const FEED_BATCH: usize = 1024;

/// Messages of the membership actor.
#[derive(Debug)]
pub enum Msg {
    /// Open a session (at start, and after one was lost).
    Connect,
    /// A session open attempt finished.
    Opened(Result<Session, CoordError>),
    /// Time to renew the session (and campaign).
    KeepAlive,
    /// A keep-alive sent at `sent_ms` finished.
    KeptAlive {
        /// The session it was for.
        session: crate::coordinator::SessionId,
        /// Wall time it was sent.
        sent_ms: i64,
        /// Its result.
        result: Result<(), CoordError>,
    },
    /// The backend reported the session expired.
    SessionExpired(crate::coordinator::SessionId),
    /// The backend reports that this session's campaign may win now (see `turn`).
    CampaignTurn(crate::coordinator::SessionId),
    /// A campaign for leadership finished.
    Campaigned {
        /// The session it campaigned with.
        session: crate::coordinator::SessionId,
        /// The leader epoch if this node leads.
        result: Result<Option<u64>, CoordError>,
    },
    /// A publication of the assignment finished.
    Published {
        /// The leader epoch it was published under.
        epoch: u64,
        /// The new assignment version.
        result: Result<u64, CoordError>,
    },
    /// A consistent snapshot of all jobs (at start, and after a compaction).
    JobsListed(JobSnapshot),
    /// Jobs changed, in revision order (as many as the feed had at hand, up to [`FEED_BATCH`]: a bulk
    /// create arrives in few messages, and the timer hears of the new jobs this node owns in few upserts).
    JobsChanged(Vec<JobEvent>),
    /// The assignment changed.
    AssignmentChanged(Option<Arc<Assignment>>),
    /// The members changed.
    MembersChanged(Members),
    /// Leader: publish the assignment now (debounced).
    Publish,
    /// Mark this node as leaving, so the leader moves its jobs away; answered with whether another live
    /// node can take them.
    Drain {
        /// Answered with whether another live, non-draining member exists.
        reply: RpcReplyPort<bool>,
    },
    /// Close the session (graceful leave); answered when closed.
    Leave {
        /// Answered when the session is closed.
        reply: RpcReplyPort<()>,
    },
    /// Process nothing for this long (the simulation's model of a frozen process: SIGSTOP, a long GC pause).
    Freeze(std::time::Duration),
    /// What this node knows.
    Status {
        /// The answer.
        reply: RpcReplyPort<NodeStatus>,
    },
}

/// A node's view of itself, for the handle and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node.
    pub node: NodeId,
    /// Its session, if it has one.
    pub session: Option<crate::coordinator::SessionId>,
    /// Wall time until which the session is proven valid.
    pub valid_until_ms: Option<i64>,
    /// Leader epoch, if this node leads.
    pub leader_epoch: Option<u64>,
    /// Jobs this node owns.
    pub owned: usize,
    /// Jobs known in the store.
    pub jobs: usize,
    /// Version of the assignment followed.
    pub assignment_version: Option<u64>,
}

/// What the membership actor is started with.
pub struct Arguments {
    /// The shared store.
    pub coordinator: Arc<dyn Coordinator>,
    /// Wall time.
    pub clock: Arc<dyn Clock>,
    /// What this node says about itself.
    pub node: NodeInfo,
    /// Timing.
    pub config: Config,
    /// Told about owned jobs and the lease.
    pub timer: ActorRef<timer::Msg>,
    /// Told about the session.
    pub recorder: ActorRef<recorder::Msg>,
    /// Where the proven validity of the session is published for the executor.
    pub fence: super::Fence,
}

/// The membership actor's state.
pub struct State {
    coordinator: Arc<dyn Coordinator>,
    clock: Arc<dyn Clock>,
    node: NodeInfo,
    config: Config,
    timer: ActorRef<timer::Msg>,
    recorder: ActorRef<recorder::Msg>,
    fence: super::Fence,
    session: Option<Session>,
    valid_until_ms: Option<i64>,
    leader_epoch: Option<u64>,
    /// Every job of the store, and the revision the timer holds of those this node owns.
    jobs: Known,
    assignment: Option<Arc<Assignment>>,
    members: Vec<Member>,
    publish_pending: bool,
    /// The job feed has delivered a full listing (before it, the job map is empty, not the store's).
    jobs_listed: bool,
    /// A `publish_assignment` call is out; the next waits for its answer.
    publishing: bool,
    /// A `campaign` call is out; the next keep-alive round does not start another.
    campaigning: bool,
    dirty: bool,
    /// Something happened since the last placement that only a full rebalance handles (members, deletions,
    /// labels, weights, a new term); otherwise the only change is new jobs in `fresh`.
    replace_all: bool,
    /// New jobs without node labels and of weight 1, in arrival order, that the last assignment seen may not
    /// hold yet: placed incrementally (see [`State::place`]).
    fresh: Vec<JobId>,
    /// Jobs with node labels or a weight other than 1: while there are any, placement is always a full
    /// rebalance.
    constrained: usize,
    /// How long the last placement took (µs, by the node's clock): the next waits at least three times as
    /// long, so that a leader placing a million jobs while they arrive in bulk spends at most a quarter of its
    /// time on it.
    last_place_us: i64,
    connect_failures: u32,
    leaving: bool,
    tasks: Vec<JoinHandle<()>>,
    /// The wait for this session's campaign turn.
    turn: turn::Turn,
}

impl State {
    fn margin(&self) -> i64 {
        // A tenth of the TTL, at least 100 ms: covers clock reading and message delays on this node.
        (self.config.ttl.as_millis() as i64 / 10).max(100)
    }

    fn owner_of(&self, job: &JobId) -> Option<&NodeId> {
        self.assignment.as_ref()?.owners.get(job)
    }

    /// Brings the timer's set of jobs in line with a newer assignment, after `old`: only the entries that
    /// differ are looked at (a walk of both sorted maps), so that a publication that adds a few jobs costs
    /// the node a comparison per job, not a rebuild of what it owns. The owned set was kept in line with
    /// `old` and the job changes since (see [`State::jobs_changed`]), so the differing entries are all that
    /// can change it.
    fn reconcile_from(&mut self, old: &Assignment) {
        let Some(new) = self.assignment.clone() else {
            return self.reconcile(Vec::new());
        };
        let me = self.node.id.clone();
        let (mut upserts, mut revokes) = (Vec::new(), Vec::new());
        let mut gained = |state: &mut Self, id: &JobId| {
            if let Some(job) = state.jobs.hold(id) {
                upserts.push(job);
            }
        };
        let mut lost = |state: &mut Self, id: &JobId| {
            // Reassigned (the job exists: a deleted one was told to the timer when it was deleted): run out
            // the claim.
            if state.jobs.release(id) {
                revokes.push(id.clone());
            }
        };
        let mut before = old.owners.iter().peekable();
        let mut after = new.owners.iter().peekable();
        loop {
            match (before.peek(), after.peek()) {
                (None, None) => break,
                (Some((id, owner)), None) => {
                    if **owner == me {
                        lost(self, id);
                    }
                    before.next();
                }
                (None, Some((id, owner))) => {
                    if **owner == me {
                        gained(self, id);
                    }
                    after.next();
                }
                (Some((old_id, old_owner)), Some((new_id, new_owner))) => {
                    // Equality first: it looks at the pointer (a publication clones the last one's ids), where
                    // ordering compares the text.
                    let order = if old_id == new_id {
                        std::cmp::Ordering::Equal
                    } else {
                        old_id.cmp(new_id)
                    };
                    match order {
                        std::cmp::Ordering::Less => {
                            if **old_owner == me {
                                lost(self, old_id);
                            }
                            before.next();
                        }
                        std::cmp::Ordering::Greater => {
                            if **new_owner == me {
                                gained(self, new_id);
                            }
                            after.next();
                        }
                        std::cmp::Ordering::Equal => {
                            if old_owner != new_owner {
                                if **old_owner == me {
                                    lost(self, old_id);
                                } else if **new_owner == me {
                                    gained(self, new_id);
                                }
                            }
                            before.next();
                            after.next();
                        }
                    }
                }
            }
        }
        if !revokes.is_empty() {
            let _ = self.timer.cast(timer::Msg::Revoke(revokes));
        }
        self.send(upserts, Vec::new());
    }

    /// Brings the timer's set of jobs in line with the assignment (full pass); `removes` are jobs the timer
    /// holds that were deleted.
    fn reconcile(&mut self, removes: Vec<JobId>) {
        let mut upserts = Vec::new();
        let me = self.node.id.clone();
        self.jobs.mark_stale();
        if let Some(assignment) = &self.assignment {
            for (id, owner) in &assignment.owners {
                if *owner == me
                    && let Some(job) = self.jobs.hold(id)
                {
                    upserts.push(job);
                }
            }
        }
        // Reassigned (the job exists): run out the claim.
        let revokes = self.jobs.release_stale();
        if !revokes.is_empty() {
            let _ = self.timer.cast(timer::Msg::Revoke(revokes));
        }
        self.send(upserts, removes);
    }

    /// Applies job changes (incremental), telling the timer in as few messages as their order allows.
    fn jobs_changed(&mut self, events: Vec<JobEvent>) {
        let (mut upserts, mut removes) = (Vec::new(), Vec::new());
        for event in events {
            // An upsert must not overtake an earlier remove of the same job, nor a remove an earlier upsert.
            match &event {
                JobEvent::Put(_) if !removes.is_empty() => {
                    self.send(Vec::new(), std::mem::take(&mut removes));
                }
                JobEvent::Deleted { .. } if !upserts.is_empty() => {
                    self.send(std::mem::take(&mut upserts), Vec::new());
                }
                _ => {}
            }
            self.job_changed(event, &mut upserts, &mut removes);
        }
        self.send(upserts, removes);
    }

    /// Applies one job change; what the timer must hear is added to `upserts` and `removes`.
    fn job_changed(
        &mut self,
        event: JobEvent,
        upserts: &mut Vec<Arc<Job>>,
        removes: &mut Vec<JobId>,
    ) {
        match event {
            JobEvent::Put(job) => {
                let known = self.jobs.insert(job.clone());
                if is_constrained(&job) {
                    self.constrained += 1;
                }
                match &known {
                    None if !is_constrained(&job) => {
                        self.fresh.push(job.id.clone());
                        self.dirty = true;
                    }
                    None => {
                        self.replace_all = true;
                        self.dirty = true;
                    }
                    Some(old) => {
                        if is_constrained(old) {
                            self.constrained -= 1;
                        }
                        if old.spec.node_labels != job.spec.node_labels
                            || old.spec.weight != job.spec.weight
                        {
                            self.replace_all = true;
                            self.dirty = true;
                        }
                    }
                }
                if self.owner_of(&job.id) == Some(&self.node.id)
                    && let Some(job) = self.jobs.hold(&job.id)
                {
                    upserts.push(job);
                }
            }
            JobEvent::Deleted { id, .. } => {
                if let Some((old, held)) = self.jobs.remove(&id) {
                    if is_constrained(&old) {
                        self.constrained -= 1;
                    }
                    if held {
                        removes.push(id);
                    }
                }
                self.replace_all = true;
                self.dirty = true;
            }
        }
    }

    fn send(&self, upserts: Vec<Arc<Job>>, removes: Vec<JobId>) {
        if !removes.is_empty() {
            let _ = self.timer.cast(timer::Msg::Remove(removes));
        }
        if !upserts.is_empty() {
            let _ = self.timer.cast(timer::Msg::Upsert(upserts));
        }
    }

    fn set_lease(&mut self, valid_until_ms: Option<i64>) {
        self.valid_until_ms = valid_until_ms;
        let lease = match (&self.session, valid_until_ms) {
            (Some(session), Some(valid_until_ms)) => Some(timer::Lease {
                session: session.id,
                valid_until_ms,
            }),
            _ => None,
        };
        *self.fence.lock().unwrap_or_else(|p| p.into_inner()) = lease;
        let _ = self.timer.cast(timer::Msg::SessionChanged(lease));
        let _ = self
            .recorder
            .cast(recorder::Msg::SessionChanged(lease.map(|l| l.session)));
    }

    fn lose_session(&mut self, myself: &ActorRef<Msg>) {
        if let Some(session) = self.session.take() {
            warn!(node = %self.node.id, session = %session.id, "session lost: stopped firing, rejoining");
        }
        self.leader_epoch = None;
        self.turn.stop();
        self.set_lease(None);
        if !self.leaving {
            let _ = myself.cast(Msg::Connect);
        }
    }

    fn schedule_publish(&mut self, myself: &ActorRef<Msg>) {
        if self.leader_epoch.is_some() && self.dirty && !self.publish_pending && !self.publishing {
            self.publish_pending = true;
            let placing = Duration::from_micros(self.last_place_us.max(0) as u64);
            myself.send_after(self.config.rebalance_delay.max(placing * 3), || {
                Msg::Publish
            });
        }
    }

    fn status(&self) -> NodeStatus {
        NodeStatus {
            node: self.node.id.clone(),
            session: self.session.as_ref().map(|s| s.id),
            valid_until_ms: self.valid_until_ms,
            leader_epoch: self.leader_epoch,
            owned: self.jobs.held_len(),
            jobs: self.jobs.len(),
            assignment_version: self.assignment.as_ref().map(|a| a.version),
        }
    }
}

// Local only: ractor's `cluster` feature (executor groups) asks every message type to say whether it
// can cross the network; this one cannot.
impl ractor::Message for Msg {}

impl Actor for Membership {
    type Msg = Msg;
    type State = State;
    type Arguments = Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        args: Arguments,
    ) -> Result<State, ActorProcessingErr> {
        let mut tasks = spawn_feeds(args.coordinator.clone(), myself.clone());
        tasks.push(spawn_job_feed(args.coordinator.clone(), myself.clone()));
        let keep_alive = (args.config.ttl / 3).max(Duration::from_millis(50));
        myself.send_interval(keep_alive, || Msg::KeepAlive);
        myself.cast(Msg::Connect)?;
        Ok(State {
            coordinator: args.coordinator,
            clock: args.clock,
            node: args.node,
            config: args.config,
            timer: args.timer,
            recorder: args.recorder,
            fence: args.fence,
            session: None,
            valid_until_ms: None,
            leader_epoch: None,
            jobs: Known::default(),
            assignment: None,
            members: Vec::new(),
            publish_pending: false,
            jobs_listed: false,
            publishing: false,
            campaigning: false,
            dirty: true,
            replace_all: true,
            fresh: Vec::new(),
            constrained: 0,
            last_place_us: 0,
            connect_failures: 0,
            leaving: false,
            tasks,
            turn: turn::Turn::default(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Msg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        state.turn.stop();
        for task in &state.tasks {
            task.abort();
        }
        // Wait until the aborted feeds are dropped, so nothing of this node holds the coordinator afterwards.
        for task in state.tasks.drain(..) {
            let _ = task.await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Connect => {
                if state.session.is_some() || state.leaving {
                    return Ok(());
                }
                let coordinator = state.coordinator.clone();
                let node = state.node.clone();
                let ttl = state.config.ttl;
                // Back off between failed opens, but never longer than a quarter of the TTL: after a coordinator
                // outage the first opens fail (the server is still down, or still holds this node's old
                // session until the TTL expires it), and a node must rejoin soon after that, not 5 s later.
                let cap_ms = (ttl.as_millis() as u64 / 4).clamp(100, 5_000);
                let delay = if state.connect_failures == 0 {
                    Duration::ZERO
                } else {
                    Duration::from_millis((100u64 << state.connect_failures.min(6)).min(cap_ms))
                };
                let me = myself.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = me.cast(Msg::Opened(coordinator.open_session(node, ttl).await));
                });
            }
            Msg::Opened(Ok(session)) => {
                state.connect_failures = 0;
                let sent_ms = state.clock.now_ms();
                info!(node = %state.node.id, session = %session.id, ttl = ?session.ttl, "session opened");
                // Valid from (at least) the moment the open was answered; the next keep-alive tightens it.
                let valid_until = sent_ms + session.ttl.as_millis() as i64 - state.margin();
                let id = session.id;
                state.session = Some(session);
                state.set_lease(Some(valid_until));
                let coordinator = state.coordinator.clone();
                let me = myself.clone();
                state.tasks.push(tokio::spawn(async move {
                    if let Ok(mut rx) = coordinator.watch_session(id).await {
                        while *rx.borrow_and_update() != SessionState::Expired {
                            if rx.changed().await.is_err() {
                                return;
                            }
                        }
                        let _ = me.cast(Msg::SessionExpired(id));
                    }
                }));
                let _ = myself.cast(Msg::KeepAlive);
            }
            Msg::Opened(Err(error)) => {
                state.connect_failures += 1;
                crate::metrics::coordinator_error("open_session");
                warn!(%error, failures = state.connect_failures, "opening a session failed");
                let _ = myself.cast(Msg::Connect);
            }
            Msg::KeepAlive => {
                let Some(session) = state.session.clone() else {
                    return Ok(());
                };
                let coordinator = state.coordinator.clone();
                let sent_ms = state.clock.now_ms();
                let me = myself.clone();
                tokio::spawn(async move {
                    let result = coordinator.keep_alive(session.id).await;
                    let _ = me.cast(Msg::KeptAlive {
                        session: session.id,
                        sent_ms,
                        result,
                    });
                });
                // Campaign every round: cheap, and a leader that lost its term finds out here.
                state.campaign(&myself, session.id);
            }
            Msg::CampaignTurn(session) => {
                if state.session.as_ref().map(|s| s.id) == Some(session) {
                    state.campaign(&myself, session);
                }
            }
            Msg::Campaigned { session, result } => {
                state.campaigning = false;
                if state.session.as_ref().map(|s| s.id) != Some(session) {
                    return Ok(()); // an answer for a session this node no longer has
                }
                match result {
                    Ok(Some(epoch)) => {
                        if state.leader_epoch != Some(epoch) {
                            info!(node = %state.node.id, epoch, "became leader");
                            state.leader_epoch = Some(epoch);
                            state.replace_all = true;
                            state.dirty = true;
                        }
                    }
                    Ok(None) => {
                        state.leader_epoch = None;
                        state.await_turn(&myself, session);
                    }
                    Err(error) => {
                        debug!(%error, "campaign failed");
                        state.leader_epoch = None;
                    }
                }
            }
            Msg::Published { epoch, result } => {
                state.publishing = false;
                match result {
                    Ok(version) => debug!(epoch, version, "assignment published"),
                    Err(error) => {
                        crate::metrics::coordinator_error("publish_assignment");
                        warn!(%error, "publishing the assignment failed");
                        state.replace_all = true;
                        state.dirty = true;
                        if error.is_fatal_for_session() && state.leader_epoch == Some(epoch) {
                            state.leader_epoch = None;
                        }
                    }
                }
            }
            Msg::KeptAlive {
                session,
                sent_ms,
                result,
            } => {
                if state.session.as_ref().map(|s| s.id) != Some(session) {
                    return Ok(());
                }
                match result {
                    Ok(()) => {
                        let ttl = state
                            .session
                            .as_ref()
                            .map_or(0, |s| s.ttl.as_millis() as i64);
                        let valid_until = sent_ms + ttl - state.margin();
                        if state.valid_until_ms.is_none_or(|v| valid_until > v) {
                            state.set_lease(Some(valid_until));
                        }
                    }
                    Err(error) if error.is_fatal_for_session() => state.lose_session(&myself),
                    Err(error) => {
                        crate::metrics::coordinator_error("keep_alive");
                        warn!(%error, "keep-alive failed; firing continues until the lease runs out");
                    }
                }
            }
            Msg::SessionExpired(id) => {
                if state.session.as_ref().map(|s| s.id) == Some(id) {
                    state.lose_session(&myself);
                }
            }
            Msg::JobsListed(snapshot) => {
                state.jobs_listed = true;
                let old = std::mem::replace(&mut state.jobs, Known::listed(snapshot.jobs));
                let gone = state.jobs.keep_held(old);
                state.constrained = state.jobs.jobs().filter(|j| is_constrained(j)).count();
                state.fresh.clear();
                state.replace_all = true;
                state.dirty = true;
                state.reconcile(gone);
            }
            Msg::JobsChanged(events) => state.jobs_changed(events),
            Msg::AssignmentChanged(assignment) => {
                let newer = match (&state.assignment, &assignment) {
                    (Some(old), Some(new)) => new.version > old.version,
                    (None, Some(_)) => true,
                    _ => false,
                };
                if newer {
                    let old = std::mem::replace(&mut state.assignment, assignment);
                    if let Some(assignment) = &state.assignment {
                        let jobs = &state.jobs;
                        state
                            .fresh
                            .retain(|id| jobs.contains(id) && !assignment.owners.contains_key(id));
                    }
                    match old {
                        Some(old) => state.reconcile_from(&old),
                        None => state.reconcile(Vec::new()),
                    }
                }
            }
            Msg::MembersChanged(members) => {
                state.members = members.members;
                state.replace_all = true;
                state.dirty = true;
            }
            Msg::Publish => {
                state.publish_pending = false;
                if state.publishing {
                    // One publication at a time: this one is made once the answer to the last is in.
                    state.dirty = true;
                    return Ok(());
                }
                if let (Some(epoch), Some(session)) =
                    (state.leader_epoch, state.session.as_ref().map(|s| s.id))
                {
                    // Place only from a view that has caught up: the job store listed, and the members
                    // showing this very session. A leader whose members feed still shows the world before
                    // its new session (after a coordinator restart, say) would otherwise place every job on
                    // nobody and stop the cluster until the next publication.
                    if !state.jobs_listed || !state.members.iter().any(|m| m.session == session) {
                        debug!(
                            epoch,
                            "not publishing yet: the view of jobs or members is behind"
                        );
                        state.dirty = true;
                        return Ok(());
                    }
                    state.dirty = false;
                    // A leaving member takes nothing (it runs out what it has, then goes).
                    let placeable: Vec<Member> = state
                        .members
                        .iter()
                        .filter(|m| !m.draining)
                        .cloned()
                        .collect();
                    let started_us = state.clock.now_us();
                    let placed = state.place(&placeable);
                    state.last_place_us = state.clock.now_us() - started_us;
                    if let Some(owners) = placed {
                        state.publishing = true;
                        let coordinator = state.coordinator.clone();
                        let me = myself.clone();
                        tokio::spawn(async move {
                            let result =
                                coordinator.publish_assignment(session, epoch, owners).await;
                            let _ = me.cast(Msg::Published { epoch, result });
                        });
                    }
                }
            }
            Msg::Drain { reply } => {
                let mut successors = false;
                if let Some(session) = state.session.as_ref().map(|s| s.id) {
                    match state.coordinator.drain(session).await {
                        Ok(()) => {
                            successors = state
                                .members
                                .iter()
                                .any(|m| m.session != session && !m.draining);
                            // Our own placement (if we lead) must leave us out from now on.
                            state.replace_all = true;
                            state.dirty = true;
                        }
                        Err(error) => warn!(%error, "marking the node as leaving failed"),
                    }
                }
                let _ = reply.send(successors);
            }
            Msg::Leave { reply } => {
                state.leaving = true;
                if let Some(session) = state.session.take() {
                    state.set_lease(None);
                    if let Err(error) = state.coordinator.close_session(session.id).await {
                        warn!(%error, "closing the session failed; it will expire");
                    }
                }
                let _ = reply.send(());
            }
            Msg::Freeze(pause) => tokio::time::sleep(pause).await,
            Msg::Status { reply } => {
                let _ = reply.send(state.status());
            }
        }
        state.schedule_publish(&myself);
        Ok(())
    }
}
