//! Bearer-token authentication of the API.
//!
//! The token file (`--token-file`, `token_file`) holds one token per line:
//!
//! ```text
//! # comments and blank lines are ignored
//! 3b1f0c5e9d7a4c2b8e6f1a0d9c8b7a65          <- a bare token: admin (may read and change everything)
//! admin     0f9e8d7c6b5a49382716a5b4c3d2e1f0  <- the same, spelled out
//! read-only 7d6c5b4a39281706f5e4d3c2b1a09f8e  <- may only read (GET) and plan rebalances
//! ```
//!
//! Tokens are 16 to 512 visible ASCII characters. When a token file is configured, every request except
//! `/healthz`, `/readyz` and `/metrics` needs `Authorization: Bearer TOKEN`: without one (or with an unknown
//! one) the answer is 401; a read-only token on a request that changes state gets 403. The presented token
//! is compared with every configured token in constant time (only its length can leak).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads only.
    ReadOnly,
    /// Everything.
    Admin,
}

/// The configured tokens.
#[derive(Clone)]
pub struct Tokens {
    entries: Arc<Vec<(Vec<u8>, Role)>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the tokens themselves.
        f.debug_struct("Tokens")
            .field("count", &self.entries.len())
            .finish()
    }
}

impl Tokens {
    /// Reads a token file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read token file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid token file {}", path.display()))
    }

    /// Parses the token file format (see the module docs).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let (role, token) = match words.as_slice() {
                [token] => (Role::Admin, *token),
                ["admin", token] => (Role::Admin, *token),
                ["read-only", token] => (Role::ReadOnly, *token),
                _ => anyhow::bail!(
                    "line {}: expected TOKEN, `admin TOKEN` or `read-only TOKEN`",
                    n + 1
                ),
            };
            if !(16..=512).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_graphic()) {
                anyhow::bail!(
                    "line {}: a token is 16 to 512 visible ASCII characters",
                    n + 1
                );
            }
            entries.push((token.as_bytes().to_vec(), role));
        }
        anyhow::ensure!(!entries.is_empty(), "no token in the file");
        Ok(Self {
            entries: Arc::new(entries),
        })
    }

    /// The role of a presented token, comparing it with every configured token in constant time.
    pub fn role_of(&self, presented: &[u8]) -> Option<Role> {
        let mut best = None;
        for (token, role) in self.entries.iter() {
            let matches: bool = token.as_slice().ct_eq(presented).into();
            if matches {
                best = best.max(Some(*role));
            }
        }
        best
    }
}

/// Whether a request only reads: safe methods, rebalance plans and schedule previews (which compute, never
/// change).
pub fn is_read(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (*method == Method::POST
            && matches!(path, "/v1/rebalance/plan" | "/v1/schedules/preview"))
}

/// Who is asking: the role of the request's token, as [`require_token`] found it. Admin when the server has
/// no token file (an open API has no roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller(pub Role);

impl Caller {
    /// Whether the caller may see secrets (literal secret values, HTTP targets' run output).
    pub fn sees_secrets(self) -> bool {
        self.0 == Role::Admin
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller(
            parts
                .extensions
                .get::<Role>()
                .copied()
                .unwrap_or(Role::Admin),
        ))
    }
}

/// Middleware around the whole router: on every path under `/v1`, routed or not, 401 without a known token and
/// 403 for a read-only token on a write; passes the role on to the handlers ([`Caller`]).
pub async fn require_token(
    State(tokens): State<Option<Tokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(tokens) = tokens else {
        return next.run(request).await;
    };
    // `/healthz`, `/readyz`, `/metrics` (and unknown paths outside the API) are open.
    let path = request.uri().path();
    if !(path == "/v1" || path.starts_with("/v1/")) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    let Some(presented) = presented else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs a token: send Authorization: Bearer TOKEN",
        )
        .into_response();
    };
    match tokens.role_of(presented.as_bytes()) {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not known to this server",
        )
        .into_response(),
        Some(Role::ReadOnly) if !is_read(request.method(), request.uri().path()) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token is read-only; changing state needs an admin token",
        )
        .into_response(),
        Some(role) => {
            request.extensions_mut().insert(role);
            next.run(request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lines_are_admin_and_read_only_is_marked() {
        let tokens = Tokens::parse(
            "# ops\n0123456789abcdef\n\nread-only  fedcba9876543210\nadmin 0000111122223333\n",
        )
        .unwrap();
        assert_eq!(tokens.role_of(b"0123456789abcdef"), Some(Role::Admin));
        assert_eq!(tokens.role_of(b"fedcba9876543210"), Some(Role::ReadOnly));
        assert_eq!(tokens.role_of(b"0000111122223333"), Some(Role::Admin));
        assert_eq!(tokens.role_of(b"0123456789abcde"), None);
        assert_eq!(tokens.role_of(b""), None);
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        assert!(Tokens::parse("").is_err());
        let err = Tokens::parse("short").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = Tokens::parse("0123456789abcdef\nwriter 0123456789abcdef").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
