//! Request extractors whose rejections are API errors naming the field: JSON bodies and query strings.
//!
//! A body is read whole (up to the router's `DefaultBodyLimit`, else 413), parsed as JSON (syntax errors are
//! `bad_json` with line and column), and only then turned into a typed value, so that type errors carry the
//! dotted path of the field (`target.timeout`) and never a line number.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::ApiError;

pub mod lenient;

/// A request body that is a JSON object (an empty body, or `null`, reads as `{}`).
#[derive(Debug, Clone, Default)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = JsonBytes::from_request(req, state).await?;
        Self::from_bytes(&bytes.0)
    }
}

/// A request body declared as JSON, as bytes (up to the router's `DefaultBodyLimit`, else 413): for a route
/// that reads its body without a `Value` tree (`POST /v1/jobs:batch`, see [`lenient`]).
#[derive(Debug, Clone, Default)]
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let batch = req.uri().path() == "/v1/jobs:batch";
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
            let essence = content_type
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !(essence == "application/json" || essence.ends_with("+json")) {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!(
                        "Content-Type {essence:?} is not JSON; send application/json \
                         (curl: -H 'Content-Type: application/json')"
                    ),
                )
                .with_field("Content-Type"));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    if batch {
                        "the request body is larger than this server accepts for a batch \
                         (http.max_batch_body_bytes); send fewer jobs per request"
                    } else {
                        "the request body is larger than this server accepts (max_body_bytes)"
                    },
                )
            } else if timed_out(&rejection) {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body paused longer than this server waits (http.body_read_timeout)",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("failed to read the request body: {}", rejection.body_text()),
                )
            }
        })?;
        Ok(Self(bytes))
    }
}

impl JsonObject {
    /// A body as the router reads it (after the size limit): empty, `null` or a JSON object.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            // `null` is no body, as a `null` member is no member.
            Ok(Value::Null) => Ok(Self(Map::new())),
            Ok(other) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("the body must be a JSON object, not {}", kind(&other)),
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("the body is not valid JSON: {e}"),
            )),
        }
    }
}

/// Whether reading the body failed because it paused too long (`RequestBodyTimeoutLayer`).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

impl JsonObject {
    /// Removes and returns a key.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    /// The rest of the object as a `T`; errors name the field. A member that is `null` counts as absent (its
    /// default), at any depth: the document marks optional members nullable, and a client generated from it
    /// may send `null` for "not set".
    pub fn into_typed<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        let mut value = Value::Object(self.0);
        drop_nulls(&mut value);
        typed(value, "")
    }
}

/// Removes object members that are `null`, at any depth.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// `value` as a `T`; errors name the field, prefixed with `prefix` (`""` at the root).
pub fn typed<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| field_error(e, prefix))
}

/// A value read by `deserializer` (a [`lenient`] one, over a request's text) as a `T`, with errors like
/// [`typed`]'s: naming the field below `prefix`, without a line or column (those of a part of a body would
/// mislead).
pub fn typed_from<'de, T: serde::Deserialize<'de>>(
    deserializer: impl serde::Deserializer<'de, Error = serde_json::Error>,
    prefix: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(deserializer).map_err(|e| field_error(e, prefix))
}

/// A deserialization error as an API error naming the field, below `prefix`.
fn field_error(e: serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> ApiError {
    let inner = e.inner();
    let mut message = inner.to_string();
    if inner.line() != 0 {
        let at = format!(" at line {} column {}", inner.line(), inner.column());
        if let Some(cut) = message.strip_suffix(at.as_str()) {
            message = cut.to_owned();
        }
    }
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    // serde_path_to_error already ends the path with an unknown key, not with a missing one.
    let named = named_field(&message).unwrap_or_default();
    let path = if path.rsplit('.').next() == Some(named.as_str()) {
        path
    } else {
        join(&path, &named)
    };
    let field = join(prefix, &path);
    // A message that names its own field (`schedule: "61 * * * *": …`) names it once, with the prefix.
    let message = if field.is_empty() || message.starts_with(&format!("{field}:")) {
        message
    } else if let Some(rest) = message
        .strip_prefix(path.as_str())
        .filter(|_| !path.is_empty())
        .and_then(|rest| rest.strip_prefix(':'))
    {
        format!("{field}:{rest}")
    } else {
        format!("{field}: {message}")
    };
    let error = ApiError::new(StatusCode::BAD_REQUEST, "invalid", message);
    if field.is_empty() {
        error
    } else {
        error.with_field(field)
    }
}

/// The field named by serde's "unknown field `x`" / "missing field `x`" / "duplicate field `x`" messages,
/// which report the path of the enclosing object.
fn named_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))
        .or_else(|| message.strip_prefix("duplicate field `"))?;
    Some(rest.split('`').next()?.to_owned())
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}.{b}"),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `{id}` segment of a job route. A segment that cannot be a string (bad percent-encoding like `%FF`, not
/// UTF-8) is a 400 naming `id`, like any other bad id.
#[derive(Debug, Clone)]
pub struct JobPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for JobPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(JobPath(id)),
            Err(rejection) => Err(ApiError::invalid(
                "id",
                format!("id: {}", rejection.body_text()),
            )),
        }
    }
}

/// For an optional string query parameter whose empty value means "not given" (`?after=&outcome=`, as
/// forms and generated clients send unset fields): `#[serde(default, deserialize_with = "empty_is_none")]`.
pub fn empty_is_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let value: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.is_empty()))
}

/// A query string as a `T` (usually with `deny_unknown_fields`); errors name the parameter.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // An empty value is still a value: `?limit=` is not a number and is refused, naming `limit`. String
        // parameters that take an empty value as absent say so (`empty_is_none`).
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Params)
            .map_err(|e| {
                let message = e.inner().to_string();
                let path = e.path().to_string();
                let field = if path == "." {
                    named_field(&message).unwrap_or_default()
                } else {
                    path
                };
                let error = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("query parameter {field}: {message}"),
                );
                if field.is_empty() {
                    error
                } else {
                    error.with_field(field)
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_members_are_absent() {
        let body = JsonObject(
            serde_json::json!({"name": "x", "schedule": "* * * * *", "delivery": null, "timezone": null,
                "retry": {"max_retries": null, "backoff": {"factor": null}},
                "target": {"type": "command", "argv": ["true"], "cwd": null, "env": {"A": null}}})
            .as_object()
            .unwrap()
            .clone(),
        );
        let spec: campanile::JobSpec = body.into_typed().unwrap();
        assert_eq!(spec.timezone, "UTC");
        assert_eq!(spec.delivery, campanile::job::Delivery::default());
    }

    #[test]
    fn a_repeated_query_parameter_is_named() {
        assert_eq!(
            named_field("duplicate field `limit`").as_deref(),
            Some("limit")
        );
    }

    #[test]
    fn type_errors_name_the_dotted_field() {
        let value = serde_json::json!({"name": "x", "schedule": "61 * * * *",
            "target": {"type": "command", "argv": ["true"]}});
        let err = typed::<campanile::JobSpec>(value, "").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("schedule"), "{err:?}");
        assert!(err.message.contains("61"), "{}", err.message);

        let value = serde_json::json!({"name": "x", "schedule": "* * * * *", "colour": 1,
            "target": {"type": "command", "argv": ["true"]}});
        let err = typed::<campanile::JobSpec>(value, "").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("colour"), "{err:?}");

        let value = serde_json::json!({"name": "x", "schedule": "* * * * *",
            "target": {"type": "command", "argv": ["true"], "timeout": "soon"}});
        let err = typed::<campanile::JobSpec>(value, "").unwrap_err();
        assert!(
            err.field.as_deref().unwrap().starts_with("target"),
            "{err:?}"
        );

        let value = serde_json::json!({"schedule": "* * * * *",
            "target": {"type": "command", "argv": ["true"]}});
        let err = typed::<campanile::JobSpec>(value, "").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("name"), "{err:?}");
    }
}
