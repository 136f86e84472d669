//! Cases of sessions: open, keep-alive, close, expiry, and what survives a backend restart.

use std::collections::BTreeSet;
use std::time::Duration;

use campanile::CoordError;
use campanile::coordinator::{Precondition, SessionId, SessionState};
use tokio::time::Instant;

use super::lines::*;
use super::support::{Ctx, check_members, fire_claim, job_id, node_info, ok, record, simple_job};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// Session ids are unique: across many sessions, concurrent opens, closes and re-opens of the same node id,
/// and through one shared client (each node with its own session).
pub async fn session_ids_are_never_reused<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "session_ids_are_never_reused",
        NamespaceOptions::clients(3),
    )
    .await
    else {
        return;
    };
    let mut seen = BTreeSet::new();
    let mut fresh = |id: SessionId, when: &str| {
        check!(
            seen.insert(id),
            OPEN_FRESH_ID,
            "{when}: session id {id:?} was returned twice"
        );
    };

    // Many nodes through one shared client, each with its own session.
    let mut open = Vec::new();
    for i in 0..8 {
        let node = format!("shared-{i}");
        let session = ctx.open(0, &node).await;
        fresh(session.id, "sequential opens on one client");
        open.push((node, session.id));
    }
    let expected: Vec<(&str, SessionId)> = open.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let members = ok(ctx.c(0).members().await, COORD_SHARED, "members");
    check_members(
        &members,
        &expected,
        COORD_SHARED,
        "8 nodes sharing one client",
    );
    // Closing one node's session leaves the others alone.
    let (closed_node, closed) = open.remove(3);
    ok(
        ctx.c(0).close_session(closed).await,
        COORD_SHARED,
        "close_session",
    );
    for (node, session) in &open {
        check!(
            ctx.c(0).keep_alive(*session).await.is_ok(),
            COORD_SHARED,
            "closing the session of {closed_node} ended the session of {node} on the same instance"
        );
    }

    // Concurrent opens from every client.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let client = ctx.c(i);
        let ttl = ctx.profile.long_ttl;
        tasks.push(tokio::spawn(async move {
            client
                .open_session(node_info(&format!("concurrent-{i}")), ttl)
                .await
        }));
    }
    for task in tasks {
        let session = ok(
            task.await.expect("open task panicked"),
            OPEN_FRESH_ID,
            "concurrent open_session",
        );
        fresh(session.id, "concurrent opens");
    }

    // Re-opening a closed node id gets a new id.
    for round in 0..3 {
        let session = ctx.open(round, &closed_node).await;
        fresh(session.id, "re-open of a closed node id");
        ok(
            ctx.c(round).close_session(session.id).await,
            CLOSE_EXPIRES,
            "close_session",
        );
    }
    // And so does re-opening after an expiry.
    let (short, sent) = ctx.open_short(1, "expiring").await;
    fresh(short.id, "short session");
    let mut rx = ok(
        ctx.c(2).watch_session(short.id).await,
        WATCH_SESSION_EXPIRY,
        "watch_session",
    );
    let deadline = ctx.expiry_deadline(sent, short.ttl);
    ctx.await_expired(&mut rx, deadline, WATCH_SESSION_EXPIRY)
        .await;
    let again = ctx.open(1, "expiring").await;
    fresh(again.id, "re-open after expiry");
    ctx.finish().await;
}

/// The granted TTL is never below the requested one.
pub async fn session_ttl_is_at_least_requested<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "session_ttl_is_at_least_requested",
        NamespaceOptions::clients(1),
    )
    .await
    else {
        return;
    };
    let min = ctx.profile.min_ttl;
    let requests = [
        min,
        min + Duration::from_millis(1),
        min * 3 / 2 + Duration::from_millis(7),
        ctx.profile.long_ttl,
    ];
    for (i, ttl) in requests.into_iter().enumerate() {
        let session = ok(
            ctx.c(0)
                .open_session(node_info(&format!("ttl-{i}")), ttl)
                .await,
            OPEN_TTL,
            "open_session",
        );
        check!(
            session.ttl >= ttl,
            OPEN_TTL,
            "asked for {ttl:?}, granted {:?}",
            session.ttl
        );
    }
    ctx.finish().await;
}

/// A second session for a node id that has a live one is a `Conflict` that disturbs nothing; once the first
/// session ended (closed or expired) the node id can join again.
pub async fn duplicate_node_id_conflicts<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "duplicate_node_id_conflicts",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let first = ctx.open(0, "twin").await;
    for client in 0..2 {
        match ctx
            .c(client)
            .open_session(node_info("twin"), ctx.profile.long_ttl)
            .await
        {
            Err(CoordError::Conflict { .. }) => {}
            other => fail!(
                OPEN_DUPLICATE,
                "second open_session(twin) on client {client} returned {other:?}"
            ),
        }
    }
    let members = ok(ctx.c(1).members().await, MEMBERS_EXACT, "members");
    check_members(
        &members,
        &[("twin", first.id)],
        COORD_FAILED_WRITES,
        "after the rejected duplicate opens",
    );
    check!(
        ctx.c(0).keep_alive(first.id).await.is_ok(),
        COORD_FAILED_WRITES,
        "the rejected duplicate open ended the first session"
    );

    ok(
        ctx.c(0).close_session(first.id).await,
        CLOSE_EXPIRES,
        "close_session",
    );
    let second = ok(
        ctx.c(1)
            .open_session(node_info("twin"), ctx.profile.long_ttl)
            .await,
        OPEN_DUPLICATE,
        "open_session(twin) after the first session was closed (only a live session conflicts)",
    );

    // After an expiry too.
    let (short, sent) = ctx.open_short(0, "short-twin").await;
    match ctx
        .c(1)
        .open_session(node_info("short-twin"), ctx.profile.long_ttl)
        .await
    {
        Err(CoordError::Conflict { .. }) => {}
        other => fail!(
            OPEN_DUPLICATE,
            "second open_session(short-twin) returned {other:?}"
        ),
    }
    let mut rx = ok(
        ctx.c(0).watch_session(short.id).await,
        WATCH_SESSION_EXPIRY,
        "watch_session",
    );
    let deadline = ctx.expiry_deadline(sent, short.ttl);
    ctx.await_expired(&mut rx, deadline, WATCH_SESSION_EXPIRY)
        .await;
    let third = ok(
        ctx.c(1)
            .open_session(node_info("short-twin"), ctx.profile.long_ttl)
            .await,
        OPEN_DUPLICATE,
        "open_session(short-twin) after the first session expired (only a live session conflicts)",
    );
    let members = ok(ctx.c(0).members().await, MEMBERS_EXACT, "members");
    check_members(
        &members,
        &[("twin", second.id), ("short-twin", third.id)],
        MEMBERS_EXACT,
        "after re-joins",
    );
    ctx.finish().await;
}

/// Keep-alives keep a short session alive well past its TTL; after the last one it lives at least its TTL
/// counted from when that keep-alive was sent, then expires by itself.
///
/// The checks are only conclusive while the case runs on time: an observation made after the TTL since the
/// last keep-alive could legitimately see an expired session. A case that oversleeps (a loaded machine)
/// starts over with a new session, at most three times, then fails saying that `min_ttl` is too small.
pub async fn keep_alive_extends_session<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "keep_alive_extends_session",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    for attempt in 0..3 {
        let (session, opened) = ctx.open_short(0, &format!("kept-{attempt}")).await;
        let ttl = session.ttl;
        let mut rx = ok(
            ctx.c(0).watch_session(session.id).await,
            WATCH_SESSION_EXPIRY,
            "watch_session",
        );
        let mut last_sent = opened;
        let mut on_time = true;
        for _ in 0..6 {
            // Time passing is what this case tests; nothing is synchronised by this sleep.
            tokio::time::sleep(ttl / 3).await;
            let sent = Instant::now();
            let result = ctx.c(0).keep_alive(session.id).await;
            let returned = Instant::now();
            match result {
                Ok(()) => last_sent = sent,
                Err(error) if returned < last_sent + ttl => fail!(
                    KEEP_ALIVE_EXTENDS,
                    "keep_alive returned {error:?} {:?} after the previous successful keep-alive was sent, within the TTL {ttl:?}",
                    returned - last_sent
                ),
                Err(_) => {
                    on_time = false;
                    break;
                }
            }
            let state = *rx.borrow();
            if Instant::now() < last_sent + ttl {
                check!(
                    state != SessionState::Expired,
                    KEEP_ALIVE_EXTENDS,
                    "watch_session reports Expired within the TTL {ttl:?} of a successful keep-alive"
                );
            }
            let members = ok(ctx.c(1).members().await, MEMBERS_EXACT, "members");
            if Instant::now() < last_sent + ttl {
                check!(
                    members.members.iter().any(|m| m.session == session.id),
                    KEEP_ALIVE_EXTENDS,
                    "the kept-alive session is missing from members within the TTL {ttl:?} of a successful keep-alive"
                );
            } else {
                on_time = false;
                break;
            }
        }
        if !on_time {
            eprintln!(
                "keep_alive_extends_session: attempt {attempt} overslept the TTL {ttl:?}; starting over"
            );
            continue;
        }
        check!(
            Instant::now() >= opened + ttl,
            KEEP_ALIVE_EXTENDS,
            "the case did not outlive the first TTL"
        );
        let deadline = ctx.expiry_deadline(Instant::now(), ttl);
        let expired_at = ctx
            .await_expired(&mut rx, deadline, WATCH_SESSION_EXPIRY)
            .await;
        check!(
            expired_at >= last_sent + ttl,
            KEEP_ALIVE_EXTENDS,
            "expired {:?} after the last successful keep-alive was sent, before its TTL {ttl:?}",
            expired_at - last_sent
        );
        ctx.finish().await;
        return;
    }
    panic!(
        "{KEEP_ALIVE_EXTENDS}\n    could not be checked: three attempts overslept the TTL; the factory's min_ttl {:?} is too small for this machine",
        ctx.profile.min_ttl
    );
}

/// After `close_session` returns, every call made with the session fails with `SessionExpired` (publishing
/// may say `Fenced`), closing again succeeds, and a watch of it holds `Expired`.
pub async fn closed_session_fails_every_call<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "closed_session_fails_every_call",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let job = simple_job("closed-job");
    ctx.put(0, &job).await;
    let session = ctx.open(0, "closing").await;
    let leader = ctx.lead(0, session.id, CAMPAIGN_ONE).await;
    ctx.publish(0, &leader, &[(&job.id, "closing")]).await;
    ctx.grant(
        0,
        session.id,
        fire_claim(&job.id, 0, 1000, 0),
        CLAIM_NOT_OWNER,
    )
    .await;
    let mut rx = ok(
        ctx.c(1).watch_session(session.id).await,
        WATCH_SESSION_EXPIRY,
        "watch_session",
    );

    ok(
        ctx.c(0).close_session(session.id).await,
        CLOSE_EXPIRES,
        "close_session",
    );
    let s = session.id;
    let c = ctx.c(1);
    let expired = |r: &Result<(), CoordError>| matches!(r, Err(CoordError::SessionExpired { .. }));
    let calls: Vec<(&str, Result<(), CoordError>)> = vec![
        ("keep_alive", c.keep_alive(s).await),
        ("campaign", c.campaign(s).await.map(drop)),
        ("resign", c.resign(s).await),
        (
            "claim_fires",
            c.claim_fires(s, &[fire_claim(&job.id, 0, 2000, 0)])
                .await
                .map(drop),
        ),
        (
            "release_claims",
            c.release_claims(s, &[(job.id.clone(), 500)]).await,
        ),
        (
            "record_runs",
            c.record_runs(
                s,
                vec![record(
                    &job.id,
                    60_000,
                    "closing",
                    campanile::Outcome::Succeeded,
                )],
            )
            .await
            .map(drop),
        ),
    ];
    for (call, result) in &calls {
        let line = match *call {
            "keep_alive" => KEEP_ALIVE_EXPIRED,
            "campaign" => CAMPAIGN_EXPIRED,
            "claim_fires" => CLAIM_EXPIRED,
            "record_runs" => RECORD_EXPIRED,
            _ => CLOSE_EXPIRES,
        };
        check!(
            expired(result),
            line,
            "{call} with a closed session returned {result:?} (also: {CLOSE_EXPIRES})"
        );
    }
    match c
        .publish_assignment(s, leader.epoch, super::support::owners_map(&[]))
        .await
    {
        Err(CoordError::SessionExpired { .. } | CoordError::Fenced { .. }) => {}
        other => fail!(
            PUBLISH_FENCED,
            "publish_assignment with a closed session returned {other:?}"
        ),
    }
    // A receiver taken before the close learns of it asynchronously (a networked backend's watch does).
    let deadline = ctx.notify_deadline();
    ctx.await_expired(&mut rx, deadline, CLOSE_EXPIRES).await;
    let fresh = ok(
        c.watch_session(s).await,
        WATCH_SESSION_UNKNOWN,
        "watch_session of a closed session",
    );
    check!(
        *fresh.borrow() == SessionState::Expired,
        WATCH_SESSION_UNKNOWN,
        "watch_session of a closed session holds {:?}",
        *fresh.borrow()
    );
    for round in 0..2 {
        check!(
            c.close_session(s).await.is_ok(),
            CLOSE_IDEMPOTENT,
            "closing a closed session again (round {round}) failed"
        );
    }
    check!(
        expired(&c.keep_alive(s).await),
        KEEP_ALIVE_EXPIRED,
        "a closed session was revived"
    );
    let changed = rx.has_changed().unwrap_or(false);
    check!(
        *rx.borrow_and_update() == SessionState::Expired,
        WATCH_SESSION_FINAL,
        "the state changed after Expired (changed: {changed})"
    );
    ctx.finish().await;
}

/// A session without keep-alives expires by itself, seen through `watch_session` alone, not before its TTL
/// and not later than TTL + slack; afterwards it is gone for good.
pub async fn session_expires_without_keep_alive<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "session_expires_without_keep_alive",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let observer = ctx.open(1, "observer").await;
    let (session, sent) = ctx.open_short(0, "mortal").await;
    let mut rx = ok(
        ctx.c(0).watch_session(session.id).await,
        WATCH_SESSION_EXPIRY,
        "watch_session",
    );
    check!(
        *rx.borrow() != SessionState::Expired,
        WATCH_SESSION_EXPIRY,
        "a session just opened is already reported Expired"
    );
    // No call at all until the expiry is reported: a backend that expires lazily, on access, fails here.
    let deadline = ctx.expiry_deadline(Instant::now(), session.ttl);
    let expired_at = ctx
        .await_expired(&mut rx, deadline, WATCH_SESSION_EXPIRY)
        .await;
    check!(
        expired_at >= sent + session.ttl,
        OPEN_TTL,
        "the session expired {:?} after open_session was sent, before its granted TTL {:?}",
        expired_at - sent,
        session.ttl
    );

    let c = ctx.c(1);
    let members = ok(c.members().await, MEMBERS_EXACT, "members");
    check_members(
        &members,
        &[("observer", observer.id)],
        MEMBERS_EXACT,
        "after the expiry was reported",
    );
    match c.keep_alive(session.id).await {
        Err(CoordError::SessionExpired { .. }) => {}
        other => fail!(
            KEEP_ALIVE_EXPIRED,
            "keep_alive of an expired session returned {other:?}"
        ),
    }
    check!(
        c.close_session(session.id).await.is_ok(),
        CLOSE_IDEMPOTENT,
        "close_session of an expired session failed"
    );
    let fresh = ok(
        c.watch_session(session.id).await,
        WATCH_SESSION_UNKNOWN,
        "watch_session of an expired session",
    );
    check!(
        *fresh.borrow() == SessionState::Expired,
        WATCH_SESSION_UNKNOWN,
        "watch_session of an expired session holds {:?}",
        *fresh.borrow()
    );
    // The same node joins again; the old session stays expired.
    let again = ctx.open(0, "mortal").await;
    check!(
        again.id != session.id,
        OPEN_FRESH_ID,
        "the node's new session reuses the expired id {:?}",
        session.id
    );
    match c.keep_alive(session.id).await {
        Err(CoordError::SessionExpired { .. }) => {}
        other => fail!(
            KEEP_ALIVE_EXPIRED,
            "keep_alive of the expired session, after its node joined again, returned {other:?}"
        ),
    }
    let changed = rx.has_changed().unwrap_or(false);
    check!(
        *rx.borrow_and_update() == SessionState::Expired,
        WATCH_SESSION_FINAL,
        "the state changed after Expired (changed: {changed}) when the node joined again"
    );
    ctx.finish().await;
}

/// `watch_session` of an id that was never issued holds `Expired` at once.
pub async fn unknown_session_watch_holds_expired<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "unknown_session_watch_holds_expired",
        NamespaceOptions::clients(1),
    )
    .await
    else {
        return;
    };
    let live = ctx.open(0, "live").await;
    for unknown in [u64::MAX, u64::MAX / 3, live.id.0.wrapping_add(1_000_003)] {
        let rx = ok(
            ctx.c(0).watch_session(SessionId(unknown)).await,
            WATCH_SESSION_UNKNOWN,
            "watch_session of an unknown id",
        );
        check!(
            *rx.borrow() == SessionState::Expired,
            WATCH_SESSION_UNKNOWN,
            "watch_session({unknown:x}) holds {:?}",
            *rx.borrow()
        );
    }
    let rx = ok(
        ctx.c(0).watch_session(live.id).await,
        WATCH_SESSION_UNKNOWN,
        "watch_session of a live session",
    );
    check!(
        *rx.borrow() == SessionState::Alive,
        WATCH_SESSION_UNKNOWN,
        "watch_session of a live session holds {:?}, expected Alive",
        *rx.borrow()
    );
    ctx.finish().await;
}

/// On paused tokio time, a session with an hour-long TTL expires as soon as tokio time has advanced by an
/// hour, while almost no real time passes. A real-time factory prints that it cannot check this.
pub async fn session_expiry_follows_tokio_time<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "session_expiry_follows_tokio_time",
        NamespaceOptions::clients(1),
    )
    .await
    else {
        return;
    };
    if !ctx.profile.paused_time {
        super::support::not_run(
            "session_expiry_follows_tokio_time",
            format_args!("the factory runs on real time ({COORD_TOKIO_TIME})"),
        );
        ctx.finish().await;
        return;
    }
    // The one reading of the real clock in the suite: it proves that the expiry did not wait for it.
    #[allow(clippy::disallowed_methods)]
    let real_start = std::time::Instant::now();
    let hour = Duration::from_secs(3600);
    let sent = Instant::now();
    let session = ok(
        ctx.c(0).open_session(node_info("sleeper"), hour).await,
        OPEN_TTL,
        "open_session",
    );
    let mut rx = ok(
        ctx.c(0).watch_session(session.id).await,
        WATCH_SESSION_EXPIRY,
        "watch_session",
    );
    let deadline = ctx.expiry_deadline(Instant::now(), session.ttl);
    let expired_at = ctx.await_expired(&mut rx, deadline, COORD_TOKIO_TIME).await;
    check!(
        expired_at >= sent + session.ttl,
        OPEN_TTL,
        "expired after {:?} of tokio time, before its TTL {:?}",
        expired_at - sent,
        session.ttl
    );
    let real = real_start.elapsed();
    check!(
        real < Duration::from_secs(60),
        COORD_TOKIO_TIME,
        "an hour of paused tokio time took {real:?} of real time: the expiry waits for another clock"
    );
    ctx.finish().await;
}

/// Across a restart of the backend over the same namespace (when the factory declares one): session ids are
/// not reused, epochs and store revisions keep growing, and a closed session stays closed.
pub async fn restart_keeps_ids_epochs_and_revisions_growing<F: CoordinatorFactory + ?Sized>(
    factory: &F,
) {
    let Some(mut ctx) = Ctx::new(
        factory,
        "restart_keeps_ids_epochs_and_revisions_growing",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    if !ctx.namespace_mut().can_restart() {
        super::support::not_run(
            "restart_keeps_ids_epochs_and_revisions_growing",
            format_args!("the factory declares no restart ({CAMPAIGN_EPOCH_RESTART})"),
        );
        ctx.finish().await;
        return;
    }
    let mut ids = BTreeSet::new();
    let mut epoch = 0;
    let mut revision = 0;
    for round in 0..3 {
        let a = ctx.open(0, &format!("before-{round}")).await;
        let b = ctx.open(1, &format!("other-{round}")).await;
        for id in [a.id, b.id] {
            check!(
                ids.insert(id),
                OPEN_FRESH_ID,
                "round {round}: session id {id:?} was issued before a restart and again after it"
            );
        }
        let leader = ctx.lead(0, a.id, CAMPAIGN_EPOCH_RESTART).await;
        check!(
            leader.epoch > epoch,
            CAMPAIGN_EPOCH_RESTART,
            "round {round}: epoch {} after a restart is not greater than {epoch} before it",
            leader.epoch
        );
        epoch = leader.epoch;
        let rev = ok(
            ctx.c(1)
                .put_job(simple_job(&format!("job-{round}")), Precondition::Any)
                .await,
            PUT_REVISION,
            "put_job",
        );
        check!(
            rev > revision,
            PUT_REVISION,
            "round {round}: revision {rev} after a restart is not greater than {revision} before it"
        );
        revision = rev;
        let del = ok(
            ctx.c(1)
                .delete_job(&job_id(&format!("job-{round}")), Precondition::Any)
                .await,
            PUT_REVISION,
            "delete_job",
        );
        check!(
            del > revision,
            PUT_REVISION,
            "round {round}: delete revision {del} is not greater than {revision}"
        );
        revision = del;
        ok(ctx.c(0).resign(a.id).await, RESIGN_HANDS_OVER, "resign");
        ok(
            ctx.c(0).close_session(a.id).await,
            CLOSE_EXPIRES,
            "close_session",
        );
        ok(
            ctx.c(1).close_session(b.id).await,
            CLOSE_EXPIRES,
            "close_session",
        );
        match ctx.namespace_mut().restart().await {
            Ok(true) => {}
            Ok(false) => unreachable!("can_restart was checked"),
            Err(error) => panic!("restart_keeps_ids_epochs_and_revisions_growing: {error}"),
        }
        match ctx.c(0).keep_alive(a.id).await {
            Err(CoordError::SessionExpired { .. }) => {}
            other => fail!(
                KEEP_ALIVE_EXPIRED,
                "round {round}: keep_alive of a session closed before the restart returned {other:?}"
            ),
        }
    }
    ctx.finish().await;
}
