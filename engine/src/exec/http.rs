//! The HTTP runner: one attempt of an [`HttpTarget`] as one request (crate feature `http`).

use std::error::Error as _;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use tracing::{debug, warn};

use super::tail::OutputTail;
use super::{AttemptResult, Egress, FireContext, timeout_reason};
use crate::job::HttpTarget;
use crate::run::{Outcome, RunRecord};

/// Runs an HTTP target once: sends `target.method` to `target.url` with `target.headers`, `target.body` and the
/// fire's headers (`Campanile-Fire-Id`, `Campanile-Job-Id`, `Campanile-Scheduled-At`, `Campanile-Attempt`,
/// `Campanile-Node-Id`, set last so that a job's headers cannot forge the fire's identity), and reads the
/// response body, of which the last `RunRecord::MAX_OUTPUT` bytes are kept.
///
/// - `Succeeded` if the status is in `target.expected_status`, or is any 2xx when that is empty; `Failed`
///   otherwise. `code` is the status.
/// - `TimedOut` if the whole exchange, body included, takes longer than `target.timeout` (reason `timeout 30s`),
///   or if the client's own timeout fires.
/// - `Failed` with a reason for a request that cannot be built or sent. Reasons never contain the URL, which
///   may carry credentials.
///
/// The request goes only where the node's [`Egress`] policy permits (checked on the URL, on what its host
/// resolves to, and on each redirect); redirects are followed only if `target.follow_redirects`. A denied
/// destination fails the run with a reason naming the rule, and nothing is sent.
///
/// The clients (connection pools, TLS roots, the policy) are the caller's: [`HttpClients`].
pub async fn run_http(
    clients: &HttpClients,
    target: &HttpTarget,
    ctx: &FireContext,
) -> AttemptResult {
    let client = if target.follow_redirects {
        &clients.redirects
    } else {
        &clients.plain
    };
    let checked = match reqwest::Url::parse(&target.url) {
        Ok(url) => clients.egress.check_destination(&url).await,
        Err(err) => Err(format!("url is not valid: {err}")),
    };
    if let Err(reason) = checked {
        warn!(fire = %ctx.fire, attempt = ctx.attempt, %reason, "http request not sent");
        return AttemptResult::not_started(reason);
    }
    let request = match build(client, target, ctx) {
        Ok(request) => request,
        Err(reason) => {
            warn!(fire = %ctx.fire, attempt = ctx.attempt, %reason, "http request not sent");
            return AttemptResult::not_started(reason);
        }
    };

    let mut status = None;
    let mut tail = OutputTail::new(RunRecord::MAX_OUTPUT);
    let exchange = async {
        let mut response = request.send().await?;
        status = Some(response.status());
        while let Some(chunk) = response.chunk().await? {
            tail.push(&chunk);
        }
        Ok::<(), reqwest::Error>(())
    };
    let done = tokio::time::timeout(target.timeout, exchange).await;
    let code = status.map(|status| i32::from(status.as_u16()));

    let (outcome, reason) = match done {
        Err(_elapsed) => (Outcome::TimedOut, Some(timeout_reason(target.timeout))),
        Ok(Err(err)) if err.is_timeout() => (Outcome::TimedOut, Some(describe(err))),
        Ok(Err(err)) => (Outcome::Failed, Some(describe(err))),
        Ok(Ok(())) => match status {
            Some(status) if expected(target, status) => (Outcome::Succeeded, None),
            Some(status) => (Outcome::Failed, Some(unexpected(target, status))),
            // `exchange` sets the status before it can end well.
            None => (Outcome::Failed, Some("no response".to_owned())),
        },
    };
    if outcome == Outcome::Succeeded {
        debug!(fire = %ctx.fire, attempt = ctx.attempt, code, body_bytes = tail.total(), "http target succeeded");
    } else {
        warn!(
            fire = %ctx.fire,
            attempt = ctx.attempt,
            outcome = outcome.as_str(),
            code,
            reason = reason.as_deref().unwrap_or_default(),
            "http target did not succeed"
        );
    }
    AttemptResult {
        outcome,
        code,
        output: tail.into_string(),
        reason,
    }
}

/// The HTTP clients of a node, both bound to its egress policy: one that follows no redirect, one that
/// follows up to 5, each checked.
#[derive(Debug, Clone)]
pub struct HttpClients {
    plain: reqwest::Client,
    redirects: reqwest::Client,
    egress: Egress,
}

impl HttpClients {
    /// Clients obeying `egress`.
    pub fn new(egress: Egress) -> Result<Self, String> {
        let build = |redirects: bool| {
            egress
                .client_builder(redirects)
                .build()
                .map_err(|e| format!("failed to build the HTTP client: {e}"))
        };
        Ok(Self {
            plain: build(false)?,
            redirects: build(true)?,
            egress: egress.clone(),
        })
    }
}

/// The request, or why it cannot be sent (naming the bad field).
fn build(
    client: &reqwest::Client,
    target: &HttpTarget,
    ctx: &FireContext,
) -> Result<reqwest::RequestBuilder, String> {
    let method = Method::from_bytes(target.method.as_bytes())
        .map_err(|_| format!("method {:?} is not a valid HTTP method", target.method))?;
    let url = reqwest::Url::parse(&target.url).map_err(|err| format!("url is not valid: {err}"))?;

    let mut headers = HeaderMap::new();
    for (name, value) in &target.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header {name:?} is not a valid header name"))?;
        let value = value
            .resolve()
            .map_err(|reason| format!("header {name:?}: {reason}"))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("header {name:?} has a value that is not valid in HTTP"))?;
        headers.append(header, value);
    }
    let fire_headers = [
        ("campanile-fire-id", ctx.fire.to_string()),
        ("campanile-job-id", ctx.fire.job.to_string()),
        ("campanile-scheduled-at", ctx.scheduled_at()),
        ("campanile-attempt", ctx.attempt.to_string()),
        ("campanile-node-id", ctx.node.to_string()),
    ];
    for (name, value) in fire_headers {
        // Ids are `[A-Za-z0-9._-]`, the rest digits and RFC 3339: always valid header values.
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("header {name:?} cannot carry {value:?}"))?;
        headers.insert(HeaderName::from_static(name), value);
    }

    let mut request = client.request(method, url).headers(headers);
    if let Some(body) = &target.body {
        request = request.body(body.clone());
    }
    Ok(request)
}

/// Whether `status` counts as success for `target`.
fn expected(target: &HttpTarget, status: StatusCode) -> bool {
    if target.expected_status.is_empty() {
        status.is_success()
    } else {
        target.expected_status.contains(&status.as_u16())
    }
}

/// The reason for a status that does not count as success: `unexpected status 500 (expected 2xx)`.
fn unexpected(target: &HttpTarget, status: StatusCode) -> String {
    let expected = if target.expected_status.is_empty() {
        "2xx".to_owned()
    } else {
        let list: Vec<String> = target.expected_status.iter().map(u16::to_string).collect();
        format!("one of {}", list.join(", "))
    };
    format!(
        "unexpected status {} (expected {expected})",
        status.as_u16()
    )
}

/// A reqwest error with its causes (`error sending request: client error (Connect): tcp connect error:
/// Connection refused (os error 111)`), without the URL.
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
