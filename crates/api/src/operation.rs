//! Long-running operations (`google.longrunning.Operation`) and `google.rpc.Status`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Version;

/// `@type` of [`OperationMetadata`].
pub const METADATA_TYPE: &str = "type.googleapis.com/google.cloud.ml.v1.OperationMetadata";
/// `@type` of a [`Version`] in an operation's response.
pub const VERSION_TYPE: &str = "type.googleapis.com/google.cloud.ml.v1.Version";
/// `@type` of a `Model` in an operation's response.
pub const MODEL_TYPE: &str = "type.googleapis.com/google.cloud.ml.v1.Model";
/// `@type` of `google.protobuf.Empty`.
pub const EMPTY_TYPE: &str = "type.googleapis.com/google.protobuf.Empty";

/// What an operation does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationType {
    /// Not known.
    #[default]
    OperationTypeUnspecified,
    /// `versions.create`.
    CreateVersion,
    /// `versions.delete`.
    DeleteVersion,
    /// `models.delete`.
    DeleteModel,
    /// `models.patch`.
    UpdateModel,
    /// `versions.patch`.
    UpdateVersion,
    /// `projects` configuration change.
    UpdateConfig,
}

/// `OperationMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationMetadata {
    /// Always [`METADATA_TYPE`].
    #[serde(rename = "@type")]
    pub type_url: String,
    /// When the operation was submitted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub create_time: String,
    /// When work started.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start_time: String,
    /// When it finished.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end_time: String,
    /// Whether cancellation was requested.
    #[serde(default)]
    pub is_cancellation_requested: bool,
    /// Labels of the resource operated on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `projects/{p}/models/{m}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_name: String,
    /// What the operation does.
    #[serde(default)]
    pub operation_type: OperationType,
    /// The project, as the API's int64 project number (a JSON string).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project_number: String,
    /// The version operated on, for version operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
}

/// `google.rpc.Status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    /// A `google.rpc.Code` number.
    pub code: i32,
    /// Developer-facing message.
    pub message: String,
    /// Extra detail objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

/// `google.longrunning.Operation`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// `projects/{p}/operations/{id}`.
    pub name: String,
    /// Metadata of the operation.
    pub metadata: OperationMetadata,
    /// Whether it finished (with `error` or `response`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
    /// The failure, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
    /// The result, with an `@type`, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

/// Response of `projects.operations.list`; `{}` when empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListOperationsResponse {
    /// One page of operations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
    /// Token of the next page, absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
