//! Integrated gradients: models differentiable in their numeric inputs.
//!
//! The features are the numbers of the instance's named inputs (a scalar input, or each element
//! of a list input); every other value (a category, a string) is held at the instance's value.
//! The baseline sets the numbers to 0, as Vertex AI's default baseline does. A feature's
//! attribution is its distance from the baseline times the mean, over `steps` points spaced along
//! the straight path from the baseline to the instance (midpoints of equal segments), of the
//! score's partial derivative there. The derivatives are central differences, so any runtime can
//! be explained: the model only has to predict. Attributions add up to the instance's score
//! minus the baseline's up to the integration error, which `approx_error` reports (relative).

use serde_json::{Map, Value, json};

/// Relative width of the central differences (at least this much in absolute terms).
const STEP: f64 = 1e-3;

/// One number of the instance: which input, where in it, and its value.
#[derive(Debug, Clone)]
struct Leaf {
    input: String,
    /// Indexes into nested lists, outermost first; empty for a scalar input.
    at: Vec<usize>,
    value: f64,
}

/// The path integrated for one instance.
#[derive(Debug, Clone)]
pub struct Path {
    fields: Map<String, Value>,
    leaves: Vec<Leaf>,
    steps: usize,
}

/// Plans the integration over `steps` points for the instance `fields`; returns it and the
/// instances it needs: the baseline, then for each point and each feature the point moved a
/// little up and a little down along that feature.
pub fn plan(fields: &Map<String, Value>, steps: usize) -> Result<(Path, Vec<Value>), String> {
    let mut leaves = Vec::new();
    for (input, value) in fields {
        collect(input, value, &mut Vec::new(), &mut leaves);
    }
    if leaves.is_empty() {
        return Err("integrated gradients needs numeric inputs; this instance has none".into());
    }
    let path = Path {
        fields: fields.clone(),
        leaves,
        steps,
    };
    let mut instances = Vec::with_capacity(1 + 2 * steps * path.leaves.len());
    instances.push(path.at(|_| 0.0));
    for step in 0..steps {
        let alpha = (step as f64 + 0.5) / steps as f64;
        for moved in 0..path.leaves.len() {
            let width = path.width(moved);
            for sign in [1.0, -1.0] {
                instances.push(path.at(|index| {
                    let along = alpha * path.leaves[index].value;
                    match index == moved {
                        true => along + sign * width,
                        false => along,
                    }
                }));
            }
        }
    }
    Ok((path, instances))
}

fn collect(input: &str, value: &Value, at: &mut Vec<usize>, leaves: &mut Vec<Leaf>) {
    match value {
        Value::Number(number) => leaves.push(Leaf {
            input: input.to_string(),
            at: at.clone(),
            value: number.as_f64().unwrap_or(0.0),
        }),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                at.push(index);
                collect(input, item, at, leaves);
                at.pop();
            }
        }
        _ => {}
    }
}

impl Path {
    /// Half the width of feature `index`'s central difference.
    fn width(&self, index: usize) -> f64 {
        STEP * self.leaves[index].value.abs().max(1.0)
    }

    /// The instance with each feature set by `value(feature index)`.
    fn at(&self, value: impl Fn(usize) -> f64) -> Value {
        let mut fields = self.fields.clone();
        for (index, leaf) in self.leaves.iter().enumerate() {
            if let Some(slot) = slot(&mut fields, leaf) {
                *slot = json!(value(index));
            }
        }
        Value::Object(fields)
    }

    /// Attributions shaped like the inputs (0 for what is not a feature) from `example`, the
    /// instance's score, and the scores of the planned instances; and the relative gap between
    /// their sum and `example - baseline`.
    pub fn attribute(&self, example: f64, scores: &[f64]) -> (Map<String, Value>, f64) {
        let baseline = scores[0];
        let features = self.leaves.len();
        let mut slopes = vec![0.0; features];
        for step in 0..self.steps {
            for (feature, slope) in slopes.iter_mut().enumerate() {
                let at = 1 + 2 * (step * features + feature);
                *slope += (scores[at] - scores[at + 1]) / (2.0 * self.width(feature));
            }
        }
        let mut attributions: Map<String, Value> = self
            .fields
            .iter()
            .map(|(input, value)| (input.clone(), zeroed(value)))
            .collect();
        let mut total = 0.0;
        for (leaf, slope) in self.leaves.iter().zip(slopes) {
            let attribution = leaf.value * slope / self.steps as f64;
            total += attribution;
            if let Some(slot) = slot(&mut attributions, leaf) {
                *slot = json!(attribution);
            }
        }
        let (change, gap) = (example - baseline, (total - (example - baseline)).abs());
        match change.abs() > 1e-9 {
            true => (attributions, gap / change.abs()),
            false => (attributions, gap),
        }
    }
}

/// Where `leaf` is in `fields`.
fn slot<'a>(fields: &'a mut Map<String, Value>, leaf: &Leaf) -> Option<&'a mut Value> {
    let mut value = fields.get_mut(&leaf.input)?;
    for &index in &leaf.at {
        value = value.get_mut(index)?;
    }
    Some(value)
}

/// `value` with every scalar replaced by 0, lists kept.
fn zeroed(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(zeroed).collect()),
        _ => json!(0.0),
    }
}
