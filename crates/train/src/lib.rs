//! Kiln's built-in training algorithms.
//!
//! # Layout (reading order)
//! - [`accelerator`]: the training device: the CPU, or a CUDA GPU in a `cuda` build.
//! - [`algorithm`]: the registry of built-in algorithms by name (`wide_deep`, `linear`, `dnn`, and
//!   the ML Engine container image names that mean the same) and their command-line arguments.
//! - [`schema`]: the user's description of the data (column names, label, column types, crosses).
//! - [`data`]: reading CSV, JSON lines and TFRecord files (plain or gzip, by pattern) as rows.
//! - [`stream`]: rows encoded in parallel blocks, kept in memory or streamed through a shuffle
//!   buffer each epoch.
//! - [`datagen`]: synthetic data with a known signal (the Criteo layout) for tests and benchmarks.
//! - [`resolve`]: turning a schema plus training data into resolved feature columns, filling in
//!   what the user left out (types, vocabularies, normalisation, bucket boundaries).
//! - [`sparse`]: row-sparse optimizers (lazy Adam, Adagrad, FTRL) for Kiln's embedding tables.
//! - [`metrics`]: evaluation metrics (accuracy, AUC, log loss, RMSE, MAE).
//! - [`telemetry`]: TensorBoard event files (loss, throughput, eval metrics) and the tuning
//!   trial's hypertune file.
//! - `epochs`: the epoch loop all trainers share: shuffles, progress lines, evaluation,
//!   checkpoints, `max_steps` and early stopping.
//! - [`trainer`]: the feature-column trainer's step: batches, loss, burn's backward pass, sparse
//!   updates, and the export.
//! - [`sequential`]: the `sequential` algorithm: Keras-style layer definitions over images (IDX,
//!   CSV), text (JSON lines, with a Keras-compatible tokenizer) or vectors.
//!
//! This crate knows nothing of jobs or servers: it turns files into an exported model directory,
//! and reports progress through a callback.

pub mod accelerator;
pub mod algorithm;
pub mod data;
pub mod datagen;
mod epochs;
pub mod metrics;
pub mod resolve;
pub mod schema;
pub mod sequential;
pub mod sparse;
pub mod stream;
pub mod telemetry;
pub mod trainer;

pub use algorithm::{Algorithm, Family, TrainArgs};
pub use schema::Schema;
pub use sequential::SequentialConfig;
pub use trainer::{EarlyStopping, TrainConfig, TrainOutcome, train};

/// Errors from training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A data or schema file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The data does not fit the schema, or the schema is invalid.
    #[error("{0}")]
    Data(String),
    /// A training argument is invalid.
    #[error("{0}")]
    Config(String),
    /// The model cannot be built or written.
    #[error(transparent)]
    Model(#[from] kiln_model::ModelError),
}
