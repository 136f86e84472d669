//! The znode layout: every path this backend reads or writes, relative to the namespace's chroot.
//!
//! Ids become path components as they are, except the two that ZooKeeper refuses as components, `.` and
//! `..`, which are written `%2E` and `%2E%2E` (`%` is not allowed in job or node ids, so this is unambiguous).
//! Scheduled instants become 16 hex digits of the instant with its sign bit flipped, so that the names of a
//! job's run records sort like the instants.

use std::borrow::Cow;

use campanile::coordinator::{NodeId, SessionId};
use campanile::job::JobId;

/// Layout version, in `/meta/format`. A namespace with another one is refused.
pub(crate) const FORMAT: &str = "1";

pub(crate) const META: &str = "/meta";
pub(crate) const FORMAT_NODE: &str = "/meta/format";
/// The job store's head: `{"revision", "compacted"}`; its znode version is the compare-and-set token of
/// every job write.
pub(crate) const HEAD: &str = "/meta/head";
/// Bumped once per opened session: the zxid of that write is the new session's id.
pub(crate) const SESSION_SEQ: &str = "/meta/session-seq";
pub(crate) const SESSIONS: &str = "/sessions";
pub(crate) const MEMBERS: &str = "/members";
pub(crate) const ELECTION: &str = "/election";
pub(crate) const JOBS: &str = "/jobs";
pub(crate) const CLAIMS: &str = "/claims";
pub(crate) const RUNS: &str = "/runs";
pub(crate) const LOG: &str = "/log";
pub(crate) const ASSIGNMENT: &str = "/assignment";
pub(crate) const ASSIGNMENT_CHUNKS: &str = "/assignment-chunks";

/// Every persistent directory of a namespace, parents first.
pub(crate) const DIRECTORIES: &[&str] = &[
    META,
    SESSIONS,
    MEMBERS,
    ELECTION,
    JOBS,
    CLAIMS,
    RUNS,
    LOG,
    ASSIGNMENT_CHUNKS,
];

/// An id as a path component.
pub(crate) fn component(id: &str) -> Cow<'_, str> {
    match id {
        "." => Cow::Borrowed("%2E"),
        ".." => Cow::Borrowed("%2E%2E"),
        other => Cow::Borrowed(other),
    }
}

/// The id a path component stands for.
#[cfg(test)]
pub(crate) fn from_component(name: &str) -> Cow<'_, str> {
    match name {
        "%2E" => Cow::Borrowed("."),
        "%2E%2E" => Cow::Borrowed(".."),
        other => Cow::Borrowed(other),
    }
}

pub(crate) fn session(id: SessionId) -> String {
    format!("{SESSIONS}/{:016x}", id.0)
}

pub(crate) fn member(node: &NodeId) -> String {
    format!("{MEMBERS}/{}", component(node.as_str()))
}

pub(crate) fn job(id: &JobId) -> String {
    format!("{JOBS}/{}", component(id.as_str()))
}

pub(crate) fn claim(id: &JobId) -> String {
    format!("{CLAIMS}/{}", component(id.as_str()))
}

pub(crate) fn runs(id: &JobId) -> String {
    format!("{RUNS}/{}", component(id.as_str()))
}

pub(crate) fn run(id: &JobId, scheduled_ms: i64) -> String {
    format!("{}/{}", runs(id), instant_name(scheduled_ms))
}

pub(crate) fn log_entry(revision: u64) -> String {
    format!("{LOG}/{revision:020}")
}

pub(crate) fn assignment_chunk(version: u64, index: usize) -> String {
    format!("{ASSIGNMENT_CHUNKS}/{}", chunk_name(version, index))
}

pub(crate) fn chunk_name(version: u64, index: usize) -> String {
    format!("{version:020}-{index:06}")
}

/// The assignment version a chunk name belongs to.
pub(crate) fn chunk_version(name: &str) -> Option<u64> {
    name.split_once('-')?.0.parse().ok()
}

/// The prefix of a session's election candidates; ZooKeeper appends a 10-digit sequence number.
pub(crate) fn candidate_prefix(id: SessionId) -> String {
    format!("{ELECTION}/c-{:016x}-", id.0)
}

/// The session and sequence number of an election candidate's name (`c-<session>-<sequence>`).
pub(crate) fn parse_candidate(name: &str) -> Option<(SessionId, u64)> {
    let rest = name.strip_prefix("c-")?;
    let (session, sequence) = rest.split_once('-')?;
    Some((
        SessionId(u64::from_str_radix(session, 16).ok()?),
        sequence.parse().ok()?,
    ))
}

/// A scheduled instant as a name that sorts like the instant.
pub(crate) fn instant_name(ms: i64) -> String {
    format!("{:016x}", (ms as u64) ^ (1 << 63))
}

/// The instant a run record's name stands for.
pub(crate) fn parse_instant(name: &str) -> Option<i64> {
    if name.len() != 16 {
        return None;
    }
    u64::from_str_radix(name, 16)
        .ok()
        .map(|v| (v ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_names_sort_like_instants() {
        let instants = [i64::MIN, -1_000, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        let names: Vec<String> = instants.iter().map(|&ms| instant_name(ms)).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for (ms, name) in instants.iter().zip(&names) {
            assert_eq!(parse_instant(name), Some(*ms));
        }
        assert_eq!(parse_instant("zz"), None);
    }

    #[test]
    fn dot_ids_become_legal_components() {
        for id in [".", "..", "a.b", "..."] {
            let name = component(id);
            assert!(name != "." && name != "..");
            assert_eq!(from_component(&name), id);
        }
    }

    #[test]
    fn candidates_round_trip() {
        let name = format!(
            "{}0000000042",
            candidate_prefix(SessionId(0xabc)).trim_start_matches("/election/")
        );
        assert_eq!(parse_candidate(&name), Some((SessionId(0xabc), 42)));
        assert_eq!(parse_candidate("x-1-2"), None);
        assert_eq!(chunk_version(&chunk_name(7, 3)), Some(7));
    }
}
