//! `kiln train`, `kiln local train`, `kiln local predict` and `kiln local batch-predict`: no server
//! needed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kiln_api::model::Framework;
use kiln_serve::DetectedFramework;
use kiln_serve::batch::{BatchJob, BatchSummary, InputFormat};
use kiln_train::{Algorithm, TrainArgs as AlgorithmArgs, TrainOutcome};

use crate::client::Context;
use crate::instances::InstanceArgs;
use crate::output;

/// `kiln train ALGORITHM [ARGS...]`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Built-in algorithm: wide_deep, linear, dnn, sequential (or an ML Engine built-in algorithm image URI).
    pub algorithm: String,
    /// Output directory; also accepted among the algorithm's arguments.
    #[arg(long)]
    pub job_dir: Option<PathBuf>,
    /// The algorithm's arguments, such as --training_data_path=FILE --schema=FILE --max_steps=1000.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `kiln local ...`.
#[derive(Debug, clap::Subcommand)]
pub enum LocalCommand {
    /// Run a trainer locally, as `gcloud ai-platform local train`: a Python module, or a built-in
    /// algorithm named by --master-image-uri.
    Train(Box<LocalTrainArgs>),
    /// Batch prediction over files with a model directory (what a batch prediction job runs).
    BatchPredict(Box<BatchPredictArgs>),
    /// Predict with a model directory, as `gcloud ai-platform local predict`.
    Predict(Box<LocalPredictArgs>),
}

/// Flags of `kiln local predict`.
#[derive(Debug, clap::Args)]
pub struct LocalPredictArgs {
    /// The exported model directory.
    #[arg(long)]
    pub model_dir: PathBuf,
    #[command(flatten)]
    pub instances: InstanceArgs,
    /// Framework (detected from the files when absent).
    #[arg(long)]
    pub framework: Option<String>,
    /// A custom prediction routine's `module.Class` (with --package-uris), which serves the
    /// model instead of a framework.
    #[arg(long)]
    pub prediction_class: Option<String>,
    /// The sdists or wheels that hold --prediction-class, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub package_uris: Vec<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Which runtime serves a TensorFlow, scikit-learn or XGBoost model, as a version's
/// `runtimeVersion` and `pythonVersion` choose it on the server.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// The runtime version whose framework releases serve the model [default: the newest].
    #[arg(long)]
    pub runtime_version: Option<String>,
    /// The Python version of the runtime [default: the runtime's].
    #[arg(long)]
    pub python_version: Option<String>,
    /// Where runtime environments are built and kept [default: ~/.kiln/runtimes].
    #[arg(long, env = "KILN_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// What computes predictions: kiln, onnx-runtime, tract or framework, as a version's
    /// `engine` [default: chosen as the server does].
    #[arg(long, value_parser = parse_engine)]
    pub engine: Option<kiln_serve::Engine>,
}

/// An engine named as the API spells it or in lower case with dashes.
fn parse_engine(text: &str) -> Result<kiln_serve::Engine, String> {
    serde_json::from_value(serde_json::Value::String(super::enum_value(text)))
        .map_err(|_| format!("{text:?} is not an engine: kiln, onnx-runtime, tract or framework"))
}

impl RuntimeArgs {
    /// How to load a model with up to `processes` framework workers, unconfined (the caller's
    /// own model, as `gcloud ai-platform local predict` runs it; a batch prediction replica is
    /// confined as a whole by its launcher).
    fn load_options(&self, processes: usize) -> kiln_serve::LoadOptions {
        kiln_serve::LoadOptions {
            runtime_version: self.runtime_version.clone().unwrap_or_default(),
            python_version: self.python_version.clone().unwrap_or_default(),
            engine: self.engine.unwrap_or_default(),
            processes,
            frameworks: Some(kiln_serve::python::Frameworks {
                environments: self.runtime_dir.clone().unwrap_or_else(|| {
                    super::server::default_data_dir().join(kiln_server::RUNTIMES_DIR)
                }),
                scratch: std::env::temp_dir(),
                confine: None,
            }),
        }
    }
}

/// Flags of `kiln local batch-predict`: what a batch prediction job's replica runs.
#[derive(Debug, clap::Args)]
pub struct BatchPredictArgs {
    /// The exported model directory.
    #[arg(long)]
    pub model_dir: PathBuf,
    /// json (or text), csv, tf-record or tf-record-gzip.
    #[arg(long)]
    pub data_format: String,
    /// Input files, comma-separated; a trailing `*` matches any suffix. Files in a bucket
    /// (`gs://`, `s3://`) are downloaded first.
    #[arg(long, value_delimiter = ',', required = true)]
    pub input_paths: Vec<String>,
    /// Directory for `prediction.results-*` and `prediction.errors_stats-*`; in a bucket, they are
    /// uploaded at the end.
    #[arg(long)]
    pub output_path: PathBuf,
    /// Parallel workers (one output shard each); default one per core.
    #[arg(long)]
    pub max_worker_count: Option<usize>,
    /// Instances per model call.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Also write the run's counts as JSON to this file (`FILE.<rank>` with `--part-by-rank`).
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Run one part of the job, the `RANK`-th of `WORLD_SIZE` (set by the replica's launcher):
    /// each replica of a batch prediction job on a cluster is one part.
    #[arg(long, hide = true)]
    pub part_by_rank: bool,
    /// Framework the model is served as (detected from the files when absent; `xgboost` serves a
    /// pickled XGBoost model).
    #[arg(long)]
    pub framework: Option<String>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Flags of `kiln local train`.
#[derive(Debug, clap::Args)]
pub struct LocalTrainArgs {
    /// Python module to run as `python -m`.
    #[arg(
        long,
        required_unless_present = "master_image_uri",
        conflicts_with = "master_image_uri"
    )]
    pub module_name: Option<String>,
    /// Directory of the trainer package; the module runs in its parent (default: the current directory).
    #[arg(long)]
    pub package_path: Option<PathBuf>,
    /// The built-in algorithm to run (`kiln/wide_deep`, `gcr.io/cloud-ml-algos/wide_deep_learner_cpu`, ...).
    #[arg(long)]
    pub master_image_uri: Option<String>,
    /// Output directory, appended to the trainer's arguments as --job-dir.
    #[arg(long)]
    pub job_dir: Option<PathBuf>,
    /// Run parameter servers and workers beside the chief, as local processes.
    #[arg(long)]
    pub distributed: bool,
    /// Parameter servers with --distributed.
    #[arg(long, default_value_t = 2)]
    pub parameter_server_count: usize,
    /// Workers with --distributed.
    #[arg(long, default_value_t = 2)]
    pub worker_count: usize,
    /// Evaluators with --distributed.
    #[arg(long, default_value_t = 0)]
    pub evaluator_count: usize,
    /// First port of the contiguous block the distributed replicas listen on.
    #[arg(long, default_value_t = 27182)]
    pub start_port: u16,
    /// Arguments for the trainer, after `--`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Runs a built-in algorithm and prints where the model went.
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let outcome = run_algorithm(&args.algorithm, args.job_dir, &args.args)?;
    println!("model exported to {}", outcome.export_dir.display());
    println!("eval metrics: {}", serde_json::to_string(&outcome.metrics)?);
    Ok(())
}

/// Trains `algorithm` with ML Engine-style arguments, printing progress lines.
pub fn run_algorithm(
    algorithm: &str,
    job_dir: Option<PathBuf>,
    args: &[String],
) -> anyhow::Result<TrainOutcome> {
    let algorithm = Algorithm::find(algorithm)?;
    let metric_file = std::env::var_os("CLOUD_ML_HP_METRIC_FILE").map(PathBuf::from);
    let outcome =
        AlgorithmArgs::parse(args)?.run(algorithm, job_dir, metric_file, &mut |line| {
            println!("{line}")
        })?;
    Ok(outcome)
}

/// Runs a `kiln local` command.
pub fn run(command: LocalCommand, context: &Context) -> anyhow::Result<()> {
    match command {
        LocalCommand::Train(args) => match (&args.master_image_uri, &args.module_name) {
            (Some(image), _) => train(TrainArgs {
                algorithm: image.clone(),
                job_dir: args.job_dir.clone(),
                args: args.args.clone(),
            }),
            (None, Some(module)) => python_train(module, &args),
            (None, None) => anyhow::bail!("--module-name or --master-image-uri is required"),
        },
        LocalCommand::BatchPredict(args) => batch_predict(&args),
        LocalCommand::Predict(args) => {
            let LocalPredictArgs {
                model_dir,
                instances,
                framework,
                prediction_class,
                package_uris,
                runtime,
            } = *args;
            let body = instances.request()?;
            let options = runtime.load_options(1);
            let runtime = match prediction_class {
                Some(class) => {
                    let routine = kiln_serve::python::Routine {
                        class,
                        packages: package_uris,
                    };
                    kiln_serve::load_routine(&model_dir, &routine, &options)?
                }
                None => {
                    let detected = detect(&model_dir, framework.as_deref())?;
                    kiln_serve::load(&model_dir, detected, &options)?
                }
            };
            let instances = body["instances"].as_array().cloned().unwrap_or_default();
            let predictions = runtime.predict(&instances).context("Prediction failed")?;
            output::print_resource(
                Some(context.format.as_ref().unwrap_or(&output::Format::Json)),
                &serde_json::json!({ "predictions": predictions }),
            );
            Ok(())
        }
    }
}

/// The loader for the model in `dir`: the framework its files hold, checked against the one
/// `--framework` names. An ONNX file may be named by the framework it was exported from, and a
/// pickle named XGBoost is served by XGBoost.
fn detect(dir: &Path, framework: Option<&str>) -> anyhow::Result<DetectedFramework> {
    let detected = kiln_serve::detect(dir)?;
    let Some(framework) = framework else {
        return Ok(detected);
    };
    serde_json::from_value::<Framework>(serde_json::json!(super::enum_value(framework)))
        .ok()
        .filter(|named| *named != Framework::FrameworkUnspecified)
        .and_then(|named| kiln_serve::detect::served_as(detected, named))
        .map(|(_, loader)| loader)
        .with_context(|| {
            format!(
                "--framework {framework} given, but {} holds a {} model",
                dir.display(),
                detected.name()
            )
        })
}

/// Runs batch prediction, printing progress lines and, at the end, the counts as JSON.
fn batch_predict(args: &BatchPredictArgs) -> anyhow::Result<()> {
    let format = InputFormat::from_name(&args.data_format).with_context(|| {
        format!(
            "--data-format {:?}: use json, text, csv, tf-record or tf-record-gzip",
            args.data_format
        )
    })?;
    let part = match args.part_by_rank {
        true => {
            let read = |name: &str| -> anyhow::Result<usize> {
                std::env::var(name)
                    .ok()
                    .and_then(|value| value.parse().ok())
                    .with_context(|| format!("--part-by-rank: {name} is not set to a number"))
            };
            let (rank, size) = (read("RANK")?, read("WORLD_SIZE")?);
            anyhow::ensure!(
                rank < size,
                "--part-by-rank: RANK {rank} is not below WORLD_SIZE {size}"
            );
            (rank, size)
        }
        false => (0, 1),
    };
    let workers = args
        .max_worker_count
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let detected = detect(&args.model_dir, args.framework.as_deref())?;
    let runtime = kiln_serve::load(
        &args.model_dir,
        detected,
        &args.runtime.load_options(workers),
    )?;
    let staged = super::staging::Staged::prepare(&args.input_paths, &args.output_path)?;
    let job = BatchJob {
        format,
        inputs: staged.inputs.clone(),
        output_dir: staged.output_dir.clone(),
        workers,
        batch_size: args.batch_size,
        part,
    };
    let summary = kiln_serve::batch::run(&job, runtime, &mut |line| println!("{line}"))?;
    staged.finish()?;
    let counts = serde_json::to_string(&summary)?;
    if let Some(path) = &args.summary {
        let path = match args.part_by_rank {
            true => BatchSummary::part_file(path, part.0),
            false => path.clone(),
        };
        std::fs::write(&path, &counts).with_context(|| path.display().to_string())?;
    }
    println!("batch prediction finished: {counts}");
    Ok(())
}

/// `gcloud ai-platform local train` for a Python module: no packaging, no server. Returns an error
/// when the primary replica fails.
fn python_train(module: &str, args: &LocalTrainArgs) -> anyhow::Result<()> {
    let package = args
        .package_path
        .clone()
        .unwrap_or(std::env::current_dir()?.join(module.split('.').next().unwrap_or(module)));
    let package = std::fs::canonicalize(&package)
        .with_context(|| format!("--package-path {}", package.display()))?;
    let working_dir = package
        .parent()
        .map(PathBuf::from)
        .unwrap_or(package.clone());
    let mut user_args = args.args.clone();
    if let Some(job_dir) = &args.job_dir {
        user_args.extend(["--job-dir".to_string(), job_dir.display().to_string()]);
    }
    let python = std::env::var_os("KILN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let job = serde_json::json!({"job_name": module, "args": user_args});
    // gcloud names the primary `chief` unless the local TensorFlow is 1.x; Kiln assumes no TF 1.x.
    let mut roles: Vec<(&str, usize)> = vec![("chief", 0)];
    if args.distributed {
        roles.extend((0..args.parameter_server_count).map(|index| ("ps", index)));
        roles.extend((0..args.worker_count).map(|index| ("worker", index)));
        roles.extend((0..args.evaluator_count).map(|index| ("evaluator", index)));
    }
    let mut cluster = serde_json::Map::new();
    let members = roles.iter().filter(|(role, _)| *role != "evaluator");
    for (port, (role, _)) in (args.start_port..).zip(members) {
        let entry = cluster
            .entry(role.to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(addresses) = entry {
            addresses.push(serde_json::Value::String(format!("localhost:{port}")));
        }
    }
    let mut children = Vec::new();
    for (role, index) in &roles {
        let tf_config = match args.distributed {
            true => {
                serde_json::json!({"job": job, "task": {"type": role, "index": index}, "cluster": cluster, "environment": "cloud"})
            }
            false => {
                serde_json::json!({"job": job, "task": {}, "cluster": {}, "environment": "cloud"})
            }
        };
        let child = std::process::Command::new(&python)
            .args(["-m", module])
            .args(&user_args)
            .env("TF_CONFIG", tf_config.to_string())
            .current_dir(&working_dir)
            .spawn()
            .with_context(|| format!("starting {} {role} {index}", python.display()))?;
        children.push(child);
    }
    let status = children[0].wait().context("waiting for the chief")?;
    for child in children.iter_mut().skip(1) {
        let _ = child.kill();
        let _ = child.wait();
    }
    match status.success() {
        true => Ok(()),
        false => anyhow::bail!("the chief replica {}", status),
    }
}
