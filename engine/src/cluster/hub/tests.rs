//! The owner's choice of a worker and its dispatch rules, on paused tokio time with local stand-ins for the
//! workers (actors that record every offer they receive and every fire they start, and answer, or not, as
//! told).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use super::{Entry, Event, Hub, RemoteAttempt, SEND_WINDOW};
use crate::clock::SystemClock;
use crate::cluster::RemotePhase;
use crate::cluster::protocol::{StartFire, ToWorker, WireResult, WorkerInfo};
use crate::coordinator::NodeId;
use crate::job::{CommandTarget, HandlerTarget, JobId, Target};
use crate::run::Outcome;

/// 2026-01-01T00:00:00Z.
const T0_MS: i64 = 1_767_225_600_000;

/// How a stand-in worker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Never: the offer goes unanswered (a frozen worker, a lost message).
    Silent,
    /// `Ready` to the offer; at the go, starts it (if before its start-by), acknowledges and reports success.
    Run,
    /// `Ready`; at the go, starts and acknowledges it, and never reports a result (it dies mid-run).
    AckOnly,
    /// `Ready`; at the go, starts it, but the link is cut at that moment: nothing it sends arrives.
    CutAtGo,
}

/// A fire a stand-in started.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Started {
    worker: String,
    dispatch: u64,
    at_ms: i64,
}

/// An offer (`Start`) as a stand-in worker received it.
#[derive(Debug)]
struct Received {
    worker: String,
    start: StartFire,
    at_ms: i64,
}

struct StandIn;

struct StandInArgs {
    id: String,
    hub: Hub,
    answer: Answer,
    received: mpsc::UnboundedSender<Received>,
    started: Arc<Mutex<Vec<Started>>>,
    /// Start-by times of the offers it answered `Ready`, by dispatch.
    offers: HashMap<u64, i64>,
}

impl Actor for StandIn {
    type Msg = ToWorker;
    type State = StandInArgs;
    type Arguments = StandInArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ToWorker>,
        args: StandInArgs,
    ) -> Result<StandInArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _: ActorRef<ToWorker>,
        msg: ToWorker,
        state: &mut StandInArgs,
    ) -> Result<(), ActorProcessingErr> {
        let at_ms = state.hub.shared.clock.now_ms();
        match msg {
            ToWorker::Start(start) => {
                let dispatch = start.dispatch;
                // Answer first, then report: a test that reacts to the report finds the answer queued.
                if state.answer != Answer::Silent {
                    state.offers.insert(dispatch, start.start_by_ms);
                    answer(&state.hub, dispatch, Event::Ready);
                }
                let _ = state.received.send(Received {
                    worker: state.id.clone(),
                    start: *start,
                    at_ms,
                });
            }
            ToWorker::Go { dispatch, .. } => {
                let Some(start_by_ms) = state.offers.remove(&dispatch) else {
                    return Ok(());
                };
                if at_ms >= start_by_ms {
                    answer(&state.hub, dispatch, Event::Refused("too late".into()));
                    return Ok(());
                }
                state.started.lock().unwrap().push(Started {
                    worker: state.id.clone(),
                    dispatch,
                    at_ms,
                });
                match state.answer {
                    Answer::Silent | Answer::CutAtGo => {}
                    Answer::Run => {
                        answer(&state.hub, dispatch, Event::Acked);
                        answer(
                            &state.hub,
                            dispatch,
                            Event::Finished(WireResult {
                                outcome: Outcome::Succeeded,
                                code: Some(0),
                                output: String::new(),
                                reason: None,
                            }),
                        );
                    }
                    Answer::AckOnly => answer(&state.hub, dispatch, Event::Acked),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// What the hub actor does with a worker's answer: routes it to the waiting dispatch.
fn answer(hub: &Hub, dispatch: u64, event: Event) {
    if let Some(p) = hub.shared.registry().pending.get(&dispatch) {
        let _ = p.events.send(event);
    }
}

struct Fixture {
    hub: Hub,
    received: mpsc::UnboundedReceiver<Received>,
    sender: mpsc::UnboundedSender<Received>,
    started: Arc<Mutex<Vec<Started>>>,
}

impl Fixture {
    fn new() -> Self {
        let (sender, received) = mpsc::unbounded_channel();
        Self {
            hub: Hub::new(
                NodeId::new("owner").unwrap(),
                SystemClock::starting_at(T0_MS).shared(),
            ),
            received,
            sender,
            started: Arc::default(),
        }
    }

    fn started(&self) -> Vec<Started> {
        self.started.lock().unwrap().clone()
    }

    /// Lets the hub and the stand-ins run until `n` fires have started (a bounded number of scheduler rounds;
    /// no time passes).
    async fn until_started(&self, n: usize) {
        for _ in 0..10_000 {
            if self.started.lock().unwrap().len() >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("{n} fire(s) did not start: {:?}", self.started());
    }

    /// Registers a stand-in worker `id` of `group` with `in_flight` fires of `max_concurrent` already sent.
    async fn worker(
        &self,
        id: &str,
        group: &str,
        max_concurrent: u32,
        in_flight: u32,
        answer: Answer,
    ) {
        let (actor, _) = Actor::spawn(
            None,
            StandIn,
            StandInArgs {
                id: id.into(),
                hub: self.hub.clone(),
                answer,
                received: self.sender.clone(),
                started: self.started.clone(),
                offers: HashMap::new(),
            },
        )
        .await
        .unwrap();
        let entry = Entry {
            info: WorkerInfo {
                id: id.into(),
                group: group.into(),
                labels: BTreeMap::new(),
                max_concurrent,
                version: "test".into(),
                handlers: vec!["invoice".into()],
            },
            actor,
            running: in_flight,
            in_flight,
            last_seen_ms: T0_MS,
            suspect: false,
        };
        self.hub.shared.registry().workers.insert(id.into(), entry);
    }

    /// The worker [`Hub::pick`] chooses for `job` of `group` (its dispatch is registered, as a send would).
    fn pick(&self, group: &str, job: &str) -> Option<String> {
        self.hub
            .pick(&attempt(group, job, 1_000), &HashSet::new())
            .map(|(_, _, worker, _)| worker)
    }

    fn sent(&mut self) -> Vec<Received> {
        let mut all = Vec::new();
        while let Ok(r) = self.received.try_recv() {
            all.push(r);
        }
        all
    }
}

fn command() -> Target {
    Target::Command(CommandTarget {
        argv: vec!["true".into()],
        env: BTreeMap::new(),
        cwd: None,
        timeout: None,
        run_as: None,
    })
}

/// An attempt of `job` on `group` whose claim window ends `window_ms` from now.
fn attempt(group: &str, job: &str, window_ms: i64) -> RemoteAttempt {
    RemoteAttempt {
        group: group.into(),
        job: JobId::new(job).unwrap(),
        job_name: job.into(),
        scheduled_ms: T0_MS,
        attempt: 1,
        target: command(),
        session: None,
        deadline_ms: T0_MS + window_ms,
        at_least_once: false,
        progress: Default::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn the_least_loaded_worker_by_share_of_capacity_is_chosen() {
    let f = Fixture::new();
    // a: 2 of 4 (50 %), b: 1 of 4 (25 %), c: 3 of 30 (10 %).
    f.worker("a", "billing", 4, 2, Answer::Run).await;
    f.worker("b", "billing", 4, 1, Answer::Run).await;
    f.worker("c", "billing", 30, 3, Answer::Run).await;
    assert_eq!(f.pick("billing", "j1").as_deref(), Some("c"));
    // c is now at 4 of 30 (13 %): still the least loaded.
    assert_eq!(f.pick("billing", "j2").as_deref(), Some("c"));
}

#[tokio::test(start_paused = true)]
async fn only_workers_of_the_group_with_room_and_the_handler_are_chosen() {
    let f = Fixture::new();
    f.worker("a", "reports", 4, 0, Answer::Run).await;
    f.worker("b", "billing", 1, 1, Answer::Run).await;
    assert_eq!(
        f.pick("billing", "j"),
        None,
        "b is full, a is of another group"
    );
    f.worker("c", "billing", 4, 3, Answer::Run).await;
    f.hub
        .shared
        .registry()
        .workers
        .get_mut("c")
        .unwrap()
        .suspect = true;
    assert_eq!(f.pick("billing", "j"), None, "c went unacknowledged");
    f.hub
        .shared
        .registry()
        .workers
        .get_mut("c")
        .unwrap()
        .suspect = false;
    assert_eq!(f.pick("billing", "j").as_deref(), Some("c"));

    let mut req = attempt("reports", "j", 1_000);
    req.target = Target::Handler(HandlerTarget {
        name: "payroll".into(),
        timeout: None,
    });
    assert!(
        f.hub.pick(&req, &HashSet::new()).is_none(),
        "a does not offer the handler"
    );
    req.target = Target::Handler(HandlerTarget {
        name: "invoice".into(),
        timeout: None,
    });
    assert_eq!(
        f.hub.pick(&req, &HashSet::new()).map(|p| p.2).as_deref(),
        Some("a")
    );
}

#[tokio::test(start_paused = true)]
async fn equal_loads_keep_a_job_on_its_last_worker() {
    let f = Fixture::new();
    f.worker("a", "billing", 4, 1, Answer::Run).await;
    f.worker("b", "billing", 4, 0, Answer::Run).await;
    // b is less loaded: the job goes there, and b is now 1 of 4 like a.
    assert_eq!(f.pick("billing", "j").as_deref(), Some("b"));
    // Equal loads (1 and 1): the job stays on b, although a comes first by id.
    assert_eq!(f.pick("billing", "j").as_deref(), Some("b"));
    // a (1) is less loaded than b (2).
    assert_eq!(f.pick("billing", "k").as_deref(), Some("a"));
    // Equal loads (2 and 2), a job with no last worker: by id.
    assert_eq!(f.pick("billing", "l").as_deref(), Some("a"));
    // Stickiness only breaks ties: l last ran on a, but a (3) is busier than b (2).
    assert_eq!(f.pick("billing", "l").as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn a_lost_worker_leaves_no_stickiness() {
    let f = Fixture::new();
    f.worker("a", "billing", 4, 0, Answer::Run).await;
    f.worker("b", "billing", 4, 1, Answer::Run).await;
    f.hub
        .shared
        .registry()
        .sticky
        .insert(JobId::new("j").unwrap(), "b".into());
    f.hub
        .shared
        .registry()
        .workers
        .get_mut("b")
        .unwrap()
        .in_flight = 0;
    assert_eq!(f.pick("billing", "j").as_deref(), Some("b"));
    let node = f.hub.shared.node.clone();
    assert!(f.hub.shared.registry().lose("b", "test", &node).is_some());
    assert!(!f.hub.shared.registry().sticky.values().any(|w| w == "b"));
    assert_eq!(f.pick("billing", "j").as_deref(), Some("a"));
}

#[tokio::test(start_paused = true)]
async fn no_worker_connected_misfires_at_the_end_of_the_window() {
    let mut f = Fixture::new();
    f.worker("a", "reports", 4, 0, Answer::Run).await;
    let result = f.hub.attempt(attempt("billing", "j", 1_500)).await;
    assert_eq!(result.outcome, Outcome::Misfired);
    assert_eq!(
        result.reason.as_deref(),
        Some("no worker of group billing was connected within the claim window")
    );
    let now_ms = f.hub.shared.clock.now_ms();
    assert!(
        (T0_MS + 1_500..T0_MS + 1_500 + 250).contains(&now_ms),
        "it waited for a worker until the end of the window, not beyond: {} ms",
        now_ms - T0_MS
    );
    assert!(f.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_joins_within_the_window_gets_the_fire() {
    let mut f = Fixture::new();
    let hub = f.hub.clone();
    let fire = tokio::spawn(async move { hub.attempt(attempt("billing", "j", 3_000)).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    f.worker("late", "billing", 4, 0, Answer::Run).await;
    f.hub.shared.changed.notify_waiters();
    let result = fire.await.unwrap();
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(result.reason.as_deref(), Some("worker late"));
    let sent = f.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].at_ms >= T0_MS + 700);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_offer_goes_to_another_worker_after_its_start_by_never_to_two() {
    let mut f = Fixture::new();
    // a comes first (by id, equal loads) and never answers; b runs what it gets.
    f.worker("a", "billing", 4, 0, Answer::Silent).await;
    f.worker("b", "billing", 4, 0, Answer::Run).await;
    let window_ms = 10_000;
    let req = attempt("billing", "j", window_ms);
    let progress = req.progress.clone();
    let result = f.hub.attempt(req).await;
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(result.reason.as_deref(), Some("worker b"));
    // The executor sees it ran, from b's acknowledgement to its result.
    assert_eq!(progress.phase(), RemotePhase::Ran);
    let (acked_ms, finished_ms) = progress.span_ms().expect("a known span");
    assert!(acked_ms >= T0_MS + SEND_WINDOW.as_millis() as i64 && finished_ms >= acked_ms);

    let sent = f.sent();
    assert_eq!(
        sent.iter().map(|r| r.worker.as_str()).collect::<Vec<_>>(),
        ["a", "b"],
        "one send to each, a first"
    );
    let (a, b) = (&sent[0], &sent[1]);
    assert_eq!(a.start.start_by_ms, T0_MS + SEND_WINDOW.as_millis() as i64);
    // b is offered the fire once a's offer has lapsed unanswered (a was never told go).
    assert!(
        b.at_ms >= a.start.start_by_ms,
        "b was offered it at +{} ms, before a's start-by +{} ms",
        b.at_ms - T0_MS,
        a.start.start_by_ms - T0_MS
    );
    assert!(
        b.start.start_by_ms <= T0_MS + window_ms,
        "within the deadline"
    );
    assert_ne!(a.start.dispatch, b.start.dispatch);
    assert!(
        f.hub.shared.registry().workers["a"].suspect,
        "a gets no fires until it is heard from again"
    );
    assert_eq!(f.hub.shared.registry().workers["a"].in_flight, 0);
    assert_eq!(f.hub.shared.registry().workers["b"].in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn offers_that_no_worker_answers_misfire_and_never_overlap() {
    let mut f = Fixture::new();
    f.worker("a", "billing", 4, 0, Answer::Silent).await;
    f.worker("b", "billing", 4, 0, Answer::Silent).await;
    f.worker("c", "billing", 4, 0, Answer::Silent).await;
    let window_ms = 5_000;
    let req = attempt("billing", "j", window_ms);
    let progress = req.progress.clone();
    let result = f.hub.attempt(req).await;
    assert_eq!(result.outcome, Outcome::Misfired);
    assert_eq!(
        progress.phase(),
        RemotePhase::Waiting,
        "never told to go: not a run"
    );
    let reason = result.reason.unwrap();
    assert!(
        reason
            .starts_with("no worker of group billing started it within the claim window (tried: "),
        "{reason}"
    );
    let sent = f.sent();
    assert!(!sent.is_empty());
    for pair in sent.windows(2) {
        assert!(
            pair[1].at_ms >= pair[0].start.start_by_ms,
            "{} was offered it while {}'s offer stood",
            pair[1].worker,
            pair[0].worker
        );
    }
    for r in &sent {
        assert!(
            r.start.start_by_ms <= T0_MS + window_ms,
            "a send past the deadline: {r:?}"
        );
    }
    let workers: HashSet<&str> = sent.iter().map(|r| r.worker.as_str()).collect();
    assert_eq!(workers.len(), sent.len(), "no worker was sent it twice");
    assert!(f.started().is_empty(), "nobody was told go");
}

#[tokio::test(start_paused = true)]
async fn a_worker_cut_off_at_the_go_leaves_the_fire_in_doubt_and_no_other_worker_runs_it() {
    // postmortem: with one phase (start, then acknowledgement), an acknowledgement lost with a link cut
    // silently right after the start looked like a start that never arrived: past the start-by and a grace,
    // the owner sent the fire to b while a ran it. Now nobody can start before the owner's go, which goes to
    // one worker only.
    let mut f = Fixture::new();
    f.worker("a", "billing", 4, 0, Answer::CutAtGo).await;
    f.worker("b", "billing", 4, 0, Answer::Run).await;
    let hub = f.hub.clone();
    let req = attempt("billing", "j", 10_000);
    let progress = req.progress.clone();
    let fire = tokio::spawn(async move { hub.attempt(req).await });
    f.until_started(1).await;
    assert_eq!(
        progress.phase(),
        RemotePhase::MayHaveStarted,
        "told to go, not acknowledged: withdrawn now, it would be in doubt"
    );
    // a says nothing more: the owner's heartbeat task finds it silent after WORKER_TIMEOUT.
    tokio::time::sleep(super::WORKER_TIMEOUT + Duration::from_secs(1)).await;
    f.hub.shared.tick();
    let result = fire.await.unwrap();
    assert_eq!(result.outcome, Outcome::InDoubt, "{result:?}");
    assert_eq!(
        f.started()
            .iter()
            .map(|s| s.worker.as_str())
            .collect::<Vec<_>>(),
        ["a"],
        "only a ran it"
    );
    assert_eq!(
        f.sent()
            .iter()
            .map(|r| r.worker.as_str())
            .collect::<Vec<_>>(),
        ["a"],
        "b was never offered it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_ready_that_comes_after_the_start_by_gets_no_go() {
    let mut f = Fixture::new();
    f.worker("a", "billing", 4, 0, Answer::Silent).await;
    let hub = f.hub.clone();
    let fire = tokio::spawn(async move { hub.attempt(attempt("billing", "j", 2_500)).await });
    let offer = f.received.recv().await.unwrap();
    // a answers only after its offer lapsed (a slow worker): the owner has moved on.
    tokio::time::sleep_until(
        tokio::time::Instant::now()
            + Duration::from_millis((offer.start.start_by_ms - offer.at_ms) as u64 + 100),
    )
    .await;
    answer(&f.hub, offer.start.dispatch, Event::Ready);
    let result = fire.await.unwrap();
    assert_eq!(result.outcome, Outcome::Misfired);
    assert!(f.started().is_empty(), "a was never told go");
}

#[tokio::test(start_paused = true)]
async fn a_worker_lost_after_its_acknowledgement_leaves_the_fire_in_doubt() {
    let mut f = Fixture::new();
    f.worker("a", "billing", 4, 0, Answer::AckOnly).await;
    f.worker("b", "billing", 4, 0, Answer::Run).await;
    let hub = f.hub.clone();
    let req = attempt("billing", "j", 10_000);
    let progress = req.progress.clone();
    let fire = tokio::spawn(async move { hub.attempt(req).await });
    f.until_started(1).await;
    let node = f.hub.shared.node.clone();
    let lost = f
        .hub
        .shared
        .registry()
        .lose("a", "its link to this node broke", &node);
    f.hub.shared.publish(lost);
    let result = fire.await.unwrap();
    assert_eq!(result.outcome, Outcome::InDoubt);
    assert_eq!(
        result.reason.as_deref(),
        Some("worker a was lost mid-run (its link to this node broke)")
    );
    assert_eq!(progress.phase(), RemotePhase::Ran);
    assert_eq!(
        progress.span_ms(),
        None,
        "its end is unknown: it justifies no skip"
    );
    assert_eq!(
        f.sent()
            .iter()
            .map(|r| r.worker.as_str())
            .collect::<Vec<_>>(),
        ["a"],
        "not offered to b: a may be running it"
    );
}

#[tokio::test(start_paused = true)]
async fn at_least_once_sends_a_lost_run_once_more_to_another_worker() {
    let mut f = Fixture::new();
    f.worker("a", "billing", 4, 0, Answer::AckOnly).await;
    f.worker("b", "billing", 4, 0, Answer::Run).await;
    let hub = f.hub.clone();
    let mut req = attempt("billing", "j", 10_000);
    req.at_least_once = true;
    let fire = tokio::spawn(async move { hub.attempt(req).await });
    f.until_started(1).await;
    let node = f.hub.shared.node.clone();
    let lost = f
        .hub
        .shared
        .registry()
        .lose("a", "not heard from for 4s", &node);
    f.hub.shared.publish(lost);
    let result = fire.await.unwrap();
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(
        result.reason.as_deref(),
        Some(
            "redelivered: worker a was lost mid-run (not heard from for 4s) (at_least_once); worker b"
        )
    );
    let offered: Vec<String> = f.sent().into_iter().map(|r| r.worker).collect();
    assert_eq!(offered, ["a", "b"]);
}
