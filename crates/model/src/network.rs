//! The network: host-side tables for the sparse parts, a burn module for the dense part.
//!
//! The forward pass takes the rows a batch looks up as tensors ([`Leaves`]), so training can mark
//! them as gradient leaves and serving can pass them as constants: one forward for both.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::relu;

use crate::ModelError;
use crate::columns::{Encoded, Encoder};
use crate::spec::ModelSpec;
use crate::table::Table;

/// The dense part of the network, trained by burn's autodiff and optimizers.
#[derive(Module, Debug)]
pub struct Dense {
    /// Hidden layers of the deep part, each followed by ReLU.
    pub hidden: Vec<Linear>,
    /// Projection of the last hidden layer to the logits (absent without a deep part).
    pub output: Option<Linear>,
    /// Bias added to the logits (the wide part's bias in a linear model).
    pub bias: Param<Tensor<1>>,
}

impl Dense {
    /// Logits from the deep input and the wide part's summed weights.
    pub fn forward(&self, deep: Option<Tensor<2>>, wide: Option<Tensor<2>>) -> Tensor<2> {
        let deep_logits = match (deep, &self.output) {
            (Some(mut x), Some(output)) => {
                for layer in &self.hidden {
                    x = relu(layer.forward(x));
                }
                Some(output.forward(x))
            }
            _ => None,
        };
        let logits = match (deep_logits, wide) {
            (Some(deep), Some(wide)) => deep + wide,
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => unreachable!("a model has a wide or a deep part. This is a bug."),
        };
        logits + self.bias.val().unsqueeze::<2>()
    }
}

/// A batch's looked-up rows and numeric values, as tensors on the model's device.
#[derive(Debug)]
pub struct Leaves {
    /// Concatenated embeddings of the categorical columns, `[batch, Σ embedding_dim]`.
    pub embedded: Option<Tensor<2>>,
    /// Normalised numeric values, `[batch, n_numeric]`.
    pub numeric: Option<Tensor<2>>,
    /// Wide weights of every slot, `[batch, n_slots, n_outputs]`.
    pub wide: Option<Tensor<3>>,
}

/// A complete model: description, encoder, tables and dense module.
#[derive(Debug, Clone)]
pub struct Model {
    /// The description saved as `kiln_model.json`.
    pub spec: ModelSpec,
    /// Encoder built from `spec.columns`.
    pub encoder: Encoder,
    /// One stacked wide table over all slots (rows = Σ slot cardinalities, dim = n_outputs).
    pub wide: Option<Table>,
    /// Row offset of each slot in `wide`.
    pub wide_offsets: Vec<usize>,
    /// One embedding table per categorical column (deep part only).
    pub embeddings: Vec<Table>,
    /// The dense part.
    pub dense: Dense,
    /// Device the dense part lives on; leaves are created there too.
    pub device: Device,
}

impl Model {
    /// Assembles a model from its parts, checking that the shapes agree with the spec.
    pub fn from_parts(
        spec: ModelSpec,
        wide: Option<Table>,
        embeddings: Vec<Table>,
        dense: Dense,
        device: Device,
    ) -> Result<Self, ModelError> {
        let encoder = Encoder::new(spec.columns.clone())?;
        let (wide_offsets, total) = encoder.slot_offsets();
        let n_outputs = spec.n_outputs();
        if n_outputs == 0 {
            return Err(ModelError::Format("the model has no outputs".into()));
        }
        if spec.kind.has_wide() {
            match &wide {
                Some(table) if table.rows == total && table.dim == n_outputs => {}
                _ => {
                    return Err(ModelError::Format(format!(
                        "wide table must be {total} x {n_outputs}"
                    )));
                }
            }
            if wide_offsets.is_empty() {
                return Err(ModelError::Format(
                    "a linear model needs categorical, bucketized or crossed columns".into(),
                ));
            }
        }
        if spec.kind.has_deep() {
            if embeddings.len() != spec.columns.categorical.len() {
                return Err(ModelError::Format(
                    "one embedding table per categorical column".into(),
                ));
            }
            for (table, column) in embeddings.iter().zip(&spec.columns.categorical) {
                if table.rows != column.cardinality() || table.dim != column.embedding_dim {
                    return Err(ModelError::Format(format!(
                        "embedding of {:?} must be {} x {}",
                        column.name,
                        column.cardinality(),
                        column.embedding_dim
                    )));
                }
            }
            if dense.output.is_none() {
                return Err(ModelError::Format(
                    "the deep part has no output layer".into(),
                ));
            }
        }
        Ok(Self {
            spec,
            encoder,
            wide: if wide_offsets.is_empty() { None } else { wide },
            wide_offsets,
            embeddings,
            dense,
            device,
        })
    }

    /// Width of the deep part's input: embeddings plus numeric values.
    pub fn deep_input_width(spec: &ModelSpec) -> usize {
        spec.columns
            .categorical
            .iter()
            .map(|column| column.embedding_dim)
            .sum::<usize>()
            + spec.columns.numeric.len()
    }

    /// Looks up a batch's rows and packs them as tensors on `self.device`.
    pub fn leaves(&self, batch: &[Encoded]) -> Leaves {
        let embeddings: Vec<&Table> = self.embeddings.iter().collect();
        gather(
            &self.spec,
            &embeddings,
            self.wide.as_ref(),
            &self.wide_offsets,
            batch,
            &self.device,
        )
    }
}

/// Looks up a batch's rows in the given tables and packs them, with the numeric values, as
/// tensors on `device`. Training marks the gathered rows as gradient leaves afterwards.
pub fn gather(
    spec: &ModelSpec,
    embeddings: &[&Table],
    wide: Option<&Table>,
    wide_offsets: &[usize],
    batch: &[Encoded],
    device: &Device,
) -> Leaves {
    let size = batch.len();
    let kind = spec.kind;
    let n_numeric = spec.columns.numeric.len();
    let numeric = (kind.has_deep() && n_numeric > 0).then(|| {
        let values: Vec<f32> = batch.iter().flat_map(|e| e.dense.iter().copied()).collect();
        Tensor::from_data(TensorData::new(values, [size, n_numeric]), device)
    });
    let embedded = (kind.has_deep() && !embeddings.is_empty()).then(|| {
        let width: usize = embeddings.iter().map(|table| table.dim).sum();
        let mut values = Vec::with_capacity(size * width);
        for example in batch {
            for (slot, table) in embeddings.iter().enumerate() {
                values.extend_from_slice(table.row(example.ids[slot] as usize));
            }
        }
        Tensor::from_data(TensorData::new(values, [size, width]), device)
    });
    let wide = wide.filter(|_| kind.has_wide()).map(|table| {
        let slots = wide_offsets.len();
        let mut values = Vec::with_capacity(size * slots * table.dim);
        for example in batch {
            for (offset, id) in wide_offsets.iter().zip(&example.ids) {
                values.extend_from_slice(table.row(offset + *id as usize));
            }
        }
        Tensor::from_data(TensorData::new(values, [size, slots, table.dim]), device)
    });
    Leaves {
        embedded,
        numeric,
        wide,
    }
}

/// The forward pass: logits `[batch, n_outputs]`.
pub fn forward(dense: &Dense, leaves: &Leaves) -> Tensor<2> {
    let deep = match (&leaves.embedded, &leaves.numeric) {
        (Some(embedded), Some(numeric)) => {
            Some(Tensor::cat(vec![embedded.clone(), numeric.clone()], 1))
        }
        (Some(only), None) | (None, Some(only)) => Some(only.clone()),
        (None, None) => None,
    };
    let wide = leaves.wide.as_ref().map(|wide| {
        let [size, _, n_outputs] = wide.dims();
        wide.clone().sum_dim(1).reshape([size, n_outputs])
    });
    dense.forward(deep, wide)
}
