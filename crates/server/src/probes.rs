//! `/healthz` and `/readyz`, open to anyone, as probes are: they name no resource.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_api::Readiness;
use kiln_registry::Registry;

/// Liveness: the server answers.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: 200 while the metadata store answers, 503 when it does not, with the number of
/// versions whose model is loaded.
pub(crate) async fn readyz(State(registry): State<Arc<Registry>>) -> Response {
    let (status, readiness, store) = match registry.check_store() {
        Ok(()) => (StatusCode::OK, "ready", "ok"),
        Err(error) => {
            tracing::warn!(%error, "not ready: the metadata store does not answer");
            let unavailable = "unavailable";
            (StatusCode::SERVICE_UNAVAILABLE, unavailable, unavailable)
        }
    };
    let body = Readiness {
        status: readiness.into(),
        store: store.into(),
        loaded_versions: registry.loaded_versions(),
    };
    (status, axum::Json(body)).into_response()
}
