//! The HTTP API: JSON under `/v1`, the OpenAPI document at `/v1/openapi.json` (generated from the handlers'
//! `#[utoipa::path]` annotations and the types, by the same `routes!` calls that build the router, so the
//! two cannot list different routes), and the open operational endpoints `/healthz`, `/readyz`, `/metrics`.
//!
//! Every error is `{"error": {"code", "message", "field"?}}` (see [`error`]); bad input is a 4xx naming the
//! field, never a 500. Requests are bounded before anything else looks at them ([`Limits`]): the request
//! target (414), the header fields (431), the body (`max_body_bytes`, 413) and pauses in it (408).
//!
//! Nothing a client sends grows memory: the request metric's labels come from a fixed set (the matched
//! route's template or `unmatched`, a known method or `other`, the status).

pub mod auth;
pub mod body;
pub mod check;
pub mod cluster;
pub mod error;
pub mod fan_in;
pub mod jobs;
pub mod live;
pub mod ops;
pub mod rebalance;
pub mod redact;
pub mod runs;
pub mod schedules;
pub mod schema;
pub mod workers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use campanile::Scheduler;
use campanile::clock::Clock;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::auth::Tokens;
use self::error::ApiError;
use crate::notify::Notifier;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The node.
    pub scheduler: Scheduler,
    /// Wall time (the engine's clock type, so the runtime reads time the same way).
    pub clock: Arc<dyn Clock>,
    /// Set once SIGTERM/SIGINT arrived: `/readyz` then answers 503.
    pub shutting_down: Arc<AtomicBool>,
    /// The Prometheus recorder, when one is installed.
    pub metrics: Option<PrometheusHandle>,
    /// Webhook notifications, when configured.
    pub notifier: Option<Notifier>,
    /// The OpenAPI document, serialized once.
    pub openapi: Arc<OnceLock<String>>,
    /// The run stream's permits and the per-minute stats ring.
    pub live: live::Live,
    /// The history store the runs API reads, when it holds the whole cluster's history; `None` reads the
    /// coordinator.
    pub history: Option<Arc<dyn campanile::history::HistoryStore>>,
}

impl AppState {
    /// Whether the node is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// The document's root: title, version, auth scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Campanile",
        description = "A distributed cron scheduler's HTTP API. Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "Jobs and their runs"),
        (name = "cluster", description = "Members, leadership, assignment and rebalance plans"),
        (name = "console", description = "The web console's page and assets (no token needed: the page asks for one)"),
        (name = "ops", description = "Health, readiness, metrics and this document (no token needed except for the document)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// What one request may be (from `max_body_bytes` and `[http]`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest body (413 beyond).
    pub max_body_bytes: usize,
    /// Largest body of `POST /v1/jobs:batch` (413 beyond).
    pub max_batch_body_bytes: usize,
    /// Longest request target (414 beyond).
    pub max_uri_bytes: usize,
    /// Most bytes of header fields, names and values (431 beyond).
    pub max_header_bytes: usize,
    /// Longest pause while the body is received (408 after it).
    pub body_read_timeout: std::time::Duration,
}

impl Limits {
    /// The configured limits.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            max_body_bytes: config.max_body_bytes,
            max_batch_body_bytes: config.http.max_batch_body_bytes,
            max_uri_bytes: config.http.max_uri_bytes,
            max_header_bytes: config.http.max_header_bytes,
            body_read_timeout: config.http.body_read_timeout,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_config(&crate::config::Config::default())
    }
}

/// The router and its OpenAPI document, before state is attached.
pub fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    routes_with(&Limits::default())
}

/// The router and its OpenAPI document, before state is attached; the batch route reads bodies up to
/// `limits.max_batch_body_bytes` (every other route up to the router's `max_body_bytes`).
pub fn routes_with(limits: &Limits) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    // A literal `:batch` after `jobs` is a segment of its own (`jobs:batch`) to the router, and a job id
    // cannot contain `:`, so it never collides with `/v1/jobs/{id}`.
    let batch = OpenApiRouter::<AppState>::new()
        .routes(routes!(jobs::create_batch))
        .layer(DefaultBodyLimit::max(limits.max_batch_body_bytes));
    let v1 = OpenApiRouter::<AppState>::new()
        .merge(batch)
        .routes(routes!(jobs::list_jobs, jobs::create_job))
        .routes(routes!(
            jobs::get_job,
            jobs::replace_job,
            jobs::patch_job,
            jobs::delete_job
        ))
        .routes(routes!(jobs::actions::pause_job))
        .routes(routes!(jobs::actions::resume_job))
        .routes(routes!(jobs::actions::trigger_job))
        .routes(routes!(jobs::actions::clone_job))
        .routes(routes!(jobs::actions::backfill_job))
        .routes(routes!(jobs::actions::next_fires))
        .routes(routes!(runs::job_runs))
        .routes(routes!(runs::all_runs))
        .routes(routes!(check::validate_job))
        .routes(routes!(live::stream))
        .routes(routes!(live::stats))
        .routes(routes!(schedules::preview_route))
        .routes(routes!(cluster::cluster))
        .routes(routes!(workers::list_workers))
        .routes(routes!(rebalance::plan_route))
        .routes(routes!(ops::openapi))
        .routes(routes!(ops::me));
    let open = OpenApiRouter::<AppState>::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(crate::console::index))
        .routes(routes!(crate::console::asset));
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1)
        .merge(open)
        .split_for_parts();
    utoipa::Modify::modify(&Contract, &mut doc);
    (router, doc)
}

/// What the per-route annotations cannot say, added to the assembled document so it describes what the
/// server does: every `/v1` operation may answer 401 (no or an unknown token) and, when it changes state,
/// 403 (a read-only token). (See also [`merge_all_of_objects`].)
struct Contract;

impl utoipa::Modify for Contract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let operations = [
                (&mut item.get, false),
                (&mut item.post, !auth::is_read(&Method::POST, path)),
                (&mut item.put, true),
                (&mut item.patch, true),
                (&mut item.delete, true),
            ];
            for (operation, writes) in operations {
                let Some(operation) = operation else { continue };
                let responses = &mut operation.responses.responses;
                responses
                    .entry("401".to_owned())
                    .or_insert_with(|| error("No token, or one this server does not know"));
                if writes {
                    responses.entry("403".to_owned()).or_insert_with(|| {
                        error("A read-only token: changing state needs an admin token")
                    });
                }
            }
        }
    }
}

/// The whole service: routes, document, limits, JSON errors for everything, request metrics.
pub fn router(state: AppState, tokens: Option<Tokens>, limits: &Limits) -> Router {
    let (router, mut doc) = routes_with(limits);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let json = serde_json::to_value(&doc)
        .map(|mut value| {
            merge_all_of_objects(&mut value);
            optional_members_take_null(&mut value);
            value.to_string()
        })
        .unwrap_or_else(|e| {
            serde_json::json!({"error": format!("failed to serialize the document: {e}")})
                .to_string()
        });
    let _ = state.openapi.set(json);
    router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Around routing and the fallbacks: an unknown /v1 path or method is 401 without a token too, so
        // that clients without one cannot map the API by 404 against 405.
        .layer(middleware::from_fn_with_state(tokens, auth::require_token))
        .layer(middleware::from_fn(json_errors))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(
            (limits.max_uri_bytes, limits.max_header_bytes),
            bounded_head,
        ))
        .with_state(state)
}

/// Replaces every `allOf` of object schemas (a flattened struct like `JobSpec` in `Job`, `NewJob` and
/// `JobReplacement`; a tagged enum's variant like `CommandTarget` plus its `type` in `Target`) by the one object
/// it stands for: the members' properties and required names together, closed (`additionalProperties: false`)
/// when a member was, as the server's types are (`deny_unknown_fields`).
///
/// Left as an `allOf`, a closed member would forbid the other members' properties, so no real value could
/// validate; opened, the document would promise that unknown members are accepted, which the server refuses
/// with a 400 naming the field. Merged, it says exactly what the server reads and writes.
pub fn merge_all_of_objects(doc: &mut serde_json::Value) {
    use serde_json::{Map, Value};

    fn merge(schema: &mut Value, components: &Map<String, Value>) {
        match schema {
            Value::Object(map) => {
                map.values_mut().for_each(|v| merge(v, components));
                let Some(Value::Array(all_of)) = map.get("allOf") else {
                    return;
                };
                let resolved: Option<Vec<&Map<String, Value>>> = all_of
                    .iter()
                    .map(|member| {
                        let member = match member["$ref"]
                            .as_str()
                            .and_then(|r| r.strip_prefix("#/components/schemas/"))
                        {
                            Some(name) => components.get(name)?,
                            None => member,
                        };
                        let member = member.as_object()?;
                        (member.get("type") == Some(&Value::from("object"))
                            && !member.contains_key("allOf"))
                        .then_some(member)
                    })
                    .collect();
                let Some(members) = resolved else { return };
                let mut properties = Map::new();
                let mut required: Vec<Value> = Vec::new();
                let mut closed = false;
                for member in members {
                    if let Some(Value::Object(p)) = member.get("properties") {
                        properties.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    if let Some(Value::Array(r)) = member.get("required") {
                        for name in r {
                            if !required.contains(name) {
                                required.push(name.clone());
                            }
                        }
                    }
                    closed |= member.get("additionalProperties") == Some(&Value::Bool(false));
                }
                map.remove("allOf");
                map.insert("type".to_owned(), Value::from("object"));
                map.insert("properties".to_owned(), Value::Object(properties));
                if !required.is_empty() {
                    map.insert("required".to_owned(), Value::Array(required));
                }
                if closed {
                    map.insert("additionalProperties".to_owned(), Value::Bool(false));
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| merge(v, components)),
            _ => {}
        }
    }
    // Members are resolved against the components as generated (members never nest an `allOf` there).
    let Some(components) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    merge(doc, &components);
}

/// Says what the server does with `null`: in a request body an optional member sent as `null` is absent
/// (`JsonObject::into_typed`), so every optional member of every component schema also takes `null`; a
/// parameter, which cannot be `null` (an empty one is absent), is never marked nullable.
pub fn optional_members_take_null(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};

    fn nullable(schema: &mut Value) {
        match schema.get_mut("type") {
            Some(Value::String(t)) => {
                let t = t.clone();
                schema["type"] = json!([t, "null"]);
            }
            Some(Value::Array(types)) => {
                if !types.iter().any(|t| t == "null") {
                    types.push(json!("null"));
                }
            }
            _ => {
                let inner = std::mem::take(schema);
                *schema = json!({"oneOf": [inner, {"type": "null"}]});
            }
        }
    }
    fn walk(schema: &mut Value) {
        let Value::Object(map) = schema else {
            return;
        };
        let required: Vec<String> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(Value::Object(properties)) = map.get_mut("properties") {
            for (name, property) in properties.iter_mut() {
                if !required.contains(name) {
                    nullable(property);
                }
            }
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            if let Some(Value::Array(members)) = map.get_mut(key) {
                members.iter_mut().for_each(walk);
            }
        }
    }
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        schemas.values_mut().for_each(walk);
    }
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for item in paths.values_mut() {
            let Value::Object(operations) = item else {
                continue;
            };
            for operation in operations.values_mut() {
                let Some(Value::Array(parameters)) = operation.get_mut("parameters") else {
                    continue;
                };
                for parameter in parameters {
                    if let Some(Value::Array(types)) = parameter.pointer_mut("/schema/type") {
                        types.retain(|t| t != "null");
                        if types.len() == 1 {
                            let only = types[0].clone();
                            parameter["schema"]["type"] = only;
                        }
                    }
                }
            }
        }
    }
}

/// Answers 414 to a request target longer than the limit and 431 to header fields larger than it, as JSON,
/// before routing, authentication or anything else reads them. (hyper answers heads larger than its read
/// buffer itself, see `server::listener`.)
async fn bounded_head(
    State((max_uri, max_header)): State<(usize, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri > max_uri {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is {uri} bytes; this server takes at most {max_uri} (http.max_uri_bytes)"),
        )
        .into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > max_header {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the header fields are {headers} bytes; this server takes at most {max_header} (http.max_header_bytes)"
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// The `method` label of the request metric: a method this API knows, else `other` (a client may send any
/// token as a method, and each distinct label value would be a new time series kept forever).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A handler panicked: a bug, never the input's fault. Answer a JSON 500 and log it, rather than drop the
/// connection.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = detail, "an API handler panicked");
    ApiError::internal("the server hit a bug while answering; see its log").into_response()
}

async fn no_route(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no route {} {} (see /v1/openapi.json)",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {} (see /v1/openapi.json)",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Counts each answer, and turns any error answer that is not JSON yet (from a layer or axum itself) into
/// the JSON error form, so that clients can rely on it.
async fn json_errors(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    // A template of the router (a fixed set), never the path itself.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let status = response.status();
    metrics::counter!(
        crate::telemetry::HTTP_REQUESTS,
        "method" => method,
        "route" => route,
        "status" => status.as_u16().to_string()
    )
    .increment(1);
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than this server accepts (max_body_bytes)",
        ),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed"),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request body paused longer than this server waits (http.body_read_timeout)",
        ),
        StatusCode::NOT_FOUND => ("no_route", "not found"),
        s if s.is_client_error() => ("bad_request", "bad request"),
        _ => ("internal", "internal error"),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    // Keep headers like `Allow`.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
