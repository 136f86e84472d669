//! Errors of connecting to etcd, and how etcd's errors map onto the coordinator contract's `CoordError`.

use campanile::coordinator::CoordError;

/// Why an [`EtcdCoordinator`](crate::EtcdCoordinator) could not be created. Errors of coordinator calls are
/// `CoordError`s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// A setting is invalid.
    #[error("etcd config: {field}: {value:?}: {reason}")]
    Config {
        /// The setting (`endpoints`, `tls.ca`).
        field: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A TLS file could not be read.
    #[error("etcd config: {field}: failed to read {path}")]
    TlsFile {
        /// The setting (`tls.ca`, `tls.cert`, `tls.key`).
        field: &'static str,
        /// The file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The client could not be set up, or authentication failed.
    #[error("failed to connect to etcd at {endpoints}")]
    Connect {
        /// The endpoints, comma-separated.
        endpoints: String,
        /// What etcd-client reported.
        source: etcd_client::Error,
    },
}

/// Whether the failed call could have written something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A read: nothing was written either way.
    Read,
    /// A write whose outcome is unknown when the reply is lost.
    Write,
}

/// Maps an etcd-client error of `what` (`put_job`) onto the contract's errors.
pub(crate) fn map(what: &str, kind: Kind, error: etcd_client::Error) -> CoordError {
    let message = format!("etcd {what}: {error}");
    match &error {
        etcd_client::Error::GRpcStatus(status) => match i32::from(status.code()) {
            // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE: the request itself is refused.
            3 | 9 | 11
                if status.message().contains("too large")
                    || status.message().contains("too many operations") =>
            {
                CoordError::Invalid(message)
            }
            // PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNAUTHENTICATED: refused before anything was applied.
            7 | 8 | 16 => CoordError::unavailable_from(message, true, error),
            _ => CoordError::unavailable_from(message, kind == Kind::Read, error),
        },
        // The request never left: no connection, bad arguments.
        etcd_client::Error::TransportError(_)
        | etcd_client::Error::InvalidArgs(_)
        | etcd_client::Error::InvalidUri(_)
        | etcd_client::Error::EndpointError(_) => {
            CoordError::unavailable_from(message, true, error)
        }
        _ => CoordError::unavailable_from(message, kind == Kind::Read, error),
    }
}

/// A call that did not answer within its deadline.
pub(crate) fn timed_out(what: &str, kind: Kind) -> CoordError {
    CoordError::Unavailable {
        message: format!("etcd {what}: no answer within the request timeout"),
        certainly_aborted: kind == Kind::Read,
        source: None,
    }
}

/// A value in etcd that this version cannot decode: written by something else, or damaged.
pub(crate) fn corrupt(key: &[u8], reason: impl std::fmt::Display) -> CoordError {
    CoordError::Unavailable {
        message: format!(
            "corrupt value at etcd key {}: {reason}",
            String::from_utf8_lossy(key)
        ),
        certainly_aborted: true,
        source: None,
    }
}

/// Whether etcd said the lease does not exist (expired or revoked).
pub(crate) fn is_lease_not_found(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            status.message().contains("requested lease not found")
        }
        etcd_client::Error::LeaseKeepAliveError(message) => message.contains("lease not found"),
        _ => false,
    }
}
