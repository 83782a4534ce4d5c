//! `projects.jobs` resources (api-surface.md §A.3, A.4, A.6).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Lifecycle state of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Not known.
    #[default]
    StateUnspecified,
    /// Accepted, waiting to run.
    Queued,
    /// Its replicas are being prepared.
    Preparing,
    /// Its replicas run.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error; see `errorMessage`.
    Failed,
    /// Cancellation requested, replicas stopping.
    Cancelling,
    /// Cancelled.
    Cancelled,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// Cluster shape of a training job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScaleTier {
    /// One replica.
    #[default]
    Basic,
    /// A master, workers and a parameter server.
    #[serde(rename = "STANDARD_1")]
    Standard1,
    /// A master, more workers and parameter servers.
    #[serde(rename = "PREMIUM_1")]
    Premium1,
    /// One replica with a GPU.
    BasicGpu,
    /// One replica with a TPU.
    BasicTpu,
    /// Replica types and counts as the job says.
    Custom,
}

/// A replica's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaConfig {
    /// Container image; Kiln runs built-in algorithms named here, or `containerCommand` directly.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_uri: String,
    /// The command the replica runs instead of the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_command: Vec<String>,
    /// Arguments of `containerCommand`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_args: Vec<String>,
    /// Accelerators (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator_config: Option<Value>,
    /// Disk settings (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_config: Option<Value>,
    /// TPU TensorFlow version (recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tpu_tf_version: String,
}

/// Time limits of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scheduling {
    /// Longest RUNNING time, as `"7200s"`; default 7 days.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_running_time: String,
    /// Longest QUEUED time, as `"1800s"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_wait_time: String,
    /// Priority 0-1000 (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// `TrainingInput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainingInput {
    /// Cluster shape.
    #[serde(default)]
    pub scale_tier: ScaleTier,
    /// Machine type of the master (CUSTOM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub master_type: String,
    /// Master settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_config: Option<ReplicaConfig>,
    /// Machine type of the workers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub worker_type: String,
    /// Number of workers.
    #[serde(
        default,
        with = "crate::int64",
        skip_serializing_if = "crate::int64::is_zero"
    )]
    #[schemars(with = "crate::int64::Int64")]
    pub worker_count: i64,
    /// Worker settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_config: Option<ReplicaConfig>,
    /// Machine type of the parameter servers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parameter_server_type: String,
    /// Number of parameter servers.
    #[serde(
        default,
        with = "crate::int64",
        skip_serializing_if = "crate::int64::is_zero"
    )]
    #[schemars(with = "crate::int64::Int64")]
    pub parameter_server_count: i64,
    /// Parameter server settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_server_config: Option<ReplicaConfig>,
    /// Machine type of the evaluators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evaluator_type: String,
    /// Number of evaluators.
    #[serde(
        default,
        with = "crate::int64",
        skip_serializing_if = "crate::int64::is_zero"
    )]
    #[schemars(with = "crate::int64::Int64")]
    pub evaluator_count: i64,
    /// Evaluator settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator_config: Option<ReplicaConfig>,
    /// Python packages of the trainer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_uris: Vec<String>,
    /// Module run as `python -m`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub python_module: String,
    /// Arguments of the trainer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Hyperparameter tuning settings: present ⇒ a tuning job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyperparameters: Option<HyperparameterSpec>,
    /// Region (recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// Output directory, appended to the trainer's arguments as `--job-dir`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_dir: String,
    /// Runtime version (recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime_version: String,
    /// Python version (recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub python_version: String,
    /// Time limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
    /// Run-as identity (recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// Network (recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// Encryption settings (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_config: Option<Value>,
    /// Name the primary replica `chief` instead of `master` in TF_CONFIG.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_chief_in_tf_config: bool,
    /// Interactive shell access (recorded).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_web_access: bool,
}

/// Direction of a tuning job's metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GoalType {
    /// Maximize (ML Engine's default).
    #[default]
    GoalTypeUnspecified,
    /// Larger is better.
    Maximize,
    /// Smaller is better.
    Minimize,
}

/// Type of a tuned parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterType {
    /// Not set: refused.
    #[default]
    ParameterTypeUnspecified,
    /// A real number in [minValue, maxValue].
    Double,
    /// An integer in [minValue, maxValue].
    Integer,
    /// One of categoricalValues.
    Categorical,
    /// One of discreteValues.
    Discrete,
}

/// How a numeric range is searched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScaleType {
    /// Linear.
    #[default]
    None,
    /// Linear.
    UnitLinearScale,
    /// Logarithmic; the range must be positive.
    UnitLogScale,
    /// Dense near the top of the range; the range must be positive.
    UnitReverseLogScale,
}

/// Search algorithm of a tuning job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TuningAlgorithm {
    /// Bayesian optimisation (a GP bandit).
    #[default]
    AlgorithmUnspecified,
    /// Every combination, in order (INTEGER, CATEGORICAL and DISCRETE parameters only).
    GridSearch,
    /// Uniform in the scaled space.
    RandomSearch,
}

/// `ParameterSpec`: one tuned parameter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParameterSpec {
    /// Name, passed to the trainer as `--name=value`.
    #[serde(default)]
    pub parameter_name: String,
    /// Type.
    #[serde(default, rename = "type")]
    pub kind: ParameterType,
    /// Lower bound (DOUBLE, INTEGER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<f64>,
    /// Upper bound (DOUBLE, INTEGER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<f64>,
    /// Values of a CATEGORICAL parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical_values: Vec<String>,
    /// Strictly increasing values of a DISCRETE parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discrete_values: Vec<f64>,
    /// Scale.
    #[serde(default, skip_serializing_if = "is_default")]
    pub scale_type: ScaleType,
    /// Parameters tried only when this one takes one of their parent values (a Kiln extension
    /// in Vizier's shape: ML Engine's tuning jobs have no conditional parameters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub child_parameter_specs: Vec<ParameterSpec>,
    /// For a child of a CATEGORICAL parameter: the parent's values that make it active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_categorical_values: Option<crate::study::CategoricalValueSpec>,
    /// For a child of an INTEGER parameter: the parent's values that make it active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_int_values: Option<crate::study::IntValues>,
    /// For a child of a DISCRETE parameter: the parent's values that make it active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_discrete_values: Option<crate::study::DiscreteValueSpec>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// `HyperparameterSpec`: what a tuning job searches and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HyperparameterSpec {
    /// Direction of the metric.
    #[serde(default)]
    pub goal: GoalType,
    /// The parameters.
    #[serde(default)]
    pub params: Vec<ParameterSpec>,
    /// Trials to run (default 1).
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_trials: i32,
    /// Trials running at once (default 1).
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_parallel_trials: i32,
    /// Failed trials that fail the job (0: half of maxTrials).
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_failed_trials: i32,
    /// The metric's tag (default `training/hptuning/metric`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hyperparameter_metric_tag: String,
    /// Stop trials whose metric falls behind the others' at the same step (successive halving).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_trial_early_stopping: bool,
    /// A finished tuning job of the same project whose trials this job continues from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resume_previous_job_id: String,
    /// Search algorithm.
    #[serde(default, skip_serializing_if = "is_default")]
    pub algorithm: TuningAlgorithm,
    /// Earlier tuning jobs and studies whose completed trials the tuner starts from (a Kiln
    /// extension: studies have the same field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_learning_config: Option<crate::study::TransferLearningConfig>,
}

/// One measurement of a trial's metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HyperparameterMetric {
    /// Training step it was reported at.
    #[serde(default, with = "crate::int64")]
    #[schemars(with = "crate::int64::Int64")]
    pub training_step: i64,
    /// The metric's value.
    pub objective_value: f64,
}

/// `HyperparameterOutput`: one trial of a tuning job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HyperparameterOutput {
    /// `"1"`, `"2"`, ... in the order trials started.
    pub trial_id: String,
    /// The trial's parameter values, as passed to the trainer.
    pub hyperparameters: BTreeMap<String, String>,
    /// The last value reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_metric: Option<HyperparameterMetric>,
    /// Every value reported, by step (ML Engine left this empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all_metrics: Vec<HyperparameterMetric>,
    /// The trial's state.
    #[serde(default)]
    pub state: JobState,
    /// When it started.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start_time: String,
    /// When it ended.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end_time: String,
    /// Whether early stopping ended it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_trial_stopped_early: bool,
    /// Why it failed (a Kiln addition).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_message: String,
    /// A built-in algorithm trial's export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_in_algorithm_output: Option<BuiltInAlgorithmOutput>,
}

/// `builtInAlgorithmOutput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuiltInAlgorithmOutput {
    /// Framework of the export.
    pub framework: String,
    /// Runtime version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime_version: String,
    /// Python version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub python_version: String,
    /// Where the exported model is: `versions create --origin` takes it as is.
    pub model_path: String,
}

/// `TrainingOutput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingOutput {
    /// Trials completed (tuning jobs).
    #[serde(
        default,
        with = "crate::int64",
        skip_serializing_if = "crate::int64::is_zero"
    )]
    #[schemars(with = "crate::int64::Int64")]
    pub completed_trial_count: i64,
    /// ML units consumed: Σ over replicas of units per hour × hours.
    #[serde(default)]
    pub consumed_m_l_units: f64,
    /// Whether this is a tuning job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_hyperparameter_tuning_job: bool,
    /// The tuned metric's tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hyperparameter_metric_tag: String,
    /// Trials, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<HyperparameterOutput>,
    /// Whether a built-in algorithm ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_built_in_algorithm_job: bool,
    /// The built-in algorithm's export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_in_algorithm_output: Option<BuiltInAlgorithmOutput>,
}

/// How a batch prediction job's input files are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DataFormat {
    /// Not set: refused.
    #[default]
    DataFormatUnspecified,
    /// One JSON instance per line.
    Json,
    /// The deprecated name of `JSON`.
    Text,
    /// One CSV record per line, given to the model as a text instance (a Kiln addition; ML Engine
    /// has CSV as an output format only).
    Csv,
    /// TFRecord files of `tf.train.Example`s.
    TfRecord,
    /// Gzip-compressed TFRecord files.
    TfRecordGzip,
}

/// `PredictionInput`: what a batch prediction job reads, with which model, and where it writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PredictionInput {
    /// `projects/P/models/M`: the model's default version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_name: String,
    /// `projects/P/models/M/versions/V`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version_name: String,
    /// A model directory that is not deployed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    /// Format of the input files.
    #[serde(default)]
    pub data_format: DataFormat,
    /// Format of the results: only JSON.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_data_format: String,
    /// Input files; a `*` at the end of the last segment matches any suffix.
    #[serde(default)]
    pub input_paths: Vec<String>,
    /// Directory the results and errors are written to.
    #[serde(default)]
    pub output_path: String,
    /// Region (recorded; Kiln runs locally).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// Runtime version (recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime_version: String,
    /// Parallel workers, each writing one output shard; 0 means one per core.
    #[serde(
        default,
        with = "crate::int64",
        skip_serializing_if = "crate::int64::is_zero"
    )]
    #[schemars(with = "crate::int64::Int64")]
    pub max_worker_count: i64,
    /// Instances per model call; 0 means 64.
    #[serde(
        default,
        with = "crate::int64",
        skip_serializing_if = "crate::int64::is_zero"
    )]
    #[schemars(with = "crate::int64::Int64")]
    pub batch_size: i64,
    /// Signature (recorded; Kiln models have one).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature_name: String,
}

/// `PredictionOutput`: a batch prediction job's results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PredictionOutput {
    /// Where the results are.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_path: String,
    /// Instances predicted.
    #[serde(default, with = "crate::int64")]
    #[schemars(with = "crate::int64::Int64")]
    pub prediction_count: i64,
    /// Records that could not be read or predicted (each is in the errors file).
    #[serde(default, with = "crate::int64")]
    #[schemars(with = "crate::int64::Int64")]
    pub error_count: i64,
    /// Worker-hours used.
    #[serde(default)]
    pub node_hours: f64,
}

/// A job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Job {
    /// User-chosen id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_id: String,
    /// User labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A training job's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_input: Option<TrainingInput>,
    /// A batch prediction job's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_input: Option<PredictionInput>,
    /// When it was created (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub create_time: String,
    /// When it started (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start_time: String,
    /// When it ended (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end_time: String,
    /// State (output only).
    #[serde(default)]
    pub state: JobState,
    /// Why it failed or was cancelled (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_message: String,
    /// Optimistic-concurrency token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
    /// Queue position while QUEUED (output only).
    #[serde(
        default,
        with = "crate::int64",
        skip_serializing_if = "crate::int64::is_zero"
    )]
    #[schemars(with = "crate::int64::Int64")]
    pub job_position: i64,
    /// Training results (output only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_output: Option<TrainingOutput>,
    /// Batch prediction results (output only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_output: Option<PredictionOutput>,
}

/// Response of `projects.jobs.list`; `{}` when empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListJobsResponse {
    /// One page of jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<Job>,
    /// Token of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A job's training curves: the scalars of the TensorBoard event files under its `jobDir` (Kiln
/// extension: `GET .../jobs/{job}/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetrics {
    /// One series per run directory and tag.
    #[serde(default)]
    pub series: Vec<MetricSeries>,
}

/// One scalar over steps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSeries {
    /// The directory of the event files, relative to the job directory: `train`, `eval`, or
    /// `3/eval` for trial 3 of a tuning job.
    pub run: String,
    /// Summary tag: `loss`, `accuracy`, `examples_per_second`, ...
    pub tag: String,
    /// Points in step order; long series are thinned evenly, keeping the last point.
    pub points: Vec<MetricPoint>,
}

/// One value of a series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricPoint {
    /// Training step.
    pub step: i64,
    /// The value.
    pub value: f64,
    /// Seconds since the epoch when it was written.
    pub wall_time: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_fields_are_strings_and_read_from_either() {
        let input: TrainingInput =
            serde_json::from_str(r#"{"scaleTier": "CUSTOM", "masterType": "standard", "workerCount": "2", "parameterServerCount": 1}"#)
                .unwrap();
        assert_eq!((input.worker_count, input.parameter_server_count), (2, 1));
        let json = serde_json::to_value(&input).unwrap();
        assert_eq!(json["workerCount"], "2");
        assert_eq!(json["parameterServerCount"], "1");
        assert_eq!(json["scaleTier"], "CUSTOM");
        let tier: ScaleTier = serde_json::from_str("\"STANDARD_1\"").unwrap();
        assert_eq!(tier, ScaleTier::Standard1);
        let output = serde_json::to_value(TrainingOutput {
            consumed_m_l_units: 0.5,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(output, serde_json::json!({"consumedMLUnits": 0.5}));
    }
}

/// A built-in algorithm: what `masterConfig.imageUri` names to run it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuiltInAlgorithm {
    /// Its name (`wide_deep`); `kiln/{name}` selects it.
    pub name: String,
    /// Every image URI that selects it, `kiln/{name}` first, then ML Engine's built-in images.
    pub image_uris: Vec<String>,
}

/// The answer of `builtInAlgorithms.list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListBuiltInAlgorithmsResponse {
    /// Every built-in algorithm this server runs.
    pub algorithms: Vec<BuiltInAlgorithm>,
}
