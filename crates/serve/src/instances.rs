//! Decoding JSON instances into raw model inputs.
//!
//! Accepted, as ML Engine accepts them:
//! - an object of named inputs: `{"age": 25, "workclass": " Private", ...}`; fields the model
//!   ignores (training columns it does not use, the label) are allowed, unknown fields are not;
//! - a bare value, for a model with a single input;
//! - a CSV line (a string) with the training data's columns, with or without the label, as
//!   `predict --text-instances` sends them;
//! - `{"b64": "..."}` in place of a value for inputs whose name ends in `_bytes`.

use kiln_model::ModelSpec;
use kiln_model::columns::{Input, InputType, RawValue};
use kiln_model::sequential::input::b64_bytes;
use serde_json::Value;

/// Decodes one instance into values in the model's input order, or says what is wrong.
pub fn decode(spec: &ModelSpec, instance: &Value) -> Result<Vec<RawValue>, String> {
    let inputs = &spec.columns.inputs;
    match instance {
        Value::Object(fields) => {
            for name in fields.keys() {
                let known = inputs.iter().any(|input| &input.name == name)
                    || spec.ignored_inputs.contains(name)
                    || &spec.label == name;
                if !known {
                    return Err(format!(
                        "unknown input {name:?}; the model takes {}",
                        inputs
                            .iter()
                            .map(|input| input.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            inputs
                .iter()
                .map(|input| match fields.get(&input.name) {
                    Some(value) => value_of(input, value),
                    None => Err(format!("missing input {:?}", input.name)),
                })
                .collect()
        }
        Value::String(line)
            if inputs.len() > 1 || !spec.data_columns.is_empty() && line.contains(',') =>
        {
            decode_csv(spec, line)
        }
        bare if inputs.len() == 1 => Ok(vec![value_of(&inputs[0], bare)?]),
        _ => Err(format!(
            "expected an object with the inputs {}",
            inputs
                .iter()
                .map(|input| input.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn decode_csv(spec: &ModelSpec, line: &str) -> Result<Vec<RawValue>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_reader(line.as_bytes());
    let record = match reader.records().next() {
        Some(Ok(record)) => record,
        Some(Err(error)) => return Err(format!("bad CSV line: {error}")),
        None => return Err("empty CSV line".into()),
    };
    let cells: Vec<&str> = record.iter().collect();
    let columns: Vec<&String> = match cells.len() {
        n if n == spec.data_columns.len() => spec.data_columns.iter().collect(),
        n if n + 1 == spec.data_columns.len() => spec
            .data_columns
            .iter()
            .filter(|name| **name != spec.label)
            .collect(),
        n => {
            return Err(format!(
                "a CSV instance needs {} values ({}), got {n}",
                spec.data_columns.len().saturating_sub(1),
                spec.data_columns
                    .iter()
                    .filter(|name| **name != spec.label)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    spec.columns
        .inputs
        .iter()
        .map(|input| {
            let position = columns
                .iter()
                .position(|name| **name == input.name)
                .ok_or_else(|| {
                    format!(
                        "the model's training columns do not include {:?}",
                        input.name
                    )
                })?;
            Ok(RawValue::from_cell(cells[position], input.input_type))
        })
        .collect()
}

fn value_of(input: &Input, value: &Value) -> Result<RawValue, String> {
    let name = &input.name;
    match (value, input.input_type) {
        (Value::Null, _) => Ok(RawValue::Missing),
        (Value::Number(number), InputType::Float) => number
            .as_f64()
            .map(RawValue::Number)
            .ok_or_else(|| format!("input {name:?} is out of range")),
        (Value::String(text), InputType::Float) => match text.trim().parse::<f64>() {
            Ok(number) => Ok(RawValue::Number(number)),
            Err(_) => Err(format!("input {name:?} must be a number, got {text:?}")),
        },
        (Value::String(text), InputType::String) => Ok(RawValue::Text(text.clone())),
        (Value::Number(number), InputType::String) => Ok(RawValue::Text(number.to_string())),
        (Value::Bool(flag), InputType::String) => Ok(RawValue::Text(flag.to_string())),
        (Value::Object(object), _) if object.len() == 1 && object.contains_key("b64") => {
            if !name.ends_with("_bytes") {
                return Err(format!(
                    "input {name:?} does not take {{\"b64\": ...}}; only inputs named *_bytes do"
                ));
            }
            let bytes = b64_bytes(&object["b64"])
                .map_err(|message| format!("input {name:?}: {message}"))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("input {name:?}: b64 value is not UTF-8"))?;
            value_of(input, &Value::String(text))
        }
        (Value::Array(values), _) if values.len() == 1 => value_of(input, &values[0]),
        (other, expected) => Err(format!(
            "input {name:?} must be a {}, got {}",
            match expected {
                InputType::Float => "number",
                InputType::String => "string",
            },
            kind(other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use kiln_model::columns::Columns;
    use kiln_model::{ModelKind, Task};
    use serde_json::json;

    use super::*;

    fn spec(inputs: &[(&str, InputType)]) -> ModelSpec {
        ModelSpec {
            format: kiln_model::spec::FORMAT.into(),
            algorithm: "dnn".into(),
            kind: ModelKind::Dnn,
            task: Task::Regression,
            label: "y".into(),
            label_vocabulary: Vec::new(),
            columns: Columns {
                inputs: inputs
                    .iter()
                    .map(|(name, input_type)| Input {
                        name: name.to_string(),
                        input_type: *input_type,
                    })
                    .collect(),
                ..Columns::default()
            },
            hidden_units: Vec::new(),
            outputs: Vec::new(),
            data_columns: vec!["y".into(), "size".into(), "word_bytes".into()],
            ignored_inputs: vec!["id".into()],
            metrics: Default::default(),
        }
    }

    #[test]
    fn objects_b64_csv_and_bare_values() {
        let two = spec(&[
            ("size", InputType::Float),
            ("word_bytes", InputType::String),
        ]);
        let decoded = decode(
            &two,
            &json!({"size": "2.5", "word_bytes": {"b64": "aGVsbG8="}, "id": 7, "y": 1}),
        )
        .unwrap();
        assert_eq!(
            decoded,
            vec![RawValue::Number(2.5), RawValue::Text("hello".into())]
        );
        assert_eq!(
            decode(&two, &json!("3, hi")).unwrap(),
            vec![RawValue::Number(3.0), RawValue::Text("hi".into())]
        );
        assert_eq!(
            decode(&two, &json!("1, 3, hi")).unwrap()[0],
            RawValue::Number(3.0),
            "the label column is skipped"
        );
        let one = spec(&[("size", InputType::Float)]);
        assert_eq!(
            decode(&one, &json!(4)).unwrap(),
            vec![RawValue::Number(4.0)]
        );
        assert_eq!(
            decode(&one, &json!([4])).unwrap(),
            vec![RawValue::Number(4.0)]
        );
    }

    #[test]
    fn bad_instances_say_what_is_wrong() {
        let two = spec(&[
            ("size", InputType::Float),
            ("word_bytes", InputType::String),
        ]);
        for (instance, expected) in [
            (json!({"size": 1}), "missing input \"word_bytes\""),
            (
                json!({"size": true, "word_bytes": "x"}),
                "must be a number, got a boolean",
            ),
            (
                json!({"size": {"b64": "AA=="}, "word_bytes": "x"}),
                "only inputs named *_bytes",
            ),
            (
                json!({"size": 1, "word_bytes": {"b64": "%%%"}}),
                "invalid base64",
            ),
            (
                json!({"size": 1, "word_bytes": "x", "colour": "red"}),
                "unknown input \"colour\"",
            ),
            (json!(5), "expected an object"),
        ] {
            let error = decode(&two, &instance).unwrap_err();
            assert!(error.contains(expected), "{instance}: {error}");
        }
    }
}
