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

use serde::Serialize;
use serde::de::DeserializeOwned;

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
    let mut weights = WeightsWriter::default();
    if let Some(wide) = &model.wide {
        weights.push("wide", vec![wide.rows, wide.dim], wide.data.clone());
    }
    for (table, column) in model.embeddings.iter().zip(&model.spec.columns.categorical) {
        weights.push(
            &format!("embedding/{}", column.name),
            vec![table.rows, table.dim],
            table.data.clone(),
        );
    }
    for (index, layer) in model.dense.hidden.iter().enumerate() {
        weights.push_linear(&format!("dense/hidden/{index}"), layer);
    }
    if let Some(output) = &model.dense.output {
        weights.push_linear("dense/output", output);
    }
    weights.push_tensor("dense/bias", model.dense.bias.val());
    write_export(dir, &model.spec, weights)
}

/// Reads the model in `dir` onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<Model, ModelError> {
    let spec: ModelSpec = read_spec(dir)?;
    if spec.format != FORMAT {
        return Err(ModelError::Format(format!(
            "{EXPORT_FILE} has format {:?}, this Kiln reads {FORMAT:?}",
            spec.format
        )));
    }
    spec.check()?;
    let weights = Weights::read(dir)?;
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
    let dense = Dense {
        hidden,
        output,
        bias: Param::from_tensor(weights.tensor::<1>("dense/bias", device)?),
    };
    Model::from_parts(spec, wide, embeddings, dense, device.clone())
}

/// The `format` tag of the export in `dir`, which says which kind of Kiln model it holds.
pub fn format_of(dir: &Path) -> Result<String, ModelError> {
    #[derive(serde::Deserialize)]
    struct Tagged {
        format: String,
    }
    Ok(read_spec::<Tagged>(dir)?.format)
}

/// Named f32 tensors: `name -> (values, shape)`.
pub type Tensors = HashMap<String, (Vec<f32>, Vec<usize>)>;

/// Writes named f32 tensors to a SafeTensors file at `path` (training state beside an export,
/// such as optimizer moments).
pub fn save_tensors(
    path: &Path,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
) -> Result<(), ModelError> {
    let writer = WeightsWriter { tensors };
    std::fs::write(path, writer.serialize()?).map_err(io_error(path))
}

/// Reads a SafeTensors file of f32 tensors written by [`save_tensors`].
pub fn load_tensors(path: &Path) -> Result<Tensors, ModelError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    Ok(Weights::parse(&bytes)?.tensors)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError {
    let path = path.display().to_string();
    move |source| ModelError::Io { path, source }
}

/// Reads `kiln_model.json` from `dir`.
pub(crate) fn read_spec<T: DeserializeOwned>(dir: &Path) -> Result<T, ModelError> {
    let path = dir.join(EXPORT_FILE);
    let bytes = std::fs::read(&path).map_err(io_error(&path))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| ModelError::Format(format!("{EXPORT_FILE}: {error}")))
}

/// Writes `spec` as `kiln_model.json` and the weights beside it, creating `dir` if needed.
pub(crate) fn write_export<T: Serialize>(
    dir: &Path,
    spec: &T,
    weights: WeightsWriter,
) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    std::fs::write(&weights_path, weights.serialize()?).map_err(io_error(&weights_path))?;
    let spec_path = dir.join(EXPORT_FILE);
    let spec =
        serde_json::to_vec_pretty(spec).map_err(|error| ModelError::Format(error.to_string()))?;
    std::fs::write(&spec_path, spec).map_err(io_error(&spec_path))
}

/// Named f32 tensors on their way to a weights file.
#[derive(Default)]
pub(crate) struct WeightsWriter {
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl WeightsWriter {
    pub(crate) fn push(&mut self, name: &str, shape: Vec<usize>, values: Vec<f32>) {
        self.tensors.push((name.to_string(), shape, values));
    }

    pub(crate) fn push_tensor<const D: usize>(&mut self, name: &str, tensor: Tensor<D>) {
        let shape = tensor.dims().to_vec();
        let values = tensor
            .into_data()
            .try_into_vec::<f32>()
            .expect("model parameters are f32. This is a bug.");
        self.push(name, shape, values);
    }

    pub(crate) fn push_linear(&mut self, prefix: &str, layer: &Linear) {
        self.push_tensor(&format!("{prefix}/weight"), layer.weight.val());
        if let Some(bias) = &layer.bias {
            self.push_tensor(&format!("{prefix}/bias"), bias.val());
        }
    }

    fn serialize(self) -> Result<Vec<u8>, ModelError> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
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
        safetensors::serialize(views, None).map_err(|error| ModelError::Format(error.to_string()))
    }
}

/// The tensors of a weights file, decoded to f32.
pub(crate) struct Weights {
    tensors: Tensors,
}

impl Weights {
    /// Reads `weights.safetensors` from `dir`.
    pub(crate) fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(io_error(&path))?;
        Self::parse(&bytes)
    }

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

    pub(crate) fn get(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), ModelError> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| ModelError::Format(format!("{WEIGHTS_FILE} has no tensor {name:?}")))
    }

    pub(crate) fn table(&self, name: &str) -> Result<Table, ModelError> {
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

    /// The tensor `name` of rank `D` on `device`.
    pub(crate) fn tensor<const D: usize>(
        &self,
        name: &str,
        device: &Device,
    ) -> Result<Tensor<D>, ModelError> {
        let (values, shape) = self.get(name)?;
        if shape.len() != D {
            return Err(ModelError::Format(format!(
                "{name} has shape {shape:?}, not {D}-D"
            )));
        }
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    pub(crate) fn linear(&self, prefix: &str, device: &Device) -> Result<Linear, ModelError> {
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
