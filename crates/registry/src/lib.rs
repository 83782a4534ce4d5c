//! Kiln's model registry: what the `projects.models`, `projects.models.versions`,
//! `projects.operations` and `projects.predict` methods *do*, independent of HTTP.
//!
//! # Layout (reading order)
//! - [`error`]: `RegistryError`, the errors callers branch on (each maps to one API status).
//! - [`list`]: list parameters, the `filter` language and paging shared by every list method.
//! - [`operations`]: creating and finishing long-running operations.
//! - [`registry`]: the `Registry` service: models, versions, default-version rules, predict.
//! - `routes`: where predict requests go, remembered between changes so the hot path skips the
//!   store.
//! - [`serving`]: a version that serves and its loaded model: predict and inference on it.
//! - [`jobs`]: the `Jobs` service: training and batch prediction jobs from submission to a final
//!   state.
//! - `batch`: batch prediction jobs' input checks, the replica they run, and their counts.
//! - [`curves`]: a job's training curves, from the event files under its job directory.
//! - [`tuning`]: hyperparameter tuning jobs: the spec's validation, trial records, best-first order.
//! - [`studies`]: the `Studies` service: Vizier-style studies and trials over the tuner.
//! - [`owners`]: which server watches each unfinished job and operation when several share a
//!   database: leases, and taking over what a gone server left.
//! - [`queue`]: the FIFO queue that holds jobs until their ML units fit the quota.
//! - [`access`]: the `Access` service: tokens, authentication, IAM policies and the audit log.
//! - `recent`: answers from the store kept for a second, so authentication reads no metadata on
//!   the predict path.
//!
//! **Architecture invariant:** REST handlers and CLI commands call these functions; every rule of
//! the API (a model with versions cannot be deleted, the first version becomes the default, ...)
//! lives here once. **API boundary:** takes and returns `kiln-api` types.

pub mod access;
mod batch;
pub mod curves;
pub mod error;
pub mod jobs;
pub mod list;
pub mod locations;
pub mod operations;
pub mod owners;
pub mod queue;
mod recent;
pub mod registry;
mod routes;
pub mod serving;
mod stats;
pub mod studies;
pub mod tuning;

pub use access::Access;
pub use error::RegistryError;
pub use jobs::{JobSettings, Jobs};
pub use kiln_serve::batcher::BatchConfig;
pub use list::{Filter, ListParams};
pub use registry::{PredictTarget, Registry};
pub use serving::Serving;
pub use stats::VersionStats;
pub use studies::Studies;
