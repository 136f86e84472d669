//! In-process Coordinator for Campanile: every node of one process shares one [`InprocCoordinator`],
//! which keeps its data in memory or, durably, in one local redb file.
//!
//! It is the default backend and the skeleton to copy when writing a new one: the contract lives in the
//! docs of `campanile::coordinator::Coordinator` (each method's `### To ensure correctness:` list), the
//! claim rules every backend shares are `campanile::coordinator::rules`, and everything else this backend
//! decides is in one place, `State` (`src/state.rs`), as plain synchronous code.
//!
//! # Modes
//!
//! - [`InprocCoordinator::memory`]: nothing survives the process. For tests, simulations and single-process
//!   deployments that keep their jobs elsewhere.
//! - [`InprocCoordinator::open`]: jobs, claims, run records, the assignment, the counters and the history
//!   store ([`InprocCoordinator::history`]) survive a restart. Sessions, members and leadership do not: after a restart every earlier session is expired,
//!   and, because the counters are durable, no session id, leader epoch or store revision is ever reused.
//!
//! Both modes run the same code. The in-memory state is the source of truth; in durable mode each write
//! call is also written through to the file, in one redb write transaction committed *before* the change
//! is applied in memory. A write the file refused therefore did not happen at all
//! (`CoordError::Unavailable`, with `certainly_aborted: false` only when the commit itself failed).
//!
//! # Time
//!
//! Session expiry uses `tokio::time` only, so paused-time tests and the cluster simulation drive it. Each
//! session has a small task that sleeps until its deadline and expires it, so `watch_session`,
//! `watch_members` and the leader reflect an expiry without any call; every call also expires overdue
//! sessions first, so no call ever sees one. Creating a coordinator needs no runtime; opening a session
//! needs a tokio runtime with timers.
//!
//! # Behaviour the contract leaves to the backend
//!
//! The claim rules below are `campanile::coordinator::rules`, which every backend applies.
//!
//! - A session that expires or is closed keeps its claims exactly as they are: the successor starts after
//!   each claim's `through_ms` and settles `(settled_ms, through_ms]` from the run records (instants
//!   without one are in doubt). A leaving node releases what it will not fire before it closes.
//! - A claim is granted only to the node the current assignment names. A takeover starts at
//!   `max(from_ms, previous.through_ms + 1)`; if the requested `through_ms` ends before that, the grant is
//!   empty (`through_ms = from_ms - 1`) but the job changes hands. `settled_ms` is stored as the claimer
//!   gives it (and never decreases while it holds the job).
//! - A release sets `through_ms` to the given instant, but never extends the claim and never goes below
//!   `from_ms - 1`; `settled_ms` is left as it is.
//! - Run records: the newest [`InprocConfig::history_limit`] per job are kept (by scheduled instant). Once
//!   a record has been dropped, any record at or before its instant is answered `Duplicate`, so `Recorded`
//!   is answered at most once per fire id, ever. Records of jobs that do not exist are dropped (answered
//!   `Recorded`).
//! - Job watches: the last [`InprocConfig::watch_retention`] events are kept for resuming. A watcher that
//!   falls more than 1024 events behind (beyond its replayed backlog) is cut off: its stream ends after the
//!   events it holds, and it resumes with `watch_jobs(last revision seen)`. Writers never wait for
//!   watchers. After a restart, no earlier event is retained: resuming from before the loaded revision is
//!   `CoordError::Compacted`.
//! - Oversized or malformed requests are `CoordError::Invalid` and write nothing: batches above 2^20 items,
//!   jobs above 1 MiB of JSON, TTLs of zero or above one day, run records with oversized text, a claim
//!   `through_ms` of `i64::MAX` (a successor could not start after it).
//!
//! # File layout (format version 1)
//!
//! One redb file. Keys are job ids (text) unless said otherwise; values are JSON (`serde_json`) of the
//! `campanile` types named.
//!
//! | table        | key                          | value                                                      |
//! |--------------|------------------------------|------------------------------------------------------------|
//! | `meta`       | `format`                     | `1`: the layout version; another one is refused at open    |
//! | `meta`       | `revision`                   | the store revision of the last job write (`u64`)           |
//! | `meta`       | `leader_epoch`               | the last leader epoch handed out (`u64`)                   |
//! | `meta`       | `session_id`                 | the last session id handed out (`u64`)                     |
//! | `meta`       | `assignment`                 | `{"epoch", "version"}` of the last published assignment    |
//! | `jobs`       | job id                       | `Job`, including its `revision`                            |
//! | `owners`     | job id                       | `NodeId`: the assignment's owner of the job                |
//! | `claims`     | job id                       | `JobClaim`                                                 |
//! | `runs`       | (job id, scheduled Unix ms)  | `RunRecord`                                                |
//! | `run_floors` | job id                       | the newest scheduled instant dropped from the history (`i64`) |
//! | `history_runs`, `history_by_time`, `history_counts` | | the history store ([`InprocCoordinator::history`]): `campanile-history`'s `LocalStore` tables, written only through it |
//!
//! A missing counter reads as 0. Publishing an assignment writes only the owners that changed. Deleting a
//! job deletes its rows in `jobs`, `claims`, `runs` and `run_floors` (not in `owners`: the assignment is
//! the leader's). The file is checked for integrity at every open, then read whole into memory.

mod change;
mod config;
mod coordinator;
mod error;
mod job_log;
mod limits;
mod state;
mod store;

pub use config::InprocConfig;
pub use coordinator::InprocCoordinator;
pub use error::InprocError;
