//! Sequential models: a stack of Keras-style layers over images, text or plain vectors, trained
//! by the `sequential` built-in algorithm.
//!
//! The export is the same two files as every Kiln model (`kiln_model.json`, tagged
//! [`SEQUENTIAL_FORMAT`], and `weights.safetensors` with `layers/<i>/weight|bias`); the spec
//! carries the input's preprocessing (pixel scale, the fitted tokenizer), so a served model takes
//! raw pixels or raw text.

mod cpu;
pub mod input;
pub mod layers;
mod patch_conv;

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::export::{Weights, WeightsWriter, read_spec, write_export};
use crate::predict::{Prediction, from_logits};
use crate::spec::Task;

pub use input::{InputSpec, MatrixMode, Norm, Tokenizer};
pub use layers::{Activation, Activations, LayerSpec, Network, Shape, forward, plan};

/// The format tag of a Sequential model's `kiln_model.json`.
pub const SEQUENTIAL_FORMAT: &str = "kiln.sequential/v1";

/// Everything about a Sequential model except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialSpec {
    /// Always [`SEQUENTIAL_FORMAT`].
    pub format: String,
    /// The built-in algorithm that trained it.
    pub algorithm: String,
    /// The input and its preprocessing.
    pub input: InputSpec,
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
    /// What it predicts, from the last layer.
    pub task: Task,
    /// Class names, index = class id (classification only).
    #[serde(default)]
    pub label_vocabulary: Vec<String>,
    /// Evaluation metrics measured when the model was exported.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

/// The longest run of words a tokenizer may count as one term.
const MAX_NGRAMS: usize = 5;

impl SequentialSpec {
    /// Checks the layers against the input and the labels, and gives the task the last layer
    /// implies: one sigmoid unit is a binary classifier, one linear unit a regressor, several
    /// units (softmax or linear) a multi-class classifier with one unit per class.
    pub fn check(
        input: &InputSpec,
        layers: &[LayerSpec],
        classes: Option<usize>,
    ) -> Result<(Task, Vec<Shape>), String> {
        if layers.is_empty() {
            return Err("layers: a model needs at least one layer".into());
        }
        if let InputSpec::Text { tokenizer, .. } = input
            && !(1..=MAX_NGRAMS).contains(&tokenizer.ngrams)
        {
            return Err(format!(
                "input.tokenizer.ngrams: a term is 1 to {MAX_NGRAMS} words, not {}",
                tokenizer.ngrams
            ));
        }
        let shapes = plan(input.shape(), layers, input.vocabulary())?;
        let last = layers.len() - 1;
        let units = match shapes[last] {
            Shape::Flat(units) => units,
            other => {
                return Err(format!(
                    "layers[{last}]: the last layer must give a vector (add Flatten and Dense), \
                     it gives {other}"
                ));
            }
        };
        let activation = layers[last].activation();
        let task = match (units, activation) {
            (1, Activation::Sigmoid) => Task::BinaryClassification,
            (1, Activation::Linear) => Task::Regression,
            (_, Activation::Softmax | Activation::Linear) if units > 1 => Task::MultiClassification,
            _ => {
                return Err(format!(
                    "layers[{last}]: the last layer must be one sigmoid unit (binary), one linear \
                     unit (regression) or one softmax unit per class; it has {units} {} units",
                    serde_json::to_string(&activation).unwrap_or_default()
                ));
            }
        };
        match (task, classes) {
            (Task::MultiClassification, Some(classes)) if classes != units => Err(format!(
                "layers[{last}]: the labels have {classes} classes; the last layer has {units} units"
            )),
            (Task::BinaryClassification, Some(classes)) if classes > 2 => Err(format!(
                "layers[{last}]: the labels have {classes} classes; one sigmoid unit takes two"
            )),
            _ => Ok((task, shapes)),
        }
    }
}

/// A trained Sequential model, ready to predict.
#[derive(Debug, Clone)]
pub struct SequentialModel {
    /// The description saved as `kiln_model.json`.
    pub spec: SequentialSpec,
    /// The layers' parameters.
    pub network: Network,
    /// Where the parameters live.
    pub device: Device,
}

impl SequentialModel {
    /// The input tensor of a batch of `rows` encoded examples stored back to back in `values`.
    pub fn batch(input: &InputSpec, values: Vec<f32>, rows: usize, device: &Device) -> Activations {
        match input.shape() {
            Shape::Flat(width) => Activations::Flat(Tensor::from_data(
                TensorData::new(values, [rows, width]),
                device,
            )),
            Shape::Ids(length) => {
                let ids: Vec<i64> = values.iter().map(|&id| id as i64).collect();
                Activations::Ids(Tensor::from_data(
                    TensorData::new(ids, [rows, length]),
                    device,
                ))
            }
            Shape::Image {
                channels,
                height,
                width,
            } => Activations::Image(Tensor::from_data(
                TensorData::new(values, [rows, channels, height, width]),
                device,
            )),
            Shape::Sequence { length, dim } => Activations::Sequence(Tensor::from_data(
                TensorData::new(values, [rows, length, dim]),
                device,
            )),
        }
    }

    /// Predicts `rows` encoded examples stored back to back in `values`.
    pub fn predict(&self, values: Vec<f32>, rows: usize) -> Vec<Prediction> {
        if rows == 0 {
            return Vec::new();
        }
        let input = Self::batch(&self.spec.input, values, rows, &self.device);
        let logits = forward(&self.network, &self.spec.layers, input, false);
        from_logits(self.spec.task, &self.spec.label_vocabulary, logits)
    }

    /// Writes the model into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let mut weights = WeightsWriter::default();
        self.network.write(&self.spec.layers, &mut weights);
        write_export(dir, &self.spec, weights)
    }

    /// Reads the Sequential model in `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, ModelError> {
        let mut spec: SequentialSpec = read_spec(dir)?;
        if spec.format != SEQUENTIAL_FORMAT {
            return Err(ModelError::Format(format!(
                "{} has format {:?}, not {SEQUENTIAL_FORMAT:?}",
                crate::EXPORT_FILE,
                spec.format
            )));
        }
        if let InputSpec::Text { tokenizer, .. } = &mut spec.input {
            tokenizer.prepare();
        }
        let (_, shapes) =
            SequentialSpec::check(&spec.input, &spec.layers, None).map_err(ModelError::Format)?;
        let network = Network::init(
            spec.input.shape(),
            &spec.layers,
            &shapes,
            spec.input.vocabulary(),
            device,
        )
        .read(&spec.layers, &Weights::read(dir)?, device)?;
        Ok(Self {
            spec,
            network,
            device: device.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> InputSpec {
        InputSpec::Image {
            height: 8,
            width: 8,
            channels: 1,
            scale: 1.0 / 16.0,
        }
    }

    fn layers(json: serde_json::Value) -> Vec<LayerSpec> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn plans_shapes_and_names_the_layer_at_fault() {
        let cnn = layers(serde_json::json!([
            {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
            {"type": "MaxPooling2D"},
            {"type": "Dropout", "rate": 0.25},
            {"type": "Flatten"},
            {"type": "Dense", "units": 10, "activation": "softmax"}
        ]));
        let (task, shapes) = SequentialSpec::check(&image(), &cnn, Some(10)).unwrap();
        assert_eq!(task, Task::MultiClassification);
        assert_eq!(
            shapes[1],
            Shape::Image {
                channels: 4,
                height: 3,
                width: 3
            }
        );
        assert_eq!(shapes[4], Shape::Flat(10));

        let error = SequentialSpec::check(&image(), &cnn, Some(4)).unwrap_err();
        assert!(
            error.contains("4 classes") && error.contains("10 units"),
            "{error}"
        );
        let dense_first = layers(serde_json::json!([{"type": "Dense", "units": 3}]));
        let error = SequentialSpec::check(&image(), &dense_first, None).unwrap_err();
        assert_eq!(
            error,
            "layers[0] (Dense) does not take an image of 8 x 8 x 1"
        );
        let too_big = layers(serde_json::json!([
            {"type": "Conv2D", "filters": 4, "kernel_size": 9}, {"type": "Flatten"},
            {"type": "Dense", "units": 1}
        ]));
        let error = SequentialSpec::check(&image(), &too_big, None).unwrap_err();
        assert!(
            error.contains("layers[0] (Conv2D): a 9 x 9 kernel"),
            "{error}"
        );
        let relu_out = layers(serde_json::json!([
            {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "relu"}
        ]));
        let error = SequentialSpec::check(&image(), &relu_out, None).unwrap_err();
        assert!(
            error.starts_with("layers[1]: the last layer must be"),
            "{error}"
        );
        let text: InputSpec = serde_json::from_value(serde_json::json!(
            {"type": "text", "tokenizer": {"ngrams": 0}}
        ))
        .unwrap();
        let dense =
            layers(serde_json::json!([{"type": "Dense", "units": 3, "activation": "softmax"}]));
        let error = SequentialSpec::check(&text, &dense, None).unwrap_err();
        assert_eq!(
            error,
            "input.tokenizer.ngrams: a term is 1 to 5 words, not 0"
        );
    }

    #[test]
    fn saves_and_loads_the_same_predictions() {
        let spec_layers = layers(serde_json::json!([
            {"type": "Conv2D", "filters": 3, "kernel_size": [3, 2], "padding": "same", "activation": "relu"},
            {"type": "MaxPool2D", "pool_size": 2},
            {"type": "Flatten"},
            {"type": "Dense", "units": 5, "activation": "tanh"},
            {"type": "Dense", "units": 3, "activation": "softmax"}
        ]));
        let (task, shapes) = SequentialSpec::check(&image(), &spec_layers, Some(3)).unwrap();
        let device = Device::flex();
        let model = SequentialModel {
            network: Network::init(image().shape(), &spec_layers, &shapes, None, &device),
            spec: SequentialSpec {
                format: SEQUENTIAL_FORMAT.into(),
                algorithm: "sequential".into(),
                input: image(),
                layers: spec_layers,
                task,
                label_vocabulary: vec!["a".into(), "b".into(), "c".into()],
                metrics: BTreeMap::new(),
            },
            device: device.clone(),
        };
        let values: Vec<f32> = (0..128).map(|i| (i % 17) as f32 / 17.0).collect();
        let before = model.predict(values.clone(), 2);
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        assert_eq!(
            crate::export::format_of(dir.path()).unwrap(),
            SEQUENTIAL_FORMAT
        );
        let loaded = SequentialModel::load(dir.path(), &device).unwrap();
        assert_eq!(loaded.predict(values, 2), before);
        assert!(matches!(before[0], Prediction::MultiClass { .. }));
    }
}
