//! The route table and its handlers.
//!
//! Custom verbs (`:predict`, `:setDefault`, `:cancel`) arrive as part of the last path segment;
//! [`split_verb`] separates them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use kiln_api::{Code, Model, PredictRequest, PredictResponse, Version};
use kiln_iam::Principal;
use kiln_registry::{Access, PredictTarget, Registry};
use tower_http::catch_panic::CatchPanicLayer;

use crate::Services;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, RawBody, parse_json};
use crate::iam::{owned_operation, policy_verb};

type Shared = State<Arc<Registry>>;
pub(crate) type ApiResult = Result<Response, ApiError>;

/// The router of the whole API.
pub fn router(services: Services) -> Router {
    Router::new()
        .merge(crate::jobs::routes())
        .merge(crate::studies::routes())
        .merge(crate::locations::routes())
        .merge(crate::iam::routes())
        .merge(crate::inference::routes())
        .merge(crate::console::routes())
        .route(
            "/v1/projects/{project}/models",
            get(list_models).post(create_model),
        )
        .route(
            "/v1/projects/{project}/models/{model}",
            get(get_model)
                .patch(patch_model)
                .delete(delete_model)
                .post(model_verb),
        )
        .route(
            "/v1/projects/{project}/models/{model}/versions",
            get(list_versions).post(create_version),
        )
        .route(
            "/v1/projects/{project}/models/{model}/versions/{version}",
            get(get_version)
                .patch(patch_version)
                .delete(delete_version)
                .post(version_verb),
        )
        .route("/v1/projects/{project}/operations", get(list_operations))
        .route(
            "/v1/projects/{project}/operations/{operation}",
            get(get_operation).post(operation_verb),
        )
        .route("/v1/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            services.clone(),
            crate::auth::guard,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Http(Code::Internal, "Internal error encountered.".into()).into_response()
        }))
        .with_state(services)
}

/// Splits `name:verb` into its parts.
pub fn split_verb(segment: &str) -> (&str, Option<&str>) {
    match segment.split_once(':') {
        Some((name, verb)) => (name, Some(verb)),
        None => (segment, None),
    }
}

/// Refuses a verb on a GET/PATCH/DELETE path.
pub(crate) fn plain(segment: &str) -> Result<&str, ApiError> {
    match split_verb(segment) {
        (name, None) => Ok(name),
        (_, Some(verb)) => Err(ApiError::Http(
            Code::NotFound,
            format!("the method :{verb} takes POST"),
        )),
    }
}

pub(crate) fn json(value: impl serde::Serialize) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::Http(Code::NotFound, format!("Not found: {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::Http(
        Code::InvalidArgument,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

async fn list_models(
    State(registry): Shared,
    Path(project): Path<String>,
    query: QueryParams,
) -> ApiResult {
    json(registry.list_models(&project, &query.list()?)?)
}

async fn create_model(
    State(registry): Shared,
    State(access): State<Arc<Access>>,
    Extension(principal): Extension<Principal>,
    Path(project): Path<String>,
    JsonBody(model): JsonBody<Model>,
) -> ApiResult {
    let model = registry.create_model(&project, model).await?;
    access
        .grant_creator(&principal, &model.name, kiln_iam::roles::MODEL_OWNER)
        .await?;
    json(model)
}

async fn get_model(
    State(registry): Shared,
    State(access): State<Arc<Access>>,
    Path((project, segment)): Path<(String, String)>,
) -> ApiResult {
    match split_verb(&segment) {
        (model, Some("getIamPolicy")) => {
            json(access.get_policy(&format!("projects/{project}/models/{model}"))?)
        }
        _ => json(registry.get_model(&project, plain(&segment)?)?),
    }
}

async fn patch_model(
    State(registry): Shared,
    State(access): State<Arc<Access>>,
    Extension(principal): Extension<Principal>,
    Path((project, model)): Path<(String, String)>,
    query: QueryParams,
    JsonBody(patch): JsonBody<Model>,
) -> ApiResult {
    let operation = registry
        .patch_model(&project, plain(&model)?, patch, query.update_mask()?)
        .await?;
    owned_operation(&access, &principal, operation).await
}

async fn delete_model(
    State(registry): Shared,
    State(access): State<Arc<Access>>,
    Extension(principal): Extension<Principal>,
    Path((project, model)): Path<(String, String)>,
) -> ApiResult {
    let operation = registry.delete_model(&project, plain(&model)?).await?;
    owned_operation(&access, &principal, operation).await
}

async fn model_verb(
    State(registry): Shared,
    State(access): State<Arc<Access>>,
    Extension(principal): Extension<Principal>,
    Path((project, segment)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult {
    let (model, verb) = split_verb(&segment);
    let resource = format!("projects/{project}/models/{model}");
    if let Some(answer) =
        verb.and_then(|verb| policy_verb(&access, &principal, &resource, verb, &body))
    {
        return answer;
    }
    match (model, verb) {
        (model, Some(verb @ ("predict" | "explain"))) => {
            let target = PredictTarget {
                project: &project,
                model,
                version: None,
            };
            serve(&registry, verb, target, body).await
        }
        (_, verb) => Err(unknown_verb(verb, crate::auth::known_verbs("models"))),
    }
}

async fn list_versions(
    State(registry): Shared,
    Path((project, model)): Path<(String, String)>,
    query: QueryParams,
) -> ApiResult {
    json(registry.list_versions(&project, &model, &query.list()?)?)
}

async fn create_version(
    State(registry): Shared,
    State(access): State<Arc<Access>>,
    Extension(principal): Extension<Principal>,
    Path((project, model)): Path<(String, String)>,
    JsonBody(version): JsonBody<Version>,
) -> ApiResult {
    let operation = registry.create_version(&project, &model, version).await?;
    owned_operation(&access, &principal, operation).await
}

async fn get_version(
    State(registry): Shared,
    Path((project, model, version)): Path<(String, String, String)>,
) -> ApiResult {
    json(registry.get_version(&project, &model, plain(&version)?)?)
}

async fn patch_version(
    State(registry): Shared,
    State(access): State<Arc<Access>>,
    Extension(principal): Extension<Principal>,
    Path((project, model, version)): Path<(String, String, String)>,
    query: QueryParams,
    JsonBody(patch): JsonBody<Version>,
) -> ApiResult {
    let operation = registry
        .patch_version(
            &project,
            &model,
            plain(&version)?,
            patch,
            query.update_mask()?,
        )
        .await?;
    owned_operation(&access, &principal, operation).await
}

async fn delete_version(
    State(registry): Shared,
    State(access): State<Arc<Access>>,
    Extension(principal): Extension<Principal>,
    Path((project, model, version)): Path<(String, String, String)>,
) -> ApiResult {
    let operation = registry
        .delete_version(&project, &model, plain(&version)?)
        .await?;
    owned_operation(&access, &principal, operation).await
}

async fn version_verb(
    State(registry): Shared,
    Path((project, model, segment)): Path<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult {
    match split_verb(&segment) {
        (version, Some(verb @ ("predict" | "explain"))) => {
            let target = PredictTarget {
                project: &project,
                model: &model,
                version: Some(version),
            };
            serve(&registry, verb, target, body).await
        }
        (version, Some("setDefault")) => json(
            registry
                .set_default_version(&project, &model, version)
                .await?,
        ),
        (_, verb) => Err(unknown_verb(verb, crate::auth::known_verbs("versions"))),
    }
}

async fn list_operations(
    State(registry): Shared,
    Path(project): Path<String>,
    query: QueryParams,
) -> ApiResult {
    json(registry.list_operations(&project, &query.list()?)?)
}

async fn get_operation(
    State(registry): Shared,
    Path((project, operation)): Path<(String, String)>,
) -> ApiResult {
    json(registry.get_operation(&project, plain(&operation)?)?)
}

async fn operation_verb(
    State(registry): Shared,
    Path((project, segment)): Path<(String, String)>,
) -> ApiResult {
    match split_verb(&segment) {
        (operation, Some("cancel")) => {
            // Kiln's model and version operations finish in seconds and cannot be interrupted
            // halfway; cancel is accepted, as the API's best-effort contract allows.
            registry.get_operation(&project, operation)?;
            json(serde_json::json!({}))
        }
        (_, verb) => Err(unknown_verb(verb, crate::auth::known_verbs("operations"))),
    }
}

pub(crate) fn unknown_verb(verb: Option<&str>, known: &[&str]) -> ApiError {
    match verb {
        Some(verb) => ApiError::Http(
            Code::NotFound,
            format!(
                "unknown method :{verb}; this resource has :{}",
                known.join(", :")
            ),
        ),
        None => ApiError::Http(
            Code::InvalidArgument,
            "POST on this resource needs a method such as :predict".into(),
        ),
    }
}

/// `:predict` or `:explain` (`verb`) on a model or version.
async fn serve(
    registry: &Registry,
    verb: &str,
    target: PredictTarget<'_>,
    body: axum::body::Bytes,
) -> ApiResult {
    let fast = std::str::from_utf8(&body)
        .ok()
        .and_then(PredictRequest::split);
    let request = match fast {
        Some(request) => request,
        None => parse_json(&body)?,
    };
    match verb {
        "explain" => {
            let explanations = registry.explain(target, request).await?;
            json(serde_json::json!({ "explanations": explanations }))
        }
        _ => json(PredictResponse {
            predictions: registry.predict(target, request).await?,
        }),
    }
}

/// The server's counters in Prometheus' text format (administrators and the metrics token).
async fn metrics(State(services): State<Services>) -> Response {
    let registry = &services.registry;
    let versions = registry.serving_stats();
    let jobs = match registry.active_job_counts() {
        Ok(jobs) => Some(jobs),
        Err(error) => {
            tracing::warn!(%error, "metrics without job counts: the store cannot be read");
            None
        }
    };
    let text = crate::metrics::render(&crate::metrics::Report {
        http: &services.http_metrics,
        versions: &versions,
        jobs: jobs.as_deref(),
    });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Readiness: 200 while the metadata store answers, 503 when it does not, with the number of
/// versions whose model is loaded. Open to anyone, as `/healthz` is, so it names no resource.
async fn ready(State(registry): Shared) -> Response {
    let (status, readiness, store) = match registry.check_store() {
        Ok(()) => (axum::http::StatusCode::OK, "ready", "ok"),
        Err(error) => {
            tracing::warn!(%error, "not ready: the metadata store does not answer");
            let unavailable = "unavailable";
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                unavailable,
                unavailable,
            )
        }
    };
    let body = serde_json::json!({
        "status": readiness,
        "store": store,
        "loadedVersions": registry.loaded_versions(),
    });
    (status, axum::Json(body)).into_response()
}
