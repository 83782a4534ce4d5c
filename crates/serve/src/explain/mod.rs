//! Feature attributions for tabular models, model-agnostic: they need only predictions, so a
//! Kiln export and an ONNX model are explained alike.
//!
//! - [`shapley`]: sampled Shapley, for any model.
//! - [`gradients`]: integrated gradients, for models differentiable in their numeric inputs.
//!
//! The work is split so a caller can run the model its own way (through the batcher): [`plan`]
//! builds every instance the method needs, and [`Plan::attribute`] reads the predictions.

mod gradients;
mod shapley;

use serde_json::{Map, Value, json};

/// Most paths one sampled Shapley explanation may sample.
pub const MAX_PATHS: usize = 100;

/// Most integral steps one integrated-gradients explanation may take.
pub const MAX_STEPS: usize = 100;

/// How attributions are computed (a version's `explanationConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `sampledShapleyAttribution`, over `paths` random orderings of the inputs.
    SampledShapley { paths: usize },
    /// `integratedGradientsAttribution`, over `steps` points of the path from the baseline.
    IntegratedGradients { steps: usize },
}

/// The instances one explanation needs, and how to read their predictions back.
#[derive(Debug, Clone)]
pub struct Plan {
    method: Planned,
    /// All instances to predict: the instance itself, the baseline, then what the method needs.
    pub instances: Vec<Value>,
}

#[derive(Debug, Clone)]
enum Planned {
    Shapley(shapley::Paths),
    Gradients(gradients::Path),
}

/// Plans the attribution of `instance` by `method`; sampled Shapley draws its orderings from
/// `seed`. An instance is an object of named inputs (its `key` is not attributed), or a row of
/// feature values, whose inputs are named by position (`"0"`, `"1"`, ...) and whose missing
/// features are zero.
pub fn plan(instance: &Value, method: Method, seed: u64) -> Result<Plan, String> {
    let (fields, width): (Map<String, Value>, _) = match instance {
        Value::Object(fields) => (
            fields
                .iter()
                .filter(|(name, _)| *name != "key")
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            None,
        ),
        Value::Array(row) if row.iter().all(Value::is_number) => (
            row.iter()
                .enumerate()
                .map(|(index, value)| (index.to_string(), value.clone()))
                .collect(),
            Some(row.len()),
        ),
        _ => {
            return Err(
                "explain needs instances that are objects of named inputs or rows of numbers"
                    .into(),
            );
        }
    };
    if fields.is_empty() {
        return Err("the instance has no inputs to attribute".into());
    }
    let example = Value::Object(fields.clone());
    let (method, rest) = match method {
        Method::SampledShapley { paths } if (1..=MAX_PATHS).contains(&paths) => {
            let (paths, instances) = shapley::plan(&fields, paths, seed);
            (Planned::Shapley(paths), instances)
        }
        Method::SampledShapley { paths } => {
            return Err(format!(
                "sampledShapleyAttribution.numPaths must be between 1 and {MAX_PATHS}, got {paths}"
            ));
        }
        Method::IntegratedGradients { steps } if (1..=MAX_STEPS).contains(&steps) => {
            let (path, instances) = gradients::plan(&fields, steps)?;
            (Planned::Gradients(path), instances)
        }
        Method::IntegratedGradients { steps } => {
            return Err(format!(
                "integratedGradientsAttribution.numIntegralSteps must be between 1 and \
                 {MAX_STEPS}, got {steps}"
            ));
        }
    };
    let mut instances = Vec::with_capacity(rest.len() + 1);
    instances.push(example);
    instances.extend(rest);
    if let Some(width) = width {
        for instance in &mut instances {
            *instance = as_row(instance, width);
        }
    }
    Ok(Plan { method, instances })
}

/// An instance planned by position back as a row, a missing feature as zero.
fn as_row(instance: &Value, width: usize) -> Value {
    Value::Array(
        (0..width)
            .map(|index| {
                instance
                    .get(index.to_string())
                    .filter(|value| !value.is_null())
                    .cloned()
                    .unwrap_or_else(|| json!(0))
            })
            .collect(),
    )
}

impl Plan {
    /// The explanation of the instance from the predictions of [`Plan::instances`], in the
    /// shape ML Engine's `explain` answers with (`attributions_by_label`).
    pub fn attribute(&self, predictions: &[Value]) -> Result<Value, String> {
        if predictions.len() != self.instances.len() {
            return Err(format!(
                "expected {} predictions, got {}",
                self.instances.len(),
                predictions.len()
            ));
        }
        let (example_score, label) = score(&predictions[0], None)?;
        let scores: Vec<f64> = predictions[1..]
            .iter()
            .map(|prediction| score(prediction, label).map(|(value, _)| value))
            .collect::<Result<_, _>>()?;
        let (attributions, approx_error) = match &self.method {
            Planned::Shapley(paths) => paths.attribute(&scores),
            Planned::Gradients(path) => path.attribute(example_score, &scores),
        };
        let mut by_label = json!({
            "example_score": example_score,
            "baseline_score": scores[0],
            "attributions": attributions,
            "approx_error": approx_error,
            "output_name": output_name(&predictions[0]),
        });
        if let Some(label) = label {
            by_label["label_index"] = json!(label);
            if let Some(name) = label_name(&predictions[0], label) {
                by_label["label_name"] = name;
            }
        }
        Ok(json!({ "attributions_by_label": [by_label] }))
    }
}

/// The output attributed: the positive class's probability of a binary classifier, the
/// predicted class's probability (or logit) of a multi-class one, or the regression value. Kiln
/// exports answer with TensorFlow's canned-estimator keys; ONNX models with their own outputs
/// (a bare value or list, or scikit-learn's `output_probability`).
fn score(prediction: &Value, label: Option<usize>) -> Result<(f64, Option<usize>), String> {
    let first = |value: &Value| {
        value
            .as_array()
            .and_then(|values| values.first())
            .unwrap_or(value)
            .as_f64()
    };
    if let Some(probability) = prediction.get("logistic").and_then(first) {
        return Ok((probability, Some(1)));
    }
    let classes = prediction
        .get("probabilities")
        .or_else(|| prediction.get("output_probability"))
        .or(Some(prediction).filter(|bare| bare.as_array().is_some_and(|list| list.len() > 1)));
    if let Some(classes) = classes {
        let values: Vec<f64> = match classes {
            Value::Object(by_class) => by_class.values().filter_map(Value::as_f64).collect(),
            other => other
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect(),
        };
        let label = label.unwrap_or_else(|| {
            (0..values.len())
                .max_by(|&a, &b| values[a].total_cmp(&values[b]))
                .unwrap_or(0)
        });
        return values
            .get(label)
            .map(|value| (*value, Some(label)))
            .ok_or_else(|| format!("no score for label {label}"));
    }
    if let Some(value) = prediction
        .get("predictions")
        .and_then(first)
        .or_else(|| first(prediction))
    {
        return Ok((value, None));
    }
    Err(format!(
        "cannot find a score to attribute in the prediction {prediction}"
    ))
}

fn output_name(prediction: &Value) -> &'static str {
    ["logistic", "probabilities", "output_probability"]
        .into_iter()
        .find(|name| prediction.get(name).is_some())
        .unwrap_or("predictions")
}

/// The class name of `label`: from `classes`, or the key of scikit-learn's probability map.
fn label_name(prediction: &Value, label: usize) -> Option<Value> {
    if let Some(name) = prediction["classes"]
        .as_array()
        .and_then(|classes| classes.get(label))
        .or_else(|| prediction.get("classes").filter(|c| c.is_string()))
    {
        return Some(name.clone());
    }
    prediction
        .get("output_probability")
        .and_then(Value::as_object)
        .and_then(|by_class| by_class.keys().nth(label))
        .map(|name| json!(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// score = 2a + 3b·c (an interaction between b and c) for named inputs; missing is 0.
    fn model(instance: &Value) -> Value {
        let get = |name: &str| instance.get(name).and_then(Value::as_f64).unwrap_or(0.0);
        json!({"predictions": [2.0 * get("a") + 3.0 * get("b") * get("c")]})
    }

    #[test]
    fn attributions_sum_to_score_minus_baseline_and_split_interactions() {
        let instance = json!({"a": 1.0, "b": 2.0, "c": 1.0, "key": 7});
        let plan = plan(&instance, Method::SampledShapley { paths: 50 }, 1).unwrap();
        assert_eq!(plan.instances.len(), 1 + 50 * 4);
        assert_eq!(plan.instances[0], json!({"a": 1.0, "b": 2.0, "c": 1.0}));
        let predictions: Vec<Value> = plan.instances.iter().map(model).collect();
        let explanation = plan.attribute(&predictions).unwrap();
        let label = &explanation["attributions_by_label"][0];
        let attributions = &label["attributions"];
        assert_eq!(label["example_score"], 8.0);
        assert_eq!(label["baseline_score"], 0.0);
        let total: f64 = ["a", "b", "c"]
            .iter()
            .map(|f| attributions[f].as_f64().unwrap())
            .sum();
        assert!((total - 8.0).abs() < 1e-9, "{total}");
        // `a` is additive: exactly 2. b and c share their interaction's 6: half each in
        // expectation (sampled), so each lies between 0 and 6 and they sum to 6.
        assert!((attributions["a"].as_f64().unwrap() - 2.0).abs() < 1e-9);
        let b = attributions["b"].as_f64().unwrap();
        assert!((1.5..=4.5).contains(&b), "{b}");
        assert!(attributions.get("key").is_none());
        assert!(
            label["approx_error"].as_f64().unwrap() > 0.0,
            "sampled: some spread"
        );
    }

    #[test]
    fn a_row_of_features_is_attributed_by_position_with_missing_features_zero() {
        let instance = json!([1.0, 2.0]);
        let plan = plan(&instance, Method::SampledShapley { paths: 10 }, 3).unwrap();
        assert!(
            plan.instances
                .iter()
                .all(|row| row.as_array().is_some_and(|row| row.len() == 2))
        );
        assert_eq!(plan.instances[1], json!([0, 0]), "the baseline");
        let linear =
            |row: &Value| json!([2.0 * row[0].as_f64().unwrap() + 3.0 * row[1].as_f64().unwrap()]);
        let predictions: Vec<Value> = plan.instances.iter().map(linear).collect();
        let explanation = plan.attribute(&predictions).unwrap();
        let attributions = &explanation["attributions_by_label"][0]["attributions"];
        assert_eq!(attributions["0"], 2.0);
        assert_eq!(attributions["1"], 6.0);
        let error = super::plan(&json!(["a"]), Method::SampledShapley { paths: 1 }, 1).unwrap_err();
        assert!(error.contains("rows of numbers"), "{error}");
    }

    #[test]
    fn integrated_gradients_of_a_smooth_model_add_up_and_follow_its_slopes() {
        // score = 2a + b² + 0.5·(x0 + x1·x1) with a list input x; `kind` is not a number.
        let model = |instance: &Value| {
            let get = |value: &Value| value.as_f64().unwrap_or(0.0);
            let x = &instance["x"];
            json!([2.0 * get(&instance["a"])
                + get(&instance["b"]).powi(2)
                + 0.5 * (get(&x[0]) + get(&x[1]).powi(2))])
        };
        let instance = json!({"a": 1.5, "b": -2.0, "x": [1.0, 3.0], "kind": "red", "key": 1});
        let method = Method::IntegratedGradients { steps: 50 };
        let plan = plan(&instance, method, 0).unwrap();
        assert_eq!(plan.instances.len(), 2 + 2 * 50 * 4);
        assert_eq!(
            plan.instances[1],
            json!({"a": 0.0, "b": 0.0, "x": [0.0, 0.0], "kind": "red"})
        );
        let predictions: Vec<Value> = plan.instances.iter().map(model).collect();
        let explanation = plan.attribute(&predictions).unwrap();
        let label = &explanation["attributions_by_label"][0];
        let attributions = &label["attributions"];
        // Along the straight path a quadratic's integrated gradient is exact: b² gives b², x1²
        // gives x1²; linear terms give coefficient times value.
        let near = |value: &Value, want: f64| (value.as_f64().unwrap() - want).abs() < 1e-4;
        assert!(near(&attributions["a"], 3.0), "{attributions}");
        assert!(near(&attributions["b"], 4.0), "{attributions}");
        assert!(
            near(&attributions["x"][0], 0.5) && near(&attributions["x"][1], 4.5),
            "{attributions}"
        );
        assert_eq!(attributions["kind"], 0.0);
        assert!(attributions.get("key").is_none());
        assert_eq!(label["example_score"], 12.0);
        assert!(label["approx_error"].as_f64().unwrap() < 1e-4, "{label}");
    }

    #[test]
    fn scores_onnx_outputs_by_class() {
        let zipped =
            json!({"output_label": 2, "output_probability": {"0": 0.1, "1": 0.2, "2": 0.7}});
        assert_eq!(score(&zipped, None).unwrap(), (0.7, Some(2)));
        assert_eq!(label_name(&zipped, 2), Some(json!("2")));
        assert_eq!(
            score(&json!([0.5, -1.0, 2.5]), None).unwrap(),
            (2.5, Some(2))
        );
        assert_eq!(score(&json!([0.25]), None).unwrap(), (0.25, None));
        assert_eq!(score(&json!(1.5), None).unwrap(), (1.5, None));
    }

    #[test]
    fn refuses_what_it_cannot_explain() {
        let shapley = Method::SampledShapley { paths: 10 };
        assert!(plan(&json!([1, "two"]), shapley, 0).is_err());
        let none = Method::SampledShapley { paths: 0 };
        assert!(
            plan(&json!({"a": 1}), none, 0)
                .unwrap_err()
                .contains("numPaths")
        );
        assert!(plan(&json!({"key": 1}), shapley, 0).is_err());
        let gradients = Method::IntegratedGradients { steps: 10 };
        let error = plan(&json!({"city": "Oslo"}), gradients, 0).unwrap_err();
        assert!(error.contains("numeric inputs"), "{error}");
    }
}
