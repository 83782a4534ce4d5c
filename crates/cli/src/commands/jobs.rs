//! `kiln jobs ...`: submit, describe, list, cancel and stream the logs of training jobs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::client::{Api, Context};
use crate::output;

/// `kiln jobs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// Submit a job.
    #[command(subcommand)]
    Submit(SubmitCommand),
    /// Describe a job.
    Describe {
        /// Job id.
        job: String,
        /// For a tuning job, print its trials as a table (by trial id) instead of the whole job.
        #[arg(long)]
        summarize: bool,
    },
    /// List jobs.
    List {
        #[command(flatten)]
        list: crate::listing::ListArgs,
    },
    /// Cancel a job.
    Cancel {
        /// Job id.
        job: String,
    },
    /// Print a job's logs, following them until the job ends.
    StreamLogs {
        /// Job id.
        job: String,
        #[command(flatten)]
        follow: FollowArgs,
    },
    #[command(flatten)]
    Iam(super::iam::IamCommand),
}

/// How logs are followed.
#[derive(Debug, Clone, clap::Args)]
pub struct FollowArgs {
    /// Only this replica's lines, such as `master-replica-0`.
    #[arg(long)]
    pub task_name: Option<String>,
    /// Seconds between polls.
    #[arg(long, default_value_t = 1.0)]
    pub polling_interval: f64,
}

/// `kiln jobs submit ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SubmitCommand {
    /// Submit a training job, as `gcloud ai-platform jobs submit training`.
    Training(Box<TrainingArgs>),
    /// Submit a batch prediction job, as `gcloud ai-platform jobs submit prediction`.
    Prediction(Box<PredictionArgs>),
}

/// Flags of `jobs submit prediction` (gcloud's).
#[derive(Debug, clap::Args)]
pub struct PredictionArgs {
    /// Job id.
    pub job: String,
    /// Deployed model: its default version, or --version.
    #[arg(
        long,
        conflicts_with = "model_dir",
        required_unless_present = "model_dir"
    )]
    pub model: Option<String>,
    /// Version of --model.
    #[arg(long, requires = "model")]
    pub version: Option<String>,
    /// A model directory that is not deployed.
    #[arg(long)]
    pub model_dir: Option<String>,
    /// json (or text), csv, tf-record or tf-record-gzip.
    #[arg(long)]
    pub data_format: String,
    /// Input files, comma-separated; a trailing `*` matches any suffix.
    #[arg(long, value_delimiter = ',', required = true)]
    pub input_paths: Vec<String>,
    /// Directory for the results and errors.
    #[arg(long)]
    pub output_path: String,
    /// Region (recorded).
    #[arg(long, default_value = "us-central1")]
    pub region: String,
    /// Parallel workers, one output shard each.
    #[arg(long)]
    pub max_worker_count: Option<i64>,
    /// Instances per model call.
    #[arg(long)]
    pub batch_size: Option<i64>,
    /// Runtime version (recorded).
    #[arg(long)]
    pub runtime_version: Option<String>,
    /// Signature (recorded).
    #[arg(long)]
    pub signature_name: Option<String>,
    /// Labels, KEY=VALUE, comma-separated.
    #[arg(long)]
    pub labels: Option<String>,
}

/// The Job resource of `jobs submit prediction`.
fn prediction_body(args: &PredictionArgs, project: &str) -> anyhow::Result<Value> {
    let format = args
        .data_format
        .trim()
        .to_ascii_uppercase()
        .replace('-', "_");
    let mut input = serde_json::json!({
        "dataFormat": format,
        "inputPaths": args.input_paths,
        "outputPath": args.output_path,
        "region": args.region,
    });
    match (&args.model, &args.version, &args.model_dir) {
        (Some(model), Some(version), _) => {
            input["versionName"] =
                format!("projects/{project}/models/{model}/versions/{version}").into()
        }
        (Some(model), None, _) => {
            input["modelName"] = format!("projects/{project}/models/{model}").into()
        }
        (None, _, Some(dir)) => input["uri"] = dir.clone().into(),
        (None, _, None) => bail!("--model or --model-dir is required"),
    }
    for (field, value) in [
        ("maxWorkerCount", args.max_worker_count),
        ("batchSize", args.batch_size),
    ] {
        if let Some(value) = value {
            input[field] = value.to_string().into();
        }
    }
    for (field, value) in [
        ("runtimeVersion", &args.runtime_version),
        ("signatureName", &args.signature_name),
    ] {
        if let Some(value) = value {
            input[field] = value.clone().into();
        }
    }
    let labels = super::labels(args.labels.as_deref())?;
    Ok(serde_json::json!({"jobId": args.job, "labels": labels, "predictionInput": input}))
}

/// Flags of `jobs submit training`; they override the `--config` file.
#[derive(Debug, clap::Args)]
pub struct TrainingArgs {
    /// Job id.
    pub job: String,
    /// Python module to run.
    #[arg(long)]
    pub module_name: Option<String>,
    /// Local directory of the trainer package.
    #[arg(long)]
    pub package_path: Option<PathBuf>,
    /// More trainer packages, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub packages: Vec<String>,
    /// Output directory, passed to the trainer as --job-dir.
    #[arg(long)]
    pub job_dir: Option<PathBuf>,
    /// Region (recorded).
    #[arg(long)]
    pub region: Option<String>,
    /// basic, standard-1, premium-1, basic-gpu, basic-tpu or custom.
    #[arg(long)]
    pub scale_tier: Option<String>,
    /// Master machine type (custom tier).
    #[arg(long)]
    pub master_machine_type: Option<String>,
    /// Built-in algorithm (kiln/wide_deep, gcr.io/cloud-ml-algos/...) or container image of the master.
    #[arg(long)]
    pub master_image_uri: Option<String>,
    /// Number of workers.
    #[arg(long)]
    pub worker_count: Option<i64>,
    /// Worker machine type.
    #[arg(long)]
    pub worker_machine_type: Option<String>,
    /// Number of parameter servers.
    #[arg(long)]
    pub parameter_server_count: Option<i64>,
    /// Parameter server machine type.
    #[arg(long)]
    pub parameter_server_machine_type: Option<String>,
    /// Runtime version (recorded).
    #[arg(long)]
    pub runtime_version: Option<String>,
    /// Python version (recorded).
    #[arg(long)]
    pub python_version: Option<String>,
    /// Name the primary replica `chief` in TF_CONFIG.
    #[arg(long)]
    pub use_chief_in_tf_config: bool,
    /// YAML or JSON Job resource; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Labels, KEY=VALUE,...
    #[arg(long)]
    pub labels: Option<String>,
    /// Follow the logs until the job ends; fail when the job fails.
    #[arg(long)]
    pub stream_logs: bool,
    /// Arguments for the trainer, after `--`.
    #[arg(last = true)]
    pub user_args: Vec<String>,
}

fn absolute(path: &Path) -> anyhow::Result<String> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    Ok(path.display().to_string())
}

/// The Job resource the flags and the config file describe.
pub fn job_body(args: &TrainingArgs) -> anyhow::Result<Value> {
    let mut job = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --config {}", path.display()))?;
            let value: Value = serde_norway::from_str(&text)
                .with_context(|| format!("--config {} is not YAML or JSON", path.display()))?;
            if !value.is_object() {
                bail!(
                    "--config {} must hold a Job resource (trainingInput: ...)",
                    path.display()
                );
            }
            value
        }
        None => json!({}),
    };
    job["jobId"] = Value::String(args.job.clone());
    if !job["trainingInput"].is_object() {
        job["trainingInput"] = json!({});
    }
    let input = &mut job["trainingInput"];
    let mut set = |field: &str, value: Option<Value>| {
        if let Some(value) = value {
            input[field] = value;
        }
    };
    set("pythonModule", args.module_name.clone().map(Value::String));
    set("region", args.region.clone().map(Value::String));
    set(
        "scaleTier",
        args.scale_tier
            .as_ref()
            .map(|tier| Value::String(super::enum_value(tier))),
    );
    set(
        "masterType",
        args.master_machine_type.clone().map(Value::String),
    );
    set(
        "workerCount",
        args.worker_count
            .map(|count| Value::String(count.to_string())),
    );
    set(
        "workerType",
        args.worker_machine_type.clone().map(Value::String),
    );
    set(
        "parameterServerCount",
        args.parameter_server_count
            .map(|count| Value::String(count.to_string())),
    );
    set(
        "parameterServerType",
        args.parameter_server_machine_type
            .clone()
            .map(Value::String),
    );
    set(
        "runtimeVersion",
        args.runtime_version.clone().map(Value::String),
    );
    set(
        "pythonVersion",
        args.python_version.clone().map(Value::String),
    );
    set(
        "useChiefInTfConfig",
        args.use_chief_in_tf_config.then_some(Value::Bool(true)),
    );
    set(
        "jobDir",
        args.job_dir
            .as_deref()
            .map(absolute)
            .transpose()?
            .map(Value::String),
    );
    set(
        "args",
        (!args.user_args.is_empty()).then(|| json!(args.user_args)),
    );
    if let Some(image) = &args.master_image_uri {
        input["masterConfig"]["imageUri"] = Value::String(image.clone());
    }
    let mut packages: Vec<String> = args
        .packages
        .iter()
        .map(|package| {
            if package.contains("://") {
                Ok(package.clone())
            } else {
                absolute(Path::new(package)).map(|path| format!("file://{path}"))
            }
        })
        .collect::<anyhow::Result<_>>()?;
    if let Some(path) = &args.package_path {
        let path = std::fs::canonicalize(path)
            .with_context(|| format!("--package-path {}", path.display()))?;
        packages.insert(0, format!("file://{}", path.display()));
    }
    if !packages.is_empty() {
        input["packageUris"] = json!(packages);
    }
    let labels = super::labels(args.labels.as_deref())?;
    if !labels.is_empty() {
        job["labels"] = Value::Object(labels);
    }
    Ok(job)
}

/// Prints log entries from `start` until the job has ended and a poll finds nothing new.
/// Returns the job as it ended.
pub fn stream(api: &Api, job: &str, follow: &FollowArgs) -> anyhow::Result<Value> {
    let mut token = 0usize;
    loop {
        let mut path = format!("jobs/{job}/logs?pageToken={token}");
        if let Some(task) = &follow.task_name {
            path.push_str(&format!("&taskName={task}"));
        }
        let page = api.get(&path)?;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        for entry in &entries {
            println!(
                "{}\t{}\t{}\t{}",
                entry["severity"].as_str().unwrap_or_default(),
                entry["timestamp"].as_str().unwrap_or_default(),
                entry["taskName"].as_str().unwrap_or_default(),
                entry["message"].as_str().unwrap_or_default()
            );
        }
        let next: usize = page["nextPageToken"]
            .as_str()
            .and_then(|text| text.parse().ok())
            .unwrap_or(token);
        let advanced = next != token;
        token = next;
        if !advanced {
            let status = api.get(&format!("jobs/{job}"))?;
            if !status["endTime"].as_str().unwrap_or_default().is_empty() {
                // One more read after the end: lines written just before it are not lost.
                let tail = api.get(&format!("jobs/{job}/logs?pageToken={token}"))?;
                if tail["entries"].as_array().is_none_or(Vec::is_empty) {
                    return Ok(status);
                }
                continue;
            }
            std::thread::sleep(Duration::from_secs_f64(follow.polling_interval.max(0.05)));
        }
    }
}

/// Runs a `kiln jobs` command.
pub fn run(command: JobsCommand, context: &Context) -> anyhow::Result<()> {
    let api = context.client();
    match command {
        JobsCommand::Submit(SubmitCommand::Training(args)) => {
            let body = job_body(&args)?;
            let job = api.post("jobs", &body)?;
            let id = job["jobId"].as_str().unwrap_or_default().to_string();
            eprintln!("Job [{id}] submitted successfully.");
            if !args.stream_logs {
                eprintln!(
                    "Your job is still active. You may view the status of your job with the command\n\n  $ kiln jobs describe {id}\n\nor continue streaming the logs with the command\n\n  $ kiln jobs stream-logs {id}"
                );
                return Ok(());
            }
            let ended = stream(
                &api,
                &id,
                &FollowArgs {
                    task_name: None,
                    polling_interval: 1.0,
                },
            )?;
            finished(&ended)
        }
        JobsCommand::Submit(SubmitCommand::Prediction(args)) => {
            let job = api.post("jobs", &prediction_body(&args, &context.project)?)?;
            eprintln!(
                "Job [{}] submitted successfully.",
                job["jobId"].as_str().unwrap_or_default()
            );
            output::print_resource(context.format.as_ref(), &job);
            Ok(())
        }
        JobsCommand::Describe { job, summarize } => {
            let job = api.get(&format!("jobs/{job}"))?;
            match summarize {
                true => print_trials(context.format.as_ref(), &job),
                false => output::print_resource(context.format.as_ref(), &job),
            }
            Ok(())
        }
        JobsCommand::List { list } => {
            let jobs = list.list(&api, "jobs", "jobs")?;
            output::print_list(
                context.format.as_ref(),
                &jobs,
                &[
                    ("JOB_ID", "jobId"),
                    ("STATUS", "state"),
                    ("CREATED", "createTime"),
                ],
            );
            Ok(())
        }
        JobsCommand::Cancel { job } => {
            api.post(&format!("jobs/{job}:cancel"), &json!({}))?;
            eprintln!("Cancelled job [{job}].");
            Ok(())
        }
        JobsCommand::StreamLogs { job, follow } => {
            let ended = stream(&api, &job, &follow)?;
            finished(&ended)
        }
        JobsCommand::Iam(command) => {
            super::iam::run(command, context, &api, |job| format!("jobs/{job}"))
        }
    }
}

fn finished(job: &Value) -> anyhow::Result<()> {
    let state = job["state"].as_str().unwrap_or_default();
    eprintln!(
        "Job [{}] ended: {state}",
        job["jobId"].as_str().unwrap_or_default()
    );
    match state {
        "SUCCEEDED" => Ok(()),
        _ => bail!(
            "job {state}: {}",
            job["errorMessage"].as_str().unwrap_or_default()
        ),
    }
}

/// gcloud's `jobs describe --summarize` for tuning jobs: one row per trial, by trial id, with its
/// objective, step and hyperparameters.
fn print_trials(format: Option<&output::Format>, job: &Value) {
    let mut trials: Vec<Value> = job["trainingOutput"]["trials"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    trials.sort_by_key(|trial| {
        trial["trialId"]
            .as_str()
            .and_then(|id| id.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    });
    let names: std::collections::BTreeSet<String> = trials
        .iter()
        .filter_map(|trial| trial["hyperparameters"].as_object())
        .flat_map(|values| values.keys().cloned())
        .collect();
    let paths: Vec<(String, String)> = names
        .iter()
        .map(|name| (name.clone(), format!("hyperparameters.{name}")))
        .collect();
    let mut columns = vec![
        ("TRIAL", "trialId"),
        ("STATE", "state"),
        ("OBJECTIVE_VALUE", "finalMetric.objectiveValue"),
        ("STEP", "finalMetric.trainingStep"),
    ];
    columns.extend(
        paths
            .iter()
            .map(|(name, path)| (name.as_str(), path.as_str())),
    );
    output::print_list(format, &trials, &columns);
}
