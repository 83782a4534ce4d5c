//! The web console: static files compiled into the binary, served without authentication (they
//! hold no data; the page asks for a token and calls the `/v1` API with it, so it shows exactly
//! what the token may see).
//!
//! The console is plain HTML, CSS and JavaScript modules: no build step, no CDN, nothing fetched
//! at run time but the API. The one library it uses, js-yaml (MIT, `console/vendor/`), parses
//! the YAML of the job form. Every view has its own URL (`/projects/{p}/jobs/{job}`, ...), each
//! answered with the same page, whose router draws the view.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Services;

/// The page every console URL answers with.
const INDEX: &str = include_str!("../console/index.html");

/// The assets by file name, with their media types.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css",
        include_str!("../console/style.css"),
    ),
    ("api.js", JS, include_str!("../console/js/api.js")),
    ("chart.js", JS, include_str!("../console/js/chart.js")),
    ("dom.js", JS, include_str!("../console/js/dom.js")),
    ("job.js", JS, include_str!("../console/js/job.js")),
    ("jobs.js", JS, include_str!("../console/js/jobs.js")),
    ("main.js", JS, include_str!("../console/js/main.js")),
    ("model.js", JS, include_str!("../console/js/model.js")),
    ("models.js", JS, include_str!("../console/js/models.js")),
    ("studies.js", JS, include_str!("../console/js/studies.js")),
    ("submit.js", JS, include_str!("../console/js/submit.js")),
    (
        "js-yaml.mjs",
        JS,
        include_str!("../console/vendor/js-yaml.mjs"),
    ),
];

const JS: &str = "text/javascript";

/// Scripts and styles from this server only; the API is same-origin.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The console's routes.
pub fn routes() -> Router<Services> {
    Router::new()
        .route("/", get(index))
        .route("/projects/{*view}", get(index))
        .route("/assets/{file}", get(asset))
}

async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, media_type, body)) => page(media_type, body),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

fn page(media_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, media_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
