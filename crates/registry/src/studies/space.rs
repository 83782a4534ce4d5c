//! A study's config in the tuner's terms: the tuner its metrics, parameters and algorithm describe,
//! and trials' parameters to and from the tuner's values.

use kiln_api::job::ParameterType;
use kiln_api::study::{Measurement, MetricGoal, Study, StudyAlgorithm, Trial, TrialParameter};
use kiln_tuner::{Algorithm, Domain, Goal, Param, Tuner, Value};

use crate::tuning::build_tuner;

/// The tuner a study's config describes, with every problem named by its field.
pub(super) fn tuner(study: &Study) -> Result<Tuner, Vec<String>> {
    let config = &study.study_config;
    let mut problems = Vec::new();
    let goal = match config.metrics.as_slice() {
        [metric] if !metric.metric.is_empty() => match metric.goal {
            MetricGoal::Maximize => Goal::Maximize,
            MetricGoal::Minimize => Goal::Minimize,
            MetricGoal::GoalTypeUnspecified => {
                problems.push("Field: study.study_config.metrics[0].goal Error: MAXIMIZE or MINIMIZE is required".into());
                Goal::Maximize
            }
        },
        [_] => {
            problems.push(
                "Field: study.study_config.metrics[0].metric Error: the metric needs a name".into(),
            );
            Goal::Maximize
        }
        _ => {
            problems.push(format!(
                "Field: study.study_config.metrics Error: Kiln optimises exactly one metric per study, got {}",
                config.metrics.len()
            ));
            Goal::Maximize
        }
    };
    let mut params = Vec::new();
    for (index, spec) in config.parameters.iter().enumerate() {
        let field = format!("Field: study.study_config.parameters[{index}]");
        let scale = crate::tuning::scale(spec.scale_type);
        if !spec.child_parameter_specs.is_empty() {
            problems.push(format!(
                "{field}.child_parameter_specs Error: conditional parameters are not supported"
            ));
            continue;
        }
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
            ParameterType::Discrete => {
                spec.discrete_value_spec.as_ref().map(|v| Domain::Discrete {
                    values: v.values.clone(),
                    scale,
                })
            }
            ParameterType::Categorical => {
                spec.categorical_value_spec
                    .as_ref()
                    .map(|v| Domain::Categorical {
                        values: v.values.clone(),
                    })
            }
            ParameterType::ParameterTypeUnspecified => {
                problems.push(format!(
                    "{field}.type Error: DOUBLE, INTEGER, CATEGORICAL or DISCRETE is required"
                ));
                continue;
            }
        };
        match domain {
            Some(domain) => params.push(Param {
                name: spec.parameter.clone(),
                domain,
            }),
            None => problems.push(format!(
                "{field} Error: a {:?} parameter needs its {}",
                spec.kind,
                match spec.kind {
                    ParameterType::Double => "doubleValueSpec",
                    ParameterType::Integer => "integerValueSpec",
                    ParameterType::Discrete => "discreteValueSpec",
                    _ => "categoricalValueSpec",
                }
            )),
        }
    }
    let algorithm = match config.algorithm {
        StudyAlgorithm::AlgorithmUnspecified | StudyAlgorithm::GaussianProcessBandit => {
            Algorithm::Bayesian
        }
        StudyAlgorithm::GridSearch => Algorithm::Grid,
        StudyAlgorithm::RandomSearch => Algorithm::Random,
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    build_tuner(
        params,
        goal,
        algorithm,
        &study.name,
        "study.study_config.parameters",
    )
}

/// A trial's values in the tuner's terms.
pub(super) fn values(tuner: &Tuner, trial: &Trial) -> Option<Vec<Value>> {
    tuner
        .space()
        .params()
        .iter()
        .map(|param| {
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
        .collect()
}

pub(super) fn parameters(tuner: &Tuner, values: &[Value]) -> Vec<TrialParameter> {
    tuner
        .space()
        .params()
        .iter()
        .zip(values)
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
            }
            parameter
        })
        .collect()
}

/// The value of the study's metric in a measurement.
pub(super) fn metric(study: &Study, measurement: &Measurement) -> Option<f64> {
    let name = &study.study_config.metrics.first()?.metric;
    measurement
        .metrics
        .iter()
        .find(|m| &m.metric == name)
        .map(|m| m.value)
        .filter(|v| v.is_finite())
}
