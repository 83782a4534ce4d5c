//! The runtimes for Kiln's own exports: feature-column models and Sequential models, told apart
//! by the format tag of `kiln_model.json`.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use kiln_model::columns::InputType;
use kiln_model::sequential::input::InputSpec;
use kiln_model::sequential::{SEQUENTIAL_FORMAT, SequentialModel};
use kiln_model::{Model, Prediction};
use serde_json::{Value, json};

use crate::instances::decode;
use crate::signature::{Signature, TensorSpec};
use crate::{ModelRuntime, ServeError};

/// Loads the Kiln export in `dir` with the runtime its format needs.
pub fn load(dir: &Path) -> Result<Arc<dyn ModelRuntime>, ServeError> {
    let format = kiln_model::format_of(dir).map_err(|error| ServeError::Load(error.to_string()))?;
    match format == SEQUENTIAL_FORMAT {
        true => Ok(Arc::new(SequentialRuntime::load(dir)?)),
        false => Ok(Arc::new(NativeRuntime::load(dir)?)),
    }
}

/// A Kiln model loaded on burn's CPU backend.
#[derive(Debug)]
pub struct NativeRuntime {
    model: Model,
    /// Its named inputs, and the outputs its load probe answered.
    signature: Signature,
}

impl NativeRuntime {
    /// Loads the export in `dir` and runs one prediction on default inputs, so a model that
    /// loads but cannot run is refused at load time rather than at the first request.
    pub fn load(dir: &Path) -> Result<Self, ServeError> {
        let model = kiln_model::load(dir, &Device::flex())
            .map_err(|error| ServeError::Load(error.to_string()))?;
        let probe = vec![kiln_model::RawValue::Missing; model.spec.columns.inputs.len()];
        let encoded = model
            .encoder
            .encode(&probe)
            .map_err(|error| ServeError::Load(error.to_string()))?;
        let probe = kiln_model::predict(&model, &[encoded]);
        finite_on_probe(&probe)?;
        let inputs = model
            .spec
            .columns
            .inputs
            .iter()
            .map(|input| TensorSpec {
                name: input.name.clone(),
                dtype: match input.input_type {
                    InputType::Float => "float32",
                    InputType::String => "string",
                },
                shape: vec![-1],
            })
            .collect();
        let signature = Signature {
            inputs,
            outputs: probe_outputs(&probe),
        };
        Ok(Self { model, signature })
    }
}

impl ModelRuntime for NativeRuntime {
    fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError> {
        let mut encoded = Vec::with_capacity(instances.len());
        for (index, instance) in instances.iter().enumerate() {
            let values = decode(&self.model.spec, instance)
                .map_err(|message| ServeError::Instance { index, message })?;
            let example =
                self.model
                    .encoder
                    .encode(&values)
                    .map_err(|error| ServeError::Instance {
                        index,
                        message: error.to_string(),
                    })?;
            encoded.push(example);
        }
        to_json_checked(&kiln_model::predict(&self.model, &encoded))
    }

    fn signature(&self) -> Signature {
        self.signature.clone()
    }

    /// Each input at a typical value: a numeric column's training mean, a categorical column's
    /// first vocabulary word (one that starts with a letter or digit, where there is one).
    fn example_instance(&self) -> Option<Value> {
        let columns = &self.model.spec.columns;
        let value = |input: &kiln_model::columns::Input| {
            let numeric = columns.numeric.iter().find(|c| c.name == input.name);
            let categorical = columns.categorical.iter().find(|c| c.name == input.name);
            match (input.input_type, numeric, categorical) {
                (InputType::Float, Some(column), _) => json!(round(column.mean)),
                (InputType::Float, None, _) => json!(0),
                (InputType::String, _, Some(column)) => {
                    let words = column.vocabulary.as_deref().unwrap_or_default();
                    let word = words
                        .iter()
                        .find(|word| word.starts_with(char::is_alphanumeric))
                        .or(words.first());
                    json!(word.cloned().unwrap_or_default())
                }
                (InputType::String, _, None) => json!(""),
            }
        };
        Some(Value::Object(
            columns
                .inputs
                .iter()
                .map(|input| (input.name.clone(), value(input)))
                .collect(),
        ))
    }
}

/// `value` to four significant digits, as a person would type it.
fn round(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return 0.0;
    }
    let scale = 10f64.powi(3 - value.abs().log10().floor() as i32);
    (value * scale).round() / scale
}

/// A Sequential model: instances are raw pixels, raw text or numbers, preprocessed as in
/// training by the spec's input.
#[derive(Debug)]
pub struct SequentialRuntime {
    model: SequentialModel,
    /// Its one input, and the outputs its load probe answered.
    signature: Signature,
}

impl SequentialRuntime {
    /// Loads the export in `dir` and runs it once on zeros, so a model that loads but cannot run
    /// is refused at load time.
    pub fn load(dir: &Path) -> Result<Self, ServeError> {
        let model = SequentialModel::load(dir, &Device::flex())
            .map_err(|error| ServeError::Load(error.to_string()))?;
        let probe = model.predict(vec![0.0; model.spec.input.width()], 1);
        finite_on_probe(&probe)?;
        let (dtype, shape) = match model.spec.input {
            InputSpec::Image {
                height,
                width,
                channels,
                ..
            } => (
                "float32",
                vec![-1, height as i64, width as i64, channels as i64],
            ),
            InputSpec::Text { .. } => ("string", vec![-1]),
            InputSpec::Numbers { width } => ("float32", vec![-1, width as i64]),
        };
        let signature = Signature {
            inputs: vec![TensorSpec {
                name: "instances".into(),
                dtype,
                shape,
            }],
            outputs: probe_outputs(&probe),
        };
        Ok(Self { model, signature })
    }
}

impl ModelRuntime for SequentialRuntime {
    fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError> {
        let input = &self.model.spec.input;
        let mut values = Vec::with_capacity(instances.len() * input.width());
        for (index, instance) in instances.iter().enumerate() {
            input
                .encode_json(instance, &mut values)
                .map_err(|message| ServeError::Instance { index, message })?;
        }
        to_json_checked(&self.model.predict(values, instances.len()))
    }

    fn signature(&self) -> Signature {
        self.signature.clone()
    }
}

/// The outputs the load probe's prediction shows.
fn probe_outputs(probe: &[Prediction]) -> Vec<TensorSpec> {
    probe
        .first()
        .map(|prediction| crate::signature::outputs_of(&to_json(prediction), "predictions"))
        .unwrap_or_default()
}

/// Refuses a model whose prediction on default inputs is not finite (NaN or infinite weights).
fn finite_on_probe(predictions: &[Prediction]) -> Result<(), ServeError> {
    match predictions.iter().all(Prediction::is_finite) {
        true => Ok(()),
        false => Err(ServeError::Load(
            "the model predicts NaN or infinity on default inputs: its weights are not finite numbers".into(),
        )),
    }
}

/// The outputs of each prediction, refusing by index an instance whose prediction is not finite.
fn to_json_checked(predictions: &[Prediction]) -> Result<Vec<Value>, ServeError> {
    predictions
        .iter()
        .enumerate()
        .map(|(index, prediction)| match prediction.is_finite() {
            true => Ok(to_json(prediction)),
            false => Err(ServeError::Instance {
                index,
                message:
                    "the model's output is not a finite number (NaN or infinity): an input is \
                          too large for float32 or the model's weights are not finite"
                        .into(),
            }),
        })
        .collect()
}

/// The outputs of TensorFlow's canned estimators, as ML Engine returns them.
pub fn to_json(prediction: &Prediction) -> Value {
    match prediction {
        Prediction::Binary {
            logit,
            probability,
            class_id,
            class,
        } => json!({
            "classes": class,
            "class_ids": [class_id],
            "logits": [logit],
            "logistic": [probability],
            "probabilities": [1.0 - probability, probability],
        }),
        Prediction::MultiClass {
            logits,
            probabilities,
            class_id,
            class,
        } => json!({
            "classes": class,
            "class_ids": [class_id],
            "logits": logits,
            "probabilities": probabilities,
        }),
        Prediction::Regression { value } => json!({ "predictions": [value] }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_prediction_is_refused_by_its_instance_and_fails_a_load_probe() {
        let finite = Prediction::Regression { value: 1.5 };
        let binary_nan = Prediction::Binary {
            logit: f32::NAN,
            probability: f32::NAN,
            class_id: 0,
            class: "a".into(),
        };
        let multi_inf = Prediction::MultiClass {
            logits: vec![0.0, f32::INFINITY],
            probabilities: vec![0.5, 0.5],
            class_id: 1,
            class: "b".into(),
        };
        assert_eq!(
            to_json_checked(std::slice::from_ref(&finite))
                .unwrap()
                .len(),
            1
        );
        for bad in [binary_nan, multi_inf] {
            match to_json_checked(&[finite.clone(), bad.clone()]) {
                Err(ServeError::Instance { index: 1, message }) => {
                    assert!(message.contains("not a finite number"), "{message}")
                }
                other => panic!("{other:?}"),
            }
            assert!(matches!(finite_on_probe(&[bad]), Err(ServeError::Load(_))));
        }
        assert!(finite_on_probe(&[finite]).is_ok());
    }
}
