//! Handlers of `projects.models`, `projects.models.versions` and `projects.operations`, and of
//! `:predict` and `:explain` on models and versions.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use kiln_api::{
    Empty, ExampleRequest, ExplainResponse, Model, PredictRequest, PredictResponse, Version,
};
use kiln_iam::Principal;
use kiln_registry::{PredictTarget, Registry};

use crate::extract::{JsonBody, QueryParams, RawBody, parse_json};
use crate::route::{ApiResult, Found, json};
use crate::watch;

type Shared = State<Arc<Registry>>;

pub(crate) async fn list_models(
    State(registry): Shared,
    found: Found,
    query: QueryParams,
) -> ApiResult {
    json(registry.list_models(found.project(), &query.list()?)?)
}

/// `GET .../models:watch`: the page `list` would answer, as event `models` whenever it changes.
pub(crate) async fn watch_models(
    State(registry): Shared,
    found: Found,
    query: QueryParams,
) -> ApiResult {
    let (project, params) = (found.project().to_string(), query.list()?);
    watch::value(&query, "models", move || {
        registry.list_models(&project, &params)
    })
}

pub(crate) async fn create_model(
    State(registry): Shared,
    Extension(principal): Extension<Principal>,
    found: Found,
    JsonBody(model): JsonBody<Model>,
) -> ApiResult {
    json(
        registry
            .create_model(found.project(), model, &principal)
            .await?,
    )
}

pub(crate) async fn get_model(State(registry): Shared, found: Found) -> ApiResult {
    json(registry.get_model(found.project(), found.value("model"))?)
}

pub(crate) async fn patch_model(
    State(registry): Shared,
    Extension(principal): Extension<Principal>,
    found: Found,
    query: QueryParams,
    JsonBody(patch): JsonBody<Model>,
) -> ApiResult {
    let operation = registry
        .patch_model(
            found.project(),
            found.value("model"),
            patch,
            query.update_mask()?,
            &principal,
        )
        .await?;
    json(operation)
}

pub(crate) async fn delete_model(
    State(registry): Shared,
    Extension(principal): Extension<Principal>,
    found: Found,
) -> ApiResult {
    let operation = registry
        .delete_model(found.project(), found.value("model"), &principal)
        .await?;
    json(operation)
}

pub(crate) async fn list_versions(
    State(registry): Shared,
    found: Found,
    query: QueryParams,
) -> ApiResult {
    json(registry.list_versions(found.project(), found.value("model"), &query.list()?)?)
}

/// `GET .../versions:watch`: the page `list` would answer, as event `versions` whenever it
/// changes.
pub(crate) async fn watch_versions(
    State(registry): Shared,
    found: Found,
    query: QueryParams,
) -> ApiResult {
    let (project, model) = (
        found.project().to_string(),
        found.value("model").to_string(),
    );
    let params = query.list()?;
    watch::value(&query, "versions", move || {
        registry.list_versions(&project, &model, &params)
    })
}

pub(crate) async fn create_version(
    State(registry): Shared,
    Extension(principal): Extension<Principal>,
    found: Found,
    JsonBody(version): JsonBody<Version>,
) -> ApiResult {
    let operation = registry
        .create_version(found.project(), found.value("model"), version, &principal)
        .await?;
    json(operation)
}

pub(crate) async fn get_version(State(registry): Shared, found: Found) -> ApiResult {
    json(registry.get_version(
        found.project(),
        found.value("model"),
        found.value("version"),
    )?)
}

pub(crate) async fn patch_version(
    State(registry): Shared,
    Extension(principal): Extension<Principal>,
    found: Found,
    query: QueryParams,
    JsonBody(patch): JsonBody<Version>,
) -> ApiResult {
    let operation = registry
        .patch_version(
            found.project(),
            found.value("model"),
            found.value("version"),
            patch,
            query.update_mask()?,
            &principal,
        )
        .await?;
    json(operation)
}

pub(crate) async fn delete_version(
    State(registry): Shared,
    Extension(principal): Extension<Principal>,
    found: Found,
) -> ApiResult {
    let operation = registry
        .delete_version(
            found.project(),
            found.value("model"),
            found.value("version"),
            &principal,
        )
        .await?;
    json(operation)
}

pub(crate) async fn set_default(
    State(registry): Shared,
    found: Found,
    JsonBody(Empty {}): JsonBody<Empty>,
) -> ApiResult {
    json(
        registry
            .set_default_version(
                found.project(),
                found.value("model"),
                found.value("version"),
            )
            .await?,
    )
}

pub(crate) async fn list_operations(
    State(registry): Shared,
    found: Found,
    query: QueryParams,
) -> ApiResult {
    json(registry.list_operations(found.project(), &query.list()?)?)
}

pub(crate) async fn get_operation(State(registry): Shared, found: Found) -> ApiResult {
    json(registry.get_operation(found.project(), found.value("operation"))?)
}

/// Kiln's model and version operations finish in seconds and cannot be interrupted halfway;
/// cancel is accepted, as the API's best-effort contract allows.
pub(crate) async fn cancel_operation(
    State(registry): Shared,
    found: Found,
    JsonBody(Empty {}): JsonBody<Empty>,
) -> ApiResult {
    registry.get_operation(found.project(), found.value("operation"))?;
    json(Empty {})
}

/// `:predict` on a model (its default version) or a version.
pub(crate) async fn predict(
    State(registry): Shared,
    found: Found,
    RawBody(body): RawBody,
) -> ApiResult {
    let request = predict_request(&body)?;
    let predictions = registry.predict(target(&found), request).await?;
    json(PredictResponse { predictions })
}

/// `GET .../versions/{version}/example`: a predict body the version takes.
pub(crate) async fn example(State(registry): Shared, found: Found) -> ApiResult {
    let serving = registry.serving(&target(&found)).await?;
    json(ExampleRequest {
        instances: serving.example_instance().into_iter().collect(),
    })
}

/// `:explain` on a model (its default version) or a version.
pub(crate) async fn explain(
    State(registry): Shared,
    found: Found,
    RawBody(body): RawBody,
) -> ApiResult {
    let request = predict_request(&body)?;
    let explanations = registry.explain(target(&found), request).await?;
    json(ExplainResponse { explanations })
}

/// The model a predict path names, and its version when the path names one (else the model's
/// default answers).
pub(crate) fn target(found: &Found) -> PredictTarget<'_> {
    let version = found.value("version");
    PredictTarget {
        project: found.project(),
        model: found.value("model"),
        version: (!version.is_empty()).then_some(version),
    }
}

/// The body of `:predict` or `:explain`: the common shape read without serde, else serde's
/// reading with its worded errors.
fn predict_request(body: &[u8]) -> Result<PredictRequest, crate::error::ApiError> {
    match std::str::from_utf8(body)
        .ok()
        .and_then(PredictRequest::split)
    {
        Some(request) => Ok(request),
        None => parse_json(body),
    }
}
