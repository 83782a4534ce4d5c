//! The exported model directory: Kiln's own format.
//!
//! ```text
//! <export dir>/
//!   kiln_model.json       ModelSpec: format tag, task, label vocabulary, feature columns
//!                         (vocabularies, hash buckets, boundaries, normalisation), network shape,
//!                         signature outputs, eval metrics
//!   weights.safetensors   f32 tensors: "wide" [Σ slot ids, n_outputs],
//!                         "embedding/<column>" [ids, dim], "dense/hidden/<i>/weight" [in, out],
//!                         "dense/hidden/<i>/bias", "dense/output/weight", "dense/output/bias",
//!                         "dense/bias" [n_outputs]
//! ```
//!
//! SafeTensors is chosen because other tools read it (Python `safetensors`, burn-store), so a
//! Kiln model is inspectable without Kiln.

use std::collections::HashMap;
use std::path::Path;

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::TensorData;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::ModelError;
use crate::network::{Dense, Model};
use crate::spec::{FORMAT, ModelSpec};
use crate::table::Table;

/// Name of the model description file; its presence marks a directory as a Kiln model.
pub const EXPORT_FILE: &str = "kiln_model.json";
/// Name of the weights file.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// Writes `model` into `dir` (created if needed).
pub fn save(model: &Model, dir: &Path) -> Result<(), ModelError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ModelError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    if let Some(wide) = &model.wide {
        tensors.push(("wide".into(), vec![wide.rows, wide.dim], wide.data.clone()));
    }
    for (table, column) in model.embeddings.iter().zip(&model.spec.columns.categorical) {
        tensors.push((
            format!("embedding/{}", column.name),
            vec![table.rows, table.dim],
            table.data.clone(),
        ));
    }
    for (index, layer) in model.dense.hidden.iter().enumerate() {
        push_linear(&mut tensors, &format!("dense/hidden/{index}"), layer);
    }
    if let Some(output) = &model.dense.output {
        push_linear(&mut tensors, "dense/output", output);
    }
    push_tensor(&mut tensors, "dense/bias", model.dense.bias.val());

    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, values)| {
            let bytes = values
                .iter()
                .flat_map(|value| value.to_le_bytes())
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|view| (name.as_str(), view))
                .map_err(|error| ModelError::Format(error.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let serialized = safetensors::serialize(views, None)
        .map_err(|error| ModelError::Format(error.to_string()))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    std::fs::write(&weights_path, serialized).map_err(io(&weights_path))?;

    let spec_path = dir.join(EXPORT_FILE);
    let spec = serde_json::to_vec_pretty(&model.spec)
        .map_err(|error| ModelError::Format(error.to_string()))?;
    std::fs::write(&spec_path, spec).map_err(io(&spec_path))
}

/// Reads the model in `dir` onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<Model, ModelError> {
    let spec_path = dir.join(EXPORT_FILE);
    let spec_bytes = std::fs::read(&spec_path).map_err(|source| ModelError::Io {
        path: spec_path.display().to_string(),
        source,
    })?;
    let spec: ModelSpec = serde_json::from_slice(&spec_bytes)
        .map_err(|error| ModelError::Format(format!("{EXPORT_FILE}: {error}")))?;
    if spec.format != FORMAT {
        return Err(ModelError::Format(format!(
            "{EXPORT_FILE} has format {:?}, this Kiln reads {FORMAT:?}",
            spec.format
        )));
    }
    let weights_path = dir.join(WEIGHTS_FILE);
    let weights_bytes = std::fs::read(&weights_path).map_err(|source| ModelError::Io {
        path: weights_path.display().to_string(),
        source,
    })?;
    let weights = Weights::parse(&weights_bytes)?;

    let wide = match spec.kind.has_wide() {
        true => Some(weights.table("wide")?),
        false => None,
    };
    let embeddings = match spec.kind.has_deep() {
        true => spec
            .columns
            .categorical
            .iter()
            .map(|column| weights.table(&format!("embedding/{}", column.name)))
            .collect::<Result<Vec<_>, _>>()?,
        false => Vec::new(),
    };
    let hidden = (0..spec.hidden_units.len())
        .filter(|_| spec.kind.has_deep())
        .map(|index| weights.linear(&format!("dense/hidden/{index}"), device))
        .collect::<Result<Vec<_>, _>>()?;
    let output = match spec.kind.has_deep() {
        true => Some(weights.linear("dense/output", device)?),
        false => None,
    };
    let (bias, _) = weights.get("dense/bias")?;
    let bias_len = bias.len();
    let dense = Dense {
        hidden,
        output,
        bias: Param::from_tensor(Tensor::from_data(TensorData::new(bias, [bias_len]), device)),
    };
    Model::from_parts(spec, wide, embeddings, dense, device.clone())
}

fn push_linear(tensors: &mut Vec<(String, Vec<usize>, Vec<f32>)>, prefix: &str, layer: &Linear) {
    push_tensor(tensors, &format!("{prefix}/weight"), layer.weight.val());
    if let Some(bias) = &layer.bias {
        push_tensor(tensors, &format!("{prefix}/bias"), bias.val());
    }
}

fn push_tensor<const D: usize>(
    tensors: &mut Vec<(String, Vec<usize>, Vec<f32>)>,
    name: &str,
    tensor: Tensor<D>,
) {
    let shape = tensor.dims().to_vec();
    let values = tensor
        .into_data()
        .try_into_vec::<f32>()
        .expect("model parameters are f32. This is a bug.");
    tensors.push((name.to_string(), shape, values));
}

/// The tensors of a weights file, decoded to f32.
struct Weights {
    tensors: HashMap<String, (Vec<f32>, Vec<usize>)>,
}

impl Weights {
    fn parse(bytes: &[u8]) -> Result<Self, ModelError> {
        let format = |error: safetensors::SafeTensorError| {
            ModelError::Format(format!("{WEIGHTS_FILE}: {error}"))
        };
        let file = SafeTensors::deserialize(bytes).map_err(format)?;
        let mut tensors = HashMap::new();
        for name in file.names() {
            let view = file.tensor(name).map_err(format)?;
            if view.dtype() != Dtype::F32 {
                return Err(ModelError::Format(format!(
                    "{WEIGHTS_FILE}: {name} is not f32"
                )));
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
                .collect();
            tensors.insert(name.to_string(), (values, view.shape().to_vec()));
        }
        Ok(Self { tensors })
    }

    fn get(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), ModelError> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| ModelError::Format(format!("{WEIGHTS_FILE} has no tensor {name:?}")))
    }

    fn table(&self, name: &str) -> Result<Table, ModelError> {
        match self.get(name)? {
            (data, shape) if shape.len() == 2 => Ok(Table {
                rows: shape[0],
                dim: shape[1],
                data,
            }),
            (_, shape) => Err(ModelError::Format(format!(
                "{name} has shape {shape:?}, not 2-D"
            ))),
        }
    }

    fn linear(&self, prefix: &str, device: &Device) -> Result<Linear, ModelError> {
        let weight = self.table(&format!("{prefix}/weight"))?;
        let (bias, _) = self.get(&format!("{prefix}/bias"))?;
        if bias.len() != weight.dim {
            return Err(ModelError::Format(format!(
                "{prefix}: bias and weight disagree"
            )));
        }
        let bias_len = bias.len();
        Ok(Linear {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(weight.data, [weight.rows, weight.dim]),
                device,
            )),
            bias: Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(bias, [bias_len]),
                device,
            ))),
        })
    }
}
