//! `projects.locations` and `projects.getConfig`: where work may run and what the project runs as.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a location can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CapabilityType {
    /// Unspecified.
    TypeUnspecified,
    /// Training jobs.
    Training,
    /// Batch prediction jobs.
    BatchPrediction,
    /// Online prediction.
    OnlinePrediction,
}

/// One capability of a location, and the accelerators it has for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// What it is.
    #[serde(rename = "type")]
    pub kind: CapabilityType,
    /// Accelerator types (`NVIDIA_TESLA_T4`, ...) a job there may ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_accelerators: Vec<String>,
}

/// A location (region).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// `projects/{project}/locations/{location}`.
    pub name: String,
    /// What it can do.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// `projects.locations.list`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListLocationsResponse {
    /// One page of locations.
    #[serde(default)]
    pub locations: Vec<Location>,
    /// Where the next page starts, when there is one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
}

/// `projects.getConfig`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetConfigResponse {
    /// The account jobs run as.
    pub service_account: String,
    /// The project's number, where it has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_project: String,
    /// Further configuration.
    #[serde(default)]
    pub config: Config,
}

/// The project's configuration beyond its service account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// The account TPU nodes run as (Kiln has none: empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tpu_service_account: String,
}
