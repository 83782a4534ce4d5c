//! Models served by their own framework: TensorFlow SavedModels, scikit-learn and XGBoost, and
//! custom prediction routines.
//!
//! Each such model is served by framework worker processes: `predictor.py`, run by the
//! interpreter of the version's runtime environment ([`environment`], built once per runtime
//! version, Python version and framework from [`runtimes`]), loads the model with the framework
//! and predicts each batch it is sent ([`worker`]: length-prefixed frames on its stdin and stdout,
//! JSON or rows of numbers as one raw matrix). Predictions are therefore the framework's own.
//! [`PythonRuntime`] holds a [`pool`] of `processes` of them (a version's `manualScaling.nodes`),
//! all started at load; the batcher's threads each take one for a call, so one call is one batch.
//! A worker that dies fails the call it was serving with its exit status and last output; the
//! next call starts another.
//!
//! Unpickling a model runs code the model's author chose, so workers start confined by the
//! caller's [`Confine`] (the server's sandbox): they read the model, the environment and its
//! Python installation, and write only a scratch directory of their own.

pub mod convert;
pub mod environment;
mod launch;
mod pool;
pub mod runtimes;
mod worker;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;

use crate::signature::{Signature, TensorSpec};
use crate::{ModelRuntime, ServeError};
use runtimes::PythonFramework;
use worker::{Batch, Worker};

/// What a confined worker may reach besides the system.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reach {
    /// Read and execute.
    pub read: Vec<PathBuf>,
    /// Read and write.
    pub write: Vec<PathBuf>,
}

/// Confines a worker's command before it starts (the server's sandbox).
pub type Confine = Arc<dyn Fn(&mut Command, &Reach) -> Result<(), String> + Send + Sync>;

/// Where framework models are served from.
#[derive(Clone)]
pub struct Frameworks {
    /// Where runtime environments are built (shared by every version and server process).
    pub environments: PathBuf,
    /// Where workers' scratch directories go.
    pub scratch: PathBuf,
    /// How workers are confined; `None` runs them as the caller (`kiln local predict`).
    pub confine: Option<Confine>,
}

impl std::fmt::Debug for Frameworks {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Frameworks")
            .field("environments", &self.environments)
            .field("scratch", &self.scratch)
            .field("confined", &self.confine.is_some())
            .finish()
    }
}

/// A custom prediction routine: ML Engine's `predictionClass` and `packageUris`.
#[derive(Debug, Clone, PartialEq)]
pub struct Routine {
    /// `module.Class`, with `from_path(model_dir)` and `predict(instances, **kwargs)`.
    pub class: String,
    /// The sdists and wheels that hold it, installed (without their dependencies: the runtime
    /// has the frameworks) into the runtime's scratch directory before the first worker starts.
    pub packages: Vec<PathBuf>,
}

/// A model served by framework worker processes, through one of its signatures.
pub struct PythonRuntime {
    pool: Arc<pool::Pool>,
    framework: PythonFramework,
    /// Whether instances that are rows of numbers travel as one matrix, and how.
    rows: Option<RowInput>,
    /// What the first worker described: the engine and, for a SavedModel, its signatures.
    described: Arc<Value>,
    /// The runtime version and Python version the workers run on.
    runtime: String,
    /// The signature calls go to (`None`: the model's default).
    signature: Option<String>,
    /// What started the workers: their scratch directory, removed with the last runtime on the
    /// pool.
    _launcher: Arc<launch::Launcher>,
}

/// How a model takes rows of numbers: their width when the model declares it, and whether it
/// computes in `float32`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RowInput {
    width: Option<usize>,
    float32: bool,
}

impl RowInput {
    /// How `framework`'s model, as its worker `described` it, takes rows through `signature`:
    /// scikit-learn and XGBoost always, a SavedModel whose one input is a `float32` matrix.
    fn of(framework: PythonFramework, described: &Value, signature: Option<&str>) -> Option<Self> {
        let width = |value: &Value| value.as_u64().map(|width| width as usize);
        match framework {
            PythonFramework::ScikitLearn | PythonFramework::XgBoost => Some(RowInput {
                width: width(&described["features"]),
                float32: framework == PythonFramework::XgBoost,
            }),
            PythonFramework::TensorFlow => {
                let name = signature.unwrap_or(crate::DEFAULT_SIGNATURE);
                let inputs = described["signatures"][name]["inputs"].as_object()?;
                let [(_, spec)] = inputs.iter().collect::<Vec<_>>()[..] else {
                    return None;
                };
                let shape = spec["shape"].as_array()?;
                (spec["dtype"] == "float32" && shape.len() == 2).then(|| RowInput {
                    width: width(&shape[1]),
                    float32: true,
                })
            }
            PythonFramework::Custom => None,
        }
    }

    /// The instances as one matrix, if every one is a list of numbers of one width (the model's).
    fn matrix(&self, instances: &[&str]) -> Option<(Vec<f64>, usize)> {
        let mut width = self.width;
        let mut values = Vec::new();
        for text in instances {
            let row: Vec<f64> = serde_json::from_str(text).ok()?;
            match width {
                Some(width) if width != row.len() => return None,
                Some(_) => {}
                None => width = Some(row.len()),
            }
            values.extend(row);
        }
        width
            .filter(|width| *width > 0)
            .map(|width| (values, width))
    }
}

impl PythonRuntime {
    /// Builds (or finds) the environment `spec` names and starts one worker on the model in `dir`,
    /// which fails here if the model does not load. A `routine`'s packages are installed first.
    pub fn load(
        dir: &Path,
        spec: &environment::Spec,
        routine: Option<&Routine>,
        processes: usize,
        frameworks: &Frameworks,
    ) -> Result<Self, ServeError> {
        let framework = spec.framework;
        let environment = environment::ensure(&frameworks.environments, spec)?;
        let launcher = Arc::new(launch::Launcher::new(
            dir,
            &environment,
            frameworks,
            processes,
        )?);
        if let Some(routine) = routine {
            // The packages' setup scripts are the user's code: confined like the workers.
            let mut install = launcher.command(&routine.packages)?;
            install
                .args(environment::PIP_INSTALL)
                .args(["--no-deps", "--no-build-isolation", "--target"])
                .arg(launcher.packages())
                .args(&routine.packages);
            environment::run(&mut install, "installing packageUris")?;
        }
        let class = routine.map(|routine| routine.class.clone());
        let model = dir.to_path_buf();
        let starter = Arc::clone(&launcher);
        let command = move || {
            let mut command = starter.command(&[])?;
            command
                .arg(starter.scratch().join("predictor.py"))
                .arg(framework.name())
                .arg(&model);
            command.args(&class);
            Ok(command)
        };
        let (first, described) = Worker::start(command()?)?;
        let pool = Arc::new(pool::Pool::new(Box::new(command), first, processes));
        pool.fill();
        Ok(Self {
            rows: RowInput::of(framework, &described, None),
            framework,
            pool,
            described: Arc::new(described),
            runtime: format!("runtime {}, Python {}", spec.runtime.name, spec.python),
            signature: None,
            _launcher: launcher,
        })
    }

    /// The framework release that serves the model, such as `scikit-learn 1.9.1`.
    pub fn release(&self) -> &str {
        self.described["engine"].as_str().unwrap_or_default()
    }

    /// A SavedModel's signatures: each one's inputs and outputs with dtype and shape.
    pub fn signatures(&self) -> Option<&Value> {
        self.described.get("signatures")
    }
}

impl ModelRuntime for PythonRuntime {
    fn engine(&self) -> kiln_api::Engine {
        kiln_api::Engine::Framework
    }

    fn engine_description(&self) -> String {
        format!("{} ({})", self.release(), self.runtime)
    }

    fn signature(&self) -> Signature {
        let tensors = |specs: &Value| -> Vec<TensorSpec> {
            specs
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, spec)| TensorSpec {
                    name: name.clone(),
                    dtype: spec["dtype"]
                        .as_str()
                        .and_then(crate::signature::dtype)
                        .unwrap_or("string"),
                    shape: spec["shape"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|dim| dim.as_i64().unwrap_or(-1))
                        .collect(),
                })
                .collect()
        };
        if let Some(default) = self
            .signatures()
            .and_then(|signatures| signatures.get(crate::DEFAULT_SIGNATURE))
        {
            return Signature {
                inputs: tensors(&default["inputs"]),
                outputs: tensors(&default["outputs"]),
            };
        }
        // A feature-row model: one row of feature values per instance.
        let width = self.described["features"].as_i64().unwrap_or(-1);
        Signature {
            inputs: vec![TensorSpec {
                name: "instances".into(),
                dtype: "float32",
                shape: vec![-1, width],
            }],
            outputs: tensors(&self.described["outputs"]),
        }
    }

    fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError> {
        let texts: Vec<String> = instances.iter().map(Value::to_string).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.predict_json(&texts)
    }

    fn predict_json(&self, instances: &[&str]) -> Result<Vec<Value>, ServeError> {
        let signature = self.signature.as_deref();
        if let Some(rows) = self.rows
            && let Some((values, width)) = rows.matrix(instances)
        {
            let batch = Batch::Rows {
                values: &values,
                width,
                float32: rows.float32,
            };
            return self.pool.call(&batch, signature);
        }
        // The worker parses the whole request, so text that is not JSON must be caught here to
        // fail its own instance rather than the call.
        for (index, text) in instances.iter().enumerate() {
            if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                return Err(ServeError::Instance {
                    index,
                    message: error.to_string(),
                });
            }
        }
        self.pool.call(&Batch::Json(instances), signature)
    }

    fn for_signature(&self, name: &str) -> Result<Option<Arc<dyn ModelRuntime>>, ServeError> {
        let Some(signatures) = self.signatures() else {
            return crate::default_signature_only(name);
        };
        if name == crate::DEFAULT_SIGNATURE {
            return Ok(None);
        }
        if signatures.get(name).is_none() {
            let names: Vec<&str> = signatures
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, _)| name.as_str())
                .collect();
            return Err(ServeError::Request(format!(
                "the SavedModel has no signature {name:?}; its signatures are {}",
                names.join(", ")
            )));
        }
        Ok(Some(Arc::new(PythonRuntime {
            pool: Arc::clone(&self.pool),
            framework: self.framework,
            rows: RowInput::of(self.framework, &self.described, Some(name)),
            described: Arc::clone(&self.described),
            runtime: self.runtime.clone(),
            signature: Some(name.to_string()),
            _launcher: Arc::clone(&self._launcher),
        })))
    }
}
