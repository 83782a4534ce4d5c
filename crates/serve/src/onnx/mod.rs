//! The runtime for imported ONNX models (`model.onnx`: PyTorch, scikit-learn via skl2onnx, Keras
//! via tf2onnx, XGBoost via onnxmltools), on `tract-onnx`, a pure-Rust ONNX runtime.
//!
//! tract was chosen by measurement: it matched ONNX Runtime here (16 µs at batch 1, about
//! 250k rows/s at batch 512) and needs no native library at run time.
//!
//! - [`graph`]: the operator check and the rewrites applied before tract parses the graph.
//! - [`tensors`]: JSON instances to input tensors and output tensors to JSON.
//!
//! A prediction for a model with one output is that output's value for the instance; with
//! several, an object keyed by output name (scikit-learn classifiers: `output_label` and
//! `output_probability`, the latter keyed by class as the exported `ZipMap` would).

mod graph;
mod tensors;

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use tract_onnx::prelude::{
    Framework, InferenceFact, InferenceModelExt, IntoRunnable, TDim, TValue, TVec,
    TypedRunnableModel,
};
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

pub use graph::Output;
use tensors::{Batch, Input};

use crate::{ModelRuntime, ServeError};

/// The file an ONNX deployment directory holds.
pub const MODEL_FILE: &str = "model.onnx";

/// An ONNX model, parsed, checked and optimised once, shared by every worker.
#[derive(Debug)]
pub struct OnnxRuntime {
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<Input>,
    outputs: Vec<Output>,
}

impl OnnxRuntime {
    /// Loads `dir/model.onnx` (external tensor data beside it), refusing a model that uses an
    /// operator tract lacks with the list of all such operators, then runs one prediction on
    /// zeros so that a model that cannot run is refused at load time.
    pub fn load(dir: &Path) -> Result<Self, ServeError> {
        let onnx = tract_onnx::onnx();
        let load = |error: tract_onnx::prelude::TractError| ServeError::Load(format!("{error:#}"));
        let mut proto = onnx
            .proto_model_for_path(dir.join(MODEL_FILE))
            .map_err(load)?;
        let outputs = graph::prepare(&mut proto, |op| onnx.op_register.0.contains_key(op))?;
        let parsed = onnx.parse(&proto, dir.to_str()).map_err(load)?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(ServeError::Load(format!(
                "the graph reads tensors it never defines: {}",
                parsed.unresolved_inputs.join(", ")
            )));
        }
        let mut model = parsed.model;
        let mut inputs = Vec::new();
        for index in 0..model.inputs.len() {
            let (input, fact) = describe_input(&model, index)?;
            model.set_input_fact(index, fact).map_err(load)?;
            inputs.push(input);
        }
        let plan = model
            .into_optimized()
            .and_then(|optimized| optimized.into_runnable())
            .map_err(load)?;
        let runtime = Self {
            plan,
            inputs,
            outputs,
        };
        let probe = runtime.probe_instance();
        runtime
            .predict(&[probe])
            .map_err(|error| ServeError::Load(format!("the model does not run: {error}")))?;
        Ok(runtime)
    }

    /// An instance of zeros (and empty strings) in every input's shape, symbolic dims as 1.
    fn probe_instance(&self) -> Value {
        let fields: Map<String, Value> = self
            .inputs
            .iter()
            .map(|input| {
                let size = input
                    .row_shape
                    .iter()
                    .map(|dim| dim.unwrap_or(1))
                    .product::<usize>();
                let zero = match input.datum_type {
                    tract_onnx::prelude::DatumType::String => Value::from(""),
                    tract_onnx::prelude::DatumType::Bool => Value::from(false),
                    _ => Value::from(0),
                };
                let value = match input.row_shape.is_empty() {
                    true => zero,
                    false => Value::Array(vec![zero; size]),
                };
                (input.name.clone(), value)
            })
            .collect();
        Value::Object(fields)
    }

    /// Runs the model once on `instances` and splits its outputs per instance.
    fn run(&self, instances: &[&Value]) -> Result<Vec<Value>, ServeError> {
        let single = self.inputs.len() == 1;
        let mut tensors = TVec::new();
        for input in &self.inputs {
            let tensor = input
                .tensor(instances, single)
                .map_err(|(index, message)| ServeError::Instance { index, message })?;
            tensors.push(TValue::from(tensor));
        }
        let results = self
            .plan
            .run(tensors)
            .map_err(|error| ServeError::Request(format!("the model failed: {error:#}")))?;
        let mut per_output = Vec::with_capacity(results.len());
        for (tensor, output) in results.iter().zip(&self.outputs) {
            per_output
                .push(tensors::rows(tensor, instances.len(), output).map_err(ServeError::Request)?);
        }
        Ok((0..instances.len())
            .map(|index| match per_output.as_slice() {
                [only] => only[index].clone(),
                _ => Value::Object(
                    self.outputs
                        .iter()
                        .zip(&per_output)
                        .map(|(output, values)| (output.name.clone(), values[index].clone()))
                        .collect(),
                ),
            })
            .collect())
    }
}

impl ModelRuntime for OnnxRuntime {
    fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError> {
        let all: Vec<&Value> = instances.iter().collect();
        if self
            .inputs
            .iter()
            .all(|input| input.batch == Batch::Dynamic)
        {
            return self.run(&all);
        }
        let mut predictions = Vec::with_capacity(instances.len());
        for (index, instance) in all.iter().enumerate() {
            let one = self
                .run(std::slice::from_ref(instance))
                .map_err(|error| match error {
                    ServeError::Instance { message, .. } => ServeError::Instance { index, message },
                    other => other,
                })?;
            predictions.extend(one);
        }
        Ok(predictions)
    }
}

/// What input `index` takes per instance, and the fact tract is given for it: unknown
/// dimensions made symbolic (`N` for the batch), so one optimised plan serves every batch size.
fn describe_input(
    model: &tract_onnx::prelude::InferenceModel,
    index: usize,
) -> Result<(Input, InferenceFact), ServeError> {
    let outlet = model.inputs[index];
    let name = model.node(outlet.node).name.clone();
    let fact = model
        .input_fact(index)
        .map_err(|error| ServeError::Load(format!("input '{name}': {error}")))?;
    let datum_type = fact.datum_type.concretize().ok_or_else(|| {
        ServeError::Load(format!("input '{name}' has no element type in the graph"))
    })?;
    if !Input::accepts(datum_type) {
        return Err(ServeError::Load(format!(
            "input '{name}' takes {datum_type:?} tensors, which JSON instances cannot fill"
        )));
    }
    if fact.shape.is_open() {
        return Err(ServeError::Load(format!(
            "input '{name}' has no shape in the graph; export it with one (a symbolic batch \
             dimension first)"
        )));
    }
    let dims: Vec<Option<TDim>> = fact.shape.dims().map(|dim| dim.concretize()).collect();
    let symbolic: Vec<TDim> = dims
        .iter()
        .enumerate()
        .map(|(axis, dim)| match dim {
            Some(dim) => dim.clone(),
            None if axis == 0 => model.symbols.sym("N").into(),
            None => model.symbols.sym(&format!("{name}_{axis}")).into(),
        })
        .collect();
    let fixed = |dim: &TDim| dim.to_usize().ok();
    let batch = match symbolic.first() {
        None => Batch::Whole,
        Some(first) => match fixed(first) {
            None => Batch::Dynamic,
            Some(1) => Batch::One,
            Some(_) => Batch::Whole,
        },
    };
    let row = match batch {
        Batch::Whole => &symbolic[..],
        _ => &symbolic[1..],
    };
    let input = Input {
        name,
        datum_type,
        batch,
        row_shape: row.iter().map(fixed).collect(),
    };
    Ok((input, InferenceFact::dt_shape(datum_type, symbolic)))
}
