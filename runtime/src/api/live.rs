//! What the console watches live: `GET /v1/runs/stream` (server-sent events of the run records this node
//! stores, from the engine's run feed) and `GET /v1/stats` (per-minute counts over the last hour, from a ring
//! fed by the same feed).
//!
//! Both are bounded whatever clients do: the ring holds [`MINUTES`] fixed-size buckets, each stream is one
//! subscription to the engine's bounded broadcast (a stream that falls behind skips ahead and says so in a
//! `lagged` event), at most [`MAX_STREAMS`] streams are open at once (503 beyond), and each closes after
//! `seconds` (at most [`MAX_STREAM_SECONDS`]; `EventSource`-style clients reconnect). Both routes need a token
//! like every `/v1` route.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use campanile::clock::Clock;
use campanile::{Outcome, RunRecord, Scheduler};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, broadcast};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::body::Params;
use super::error::{ApiError, ErrorBody};

/// Minutes the stats ring keeps.
pub const MINUTES: usize = 60;

/// Most run streams open at once on one node.
pub const MAX_STREAMS: usize = 32;

/// Longest a run stream stays open.
pub const MAX_STREAM_SECONDS: u64 = 25;

/// Upper bounds (ms) of the lateness histogram's buckets; the last bucket takes everything above.
const LATENESS_BOUNDS: [i64; 15] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
];

/// One minute of the ring.
#[derive(Debug, Clone, Default)]
struct Bucket {
    minute: i64,
    fires: u64,
    failures: u64,
    skipped: u64,
    misfires: u64,
    in_doubt: u64,
    lateness: [u64; LATENESS_BOUNDS.len() + 1],
}

/// The shared live state: the stats ring, the stream permits, and how other nodes' streams are read.
#[derive(Clone)]
pub struct Live {
    ring: Arc<Mutex<Vec<Bucket>>>,
    streams: Arc<Semaphore>,
    clock: Arc<dyn Clock>,
    peers: reqwest::Client,
    peer_scheme: &'static str,
}

impl Live {
    /// An empty ring, fed by nothing (for tests and embedders that feed it with [`Live::record`]).
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            ring: Arc::new(Mutex::new(vec![Bucket::default(); MINUTES])),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            clock,
            peers: reqwest::Client::builder()
                .connect_timeout(super::fan_in::CONNECT_TIMEOUT)
                .build()
                .unwrap_or_default(),
            peer_scheme: "http",
        }
    }

    /// Reads other nodes' streams over HTTPS (for a cluster whose API is served with TLS; their
    /// certificates must be trusted by the system's roots).
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.peer_scheme = if tls { "https" } else { "http" };
        self
    }

    /// `http` or `https`: how other nodes' streams are read.
    pub fn peer_scheme(&self) -> &'static str {
        self.peer_scheme
    }

    /// The client that reads other nodes' streams.
    pub fn peer_client(&self) -> &reqwest::Client {
        &self.peers
    }

    /// A ring fed by `scheduler`'s run feed, from a task that ends with the feed.
    pub fn start(scheduler: &Scheduler, clock: Arc<dyn Clock>) -> Self {
        let live = Self::new(clock);
        let mut feed = scheduler.subscribe_runs();
        let fed = live.clone();
        tokio::spawn(async move {
            loop {
                match feed.recv().await {
                    Ok(record) => fed.record(&record),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "the console's stats skipped run records")
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        live
    }

    /// Counts one stored record in the current minute.
    pub fn record(&self, record: &RunRecord) {
        let minute = self.clock.now_ms().div_euclid(60_000);
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut ring[usize::try_from(minute.rem_euclid(MINUTES as i64)).unwrap_or(0)];
        if slot.minute != minute {
            *slot = Bucket {
                minute,
                ..Bucket::default()
            };
        }
        let count = u64::from(record.count.max(1));
        match record.outcome {
            Outcome::Failed | Outcome::TimedOut => slot.failures += 1,
            Outcome::Skipped => slot.skipped += 1,
            Outcome::Misfired => slot.misfires += count,
            Outcome::InDoubt => slot.in_doubt += 1,
            _ => {}
        }
        if let Some(started) = record.started_ms {
            slot.fires += 1;
            if !record.manual {
                let late = (started - record.scheduled_ms).max(0);
                let i = LATENESS_BOUNDS
                    .iter()
                    .position(|b| late <= *b)
                    .unwrap_or(LATENESS_BOUNDS.len());
                slot.lateness[i] += 1;
            }
        }
    }

    /// The last [`MINUTES`] minutes, oldest first, ending with the current one.
    pub fn stats(&self) -> Stats {
        let now = self.clock.now_ms().div_euclid(60_000);
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let minutes = (now - MINUTES as i64 + 1..=now)
            .map(|minute| {
                let slot = &ring[usize::try_from(minute.rem_euclid(MINUTES as i64)).unwrap_or(0)];
                let empty = Bucket::default();
                let b = if slot.minute == minute { slot } else { &empty };
                MinuteStats {
                    start_ms: minute * 60_000,
                    fires: b.fires,
                    failures: b.failures,
                    skipped: b.skipped,
                    misfires: b.misfires,
                    in_doubt: b.in_doubt,
                    lateness_p50_ms: quantile(&b.lateness, 0.5),
                    lateness_p99_ms: quantile(&b.lateness, 0.99),
                    lateness_histogram: b.lateness.to_vec(),
                }
            })
            .collect();
        Stats {
            minutes,
            lateness_bounds_ms: LATENESS_BOUNDS.to_vec(),
            nodes: Vec::new(),
            unreachable: Vec::new(),
        }
    }
}

impl Stats {
    /// Adds another node's minutes into these (same minute starts; a minute this node has not got is left
    /// out), percentiles recomputed from the summed histograms.
    pub fn add(&mut self, other: &Stats) {
        for minute in &mut self.minutes {
            let Some(theirs) = other.minutes.iter().find(|m| m.start_ms == minute.start_ms) else {
                continue;
            };
            minute.fires += theirs.fires;
            minute.failures += theirs.failures;
            minute.skipped += theirs.skipped;
            minute.misfires += theirs.misfires;
            minute.in_doubt += theirs.in_doubt;
            for (mine, n) in minute
                .lateness_histogram
                .iter_mut()
                .zip(&theirs.lateness_histogram)
            {
                *mine += n;
            }
            minute.lateness_p50_ms = quantile(&minute.lateness_histogram, 0.5);
            minute.lateness_p99_ms = quantile(&minute.lateness_histogram, 0.99);
        }
    }
}

/// The upper bound of the bucket holding quantile `q` (`None` without samples; above the last bound, the
/// last bound).
fn quantile(histogram: &[u64], q: f64) -> Option<i64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(LATENESS_BOUNDS[i.min(LATENESS_BOUNDS.len() - 1)]);
        }
    }
    LATENESS_BOUNDS.last().copied()
}

/// Per-minute counts of the run records the cluster's nodes (or this node) stored in the last hour.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// 60 minutes, oldest first; the last is the current (partial) minute.
    pub minutes: Vec<MinuteStats>,
    /// Upper bounds (ms) of the lateness histogram's buckets; one more bucket takes everything above.
    pub lateness_bounds_ms: Vec<i64>,
    /// The nodes counted (empty for `scope=node`: this node only).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Live members whose counts could not be read, and why.
    #[serde(default)]
    pub unreachable: Vec<super::fan_in::UnreachableNode>,
}

/// One minute.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MinuteStats {
    /// Start of the minute, Unix ms.
    pub start_ms: i64,
    /// Runs started (any outcome).
    pub fires: u64,
    /// Runs that failed or timed out.
    pub failures: u64,
    /// Instants skipped (overlap, paused).
    pub skipped: u64,
    /// Instants misfired.
    pub misfires: u64,
    /// Fires found in doubt after an owner vanished.
    pub in_doubt: u64,
    /// Median lateness of scheduled starts (start − instant), as the upper bound of a histogram bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness_p50_ms: Option<i64>,
    /// 99th percentile lateness, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness_p99_ms: Option<i64>,
    /// Scheduled starts per lateness bucket (see `lateness_bounds_ms`).
    #[serde(default)]
    pub lateness_histogram: Vec<u64>,
}

/// `GET /v1/stats` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// `cluster` (default): the counts of every live member, added up; `node`: this node's only.
    #[param(value_type = Option<String>, pattern = r"^(|cluster|node)$")]
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub scope: Option<String>,
}

/// Fires, failures, misfires, in-doubt counts and lateness per minute over the last hour, as the cluster's
/// nodes stored them: each node counts its own runs, and this one adds up every live member's (read from
/// their `scope=node` counts with the caller's token; `unreachable` names those that did not answer).
#[utoipa::path(get, path = "/v1/stats", tag = "cluster", params(StatsParams),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody)))]
pub async fn stats(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Params(params): Params<StatsParams>,
) -> Result<Json<Stats>, ApiError> {
    let cluster = scope(params.scope.as_deref())?;
    let mut stats = app.live.stats();
    if cluster {
        let authorization = headers.get(axum::http::header::AUTHORIZATION).cloned();
        let (others, unreachable) = super::fan_in::peer_stats(&app, authorization).await;
        stats.nodes.push(app.scheduler.node_id().to_string());
        for (node, theirs) in &others {
            stats.add(theirs);
            stats.nodes.push(node.clone());
        }
        stats.nodes.sort();
        stats.unreachable = unreachable;
    }
    Ok(Json(stats))
}

/// Whether `scope` asks for the cluster (the default) or this node.
pub(super) fn scope(scope: Option<&str>) -> Result<bool, ApiError> {
    match scope {
        None | Some("cluster") => Ok(true),
        Some("node") => Ok(false),
        Some(other) => Err(ApiError::invalid(
            "scope",
            format!("scope: {other:?} must be `cluster` or `node`"),
        )),
    }
}

/// One event of `GET /v1/runs/stream`, as a server-sent-events client reads it (the document's schema for
/// the stream describes each event, as OpenAPI 3.1 tools such as schemathesis read it).
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation only: the stream is written by axum's `Sse`.
pub struct StreamEventDoc {
    /// `run` (data: a run record's JSON), `lagged` (data: how many records the stream skipped) or
    /// `unreachable` (data: `{"node", "error"}` of a member whose stream could not be read).
    #[schema(pattern = r"^(run|lagged|unreachable)$")]
    event: String,
    /// The event's data.
    data: String,
}

/// `GET /v1/runs/stream` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Only records with this outcome: succeeded, failed, timed_out, skipped, misfired, in_doubt.
    #[param(value_type = Option<String>, pattern = r"^(|succeeded|failed|timed_out|skipped|misfired|in_doubt)$")]
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub outcome: Option<String>,
    /// Close the stream after this many seconds, 1 to 25 (default 25); clients reconnect.
    #[param(minimum = 1, maximum = 25)]
    pub seconds: Option<u64>,
    /// `cluster` (default): this node's records and every other live member's; `node`: this node's only.
    #[param(value_type = Option<String>, pattern = r"^(|cluster|node)$")]
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub scope: Option<String>,
}

/// Run records as the cluster's nodes store them, as server-sent events: one `run` event per record (its data
/// is the record's JSON, secrets redacted for read-only tokens), a `lagged` event when the stream fell behind
/// and skipped records, an `unreachable` event (`{"node", "error"}`) for a member whose stream cannot be
/// read, and a comment every 10 s to keep connections open. Closes after `seconds`. With `scope=node`, only
/// this node's records (what the other nodes are asked for).
#[utoipa::path(get, path = "/v1/runs/stream", tag = "jobs", params(StreamParams),
    responses((status = 200, content_type = "text/event-stream", body = StreamEventDoc),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody, description = "Too many streams are open")))]
pub async fn stream(
    State(app): State<AppState>,
    caller: super::auth::Caller,
    headers: axum::http::HeaderMap,
    Params(params): Params<StreamParams>,
) -> Result<Response, ApiError> {
    let cluster = scope(params.scope.as_deref())?;
    let wanted: Option<Outcome> = params
        .outcome
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(ApiError::from)?;
    let seconds = params.seconds.unwrap_or(MAX_STREAM_SECONDS);
    if !(1..=MAX_STREAM_SECONDS).contains(&seconds) {
        return Err(ApiError::invalid(
            "seconds",
            format!("seconds: {seconds} must be 1 to {MAX_STREAM_SECONDS}"),
        ));
    }
    let permit = app.live.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{MAX_STREAMS} run streams are open on this node already; retry later"),
        )
    })?;
    let feed = app.scheduler.subscribe_runs();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let peers = if cluster {
        let request = super::fan_in::PeerRequest {
            authorization: headers.get(axum::http::header::AUTHORIZATION).cloned(),
            outcome: params.outcome.clone(),
            seconds,
        };
        futures::StreamExt::left_stream(super::fan_in::peers(&app, request).await)
    } else {
        futures::StreamExt::right_stream(futures::stream::empty())
    };
    let local = events(app, caller, feed, wanted, deadline, permit);
    // A peer that keeps its stream open past its own `seconds` does not keep this one open.
    let peers = futures::StreamExt::take_until(
        peers,
        tokio::time::sleep_until(deadline + Duration::from_secs(2)),
    );
    let peers = futures::StreamExt::map(peers, Ok::<Event, Infallible>);
    let merged = futures::stream::select(local, peers);
    Ok(Sse::new(merged)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response())
}

fn events(
    app: AppState,
    caller: super::auth::Caller,
    feed: broadcast::Receiver<RunRecord>,
    wanted: Option<Outcome>,
    deadline: tokio::time::Instant,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((feed, permit), move |(mut feed, permit)| {
        let app = app.clone();
        async move {
            loop {
                let next = tokio::time::timeout_at(deadline, feed.recv()).await;
                let event = match next {
                    Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    Ok(Err(broadcast::error::RecvError::Lagged(skipped))) => {
                        Event::default().event("lagged").data(skipped.to_string())
                    }
                    Ok(Ok(record)) => {
                        if wanted.is_some_and(|o| record.outcome != o) {
                            continue;
                        }
                        let mut runs = vec![record];
                        // Only output can be secret in a record: without any, no job is read.
                        if !caller.sees_secrets() && !runs[0].output.is_empty() {
                            match app.scheduler.get(&runs[0].job).await {
                                Ok(Some(job)) => super::redact::runs(caller, &job, &mut runs),
                                // The job is gone or unreadable: whether its output is secret cannot
                                // be told, so a reader does not see it.
                                _ => runs[0].output = super::redact::REDACTED.to_owned(),
                            }
                        }
                        match serde_json::to_string(&runs[0]) {
                            Ok(json) => Event::default().event("run").data(json),
                            Err(_) => continue,
                        }
                    }
                };
                return Some((Ok(event), (feed, permit)));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use campanile::coordinator::NodeId;
    use campanile::{FireId, JobId};

    use super::*;

    /// A clock the test sets.
    #[derive(Default)]
    struct Fixed(AtomicI64);

    impl Clock for Fixed {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn record(scheduled_ms: i64, late_ms: i64, outcome: Outcome) -> RunRecord {
        let job = JobId::new("j").unwrap();
        let mut record = RunRecord::new(
            &FireId::new(job, scheduled_ms),
            &NodeId::new("n").unwrap(),
            outcome,
        );
        if matches!(outcome, Outcome::Succeeded | Outcome::Failed) {
            record.started_ms = Some(scheduled_ms + late_ms);
            record.ended_ms = Some(scheduled_ms + late_ms + 10);
        }
        record
    }

    #[test]
    fn minutes_count_outcomes_and_lateness_and_forget_after_an_hour() {
        let clock = Arc::new(Fixed::default());
        // A whole minute (1_800_000_000_000 is one).
        let start = 1_800_000_000_000;
        clock.0.store(start + 5_000, Ordering::SeqCst);
        let live = Live::new(clock.clone());
        for late in [3, 4, 40, 40, 40, 40, 40, 40, 40, 900] {
            live.record(&record(start, late, Outcome::Succeeded));
        }
        live.record(&record(start, 1, Outcome::Failed));
        let mut misfired = record(start, 0, Outcome::Misfired);
        misfired.count = 3;
        live.record(&misfired);
        live.record(&record(start, 0, Outcome::InDoubt));

        let stats = live.stats();
        assert_eq!(stats.minutes.len(), MINUTES);
        let now = stats.minutes.last().unwrap();
        assert_eq!(now.start_ms, start);
        assert_eq!((now.fires, now.failures), (11, 1));
        assert_eq!((now.misfires, now.in_doubt), (3, 1));
        // 11 samples: the 6th is 40 ms (bucket ≤ 50), the 11th 900 ms (bucket ≤ 1000).
        assert_eq!(now.lateness_p50_ms, Some(50));
        assert_eq!(now.lateness_p99_ms, Some(1_000));
        assert!(stats.minutes[..MINUTES - 1].iter().all(|m| m.fires == 0));

        // An hour later the minute has left the window, and its slot counts the new minute from zero.
        clock.0.store(start + 3_600_000, Ordering::SeqCst);
        live.record(&record(start + 3_600_000, 2, Outcome::Succeeded));
        let stats = live.stats();
        assert_eq!(stats.minutes[0].start_ms, start + 60_000);
        assert_eq!(stats.minutes.iter().map(|m| m.fires).sum::<u64>(), 1);
        assert_eq!(stats.minutes.last().unwrap().lateness_p50_ms, Some(2));
    }

    #[test]
    fn nodes_add_up_with_percentiles_from_the_summed_histograms() {
        let start = 1_790_000_040_000; // a whole minute
        let clock = Arc::new(Fixed::default());
        clock.0.store(start + 1_000, Ordering::SeqCst);
        let (a, b) = (Live::new(clock.clone()), Live::new(clock.clone()));
        // a: nine fires 1 ms late; b: one fire 900 ms late and one failure.
        for _ in 0..9 {
            a.record(&record(start, 1, Outcome::Succeeded));
        }
        b.record(&record(start, 900, Outcome::Succeeded));
        b.record(&record(start, 1, Outcome::Failed));
        let mut both = a.stats();
        both.add(&b.stats());
        let now = both.minutes.last().unwrap();
        assert_eq!((now.fires, now.failures), (11, 1));
        assert_eq!(now.lateness_p50_ms, Some(1));
        // The 99th percentile of the eleven is b's 900 ms fire (bucket ≤ 1000), which neither node's own
        // p99 alone would give for the pair.
        assert_eq!(now.lateness_p99_ms, Some(1_000));
        assert_eq!(a.stats().minutes.last().unwrap().lateness_p99_ms, Some(1));
    }
}
