//! `[cluster]`: the node's cluster port, where workers of executor groups connect (`campanile worker`, or
//! applications embedding `campanile::Worker`), and the cookie they must present.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use campanile::ValidationError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
    /// PEM file of the certificate chain the cluster port presents: TLS on the port (workers then need
    /// `--cluster-tls-ca`). Set with `tls_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the private key of `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// The most a cookie file may hold.
const MAX_COOKIE: u64 = 4096;

impl ClusterConfig {
    /// Checks that a non-loopback port has a cookie file, and that TLS has both its files.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), None) => {
                return Err(ValidationError::new(
                    "cluster.tls_key",
                    cert.display(),
                    "is needed with cluster.tls_cert: the PEM file of the certificate's private key",
                ));
            }
            (None, Some(key)) => {
                return Err(ValidationError::new(
                    "cluster.tls_cert",
                    key.display(),
                    "is needed with cluster.tls_key: the PEM file of the certificate chain",
                ));
            }
            _ => {}
        }
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
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(server_tls(cert, key)?),
            _ => None,
        };
        Ok(Some(campanile::ClusterConfig {
            listen,
            cookie,
            advertise: self.advertise.clone(),
            tls,
        }))
    }
}

/// The rustls provider of the whole binary (the one reqwest, axum-server and the etcd client use).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The cluster port's TLS: `cert` (a PEM chain) and `key` (its PEM private key).
fn server_tls(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .with_context(|| {
            format!(
                "cluster.tls_cert: cannot read a PEM certificate chain from {}",
                cert.display()
            )
        })?;
    anyhow::ensure!(
        !chain.is_empty(),
        "cluster.tls_cert: {} holds no PEM certificate",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "cluster.tls_key: cannot read a PEM private key from {}",
            key.display()
        )
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("cluster TLS")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("cluster.tls_cert and cluster.tls_key do not make a TLS identity")?;
    Ok(Arc::new(config))
}

/// A worker's TLS to the nodes' cluster ports: node certificates must chain to a certificate of `ca` (PEM).
pub fn client_tls(ca: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .with_context(|| {
            format!(
                "--cluster-tls-ca: cannot read PEM certificates from {}",
                ca.display()
            )
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "--cluster-tls-ca: {} holds no PEM certificate",
        ca.display()
    );
    for cert in certs {
        roots.add(cert).with_context(|| {
            format!(
                "--cluster-tls-ca: a certificate of {} is not usable",
                ca.display()
            )
        })?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("cluster TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
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
