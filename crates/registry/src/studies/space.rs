//! A study's config in the tuner's terms: the tuner its metrics, parameters and algorithm describe,
//! and trials' parameters to and from the tuner's values.

use kiln_api::job::ParameterType;
use kiln_api::study::{
    Measurement, MetricGoal, MetricSpec, Study, StudyAlgorithm, StudyConfig, StudyParameterSpec,
    Trial, TrialParameter,
};
use kiln_tuner::{Algorithm, Domain, Goal, Metric, Param, Space, StoppingRule, Tuner, Value};

use crate::tuning::build_tuner;
use crate::tuning::prior::{self, Prior};
use crate::tuning::tree;

/// The tuner a study's config describes, with every problem named by its field.
pub(super) fn tuner(study: &Study) -> Result<Tuner, Vec<String>> {
    let config = &study.study_config;
    let mut problems = Vec::new();
    let metrics = metrics(config, &mut problems);
    if let Err(problem) = stopping(config) {
        problems.push(problem);
    }
    if let Err(found) = prior::parse(config.transfer_learning_config.as_ref(), TRANSFER) {
        problems.extend(found);
    }
    let flat = tree::flatten(&config.parameters, PARAMETERS, &param)
        .map_err(|found| problems.extend(found))
        .ok();
    let algorithm = match config.algorithm {
        StudyAlgorithm::AlgorithmUnspecified | StudyAlgorithm::GaussianProcessBandit => {
            Algorithm::Bayesian
        }
        StudyAlgorithm::GridSearch => Algorithm::Grid,
        StudyAlgorithm::RandomSearch => Algorithm::Random,
    };
    match flat {
        Some((params, fields)) if problems.is_empty() => build_tuner(
            params,
            metrics,
            algorithm,
            &study.name,
            (PARAMETERS, &fields),
        ),
        _ => Err(problems),
    }
}

const PARAMETERS: &str = "study.study_config.parameters";
pub(super) const TRANSFER: &str = "study.study_config.transfer_learning_config";

/// The priors a study starts from (checked when it was created).
pub(super) fn priors(study: &Study) -> Vec<Prior> {
    prior::parse(
        study.study_config.transfer_learning_config.as_ref(),
        TRANSFER,
    )
    .unwrap_or_default()
}

/// The names of a study's metrics, in the tuner's order.
pub(super) fn metric_names(study: &Study) -> Vec<String> {
    study
        .study_config
        .metrics
        .iter()
        .map(|m| m.metric.clone())
        .collect()
}

/// The early-stopping rule a study's config selects, and whether it compares by elapsed time:
/// successive halving for `decayCurveStoppingConfig`, the median rule for
/// `medianAutomatedStoppingConfig`; `None` without either.
pub(super) fn stopping(config: &StudyConfig) -> Result<Option<(StoppingRule, bool)>, String> {
    let Some(config) = &config.automated_stopping_config else {
        return Ok(None);
    };
    match (
        &config.decay_curve_stopping_config,
        &config.median_automated_stopping_config,
    ) {
        (Some(_), Some(_)) => Err(
            "Field: study.study_config.automated_stopping_config Error: set one of \
             decayCurveStoppingConfig and medianAutomatedStoppingConfig"
                .into(),
        ),
        (Some(decay), None) => Ok(Some((StoppingRule::Halving, decay.use_elapsed_time))),
        (None, Some(median)) => Ok(Some((StoppingRule::Median, median.use_elapsed_time))),
        (None, None) => Ok(None),
    }
}

/// One parameter's name and domain, from the value spec its type needs.
fn param(spec: &StudyParameterSpec, field: &str) -> Result<Param, Vec<String>> {
    let scale = crate::tuning::scale(spec.scale_type);
    let domain = match spec.kind {
        ParameterType::Double => spec.double_value_spec.as_ref().map(|v| Domain::Double {
            min: v.min_value,
            max: v.max_value,
            scale,
        }),
        ParameterType::Integer => spec.integer_value_spec.as_ref().map(|v| Domain::Integer {
            min: v.min_value,
            max: v.max_value,
            scale,
        }),
        ParameterType::Discrete => spec.discrete_value_spec.as_ref().map(|v| Domain::Discrete {
            values: v.values.clone(),
            scale,
        }),
        ParameterType::Categorical => {
            spec.categorical_value_spec
                .as_ref()
                .map(|v| Domain::Categorical {
                    values: v.values.clone(),
                })
        }
        ParameterType::ParameterTypeUnspecified => {
            return Err(vec![format!(
                "Field: {field}.type Error: DOUBLE, INTEGER, CATEGORICAL or DISCRETE is required"
            )]);
        }
    };
    domain
        .map(|domain| Param::new(spec.parameter.clone(), domain))
        .ok_or_else(|| {
            vec![format!(
                "Field: {field} Error: a {:?} parameter needs its {}",
                spec.kind,
                match spec.kind {
                    ParameterType::Double => "doubleValueSpec",
                    ParameterType::Integer => "integerValueSpec",
                    ParameterType::Discrete => "discreteValueSpec",
                    _ => "categoricalValueSpec",
                }
            )]
        })
}

/// The tuner's metrics for a config's: each named once, with a goal, safety thresholds finite, and
/// at least one objective.
fn metrics(config: &StudyConfig, problems: &mut Vec<String>) -> Vec<Metric> {
    const FIELD: &str = "Field: study.study_config.metrics";
    if config.metrics.is_empty() {
        problems.push(format!("{FIELD} Error: a study needs at least one metric"));
    } else if config.metrics.iter().all(|m| m.safety_config.is_some()) {
        problems.push(format!(
            "{FIELD} Error: at least one metric must be an objective (without safetyConfig)"
        ));
    }
    let mut metrics = Vec::new();
    for (index, spec) in config.metrics.iter().enumerate() {
        let field = format!("{FIELD}[{index}]");
        if spec.metric.is_empty() {
            problems.push(format!("{field}.metric Error: the metric needs a name"));
        } else if config.metrics[..index]
            .iter()
            .any(|m| m.metric == spec.metric)
        {
            problems.push(format!(
                "{field}.metric Error: the metric {:?} is named twice",
                spec.metric
            ));
        }
        let goal = match spec.goal {
            MetricGoal::Maximize => Goal::Maximize,
            MetricGoal::Minimize => Goal::Minimize,
            MetricGoal::GoalTypeUnspecified => {
                problems.push(format!(
                    "{field}.goal Error: MAXIMIZE or MINIMIZE is required"
                ));
                Goal::Maximize
            }
        };
        let threshold = spec.safety_config.as_ref().map(|c| c.safety_threshold);
        if threshold.is_some_and(|t| !t.is_finite()) {
            problems.push(format!(
                "{field}.safety_config.safety_threshold Error: must be a finite number"
            ));
        }
        metrics.push(Metric { goal, threshold });
    }
    metrics
}

/// A trial's values in a space's terms (an inactive conditional parameter is not listed).
pub(crate) fn values(space: &Space, trial: &Trial) -> Option<Vec<Value>> {
    tree::values(space.params(), |param| {
        let given = trial
            .parameters
            .iter()
            .find(|p| p.parameter == param.name)?;
        match &param.domain {
            Domain::Categorical { .. } => given.string_value.clone().map(Value::Category),
            Domain::Integer { .. } => given
                .int_value
                .as_ref()
                .and_then(|text| text.parse::<i64>().ok())
                .map(|v| Value::Number(v as f64))
                .or(given.float_value.map(Value::Number)),
            _ => given.float_value.map(Value::Number),
        }
    })
}

pub(super) fn parameters(tuner: &Tuner, values: &[Value]) -> Vec<TrialParameter> {
    tuner
        .space()
        .params()
        .iter()
        .zip(values)
        .filter(|(_, value)| **value != Value::Inactive)
        .map(|(param, value)| {
            let mut parameter = TrialParameter {
                parameter: param.name.clone(),
                ..TrialParameter::default()
            };
            match (value, &param.domain) {
                (Value::Category(text), _) => parameter.string_value = Some(text.clone()),
                (Value::Number(number), Domain::Integer { .. }) => {
                    parameter.int_value = Some((*number as i64).to_string())
                }
                (Value::Number(number), _) => parameter.float_value = Some(*number),
                (Value::Inactive, _) => {}
            }
            parameter
        })
        .collect()
}

/// The finite value of a metric in a measurement.
pub(crate) fn value(measurement: &Measurement, name: &str) -> Option<f64> {
    measurement
        .metrics
        .iter()
        .find(|m| m.metric == name)
        .map(|m| m.value)
        .filter(|v| v.is_finite())
}

/// The study's first objective: what early stopping follows.
fn first_objective(study: &Study) -> Option<&MetricSpec> {
    study
        .study_config
        .metrics
        .iter()
        .find(|m| m.safety_config.is_none())
}

/// The value of the study's first objective in a measurement.
pub(super) fn objective(study: &Study, measurement: &Measurement) -> Option<f64> {
    value(measurement, &first_objective(study)?.metric)
}

/// The name of the study's first objective.
pub(super) fn objective_name(study: &Study) -> &str {
    first_objective(study).map_or("", |m| m.metric.as_str())
}

/// The value of every metric of the study in a measurement, in the config's order; `None` unless
/// each is there and finite.
pub(super) fn metrics_of(study: &Study, measurement: &Measurement) -> Option<Vec<f64>> {
    study
        .study_config
        .metrics
        .iter()
        .map(|spec| value(measurement, &spec.metric))
        .collect()
}
