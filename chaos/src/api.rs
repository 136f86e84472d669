//! The cluster's HTTP API as the harness uses it: any live node answers; a node that does not (killed,
//! frozen) is skipped for the next.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::bail;
use serde_json::Value;

/// A client of every node.
pub struct Api {
    http: reqwest::Client,
    urls: Vec<String>,
    next: AtomicUsize,
}

impl Api {
    /// A client of the nodes at `urls`, each request bounded by `timeout`.
    pub fn new(urls: Vec<String>, timeout: Duration) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_millis(500))
            .build()?;
        Ok(Api {
            http,
            urls,
            next: AtomicUsize::new(0),
        })
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends the request to one node after the other until one answers below 500; returns the status and
    /// the JSON body (`Null` when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.urls.len() {
            let url = &self.urls[(start + i) % self.urls.len()];
            let mut request = self.http.request(method.clone(), format!("{url}{path}"));
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(body)?);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    if status >= 500 {
                        last = format!("{url}: {status} {text}");
                        continue;
                    }
                    let value = if text.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    };
                    return Ok((status, value));
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        bail!("{method} {path}: no node answered (last: {last})")
    }
}
