//! Errors of opening (and loading) a durable in-process store.
//!
//! Errors of coordinator calls are `CoordError`s (see `campanile::coordinator`); these are the errors of
//! [`InprocCoordinator::open`](crate::InprocCoordinator::open), where a caller can react: pick another path,
//! restore a backup, free the lock. Every variant names the file.

use std::path::PathBuf;

/// Why a durable in-process store could not be opened.
///
/// The `Display` text names the path and what failed; the underlying cause, when there is one, is the
/// error's `source()` (print the chain, e.g. anyhow's `{:#}`, to see it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InprocError {
    /// The file could not be opened or created as a redb database: the directory is missing or not
    /// writable, the path is a directory, another process (or another coordinator in this process) holds
    /// the file, or the file is not a redb database.
    #[error("failed to open inproc store {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What redb reported.
        source: redb::DatabaseError,
    },
    /// Reading or initializing the database failed after it was opened (IO error, damaged pages).
    #[error("failed to read inproc store {}", path.display())]
    Storage {
        /// The file.
        path: PathBuf,
        /// What redb reported.
        source: redb::Error,
    },
    /// A stored value could not be decoded: the file was written by something else or damaged.
    #[error("inproc store {} is corrupt: table {table}, key {key}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The table holding the bad value.
        table: &'static str,
        /// The key of the bad value.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The file was written by a version of this crate with another storage layout.
    #[error(
        "inproc store {} has format version {found}; this build reads version {supported}",
        path.display()
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format version found in the file.
        found: u64,
        /// The format version this build reads and writes.
        supported: u64,
    },
}
