//! `[cluster]`: the node's cluster port, where workers of executor groups connect (`campanile worker`, or
//! applications embedding `campanile::Worker`), and the cookie they must present.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use campanile::ValidationError;
use serde::{Deserialize, Serialize};

/// `[cluster]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Address of the cluster port (`127.0.0.1:7946`); no port, and so no workers, if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// File holding the cluster cookie (its first line). Required when `listen` is not a loopback address;
    /// on loopback the default cookie is used without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_file: Option<PathBuf>,
    /// The address workers reach the cluster port at (`10.0.0.5:7946`), published with the node's
    /// membership for `campanile worker --coordinator`; `listen` if absent (set it when `listen` is
    /// `0.0.0.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
}

/// The most a cookie file may hold.
const MAX_COOKIE: u64 = 4096;

impl ClusterConfig {
    /// Checks that a non-loopback port has a cookie file.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(listen) = self.listen
            && !listen.ip().is_loopback()
            && self.cookie_file.is_none()
        {
            return Err(ValidationError::new(
                "cluster.listen",
                listen,
                "is reachable from other machines: set cluster.cookie_file (--cluster-cookie-file FILE) to a \
                 file holding a secret cookie that workers present, or listen on 127.0.0.1",
            ));
        }
        Ok(())
    }

    /// The engine's cluster settings, with the cookie read from its file; `None` without a port.
    pub fn engine(&self) -> anyhow::Result<Option<campanile::ClusterConfig>> {
        let Some(listen) = self.listen else {
            return Ok(None);
        };
        let cookie = match &self.cookie_file {
            Some(path) => read_cookie(path).context("cluster.cookie_file")?,
            None => campanile::cluster::LOOPBACK_COOKIE.to_owned(),
        };
        Ok(Some(campanile::ClusterConfig {
            listen,
            cookie,
            advertise: self.advertise.clone(),
        }))
    }
}

/// Reads a cookie: the file's first line, not empty, at most 4 KiB.
pub fn read_cookie(path: &Path) -> anyhow::Result<String> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the cookie file {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_COOKIE,
        "the cookie file {} holds {size} bytes; a cookie is at most {MAX_COOKIE}",
        path.display()
    );
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cookie file {}", path.display()))?;
    let cookie = text.lines().next().unwrap_or("").trim().to_owned();
    anyhow::ensure!(
        !cookie.is_empty(),
        "the cookie file {} is empty: put a secret on its first line",
        path.display()
    );
    Ok(cookie)
}
