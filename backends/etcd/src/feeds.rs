//! Background feeds of one client: the members watch (which also tells the sessions watched through
//! `watch_session` when they expire) and the assignment watch.
//!
//! Each feed lists, then watches from the listed revision; when the stream dies (connection lost, etcd
//! restarted, watch compacted) it lists again after a capped backoff and watches anew, for as long as the
//! client lives. Receivers never see a version go back: a value is offered only if its version (an etcd
//! revision) is greater than the one held.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campanile::coordinator::{Assignment, Member, Members, SessionId, SessionState};
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use tokio::sync::watch;
use tracing::debug;

use crate::error::{Kind, map, timed_out};
use crate::keys::Keys;
use crate::stored;

/// The values the feeds publish, shared by the client and its feed tasks.
#[derive(Debug)]
pub(crate) struct Feeds {
    pub(crate) members: watch::Sender<Members>,
    pub(crate) assignment: watch::Sender<Option<Arc<Assignment>>>,
    sessions: Mutex<HashMap<SessionId, watch::Sender<SessionState>>>,
    started: Mutex<Started>,
}

#[derive(Debug, Default)]
struct Started {
    members: bool,
    assignment: bool,
}

/// What a feed task needs: its own handle on the connection, the keys, and the client's lifetime.
#[derive(Clone)]
pub(crate) struct FeedCtx {
    pub(crate) client: Client,
    pub(crate) keys: Keys,
    pub(crate) timeout: Duration,
    pub(crate) feeds: Arc<Feeds>,
    /// Changes (errors) when the coordinator is dropped: the tasks end.
    pub(crate) closed: watch::Receiver<()>,
}

impl Feeds {
    pub(crate) fn new() -> Self {
        Self {
            members: watch::Sender::new(Members::default()),
            assignment: watch::Sender::new(None),
            sessions: Mutex::new(HashMap::new()),
            started: Mutex::new(Started::default()),
        }
    }

    /// Publishes `members` if it is newer than what receivers hold.
    pub(crate) fn offer_members(&self, members: Members) {
        self.members.send_if_modified(|held| {
            if members.version > held.version {
                *held = members;
                true
            } else {
                false
            }
        });
    }

    /// Publishes `assignment` if it is newer than what receivers hold.
    pub(crate) fn offer_assignment(&self, assignment: Arc<Assignment>) {
        self.assignment.send_if_modified(|held| {
            if held.as_ref().is_none_or(|h| assignment.version > h.version) {
                *held = Some(assignment);
                true
            } else {
                false
            }
        });
    }

    /// The state sender of a session, created `Alive` on first use.
    pub(crate) fn session(&self, id: SessionId) -> watch::Receiver<SessionState> {
        let mut sessions = lock(&self.sessions);
        sessions
            .entry(id)
            .or_insert_with(|| watch::Sender::new(SessionState::Alive))
            .subscribe()
    }

    /// Marks a session expired, for good.
    pub(crate) fn expire(&self, id: SessionId) {
        let mut sessions = lock(&self.sessions);
        let sender = sessions
            .entry(id)
            .or_insert_with(|| watch::Sender::new(SessionState::Expired));
        sender.send_if_modified(|s| {
            std::mem::replace(s, SessionState::Expired) != SessionState::Expired
        });
    }

    /// Whether this client knows the session expired.
    pub(crate) fn is_expired(&self, id: SessionId) -> bool {
        lock(&self.sessions)
            .get(&id)
            .is_some_and(|s| *s.borrow() == SessionState::Expired)
    }

    /// Sets every watched, unexpired session to `state` if present in `live` (or to `Suspended` when
    /// `live` is `None`: the feed lost etcd); returns the watched sessions missing from `live`.
    fn observe(&self, live: Option<&[SessionId]>) -> Vec<SessionId> {
        let sessions = lock(&self.sessions);
        let mut missing = Vec::new();
        for (id, sender) in sessions.iter() {
            if *sender.borrow() == SessionState::Expired {
                continue;
            }
            let state = match live {
                None => SessionState::Suspended,
                Some(live) if live.contains(id) => SessionState::Alive,
                Some(_) => {
                    missing.push(*id);
                    continue;
                }
            };
            sender.send_if_modified(|s| std::mem::replace(s, state) != state);
        }
        missing
    }

    /// Whether the feed of `which` must be started now (true once).
    fn start(&self, which: fn(&mut Started) -> &mut bool) -> bool {
        let mut started = lock(&self.started);
        !std::mem::replace(which(&mut started), true)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps are always consistent (no code panics while holding them): a poison is harmless.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the members feed of this client, once.
pub(crate) fn ensure_members(ctx: &FeedCtx) {
    if ctx.feeds.start(|s| &mut s.members) {
        tokio::spawn(members_feed(ctx.clone()));
    }
}

/// Starts the assignment feed of this client, once.
pub(crate) fn ensure_assignment(ctx: &FeedCtx) {
    if ctx.feeds.start(|s| &mut s.assignment) {
        tokio::spawn(assignment_feed(ctx.clone()));
    }
}

/// Capped exponential backoff of the feeds' reconnects: 100 ms doubling to 2 s.
struct Backoff(u32);

impl Backoff {
    async fn wait(&mut self, closed: &mut watch::Receiver<()>) -> bool {
        self.0 = self.0.saturating_add(1);
        tokio::select! {
            biased;
            _ = closed.changed() => false,
            () = tokio::time::sleep(crate::backoff::RECONNECT.delay(self.0)) => true,
        }
    }
}

/// Lists the members at one revision.
pub(crate) async fn list_members(
    client: &Client,
    keys: &Keys,
    timeout: Duration,
) -> campanile::coordinator::CoordResult<(i64, BTreeMap<Vec<u8>, Member>)> {
    let mut kv = client.kv_client();
    let response = tokio::time::timeout(
        timeout,
        kv.get(keys.members(), Some(GetOptions::new().with_prefix())),
    )
    .await
    .map_err(|_| timed_out("list members", Kind::Read))?
    .map_err(|e| map("list members", Kind::Read, e))?;
    let revision = response.header().map_or(0, |h| h.revision());
    let mut members = BTreeMap::new();
    for kv in response.kvs() {
        let member: Member = stored::decode(kv.key(), kv.value())?;
        members.insert(kv.key().to_vec(), member);
    }
    Ok((revision, members))
}

/// The membership of a member map at `revision`, sorted by node id (the keys sort the same way).
pub(crate) fn membership(revision: i64, members: &BTreeMap<Vec<u8>, Member>) -> Members {
    let mut members: Vec<Member> = members.values().cloned().collect();
    members.sort_by(|a, b| a.node.id.cmp(&b.node.id));
    Members {
        version: revision.max(0) as u64,
        members,
    }
}

async fn members_feed(mut ctx: FeedCtx) {
    let mut backoff = Backoff(0);
    loop {
        if let Some(revision) = members_round(&mut ctx, &mut backoff).await {
            debug!(revision, "members watch ended, listing again");
        }
        ctx.feeds.observe(None);
        if !backoff.wait(&mut ctx.closed).await {
            return;
        }
    }
}

/// One list-then-watch round of the members feed; returns when the watch ends (with the last revision).
async fn members_round(ctx: &mut FeedCtx, backoff: &mut Backoff) -> Option<i64> {
    let (mut revision, mut members) = list_members(&ctx.client, &ctx.keys, ctx.timeout)
        .await
        .ok()?;
    publish_members(ctx, revision, &members).await;
    let mut watcher = ctx.client.watch_client();
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let stream = tokio::time::timeout(
        ctx.timeout,
        watcher.watch(ctx.keys.members(), Some(options)),
    );
    let mut stream = stream.await.ok()?.ok()?;
    backoff.0 = 0;
    loop {
        let message = tokio::select! {
            biased;
            _ = ctx.closed.changed() => return None,
            message = stream.message() => message,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) | Err(_) => return Some(revision),
        };
        if response.canceled() {
            return Some(revision);
        }
        if response.events().is_empty() {
            continue;
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => match stored::decode::<Member>(kv.key(), kv.value()) {
                    Ok(member) => {
                        members.insert(kv.key().to_vec(), member);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "ignoring a corrupt member");
                    }
                },
                EventType::Delete => {
                    members.remove(kv.key());
                }
            }
            revision = revision.max(kv.mod_revision());
        }
        publish_members(ctx, revision, &members).await;
    }
}

/// Publishes the members and settles the watched sessions against them.
async fn publish_members(ctx: &FeedCtx, revision: i64, members: &BTreeMap<Vec<u8>, Member>) {
    ctx.feeds.offer_members(membership(revision, members));
    let live: Vec<SessionId> = members.values().map(|m| m.session).collect();
    for id in ctx.feeds.observe(Some(&live)) {
        // A watched session without a member key has expired or closed, unless this feed is behind the
        // session's opening: the lease tells.
        let mut lease = ctx.client.lease_client();
        let ttl = tokio::time::timeout(ctx.timeout, lease.time_to_live(id.0 as i64, None)).await;
        if let Ok(Ok(answer)) = ttl
            && answer.ttl() < 0
        {
            debug!(session = %id, "session expired");
            ctx.feeds.expire(id);
        }
    }
}

async fn assignment_feed(mut ctx: FeedCtx) {
    let mut backoff = Backoff(0);
    loop {
        assignment_round(&mut ctx, &mut backoff).await;
        if !backoff.wait(&mut ctx.closed).await {
            return;
        }
    }
}

async fn assignment_round(ctx: &mut FeedCtx, backoff: &mut Backoff) -> Option<()> {
    let mut kv = ctx.client.kv_client();
    let key = ctx.keys.assignment();
    let response = tokio::time::timeout(ctx.timeout, kv.get(key.clone(), None))
        .await
        .ok()?
        .ok()?;
    let revision = response.header().map_or(0, |h| h.revision());
    if let Some(kv) = response.kvs().first() {
        match stored::assignment(kv) {
            Ok(assignment) => ctx.feeds.offer_assignment(Arc::new(assignment)),
            Err(error) => tracing::warn!(%error, "ignoring a corrupt assignment"),
        }
    }
    let mut watcher = ctx.client.watch_client();
    let options = WatchOptions::new().with_start_revision(revision + 1);
    let stream = tokio::time::timeout(ctx.timeout, watcher.watch(key, Some(options)));
    let mut stream = stream.await.ok()?.ok()?;
    backoff.0 = 0;
    loop {
        let message = tokio::select! {
            biased;
            _ = ctx.closed.changed() => return None,
            message = stream.message() => message,
        };
        let response = message.ok()??;
        if response.canceled() {
            return Some(());
        }
        for event in response.events() {
            if event.event_type() != EventType::Put {
                continue;
            }
            let Some(kv) = event.kv() else { continue };
            match stored::assignment(kv) {
                Ok(assignment) => ctx.feeds.offer_assignment(Arc::new(assignment)),
                Err(error) => tracing::warn!(%error, "ignoring a corrupt assignment"),
            }
        }
    }
}
