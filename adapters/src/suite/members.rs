//! Cases of membership: `members` and `watch_members` following joins, leaves and expiries.

use campanile::CoordError;
use campanile::coordinator::{Members, SessionId};

use super::lines::*;
use super::support::{Ctx, check_members, names, ok};
use crate::factory::{CoordinatorFactory, NamespaceOptions};

/// `members` is exactly the live sessions' nodes, sorted, with the `NodeInfo` they joined with, from the
/// moment `open_session` returns (seen by every client) until the session is closed; its version grows with
/// every change; `watch_members` holds the current set and ends on the latest one.
pub async fn members_follow_joins_and_leaves<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "members_follow_joins_and_leaves",
        NamespaceOptions::clients(3),
    )
    .await
    else {
        return;
    };
    let mut rx = ok(
        ctx.c(2).watch_members().await,
        WATCH_MEMBERS_LATEST,
        "watch_members",
    );
    let initial = ok(ctx.c(0).members().await, MEMBERS_EXACT, "members");
    check_members(&initial, &[], MEMBERS_EXACT, "in a fresh namespace");
    let mut version = initial.version;
    let mut seen: Vec<Members> = vec![rx.borrow().clone()];

    let mut live: Vec<(String, SessionId)> = Vec::new();
    // Joins in an order that is not sorted, through different clients; then leaves.
    let steps: [(&str, bool); 7] = [
        ("node-c", true),
        ("node-a", true),
        ("node-b", true),
        ("node-a", false),
        ("node-d", true),
        ("node-c", false),
        ("node-a", true),
    ];
    for (i, (node, join)) in steps.into_iter().enumerate() {
        if join {
            let session = ctx.open(i, node).await;
            live.push((node.to_owned(), session.id));
        } else {
            let at = live
                .iter()
                .position(|(n, _)| n == node)
                .expect("leaves follow joins");
            let (_, session) = live.remove(at);
            ok(
                ctx.c(i).close_session(session).await,
                CLOSE_LEAVES,
                "close_session",
            );
        }
        let expected: Vec<(&str, SessionId)> = live.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let what = format!("step {i} ({} {node})", if join { "join" } else { "leave" });
        // Seen at once by another client (the line depends on the direction of the change).
        let line = if join { OPEN_MEMBER } else { CLOSE_LEAVES };
        let now = ok(ctx.c(i + 1).members().await, MEMBERS_EXACT, "members");
        check_members(&now, &expected, line, &what);
        check!(
            now.version > version,
            WATCH_MEMBERS_VERSION,
            "{what}: members version {} did not grow from {version}",
            now.version
        );
        version = now.version;
        // A new receiver holds the current set at once.
        let fresh = ok(
            ctx.c(i).watch_members().await,
            WATCH_MEMBERS_LATEST,
            "watch_members",
        );
        check_members(
            &fresh.borrow(),
            &expected,
            WATCH_MEMBERS_LATEST,
            &format!("{what}: a new receiver"),
        );
        // The old receiver catches up with the latest set.
        let deadline = ctx.notify_deadline();
        let last = ctx
            .await_members(&mut rx, deadline, WATCH_MEMBERS_LATEST, &what, |m| {
                if seen.last() != Some(m) {
                    seen.push(m.clone());
                }
                m.version >= now.version
            })
            .await;
        check_members(
            &last,
            &expected,
            WATCH_MEMBERS_LATEST,
            &format!("{what}: the first receiver"),
        );
    }
    for pair in seen.windows(2) {
        check!(
            pair[1].version > pair[0].version,
            WATCH_MEMBERS_VERSION,
            "the receiver saw version {} ({:?}) after version {} ({:?})",
            pair[1].version,
            names(&pair[1]),
            pair[0].version,
            names(&pair[0])
        );
    }
    ctx.finish().await;
}

/// A member whose session expires leaves `watch_members` by itself (no call is made while waiting), and the
/// version grows.
pub async fn watch_members_sees_expiry<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "watch_members_sees_expiry",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let stays = ctx.open(1, "stays").await;
    let (goes, sent) = ctx.open_short(0, "goes").await;
    let mut rx = ok(
        ctx.c(1).watch_members().await,
        WATCH_MEMBERS_LATEST,
        "watch_members",
    );
    let with_both = rx.borrow().clone();
    check_members(
        &with_both,
        &[("stays", stays.id), ("goes", goes.id)],
        WATCH_MEMBERS_LATEST,
        "a receiver taken after both joined",
    );
    let deadline = ctx.expiry_deadline(sent, goes.ttl);
    let after = ctx
        .await_members(
            &mut rx,
            deadline,
            WATCH_MEMBERS_EXPIRY,
            "the expired member gone",
            |m| m.members.iter().all(|m| m.session != goes.id),
        )
        .await;
    check_members(
        &after,
        &[("stays", stays.id)],
        WATCH_MEMBERS_EXPIRY,
        "after the expiry",
    );
    check!(
        after.version > with_both.version,
        WATCH_MEMBERS_VERSION,
        "the expiry did not grow the version ({} then {})",
        with_both.version,
        after.version
    );
    let listed = ok(ctx.c(0).members().await, MEMBERS_EXACT, "members");
    check_members(
        &listed,
        &[("stays", stays.id)],
        MEMBERS_EXACT,
        "after the expiry",
    );
    ctx.finish().await;
}

/// `drain` marks the member as leaving: it stays a member with `draining` set (seen by `members` and by the
/// watch, with a new version), twice is fine, and a closed session cannot drain.
pub async fn drain_marks_the_member_leaving<F: CoordinatorFactory + ?Sized>(factory: &F) {
    let Some(ctx) = Ctx::new(
        factory,
        "drain_marks_the_member_leaving",
        NamespaceOptions::clients(2),
    )
    .await
    else {
        return;
    };
    let a = ctx.open(0, "node-a").await;
    let b = ctx.open(0, "node-b").await;
    let mut rx = ok(
        ctx.c(1).watch_members().await,
        WATCH_MEMBERS_LATEST,
        "watch_members",
    );
    let before = ok(ctx.c(1).members().await, MEMBERS_EXACT, "members");
    ok(ctx.c(0).drain(a.id).await, DRAIN_SHOWN, "drain");
    let after = ok(ctx.c(1).members().await, MEMBERS_EXACT, "members");
    check!(
        after.version > before.version,
        DRAIN_SHOWN,
        "version {} did not grow from {}",
        after.version,
        before.version
    );
    let flags: Vec<(String, bool)> = after
        .members
        .iter()
        .map(|m| (m.node.id.to_string(), m.draining))
        .collect();
    check!(
        flags == vec![("node-a".to_owned(), true), ("node-b".to_owned(), false)],
        DRAIN_SHOWN,
        "after draining node-a the members are {flags:?}"
    );
    let deadline = ctx.notify_deadline();
    loop {
        let seen = rx.borrow_and_update().clone();
        if seen.members.iter().any(|m| m.session == a.id && m.draining) {
            break;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => fail!(
                DRAIN_SHOWN,
                "the members watch never showed node-a draining; last seen {:?}",
                seen.members
            ),
        }
    }
    ok(ctx.c(0).drain(a.id).await, DRAIN_IDEMPOTENT, "drain twice");
    ok(
        ctx.c(0).close_session(b.id).await,
        CLOSE_LEAVES,
        "close_session",
    );
    let closed = ctx.c(0).drain(b.id).await;
    check!(
        matches!(closed, Err(CoordError::SessionExpired { .. })),
        DRAIN_IDEMPOTENT,
        "drain of a closed session returned {closed:?}"
    );
    ctx.finish().await;
}
