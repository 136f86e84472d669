//! The key layout under the cluster's prefix (documented in the crate docs and `docs/backends.md`).

use campanile::coordinator::SessionId;
use campanile::job::JobId;

/// Builds the keys of one cluster, all under one prefix that starts and ends with `/`.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (normalized: starts and ends with `/`).
    pub(crate) fn new(prefix: String) -> Self {
        debug_assert!(prefix.starts_with('/') && prefix.ends_with('/'));
        Self { prefix }
    }

    /// The prefix itself: everything of the cluster is under it.
    pub(crate) fn root(&self) -> &str {
        &self.prefix
    }

    /// `sessions/{id:016x}`: the session's node id, on the session's lease.
    pub(crate) fn session(&self, id: SessionId) -> String {
        format!("{}sessions/{:016x}", self.prefix, id.0)
    }

    /// `members/`: the prefix of the member keys.
    pub(crate) fn members(&self) -> String {
        format!("{}members/", self.prefix)
    }

    /// `members/{node}`: the `Member`, on the session's lease.
    pub(crate) fn member(&self, node: &str) -> String {
        format!("{}members/{node}", self.prefix)
    }

    /// `leader`: the leader's node and session, on its lease; the key's create revision is the epoch.
    pub(crate) fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }

    /// `assignment`: the last published assignment; its mod revision is the version.
    pub(crate) fn assignment(&self) -> String {
        format!("{}assignment", self.prefix)
    }

    /// `jobs/`: the prefix of the job keys.
    pub(crate) fn jobs(&self) -> String {
        format!("{}jobs/", self.prefix)
    }

    /// `jobs/{id}`: the `Job`; its mod revision is the job's revision.
    pub(crate) fn job(&self, id: &JobId) -> String {
        format!("{}jobs/{id}", self.prefix)
    }

    /// The job id of a key under [`Keys::jobs`].
    pub(crate) fn job_id(&self, key: &[u8]) -> Option<JobId> {
        let key = std::str::from_utf8(key).ok()?;
        let id = key.strip_prefix(&self.jobs())?;
        JobId::new(id).ok()
    }

    /// `claims/{id}`: the job's `JobClaim`.
    pub(crate) fn claim(&self, id: &JobId) -> String {
        format!("{}claims/{id}", self.prefix)
    }

    /// `runs/{id}/`: the prefix of a job's run records.
    pub(crate) fn runs(&self, id: &JobId) -> String {
        format!("{}runs/{id}/", self.prefix)
    }

    /// `runs/{id}/{instant}`: one `RunRecord`, keyed so that byte order is scheduled-instant order.
    pub(crate) fn run(&self, id: &JobId, scheduled_ms: i64) -> String {
        format!("{}{}", self.runs(id), instant(scheduled_ms))
    }

    /// `run_floors/{id}`: the newest scheduled instant dropped from the job's history.
    pub(crate) fn run_floor(&self, id: &JobId) -> String {
        format!("{}run_floors/{id}", self.prefix)
    }
}

/// A scheduled instant as 16 hex digits whose byte order is numeric order (the sign bit flipped).
pub(crate) fn instant(ms: i64) -> String {
    format!("{:016x}", (ms as u64) ^ (1 << 63))
}

/// The instant of a run key's last segment.
pub(crate) fn parse_instant(key: &[u8]) -> Option<i64> {
    let last = key.rsplit(|b| *b == b'/').next()?;
    let text = std::str::from_utf8(last).ok()?;
    if text.len() != 16 {
        return None;
    }
    let raw = u64::from_str_radix(text, 16).ok()?;
    Some((raw ^ (1 << 63)) as i64)
}

/// The first key after every key that starts with `prefix` (etcd's range end of a prefix).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_sort_as_bytes_and_round_trip() {
        let values = [i64::MIN, -1_000, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        let keys: Vec<String> = values.iter().map(|v| instant(*v)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for v in values {
            assert_eq!(
                parse_instant(format!("/p/runs/j/{}", instant(v)).as_bytes()),
                Some(v)
            );
        }
        assert_eq!(parse_instant(b"/p/runs/j/xyz"), None);
    }

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
