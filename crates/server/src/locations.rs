//! Handlers of `projects.locations`, the operations studies return under them, and
//! `projects.getConfig`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use kiln_registry::{Jobs, Studies, locations};
use serde_json::json;

use crate::Services;
use crate::extract::QueryParams;
use crate::routes::{ApiResult, json, plain, split_verb, unknown_verb};

/// The location routes.
pub fn routes() -> Router<Services> {
    Router::new()
        .route("/v1/projects/{project}/locations", get(list_locations))
        .route(
            "/v1/projects/{project}/locations/{location}",
            get(get_location),
        )
        .route(
            "/v1/projects/{project}/locations/{location}/operations/{operation}",
            get(get_operation).post(operation_verb),
        )
}

async fn list_locations(
    State(jobs): State<Arc<Jobs>>,
    Path(project): Path<String>,
    query: QueryParams,
) -> ApiResult {
    json(locations::list(
        &project,
        &query.list()?,
        jobs.nodes_have_gpus(),
    )?)
}

async fn get_location(
    State(jobs): State<Arc<Jobs>>,
    Path((project, location)): Path<(String, String)>,
) -> ApiResult {
    json(locations::get(
        &project,
        plain(&location)?,
        jobs.nodes_have_gpus(),
    )?)
}

async fn get_operation(
    State(studies): State<Arc<Studies>>,
    Path((project, location, operation)): Path<(String, String, String)>,
) -> ApiResult {
    json(studies.get_operation(&project, &location, plain(&operation)?)?)
}

async fn operation_verb(
    State(studies): State<Arc<Studies>>,
    Path((project, location, segment)): Path<(String, String, String)>,
) -> ApiResult {
    match split_verb(&segment) {
        (operation, Some("cancel")) => {
            studies.cancel_operation(&project, &location, operation)?;
            json(json!({}))
        }
        (_, verb) => Err(unknown_verb(verb, crate::auth::known_verbs("operations"))),
    }
}

/// `projects.getConfig`: jobs run as the server's user, on whichever node runs them.
pub(crate) fn get_config(project: &str) -> ApiResult {
    json(locations::config(project, &service_account())?)
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
