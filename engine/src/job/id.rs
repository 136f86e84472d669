//! Job and fire identities.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ValidationError;

/// A job's unique id: 1 to 128 characters of `[A-Za-z0-9._-]`, other than `.` and `..`, so it is safe in
/// etcd keys, znode paths (where both are reserved), URLs (where both are path segments that clients and
/// servers remove) and file names. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(Arc<str>);

impl JobId {
    /// Longest accepted id, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Checks and wraps an id.
    pub fn new(id: impl AsRef<str>) -> Result<Self, ValidationError> {
        let id = id.as_ref();
        if id.is_empty() || id.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "id",
                id,
                "must be 1 to 128 characters",
            ));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(ValidationError::new(
                "id",
                id,
                format!("character {bad:?} is not one of [A-Za-z0-9._-]"),
            ));
        }
        if id == "." || id == ".." {
            return Err(ValidationError::new(
                "id",
                id,
                "is a path segment (`.` and `..` cannot be reached in a URL); use another id",
            ));
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for JobId {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<JobId> for String {
    fn from(value: JobId) -> Self {
        value.0.to_string()
    }
}

impl std::str::FromStr for JobId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// The identity of one fire: a job and one scheduled instant. Displayed as `"{job_id}@{scheduled_unix_ms}"`,
/// which targets receive (`CAMPANILE_FIRE_ID`, `Campanile-Fire-Id`) to de-duplicate downstream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FireId {
    /// The job.
    pub job: JobId,
    /// The scheduled instant, Unix ms.
    pub scheduled_ms: i64,
}

impl FireId {
    /// The fire of `job` at `scheduled_ms`.
    pub fn new(job: JobId, scheduled_ms: i64) -> Self {
        Self { job, scheduled_ms }
    }
}

impl fmt::Display for FireId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.job, self.scheduled_ms)
    }
}

impl std::str::FromStr for FireId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (job, ms) = s
            .rsplit_once('@')
            .ok_or_else(|| ValidationError::new("fire_id", s, "expected \"{job_id}@{unix_ms}\""))?;
        let scheduled_ms = ms.parse().map_err(|_| {
            ValidationError::new("fire_id", s, format!("{ms:?} is not a Unix ms integer"))
        })?;
        Ok(Self {
            job: JobId::new(job)?,
            scheduled_ms,
        })
    }
}
