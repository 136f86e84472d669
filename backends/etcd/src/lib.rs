//! etcd v3 Coordinator for Campanile: sessions are leases, membership and leadership are keys on those
//! leases, and every fenced write is one transaction.
//!
//! Connect with [`EtcdCoordinator::connect`] and an [`EtcdConfig`]; every node process opens its own.
//! The contract is `campanile::coordinator::Coordinator`; this crate passes the conformance suite of
//! `campanile-adapters` against a real etcd.
//!
//! # Key layout
//!
//! Everything lives under the configured prefix `P` (normalized to start and end with `/`). Values are JSON
//! of the `campanile` types named, so fields added to them flow through. Inspect a cluster with
//! `etcdctl get --prefix P`.
//!
//! | key                         | value                               | lease   | notes                                                  |
//! |-----------------------------|-------------------------------------|---------|--------------------------------------------------------|
//! | `P sessions/{id:016x}`      | `NodeInfo`                          | session | the session id *is* the etcd lease id                  |
//! | `P members/{node}`          | `Member`                            | session | created only if absent: one live session per node id   |
//! | `P leader`                  | `{"node", "session"}`               | leader's | the key's create revision is the leader epoch         |
//! | `P assignment`              | `{"epoch", "jobs": {node: [job]}}`  | none    | the key's mod revision is the assignment version       |
//! | `P jobs/{job}`              | `Job` (its `revision` ignored)      | none    | the key's mod revision is the job's revision           |
//! | `P claims/{job}`            | `JobClaim`                          | none    | survives its holder: the successor settles it          |
//! | `P runs/{job}/{instant}`    | `RunRecord`                         | none    | instant = 16 hex digits of the Unix ms, sign bit flipped, so keys sort by time |
//! | `P run_floors/{job}`        | newest dropped instant (`i64`)      | none    | records at or before it are answered `Duplicate`       |
//!
//! # How each guarantee is kept
//!
//! - **Sessions.** `open_session` grants a lease (TTL rounded up to whole seconds) and, in one
//!   transaction, creates `members/{node}` only if absent (else `Conflict`, and the lease is revoked).
//!   `keep_alive` is one keep-alive round trip on its own stream: nothing to re-establish after a
//!   connection loss. A lease etcd no longer knows is `SessionExpired`, for good. `close_session` revokes.
//! - **Expiry without calls.** A background watch of `members/` (re-listed and re-watched whenever its
//!   stream dies) sees a member key deleted when its lease expires; a watched session whose key is gone
//!   and whose lease etcd reports unknown becomes `Expired`. While that watch is down, watched sessions
//!   are `Suspended`: their validity cannot be confirmed, and the engine stops firing at the end of the
//!   validity it proved with its last keep-alive.
//! - **Leadership.** `campaign` creates `leader` on the session's lease only if absent; the epoch is the
//!   key's create revision, which etcd never reuses (also across restarts). `publish_assignment` commits
//!   only if `leader` still has that create revision *and* that lease.
//! - **Job store.** Job revisions are etcd revisions: they grow with every write and are never reused,
//!   but they are not consecutive (other keys share the revision counter). Preconditions are compares on
//!   the job key. `list_jobs` reads in pages pinned to the first page's revision: one consistent snapshot.
//!   `watch_jobs` watches `jobs/` from `after_revision + 1`, re-opens a dead stream from the last revision
//!   it delivered, and reports etcd's compaction as `Compacted` (`oldest` = compaction revision − 1), at the call
//!   or as the first item (etcd confirms a watch before it reports the compaction).
//! - **Claims.** `claim_fires` reads the assignment, the session key, and each job's key and claim, decides
//!   with `campanile::coordinator::rules` (as every backend does), then writes the changed claims in one
//!   transaction that compares the session key (so the lease is alive), the assignment's mod revision, and
//!   each job's and claim's mod revision. A race decides again from what the failed transaction read in its
//!   failure branch (at most 16 times, with a short growing backoff). Batches are split so that no transaction has more than
//!   [`EtcdConfig::max_txn_ops`] compares or operations (two compares per job: 63 jobs per transaction
//!   at etcd's default of 128). A call whose session expires between two chunks fails with
//!   `SessionExpired` although its earlier chunks were granted; such grants only delay the successor.
//! - **Run records.** One key per fire id, created only if absent (`create_revision == 0`), in the same
//!   transaction as the session, job and floor compares. History is trimmed per job in steps: when a job
//!   holds more than `history_limit` plus a tenth, its oldest records are deleted down to
//!   `history_limit` and the floor is raised.
//! - **Deadlines.** Every etcd call has [`EtcdConfig::request_timeout`]; a write that timed out is
//!   `Unavailable { certainly_aborted: false }`. HTTP/2 pings (every 0.5 s, 1 s timeout) detect a dead
//!   connection, so streams fail fast instead of hanging; calls go to any configured endpoint that is up.

mod backoff;
mod claims;
mod config;
mod coordinator;
mod error;
mod feeds;
mod jobs;
mod keys;
mod leader;
mod limits;
mod runs;
mod sessions;
mod stored;
mod txn;

pub use config::{EtcdConfig, EtcdTls};
pub use coordinator::EtcdCoordinator;
pub use error::EtcdError;
