//! The recorder actor: writes run records to the coordinator in batches and tells the timer which instants
//! are settled.
//!
//! Batching by time window: a write starts when there is something to write, no write is in flight, at
//! least [`MIN_INTERVAL`] passed since the previous one (or a full batch is waiting), and records have
//! stopped arriving for [`QUIET`] (or the oldest waiting one has waited [`MAX_WAIT`]); whatever arrives
//! meanwhile goes into the next batch. So a node makes at most about `1 / MIN_INTERVAL` record calls per
//! second plus one per [`MAX_BATCH`] records, however many runs end, and a record is written within
//! about [`MAX_WAIT`] of its run's end. The quiet rule keeps writes out of a burst: when 100,000 jobs are
//! due at one instant, their runs start first and their records are written in the quiet after, instead of
//! a hundred writes competing with the fires still starting (on two cores, that competition was most of
//! the burst's tail). A `Flush` writes at once. A failed write is retried with backoff; records are kept
//! until stored (records are not fenced by ownership, only by a live session, so a new session can write
//! them).
//!
//! The executor hands its records over through an [`Inbox`], not a message per turn: it appends to a shared
//! buffer and rings the recorder only when nobody is collecting. The recorder then collects every
//! [`COLLECT`] until a collection finds the buffer empty. A stream of runs ending costs the recorder one wake
//! per [`COLLECT`] instead of one per executor turn, and a lone fire's turn wakes nothing but its handler
//! (a message to the recorder at the end of the executor's turn took the worker's next slot ahead of the
//! task the handler had woken, and made the scheduler wake a second worker to take it).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::warn;

use super::timer;
use crate::coordinator::{CoordError, Coordinator, RecordResult, SessionId};
use crate::run::{Outcome, RunRecord};

/// Largest batch per coordinator call: small enough that one call keeps a backend busy only briefly (the
/// in-process backend holds its lock about 1 ms for it, so a claim renewal or an API call never waits long
/// behind records), large enough that a node writing 100,000 records a second makes about 100 calls.
pub const MAX_BATCH: usize = 1_000;

/// Shortest time between two record writes (unless a full batch waits).
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// How long records must have stopped arriving before a write starts (unless the oldest waited
/// [`MAX_WAIT`]): a burst of runs ending is written after it, not during it.
pub const QUIET: Duration = Duration::from_millis(20);

/// Longest a record waits for a quiet moment: under a steady stream of runs, writes still start this often.
pub const MAX_WAIT: Duration = Duration::from_millis(250);

/// How often the recorder collects the [`Inbox`] while records keep arriving in it.
pub const COLLECT: Duration = QUIET;

/// Records on their way from the executor to the recorder (see the module's docs).
#[derive(Default)]
pub struct Inbox {
    state: std::sync::Mutex<InboxState>,
}

#[derive(Default)]
struct InboxState {
    records: Vec<RunRecord>,
    /// The recorder has been rung and collects until it finds the buffer empty: appending needs no ring.
    collecting: bool,
}

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        // A panic while holding the lock cannot leave the buffer half-written (a `Vec` append or swap).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes what waits. With `disarm`, an empty buffer also ends the collection, so that the next append
    /// rings again.
    fn take(&self, disarm: bool) -> Vec<RunRecord> {
        let mut state = self.lock();
        if state.records.is_empty() {
            if disarm {
                state.collecting = false;
            }
            return Vec::new();
        }
        std::mem::take(&mut state.records)
    }
}

/// Where the executor puts the records of its runs: the recorder's [`Inbox`], and the recorder to ring
/// when nobody collects it. Records put here are stored under the session current when the recorder
/// collects them.
#[derive(Clone)]
pub struct Sink {
    inbox: Arc<Inbox>,
    recorder: ActorRef<Msg>,
}

impl Sink {
    /// The sink of `recorder`, which must have been started with this `inbox`.
    pub fn new(recorder: ActorRef<Msg>, inbox: Arc<Inbox>) -> Self {
        Sink { inbox, recorder }
    }

    /// Hands records to the recorder.
    pub fn put(&self, records: &mut Vec<RunRecord>) {
        if records.is_empty() {
            return;
        }
        let ring = {
            let mut state = self.inbox.lock();
            if state.records.is_empty() {
                std::mem::swap(&mut state.records, records);
            } else {
                state.records.append(records);
            }
            !std::mem::replace(&mut state.collecting, true)
        };
        if ring {
            let _ = self.recorder.cast(Msg::Collect);
        }
    }
}

/// The recorder actor.
pub struct Recorder;

/// Messages of the recorder.
#[derive(Debug)]
pub enum Msg {
    /// Records to store, made under this session (`None`: the session current when they arrive). A record
    /// is written only under the session it was made under: once that session is gone, its successor (maybe
    /// this node's next session) accounts for the instant, so a late write could count it twice.
    Record(Option<SessionId>, Vec<RunRecord>),
    /// Collect the [`Inbox`] (a ring from a [`Sink`], or the next collection while records keep coming).
    Collect,
    /// The session to write with (`None`: hold records until there is one).
    SessionChanged(Option<SessionId>),
    /// Where to report settled instants (set once the timer exists).
    SetTimer(ActorRef<timer::Msg>),
    /// A write under a session finished.
    Written(
        SessionId,
        Vec<RunRecord>,
        Result<Vec<RecordResult>, CoordError>,
    ),
    /// Try writing again after a failure backoff.
    Retry,
    /// The minimum interval since the last write has passed.
    WindowOpen,
    /// Process nothing for this long (the simulation's model of a frozen process: SIGSTOP, a long GC pause).
    Freeze(std::time::Duration),
    /// Answer once everything received so far is stored (or the deadline passed).
    Flush {
        /// Answered with whether everything was stored.
        reply: RpcReplyPort<bool>,
    },
}

/// What the recorder is started with.
pub struct Arguments {
    /// Where records go.
    pub coordinator: Arc<dyn Coordinator>,
    /// Where every stored record is announced (see `Scheduler::subscribe_runs`).
    pub stored: tokio::sync::broadcast::Sender<RunRecord>,
    /// Where the executor's records arrive (see [`Sink`]).
    pub inbox: Arc<Inbox>,
    /// Where accepted records are copied (the node's history store), if anywhere.
    pub history: Option<crate::history::Feed>,
}

/// The recorder's state.
pub struct State {
    coordinator: Arc<dyn Coordinator>,
    stored: tokio::sync::broadcast::Sender<RunRecord>,
    inbox: Arc<Inbox>,
    history: Option<crate::history::Feed>,
    session: Option<SessionId>,
    timer: Option<ActorRef<timer::Msg>>,
    /// Records to write, each with the session it was made under.
    pending: VecDeque<(Option<SessionId>, RunRecord)>,
    in_flight: bool,
    retry_scheduled: bool,
    /// When the last write started.
    last_write: Option<tokio::time::Instant>,
    /// When records last arrived, and since when the oldest of `pending` waits.
    last_arrival: tokio::time::Instant,
    oldest_since: tokio::time::Instant,
    /// A `Retry` is scheduled to start the next window's write.
    window_scheduled: bool,
    failures: u32,
    waiting: Vec<RpcReplyPort<bool>>,
    /// `campanile_runs_total` per outcome, in the order of [`Outcome::ALL`], registered once.
    runs_total: Vec<metrics::Counter>,
}

impl State {
    /// Records arrived, made under `session` (`None`: the current one).
    fn arrived(&mut self, session: Option<SessionId>, records: Vec<RunRecord>) {
        if records.is_empty() {
            return;
        }
        let session = session.or(self.session);
        let now = tokio::time::Instant::now();
        if self.pending.is_empty() {
            self.oldest_since = now;
        }
        self.last_arrival = now;
        self.pending
            .extend(records.into_iter().map(|r| (session, r)));
    }

    fn write_next(&mut self, myself: &ActorRef<Msg>) {
        if self.in_flight || self.retry_scheduled || self.pending.is_empty() {
            return;
        }
        let Some(session) = self.pending.front().and_then(|(s, _)| *s).or(self.session) else {
            return;
        };
        let now = tokio::time::Instant::now();
        let mut ready_at = now;
        if let Some(last) = self.last_write
            && self.pending.len() < MAX_BATCH
        {
            ready_at = ready_at.max(last + MIN_INTERVAL);
        }
        if self.waiting.is_empty() {
            ready_at = ready_at.max((self.last_arrival + QUIET).min(self.oldest_since + MAX_WAIT));
        }
        if now < ready_at {
            if !self.window_scheduled {
                self.window_scheduled = true;
                myself.send_after(ready_at - now, || Msg::WindowOpen);
            }
            return;
        }
        self.last_write = Some(now);
        // One batch per session: the longest run of records made under the front one's.
        let take = self
            .pending
            .iter()
            .take(MAX_BATCH)
            .take_while(|(s, _)| s.unwrap_or(session) == session)
            .count();
        let batch: Vec<RunRecord> = self.pending.drain(..take).map(|(_, r)| r).collect();
        // What is left waited as long as what was taken, or came later: an upper bound of its wait is kept.
        self.in_flight = true;
        let coordinator = self.coordinator.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = coordinator.record_runs(session, batch.clone()).await;
            let _ = myself.cast(Msg::Written(session, batch, result));
        });
    }

    fn answer_waiters(&mut self) {
        if self.pending.is_empty() && !self.in_flight {
            for waiter in self.waiting.drain(..) {
                let _ = waiter.send(true);
            }
        }
    }
}

// Local only: ractor's `cluster` feature (executor groups) asks every message type to say whether it
// can cross the network; this one cannot.
impl ractor::Message for Msg {}

impl Actor for Recorder {
    type Msg = Msg;
    type State = State;
    type Arguments = Arguments;

    async fn pre_start(
        &self,
        _myself: ActorRef<Msg>,
        args: Arguments,
    ) -> Result<State, ActorProcessingErr> {
        Ok(State {
            coordinator: args.coordinator,
            stored: args.stored,
            inbox: args.inbox,
            history: args.history,
            session: None,
            timer: None,
            pending: VecDeque::new(),
            in_flight: false,
            retry_scheduled: false,
            last_write: None,
            last_arrival: tokio::time::Instant::now(),
            oldest_since: tokio::time::Instant::now(),
            window_scheduled: false,
            failures: 0,
            waiting: Vec::new(),
            runs_total: Outcome::ALL
                .iter()
                .map(|outcome| crate::metrics::runs_counter(*outcome))
                .collect(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        // Whatever waits in the inbox arrived before this message is handled: before a session change, and
        // before a flush.
        let collect = matches!(msg, Msg::Collect);
        let waiting = state.inbox.take(collect);
        let collected = !waiting.is_empty();
        state.arrived(None, waiting);
        match msg {
            Msg::Record(session, records) => state.arrived(session, records),
            Msg::Collect => {
                if collected {
                    // Records came since the last collection: more may follow.
                    myself.send_after(COLLECT, || Msg::Collect);
                }
            }
            Msg::SessionChanged(session) => state.session = session,
            Msg::SetTimer(timer) => state.timer = Some(timer),
            Msg::Retry => state.retry_scheduled = false,
            Msg::WindowOpen => state.window_scheduled = false,
            Msg::Written(session, batch, result) => {
                state.in_flight = false;
                match result {
                    Ok(results) => {
                        state.failures = 0;
                        if let Some(history) = &state.history {
                            history.accepted(&batch, &results);
                        }
                        let mut settled = Vec::with_capacity(batch.len());
                        let announce = state.stored.receiver_count() > 0;
                        for (record, result) in batch.into_iter().zip(results) {
                            settled.push(record.fire_id());
                            if result == RecordResult::Recorded {
                                let slot = Outcome::ALL.iter().position(|o| *o == record.outcome);
                                if let Some(counter) = slot.and_then(|i| state.runs_total.get(i)) {
                                    counter.increment(u64::from(record.count));
                                }
                                if announce {
                                    let _ = state.stored.send(record);
                                }
                            }
                        }
                        if let Some(timer) = &state.timer {
                            let _ = timer.cast(timer::Msg::Settled(settled));
                        }
                    }
                    Err(error)
                        if error.is_fatal_for_session() && state.session != Some(session) =>
                    {
                        // Made under a session that is gone: the instants are its successor's to account
                        // for (recorded `in_doubt` or run again, per delivery mode). Writing them under a
                        // later session could account for an instant twice (postmortem: simulation seeds
                        // 191 and 261, a `misfired` range written after the successor settled it).
                        crate::metrics::coordinator_error("record_runs");
                        warn!(%error, records = batch.len(), session = session.0, "dropping run records of a session that is gone; its successor accounts for them");
                    }
                    Err(error) => {
                        crate::metrics::coordinator_error("record_runs");
                        state.failures += 1;
                        warn!(%error, records = batch.len(), failures = state.failures, "writing run records failed");
                        // Put the batch back in front, in order, and retry after a backoff.
                        for record in batch.into_iter().rev() {
                            state.pending.push_front((Some(session), record));
                        }
                        state.retry_scheduled = true;
                        let backoff = Duration::from_millis(50 * 2u64.pow(state.failures.min(6)));
                        myself.send_after(backoff, || Msg::Retry);
                    }
                }
            }
            Msg::Freeze(pause) => tokio::time::sleep(pause).await,
            Msg::Flush { reply } => state.waiting.push(reply),
        }
        state.write_next(&myself);
        state.answer_waiters();
        Ok(())
    }
}
