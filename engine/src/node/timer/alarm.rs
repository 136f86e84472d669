//! The timer's alarm: one per timer, never one per job.

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::watch;
use tracing::warn;

use super::Msg;
use crate::clock::Clock;

/// The alarm: wakes the timer at the earliest deadline. One per timer, never one per job.
///
/// On a real-time clock it is a dedicated OS thread that sleeps on a condition variable with a timeout: the
/// kernel wakes it within tens of microseconds, below tokio's 1 ms timer resolution, and it takes nothing from
/// the runtime's workers. On a virtual clock (paused tokio time: tests, the simulation) it is a tokio task, so
/// that `tokio::time` drives it.
pub(super) enum Alarm {
    Virtual(watch::Sender<Option<i64>>),
    Thread(Arc<ThreadAlarm>),
}

#[derive(Default)]
pub(super) struct ThreadAlarm {
    state: std::sync::Mutex<AlarmState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct AlarmState {
    deadline: Option<i64>,
    /// Bumped by every `set` that changes something, so the thread can tell a new deadline from the one it
    /// just fired.
    generation: u64,
    /// The generation whose deadline the thread fired.
    fired: Option<u64>,
    closed: bool,
}

impl Alarm {
    pub(super) fn start(clock: Arc<dyn Clock>, timer: ActorRef<Msg>) -> Self {
        if !clock.is_real_time() {
            let (tx, rx) = watch::channel(None);
            spawn_virtual_alarm(clock, timer, rx);
            return Alarm::Virtual(tx);
        }
        let shared = Arc::new(ThreadAlarm::default());
        let thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("campanile-alarm".to_owned())
            .spawn(move || run_thread_alarm(&thread, clock.as_ref(), &timer));
        if let Err(error) = spawned {
            warn!(%error, "no alarm thread; falling back to a tokio timer");
        }
        Alarm::Thread(shared)
    }

    /// The next deadline (Unix ms), or none.
    pub(super) fn set(&self, deadline: Option<i64>) {
        match self {
            Alarm::Virtual(tx) => {
                tx.send_replace(deadline);
            }
            Alarm::Thread(shared) => {
                let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                if state.deadline == deadline && state.fired != Some(state.generation) {
                    // The thread already waits for this very deadline. The timer sets its deadline after
                    // every turn (hundreds of turns in a claim round): waking the thread for each one took a
                    // core from the runtime's workers for nothing.
                    return;
                }
                state.deadline = deadline;
                state.generation += 1;
                shared.changed.notify_one();
            }
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Alarm::Thread(shared) = self {
            shared
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .closed = true;
            shared.changed.notify_one();
        }
    }
}

fn run_thread_alarm(shared: &ThreadAlarm, clock: &dyn Clock, timer: &ActorRef<Msg>) {
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if state.closed {
            return;
        }
        let wait_us = match state.deadline {
            Some(at) if state.fired != Some(state.generation) => at * 1000 - clock.now_us(),
            _ => {
                // Nothing to wait for until the timer sets a (new) deadline.
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
        };
        if wait_us <= 0 {
            state.fired = Some(state.generation);
            drop(state);
            if timer.cast(Msg::Wake).is_err() {
                return;
            }
            state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            continue;
        }
        let timeout = Duration::from_micros(wait_us as u64);
        state = shared
            .changed
            .wait_timeout(state, timeout)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

fn spawn_virtual_alarm(
    clock: Arc<dyn Clock>,
    timer: ActorRef<Msg>,
    mut deadline: watch::Receiver<Option<i64>>,
) {
    tokio::spawn(async move {
        loop {
            let at = *deadline.borrow_and_update();
            match at {
                None => {
                    if deadline.changed().await.is_err() {
                        return;
                    }
                }
                Some(at_ms) => {
                    tokio::select! {
                        biased;
                        changed = deadline.changed() => if changed.is_err() { return },
                        () = tokio::time::sleep_until(clock.deadline(at_ms)) => {
                            if timer.cast(Msg::Wake).is_err() {
                                return;
                            }
                            // The timer answers every Wake with a fresh deadline.
                            if deadline.changed().await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use tokio::sync::mpsc;

    use super::*;
    use crate::clock::SystemClock;

    /// Stands in for the timer: passes each wake on.
    struct Timer;

    impl Actor for Timer {
        type Msg = Msg;
        type State = mpsc::UnboundedSender<()>;
        type Arguments = mpsc::UnboundedSender<()>;

        async fn pre_start(
            &self,
            _: ActorRef<Msg>,
            woken: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(woken)
        }

        async fn handle(
            &self,
            _: ActorRef<Msg>,
            msg: Msg,
            woken: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            if matches!(msg, Msg::Wake) {
                let _ = woken.send(());
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_thread_alarm_fires_a_deadline_set_again_after_it_fired() {
        let (tx, mut woken) = mpsc::unbounded_channel();
        let (timer, _) = Actor::spawn(None, Timer, tx).await.unwrap();
        let clock = SystemClock::new().shared();
        let due = clock.now_ms() - 1;
        let alarm = Alarm::start(clock, timer.clone());
        assert!(matches!(alarm, Alarm::Thread(_)));
        // Bounded, so that a wake never sent fails the test rather than hanging it.
        let wake = Duration::from_secs(10);
        alarm.set(Some(due));
        tokio::time::timeout(wake, woken.recv())
            .await
            .expect("the alarm fires a due deadline");
        // The timer answers a wake with its deadline, which may be the same one (nothing was emitted): the
        // alarm fires it again rather than taking it for the one it already waits for.
        alarm.set(Some(due));
        tokio::time::timeout(wake, woken.recv())
            .await
            .expect("the same deadline, set again, fires again");
        drop(alarm);
        timer.stop(None);
    }
}
