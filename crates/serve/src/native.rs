//! The runtime for Kiln's own exports.

use std::path::Path;

use burn::tensor::Device;
use kiln_model::{Model, Prediction};
use serde_json::{Value, json};

use crate::instances::decode;
use crate::{ModelRuntime, ServeError};

/// A Kiln model loaded on burn's CPU backend.
#[derive(Debug)]
pub struct NativeRuntime {
    model: Model,
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
        let _ = kiln_model::predict(&model, &[encoded]);
        Ok(Self { model })
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
        Ok(kiln_model::predict(&self.model, &encoded)
            .iter()
            .map(to_json)
            .collect())
    }
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
