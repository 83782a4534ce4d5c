//! The runtime for imported ONNX models (`model.onnx`: PyTorch, scikit-learn via skl2onnx, Keras
//! via tf2onnx, XGBoost via onnxmltools), on one of two engines behind [`Engine`]:
//!
//! - [`onnxruntime`]: ONNX Runtime, loaded at run time from its shared library when one is found
//!   (the pip wheel ships it). Chosen by measurement: faster than tract at every batch size on
//!   the census Wide & Deep (README, "Engines").
//! - [`tract`]: `tract-onnx`, pure Rust, when it is not: nothing to install.
//!
//! A version may name its engine (`ONNX_RUNTIME`, `TRACT`); unnamed, ONNX Runtime serves where
//! it is found.
//!
//! Around them, engine-neutral:
//! - [`graph`]: the operator check and the rewrites applied before an engine sees the graph.
//! - [`int64_shapes`], [`tree_regressors`]: two of them, for tract: tf2onnx's int32 shape
//!   arithmetic widened to int64; tree ensemble regressors as one-class classifiers.
//! - [`tensors`]: JSON instances to input arrays and output arrays to JSON.
//! - [`text`]: a request's JSON text straight to input arrays, the fast path for the common form.
//! - [`feeds`]: an inference protocol's named tensors straight to input arrays.
//!
//! A prediction for a model with one output is that output's value for the instance; with
//! several, an object keyed by output name (scikit-learn classifiers: `output_label` and
//! `output_probability`, the latter keyed by class as the exported `ZipMap` would).

mod feeds;
mod graph;
mod int64_shapes;
mod onnxruntime;
mod tensors;
mod text;
mod tract;
mod tree_regressors;

use std::path::Path;

use prost::Message;
use serde_json::{Map, Value};
use tract_onnx::prelude::Framework;

pub use graph::Output;
use graph::{Element, GraphInput};
use tensors::{Array, Batch, Input};

use crate::tensor::Tensor;
use crate::{ModelRuntime, ServeError, TensorRuntime};

/// The file an ONNX deployment directory holds.
pub const MODEL_FILE: &str = "model.onnx";

/// Runs a prepared graph: input arrays in graph order in, output arrays in graph order out.
trait Backend: Send + Sync + std::fmt::Debug {
    fn run(&self, inputs: Vec<Array>) -> Result<Vec<Array>, String>;

    /// `ONNX_RUNTIME` or `TRACT`.
    fn engine(&self) -> kiln_api::Engine;
}

/// An ONNX model, checked and loaded once, shared by every worker.
#[derive(Debug)]
pub struct OnnxRuntime {
    engine: Box<dyn Backend>,
    inputs: Vec<Input>,
    outputs: Vec<Output>,
}

impl OnnxRuntime {
    /// Loads `dir/model.onnx` on `engine` (`ONNX_RUNTIME`, `TRACT`, or unspecified: ONNX
    /// Runtime where it is found), refusing a model that uses operators the engine lacks with the
    /// list of all of them, then runs one prediction on zeros so that a model that cannot run is
    /// refused at load time. `runtimes` is where Kiln's own ONNX Runtime is, or is built when
    /// `ONNX_RUNTIME` is asked for and none is found.
    pub fn load(
        dir: &Path,
        engine: kiln_api::Engine,
        runtimes: Option<&Path>,
    ) -> Result<Self, ServeError> {
        let path = dir.join(MODEL_FILE);
        let tract = tract_onnx::onnx();
        let mut proto = tract
            .proto_model_for_path(&path)
            .map_err(|error| ServeError::Load(format!("{error:#}")))?;
        let environment = match engine {
            kiln_api::Engine::Tract => None,
            kiln_api::Engine::OnnxRuntime => onnxruntime::environment(runtimes, true)?,
            kiln_api::Engine::EngineUnspecified => onnxruntime::environment(runtimes, false)?,
            other => {
                return Err(ServeError::Unsupported(format!(
                    "Field: version.engine Error: ONNX models are served by ONNX_RUNTIME or \
                     TRACT, not {}",
                    other.name()
                )));
            }
        };
        let (engine, prepared): (Box<dyn Backend>, _) = match environment {
            Some(environment) => {
                let prepared = graph::prepare(&mut proto, None)?;
                let rewritten = prepared.rewritten.then(|| proto.encode_to_vec());
                let engine = onnxruntime::OnnxRuntimeEngine::load(environment, &path, rewritten)?;
                (Box::new(engine), prepared)
            }
            None => {
                let table = |op: &str| tract.op_register.0.contains_key(op);
                let prepared = graph::prepare(&mut proto, Some(&table))?;
                let engine = tract::TractEngine::load(&tract, &proto, dir, &prepared.inputs)?;
                (Box::new(engine), prepared)
            }
        };
        let runtime = Self {
            engine,
            inputs: prepared.inputs.iter().map(describe).collect(),
            outputs: prepared.outputs,
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
                let zero = match input.element {
                    Element::String => Value::from(""),
                    Element::Bool => Value::from(false),
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
        let mut arrays = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let array = input
                .tensor(instances, single)
                .map_err(|(index, message)| ServeError::Instance { index, message })?;
            arrays.push(array);
        }
        self.answer(arrays, instances.len())
    }

    /// Runs the model on input arrays holding `count` instances, refusing outputs that are not
    /// finite (JSON cannot carry them) by the instance they belong to.
    fn run_arrays(&self, arrays: Vec<Array>, count: usize) -> Result<Vec<Array>, ServeError> {
        let results = self
            .engine
            .run(arrays)
            .map_err(|error| ServeError::Request(format!("the model failed: {error}")))?;
        if let Some((index, output)) =
            results
                .iter()
                .zip(&self.outputs)
                .find_map(|(array, output)| {
                    tensors::non_finite_row(array, count).map(|index| (index, &output.name))
                })
        {
            return Err(ServeError::Instance {
                index,
                message: format!(
                    "the model's output '{output}' is not a finite number (NaN or infinity) for this instance"
                ),
            });
        }
        Ok(results)
    }

    /// Runs the model on input arrays holding `count` instances and splits its outputs per
    /// instance.
    fn answer(&self, arrays: Vec<Array>, count: usize) -> Result<Vec<Value>, ServeError> {
        let results = self.run_arrays(arrays, count)?;
        let per_output: Vec<Vec<Value>> = results
            .iter()
            .zip(&self.outputs)
            .map(|(array, output)| tensors::rows(array, count, output))
            .collect();
        Ok((0..count)
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
    fn engine(&self) -> kiln_api::Engine {
        self.engine.engine()
    }

    fn engine_description(&self) -> String {
        match self.engine.engine() {
            kiln_api::Engine::Tract => "tract".into(),
            _ => "onnxruntime".into(),
        }
    }

    fn signature(&self) -> crate::signature::Signature {
        let inputs = self
            .inputs
            .iter()
            .map(|input| crate::signature::TensorSpec {
                name: input.name.clone(),
                dtype: input.element.dtype(),
                shape: std::iter::once(None)
                    .filter(|_| input.batch != tensors::Batch::Whole)
                    .chain(input.row_shape.iter().copied())
                    .map(|dim| dim.map_or(-1, |dim| dim as i64))
                    .collect(),
            })
            .collect();
        let outputs = self
            .outputs
            .iter()
            .filter_map(|output| {
                Some(crate::signature::TensorSpec {
                    name: output.name.clone(),
                    dtype: output.dtype?,
                    shape: output
                        .dims
                        .iter()
                        .map(|dim| dim.map_or(-1, |dim| dim as i64))
                        .collect(),
                })
            })
            .collect();
        crate::signature::Signature { inputs, outputs }
    }

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

    fn predict_json(&self, instances: &[&str]) -> Result<Vec<Value>, ServeError> {
        match text::read(&self.inputs, instances) {
            Some(arrays) => self.answer(arrays, instances.len()),
            None => self.predict(&crate::parse_instances(instances)?),
        }
    }

    /// Offered when every input takes a batch: a fixed batch of one runs an instance a call,
    /// which the instance path does.
    fn tensors(&self) -> Option<&dyn TensorRuntime> {
        let batched = self
            .inputs
            .iter()
            .all(|input| input.batch == Batch::Dynamic);
        batched.then_some(self as &dyn TensorRuntime)
    }
}

/// Outputs are the engine's arrays as they are: a `ZipMap` stripped from a classifier's
/// probabilities leaves one column per class, in the order of its labels.
impl TensorRuntime for OnnxRuntime {
    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ServeError> {
        let (arrays, count) = feeds::arrange(&self.inputs, inputs)?;
        let results = self.run_arrays(arrays, count)?;
        Ok(self
            .outputs
            .iter()
            .zip(results)
            .map(|(output, array)| Tensor {
                name: output.name.clone(),
                array,
            })
            .collect())
    }
}

/// What an input takes per instance: a symbolic first dimension is the batch.
fn describe(input: &GraphInput) -> Input {
    let batch = match input.dims.first() {
        None => Batch::Whole,
        Some(None) => Batch::Dynamic,
        Some(Some(1)) => Batch::One,
        Some(Some(_)) => Batch::Whole,
    };
    let row_shape = match batch {
        Batch::Whole => input.dims.clone(),
        _ => input.dims[1..].to_vec(),
    };
    Input {
        name: input.name.clone(),
        element: input.element,
        batch,
        row_shape,
    }
}
