//! Answers that carry no resource of their own.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{}`, the answer of methods that return nothing (`google.protobuf.Empty`): cancel, and the
/// deletes that finish at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A page of a job's log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobLogs {
    /// The entries, oldest first, each as Cloud Logging writes it.
    pub entries: Vec<Value>,
    /// The line to continue from, as `pageToken`; more lines may arrive while the job runs.
    pub next_page_token: String,
}

/// The answer of `:explain`: one attribution per instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExplainResponse {
    /// Each instance's explanation, in order.
    pub explanations: Vec<Value>,
}

/// A predict request body a version takes: `{"instances": [one example]}`, or no instance where
/// the version's model does not say what it takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExampleRequest {
    /// At most one instance, at typical values.
    pub instances: Vec<Value>,
}

/// The answer of `/readyz`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `ready`, or `unavailable` while the metadata store does not answer.
    pub status: String,
    /// `ok` or `unavailable`.
    pub store: String,
    /// How many versions have their model loaded.
    pub loaded_versions: usize,
}
