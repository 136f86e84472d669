//! Run history stores for Campanile: where run records live for reading, once the coordinator accepted them.
//!
//! - [`LocalStore`]: a redb database: `local` (a file in the node's data dir, the records this node wrote),
//!   the in-process backend's own file, or memory.
//! - [`PostgresStore`] (feature `postgres`): a shared PostgreSQL database, `postgres://…`.
//!
//! Both implement [`campanile::history::HistoryStore`] and pass the history conformance suite of
//! `campanile-adapters` (`campanile_adapters::history_suite!` in this crate's tests). [`spawn_retention`]
//! enforces `history_limit` and `history_max_age` in the background on any store.
//!
//! **Architecture Invariant:** the trait and its types live in the engine (`campanile::history`), the
//! database crates here: the engine hands records to a store without depending on redb's history tables or
//! on PostgreSQL.

mod local;
#[cfg(feature = "postgres")]
mod postgres;
mod retention;

pub use local::LocalStore;
#[cfg(feature = "postgres")]
pub use postgres::{DEFAULT_SCHEMA, PostgresStore};
pub use retention::{RetentionTask, spawn_retention};
