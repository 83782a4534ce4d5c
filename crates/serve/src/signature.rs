//! What a model takes and returns as named tensors: the metadata that inference protocols (the
//! Open Inference Protocol's model metadata) describe a model by.

/// A model's named inputs and outputs, each with the batch as its first dimension.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signature {
    /// What each instance gives the model.
    pub inputs: Vec<TensorSpec>,
    /// What the model answers per instance (empty where the runtime cannot tell before it runs).
    pub outputs: Vec<TensorSpec>,
}

/// One named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Its name: the instance key that feeds it, or the prediction key it fills.
    pub name: String,
    /// Its element type, in NumPy's words: `float32`, `float64`, `int32`, `int64`, `uint8`,
    /// `bool`, `string` (text or bytes).
    pub dtype: &'static str,
    /// Its dimensions, `-1` where any size goes (the batch first).
    pub shape: Vec<i64>,
}

/// The element type of a NumPy or TensorFlow dtype name (`float32`, `string`, `int64`, ...).
pub fn dtype(name: &str) -> Option<&'static str> {
    Some(match name {
        "float32" | "float" => "float32",
        "float64" | "double" => "float64",
        "int32" => "int32",
        "int64" => "int64",
        "uint8" => "uint8",
        "bool" => "bool",
        "string" | "object" | "bytes" => "string",
        _ => return None,
    })
}

/// The outputs one prediction shows: each key of an object prediction (or the bare value, named
/// `single`), typed by its value (numbers `float32`, whole numbers under a `_ids` key `int64`,
/// text `string`) and shaped by it (a list of `n` values: `[-1, n]`; one value: `[-1]`).
pub fn outputs_of(prediction: &serde_json::Value, single: &str) -> Vec<TensorSpec> {
    use serde_json::Value;
    let spec = |name: &str, value: &Value| {
        let (first, shape) = match value {
            Value::Array(items) => (items.first(), vec![-1, items.len() as i64]),
            other => (Some(other), vec![-1]),
        };
        let dtype = match first {
            Some(Value::String(_)) => "string",
            Some(Value::Bool(_)) => "bool",
            Some(Value::Number(number)) if number.is_i64() && name.ends_with("_ids") => "int64",
            _ => "float32",
        };
        TensorSpec {
            name: name.to_string(),
            dtype,
            shape,
        }
    };
    match prediction {
        Value::Object(fields) => fields
            .iter()
            .map(|(name, value)| spec(name, value))
            .collect(),
        other => vec![spec(single, other)],
    }
}

/// An instance shaped as `signature`'s inputs take it, every element zero (or empty text): one
/// input's value bare, several as an object keyed by input name. `None` when the inputs are
/// unknown.
pub fn example_instance(signature: &Signature) -> Option<serde_json::Value> {
    use serde_json::{Map, Value};
    fn filled(dtype: &str, dimensions: &[i64]) -> Value {
        match dimensions.split_first() {
            None => match dtype {
                "string" => Value::String(String::new()),
                "bool" => Value::Bool(false),
                _ => Value::from(0),
            },
            Some((size, rest)) => {
                let size = usize::try_from(*size).unwrap_or(1).clamp(1, 4096);
                Value::Array(vec![filled(dtype, rest); size])
            }
        }
    }
    let value = |spec: &TensorSpec| filled(spec.dtype, spec.shape.get(1..).unwrap_or_default());
    match signature.inputs.as_slice() {
        [] => None,
        [one] => Some(value(one)),
        several => Some(Value::Object(
            several
                .iter()
                .map(|spec| (spec.name.clone(), value(spec)))
                .collect::<Map<_, _>>(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_example_instance_follows_the_inputs() {
        let spec = |name: &str, dtype, shape: &[i64]| TensorSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
        };
        let one = Signature {
            inputs: vec![spec("x", "float32", &[-1, 2, 3])],
            outputs: vec![],
        };
        assert_eq!(
            example_instance(&one),
            Some(serde_json::json!([[0, 0, 0], [0, 0, 0]]))
        );
        let several = Signature {
            inputs: vec![
                spec("age", "float32", &[-1]),
                spec("city", "string", &[-1, -1]),
            ],
            outputs: vec![],
        };
        assert_eq!(
            example_instance(&several),
            Some(serde_json::json!({"age": 0, "city": [""]}))
        );
        assert_eq!(example_instance(&Signature::default()), None);
    }

    #[test]
    fn a_prediction_shows_its_outputs() {
        let prediction = serde_json::json!({"classes": "yes", "class_ids": [1],
            "probabilities": [0.25, 0.75]});
        let outputs = outputs_of(&prediction, "predictions");
        let described: Vec<(&str, &str, Vec<i64>)> = outputs
            .iter()
            .map(|spec| (spec.name.as_str(), spec.dtype, spec.shape.clone()))
            .collect();
        assert_eq!(
            described,
            [
                ("class_ids", "int64", vec![-1, 1]),
                ("classes", "string", vec![-1]),
                ("probabilities", "float32", vec![-1, 2]),
            ]
        );
        let bare = outputs_of(&serde_json::json!(0.5), "predictions");
        assert_eq!(
            (bare[0].name.as_str(), bare[0].shape.clone()),
            ("predictions", vec![-1])
        );
    }
}
