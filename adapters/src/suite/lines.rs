//! The lines of the `Coordinator` contract, one constant each: a failed check panics with the text of the
//! line it checks, so a failure reads as "which promise was broken", not "which assert fired".
//!
//! Each constant is `"method: the promise"`, quoting the `### To ensure correctness:` list of
//! `campanile::coordinator::Coordinator` (or, marked "(doc)", a promise made in the method's or a type's
//! summary). [`ALL`] lists them for the coverage table in the crate docs and the README.

/// Trait: linearizability, as far as a black box can see it.
pub const COORD_LINEARIZABLE: &str =
    "Coordinator: a write acknowledged to one caller is seen by every later read of any caller";
/// Trait: failed writes did not happen.
pub const COORD_FAILED_WRITES: &str = "Coordinator: a write that returns an error other than Unavailable { certainly_aborted: false } did not happen";
/// Trait: expiry follows tokio time.
pub const COORD_TOKIO_TIME: &str = "Coordinator: session expiry uses tokio::time (or the server's clock), so paused time drives it";
/// Trait: a shared instance.
pub const COORD_SHARED: &str =
    "Coordinator: many nodes may share one instance, each with its own session";

/// `open_session`: fresh ids.
pub const OPEN_FRESH_ID: &str =
    "open_session: the returned id was never returned before in this namespace";
/// `open_session`: TTL.
pub const OPEN_TTL: &str = "open_session: the granted TTL is at least the requested one";
/// `open_session`: membership.
pub const OPEN_MEMBER: &str =
    "open_session: the node appears in members from the moment this returns until the session ends";
/// `open_session`: duplicate node id.
pub const OPEN_DUPLICATE: &str =
    "open_session: a node id that already has a live session fails with Conflict";

/// `keep_alive`: extension.
pub const KEEP_ALIVE_EXTENDS: &str = "keep_alive: on success the session stays alive for at least its TTL counted from when the call was sent";
/// `keep_alive`: no revival.
pub const KEEP_ALIVE_EXPIRED: &str =
    "keep_alive: an expired or closed session fails with SessionExpired and is never revived";

/// `close_session`: every later call fails.
pub const CLOSE_EXPIRES: &str = "close_session: after it returns, the session is expired: every later call with it fails with SessionExpired";
/// `close_session`: idempotent.
pub const CLOSE_IDEMPOTENT: &str = "close_session: closing an already expired session succeeds";
/// `close_session` (doc): what a graceful leave ends.
pub const CLOSE_LEAVES: &str =
    "close_session (doc): the node leaves the members and drops leadership";
/// `close_session`: claims untouched.
pub const CLOSE_KEEPS_CLAIMS: &str =
    "close_session: claims are not changed by the close: not truncated to settled_ms, not released";

/// `watch_session`: expiry without calls.
pub const WATCH_SESSION_EXPIRY: &str = "watch_session: a session that expires (TTL elapsed without keep-alive) is reported Expired without any further call";
/// `watch_session`: final.
pub const WATCH_SESSION_FINAL: &str =
    "watch_session: Expired is final: the state never changes afterwards";
/// `watch_session`: unknown sessions.
pub const WATCH_SESSION_UNKNOWN: &str =
    "watch_session: an unknown or already expired session yields a receiver that holds Expired";

/// `members`: exactness.
pub const MEMBERS_EXACT: &str =
    "members: exactly the nodes whose session is open and not expired, sorted by node id";

/// `watch_members`: current and latest.
pub const WATCH_MEMBERS_LATEST: &str = "watch_members (doc): the receiver holds the current set and sees every later change (never skips the latest)";
/// `watch_members`: expiry without calls.
pub const WATCH_MEMBERS_EXPIRY: &str = "watch_members: a member whose session expires disappears from the set without any further call";
/// `watch_members`: versions.
pub const WATCH_MEMBERS_VERSION: &str = "watch_members: version grows with every change";

/// `drain`: the member is shown leaving.
pub const DRAIN_SHOWN: &str = "drain: after it returns, members and the members watch show the member with draining, and the members' version has grown";
/// `drain`: idempotent, fenced.
pub const DRAIN_IDEMPOTENT: &str =
    "drain: idempotent; an expired or closed session fails with SessionExpired";

/// `campaign`: one leader.
pub const CAMPAIGN_ONE: &str = "campaign: at most one live session is leader at any time";
/// `campaign`: growing epochs.
pub const CAMPAIGN_EPOCH: &str =
    "campaign: a new term's epoch is strictly greater than every earlier term's";
/// `campaign`: growing epochs across restarts.
pub const CAMPAIGN_EPOCH_RESTART: &str = "campaign: a new term's epoch is strictly greater than every earlier term's, also across backend restarts";
/// `campaign`: same epoch while leader.
pub const CAMPAIGN_SAME_EPOCH: &str = "campaign: calling again while leader returns the same epoch";
/// `campaign`: leadership ends with the session.
pub const CAMPAIGN_ENDS: &str =
    "campaign: leadership ends with the session (expiry or close); another session can then win";
/// `campaign`: expired session.
pub const CAMPAIGN_EXPIRED: &str = "campaign: an expired session fails with SessionExpired";

/// `leader`: live leaders only.
pub const LEADER_LIVE: &str = "leader: never a leader whose session has expired";

/// `resign`: another can win.
pub const RESIGN_HANDS_OVER: &str =
    "resign: after it returns, another session's campaign can win, with a greater epoch";
/// `resign` (doc): no-op for a non-leader.
pub const RESIGN_NOOP: &str = "resign (doc): no-op if not leader";

/// `put_job`: revisions.
pub const PUT_REVISION: &str =
    "put_job: the store revision grows with every write (put or delete) and is never reused";
/// `put_job`: preconditions.
pub const PUT_PRECONDITION: &str = "put_job: a failed precondition returns Conflict and writes nothing (Revision(r) compares the job's revision, Absent fails if it exists, Exists fails with NotFound if it does not)";
/// `put_job`: concurrent writers.
pub const PUT_CONCURRENT: &str =
    "put_job: of concurrent writers with the same Revision(r) precondition, exactly one succeeds";
/// `put_job`: round trip.
pub const PUT_ROUND_TRIP: &str = "put_job: the job is stored as given (every field round-trips), except revision, set to the returned one";

/// `put_jobs`: checks first.
pub const PUT_JOBS_CHECKED: &str = "put_jobs: every job is checked before anything is written (sizes, no id twice): a rejected call returns Invalid naming the index and writes nothing";
/// `put_jobs`: all or none.
pub const PUT_JOBS_CONFLICT: &str = "put_jobs: if any of the jobs exists, the call returns Conflict naming it, and none of the call's jobs is in the store when it returns";
/// `put_jobs`: stored as given.
pub const PUT_JOBS_STORED: &str = "put_jobs: on success every job is stored as given with its returned revision; revisions are non-decreasing and greater than every earlier write's";
/// `put_jobs`: watched.
pub const PUT_JOBS_WATCHED: &str = "put_jobs: a job watch delivers one Put per created job; events that share a revision are delivered together";

/// `delete_job`: missing job.
pub const DELETE_MISSING: &str = "delete_job: a missing job returns NotFound";
/// `delete_job`: precondition.
pub const DELETE_CONFLICT: &str =
    "delete_job: Revision(r) not matching returns Conflict and deletes nothing";
/// `delete_job` (doc): cascade.
pub const DELETE_CASCADE: &str =
    "delete_job (doc): deletes a job, its claims and its run history; returns the store revision";

/// `get_job`: freshness.
pub const GET_FRESH: &str = "get_job: reflects every write acknowledged before the call";
/// `list_jobs`: snapshot.
pub const LIST_SNAPSHOT: &str =
    "list_jobs: a consistent snapshot: exactly the writes up to revision, sorted by id";

/// `watch_jobs`: no gaps.
pub const WATCH_JOBS_NO_GAPS: &str = "watch_jobs: every change after after_revision is delivered, once, in revision order, with no gaps";
/// `watch_jobs`: compaction.
pub const WATCH_JOBS_COMPACTED: &str = "watch_jobs: if after_revision is older than what the backend retains, the call (or the first item) is Compacted";

/// `publish_assignment`: fencing.
pub const PUBLISH_FENCED: &str = "publish_assignment: accepted only while session is alive and is the leader of exactly term epoch; otherwise Fenced (or SessionExpired) and nothing is written";
/// `publish_assignment`: versions.
pub const PUBLISH_VERSION: &str = "publish_assignment: version grows with every publication";
/// `assignment` (doc): the last one.
pub const ASSIGNMENT_LATEST: &str = "assignment (doc): the last published assignment, if any";
/// `watch_assignment`: versions.
pub const WATCH_ASSIGNMENT_VERSIONS: &str = "watch_assignment: versions seen are increasing; the receiver holds the current one and never skips the latest";

/// `claim_fires`: live session.
pub const CLAIM_EXPIRED: &str =
    "claim_fires: the whole call fails with SessionExpired if the session is not alive";
/// `claim_fires`: owner only.
pub const CLAIM_NOT_OWNER: &str = "claim_fires: a job is granted only if the current assignment gives it to this session's node; otherwise NotOwner";
/// `claim_fires` (doc): missing job.
pub const CLAIM_NO_SUCH_JOB: &str = "claim_fires (doc): a job that does not exist is NoSuchJob";
/// `claim_fires`: no double grant.
pub const CLAIM_NO_DOUBLE_GRANT: &str = "claim_fires: no instant is ever granted to two sessions: a takeover starts at max(from_ms, previous.through_ms + 1) and returns the previous claim";
/// `claim_fires`: monotonic extension.
pub const CLAIM_MONOTONIC: &str = "claim_fires: a holder extending its own claim keeps its from_ms; through_ms and settled_ms never decrease";
/// `claim_fires`: a takeover keeps the previous holder's unsettled instants visible.
pub const CLAIM_TAKEOVER_SETTLED: &str = "claim_fires: a grant that takes over keeps settled_ms at most the previous holder's, so the instants it left unsettled stay unsettled in the claim";
/// `claim_fires`: the previous claim is kept until settled.
pub const CLAIM_PREVIOUS_KEPT: &str = "claim_fires: the previous holder's claim is kept in the claim and returned with every grant to the holder until settled_ms reaches its through_ms; while it is kept, a request starting before the claim does not raise settled_ms";
/// `claim_fires`: concurrent claimers.
pub const CLAIM_CONCURRENT: &str = "claim_fires: of concurrent claimers of the same job, only the assigned owner's session is granted";

/// `release_claims`: successor.
pub const RELEASE_SUCCESSOR: &str =
    "release_claims: after it returns, the next owner's claim can start at through_ms + 1";
/// `release_claims`: no extension.
pub const RELEASE_NO_EXTEND: &str = "release_claims: a claim is never extended by a release";
/// `release_claims` (doc): foreign jobs ignored.
pub const RELEASE_IGNORES: &str = "release_claims (doc): jobs it does not hold are ignored";

/// `claim_of`: freshness.
pub const CLAIM_OF_FRESH: &str =
    "claim_of: reflects every grant, release and close acknowledged before the call";

/// `record_runs`: live session.
pub const RECORD_EXPIRED: &str =
    "record_runs: the whole call fails with SessionExpired if the session is not alive";
/// `record_runs`: one per fire id.
pub const RECORD_ONCE: &str = "record_runs: a record whose fire id already has one returns Duplicate and changes nothing: exactly one record per fire id, also under concurrent writers";
/// `record_runs`: history bound.
pub const RECORD_HISTORY: &str =
    "record_runs: a job keeps at least its newest history_limit records (at least 100)";
/// `record_runs`: missing job.
pub const RECORD_NO_JOB: &str =
    "record_runs: records of a job that does not exist are dropped silently";

/// `runs`: freshness and query.
pub const RUNS_QUERY: &str = "runs: newest first; reflects every record acknowledged before the call; honours from_ms, before_ms and limit";

/// Every line, for coverage tables.
pub const ALL: &[&str] = &[
    COORD_LINEARIZABLE,
    COORD_FAILED_WRITES,
    COORD_TOKIO_TIME,
    COORD_SHARED,
    OPEN_FRESH_ID,
    OPEN_TTL,
    OPEN_MEMBER,
    OPEN_DUPLICATE,
    KEEP_ALIVE_EXTENDS,
    KEEP_ALIVE_EXPIRED,
    CLOSE_EXPIRES,
    CLOSE_IDEMPOTENT,
    CLOSE_LEAVES,
    CLOSE_KEEPS_CLAIMS,
    WATCH_SESSION_EXPIRY,
    WATCH_SESSION_FINAL,
    WATCH_SESSION_UNKNOWN,
    MEMBERS_EXACT,
    WATCH_MEMBERS_LATEST,
    WATCH_MEMBERS_EXPIRY,
    WATCH_MEMBERS_VERSION,
    DRAIN_SHOWN,
    DRAIN_IDEMPOTENT,
    CAMPAIGN_ONE,
    CAMPAIGN_EPOCH,
    CAMPAIGN_EPOCH_RESTART,
    CAMPAIGN_SAME_EPOCH,
    CAMPAIGN_ENDS,
    CAMPAIGN_EXPIRED,
    LEADER_LIVE,
    RESIGN_HANDS_OVER,
    RESIGN_NOOP,
    PUT_REVISION,
    PUT_PRECONDITION,
    PUT_CONCURRENT,
    PUT_ROUND_TRIP,
    PUT_JOBS_CHECKED,
    PUT_JOBS_CONFLICT,
    PUT_JOBS_STORED,
    PUT_JOBS_WATCHED,
    DELETE_MISSING,
    DELETE_CONFLICT,
    DELETE_CASCADE,
    GET_FRESH,
    LIST_SNAPSHOT,
    WATCH_JOBS_NO_GAPS,
    WATCH_JOBS_COMPACTED,
    PUBLISH_FENCED,
    PUBLISH_VERSION,
    ASSIGNMENT_LATEST,
    WATCH_ASSIGNMENT_VERSIONS,
    CLAIM_EXPIRED,
    CLAIM_NOT_OWNER,
    CLAIM_NO_SUCH_JOB,
    CLAIM_NO_DOUBLE_GRANT,
    CLAIM_MONOTONIC,
    CLAIM_TAKEOVER_SETTLED,
    CLAIM_PREVIOUS_KEPT,
    CLAIM_CONCURRENT,
    RELEASE_SUCCESSOR,
    RELEASE_NO_EXTEND,
    RELEASE_IGNORES,
    CLAIM_OF_FRESH,
    RECORD_EXPIRED,
    RECORD_ONCE,
    RECORD_HISTORY,
    RECORD_NO_JOB,
    RUNS_QUERY,
];
