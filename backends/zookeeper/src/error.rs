//! Turning ZooKeeper errors, timeouts and undecodable znodes into `CoordError`s, and the deadline every
//! request runs under.

use std::future::Future;
use std::time::Duration;

use campanile::coordinator::{CoordError, CoordResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zookeeper_client as zk;

/// Whether a failed call may have changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A read: nothing happened whatever the error.
    Read,
    /// A write: after a lost connection or a timeout it may still have happened.
    Write,
}

/// A ZooKeeper error of `what` (`put_job`, `/jobs/a`) as a `CoordError`. Errors that mean "this request is
/// wrong" are `Invalid`; everything else is `Unavailable`, `certainly_aborted` unless a write may have
/// reached the server.
pub(crate) fn from_zk(error: zk::Error, what: &str, kind: Kind) -> CoordError {
    let maybe_applied = kind == Kind::Write
        && matches!(
            error,
            zk::Error::ConnectionLoss | zk::Error::Timeout | zk::Error::UnexpectedError(_)
        );
    match error {
        zk::Error::NoAuth | zk::Error::AuthFailed | zk::Error::InvalidAcl => {
            CoordError::Unavailable {
                message: format!(
                    "{what}: ZooKeeper refused access ({error}): check the digest auth and the ACLs of the namespace"
                ),
                certainly_aborted: true,
                source: None,
            }
        }
        zk::Error::BadArguments(_) | zk::Error::MarshallingError => {
            CoordError::Invalid(format!("{what}: {error}"))
        }
        other => CoordError::unavailable_from(format!("{what}: {other}"), !maybe_applied, other),
    }
}

/// Runs `call` under `timeout`. A timeout is `Unavailable`; for a write it may still happen.
pub(crate) async fn deadline<T>(
    timeout: Duration,
    what: &str,
    kind: Kind,
    call: impl Future<Output = CoordResult<T>>,
) -> CoordResult<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(CoordError::Unavailable {
            message: format!("{what}: no answer from ZooKeeper within {timeout:?}"),
            certainly_aborted: kind == Kind::Read,
            source: None,
        }),
    }
}

/// A value stored in a znode was not what this backend writes there.
pub(crate) fn corrupt(path: &str, reason: impl std::fmt::Display) -> CoordError {
    CoordError::Unavailable {
        message: format!("znode {path} is corrupt: {reason}"),
        certainly_aborted: true,
        source: None,
    }
}

/// Decodes the JSON in znode `path`.
pub(crate) fn decode<T: DeserializeOwned>(path: &str, data: &[u8]) -> CoordResult<T> {
    serde_json::from_slice(data).map_err(|e| corrupt(path, e))
}

/// Encodes a value as JSON.
pub(crate) fn encode<T: Serialize + ?Sized>(what: &str, value: &T) -> CoordResult<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| CoordError::Invalid(format!("{what}: cannot be encoded: {e}")))
}

/// The session-expired error for session `id`.
pub(crate) fn expired(id: campanile::coordinator::SessionId) -> CoordError {
    CoordError::SessionExpired { session: id.0 }
}
