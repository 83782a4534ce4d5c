//! The Open Inference Protocol (KServe's V2, Triton's HTTP API) for every version, under
//! `/v1/projects/{project}/v2`: a Triton or KServe client given the base URL
//! `host:port/v1/projects/{project}` reaches the project's models by their names and versions.
//!
//! Every route passes the same gate as the rest of `/v1` (metadata needs `ml.models.get` or
//! `ml.versions.get`, inference `ml.*.predict`), and inference goes through the version's
//! batcher, as `:predict` does: only the wire format differs ([`tensors`]). A model that reads
//! tensors itself (`Serving::takes_tensors`) is given the request's number and boolean tensors
//! as they are; otherwise their rows become instances. `/v2/health/live` and
//! `/v2/health/ready` are also answered at the root, without a token, for probes.

pub mod tensors;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kiln_api::PredictRequest;
use kiln_registry::{PredictTarget, Registry};
use serde_json::{Value, json};

use crate::Services;
use crate::error::{ApiError, ErrorMessage};
use crate::extract::RawBody;
use tensors::InferRequest;

/// The header that splits a binary request or response: the length of its JSON part.
const HEADER_LENGTH: &str = "inference-header-content-length";

type Shared = State<Arc<Registry>>;

/// The protocol's routes.
pub fn routes() -> Router<Services> {
    let base = "/v1/projects/{project}/v2";
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready_server))
        .route(base, get(server_metadata))
        .route(&format!("{base}/health/live"), get(live))
        .route(&format!("{base}/health/ready"), get(ready_server))
        .route(&format!("{base}/models/{{model}}"), get(model_metadata))
        .route(&format!("{base}/models/{{model}}/ready"), get(model_ready))
        .route(&format!("{base}/models/{{model}}/infer"), post(model_infer))
        .route(
            &format!("{base}/models/{{model}}/versions/{{version}}"),
            get(version_metadata),
        )
        .route(
            &format!("{base}/models/{{model}}/versions/{{version}}/ready"),
            get(version_ready),
        )
        .route(
            &format!("{base}/models/{{model}}/versions/{{version}}/infer"),
            post(version_infer),
        )
}

/// An error as the protocol answers it: the status, and `{"error": message}`.
struct InferenceError(StatusCode, String);

impl IntoResponse for InferenceError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

impl<E: Into<ApiError>> From<E> for InferenceError {
    fn from(error: E) -> Self {
        let response = error.into().into_response();
        let message = response
            .extensions()
            .get::<ErrorMessage>()
            .map(|message| message.0.clone())
            .unwrap_or_default();
        InferenceError(response.status(), message)
    }
}

fn invalid(message: String) -> InferenceError {
    InferenceError(StatusCode::BAD_REQUEST, message)
}

async fn live() -> Response {
    axum::Json(json!({ "live": true })).into_response()
}

async fn ready_server() -> Response {
    axum::Json(json!({ "ready": true })).into_response()
}

async fn server_metadata() -> Response {
    axum::Json(json!({
        "name": "kiln",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
    .into_response()
}

async fn model_metadata(
    State(registry): Shared,
    Path((project, model)): Path<(String, String)>,
) -> Result<Response, InferenceError> {
    metadata(&registry, target(&project, &model, None)).await
}

async fn version_metadata(
    State(registry): Shared,
    Path((project, model, version)): Path<(String, String, String)>,
) -> Result<Response, InferenceError> {
    metadata(&registry, target(&project, &model, Some(&version))).await
}

async fn model_ready(
    State(registry): Shared,
    Path((project, model)): Path<(String, String)>,
) -> Result<Response, InferenceError> {
    ready(&registry, target(&project, &model, None)).await
}

async fn version_ready(
    State(registry): Shared,
    Path((project, model, version)): Path<(String, String, String)>,
) -> Result<Response, InferenceError> {
    ready(&registry, target(&project, &model, Some(&version))).await
}

async fn model_infer(
    State(registry): Shared,
    Path((project, model)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, InferenceError> {
    infer(&registry, target(&project, &model, None), &headers, body).await
}

async fn version_infer(
    State(registry): Shared,
    Path((project, model, version)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, InferenceError> {
    infer(
        &registry,
        target(&project, &model, Some(&version)),
        &headers,
        body,
    )
    .await
}

fn target<'a>(project: &'a str, model: &'a str, version: Option<&'a str>) -> PredictTarget<'a> {
    PredictTarget {
        project,
        model,
        version,
    }
}

/// The model's metadata: its name, the version answering, and its tensors.
async fn metadata(
    registry: &Registry,
    target: PredictTarget<'_>,
) -> Result<Response, InferenceError> {
    let model = target.model.to_string();
    let serving = registry.serving(&target).await?;
    let (version, signature) = (serving.version(), serving.signature());
    let tensors = |specs: &[kiln_serve::signature::TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|spec| {
                json!({
                    "name": spec.name,
                    "datatype": tensors::protocol_datatype(spec.dtype),
                    "shape": spec.shape,
                })
            })
            .collect()
    };
    Ok(axum::Json(json!({
        "name": model,
        "versions": [short(&version.name)],
        "platform": format!("{:?}", version.framework).to_ascii_lowercase(),
        "inputs": tensors(&signature.inputs),
        "outputs": tensors(&signature.outputs),
    }))
    .into_response())
}

/// 200 when the version serves; the refusal (a 4xx) when it does not.
async fn ready(registry: &Registry, target: PredictTarget<'_>) -> Result<Response, InferenceError> {
    let model = target.model.to_string();
    let serving = registry.serving(&target).await?;
    let version = serving.version();
    Ok(axum::Json(json!({
        "name": model,
        "version": short(&version.name),
        "ready": true,
    }))
    .into_response())
}

async fn infer(
    registry: &Registry,
    target: PredictTarget<'_>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, InferenceError> {
    let json_length = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|value| value.trim().parse::<usize>().ok())
            .filter(|length| *length <= body.len())
            .ok_or_else(|| {
                invalid(format!(
                    "Inference-Header-Content-Length must be a length within the body's {} bytes",
                    body.len()
                ))
            })?,
    };
    let (header_part, binary) = body.split_at(json_length);
    let request: InferRequest = serde_json::from_slice(header_part)
        .map_err(|error| invalid(format!("the inference request: {error}")))?;
    let model = target.model.to_string();
    let serving = registry.serving(&target).await?;
    let all_binary = request.parameters.get("binary_data_output") == Some(&Value::Bool(true));
    let requested = request.outputs.as_deref();
    let (outputs, binary) = if serving.takes_tensors() && tensors::plain(&request.inputs) {
        let inputs = tensors::tensors(&request.inputs, binary).map_err(invalid)?;
        let outputs = serving.infer(inputs).await?;
        tensors::tensor_outputs(outputs, requested, all_binary)
    } else {
        let instances = tensors::instances(&request.inputs, binary).map_err(invalid)?;
        let predict = PredictRequest {
            instances: kiln_serve::instance_text(&instances),
            signature_name: None,
        };
        let predictions = serving.predict(predict).await?;
        let signature = serving.signature();
        let single_name = match signature.outputs.as_slice() {
            [only] => only.name.as_str(),
            _ => "predictions",
        };
        let dtype_of = |name: &str| {
            signature
                .outputs
                .iter()
                .find(|spec| spec.name == name)
                .map(|spec| spec.dtype)
        };
        tensors::outputs(predictions, single_name, &dtype_of, requested, all_binary)
    }
    .map_err(invalid)?;
    let version = serving.version();
    let mut answer = json!({
        "model_name": model,
        "model_version": short(&version.name),
        "outputs": outputs,
    });
    if let Some(id) = request.id {
        answer["id"] = Value::String(id);
    }
    let text = answer.to_string();
    if binary.is_empty() {
        return Ok(axum::Json(answer).into_response());
    }
    let length = text.len();
    let mut body = text.into_bytes();
    body.extend(binary);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(HEADER_LENGTH, HeaderValue::from(length));
    Ok(response)
}

/// The last segment of a resource name.
fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}
