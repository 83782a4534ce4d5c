//! Online prediction bodies (api-surface.md §A.9).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// `{"instances": [...], "signature_name": "..."}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// The inputs, one per prediction, as the JSON text the client sent: checked as JSON, but
    /// left for the model's runtime to read straight into its input tensors.
    pub instances: Vec<Box<RawValue>>,
    /// The signature to use (Kiln models have one, `serving_default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_name: Option<String>,
}

/// `{"predictions": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PredictResponse {
    /// One output per instance, in order.
    pub predictions: Vec<Value>,
}

/// The prediction-error shape: `{"error": "Prediction failed: ..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionErrorBody {
    /// The message, a string (not an object as in platform errors).
    pub error: String,
}
