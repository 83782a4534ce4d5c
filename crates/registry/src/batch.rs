//! Batch prediction jobs: checking a `predictionInput`, deciding what its replica runs, and reading
//! back what it did.
//!
//! A batch prediction job runs `kiln local batch-predict` (the `kiln-serve` batch engine) through
//! the same executor, queue, logs, cancel and restart handling as a training job. On the server's
//! machine it is one replica of `maxWorkerCount` threads (one per core when unset); on a cluster,
//! `maxWorkerCount` replicas (at least one) of a `standard` machine each, spread over nodes as the
//! engine places them, each predicting its part of the input with a thread per CPU. Its model is
//! resolved when it starts: a deployed version's files (the model's default when only `modelName`
//! is given), or a `uri` the project may read.

use std::path::{Path, PathBuf};

use kiln_api::model::Framework;
use kiln_api::{DataFormat, PredictionInput, PredictionOutput};
use kiln_artifacts::PathPolicy;
use kiln_scheduler::program::Program;
use kiln_serve::python::environment::Spec;
use kiln_serve::python::runtimes::{self, PythonFramework};

use crate::registry::Registry;

/// What a validated batch prediction job will run and where its counts come back.
#[derive(Debug, Clone)]
pub(crate) struct PredictionPlan {
    /// Where the shards go, as checked.
    pub(crate) output_path: String,
    /// The JSON counts the replica writes when it ends (each replica of several `<summary>.<rank>`).
    pub(crate) summary: PathBuf,
    /// How many replicas predict, each its part of the input.
    pub(crate) parts: usize,
    /// The runtime environment a framework model is served from (or converted in, for an ONNX
    /// engine): built before the replicas start, then only read by them.
    pub(crate) environment: Option<Spec>,
}

/// The model a job predicts with: its files, the environment a framework model needs, and the
/// engine its version is served on.
struct Served {
    dir: PathBuf,
    environment: Option<Spec>,
    engine: kiln_serve::Engine,
}

/// Most worker threads one job may ask for.
const MAX_WORKERS: i64 = 64;
/// Instances per model call when the job sets none (ML Engine's default).
const DEFAULT_BATCH_SIZE: i64 = 64;

/// How a batch prediction job is spread: over the threads of one replica, or over replicas (on a
/// cluster) of `threads` threads each.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Spread {
    Threads,
    Replicas { threads: u32 },
}

/// Checks `input`, collecting every problem, and returns the replicas' program and the plan.
/// `summary` is where the replica reports its counts.
pub(crate) fn plan(
    input: &PredictionInput,
    project: &str,
    paths: &PathPolicy,
    registry: &Registry,
    summary: &Path,
    spread: Spread,
) -> Result<(Program, PredictionPlan), Vec<String>> {
    let mut problems = Vec::new();
    let served = served(input, project, paths, registry)
        .map_err(|problem| problems.push(problem))
        .ok();
    let format = match input.data_format {
        DataFormat::DataFormatUnspecified => {
            problems.push(
                "Field: prediction_input.data_format Error: required: JSON, TEXT, CSV, TF_RECORD or TF_RECORD_GZIP"
                    .into(),
            );
            None
        }
        DataFormat::Json | DataFormat::Text => Some("json"),
        DataFormat::Csv => Some("csv"),
        DataFormat::TfRecord => Some("tf-record"),
        DataFormat::TfRecordGzip => Some("tf-record-gzip"),
    };
    if !input.output_data_format.is_empty()
        && !input.output_data_format.eq_ignore_ascii_case("JSON")
    {
        problems.push(format!(
            "Field: prediction_input.output_data_format Error: {:?} is not supported; results are JSON lines",
            input.output_data_format
        ));
    }
    if input.input_paths.is_empty() {
        problems.push(
            "Field: prediction_input.input_paths Error: at least one input path is required".into(),
        );
    }
    let mut inputs = Vec::new();
    for (index, pattern) in input.input_paths.iter().enumerate() {
        let field = format!("prediction_input.input_paths[{index}]");
        match checked_input(pattern, project, paths, &field) {
            Ok(checked) => inputs.push(checked),
            Err(problem) => problems.push(problem),
        }
    }
    let output_path = match input.output_path.is_empty() {
        true => {
            problems.push(
                "Field: prediction_input.output_path Error: an output directory is required".into(),
            );
            None
        }
        false => paths
            .check(project, "prediction_input.output_path", &input.output_path)
            .map_err(|problem| problems.push(problem))
            .ok(),
    };
    if !(0..=MAX_WORKERS).contains(&input.max_worker_count) {
        problems.push(format!(
            "Field: prediction_input.max_worker_count Error: must be between 0 (one per core) and {MAX_WORKERS}, got {}",
            input.max_worker_count
        ));
    }
    if input.batch_size < 0 {
        problems.push(format!(
            "Field: prediction_input.batch_size Error: must not be negative, got {}",
            input.batch_size
        ));
    }
    let (Some(served), Some(format), Some(output_path), true) =
        (served, format, output_path, problems.is_empty())
    else {
        return Err(problems);
    };
    let (workers, parts) = match (spread, input.max_worker_count) {
        (Spread::Replicas { threads }, count) => (i64::from(threads.max(1)), count.max(1) as usize),
        (Spread::Threads, 0) => (
            std::thread::available_parallelism().map_or(1, |cores| cores.get() as i64),
            1,
        ),
        (Spread::Threads, count) => (count, 1),
    };
    let batch_size = match input.batch_size {
        0 => DEFAULT_BATCH_SIZE,
        size => size,
    };
    let mut args = vec![
        "--data-format".to_string(),
        format.into(),
        "--output-path".into(),
        output_path.clone(),
        "--max-worker-count".into(),
        workers.to_string(),
        "--batch-size".into(),
        batch_size.to_string(),
        "--summary".into(),
        summary.display().to_string(),
    ];
    for pattern in inputs {
        args.extend(["--input-paths".to_string(), pattern]);
    }
    if parts > 1 {
        args.push("--part-by-rank".into());
    }
    if served.engine != kiln_serve::Engine::EngineUnspecified {
        args.extend(["--engine".into(), served.engine.name().into()]);
    }
    let mut environments = Vec::new();
    if let Some(root) = registry.runtime_environments() {
        args.extend(["--runtime-dir".into(), root.display().to_string()]);
        if let Some(spec) = served.environment {
            args.extend([
                "--framework".into(),
                spec.framework.name().into(),
                "--runtime-version".into(),
                spec.runtime.name.into(),
                "--python-version".into(),
                spec.python.into(),
            ]);
            environments.push(spec.dir(root));
        }
        if served.engine == kiln_serve::Engine::OnnxRuntime {
            environments.extend(kiln_serve::python::environment::onnx_runtime_dir(root));
        }
    }
    Ok((
        Program::BatchPredict {
            model_dir: served.dir,
            args,
            environments,
        },
        PredictionPlan {
            output_path,
            summary: summary.to_path_buf(),
            parts,
            environment: served.environment,
        },
    ))
}

/// The model the job predicts with.
fn served(
    input: &PredictionInput,
    project: &str,
    paths: &PathPolicy,
    registry: &Registry,
) -> Result<Served, String> {
    let given = [&input.model_name, &input.version_name, &input.uri]
        .iter()
        .filter(|name| !name.is_empty())
        .count();
    if given != 1 {
        return Err(
            "Field: prediction_input Error: give exactly one of modelName, versionName or uri"
                .into(),
        );
    }
    if !input.uri.is_empty() {
        let checked = paths.check(project, "prediction_input.uri", &input.uri)?;
        let dir = PathBuf::from(checked.strip_prefix("file://").unwrap_or(&checked));
        let detected = kiln_serve::detect(&dir)
            .map_err(|error| format!("Field: prediction_input.uri Error: {error}"))?;
        let environment = PythonFramework::of(detected)
            .map(|framework| {
                runtimes::spec("prediction_input", &input.runtime_version, "", framework)
            })
            .transpose()?;
        return Ok(Served {
            dir,
            environment,
            engine: kiln_serve::Engine::EngineUnspecified,
        });
    }
    let (field, name) = match input.model_name.is_empty() {
        false => ("prediction_input.model_name", &input.model_name),
        true => ("prediction_input.version_name", &input.version_name),
    };
    let relative = name
        .strip_prefix(&format!("projects/{project}/"))
        .unwrap_or(name);
    let parts: Vec<&str> = relative.split('/').collect();
    let (model, version) = match (field, parts.as_slice()) {
        ("prediction_input.model_name", ["models", model] | [model]) => (*model, None),
        ("prediction_input.version_name", ["models", model, "versions", version]) => {
            (*model, Some(*version))
        }
        _ => {
            return Err(format!(
                "Field: {field} Error: {name:?} is not a name such as projects/{project}/models/M{}",
                if field.ends_with("version_name") {
                    "/versions/V"
                } else {
                    ""
                }
            ));
        }
    };
    let (dir, version) = registry
        .serving_dir(project, model, version)
        .map_err(|error| format!("Field: {field} Error: {error}"))?;
    if !version.prediction_class.is_empty() {
        return Err(format!(
            "Field: {field} Error: {} is a custom prediction routine, which serves online \
             predictions only",
            version.name
        ));
    }
    // By the recorded framework: the files may not be on this server's disk yet. (An ONNX export
    // recorded as SCIKIT_LEARN or XGBOOST gets an environment it does not use.)
    let environment = match version.framework {
        Framework::Tensorflow => Some(PythonFramework::TensorFlow),
        Framework::ScikitLearn => Some(PythonFramework::ScikitLearn),
        Framework::Xgboost => Some(PythonFramework::XgBoost),
        _ => None,
    }
    .map(|framework| {
        runtimes::spec(
            "version",
            &version.runtime_version,
            &version.python_version,
            framework,
        )
    })
    .transpose()?
    .map(|spec| Spec {
        // A framework model served on an ONNX engine is converted by the replica.
        converter: kiln_serve::converts(version.engine),
        ..spec
    });
    Ok(Served {
        dir,
        environment,
        engine: version.engine,
    })
}

/// An input path as checked: a wildcard only at the end, under a location the project may read.
pub(crate) fn checked_input(
    pattern: &str,
    project: &str,
    paths: &PathPolicy,
    field: &str,
) -> Result<String, String> {
    match kiln_events::files::wildcard(pattern)
        .map_err(|error| format!("Field: {field} Error: {error}"))?
    {
        None => paths.check(project, field, pattern),
        Some((dir, prefix)) => {
            let dir = paths.check(project, field, dir)?;
            Ok(format!("{}/{prefix}*", dir.trim_end_matches('/')))
        }
    }
}

/// The job's `predictionOutput`, from the counts its replica wrote (absent when it wrote none).
pub(crate) fn output(plan: &PredictionPlan) -> PredictionOutput {
    use kiln_serve::batch::BatchSummary;
    let files: Vec<PathBuf> = match plan.parts {
        1 => vec![plan.summary.clone()],
        parts => (0..parts)
            .map(|rank| BatchSummary::part_file(&plan.summary, rank))
            .collect(),
    };
    let summaries = files.iter().map(|file| -> BatchSummary {
        std::fs::read(file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    });
    let mut output = PredictionOutput {
        output_path: plan.output_path.clone(),
        ..PredictionOutput::default()
    };
    let mut shard_seconds = 0.0;
    for summary in summaries {
        output.prediction_count += summary.prediction_count as i64;
        output.error_count += summary.error_count as i64;
        shard_seconds += summary.seconds * summary.shards as f64;
    }
    // Microhour precision: a small local job takes well under the 0.0001 that ML units show.
    output.node_hours = (shard_seconds / 3600.0 * 1e6).round() / 1e6;
    output
}
