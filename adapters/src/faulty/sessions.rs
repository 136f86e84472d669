//! The session calls of [`FaultyCoordinator`] (open, keep alive, drain, close, watch) with their faults and
//! contract breaks; the trait impl in `faulty.rs` forwards to them.

use campanile::coordinator::{CoordError, CoordResult, NodeInfo, Session, SessionId, SessionState};
use tokio::sync::watch;

use super::{ContractBreak, FaultyCoordinator, Method, frozen, is_expired, shown_members};

impl FaultyCoordinator {
    pub(super) async fn wrapped_open_session(
        &self,
        node: NodeInfo,
        ttl: std::time::Duration,
    ) -> CoordResult<Session> {
        use ContractBreak as B;
        let asked = if self.broken(B::HalfTtl) {
            ttl / 2
        } else {
            ttl
        };
        let again = node.clone();
        let mut result = self
            .call(Method::OpenSession, None, || {
                self.inner.open_session(node, asked)
            })
            .await;
        if matches!(result, Err(CoordError::Conflict { .. })) {
            if self.broken(B::ConflictAfterWriting)
                && let Ok(members) = self.inner.members().await
            {
                for member in members.members.iter().filter(|m| m.node.id == again.id) {
                    let _ = self.inner.close_session(member.session).await;
                }
                let _ = self.inner.open_session(again, asked).await;
            }
            if self.broken(B::DuplicateNodeJoins) {
                let id = self.control.with_memory(|m| {
                    m.made_up += 1;
                    SessionId(u64::MAX - m.made_up)
                });
                result = Ok(Session { id, ttl });
            }
        }
        let mut session = result?;
        if self.broken(B::OneSessionPerInstance) {
            let previous = self
                .last_session
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .replace(session.id);
            if let Some(previous) = previous {
                let _ = self.inner.close_session(previous).await;
            }
        }
        let (real_clock, reuse) = (
            self.broken(B::ExpiryOnRealClock),
            self.broken(B::ReusedSessionId),
        );
        let track_newest = self.broken(B::NewestMemberHidden);
        if self.broken(B::ExpiredMemberStays)
            && let Ok(mut members) = self.inner.members().await
        {
            // Seen once, kept by `members` after the session expires.
            shown_members(&self.control, &mut members);
        }
        // This break is about a backend that times expiry by the real clock, so it reads that clock.
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        self.control.with_memory(|m| {
            if real_clock {
                m.opened.insert(session.id, (now, session.ttl));
            }
            if track_newest {
                m.last_opened = Some(session.id);
            }
            if reuse {
                m.opens += 1;
                let first = *m.first_session.get_or_insert(session.id);
                if m.opens % 2 == 0 {
                    session.id = first;
                }
            }
        });
        Ok(session)
    }

    pub(super) async fn wrapped_keep_alive(&self, session: SessionId) -> CoordResult<()> {
        if self.broken(ContractBreak::KeepAliveIgnored) {
            return self
                .call(Method::KeepAlive, Some(session), || async { Ok(()) })
                .await;
        }
        let result = self
            .call(Method::KeepAlive, Some(session), || {
                self.inner.keep_alive(session)
            })
            .await;
        if is_expired(&result) {
            if self.broken(ContractBreak::ExpiredFlipsBack) {
                self.control.with_memory(|m| {
                    for tx in m.session_watchers.get(&session).into_iter().flatten() {
                        tx.send_replace(SessionState::Alive);
                    }
                });
            }
            if self.broken(ContractBreak::KeepAliveOfExpiredSucceeds) {
                return Ok(());
            }
        }
        result
    }

    pub(super) async fn wrapped_drain(&self, session: SessionId) -> CoordResult<()> {
        if self.broken(ContractBreak::DrainIgnored) {
            return self
                .call(Method::Drain, Some(session), || async { Ok(()) })
                .await;
        }
        let result = self
            .call(Method::Drain, Some(session), || self.inner.drain(session))
            .await;
        if is_expired(&result) && self.broken(ContractBreak::DrainOfClosedSucceeds) {
            return Ok(());
        }
        result
    }

    pub(super) async fn wrapped_close_session(&self, session: SessionId) -> CoordResult<()> {
        use ContractBreak as B;
        if self.broken(B::SecondCloseFails) {
            let state = self
                .inner
                .watch_session(session)
                .await
                .map(|rx| *rx.borrow());
            if state == Ok(SessionState::Expired) {
                return self
                    .call(Method::CloseSession, Some(session), || async {
                        Err(CoordError::SessionExpired { session: session.0 })
                    })
                    .await;
            }
        }
        if self.broken(B::CloseReleasesClaims) {
            let jobs = self
                .control
                .with_memory(|m| m.held.get(&session).cloned().unwrap_or_default());
            let mut releases = Vec::new();
            for job in jobs {
                if let Ok(Some(claim)) = self.inner.claim_of(&job).await
                    && claim.session == session
                {
                    releases.push((job, claim.settled_ms));
                }
            }
            let _ = self.inner.release_claims(session, &releases).await;
        }
        if self.broken(B::ClosedMemberStays)
            && let Ok(members) = self.inner.members().await
        {
            self.control.with_memory(|m| {
                m.closed_members.extend(
                    members
                        .members
                        .into_iter()
                        .filter(|member| member.session == session),
                );
            });
        }
        let result = self
            .call(Method::CloseSession, Some(session), || {
                self.inner.close_session(session)
            })
            .await;
        if result.is_ok()
            && (self.broken(B::ExpiredMemberStays) || self.broken(B::MembersWatchMissesExpiry))
        {
            self.control.with_memory(|m| m.closed.insert(session));
        }
        result
    }

    pub(super) async fn wrapped_watch_session(
        &self,
        session: SessionId,
    ) -> CoordResult<watch::Receiver<SessionState>> {
        use ContractBreak as B;
        let mut inner = self
            .call(Method::WatchSession, Some(session), || {
                self.inner.watch_session(session)
            })
            .await?;
        let mut partitions = self.control.partitions();
        let initial = seen_through_partition(
            *inner.borrow_and_update(),
            partitions.borrow_and_update().contains(&session),
        );
        if initial == SessionState::Expired && self.broken(B::UnknownSessionAlive) {
            return Ok(frozen(SessionState::Alive));
        }
        if initial == SessionState::Alive && self.broken(B::ExpiryNeedsACall) {
            return Ok(frozen(SessionState::Alive));
        }
        let (tx, rx) = watch::channel(initial);
        if self.broken(B::ExpiredFlipsBack) {
            let kept = tx.clone();
            self.control
                .with_memory(|m| m.session_watchers.entry(session).or_default().push(kept));
        }
        if initial == SessionState::Expired {
            return Ok(rx);
        }
        let control = self.control.clone();
        let real_clock = self.broken(B::ExpiryOnRealClock);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    () = tx.closed() => return,
                    changed = inner.changed() => if changed.is_err() { return },
                    changed = partitions.changed() => if changed.is_err() { return },
                }
                let state = seen_through_partition(
                    *inner.borrow_and_update(),
                    partitions.borrow_and_update().contains(&session),
                );
                if state == SessionState::Expired && real_clock {
                    let opened = control.with_memory(|m| m.opened.get(&session).copied());
                    if opened.is_some_and(|(at, ttl)| at.elapsed() < ttl) {
                        // Not yet expired on the real clock: the receiver waits for a change that never
                        // comes, as a backend timing expiry by `std::time` would.
                        tx.closed().await;
                        return;
                    }
                }
                tx.send_if_modified(|held| {
                    let changed = *held != state;
                    *held = state;
                    changed
                });
                if state == SessionState::Expired {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// What a client cut off from its server reports: it cannot confirm the session, unless it knows it ended.
fn seen_through_partition(state: SessionState, partitioned: bool) -> SessionState {
    match state {
        SessionState::Alive if partitioned => SessionState::Suspended,
        other => other,
    }
}
