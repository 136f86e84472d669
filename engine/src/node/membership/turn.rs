//! Campaigning: every keep-alive round, and at once when the backend reports that this session's turn may
//! have come (`Coordinator::campaign_turn`: on ZooKeeper, the candidate ahead of it went away), so a killed
//! leader is replaced on the event rather than on the next round.

use ractor::ActorRef;
use tokio::task::JoinHandle;
use tracing::debug;

use super::{Msg, State};
use crate::coordinator::SessionId;

/// The wait for this session's turn, while one is out.
#[derive(Default)]
pub(super) struct Turn {
    waiting: Option<(SessionId, JoinHandle<()>)>,
}

impl Turn {
    /// Stops waiting (the session ended, or the node stops).
    pub(super) fn stop(&mut self) {
        if let Some((_, task)) = self.waiting.take() {
            task.abort();
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.stop();
    }
}

impl State {
    /// Campaigns under `session` unless a campaign is out already.
    pub(super) fn campaign(&mut self, myself: &ActorRef<Msg>, session: SessionId) {
        if self.campaigning {
            return;
        }
        self.campaigning = true;
        let coordinator = self.coordinator.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let result = coordinator
                .campaign(session)
                .await
                .map(|leader| leader.map(|l| l.epoch));
            let _ = me.cast(Msg::Campaigned { session, result });
        });
    }

    /// After a lost campaign: waits for this session's turn, unless it already does.
    pub(super) fn await_turn(&mut self, myself: &ActorRef<Msg>, session: SessionId) {
        if let Some((waiting_for, task)) = &self.turn.waiting
            && *waiting_for == session
            && !task.is_finished()
        {
            return;
        }
        self.turn.stop();
        let coordinator = self.coordinator.clone();
        let me = myself.clone();
        let task = tokio::spawn(async move {
            match coordinator.campaign_turn(session).await {
                Ok(()) => {
                    let _ = me.cast(Msg::CampaignTurn(session));
                }
                // The keep-alive rounds go on campaigning.
                Err(error) => debug!(%error, "waiting for a campaign turn failed"),
            }
        });
        self.turn.waiting = Some((session, task));
    }
}
