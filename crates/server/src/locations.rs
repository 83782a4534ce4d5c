//! Handlers of `projects.locations`, the operations studies return under them, and
//! `projects.getConfig`.

use std::sync::Arc;

use axum::extract::State;
use kiln_api::Empty;
use kiln_registry::{Jobs, Studies, locations};

use crate::extract::{JsonBody, QueryParams};
use crate::route::{ApiResult, Found, json};

pub(crate) async fn list_locations(
    State(jobs): State<Arc<Jobs>>,
    found: Found,
    query: QueryParams,
) -> ApiResult {
    json(locations::list(
        found.project(),
        &query.list()?,
        jobs.nodes_have_gpus(),
    )?)
}

pub(crate) async fn get_location(State(jobs): State<Arc<Jobs>>, found: Found) -> ApiResult {
    json(locations::get(
        found.project(),
        found.value("location"),
        jobs.nodes_have_gpus(),
    )?)
}

pub(crate) async fn get_operation(State(studies): State<Arc<Studies>>, found: Found) -> ApiResult {
    json(studies.get_operation(
        found.project(),
        found.value("location"),
        found.value("operation"),
    )?)
}

pub(crate) async fn cancel_operation(
    State(studies): State<Arc<Studies>>,
    found: Found,
    JsonBody(Empty {}): JsonBody<Empty>,
) -> ApiResult {
    studies.cancel_operation(
        found.project(),
        found.value("location"),
        found.value("operation"),
    )?;
    json(Empty {})
}

/// `projects.getConfig`: jobs run as the server's user, on whichever node runs them.
pub(crate) async fn get_config(found: Found) -> ApiResult {
    json(locations::config(found.project(), &service_account())?)
}

/// The server's user, as `user@host`.
fn service_account() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|metadata| format!("uid-{}", metadata.uid()))
                .unwrap_or_else(|_| "kiln".into())
        });
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|host| host.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}
