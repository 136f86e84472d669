//! The hub actor: registers workers from their `Alive` messages, routes their answers to the waiting
//! dispatches, and turns the loss of a worker's link (a process-group change) into a lost worker. Its
//! heartbeat task sends the owner's session to every worker.

use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{info, warn};

use super::{Entry, Event, HEARTBEAT, Hub, Registry, Shared, WorkerEvent};
use crate::cluster::protocol::{self, ToHub, ToWorker};

/// The hub actor: receives workers' messages and the loss of their links.
pub(crate) struct HubActor;

/// The hub actor's state.
pub(crate) struct HubState {
    hub: Hub,
    ticker: tokio::task::JoinHandle<()>,
}

impl HubState {
    fn received(&mut self, msg: ToHub, now_ms: i64) {
        receive(&self.hub.shared, msg, now_ms, find_worker_actor);
    }
}

/// Takes one message of a worker: registers it (with the actor `find` gives for an unknown worker's id, if
/// any), or routes its answer to the waiting dispatch.
pub(super) fn receive(
    shared: &Shared,
    msg: ToHub,
    now_ms: i64,
    find: impl FnOnce(&str) -> Option<ActorRef<ToWorker>>,
) {
    let mut joined = None;
    {
        let mut registry = shared.registry();
        let worker = match &msg {
            ToHub::Alive { info, .. } => Some(info.id.clone()),
            ToHub::Ready { dispatch }
            | ToHub::Acked { dispatch }
            | ToHub::Refused { dispatch, .. }
            | ToHub::Finished { dispatch, .. } => {
                registry.pending.get(dispatch).map(|p| p.worker.clone())
            }
            ToHub::Invalid(why) => {
                warn!(%why, "a worker sent a message that does not decode");
                None
            }
        };
        if let Some(entry) = worker.as_ref().and_then(|w| registry.workers.get_mut(w)) {
            entry.last_seen_ms = now_ms;
            entry.suspect = false;
        }
        match msg {
            ToHub::Alive { info, running } => {
                if let Some(entry) = registry.workers.get_mut(&info.id) {
                    entry.info = info;
                    entry.running = running;
                } else if let Some(actor) = find(&info.id) {
                    // Registered only with a link of its own to this node (an `Alive` relayed through
                    // another process's link, as can happen when several workers share a process, is
                    // not one).
                    let _ = actor.cast(ToWorker::Heartbeat {
                        owner: shared.node.to_string(),
                        lease: shared.lease(),
                    });
                    let entry = Entry {
                        info,
                        actor,
                        running,
                        in_flight: 0,
                        last_seen_ms: now_ms,
                        suspect: false,
                    };
                    joined = Some(entry.status(&shared.node));
                    registry.workers.insert(entry.info.id.clone(), entry);
                }
            }
            ToHub::Ready { dispatch } => send(&registry, dispatch, Event::Ready),
            ToHub::Acked { dispatch } => send(&registry, dispatch, Event::Acked),
            ToHub::Refused { dispatch, reason } => {
                send(&registry, dispatch, Event::Refused(reason))
            }
            ToHub::Finished { dispatch, result } => {
                send(&registry, dispatch, Event::Finished(result));
            }
            ToHub::Invalid(_) => {}
        }
    }
    if let Some(status) = joined {
        info!(worker = %status.id, group = %status.group, "worker joined");
        shared.publish(Some(WorkerEvent::Joined(status)));
        shared.changed.notify_waiters();
    }
}

impl HubState {
    fn group_changed(&mut self, change: GroupChangeMessage) {
        let GroupChangeMessage::Leave(_, group, cells) = change else {
            return;
        };
        let Some(id) = group.strip_prefix("campanile.worker.") else {
            return;
        };
        let shared = &self.hub.shared;
        let event = {
            let mut registry = shared.registry();
            let bound = registry
                .workers
                .get(id)
                .is_some_and(|e| cells.iter().any(|c| c.get_id() == e.actor.get_id()));
            if !bound {
                return;
            }
            registry.lose(id, "its link to this node broke", &shared.node)
        };
        shared.publish(event);
    }
}

fn send(registry: &Registry, dispatch: u64, event: Event) {
    if let Some(p) = registry.pending.get(&dispatch) {
        let _ = p.events.send(event);
    }
}

/// The worker's actor as this node sees it: a remote actor in the worker's own process group.
fn find_worker_actor(id: &str) -> Option<ActorRef<ToWorker>> {
    ractor::pg::get_members(&protocol::worker_group(id))
        .into_iter()
        .find(|cell: &ActorCell| !cell.get_id().is_local())
        .map(ActorRef::from)
}

impl Actor for HubActor {
    type Msg = ToHub;
    type State = HubState;
    type Arguments = Hub;

    async fn pre_start(
        &self,
        myself: ActorRef<ToHub>,
        hub: Hub,
    ) -> Result<HubState, ActorProcessingErr> {
        ractor::pg::join(protocol::HUBS_GROUP.to_owned(), vec![myself.get_cell()]);
        ractor::pg::join(
            protocol::hub_group(&hub.shared.node.to_string()),
            vec![myself.get_cell()],
        );
        ractor::pg::monitor_scope(ractor::pg::DEFAULT_SCOPE.to_owned(), myself.get_cell());
        let shared = hub.shared.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                shared.tick();
            }
        });
        Ok(HubState { hub, ticker })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ToHub>,
        state: &mut HubState,
    ) -> Result<(), ActorProcessingErr> {
        state.ticker.abort();
        ractor::pg::leave(protocol::HUBS_GROUP.to_owned(), vec![myself.get_cell()]);
        ractor::pg::leave(
            protocol::hub_group(&state.hub.shared.node.to_string()),
            vec![myself.get_cell()],
        );
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<ToHub>,
        msg: ToHub,
        state: &mut HubState,
    ) -> Result<(), ActorProcessingErr> {
        let now_ms = state.hub.shared.clock.now_ms();
        state.received(msg, now_ms);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<ToHub>,
        event: SupervisionEvent,
        state: &mut HubState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ProcessGroupChanged(change) = event {
            state.group_changed(change);
        }
        Ok(())
    }
}
