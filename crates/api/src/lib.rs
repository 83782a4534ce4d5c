//! The wire types of Kiln's REST API: the JSON of `ml.googleapis.com/v1`, field for field.
//!
//! # Layout (reading order)
//! - [`model`]: `Model` and `Version` resources and their list responses.
//! - [`job`]: `Job`, `TrainingInput`, `TrainingOutput` and the job list response.
//! - [`int64`]: the int64-as-string convention.
//! - [`operation`]: long-running `Operation`s and `google.rpc.Status`.
//! - [`error`]: the platform error body and the `google.rpc.Code` ↔ HTTP mapping.
//! - [`predict`]: the online prediction request and response bodies.
//! - [`cursor`]: a byte cursor over JSON text, for the predict path's readers that skip serde.
//! - [`iam`]: IAM policies, and Kiln's tokens and audit log entries.
//! - [`location`]: `projects.locations` and `projects.getConfig`.
//! - [`names`]: resource-name rules (what a valid model or version name is).
//! - [`replies`]: answers without a resource of their own: `{}`, log pages, explanations,
//!   readiness.
//!
//! **Architecture invariant:** this is the only crate whose types derive the wire format. A
//! `Serialize` here is a compatibility promise to every ML Engine client; field names are
//! lowerCamelCase, enums are spelled as the API spells them, and int64 fields are JSON strings.
//! Each type also derives its JSON schema, from which the server writes its OpenAPI document.

pub mod cursor;
pub mod error;
pub mod iam;
pub mod int64;
pub mod job;
pub mod location;
pub mod model;
pub mod names;
pub mod operation;
pub mod predict;
pub mod replies;
pub mod study;

pub use error::{Code, ErrorBody};
pub use iam::{
    AuditEntry, Binding, Identity, ListAuditEntriesResponse, ListTokensResponse, Policy,
    SetIamPolicyRequest, TestIamPermissions, Token, TokenGrant,
};
pub use job::{
    BuiltInAlgorithm, DataFormat, Job, JobMetrics, JobState, ListBuiltInAlgorithmsResponse,
    ListJobsResponse, MetricPoint, MetricSeries, PredictionInput, PredictionOutput, ScaleTier,
    TrainingInput, TrainingOutput,
};
pub use model::{
    Engine, Framework, ListModelsResponse, ListVersionsResponse, Model, Version, VersionState,
};
pub use operation::{ListOperationsResponse, Operation, OperationMetadata, OperationType, Status};
pub use predict::{Instances, PredictRequest, PredictResponse, PredictionErrorBody};
pub use replies::{Empty, ExampleRequest, ExplainResponse, JobLogs, Readiness};

/// The current time as the API writes timestamps (RFC 3339, UTC, microseconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
