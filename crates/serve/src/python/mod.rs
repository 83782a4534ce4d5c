//! Models served by their own framework: TensorFlow SavedModels, scikit-learn and XGBoost.
//!
//! Each such model is served by framework worker processes: `predictor.py`, run by the
//! interpreter of the version's runtime environment ([`environment`], built once per runtime
//! version, Python version and framework from [`runtimes`]), loads the model with the framework
//! and predicts each batch it is sent ([`worker`]: length-prefixed JSON frames on its stdin and
//! stdout). Predictions are therefore the framework's own. [`PythonRuntime`] keeps up to
//! `processes` of them (a version's `manualScaling.nodes`), starting them as calls need them;
//! the batcher's threads each take one for a call, so one call is one batch. A worker that dies
//! fails the call it was serving with its exit status and last output; the next call starts
//! another.
//!
//! Unpickling a model runs code the model's author chose, so workers start confined by the
//! caller's [`Confine`] (the server's sandbox): they read the model, the environment and its
//! Python installation, and write only a scratch directory of their own.

pub mod environment;
pub mod runtimes;
mod worker;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};

use serde_json::Value;

use crate::signature::{Signature, TensorSpec};
use crate::{ModelRuntime, ServeError};
use worker::Worker;

/// The worker script, written into each runtime's scratch directory.
const WORKER_SCRIPT: &str = include_str!("predictor.py");

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

/// A model served by framework worker processes.
pub struct PythonRuntime {
    /// Builds the command of a new worker.
    command: Box<dyn Fn() -> Result<Command, ServeError> + Send + Sync>,
    pool: Mutex<Pool>,
    freed: Condvar,
    /// What the first worker described: the engine and, for a SavedModel, its signatures.
    described: Value,
    /// The workers' scratch directory, removed with the runtime.
    _scratch: tempfile::TempDir,
}

/// Workers not serving a call, and how many exist in all.
struct Pool {
    idle: Vec<Worker>,
    started: usize,
    most: usize,
}

impl PythonRuntime {
    /// Builds (or finds) the environment `spec` names and starts one worker on the model in `dir`,
    /// which fails here if the model does not load.
    pub fn load(
        dir: &Path,
        spec: &environment::Spec,
        processes: usize,
        frameworks: &Frameworks,
    ) -> Result<Self, ServeError> {
        let framework = spec.framework;
        let environment = environment::ensure(&frameworks.environments, spec)?;
        std::fs::create_dir_all(&frameworks.scratch).map_err(|error| {
            ServeError::Load(format!("{}: {error}", frameworks.scratch.display()))
        })?;
        let scratch = tempfile::Builder::new()
            .prefix("worker-")
            .tempdir_in(&frameworks.scratch)
            .map_err(|error| {
                ServeError::Load(format!("a scratch directory for the worker: {error}"))
            })?;
        let script = scratch.path().join("predictor.py");
        std::fs::write(&script, WORKER_SCRIPT)
            .map_err(|error| ServeError::Load(format!("{}: {error}", script.display())))?;
        let reach = Reach {
            read: [
                Some(dir.to_path_buf()),
                Some(environment.dir.clone()),
                environment.base.clone(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            write: vec![scratch.path().to_path_buf()],
        };
        let (model, home, confine) = (
            dir.to_path_buf(),
            scratch.path().to_path_buf(),
            frameworks.confine.clone(),
        );
        let command = move || {
            let mut command = Command::new(&environment.python);
            command
                .arg(&script)
                .arg(framework.name())
                .arg(&model)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", &home)
                .env("TMPDIR", &home)
                .env("PYTHONUTF8", "1")
                .env("PYTHONNOUSERSITE", "1")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .current_dir(&home);
            if let Some(confine) = &confine {
                confine(&mut command, &reach).map_err(ServeError::Load)?;
            }
            Ok(command)
        };
        let (first, described) = Worker::start(command()?)?;
        Ok(Self {
            command: Box::new(command),
            pool: Mutex::new(Pool {
                idle: vec![first],
                started: 1,
                most: processes.max(1),
            }),
            freed: Condvar::new(),
            described,
            _scratch: scratch,
        })
    }

    /// What serves the model, such as `scikit-learn 1.9.1`.
    pub fn engine(&self) -> &str {
        self.described["engine"].as_str().unwrap_or_default()
    }

    /// A SavedModel's signatures: each one's inputs and outputs with dtype and shape.
    pub fn signatures(&self) -> Option<&Value> {
        self.described.get("signatures")
    }

    /// Runs one call on a free worker, starting one if fewer than `processes` run.
    fn call(&self, instances: &[&str], signature: Option<&str>) -> Result<Vec<Value>, ServeError> {
        let mut worker = self.take()?;
        let answer = worker.predict(instances, signature);
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match worker.is_alive() {
            true => pool.idle.push(worker),
            false => pool.started -= 1,
        }
        self.freed.notify_one();
        answer
    }

    fn take(&self) -> Result<Worker, ServeError> {
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(worker) = pool.idle.pop() {
                return Ok(worker);
            }
            if pool.started < pool.most {
                pool.started += 1;
                drop(pool);
                let started = (self.command)().and_then(Worker::start);
                return started.map(|(worker, _)| worker).map_err(|error| {
                    let mut pool = self
                        .pool
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    pool.started -= 1;
                    self.freed.notify_one();
                    ServeError::Worker(format!("could not start a framework worker: {error}"))
                });
            }
            pool = self
                .freed
                .wait(pool)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl ModelRuntime for PythonRuntime {
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
            .and_then(|signatures| signatures.get("serving_default"))
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
            outputs: Vec::new(),
        }
    }

    fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError> {
        let texts: Vec<String> = instances.iter().map(Value::to_string).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.call(&texts, None)
    }

    fn predict_json(&self, instances: &[&str]) -> Result<Vec<Value>, ServeError> {
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
        self.call(instances, None)
    }
}
