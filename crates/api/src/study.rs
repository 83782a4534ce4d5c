//! `projects.locations.studies` and their `trials`: the Vizier-style tuning service (api-surface.md
//! §A.2, A.5), so any client can use Kiln's tuner without running jobs through Kiln.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Search algorithm of a study.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StudyAlgorithm {
    /// The default: the GP bandit.
    #[default]
    AlgorithmUnspecified,
    /// The GP bandit.
    GaussianProcessBandit,
    /// Every combination, in order.
    GridSearch,
    /// Uniform in the scaled space.
    RandomSearch,
}

/// Direction of a metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MetricGoal {
    /// Not set: refused.
    #[default]
    GoalTypeUnspecified,
    /// Larger is better.
    Maximize,
    /// Smaller is better.
    Minimize,
}

/// `MetricSpec`: an objective, or with `safetyConfig` a safety constraint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSpec {
    /// Name reported in measurements.
    #[serde(default)]
    pub metric: String,
    /// Direction; for a safety constraint, which side of the threshold is safe.
    #[serde(default)]
    pub goal: MetricGoal,
    /// Makes the metric a constraint each trial should meet rather than an objective (Vertex AI
    /// Vizier's `safetyConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_config: Option<SafetyConfig>,
}

/// A safety constraint: a trial is safe when its value is the threshold or on the goal's side of
/// it. Only safe trials are optimal, and suggestions avoid where the constraint is likely unmet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SafetyConfig {
    /// The value a safe trial reaches.
    pub safety_threshold: f64,
}

/// Bounds of a DOUBLE parameter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DoubleValueSpec {
    /// Lower bound.
    pub min_value: f64,
    /// Upper bound.
    pub max_value: f64,
}

/// Bounds of an INTEGER parameter (int64 as strings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntegerValueSpec {
    /// Lower bound.
    #[serde(with = "crate::int64")]
    #[schemars(with = "crate::int64::Int64")]
    pub min_value: i64,
    /// Upper bound.
    #[serde(with = "crate::int64")]
    #[schemars(with = "crate::int64::Int64")]
    pub max_value: i64,
}

/// Values of a CATEGORICAL parameter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CategoricalValueSpec {
    /// The values.
    pub values: Vec<String>,
}

/// Values of a DISCRETE parameter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscreteValueSpec {
    /// Strictly increasing values.
    pub values: Vec<f64>,
}

/// The INTEGER values of a parent that make a child parameter active (int64 as strings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntValues {
    /// The values.
    #[serde(with = "crate::int64::list")]
    #[schemars(with = "Vec<crate::int64::Int64>")]
    pub values: Vec<i64>,
}

/// A study parameter (Vizier's `ParameterSpec`); exactly one value spec matches its type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StudyParameterSpec {
    /// Name.
    #[serde(default)]
    pub parameter: String,
    /// Type.
    #[serde(default, rename = "type")]
    pub kind: crate::job::ParameterType,
    /// DOUBLE bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub double_value_spec: Option<DoubleValueSpec>,
    /// INTEGER bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer_value_spec: Option<IntegerValueSpec>,
    /// CATEGORICAL values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_value_spec: Option<CategoricalValueSpec>,
    /// DISCRETE values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discrete_value_spec: Option<DiscreteValueSpec>,
    /// Scale.
    #[serde(default, skip_serializing_if = "is_default")]
    pub scale_type: crate::job::ScaleType,
    /// Parameters that take a value only when this one takes one of their parent values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub child_parameter_specs: Vec<StudyParameterSpec>,
    /// For a child of a CATEGORICAL parameter: the parent's values that make it active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_categorical_values: Option<CategoricalValueSpec>,
    /// For a child of an INTEGER parameter: the parent's values that make it active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_int_values: Option<IntValues>,
    /// For a child of a DISCRETE parameter: the parent's values that make it active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_discrete_values: Option<DiscreteValueSpec>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// The median rule, on steps or on elapsed time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MedianAutomatedStoppingConfig {
    /// Compare by elapsed time instead of step count.
    #[serde(default)]
    pub use_elapsed_time: bool,
}

/// The learning-curve rule, on steps or on elapsed time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecayCurveAutomatedStoppingConfig {
    /// Compare by elapsed time instead of step count.
    #[serde(default)]
    pub use_elapsed_time: bool,
}

/// `AutomatedStoppingConfig`: which rule `checkEarlyStoppingState` applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutomatedStoppingConfig {
    /// The median rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_automated_stopping_config: Option<MedianAutomatedStoppingConfig>,
    /// The learning-curve rule: asynchronous successive halving over the reported steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay_curve_stopping_config: Option<DecayCurveAutomatedStoppingConfig>,
}

/// `StudyConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StudyConfig {
    /// Search algorithm.
    #[serde(default)]
    pub algorithm: StudyAlgorithm,
    /// The metrics: one objective, or several (a Pareto front is sought), and safety constraints.
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
    /// The search space.
    #[serde(default)]
    pub parameters: Vec<StudyParameterSpec>,
    /// Early stopping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated_stopping_config: Option<AutomatedStoppingConfig>,
    /// Earlier studies and tuning jobs whose completed trials the tuner starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_learning_config: Option<TransferLearningConfig>,
}

/// `TransferLearningConfig` (Vertex AI Vizier's): what a tuner starts from besides its own trials.
/// The completed trials of each prior whose parameters fit this space, and that report this one's
/// metrics, inform the suggestions as its own trials do; they are not copied into it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferLearningConfig {
    /// Studies (`projects/P/locations/L/studies/S`) and tuning jobs (`projects/P/jobs/J`).
    #[serde(default)]
    pub prior_study_names: Vec<String>,
}

/// State of a study.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StudyState {
    /// Not known.
    #[default]
    StateUnspecified,
    /// Accepting trials.
    Active,
    /// Not accepting trials.
    Inactive,
    /// Done: a finite space is exhausted.
    Completed,
}

/// `Study`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Study {
    /// `projects/{p}/locations/{l}/studies/{id}` (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The search.
    #[serde(default)]
    pub study_config: StudyConfig,
    /// State (output only).
    #[serde(default)]
    pub state: StudyState,
    /// When it was created (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub create_time: String,
    /// Why it is inactive (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub inactive_reason: String,
}

/// A parameter's value in a trial: one of the three.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialParameter {
    /// Name.
    pub parameter: String,
    /// DOUBLE and DISCRETE values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float_value: Option<f64>,
    /// INTEGER values (int64 as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int_value: Option<String>,
    /// CATEGORICAL values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
}

/// One metric value in a measurement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeasurementMetric {
    /// Name.
    pub metric: String,
    /// Value.
    pub value: f64,
}

/// `Measurement`: metrics at a point of a trial's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Measurement {
    /// Time since the trial started, as `"12.5s"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub elapsed_time: String,
    /// Training step.
    #[serde(
        default,
        with = "crate::int64",
        skip_serializing_if = "crate::int64::is_zero"
    )]
    #[schemars(with = "crate::int64::Int64")]
    pub step_count: i64,
    /// Values.
    #[serde(default)]
    pub metrics: Vec<MeasurementMetric>,
}

/// State of a trial.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrialState {
    /// Not known.
    #[default]
    StateUnspecified,
    /// Suggested, not yet started.
    Requested,
    /// Being evaluated.
    Active,
    /// Finished.
    Completed,
    /// Asked to stop.
    Stopping,
}

/// `Trial`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trial {
    /// `.../studies/{s}/trials/{n}` (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// State.
    #[serde(default)]
    pub state: TrialState,
    /// The point evaluated.
    #[serde(default)]
    pub parameters: Vec<TrialParameter>,
    /// The result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_measurement: Option<Measurement>,
    /// Intermediate results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// When it was created (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start_time: String,
    /// When it completed (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end_time: String,
    /// The client it was suggested to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    /// Whether the point could not be evaluated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trial_infeasible: bool,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub infeasible_reason: String,
}

/// Body of `trials:suggest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuggestTrialsRequest {
    /// How many trials (default 1).
    #[serde(default)]
    pub suggestion_count: i32,
    /// Who evaluates them; a client with unfinished trials gets those back first.
    #[serde(default)]
    pub client_id: String,
}

/// Body of `trials/{t}:addMeasurement`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMeasurementRequest {
    /// The measurement.
    #[serde(default)]
    pub measurement: Measurement,
}

/// Body of `trials/{t}:complete`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteTrialRequest {
    /// The result; the last measurement when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_measurement: Option<Measurement>,
    /// The point could not be evaluated.
    #[serde(default)]
    pub trial_infeasible: bool,
    /// Why.
    #[serde(default)]
    pub infeasible_reason: String,
}

/// `studies.list` response; `{}` when empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListStudiesResponse {
    /// The studies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub studies: Vec<Study>,
}

/// `trials.list` and `trials:listOptimalTrials` responses; `{}` when empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListTrialsResponse {
    /// The trials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
}

/// What `trials:suggest` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuggestTrialsResponse {
    /// The trials to evaluate (fewer than asked when a finite space is exhausted).
    #[serde(default)]
    pub trials: Vec<Trial>,
    /// The study's state after suggesting.
    pub study_state: StudyState,
    /// When the request started.
    pub start_time: String,
    /// When it ended.
    pub end_time: String,
}

/// What `trials/{t}:checkEarlyStoppingState` decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckTrialEarlyStoppingStateResponse {
    /// Whether the trial should stop.
    pub should_stop: bool,
    /// When the request started.
    pub start_time: String,
    /// When it ended.
    pub end_time: String,
}

/// The result carried by a study operation, with its `@type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "@type")]
pub enum StudyOperationResponse {
    /// Of `trials:suggest`.
    #[serde(rename = "type.googleapis.com/google.cloud.ml.v1.SuggestTrialsResponse")]
    Suggest(SuggestTrialsResponse),
    /// Of `trials/{t}:checkEarlyStoppingState`.
    #[serde(rename = "type.googleapis.com/google.cloud.ml.v1.CheckTrialEarlyStoppingStateResponse")]
    EarlyStopping(CheckTrialEarlyStoppingStateResponse),
}

/// The long-running operation `suggest` and `checkEarlyStoppingState` return; Kiln answers at once,
/// so it is always `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StudyOperation {
    /// `projects/{p}/locations/{l}/operations/{id}`.
    pub name: String,
    /// Always true.
    pub done: bool,
    /// The result.
    pub response: StudyOperationResponse,
}
