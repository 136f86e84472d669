//! ZooKeeper Coordinator for Campanile: a cluster's sessions, members, leadership, jobs, assignment, fire
//! claims and run records, kept in znodes below one chroot of a ZooKeeper ensemble (3.6 or later: it uses
//! persistent watches and multi-reads).
//!
//! The contract is the docs of `campanile::coordinator::Coordinator` (each method's
//! `### To ensure correctness:` list); this crate passes the conformance suite of `campanile-adapters`
//! against a real server. The client is `zookeeper-client`.
//!
//! # Sessions
//!
//! Each Campanile session is a ZooKeeper session with a connection of its own, whose session timeout is
//! the TTL (the server must grant at least the TTL, or `open_session` fails naming `maxSessionTimeout`). Its
//! id is the zxid of a write made when it opens, never a ZooKeeper session id (those can repeat across
//! server restarts). It ends, for good, when its TTL passes without a keep-alive (a `tokio::time` timer),
//! when ZooKeeper expires or closes the ZooKeeper session, or when its znode is deleted; a keep-alive is a
//! round trip on the session's connection. Disconnected, it is `Suspended`; it is never reconnected under a
//! new ZooKeeper session: the engine opens a new Campanile session. See `session.rs` for why a
//! disconnected node is fenced before anyone can take its jobs.
//!
//! # Znode layout (format version 1)
//!
//! All paths are below the chroot; values are JSON of the `campanile` types named, unless said otherwise.
//! Ids `.` and `..` are written `%2E` and `%2E%2E`.
//!
//! | znode                          | kind                  | value                                                        |
//! |--------------------------------|-----------------------|--------------------------------------------------------------|
//! | `/meta/format`                 | persistent            | `1`: the layout version; another one is refused              |
//! | `/meta/head`                   | persistent            | `{"revision", "compacted"}`: store revision, log floor       |
//! | `/meta/session-seq`            | persistent            | empty; the zxid of each write to it is a new session id      |
//! | `/sessions/<id:016x>`          | ephemeral (session)   | the node id (text); exists while the session lives           |
//! | `/members/<node>`              | ephemeral (session)   | `Member`                                                     |
//! | `/election/c-<id:016x>-<seq>`  | ephemeral sequential  | the node id (text); version 1 once it leads; czxid = epoch   |
//! | `/jobs/<job>`                  | persistent            | `Job`, with its `revision`                                   |
//! | `/claims/<job>`                | persistent            | `JobClaim`, or `null`                                        |
//! | `/runs/<job>`                  | persistent            | `{"floor"}`: the newest instant dropped from the history     |
//! | `/runs/<job>/<instant:016x>`   | persistent            | `RunRecord` (name: the instant with its sign bit flipped)    |
//! | `/log/<revision:020>`          | persistent            | `{"change": "put", "job"}` or `{"change": "deleted", ...}`   |
//! | `/assignment`                  | persistent            | `Assignment` plus `"chunks"`; `null` before the first one    |
//! | `/assignment-chunks/<v>-<i>`   | persistent            | part of the owners of assignment version `v`                 |
//!
//! Inspect it with `zkCli.sh -server HOST:PORT ls -R /CHROOT` or `get /CHROOT/members/<node>`.
//!
//! # Writes
//!
//! Every write that the contract fences is one `multi` that also checks what it relies on:
//! - job writes compare-and-set `/meta/head` (the store revision is a dense counter, so the change log is
//!   read by name) and append `/log/<revision>`; deleting a job deletes its claim and run records with it;
//! - claims check the session's znode, `/assignment`'s znode version (the ownership they were decided on)
//!   and each claim's znode version, in batches of up to 1500 claims per `multi`;
//! - run records check the session and each job's history floor, and create one znode per fire id (a
//!   second create of a fire id fails: `Duplicate`, also under concurrent writers);
//! - an assignment checks the session and the leader's election candidate (its term), and compare-and-sets
//!   `/assignment`.
//!
//! # Behaviour the contract leaves to the backend
//!
//! - Leadership: the lowest election candidate leads once its campaign confirmed it; losers stay queued and
//!   take over on their next campaign after the leader's candidate goes. Nobody watches the leader's znode.
//! - Reads that must see every acknowledged write issue a `sync` first ([`ZkConfig::sync_reads`]).
//! - The change log keeps the last [`ZkConfig::watch_retention`] job changes; a watch from before that is
//!   `Compacted`. A job watch reads the log at its reader's pace (no cut-off for slow readers).
//! - Run records: the newest [`ZkConfig::history_limit`] per job are kept (trimmed in batches, so up to
//!   10 % more may be kept for a while); a record at or before a dropped instant is `Duplicate`.
//! - Jobs are limited to 400 KiB of JSON (a job write carries it twice in one request); assignments of any
//!   size are split into chunks of 512 KiB.
//! - A session opened through another coordinator of the same process can be used through this one; one
//!   opened by another process can be fenced against (claims, records, publications, resign, close) but not
//!   renewed or campaigned for (`Invalid`).
//! - With [`ZkConfig::auth`] set, every znode gets the ACL `auth::cdrwa`: only clients authenticated as the
//!   same digest user can read or write the namespace.

mod assignment;
mod backoff;
mod claims;
mod config;
mod conn;
mod coordinator;
mod error;
mod jobs;
mod leader;
mod limits;
mod members;
mod paths;
mod runs;
mod session;

pub use config::{DigestAuth, ZkConfig, ZkTls};
pub use coordinator::ZkCoordinator;
