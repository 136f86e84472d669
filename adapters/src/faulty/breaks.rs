//! Deliberate breaks of the `Coordinator` contract, one per line of the conformance suite: the suite is
//! checked against them as the cluster simulation's invariants are checked against injected faults.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::{Assignment, JobClaim, Leader, Member, SessionId, SessionState};
use campanile::{Job, JobId, RunRecord};
use tokio::sync::watch;

use crate::suite::lines;

macro_rules! contract_breaks {
    ($($(#[doc = $doc:literal])* $name:ident => $line:ident, $case:ident;)*) => {
        /// A deliberate break of one line of the `Coordinator` contract, for checking that the conformance
        /// suite catches it (a backend author's wrapper can do the same to check the suite against a
        /// known-broken backend). Turn one on with [`FaultControl::break_contract`](crate::FaultControl::break_contract).
        ///
        /// Every line of [`suite::lines`](crate::suite::lines) has one; [`ContractBreak::line`] names it and
        /// [`ContractBreak::case`] the case that must fail on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum ContractBreak {
            $($(#[doc = $doc])* $name,)*
        }

        impl ContractBreak {
            /// Every break, in the order of the contract.
            pub const ALL: &[ContractBreak] = &[$(ContractBreak::$name),*];

            /// The contract line it breaks (a constant of [`suite::lines`](crate::suite::lines)).
            pub fn line(self) -> &'static str {
                match self {
                    $(ContractBreak::$name => lines::$line,)*
                }
            }

            /// The case of the suite that must fail, naming [`ContractBreak::line`].
            pub fn case(self) -> &'static str {
                match self {
                    $(ContractBreak::$name => stringify!($case),)*
                }
            }
        }
    };
}

contract_breaks! {
    /// `leader` answers `None` on every client: an election acknowledged to one caller is not seen by others.
    LeaderNeverSeen => COORD_LINEARIZABLE, reads_see_acknowledged_writes;
    /// A duplicate `open_session` answers `Conflict`, but first replaces the live session of that node id
    /// with a new one.
    ConflictAfterWriting => COORD_FAILED_WRITES, duplicate_node_id_conflicts;
    /// `watch_session` reports `Expired` only once the TTL has passed on the real clock (`std::time`).
    ExpiryOnRealClock => COORD_TOKIO_TIME, session_expiry_follows_tokio_time;
    /// Opening a session on a wrapper closes the session opened on it before: one node per instance.
    OneSessionPerInstance => COORD_SHARED, session_ids_are_never_reused;
    /// Every second `open_session` returns the id of the first session again.
    ReusedSessionId => OPEN_FRESH_ID, session_ids_are_never_reused;
    /// `open_session` asks the backend for half the TTL and grants that.
    HalfTtl => OPEN_TTL, session_ttl_is_at_least_requested;
    /// `members` hides the session opened last.
    NewestMemberHidden => OPEN_MEMBER, members_follow_joins_and_leaves;
    /// A duplicate `open_session` answers a made-up session instead of `Conflict`.
    DuplicateNodeJoins => OPEN_DUPLICATE, duplicate_node_id_conflicts;
    /// `keep_alive` answers `Ok` without renewing.
    KeepAliveIgnored => KEEP_ALIVE_EXTENDS, keep_alive_extends_session;
    /// `keep_alive` of an expired session answers `Ok`.
    KeepAliveOfExpiredSucceeds => KEEP_ALIVE_EXPIRED, closed_session_fails_every_call;
    /// After a close, `resign` and `release_claims` with the session still answer `Ok`.
    ClosedSessionStillResigns => CLOSE_EXPIRES, closed_session_fails_every_call;
    /// Closing an already expired session fails with `SessionExpired`.
    SecondCloseFails => CLOSE_IDEMPOTENT, closed_session_fails_every_call;
    /// `members` keeps the members of sessions closed through the wrapper.
    ClosedMemberStays => CLOSE_LEAVES, members_follow_joins_and_leaves;
    /// `close_session` first releases the session's claims back to their `settled_ms`.
    CloseReleasesClaims => CLOSE_KEEPS_CLAIMS, close_keeps_claims;
    /// `watch_session` receivers of a live session never change by themselves.
    ExpiryNeedsACall => WATCH_SESSION_EXPIRY, session_expires_without_keep_alive;
    /// A `keep_alive` of an expired session turns its receivers back to `Alive` (the call still fails).
    ExpiredFlipsBack => WATCH_SESSION_FINAL, closed_session_fails_every_call;
    /// `watch_session` of an unknown or expired session holds `Alive`.
    UnknownSessionAlive => WATCH_SESSION_UNKNOWN, unknown_session_watch_holds_expired;
    /// `members` keeps members whose session expired (not closed).
    ExpiredMemberStays => MEMBERS_EXACT, session_expires_without_keep_alive;
    /// `watch_members` receivers hold the set of when they were made and never change.
    MembersWatchFrozen => WATCH_MEMBERS_LATEST, members_follow_joins_and_leaves;
    /// `watch_members` receivers drop removals of members that were not closed through the wrapper.
    MembersWatchMissesExpiry => WATCH_MEMBERS_EXPIRY, watch_members_sees_expiry;
    /// `members` and `watch_members` report the version of the first set they saw.
    MembersVersionFrozen => WATCH_MEMBERS_VERSION, members_follow_joins_and_leaves;
    /// `drain` answers `Ok` without draining.
    DrainIgnored => DRAIN_SHOWN, drain_marks_the_member_leaving;
    /// `drain` of a closed session answers `Ok`.
    DrainOfClosedSucceeds => DRAIN_IDEMPOTENT, drain_marks_the_member_leaving;
    /// A lost `campaign` answers a leadership with the winner's epoch: two leaders.
    LosersAlsoLead => CAMPAIGN_ONE, campaign_elects_exactly_one_leader;
    /// Every term has epoch 1.
    EpochAlwaysOne => CAMPAIGN_EPOCH, epochs_increase_across_terms;
    /// Epochs start over after a backend restart.
    EpochsRestartAtZero => CAMPAIGN_EPOCH_RESTART, restart_keeps_ids_epochs_and_revisions_growing;
    /// A leader campaigning again is answered a greater epoch.
    RecampaignBumpsEpoch => CAMPAIGN_SAME_EPOCH, epochs_increase_across_terms;
    /// Once a leader's session expired or closed without resigning, nobody else wins a campaign.
    LeadershipOutlivesSession => CAMPAIGN_ENDS, leadership_ends_with_session;
    /// `campaign` of an expired session answers `Ok(None)`.
    ExpiredCampaignLoses => CAMPAIGN_EXPIRED, leadership_ends_with_session;
    /// `leader` answers the last leader seen when the backend has none.
    ExpiredLeaderShown => LEADER_LIVE, leadership_ends_with_session;
    /// `resign` answers `Ok` without resigning.
    ResignIgnored => RESIGN_HANDS_OVER, epochs_increase_across_terms;
    /// `resign` by a session that is not leader fails with `Fenced`.
    NonLeaderResignFails => RESIGN_NOOP, epochs_increase_across_terms;
    /// `put_job` answers revision 1 for every write.
    RevisionAlwaysOne => PUT_REVISION, put_job_revisions_increase;
    /// `put_job` ignores its precondition.
    PreconditionIgnored => PUT_PRECONDITION, put_job_preconditions;
    /// A `Revision(r)` write that lost answers `Ok` with the current revision (writing nothing).
    LosingWriterSucceeds => PUT_CONCURRENT, concurrent_writers_one_wins;
    /// `put_job` drops the job's labels.
    LabelsDropped => PUT_ROUND_TRIP, job_fields_round_trip;
    /// `put_jobs` writes its jobs one at a time, unchecked: an id given twice is a `Conflict` after the first
    /// is written.
    BatchUnchecked => PUT_JOBS_CHECKED, put_jobs_checks_before_writing;
    /// `put_jobs` checks its jobs, then writes them one at a time and stops at the first that exists, leaving
    /// the ones before it.
    BatchConflictKeepsEarlier => PUT_JOBS_CONFLICT, put_jobs_conflict_leaves_nothing;
    /// `put_jobs` answers revision 1 for every job.
    BatchRevisionsOne => PUT_JOBS_STORED, put_jobs_creates_every_job;
    /// `watch_jobs` drops every third event of a batch (every third event, as the watch cannot tell).
    BatchEventsSkipped => PUT_JOBS_WATCHED, put_jobs_creates_every_job;
    /// `delete_job` of a missing job answers `Ok`.
    DeleteOfMissingSucceeds => DELETE_MISSING, delete_job_preconditions;
    /// `delete_job` ignores a `Revision(r)` precondition.
    DeleteIgnoresRevision => DELETE_CONFLICT, delete_job_preconditions;
    /// `runs` of a deleted job still answers its old records.
    DeletedRunsStay => DELETE_CASCADE, delete_job_removes_claims_and_runs;
    /// `get_job` answers the first value it saw for each job.
    StaleGet => GET_FRESH, reads_see_acknowledged_writes;
    /// `list_jobs` answers the jobs in reverse id order.
    ListUnsorted => LIST_SNAPSHOT, list_jobs_is_consistent_snapshot;
    /// `watch_jobs` drops every third event.
    WatchSkipsEvents => WATCH_JOBS_NO_GAPS, watch_jobs_resumes_without_gaps;
    /// A compacted `watch_jobs` answers a watch that never yields, instead of `Compacted`.
    CompactionHidden => WATCH_JOBS_COMPACTED, watch_jobs_reports_compaction;
    /// A fenced `publish_assignment` answers `Ok` (writing nothing).
    FencedPublishSucceeds => PUBLISH_FENCED, publish_assignment_is_fenced;
    /// `publish_assignment` answers version 1 every time.
    PublishVersionAlwaysOne => PUBLISH_VERSION, assignment_versions_increase;
    /// `assignment` answers the first assignment it saw.
    StaleAssignment => ASSIGNMENT_LATEST, assignment_versions_increase;
    /// `watch_assignment` receivers hold the assignment of when they were made and never change.
    AssignmentWatchFrozen => WATCH_ASSIGNMENT_VERSIONS, assignment_versions_increase;
    /// `claim_fires` of an expired session answers `NotOwner` for each job instead of failing.
    ExpiredClaimsAnswered => CLAIM_EXPIRED, expired_session_is_fenced_from_claims;
    /// A sequential `claim_fires` of another node's job is granted (reported, not written).
    NonOwnerGranted => CLAIM_NOT_OWNER, claims_require_ownership;
    /// A missing job is answered `NotOwner { owner: None }`.
    MissingJobNotOwner => CLAIM_NO_SUCH_JOB, claims_require_ownership;
    /// A takeover starts at `previous.through_ms` (off by one: that instant is granted twice).
    TakeoverOverlaps => CLAIM_NO_DOUBLE_GRANT, takeover_starts_after_previous;
    /// An extension reports the `from_ms` the holder asked for.
    ExtensionMovesFrom => CLAIM_MONOTONIC, claim_extension_is_monotonic;
    /// `claim_fires` answers a takeover with the `settled_ms` the new holder asked for, even above the
    /// previous holder's (hiding the previous holder's unsettled instants from the next owner).
    TakeoverRaisesSettled => CLAIM_TAKEOVER_SETTLED, takeover_starts_after_previous;
    /// Only the call that took a job over answers `previous`: a grant to a session that was granted the job
    /// before answers none (and its claim keeps none), so a retry whose takeover answer was lost never learns
    /// its predecessor.
    PreviousForgotten => CLAIM_PREVIOUS_KEPT, takeover_starts_after_previous;
    /// A `claim_fires` refused `NotOwner` while another `claim_fires` is in flight is reported granted.
    ConcurrentNonOwnerGranted => CLAIM_CONCURRENT, claims_require_ownership;
    /// `release_claims` answers `Ok` without releasing.
    ReleaseIgnored => RELEASE_SUCCESSOR, release_lets_successor_start_next;
    /// A release beyond the claim extends it to there.
    ReleaseExtends => RELEASE_NO_EXTEND, release_lets_successor_start_next;
    /// `release_claims` naming a job the session does not hold fails with `Conflict`.
    ReleaseOfForeignFails => RELEASE_IGNORES, release_lets_successor_start_next;
    /// `claim_of` answers the first claim it saw for each job.
    StaleClaimOf => CLAIM_OF_FRESH, claim_extension_is_monotonic;
    /// `record_runs` of an expired session answers `Recorded` for each record, storing nothing.
    ExpiredRecordsAnswered => RECORD_EXPIRED, expired_session_is_fenced_from_claims;
    /// A second record of a fire id is answered `Recorded`.
    DuplicateRecorded => RECORD_ONCE, record_runs_once_per_fire_id;
    /// `runs` answers at most 50 records.
    HistoryTrimmed => RECORD_HISTORY, run_history_keeps_newest;
    /// `record_runs` with a record of a missing job fails with `NotFound`.
    MissingJobRecordsFail => RECORD_NO_JOB, records_of_missing_job_are_dropped;
    /// `runs` answers oldest first.
    RunsOldestFirst => RUNS_QUERY, runs_query_filters_newest_first;
}

/// What the breaks remember across calls (shared by the wrappers of one control).
#[derive(Default)]
pub(super) struct Memory {
    /// When each session was opened on the real clock, and its granted TTL.
    pub(super) opened: BTreeMap<SessionId, (std::time::Instant, Duration)>,
    /// The first session id returned, and how many opens were answered.
    pub(super) first_session: Option<SessionId>,
    pub(super) opens: u64,
    /// The last session opened.
    pub(super) last_opened: Option<SessionId>,
    /// Sessions closed through a wrapper.
    pub(super) closed: BTreeSet<SessionId>,
    /// Members of closed sessions, as last seen.
    pub(super) closed_members: Vec<Member>,
    /// Every member seen, by session.
    pub(super) members_seen: BTreeMap<SessionId, Member>,
    /// The first members version seen.
    pub(super) first_members_version: Option<u64>,
    /// Made-up session ids handed out (counting down from `u64::MAX`).
    pub(super) made_up: u64,
    /// Senders of `watch_session` receivers, by session.
    pub(super) session_watchers: BTreeMap<SessionId, Vec<watch::Sender<SessionState>>>,
    /// The epoch last answered to each leader.
    pub(super) led: BTreeMap<SessionId, u64>,
    /// The last leader seen, and whether it resigned.
    pub(super) last_leader: Option<(Leader, bool)>,
    /// Jobs granted to each session.
    pub(super) granted: BTreeSet<(SessionId, JobId)>,
    /// The greatest epoch answered.
    pub(super) max_epoch: u64,
    /// The first answer of `get_job`, by job.
    pub(super) first_get: BTreeMap<JobId, Option<Job>>,
    /// Runs of deleted jobs.
    pub(super) deleted_runs: BTreeMap<JobId, Vec<RunRecord>>,
    /// The first answer of `assignment`.
    pub(super) first_assignment: Option<Option<Arc<Assignment>>>,
    /// The first answer of `claim_of`, by job.
    pub(super) first_claim: BTreeMap<JobId, Option<JobClaim>>,
    /// Jobs granted to each session.
    pub(super) held: BTreeMap<SessionId, BTreeSet<JobId>>,
    /// `claim_fires` calls in flight.
    pub(super) claims_in_flight: u64,
}
