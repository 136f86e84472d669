//! The web console: a page at `/` and its assets under `/console/`, plain HTML, CSS and JavaScript modules
//! from `runtime/console/`, embedded in the binary with `include_str!` (no build step, nothing loaded from
//! outside). The page holds no data and needs no token: it asks for one, keeps it in the browser's session
//! storage, and calls the `/v1` API with it like any client, so the API's auth decides what it sees and may
//! do (`GET /v1/me` tells it the role, to hide write actions from read-only tokens).
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles and connections only from this
//! origin, no inline script or style, no frames, no forms posting elsewhere.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::error::{ApiError, ErrorBody};

/// The policy every console answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The assets: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/api.js"),
    ),
    (
        "jobs.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/jobs.js"),
    ),
    (
        "form.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/form.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/live.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../console/style.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../console/icon.svg"),
    ),
];

const INDEX: &str = include_str!("../console/index.html");

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The assets change with the binary: revalidate rather than keep an old console after an upgrade.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The console's page.
#[utoipa::path(get, path = "/", tag = "console", security(()),
    responses((status = 200, content_type = "text/html", body = String)))]
pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

/// One of the console's assets (`app.js`, `style.css`, ...).
#[utoipa::path(get, path = "/console/{asset}", tag = "console", security(()),
    params(("asset" = String, Path, description = "Asset name", pattern = r"^[a-z]+\.(js|css|svg)$")),
    responses((status = 200, description = "The asset", content(
            (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"))),
        (status = 404, body = ErrorBody)))]
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, content_type, body)| page(content_type, body))
        .ok_or_else(|| ApiError::not_found(format!("no console asset {name:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        // A module imported by another but missing here would fail only in a browser.
        let sources: Vec<&str> = std::iter::once(INDEX)
            .chain(ASSETS.iter().map(|(_, _, body)| *body))
            .collect();
        for source in sources {
            for reference in source.split("/console/").skip(1) {
                let name: String = reference
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                    .collect();
                assert!(
                    ASSETS.iter().any(|(asset, _, _)| *asset == name),
                    "/console/{name} is referenced but not embedded"
                );
            }
        }
    }
}
