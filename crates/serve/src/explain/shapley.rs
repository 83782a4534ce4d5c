//! Sampled Shapley: any model.
//!
//! An instance's features are its named inputs; the baseline is the instance with every one of
//! them `null` (missing, which a Kiln model encodes as it encodes a missing value in training).
//! Each of `paths` random orderings of the features adds them to the baseline one at a time; a
//! feature's attribution on a path is the change of the score when it is added, and its
//! attribution is the mean over paths. On every path the attributions add up to the score of the
//! instance minus the score of the baseline, so their sum does too, exactly. For an additive
//! model (a linear model without crosses) every ordering gives the same, exact Shapley values.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};

/// The orderings sampled for one instance.
#[derive(Debug, Clone)]
pub struct Paths {
    features: Vec<String>,
    /// For each path, the order features were added in (indexes into `features`).
    orders: Vec<Vec<usize>>,
}

/// Plans `paths` orderings of the features of `fields`, drawn from `seed`; returns them and the
/// instances they need: per path the baseline plus one more feature at a time (the path's first
/// instance is the baseline itself).
pub fn plan(fields: &Map<String, Value>, paths: usize, seed: u64) -> (Paths, Vec<Value>) {
    let features: Vec<String> = fields.keys().cloned().collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut instances = Vec::with_capacity(paths * (features.len() + 1));
    let mut orders = Vec::with_capacity(paths);
    for _ in 0..paths {
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
    (Paths { features, orders }, instances)
}

impl Paths {
    /// Attributions from the scores of the planned instances, and the largest standard error
    /// of a feature's mean over the paths.
    pub fn attribute(&self, scores: &[f64]) -> (Map<String, Value>, f64) {
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
        (attributions, approx_error)
    }
}
