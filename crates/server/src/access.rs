//! The access log and the HTTP metrics: every request, as it is answered.
//!
//! The outermost layer, so that it sees what every other layer answers, refusals included. It
//! logs one event per request at `INFO` with target `kiln::access` (method, path, status,
//! latency, caller and route), which `--log-format` writes as text or JSON lines and `RUST_LOG`
//! can silence (`kiln::access=off`). The query string is left out of the log: it may carry
//! page tokens and filters with users' data.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::Caller;
use crate::metrics::HttpMetrics;

/// Where a request went when no route matched it.
const UNMATCHED: &str = "unmatched";

/// Answers `request` and records it.
pub async fn log(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let arrived = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_string());
    let response = next.run(request).await;
    let elapsed = arrived.elapsed();
    let status = response.status().as_u16();
    let caller = response.extensions().get::<Caller>();
    let route = caller
        .map(|caller| caller.method.as_str())
        .or(matched.as_deref())
        .unwrap_or(UNMATCHED);
    metrics.record(route, status, elapsed);
    tracing::info!(
        target: "kiln::access",
        method = %method,
        path = %path,
        status,
        latency_ms = elapsed.as_secs_f64() * 1e3,
        caller = caller.and_then(|caller| caller.member.as_deref()).unwrap_or("-"),
        route,
    );
    response
}
