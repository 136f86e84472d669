//! Cases of leadership: one leader under concurrent campaigns, growing epochs, resign, and leadership ending
//! with its session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use campanile::CoordError;
use campanile::coordinator::{Leader, SessionId};
use tokio::sync::Barrier;
use tokio::time::Instant;

use super::lines::*;
use super::support::{Ctx, ok};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// Many sessions on several clients campaign at once, in rounds: exactly one wins each round, every client
/// agrees on it, it keeps its epoch when it campaigns again, and the losers keep losing. Between rounds the
/// leader resigns or closes its session. Meanwhile an observer polls `leader` and checks that no epoch ever
/// names two sessions and that epochs never go back.
pub async fn campaign_elects_exactly_one_leader<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "campaign_elects_exactly_one_leader",
        NamespaceOptions::clients(4),
    )
    .await
    else {
        return;
    };
    let mut sessions = Vec::new();
    for i in 0..12 {
        sessions.push((i, ctx.open(i, &format!("candidate-{i:02}")).await.id));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let observer = {
        let client = ctx.c(3);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut seen: Vec<Leader> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(Some(leader)) = client.leader().await
                    && seen.last() != Some(&leader)
                {
                    seen.push(leader);
                }
                tokio::task::yield_now().await;
            }
            seen
        })
    };

    let mut last_epoch: Option<u64> = None;
    for round in 0..4 {
        let barrier = Arc::new(Barrier::new(sessions.len()));
        let mut tasks = Vec::new();
        for &(client, session) in &sessions {
            let c = ctx.c(client);
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                (session, c.campaign(session).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (session, result) = task.await.expect("campaign task panicked");
            if let Some(leader) = ok(result, CAMPAIGN_ONE, "concurrent campaign") {
                check!(
                    leader.session == session,
                    CAMPAIGN_ONE,
                    "round {round}: campaign of {session:?} returned the leadership of {:?}",
                    leader.session
                );
                winners.push(leader);
            }
        }
        check!(
            winners.len() == 1,
            CAMPAIGN_ONE,
            "round {round}: {} of {} concurrent campaigns won: {winners:?}",
            winners.len(),
            sessions.len()
        );
        let winner = winners.remove(0);
        if let Some(last) = last_epoch {
            check!(
                winner.epoch > last,
                CAMPAIGN_EPOCH,
                "round {round}: epoch {} is not greater than the previous term's {last}",
                winner.epoch
            );
        }
        last_epoch = Some(winner.epoch);
        for client in 0..ctx.clients() {
            let seen = ok(ctx.c(client).leader().await, LEADER_LIVE, "leader");
            check!(
                seen.as_ref() == Some(&winner),
                CAMPAIGN_ONE,
                "round {round}: client {client} sees leader {seen:?}, the campaign returned {winner:?}"
            );
        }
        // Campaigning again: the winner keeps its term, everybody else loses.
        for &(client, session) in &sessions {
            let again = ok(
                ctx.c(client + 1).campaign(session).await,
                CAMPAIGN_ONE,
                "campaign",
            );
            if session == winner.session {
                check!(
                    again.as_ref() == Some(&winner),
                    CAMPAIGN_SAME_EPOCH,
                    "round {round}: the leader campaigned again and got {again:?}, expected {winner:?}"
                );
            } else {
                check!(
                    again.is_none(),
                    CAMPAIGN_ONE,
                    "round {round}: {session:?} won while {:?} leads: {again:?}",
                    winner.session
                );
            }
        }
        // End the term: resign in even rounds, close the session in odd ones.
        let at = sessions
            .iter()
            .position(|(_, s)| *s == winner.session)
            .expect("the winner is a candidate");
        let (client, session) = sessions[at];
        if round % 2 == 0 {
            ok(
                ctx.c(client).resign(session).await,
                RESIGN_HANDS_OVER,
                "resign",
            );
        } else {
            sessions.remove(at);
            ok(
                ctx.c(client).close_session(session).await,
                CLOSE_LEAVES,
                "close_session",
            );
        }
        let after = ok(ctx.c(client + 2).leader().await, LEADER_LIVE, "leader");
        check!(
            after.is_none(),
            if round % 2 == 0 {
                RESIGN_HANDS_OVER
            } else {
                CAMPAIGN_ENDS
            },
            "round {round}: after the leader's term ended, leader() still returns {after:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let seen = observer.await.expect("observer panicked");
    let mut by_epoch: BTreeMap<u64, SessionId> = BTreeMap::new();
    let mut previous = 0;
    for leader in &seen {
        let holder = *by_epoch.entry(leader.epoch).or_insert(leader.session);
        check!(
            holder == leader.session,
            CAMPAIGN_ONE,
            "epoch {} was held by {holder:?} and by {:?}",
            leader.epoch,
            leader.session
        );
        check!(
            leader.epoch >= previous,
            CAMPAIGN_EPOCH,
            "a sequential observer saw epoch {} after epoch {previous}",
            leader.epoch
        );
        previous = leader.epoch;
    }
    ctx.finish().await;
}

/// Terms ended by resign, by close, and a new term of the same session all get strictly greater epochs;
/// resigning as a non-leader changes nothing.
pub async fn epochs_increase_across_terms<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "epochs_increase_across_terms",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let a = ctx.open(0, "a").await.id;
    let b = ctx.open(1, "b").await.id;
    let c = ctx.open(0, "c").await.id;
    let mut epochs = Vec::new();

    let t1 = ctx.lead(0, a, CAMPAIGN_ONE).await;
    epochs.push(t1.epoch);
    check!(
        ok(ctx.c(1).campaign(b).await, CAMPAIGN_ONE, "campaign").is_none(),
        CAMPAIGN_ONE,
        "b won while a leads"
    );
    ok(
        ctx.c(1).resign(b).await,
        RESIGN_NOOP,
        "resign by a non-leader",
    );
    let still = ok(ctx.c(1).leader().await, LEADER_LIVE, "leader");
    check!(
        still.as_ref() == Some(&t1),
        RESIGN_NOOP,
        "resign by a non-leader changed the leader from {t1:?} to {still:?}"
    );
    check!(
        ctx.lead(0, a, CAMPAIGN_SAME_EPOCH).await == t1,
        CAMPAIGN_SAME_EPOCH,
        "the leader's campaign after a non-leader's resign returned another term"
    );

    ok(ctx.c(0).resign(a).await, RESIGN_HANDS_OVER, "resign");
    let t2 = ctx.lead(1, b, RESIGN_HANDS_OVER).await;
    epochs.push(t2.epoch);
    check!(
        ok(ctx.c(0).campaign(a).await, CAMPAIGN_ONE, "campaign").is_none(),
        CAMPAIGN_ONE,
        "a won again while b leads"
    );
    ok(ctx.c(1).resign(b).await, RESIGN_HANDS_OVER, "resign");
    // The same session's new term gets a new epoch.
    let t3 = ctx.lead(0, a, RESIGN_HANDS_OVER).await;
    epochs.push(t3.epoch);
    ok(
        ctx.c(0).close_session(a).await,
        CLOSE_LEAVES,
        "close_session",
    );
    let t4 = ctx.lead(1, c, CAMPAIGN_ENDS).await;
    epochs.push(t4.epoch);
    ok(ctx.c(1).resign(c).await, RESIGN_HANDS_OVER, "resign");
    ok(ctx.c(0).resign(c).await, RESIGN_NOOP, "resign twice");
    let t5 = ctx.lead(0, b, RESIGN_HANDS_OVER).await;
    epochs.push(t5.epoch);
    for pair in epochs.windows(2) {
        check!(
            pair[1] > pair[0],
            CAMPAIGN_EPOCH,
            "epochs of successive terms: {epochs:?}"
        );
    }
    ctx.finish().await;
}

/// A leader whose session expires (observed through `watch_session` alone) is no longer leader, another
/// session wins with a greater epoch, and the expired session's campaign fails with `SessionExpired`.
pub async fn leadership_ends_with_session<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "leadership_ends_with_session",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let other = ctx.open(1, "successor").await.id;
    let (mortal, _) = ctx.open_short(0, "mortal-leader").await;
    let term = ctx.lead(0, mortal.id, CAMPAIGN_ONE).await;
    check!(
        ok(ctx.c(1).campaign(other).await, CAMPAIGN_ONE, "campaign").is_none(),
        CAMPAIGN_ONE,
        "the successor won while the mortal leader is alive"
    );
    let mut rx = ok(
        ctx.c(1).watch_session(mortal.id).await,
        WATCH_SESSION_EXPIRY,
        "watch_session",
    );
    let deadline = ctx.expiry_deadline(Instant::now(), mortal.ttl);
    ctx.await_expired(&mut rx, deadline, WATCH_SESSION_EXPIRY)
        .await;
    for client in 0..2 {
        let now = ok(ctx.c(client).leader().await, LEADER_LIVE, "leader");
        check!(
            now.as_ref().is_none_or(|l| l.session != mortal.id),
            LEADER_LIVE,
            "client {client} returns the expired session's leadership {now:?}"
        );
    }
    let next = ctx.lead(1, other, CAMPAIGN_ENDS).await;
    check!(
        next.epoch > term.epoch,
        CAMPAIGN_EPOCH,
        "the successor's epoch {} is not greater than the expired leader's {}",
        next.epoch,
        term.epoch
    );
    match ctx.c(0).campaign(mortal.id).await {
        Err(CoordError::SessionExpired { .. }) => {}
        other => fail!(
            CAMPAIGN_EXPIRED,
            "campaign of the expired session returned {other:?}"
        ),
    }
    let now = ok(ctx.c(0).leader().await, LEADER_LIVE, "leader");
    check!(
        now.as_ref() == Some(&next),
        COORD_FAILED_WRITES,
        "after the expired session's failed campaign the leader is {now:?}, expected {next:?}"
    );
    ctx.finish().await;
}
