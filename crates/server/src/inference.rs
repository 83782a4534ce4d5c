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

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kiln_api::PredictRequest;
use kiln_registry::{PredictTarget, Registry};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorMessage};
use crate::extract::RawBody;
use crate::models::target;
use crate::route::Found;
use tensors::{InferRequest, OutputTensor};

/// The answer of `health/live`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Live {
    /// Always true: the server answers.
    pub live: bool,
}

/// The answer of `health/ready`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Ready {
    /// Always true: the server answers; each model's readiness is its own route's.
    pub ready: bool,
}

/// The server's metadata.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServerMetadata {
    /// `kiln`.
    pub name: String,
    /// Kiln's version.
    pub version: String,
    /// The protocol extensions Kiln speaks.
    pub extensions: Vec<String>,
}

/// A model input's or output's metadata.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TensorMetadata {
    /// Its name.
    pub name: String,
    /// `FP32`, `INT64`, `BYTES`, ...
    pub datatype: String,
    /// Its dimensions, `-1` where any size goes.
    pub shape: Vec<i64>,
}

/// A model's metadata.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelMetadata {
    /// The model's name.
    pub name: String,
    /// The version that answers.
    pub versions: Vec<String>,
    /// Its framework, in lower case.
    pub platform: String,
    /// Its inputs.
    pub inputs: Vec<TensorMetadata>,
    /// Its outputs.
    pub outputs: Vec<TensorMetadata>,
}

/// A model's readiness.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelReady {
    /// The model's name.
    pub name: String,
    /// The version that answers.
    pub version: String,
    /// Always true (a version that cannot serve answers with its refusal instead).
    pub ready: bool,
}

/// The answer of `infer` (its JSON part, when binary outputs follow).
#[derive(Debug, Serialize, JsonSchema)]
pub struct InferResponse {
    /// The model's name.
    pub model_name: String,
    /// The version that answered.
    pub model_version: String,
    /// The request's id, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The outputs.
    pub outputs: Vec<OutputTensor>,
}

/// The header that splits a binary request or response: the length of its JSON part.
const HEADER_LENGTH: &str = "inference-header-content-length";

type Shared = State<Arc<Registry>>;

/// An error as the protocol answers it: the status, and `{"error": message}`.
pub(crate) struct InferenceError(StatusCode, String);

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

pub(crate) async fn live() -> axum::Json<Live> {
    axum::Json(Live { live: true })
}

pub(crate) async fn ready_server() -> axum::Json<Ready> {
    axum::Json(Ready { ready: true })
}

pub(crate) async fn server_metadata() -> axum::Json<ServerMetadata> {
    axum::Json(ServerMetadata {
        name: "kiln".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec!["binary_tensor_data".into()],
    })
}

pub(crate) async fn model_metadata(
    State(registry): Shared,
    found: Found,
) -> Result<Response, InferenceError> {
    metadata(&registry, target(&found)).await
}

pub(crate) async fn version_metadata(
    State(registry): Shared,
    found: Found,
) -> Result<Response, InferenceError> {
    metadata(&registry, target(&found)).await
}

pub(crate) async fn model_ready(
    State(registry): Shared,
    found: Found,
) -> Result<Response, InferenceError> {
    ready(&registry, target(&found)).await
}

pub(crate) async fn version_ready(
    State(registry): Shared,
    found: Found,
) -> Result<Response, InferenceError> {
    ready(&registry, target(&found)).await
}

pub(crate) async fn model_infer(
    State(registry): Shared,
    found: Found,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, InferenceError> {
    infer(&registry, target(&found), &headers, body).await
}

pub(crate) async fn version_infer(
    State(registry): Shared,
    found: Found,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, InferenceError> {
    infer(&registry, target(&found), &headers, body).await
}

/// The model's metadata: its name, the version answering, and its tensors.
async fn metadata(
    registry: &Registry,
    target: PredictTarget<'_>,
) -> Result<Response, InferenceError> {
    let model = target.model.to_string();
    let serving = registry.serving(&target).await?;
    let (version, signature) = (serving.version(), serving.signature());
    let tensors = |specs: &[kiln_serve::signature::TensorSpec]| -> Vec<TensorMetadata> {
        specs
            .iter()
            .map(|spec| TensorMetadata {
                name: spec.name.clone(),
                datatype: tensors::protocol_datatype(spec.dtype).into(),
                shape: spec.shape.clone(),
            })
            .collect()
    };
    Ok(axum::Json(ModelMetadata {
        name: model,
        versions: vec![short(&version.name).into()],
        platform: format!("{:?}", version.framework).to_ascii_lowercase(),
        inputs: tensors(&signature.inputs),
        outputs: tensors(&signature.outputs),
    })
    .into_response())
}

/// 200 when the version serves; the refusal (a 4xx) when it does not.
async fn ready(registry: &Registry, target: PredictTarget<'_>) -> Result<Response, InferenceError> {
    let model = target.model.to_string();
    let serving = registry.serving(&target).await?;
    let version = serving.version();
    Ok(axum::Json(ModelReady {
        name: model,
        version: short(&version.name).into(),
        ready: true,
    })
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
    let answer = InferResponse {
        model_name: model,
        model_version: short(&version.name).into(),
        id: request.id,
        outputs,
    };
    if binary.is_empty() {
        return Ok(axum::Json(answer).into_response());
    }
    let text = serde_json::to_string(&answer)
        .map_err(|error| InferenceError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
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
