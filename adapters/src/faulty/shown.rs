//! What the wrapper shows in place of the backend's answer while a contract break is on: a membership with
//! members hidden or kept, a job watch with events left out, a claim granted that the backend refused.

use campanile::CoordError;
use campanile::coordinator::{
    ClaimResult, FireClaim, JobClaim, JobWatch, Members, NodeId, SessionId,
};

use super::{ContractBreak, FaultControl};

/// The membership as the member breaks show it.
pub(super) fn shown_members(control: &FaultControl, m: &mut Members) {
    let newest_hidden = control.is_broken(ContractBreak::NewestMemberHidden);
    let closed_stay = control.is_broken(ContractBreak::ClosedMemberStays);
    let expired_stay = control.is_broken(ContractBreak::ExpiredMemberStays);
    let version_frozen = control.is_broken(ContractBreak::MembersVersionFrozen);
    if !(newest_hidden || closed_stay || expired_stay || version_frozen) {
        return;
    }
    control.with_memory(|memory| {
        if newest_hidden {
            m.members
                .retain(|member| Some(member.session) != memory.last_opened);
        }
        if closed_stay {
            for member in &memory.closed_members {
                if !m.members.iter().any(|x| x.session == member.session) {
                    m.members.push(member.clone());
                }
            }
        }
        if expired_stay {
            for member in &m.members {
                memory.members_seen.insert(member.session, member.clone());
            }
            for (session, member) in &memory.members_seen {
                if !memory.closed.contains(session)
                    && !m.members.iter().any(|x| x.session == *session)
                {
                    m.members.push(member.clone());
                }
            }
        }
        m.members.sort_by(|a, b| a.node.id.cmp(&b.node.id));
        if version_frozen {
            m.version = *memory.first_members_version.get_or_insert(m.version);
        }
    });
}

/// Forwards a job watch, dropping every third event or the `Compacted` items as the breaks say.
pub(super) fn forward_jobs(
    mut inner: JobWatch,
    skip_every_third: bool,
    hide_compacted: bool,
) -> JobWatch {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        let mut events = 0u64;
        loop {
            let item = tokio::select! {
                biased;
                () = tx.closed() => return,
                item = inner.recv() => item,
            };
            let Some(item) = item else {
                // Keep the watch open: a hidden compaction ends nothing.
                if hide_compacted {
                    tx.closed().await;
                }
                return;
            };
            if hide_compacted && matches!(item, Err(CoordError::Compacted { .. })) {
                continue;
            }
            if skip_every_third && item.is_ok() {
                events += 1;
                if events.is_multiple_of(3) {
                    continue;
                }
            }
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// A claim reported granted to `session` although the backend refused it.
pub(super) fn made_up_grant(session: SessionId, node: NodeId, request: &FireClaim) -> ClaimResult {
    ClaimResult::Granted {
        claim: JobClaim {
            session,
            node,
            from_ms: request.from_ms,
            through_ms: request.through_ms,
            settled_ms: request.settled_ms,
            previous: None,
        },
        previous: None,
    }
}
