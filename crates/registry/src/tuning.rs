//! Hyperparameter tuning jobs: from a `HyperparameterSpec` to a [`Tuner`], and the trial records
//! the job keeps in `trainingOutput.trials`; `run` is the loop that runs the trials.

pub mod prior;
mod report;
mod run;
pub(crate) mod tree;

pub(crate) use report::pushed_file;
pub(crate) use run::Resumed;

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_api::job::{
    GoalType, HyperparameterMetric, HyperparameterOutput, HyperparameterSpec, JobState,
    ParameterType, ScaleType, TuningAlgorithm,
};
use kiln_scheduler::metrics::Report;
use kiln_tuner::{
    Algorithm, Domain, Goal, Metric, Param, Scale, Space, Trial, Tuner, TunerError, Value,
};

/// ML Engine's metric tag when the job names none.
pub const DEFAULT_METRIC_TAG: &str = "training/hptuning/metric";

/// A validated tuning job.
#[derive(Clone)]
pub struct TuningPlan {
    /// The suggestion engine, seeded by the job id.
    pub tuner: Arc<Tuner>,
    /// Trials to run.
    pub max_trials: usize,
    /// Trials at once.
    pub max_parallel: usize,
    /// Failed trials that fail the job.
    pub max_failed: usize,
    /// The metric's tag.
    pub tag: String,
    /// Whether successive halving may stop trials.
    pub early_stopping: bool,
    /// The job whose trials this one continues from.
    pub resume: String,
    /// Earlier jobs and studies whose completed trials the tuner starts from.
    pub priors: Vec<prior::Prior>,
}

const FIELD: &str = "training_input.hyperparameters";

/// The tag of the metric a job tunes: `hyperparameterMetricTag`, or ML Engine's default.
pub fn metric_tag(spec: &HyperparameterSpec) -> &str {
    match spec.hyperparameter_metric_tag.as_str() {
        "" => DEFAULT_METRIC_TAG,
        tag => tag,
    }
}

/// Checks a spec, collecting every problem with its field.
pub fn plan(spec: &HyperparameterSpec, job_id: &str) -> Result<TuningPlan, Vec<String>> {
    let mut problems = Vec::new();
    let mut count = |name: &str, value: i32, default: usize| match value {
        0 => default,
        v if v > 0 => v as usize,
        v => {
            problems.push(format!(
                "Field: {FIELD}.{name} Error: must be positive, got {v}"
            ));
            default
        }
    };
    let max_trials = count("max_trials", spec.max_trials, 1);
    let max_parallel = count("max_parallel_trials", spec.max_parallel_trials, 1);
    let max_failed = count(
        "max_failed_trials",
        spec.max_failed_trials,
        max_trials.div_ceil(2),
    );
    let read = |param: &kiln_api::job::ParameterSpec, field: &str| {
        let mut problems = Vec::new();
        let name = &param.parameter_name;
        if !name.is_empty()
            && !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            problems.push(format!(
                "Field: {field}.parameter_name Error: {name:?} must be letters, digits, '_', '-' or '.': it becomes the flag --{name}"
            ));
        }
        match domain(param) {
            Ok(domain) if problems.is_empty() => Ok(Param::new(name.clone(), domain)),
            Ok(_) => Err(problems),
            Err(message) => {
                problems.insert(0, format!("Field: {field} Error: {message}"));
                Err(problems)
            }
        }
    };
    let priors = prior::parse(
        spec.transfer_learning_config.as_ref(),
        &format!("{FIELD}.transfer_learning_config"),
    )
    .map_err(|found| problems.extend(found))
    .unwrap_or_default();
    let params_field = format!("{FIELD}.params");
    let flat = tree::flatten(&spec.params, &params_field, &read)
        .map_err(|found| problems.extend(found))
        .ok();
    let goal = match spec.goal {
        GoalType::Minimize => Goal::Minimize,
        _ => Goal::Maximize,
    };
    let algorithm = match spec.algorithm {
        TuningAlgorithm::AlgorithmUnspecified => Algorithm::Bayesian,
        TuningAlgorithm::GridSearch => Algorithm::Grid,
        TuningAlgorithm::RandomSearch => Algorithm::Random,
    };
    let tuner = match (problems.is_empty(), flat) {
        _ if spec.params.is_empty() => {
            problems.push(format!(
                "Field: {params_field} Error: a tuning job needs at least one parameter"
            ));
            None
        }
        (true, Some((params, fields))) => build_tuner(
            params,
            vec![Metric::objective(goal)],
            algorithm,
            job_id,
            (&params_field, &fields),
        )
        .map_err(|found| problems.extend(found))
        .ok(),
        _ => None,
    };
    match tuner {
        Some(tuner) if problems.is_empty() => Ok(TuningPlan {
            tuner: Arc::new(tuner),
            max_trials,
            max_parallel,
            max_failed,
            tag: metric_tag(spec).to_string(),
            early_stopping: spec.enable_trial_early_stopping,
            resume: spec.resume_previous_job_id.clone(),
            priors,
        }),
        _ => Err(problems),
    }
}

/// A tuner over `params` measuring `metrics`, seeded by `name` (a job id, a study name) so its
/// suggestions are reproducible. Problems name the parameters' list `field`, or the path in
/// `fields` of the parameter they concern (one per parameter, in order).
pub fn build_tuner(
    params: Vec<Param>,
    metrics: Vec<Metric>,
    algorithm: Algorithm,
    name: &str,
    (field, fields): (&str, &[String]),
) -> Result<Tuner, Vec<String>> {
    Space::new(params)
        .and_then(|space| Tuner::with_metrics(space, metrics, algorithm, seed(name)))
        .map_err(|error| match error {
            TunerError::InvalidSpace(found) => found
                .into_iter()
                .map(|(index, message)| {
                    let at = index.and_then(|index| fields.get(index));
                    format!(
                        "Field: {} Error: {message}",
                        at.map_or(field, String::as_str)
                    )
                })
                .collect(),
            other => vec![format!("Field: {field} Error: {other}")],
        })
}

/// A seed fixed by a name, so a job's or study's suggestions are reproducible.
fn seed(job_id: &str) -> u64 {
    job_id.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The tuner's scale for the API's `scaleType` (unset is linear).
pub fn scale(scale_type: ScaleType) -> Scale {
    match scale_type {
        ScaleType::None | ScaleType::UnitLinearScale => Scale::Linear,
        ScaleType::UnitLogScale => Scale::Log,
        ScaleType::UnitReverseLogScale => Scale::ReverseLog,
    }
}

fn domain(param: &kiln_api::job::ParameterSpec) -> Result<Domain, String> {
    let scale = scale(param.scale_type);
    let range = || match (param.min_value, param.max_value) {
        (Some(min), Some(max)) => Ok((min, max)),
        _ => Err(format!("{:?} needs minValue and maxValue", param.kind)),
    };
    match param.kind {
        ParameterType::ParameterTypeUnspecified => {
            Err("type is required: DOUBLE, INTEGER, CATEGORICAL or DISCRETE".into())
        }
        ParameterType::Double => range().map(|(min, max)| Domain::Double { min, max, scale }),
        ParameterType::Integer => {
            let (min, max) = range()?;
            if min.fract() != 0.0 || max.fract() != 0.0 || min.abs() > 1e15 || max.abs() > 1e15 {
                return Err(format!(
                    "INTEGER bounds must be whole numbers, got {min} and {max}"
                ));
            }
            Ok(Domain::Integer {
                min: min as i64,
                max: max as i64,
                scale,
            })
        }
        ParameterType::Discrete if param.discrete_values.len() > 1000 => Err(format!(
            "discreteValues holds {} values; at most 1000",
            param.discrete_values.len()
        )),
        ParameterType::Discrete => Ok(Domain::Discrete {
            values: param.discrete_values.clone(),
            scale,
        }),
        ParameterType::Categorical if param.scale_type != ScaleType::None => {
            Err("scaleType must be unset for a CATEGORICAL parameter".into())
        }
        ParameterType::Categorical => Ok(Domain::Categorical {
            values: param.categorical_values.clone(),
        }),
    }
}

/// A stored trial's values in the tuner's terms (an inactive conditional parameter is not stored);
/// `None` if they no longer fit the space.
pub fn values(space: &Space, trial: &HyperparameterOutput) -> Option<Vec<Value>> {
    tree::values(space.params(), |param| {
        let text = trial.hyperparameters.get(&param.name)?;
        Some(match param.domain {
            Domain::Categorical { .. } => Value::Category(text.clone()),
            _ => Value::Number(text.parse().ok()?),
        })
    })
}

/// What the tuner learns from a finished trial: its final metric, or a failure. Cancelled trials
/// teach nothing.
pub fn observation(space: &Space, trial: &HyperparameterOutput) -> Option<Trial> {
    let metrics = match trial.state {
        JobState::Succeeded => Some(vec![trial.final_metric.as_ref()?.objective_value]),
        JobState::Failed => None,
        _ => return None,
    };
    Some(Trial {
        values: values(space, trial)?,
        metrics,
    })
}

/// A new trial record with its values.
pub fn new_trial(space: &Space, trial_id: usize, values: &[Value]) -> HyperparameterOutput {
    HyperparameterOutput {
        trial_id: trial_id.to_string(),
        hyperparameters: space
            .params()
            .iter()
            .zip(values)
            .filter(|(_, value)| **value != Value::Inactive)
            .map(|(param, value)| (param.name.clone(), value.to_string()))
            .collect::<BTreeMap<_, _>>(),
        state: JobState::Running,
        start_time: kiln_api::now(),
        ..HyperparameterOutput::default()
    }
}

/// The trainer flags of a trial: `--name=value` per active parameter, in spec order.
pub fn flags(space: &Space, trial: &HyperparameterOutput) -> Vec<String> {
    space
        .params()
        .iter()
        .filter_map(|param| {
            trial
                .hyperparameters
                .get(&param.name)
                .map(|value| format!("--{}={value}", param.name))
        })
        .collect()
}

/// Records the reports read so far: every one in `allMetrics`, the last as `finalMetric`.
pub fn record_reports(trial: &mut HyperparameterOutput, reports: &[Report]) {
    trial.all_metrics = reports
        .iter()
        .map(|report| HyperparameterMetric {
            training_step: report.step,
            objective_value: report.value,
        })
        .collect();
    trial.final_metric = trial.all_metrics.last().cloned();
}

/// Orders trials best first: succeeded trials by objective in the goal's direction, then the rest
/// by trial id.
pub fn sort_best_first(trials: &mut [HyperparameterOutput], goal: Goal) {
    let key = |trial: &HyperparameterOutput| {
        let objective = trial
            .final_metric
            .as_ref()
            .filter(|_| trial.state == JobState::Succeeded)
            .map(|metric| {
                if goal == Goal::Minimize {
                    metric.objective_value
                } else {
                    -metric.objective_value
                }
            });
        (
            objective.is_none(),
            objective.unwrap_or(0.0),
            trial.trial_id.parse::<u64>().unwrap_or(u64::MAX),
        )
    };
    trials.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2))
    });
}

#[cfg(test)]
mod tests {
    use kiln_api::job::ParameterSpec;

    use super::*;

    fn param(json: serde_json::Value) -> ParameterSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_census_sample_config_plans_and_bad_specs_name_their_fields() {
        let census = HyperparameterSpec {
            goal: GoalType::Maximize,
            hyperparameter_metric_tag: "accuracy".into(),
            max_trials: 4,
            max_parallel_trials: 2,
            params: vec![
                param(
                    serde_json::json!({"parameterName": "first-layer-size", "type": "INTEGER", "minValue": 50, "maxValue": 500, "scaleType": "UNIT_LINEAR_SCALE"}),
                ),
                param(
                    serde_json::json!({"parameterName": "num-layers", "type": "INTEGER", "minValue": 1, "maxValue": 15, "scaleType": "UNIT_LINEAR_SCALE"}),
                ),
                param(
                    serde_json::json!({"parameterName": "scale-factor", "type": "DOUBLE", "minValue": 0.1, "maxValue": 1.0, "scaleType": "UNIT_REVERSE_LOG_SCALE"}),
                ),
            ],
            ..HyperparameterSpec::default()
        };
        let census = plan(&census, "census_hp").unwrap();
        assert_eq!(
            (
                census.max_trials,
                census.max_parallel,
                census.max_failed,
                census.tag.as_str()
            ),
            (4, 2, 2, "accuracy")
        );

        let bad = HyperparameterSpec {
            max_trials: -1,
            algorithm: TuningAlgorithm::GridSearch,
            params: vec![
                param(
                    serde_json::json!({"parameterName": "lr", "type": "DOUBLE", "minValue": 0, "maxValue": 1, "scaleType": "UNIT_LOG_SCALE"}),
                ),
                param(
                    serde_json::json!({"parameterName": "act", "type": "CATEGORICAL", "categoricalValues": ["relu"], "scaleType": "UNIT_LOG_SCALE"}),
                ),
                param(
                    serde_json::json!({"parameterName": "bad name", "type": "INTEGER", "minValue": 1.5, "maxValue": 3}),
                ),
            ],
            ..HyperparameterSpec::default()
        };
        let problems = plan(&bad, "j").err().unwrap().join("\n");
        for expected in [
            "hyperparameters.max_trials Error: must be positive",
            "params[1] Error: scaleType must be unset",
            "params[2] Error: INTEGER bounds must be whole numbers",
            "params[2].parameter_name",
        ] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
        let grid = HyperparameterSpec {
            algorithm: TuningAlgorithm::GridSearch,
            params: vec![param(
                serde_json::json!({"parameterName": "lr", "type": "DOUBLE", "minValue": 0, "maxValue": 1, "scaleType": "UNIT_LOG_SCALE"}),
            )],
            ..HyperparameterSpec::default()
        };
        let problems = plan(&grid, "j").err().unwrap().join("\n");
        assert!(
            problems.contains("params[0] Error: a log scale needs minValue > 0"),
            "{problems}"
        );
        let grid = HyperparameterSpec {
            algorithm: TuningAlgorithm::GridSearch,
            params: vec![
                param(
                    serde_json::json!({"parameterName": "n", "type": "INTEGER", "minValue": 1, "maxValue": 3}),
                ),
                param(
                    serde_json::json!({"parameterName": "lr", "type": "DOUBLE", "minValue": 0.1, "maxValue": 1}),
                ),
            ],
            ..HyperparameterSpec::default()
        };
        let problems = plan(&grid, "j").err().unwrap().join("\n");
        assert!(
            problems.contains(
                "params[1] Error: GRID_SEARCH takes only INTEGER, DISCRETE and CATEGORICAL"
            ),
            "{problems}"
        );
    }
}
