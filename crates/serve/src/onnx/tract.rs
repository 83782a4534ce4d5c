//! The pure-Rust engine: `tract-onnx`, which needs nothing installed. Used when ONNX Runtime's
//! library is not found (or `KILN_ONNX_RUNTIME=tract`).

use std::path::Path;
use std::sync::Arc;

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{
    DatumType, InferenceFact, InferenceModelExt, IntoRunnable, TDim, TValue, Tensor, TractResult,
    TypedRunnableModel, tract_ndarray,
};
use tract_onnx::tract_hir::infer::Factoid;

use super::Backend;
use super::graph::{Element, GraphInput};
use super::tensors::{Array, Data};
use crate::ServeError;

/// A graph parsed, typed with symbolic batch dimensions, and optimised once.
pub struct TractEngine {
    plan: Arc<TypedRunnableModel>,
}

impl std::fmt::Debug for TractEngine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TractEngine")
    }
}

impl TractEngine {
    /// Builds the plan of `proto` (external tensor data read from `dir`). Unknown dimensions of
    /// the inputs become symbols (`N` for the batch), so one plan serves every batch size.
    pub fn load(
        onnx: &tract_onnx::Onnx,
        proto: &ModelProto,
        dir: &Path,
        inputs: &[GraphInput],
    ) -> Result<Self, ServeError> {
        let load = |error: tract_onnx::prelude::TractError| ServeError::Load(format!("{error:#}"));
        let parsed = onnx.parse(proto, dir.to_str()).map_err(load)?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(ServeError::Load(format!(
                "the graph reads tensors it never defines: {}",
                parsed.unresolved_inputs.join(", ")
            )));
        }
        let mut model = parsed.model;
        for (index, input) in inputs.iter().enumerate() {
            // Named dimensions (`batch`) keep tract's symbols, which the graph's shapes share.
            let declared = model.input_fact(index).map_err(load)?.shape.clone();
            let dims: Vec<TDim> = declared
                .dims()
                .enumerate()
                .map(|(axis, dim)| match dim.concretize() {
                    Some(dim) => dim,
                    None if axis == 0 => model.symbols.sym("N").into(),
                    None => model.symbols.sym(&format!("{}_{axis}", input.name)).into(),
                })
                .collect();
            let fact = InferenceFact::dt_shape(datum_type(input.element), dims);
            model.set_input_fact(index, fact).map_err(load)?;
        }
        let plan = model
            .into_optimized()
            .and_then(|optimized| optimized.into_runnable())
            .map_err(load)?;
        Ok(Self { plan })
    }
}

impl Backend for TractEngine {
    fn engine(&self) -> kiln_api::Engine {
        kiln_api::Engine::Tract
    }

    fn run(&self, inputs: Vec<Array>) -> Result<Vec<Array>, String> {
        let tensors = inputs
            .into_iter()
            .map(|array| tensor(array).map(TValue::from))
            .collect::<TractResult<_>>()
            .map_err(|error| format!("{error:#}"))?;
        let outputs = self
            .plan
            .run(tensors)
            .map_err(|error| format!("{error:#}"))?;
        outputs
            .iter()
            .map(|tensor| array(tensor).map_err(|error| format!("{error:#}")))
            .collect()
    }
}

fn datum_type(element: Element) -> DatumType {
    match element {
        Element::F32 => DatumType::F32,
        Element::F64 => DatumType::F64,
        Element::I32 => DatumType::I32,
        Element::I64 => DatumType::I64,
        Element::Bool => DatumType::Bool,
        Element::String => DatumType::String,
        Element::U8 => DatumType::U8,
    }
}

fn tensor(array: Array) -> TractResult<Tensor> {
    let shape = &array.shape;
    match array.data {
        Data::F32(values) => Tensor::from_shape(shape, &values),
        Data::F64(values) => Tensor::from_shape(shape, &values),
        Data::I32(values) => Tensor::from_shape(shape, &values),
        Data::I64(values) => Tensor::from_shape(shape, &values),
        Data::Bool(values) => Tensor::from_shape(shape, &values),
        Data::U8(values) => Tensor::from_shape(shape, &values),
        Data::String(values) => {
            Ok(tract_ndarray::ArrayD::from_shape_vec(shape.as_slice(), values)?.into())
        }
    }
}

/// An output tensor as an [`Array`]; element types JSON lacks become f64 or i64.
fn array(tensor: &Tensor) -> TractResult<Array> {
    fn copied<T: tract_onnx::prelude::Datum + Clone>(tensor: &Tensor) -> TractResult<Vec<T>> {
        Ok(tensor.try_as_plain_ram()?.as_slice::<T>()?.to_vec())
    }
    let data = match tensor.datum_type() {
        DatumType::F32 => Data::F32(copied(tensor)?),
        DatumType::F64 => Data::F64(copied(tensor)?),
        DatumType::I32 => Data::I32(copied(tensor)?),
        DatumType::I64 => Data::I64(copied(tensor)?),
        DatumType::Bool => Data::Bool(copied(tensor)?),
        DatumType::String => Data::String(copied(tensor)?),
        other if other.is_float() => Data::F64(copied(&*tensor.cast_to::<f64>()?)?),
        _ => Data::I64(copied(&*tensor.cast_to::<i64>()?)?),
    };
    Ok(Array {
        shape: tensor.shape().to_vec(),
        data,
    })
}
