//! Kiln's serving runtimes.
//!
//! # Layout (reading order)
//! - [`ModelRuntime`] (this file): the one trait every runtime implements: predict on JSON
//!   instances, given as values or as the text a request carried.
//! - [`detect`]: which framework a model directory holds, by file names (as ML Engine does).
//! - [`native`]: the runtime for Kiln's own exports, on burn's CPU backend.
//! - [`onnx`]: the runtime for imported ONNX models, on ONNX Runtime or tract, with the operator
//!   check that version create reports; it reads request text straight into its input tensors.
//! - [`instances`]: decoding JSON instances (objects, bare values, CSV lines, `{"b64": ...}`)
//!   into raw model inputs.
//! - [`batcher`]: dynamic batching of concurrent predict requests onto one model, with a bounded
//!   queue and a bounded pool of blocking workers.
//! - [`explain`]: sampled Shapley attributions of tabular instances, from predictions alone.
//! - [`batch`]: batch prediction over files (JSON lines, CSV, TFRecord of `tf.Example`) with
//!   parallel workers writing sharded results.
//!
//! **Architecture invariant:** runtimes are synchronous and CPU-bound and run only on blocking
//! threads (the batcher's pool, batch prediction's workers), never on the async executor. Nothing
//! here knows about HTTP.

pub mod batch;
pub mod batcher;
pub mod detect;
pub mod explain;
pub mod instances;
pub mod native;
pub mod onnx;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

pub use detect::{DetectedFramework, detect};
pub use kiln_api::Instances;

/// Errors from loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The directory holds no model this build can serve; the message says what was found.
    #[error("{0}")]
    Unsupported(String),
    /// The model files are present but do not load.
    #[error("failed to load the model: {0}")]
    Load(String),
    /// An instance does not fit the model's inputs (ML Engine's "Invalid inputs").
    #[error("Failed to process element: {index} of 'instances' list. Error: {message}")]
    Instance {
        /// Position of the bad instance.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The request as a whole is unusable.
    #[error("{0}")]
    Request(String),
}

/// A loaded model that predicts.
pub trait ModelRuntime: Send + Sync + 'static {
    /// One output object per instance, in order.
    fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError>;

    /// The same for instances given as JSON text, as predict requests carry them (not yet
    /// checked as JSON: text that is not fails its instance). By default each is parsed into a
    /// value for [`ModelRuntime::predict`]; a runtime that can read the text straight into its
    /// inputs overrides this, since building the values is most of the cost of a large request.
    fn predict_json(&self, instances: &[&str]) -> Result<Vec<Value>, ServeError> {
        self.predict(&parse_instances(instances)?)
    }
}

/// Writes instances as JSON text, as [`batcher::Batcher::predict`] takes them.
pub fn instance_text(instances: &[Value]) -> Instances {
    Instances::from_texts(instances.iter().map(Value::to_string))
}

/// Parses instances' JSON text into values.
pub fn parse_instances(instances: &[&str]) -> Result<Vec<Value>, ServeError> {
    instances
        .iter()
        .enumerate()
        .map(|(index, instance)| {
            serde_json::from_str(instance).map_err(|error| ServeError::Instance {
                index,
                message: error.to_string(),
            })
        })
        .collect()
}

/// Loads the model in `dir`, whose framework `detect` found.
pub fn load(dir: &Path, framework: DetectedFramework) -> Result<Arc<dyn ModelRuntime>, ServeError> {
    // A loader that trips over files it did not expect must not take the caller with it, nor put
    // its panic text in a version's errorMessage.
    std::panic::catch_unwind(|| load_unguarded(dir, framework)).unwrap_or_else(|_| {
        Err(ServeError::Load(format!(
            "the {} model's files are inconsistent with each other and could not be loaded",
            framework.name()
        )))
    })
}

fn load_unguarded(
    dir: &Path,
    framework: DetectedFramework,
) -> Result<Arc<dyn ModelRuntime>, ServeError> {
    match framework {
        DetectedFramework::Kiln => native::load(dir),
        DetectedFramework::Onnx => Ok(Arc::new(onnx::OnnxRuntime::load(dir)?)),
        DetectedFramework::TensorFlow
        | DetectedFramework::ScikitLearn
        | DetectedFramework::XgBoost => Err(ServeError::Unsupported(format!(
            "{} models cannot be served by this Kiln build; export the model in Kiln's format \
                 (kiln_model.json) or to ONNX (model.onnx) instead",
            framework.name()
        ))),
    }
}
