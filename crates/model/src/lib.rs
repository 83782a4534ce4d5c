//! Kiln's native model: what a trained built-in model *is*, independent of how it was trained
//! or how it is served.
//!
//! # Layout (reading order)
//! - [`columns`]: feature columns (numeric, bucketized, categorical by vocabulary or hash bucket,
//!   crossed) and the transform from a raw example to dense values and sparse ids.
//! - [`table`]: host-side embedding tables, the rows that sparse optimizers update.
//! - [`network`]: the burn module for the dense part and the Wide & Deep forward pass.
//! - [`spec`]: the model's description (task, labels, columns, network shape, signature).
//! - [`export`]: the on-disk format (`kiln_model.json` + `weights.safetensors`) and its loader.
//! - [`predict`]: batch inference on raw examples, producing TensorFlow-canned-estimator outputs.
//! - [`sequential`]: Keras-style Sequential models (Dense, Conv2D, Embedding, ...) over images,
//!   text or vectors, with their preprocessing (pixel scale, tokenizer) saved alongside.
//!
//! Training (`kiln-train`) and serving (`kiln-serve`) both build on this crate, so a model is
//! transformed and evaluated by exactly one piece of code in both places: no train/serve skew.

pub mod columns;
pub mod export;
pub mod network;
pub mod predict;
pub mod sequential;
pub mod spec;
pub mod table;

pub use columns::{Columns, Encoded, RawValue};
pub use export::{EXPORT_FILE, WEIGHTS_FILE, format_of, load, save};
pub use network::{Model, forward, gather};
pub use predict::{Prediction, predict};
pub use spec::{ModelKind, ModelSpec, Task};
pub use table::Table;

/// Errors from reading, writing or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The export directory is missing a file or a file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The model description or the weights are not a valid Kiln model.
    #[error("invalid Kiln model: {0}")]
    Format(String),
    /// An input example does not fit the model's signature.
    #[error("{0}")]
    Input(String),
}
