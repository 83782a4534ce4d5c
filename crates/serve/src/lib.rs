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
//! - [`converted`]: framework models served in their ONNX form, where it predicts as the
//!   framework does.
//! - [`load`] (this file): which runtime serves a model, from its framework and the engine asked
//!   for.
//! - [`signature`]: a model's inputs and outputs as named tensors, for inference protocols.
//! - [`tensor`]: tensors as plain data, and [`TensorRuntime`] (this file): the runtimes that
//!   run an inference protocol's tensors without making instances of them (ONNX models whose
//!   inputs all take a batch).
//! - [`instances`]: decoding JSON instances (objects, bare values, CSV lines, `{"b64": ...}`)
//!   into raw model inputs.
//! - [`batcher`]: dynamic batching of concurrent predict requests onto one model, with a bounded
//!   queue and a bounded pool of blocking workers.
//! - [`histogram`]: lock-free latency histograms, such as the batcher's time to answer.
//! - [`explain`]: sampled Shapley attributions of tabular instances, from predictions alone.
//! - [`batch`]: batch prediction over files (JSON lines, CSV, TFRecord of `tf.Example`) with
//!   parallel workers writing sharded results.
//!
//! **Architecture invariant:** runtimes are synchronous and CPU-bound and run only on blocking
//! threads (the batcher's pool, batch prediction's workers), never on the async executor. Nothing
//! here knows about HTTP.

pub mod batch;
pub mod batcher;
pub mod converted;
pub mod detect;
pub mod explain;
pub mod histogram;
pub mod instances;
pub mod native;
pub mod onnx;
pub mod python;
pub mod signature;
pub mod tensor;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

pub use detect::{DetectedFramework, detect};
pub use kiln_api::{Engine, Instances};

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

    /// An instance the model takes, for a user to start from: by default shaped by
    /// [`ModelRuntime::signature`]'s inputs ([`signature::example_instance`]).
    fn example_instance(&self) -> Option<Value> {
        signature::example_instance(&self.signature())
    }

    /// What computes its predictions.
    fn engine(&self) -> Engine {
        Engine::Kiln
    }

    /// The same in words, for the metrics: `kiln`, `onnxruntime`, `tract`, a framework's release
    /// with its runtime version, or an ONNX engine with the converter and framework it serves.
    fn engine_description(&self) -> String {
        "kiln".into()
    }

    /// The runtime that predicts through the model's signature `name` (a request's
    /// `signature_name`): `None` for the default signature, which this runtime serves. Models with
    /// one signature refuse any other name.
    fn for_signature(&self, name: &str) -> Result<Option<Arc<dyn ModelRuntime>>, ServeError> {
        default_signature_only(name)
    }

    /// The same model run on named tensors, where the runtime reads them itself; `None`: it
    /// takes instances only, and a tensor's rows are made into instances for it.
    fn tensors(&self) -> Option<&dyn TensorRuntime> {
        None
    }
}

/// A loaded model that runs on named tensors, as inference protocols carry them: for large
/// requests, building and reading one JSON value per element costs more than the model.
pub trait TensorRuntime: Send + Sync {
    /// Its outputs for `inputs`, each with the batch along its first dimension. A tensor that
    /// does not fit an input is refused naming the input.
    fn infer(&self, inputs: Vec<tensor::Tensor>) -> Result<Vec<tensor::Tensor>, ServeError>;
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
    /// The version's `engine` (unspecified: Kiln chooses).
    pub engine: Engine,
    /// Most framework worker processes at once.
    pub processes: usize,
    /// Where framework models are served from; `None`: they are refused.
    pub frameworks: Option<python::Frameworks>,
}

/// The engines that may serve a model the version names as `framework` (unspecified: any), or a
/// custom prediction routine.
pub fn engines(framework: kiln_api::Framework, routine: bool) -> &'static [Engine] {
    use kiln_api::Framework;
    match framework {
        _ if routine => &[Engine::Framework],
        Framework::Kiln => &[Engine::Kiln],
        Framework::Onnx => &[Engine::OnnxRuntime, Engine::Tract],
        Framework::Tensorflow | Framework::ScikitLearn | Framework::Xgboost => {
            &[Engine::Framework, Engine::OnnxRuntime, Engine::Tract]
        }
        Framework::FrameworkUnspecified => &[
            Engine::Kiln,
            Engine::OnnxRuntime,
            Engine::Tract,
            Engine::Framework,
        ],
    }
}

/// Whether a TensorFlow, scikit-learn or XGBoost model served on `engine` is served converted to
/// ONNX ([`converted`]) rather than by its framework.
pub fn converts(engine: Engine) -> bool {
    matches!(engine, Engine::OnnxRuntime | Engine::Tract)
}

/// Whether `engine` may serve what `engines` was asked about, or the refusal naming the field.
pub fn check_engine(
    framework: kiln_api::Framework,
    routine: bool,
    engine: Engine,
) -> Result<(), String> {
    let allowed = engines(framework, routine);
    if engine == Engine::EngineUnspecified || allowed.contains(&engine) {
        return Ok(());
    }
    let what = match (routine, framework) {
        (true, _) => "custom prediction routines".to_string(),
        (false, kiln_api::Framework::Kiln) => "Kiln's own exports".to_string(),
        (false, framework) => format!("{} models", framework.name()),
    };
    Err(format!(
        "Field: version.engine Error: {what} are served by {}, not {}",
        allowed
            .iter()
            .map(|engine| engine.name())
            .collect::<Vec<_>>()
            .join(" or "),
        engine.name()
    ))
}

/// Loads the custom prediction routine `routine` on the model files in `dir` (whatever they are:
/// the routine reads them).
pub fn load_routine(
    dir: &Path,
    routine: &python::Routine,
    options: &LoadOptions,
) -> Result<Arc<dyn ModelRuntime>, ServeError> {
    check_engine(
        kiln_api::Framework::FrameworkUnspecified,
        true,
        options.engine,
    )
    .map_err(ServeError::Unsupported)?;
    let spec = python_spec(python::runtimes::PythonFramework::Custom, options)?;
    load_python(dir, &spec, Some(routine), options)
}

/// Loads the model in `dir`, whose framework `detect` found, on the engine `options` asks for
/// (one of [`engines`]; unspecified: Kiln's runtime for its exports, ONNX Runtime for ONNX
/// models where its library is found and tract where not, the framework for framework models).
/// ONNX Runtime and tract serve framework models converted to ONNX ([`converted`]).
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
    let engine = options.engine;
    check_engine(framework.framework(), false, engine).map_err(ServeError::Unsupported)?;
    let environments = options
        .frameworks
        .as_ref()
        .map(|frameworks| frameworks.environments.as_path());
    let Some(python_framework) = python::runtimes::PythonFramework::of(framework) else {
        return match framework {
            DetectedFramework::Kiln => native::load(dir),
            _ => Ok(Arc::new(onnx::OnnxRuntime::load(
                dir,
                engine,
                environments,
            )?)),
        };
    };
    let spec = python_spec(python_framework, options)?;
    if !converts(engine) {
        return load_python(dir, &spec, None, options);
    }
    let frameworks = options
        .frameworks
        .as_ref()
        .ok_or_else(|| no_workers(python_framework))?;
    Ok(Arc::new(converted::ConvertedRuntime::load(
        dir, &spec, engine, frameworks,
    )?))
}

fn no_workers(framework: python::runtimes::PythonFramework) -> ServeError {
    ServeError::Unsupported(format!(
        "{} models are served in framework worker processes, which this caller does not start",
        framework.name()
    ))
}

/// The environment that serves `framework` for the runtime and Python versions of `options`.
fn python_spec(
    framework: python::runtimes::PythonFramework,
    options: &LoadOptions,
) -> Result<python::environment::Spec, ServeError> {
    python::runtimes::spec(
        "version",
        &options.runtime_version,
        &options.python_version,
        framework,
    )
    .map_err(ServeError::Unsupported)
}

fn load_python(
    dir: &Path,
    spec: &python::environment::Spec,
    routine: Option<&python::Routine>,
    options: &LoadOptions,
) -> Result<Arc<dyn ModelRuntime>, ServeError> {
    let frameworks = options
        .frameworks
        .as_ref()
        .ok_or_else(|| no_workers(spec.framework))?;
    Ok(Arc::new(python::PythonRuntime::load(
        dir,
        spec,
        routine,
        options.processes,
        frameworks,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_api::Framework;

    #[test]
    fn each_model_takes_the_engines_that_can_serve_it() {
        assert!(check_engine(Framework::Kiln, false, Engine::Kiln).is_ok());
        assert!(check_engine(Framework::ScikitLearn, false, Engine::Tract).is_ok());
        assert!(check_engine(Framework::FrameworkUnspecified, false, Engine::Framework).is_ok());
        for framework in [Framework::Onnx, Framework::Tensorflow] {
            assert!(check_engine(framework, false, Engine::EngineUnspecified).is_ok());
        }
        let refused = check_engine(Framework::Onnx, false, Engine::Framework).unwrap_err();
        assert_eq!(
            refused,
            "Field: version.engine Error: ONNX models are served by ONNX_RUNTIME or TRACT, not \
             FRAMEWORK"
        );
        let refused = check_engine(Framework::Xgboost, false, Engine::Kiln).unwrap_err();
        assert!(refused.contains("XGBOOST models"), "{refused}");
        let refused =
            check_engine(Framework::FrameworkUnspecified, true, Engine::OnnxRuntime).unwrap_err();
        assert!(
            refused.contains("custom prediction routines are served by FRAMEWORK"),
            "{refused}"
        );
    }
}
