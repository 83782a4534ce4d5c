//! Kiln's serving runtimes.
//!
//! # Layout (reading order)
//! - [`ModelRuntime`] (this file): the one trait every runtime implements: predict on JSON
//!   instances, given as values or as the text a request carried.
//! - [`detect`]: which framework a model directory holds, by file names (as ML Engine does).
//! - [`native`]: the runtime for Kiln's own exports, on burn's CPU backend.
//! - [`python`]: TensorFlow, scikit-learn and XGBoost models, served by the framework itself in
//!   worker processes, in the environment of the version's runtime version.
//! - [`onnx`]: the runtime for imported ONNX models, on ONNX Runtime or tract, with the operator
//!   check that version create reports; it reads request text straight into its input tensors.
//! - [`signature`]: a model's inputs and outputs as named tensors, for inference protocols.
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
pub mod python;
pub mod signature;

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
    /// A framework worker process failed while serving the call (it died, or could not start):
    /// the server's fault, not the request's.
    #[error("{0}")]
    Worker(String),
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

    /// Its inputs and outputs as named tensors, as far as the runtime knows them.
    fn signature(&self) -> signature::Signature {
        signature::Signature::default()
    }

    /// What runs the model, for the metrics: `kiln`, `onnxruntime`, `tract`, or a framework's
    /// release with its runtime version.
    fn engine(&self) -> String {
        "kiln".into()
    }

    /// The runtime that predicts through the model's signature `name` (a request's
    /// `signature_name`): `None` for the default signature, which this runtime serves. Models with
    /// one signature refuse any other name.
    fn for_signature(&self, name: &str) -> Result<Option<Arc<dyn ModelRuntime>>, ServeError> {
        default_signature_only(name)
    }
}

/// The signature a request naming none is served by, as TensorFlow Serving names it.
pub const DEFAULT_SIGNATURE: &str = "serving_default";

/// A model with only the default signature: `None` for it, a refusal naming it for any other.
pub fn default_signature_only(name: &str) -> Result<Option<Arc<dyn ModelRuntime>>, ServeError> {
    match name {
        DEFAULT_SIGNATURE => Ok(None),
        other => Err(ServeError::Request(format!(
            "signature_name {other:?}: this model has one signature, {DEFAULT_SIGNATURE}"
        ))),
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

/// What loading a model takes besides its directory: how framework models are served.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The version's `runtimeVersion` (empty: the default).
    pub runtime_version: String,
    /// The version's `pythonVersion` (empty: the runtime's default).
    pub python_version: String,
    /// Most framework worker processes at once.
    pub processes: usize,
    /// Where framework models are served from; `None`: they are refused.
    pub frameworks: Option<python::Frameworks>,
}

/// Loads the custom prediction routine `routine` on the model files in `dir` (whatever they are:
/// the routine reads them).
pub fn load_routine(
    dir: &Path,
    routine: &python::Routine,
    options: &LoadOptions,
) -> Result<Arc<dyn ModelRuntime>, ServeError> {
    load_python(
        dir,
        python::runtimes::PythonFramework::Custom,
        Some(routine),
        options,
    )
}

/// Loads the model in `dir`, whose framework `detect` found.
pub fn load(
    dir: &Path,
    framework: DetectedFramework,
    options: &LoadOptions,
) -> Result<Arc<dyn ModelRuntime>, ServeError> {
    // A loader that trips over files it did not expect must not take the caller with it, nor put
    // its panic text in a version's errorMessage.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        load_unguarded(dir, framework, options)
    }))
    .unwrap_or_else(|_| {
        Err(ServeError::Load(format!(
            "the {} model's files are inconsistent with each other and could not be loaded",
            framework.name()
        )))
    })
}

fn load_unguarded(
    dir: &Path,
    framework: DetectedFramework,
    options: &LoadOptions,
) -> Result<Arc<dyn ModelRuntime>, ServeError> {
    let Some(framework) = python::runtimes::PythonFramework::of(framework) else {
        return match framework {
            DetectedFramework::Kiln => native::load(dir),
            _ => Ok(Arc::new(onnx::OnnxRuntime::load(dir)?)),
        };
    };
    load_python(dir, framework, None, options)
}

fn load_python(
    dir: &Path,
    framework: python::runtimes::PythonFramework,
    routine: Option<&python::Routine>,
    options: &LoadOptions,
) -> Result<Arc<dyn ModelRuntime>, ServeError> {
    let Some(frameworks) = &options.frameworks else {
        return Err(ServeError::Unsupported(format!(
            "{} models are served in framework worker processes, which this caller does not start",
            framework.name()
        )));
    };
    let spec = python::runtimes::spec(
        "version",
        &options.runtime_version,
        &options.python_version,
        framework,
    )
    .map_err(ServeError::Unsupported)?;
    Ok(Arc::new(python::PythonRuntime::load(
        dir,
        &spec,
        routine,
        options.processes,
        frameworks,
    )?))
}
