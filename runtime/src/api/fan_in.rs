//! The cluster-wide run stream: `GET /v1/runs/stream` (scope `cluster`, the default) merges this node's run
//! feed with the streams of every other live member, read from their own `/v1/runs/stream?scope=node` at the
//! address each advertises in the coordinator, with the caller's `Authorization` header (so each node applies
//! its own auth and redaction, as if the caller had asked it).
//!
//! Bounded like the local stream: one connection per other member per stream (each counts against that
//! member's own stream limit), a peer's event larger than [`MAX_EVENT_BYTES`] ends that peer's part, the
//! merged events pass through a bounded queue (a peer that outruns the client loses events, and the client
//! gets a `lagged` event saying how many), and every peer connection is closed when the client's stream ends.
//! A member that cannot be reached is reported once, as an `unreachable` event naming it, and the stream goes
//! on with the others.
//!
//! The cluster-wide reads (`GET /v1/stats`, `GET /v1/workers`) ask every other live member for its
//! `scope=node` answer the same way ([`peer_reads`]), and name the members that did not answer.

use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::sse::Event;
use futures::Stream;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::AppState;

/// Largest single event read from a peer.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Events waiting between the peers and the client.
const QUEUE: usize = 1024;

/// What a fanned-in stream asks every peer for.
pub struct PeerRequest {
    /// The caller's `Authorization` header, passed on as is.
    pub authorization: Option<HeaderValue>,
    /// The outcome filter, passed on.
    pub outcome: Option<String>,
    /// How long the peers' streams stay open.
    pub seconds: u64,
}

/// An `unreachable` event's data.
#[derive(Debug, Serialize)]
struct Unreachable<'a> {
    node: &'a str,
    error: String,
}

/// A member whose counts could not be read.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct UnreachableNode {
    /// Its id.
    pub node: String,
    /// Why.
    pub error: String,
}

/// The live members other than this node.
async fn others(
    app: &AppState,
) -> Result<Vec<campanile::coordinator::Member>, campanile::coordinator::CoordError> {
    let own = app.scheduler.node_id();
    let mut members = app.scheduler.coordinator().members().await?.members;
    members.retain(|m| &m.node.id != own);
    Ok(members)
}

/// How long reading one member's counts may take.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// Every other live member's `GET /v1/stats?scope=node`, read at once (each within [`STATS_TIMEOUT`]), and
/// those that could not be read.
pub async fn peer_stats(
    app: &AppState,
    authorization: Option<HeaderValue>,
) -> (Vec<(String, super::live::Stats)>, Vec<UnreachableNode>) {
    peer_reads(app, authorization, "/v1/stats?scope=node").await
}

/// Every other live member's answer to `GET {path}` (a `scope=node` read), read at once (each within
/// [`STATS_TIMEOUT`]) at the address it advertises with the caller's `Authorization`, and the members that
/// could not be read, with why.
pub async fn peer_reads<T: serde::de::DeserializeOwned>(
    app: &AppState,
    authorization: Option<HeaderValue>,
    path: &str,
) -> (Vec<(String, T)>, Vec<UnreachableNode>) {
    let members = match others(app).await {
        Ok(members) => members,
        Err(error) => {
            return (
                Vec::new(),
                vec![UnreachableNode {
                    node: String::new(),
                    error: format!("members unavailable: {error}"),
                }],
            );
        }
    };
    let reads = members.into_iter().map(|member| {
        let client = app.live.peer_client().clone();
        let scheme = app.live.peer_scheme();
        let authorization = authorization.clone();
        async move {
            let node = member.node.id.to_string();
            let Some(address) = member.node.address.clone() else {
                return Err(UnreachableNode {
                    node,
                    error: "it advertises no address".to_owned(),
                });
            };
            let mut request = client
                .get(format!("{scheme}://{address}{path}"))
                .timeout(STATS_TIMEOUT);
            if let Some(authorization) = authorization {
                request = request.header(reqwest::header::AUTHORIZATION, authorization);
            }
            let read = async {
                let response = request.send().await.map_err(|e| e.to_string())?;
                if !response.status().is_success() {
                    return Err(format!("it answered {}", response.status()));
                }
                response.json::<T>().await.map_err(|e| e.to_string())
            };
            match read.await {
                Ok(answer) => Ok((node, answer)),
                Err(error) => Err(UnreachableNode { node, error }),
            }
        }
    });
    let mut read = Vec::new();
    let mut unreachable = Vec::new();
    for result in futures::future::join_all(reads).await {
        match result {
            Ok(stats) => read.push(stats),
            Err(node) => unreachable.push(node),
        }
    }
    (read, unreachable)
}

/// One message from a peer task.
enum Peer {
    Event(Event),
    Dropped(u64),
}

/// Aborts the peer tasks when the client's stream is dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The events of every other live member's run stream, merged; empty when this node is alone or the
/// coordinator cannot list the members (the local part of the stream goes on regardless).
pub async fn peers(app: &AppState, request: PeerRequest) -> impl Stream<Item = Event> + use<> {
    let members = others(app).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "the run stream lists no other node: members unavailable");
        Vec::new()
    });
    let (tx, rx) = mpsc::channel::<Peer>(QUEUE);
    let mut tasks = Vec::new();
    for member in members {
        let node = member.node.id.to_string();
        let Some(address) = member.node.address.clone() else {
            let _ = tx.try_send(Peer::Event(unreachable(&node, "it advertises no address")));
            continue;
        };
        let url = format!(
            "{}://{address}/v1/runs/stream?scope=node&seconds={}{}",
            app.live.peer_scheme(),
            request.seconds,
            request
                .outcome
                .as_deref()
                .map(|o| format!("&outcome={o}"))
                .unwrap_or_default()
        );
        let client = app.live.peer_client().clone();
        let authorization = request.authorization.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(error) = relay(&client, &url, authorization, &tx).await {
                let _ = tx.try_send(Peer::Event(unreachable(&node, &error)));
            }
        }));
    }
    drop(tx);
    futures::stream::unfold((rx, Tasks(tasks)), |(mut rx, tasks)| async move {
        let event = match rx.recv().await? {
            Peer::Event(event) => event,
            Peer::Dropped(n) => Event::default().event("lagged").data(n.to_string()),
        };
        Some((event, (rx, tasks)))
    })
}

fn unreachable(node: &str, error: &str) -> Event {
    let data = serde_json::to_string(&Unreachable {
        node,
        error: error.to_owned(),
    })
    .unwrap_or_default();
    Event::default().event("unreachable").data(data)
}

/// Reads one peer's stream into `tx` until it ends.
async fn relay(
    client: &reqwest::Client,
    url: &str,
    authorization: Option<HeaderValue>,
    tx: &mpsc::Sender<Peer>,
) -> Result<(), String> {
    let mut request = client.get(url);
    if let Some(authorization) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, authorization);
    }
    let mut response = request.send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("it answered {}", response.status()));
    }
    let mut parser = SseParser::default();
    let mut dropped = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        for (name, data) in parser.feed(&chunk)? {
            let event = match name.as_str() {
                "run" => Event::default().event("run").data(data),
                "lagged" => Event::default().event("lagged").data(data),
                _ => continue,
            };
            if dropped > 0 && tx.try_send(Peer::Dropped(dropped)).is_ok() {
                dropped = 0;
            }
            match tx.try_send(Peer::Event(event)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
            }
        }
    }
    Ok(())
}

/// A minimal reader of `text/event-stream`: `event:` and `data:` fields, events separated by a blank line,
/// comments ignored.
#[derive(Debug, Default)]
struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    /// Takes a chunk; returns the events it completes as `(name, data)` (`message` when unnamed).
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<(String, String)>, String> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = find_blank_line(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end.0).collect();
            self.buffer.drain(..end.1 - end.0);
            let text = String::from_utf8_lossy(&block);
            let (mut name, mut data) = ("message".to_owned(), Vec::new());
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim_start().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                }
            }
            if !data.is_empty() {
                events.push((name, data.join("\n")));
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(format!("an event over {MAX_EVENT_BYTES} bytes"));
        }
        Ok(events)
    }
}

/// The first blank line: `(where the block ends, where the next begins)`.
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// How long connecting to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_read_whole() {
        let mut parser = SseParser::default();
        assert!(
            parser
                .feed(b": keep-alive\n\nevent: run\nda")
                .unwrap()
                .is_empty()
        );
        let events = parser
            .feed(b"ta: {\"a\":1}\n\nevent: lagged\r\ndata: 3\r\n\r\n")
            .unwrap();
        assert_eq!(
            events,
            [
                ("run".to_owned(), "{\"a\":1}".to_owned()),
                ("lagged".to_owned(), "3".to_owned())
            ]
        );
    }

    #[test]
    fn an_event_that_never_ends_is_refused_not_buffered() {
        let mut parser = SseParser::default();
        let chunk = vec![b'x'; 64 * 1024];
        let mut error = None;
        for _ in 0..(MAX_EVENT_BYTES / chunk.len() + 2) {
            if let Err(e) = parser.feed(&chunk) {
                error = Some(e);
                break;
            }
        }
        assert!(error.is_some_and(|e| e.contains("bytes")));
        assert!(parser.buffer.len() <= MAX_EVENT_BYTES + chunk.len());
    }
}
