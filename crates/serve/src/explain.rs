//! Sampled Shapley attributions for tabular models, model-agnostic: it needs only predictions.
//!
//! An instance's features are its named inputs; the baseline is the instance with every one of
//! them `null` (missing, which the model encodes as it encodes a missing value in training). Each
//! of `num_paths` random orderings of the features adds them to the baseline one at a time; a
//! feature's attribution on a path is the change of the score when it is added, and its
//! attribution is the mean over paths. On every path the attributions add up to the score of the
//! instance minus the score of the baseline, so their sum does too, exactly. For an additive model
//! (a linear model without crosses) every ordering gives the same, exact Shapley values.
//!
//! The work is split so a caller can run the model its own way (through the batcher): [`plan`]
//! builds every instance the paths need, and [`ShapleyPlan::attribute`] reads the predictions.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};

/// Most paths one explanation may sample.
pub const MAX_PATHS: usize = 100;

/// The instances one explanation needs, and how to read their predictions back.
#[derive(Debug, Clone)]
pub struct ShapleyPlan {
    features: Vec<String>,
    /// For each path, the order features were added in (indexes into `features`).
    orders: Vec<Vec<usize>>,
    /// All instances to predict: the instance, then per path the baseline plus one more feature
    /// at a time (the path's first instance is the baseline itself).
    pub instances: Vec<Value>,
}

/// Plans the sampled Shapley attribution of `instance` (an object of named inputs) over
/// `num_paths` orderings drawn from `seed`.
pub fn plan(instance: &Value, num_paths: usize, seed: u64) -> Result<ShapleyPlan, String> {
    let Value::Object(fields) = instance else {
        return Err("explain needs instances that are objects of named inputs".into());
    };
    if !(1..=MAX_PATHS).contains(&num_paths) {
        return Err(format!(
            "sampledShapleyAttribution.numPaths must be between 1 and {MAX_PATHS}, got {num_paths}"
        ));
    }
    let features: Vec<String> = fields
        .keys()
        .filter(|name| *name != "key")
        .cloned()
        .collect();
    if features.is_empty() {
        return Err("the instance has no inputs to attribute".into());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut instances = vec![Value::Object(without_key(fields))];
    let mut orders = Vec::with_capacity(num_paths);
    for _ in 0..num_paths {
        let mut order: Vec<usize> = (0..features.len()).collect();
        order.shuffle(&mut rng);
        let mut partial: Map<String, Value> = features
            .iter()
            .map(|name| (name.clone(), Value::Null))
            .collect();
        instances.push(Value::Object(partial.clone()));
        for &index in &order {
            let name = &features[index];
            partial.insert(name.clone(), fields[name].clone());
            instances.push(Value::Object(partial.clone()));
        }
        orders.push(order);
    }
    Ok(ShapleyPlan {
        features,
        orders,
        instances,
    })
}

fn without_key(fields: &Map<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .filter(|(name, _)| *name != "key")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

impl ShapleyPlan {
    /// The explanation of the instance from the predictions of [`ShapleyPlan::instances`], in
    /// the shape ML Engine's `explain` answers with (`attributions_by_label`).
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
        let width = self.features.len() + 1;
        let mut sums = vec![0.0; self.features.len()];
        let mut squares = vec![0.0; self.features.len()];
        for (path, order) in self.orders.iter().enumerate() {
            let steps = &scores[path * width..(path + 1) * width];
            for (position, &feature) in order.iter().enumerate() {
                let delta = steps[position + 1] - steps[position];
                sums[feature] += delta;
                squares[feature] += delta * delta;
            }
        }
        let paths = self.orders.len() as f64;
        let mut attributions = Map::new();
        let mut approx_error = 0.0f64;
        for (index, name) in self.features.iter().enumerate() {
            let mean = sums[index] / paths;
            let variance = (squares[index] / paths - mean * mean).max(0.0);
            approx_error = approx_error.max((variance / paths).sqrt());
            attributions.insert(name.clone(), json!(mean));
        }
        let mut by_label = json!({
            "example_score": example_score,
            "baseline_score": scores[0],
            "attributions": attributions,
            "approx_error": approx_error,
            "output_name": output_name(&predictions[0]),
        });
        if let Some(label) = label {
            by_label["label_index"] = json!(label);
            if let Some(name) = predictions[0]["classes"]
                .as_array()
                .and_then(|classes| classes.get(label))
                .or_else(|| predictions[0].get("classes").filter(|c| c.is_string()))
            {
                by_label["label_name"] = name.clone();
            }
        }
        Ok(json!({ "attributions_by_label": [by_label] }))
    }
}

/// The output attributed: the positive class's probability of a binary classifier, the
/// predicted class's probability of a multi-class one, or the regression value.
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
    if let Some(probabilities) = prediction.get("probabilities").and_then(Value::as_array) {
        let values: Vec<f64> = probabilities.iter().filter_map(Value::as_f64).collect();
        let label = label.unwrap_or_else(|| {
            (0..values.len())
                .max_by(|&a, &b| values[a].total_cmp(&values[b]))
                .unwrap_or(0)
        });
        return values
            .get(label)
            .map(|value| (*value, Some(label)))
            .ok_or_else(|| format!("no probability for label {label}"));
    }
    if let Some(value) = prediction
        .get("predictions")
        .and_then(first)
        .or_else(|| prediction.as_f64())
    {
        return Ok((value, None));
    }
    Err(format!(
        "cannot find a score to attribute in the prediction {prediction}"
    ))
}

fn output_name(prediction: &Value) -> &'static str {
    if prediction.get("logistic").is_some() {
        "logistic"
    } else if prediction.get("probabilities").is_some() {
        "probabilities"
    } else {
        "predictions"
    }
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
        let plan = plan(&instance, 50, 1).unwrap();
        assert_eq!(plan.instances.len(), 1 + 50 * 4);
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
    fn refuses_what_it_cannot_explain() {
        assert!(plan(&json!([1, 2]), 10, 0).is_err());
        assert!(
            plan(&json!({"a": 1}), 0, 0)
                .unwrap_err()
                .contains("numPaths")
        );
        assert!(plan(&json!({"key": 1}), 10, 0).is_err());
    }
}
