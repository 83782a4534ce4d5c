//! `projects.models` and `projects.models.versions` resources (api-surface.md §A.8).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A model: a named container of versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Model {
    /// `projects/{project}/models/{model}` in responses; the bare name in create requests.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The version predictions go to when none is named (output only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_version: Option<Version>,
    /// Exactly one region; defaults to `us-central1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Whether prediction access logs are kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub online_prediction_logging: bool,
    /// Whether prediction stdout/stderr is kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub online_prediction_console_logging: bool,
    /// User labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Optimistic-concurrency token (base64).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
}

/// Serving framework of a version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Framework {
    /// Detect from the file names in `deploymentUri`.
    #[default]
    FrameworkUnspecified,
    /// A TensorFlow SavedModel.
    Tensorflow,
    /// A scikit-learn pickle or joblib file.
    ScikitLearn,
    /// An XGBoost booster.
    Xgboost,
    /// Kiln's own format (`kiln_model.json`); an extension of the API's enum.
    Kiln,
    /// An ONNX graph (`model.onnx`) exported from any framework; an extension of the API's enum.
    Onnx,
}

/// What computes a version's predictions; an extension of the API. Set at create to choose,
/// unset to let Kiln choose; in responses, the engine chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Engine {
    /// Kiln chooses: Kiln's own runtime for its exports, ONNX Runtime for ONNX models where its
    /// library is found (else tract), the framework for framework models.
    #[default]
    EngineUnspecified,
    /// Kiln's own runtime, for Kiln's exports.
    Kiln,
    /// ONNX Runtime: for ONNX models, and for framework models converted to ONNX whose
    /// predictions equal the framework's on a check set.
    OnnxRuntime,
    /// tract, the pure-Rust ONNX engine: the same models as `ONNX_RUNTIME`.
    Tract,
    /// The framework itself, in worker processes: TensorFlow, scikit-learn, XGBoost, custom
    /// prediction routines.
    Framework,
}

/// Lifecycle state of a version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VersionState {
    /// Not known.
    #[default]
    Unknown,
    /// Serving.
    Ready,
    /// Being created.
    Creating,
    /// Creation failed; see `errorMessage`.
    Failed,
    /// Being deleted.
    Deleting,
    /// Being updated.
    Updating,
}

/// A deployed version of a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Version {
    /// `projects/{p}/models/{m}/versions/{v}` in responses; the bare name in create requests.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Whether predictions on the model go here (output only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_default: bool,
    /// Where the model files were copied from at create time.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deployment_uri: String,
    /// Creation time (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub create_time: String,
    /// Last prediction time (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_use_time: String,
    /// Runtime version: the framework releases that serve a TensorFlow, scikit-learn or XGBoost
    /// model (default: the newest Kiln knows).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime_version: String,
    /// Python version of the runtime (default: the runtime's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub python_version: String,
    /// Serving framework.
    #[serde(default)]
    pub framework: Framework,
    /// What computes its predictions.
    #[serde(default, skip_serializing_if = "is_unspecified")]
    pub engine: Engine,
    /// Serving machine type (recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub machine_type: String,
    /// State (output only).
    #[serde(default)]
    pub state: VersionState,
    /// Why creation failed (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_message: String,
    /// Automatic scaling settings (`minNodes`, `maxNodes`, `metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scaling: Option<Value>,
    /// Fixed scaling settings (`nodes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_scaling: Option<Value>,
    /// Custom prediction routine packages (recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_uris: Vec<String>,
    /// Custom prediction routine class (recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prediction_class: String,
    /// Accelerator settings (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator_config: Option<Value>,
    /// Explanation settings (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation_config: Option<Value>,
    /// Request logging settings (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_logging_config: Option<Value>,
    /// Custom serving container (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    /// Custom container routes (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Value>,
    /// Service account (recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// User labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Optimistic-concurrency token (base64).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
}

impl Framework {
    /// The API's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Framework::FrameworkUnspecified => "FRAMEWORK_UNSPECIFIED",
            Framework::Tensorflow => "TENSORFLOW",
            Framework::ScikitLearn => "SCIKIT_LEARN",
            Framework::Xgboost => "XGBOOST",
            Framework::Kiln => "KILN",
            Framework::Onnx => "ONNX",
        }
    }
}

impl Engine {
    /// The API's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Engine::EngineUnspecified => "ENGINE_UNSPECIFIED",
            Engine::Kiln => "KILN",
            Engine::OnnxRuntime => "ONNX_RUNTIME",
            Engine::Tract => "TRACT",
            Engine::Framework => "FRAMEWORK",
        }
    }
}

fn is_unspecified(engine: &Engine) -> bool {
    *engine == Engine::EngineUnspecified
}

/// Response of `projects.models.list`; `{}` when empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListModelsResponse {
    /// One page of models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<Model>,
    /// Token of the next page, absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Response of `projects.models.versions.list`; `{}` when empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListVersionsResponse {
    /// One page of versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<Version>,
    /// Token of the next page, absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frameworks_and_engines_are_spelled_as_their_names() {
        for engine in [
            Engine::EngineUnspecified,
            Engine::Kiln,
            Engine::OnnxRuntime,
            Engine::Tract,
            Engine::Framework,
        ] {
            assert_eq!(serde_json::to_value(engine).unwrap(), engine.name());
        }
        for framework in [
            Framework::FrameworkUnspecified,
            Framework::Tensorflow,
            Framework::ScikitLearn,
            Framework::Xgboost,
            Framework::Kiln,
            Framework::Onnx,
        ] {
            assert_eq!(serde_json::to_value(framework).unwrap(), framework.name());
        }
        let version: Version = serde_json::from_str(r#"{"engine": "ONNX_RUNTIME"}"#).unwrap();
        assert_eq!(version.engine, Engine::OnnxRuntime);
        assert!(serde_json::from_str::<Version>(r#"{"engine": "FAST"}"#).is_err());
    }

    #[test]
    fn wire_names_and_enum_spellings() {
        let version = Version {
            name: "projects/p/models/m/versions/v1".into(),
            is_default: true,
            framework: Framework::ScikitLearn,
            state: VersionState::Ready,
            ..Version::default()
        };
        let json = serde_json::to_value(&version).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "projects/p/models/m/versions/v1", "isDefault": true,
                "framework": "SCIKIT_LEARN", "state": "READY"})
        );
        assert_eq!(
            serde_json::to_string(&ListModelsResponse::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let error = serde_json::from_str::<Model>(r#"{"name": "m", "colour": "red"}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `colour`"),
            "{error}"
        );
    }
}
