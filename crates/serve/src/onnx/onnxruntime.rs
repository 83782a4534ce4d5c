//! The fast engine: ONNX Runtime, loaded at run time from its shared library (never linked, so
//! Kiln builds and runs without it); `bench/serve.py` compares it with tract.
//!
//! The library is `ORT_DYLIB_PATH` when set, else the one in the ONNX Runtime environment Kiln
//! built under its runtime directory, else the one in the `onnxruntime` pip package that
//! `python3` imports. A model that asks for ONNX Runtime on a machine with none of these has
//! that environment built (pip). `KILN_ONNX_RUNTIME=tract` turns ONNX Runtime off.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorElementType;
use ort::value::{DynValue, Tensor, ValueType};

use super::Backend;
use super::tensors::{Array, Data};
use crate::ServeError;

/// What became of looking for ONNX Runtime in this process.
enum Lookup {
    NotTried,
    /// Not found, or did not load: later models that do not insist run on tract without looking
    /// again.
    Missing,
    Loaded(&'static Environment),
}

/// ONNX Runtime's environment, loaded once per process. `runtimes` is Kiln's runtime directory
/// (where its own ONNX Runtime environment is, or is built); with `required`, ONNX Runtime is
/// built there when not found, and its absence is an error rather than `None`.
pub fn environment(
    runtimes: Option<&Path>,
    required: bool,
) -> Result<Option<&'static Environment>, ServeError> {
    static LOOKUP: Mutex<Lookup> = Mutex::new(Lookup::NotTried);
    let mut lookup = LOOKUP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match *lookup {
        Lookup::Loaded(environment) => return Ok(Some(environment)),
        Lookup::Missing if !required => return Ok(None),
        _ => {}
    }
    let missing = |lookup: &mut Lookup, why: String| {
        *lookup = Lookup::Missing;
        match required {
            true => Err(ServeError::Load(why)),
            false => Ok(None),
        }
    };
    if std::env::var("KILN_ONNX_RUNTIME").is_ok_and(|engine| engine == "tract") {
        return missing(
            &mut lookup,
            "ONNX Runtime is turned off in this process (KILN_ONNX_RUNTIME=tract)".into(),
        );
    }
    let library = match (library(runtimes), runtimes) {
        (Some(library), _) => library,
        (None, Some(root)) if required => provide(root)?,
        _ => {
            return missing(
                &mut lookup,
                "no ONNX Runtime library was found (ORT_DYLIB_PATH, Kiln's runtime directory, \
                 python3's onnxruntime)"
                    .into(),
            );
        }
    };
    let loaded = ort::init_from(&library)
        .map_err(|error| error.to_string())
        .and_then(|builder| {
            builder
                .with_name("kiln")
                .build()
                .map_err(|error| error.to_string())
        });
    match loaded {
        Ok(environment) => {
            tracing::info!(library = %library.display(), "ONNX Runtime loaded");
            let environment: &'static Environment = Box::leak(Box::new(environment));
            *lookup = Lookup::Loaded(environment);
            Ok(Some(environment))
        }
        Err(error) => {
            tracing::warn!(library = %library.display(), %error, "ONNX Runtime did not load");
            missing(
                &mut lookup,
                format!(
                    "ONNX Runtime at {} did not load: {error}",
                    library.display()
                ),
            )
        }
    }
}

/// Where an ONNX Runtime shared library already is, if anywhere.
fn library(runtimes: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|path| !path.is_empty()) {
        return Some(path.into());
    }
    let built = runtimes.and_then(|root| {
        crate::python::environment::onnx_runtime(root, false)
            .ok()
            .flatten()
    });
    built
        .and_then(|environment| library_of(&environment.python))
        .or_else(|| library_of(Path::new("python3")))
}

/// Builds Kiln's ONNX Runtime environment under `root` and returns its library.
fn provide(root: &Path) -> Result<PathBuf, ServeError> {
    let unavailable = || ServeError::Load("no runtime version ships ONNX Runtime".into());
    let environment =
        crate::python::environment::onnx_runtime(root, true)?.ok_or_else(unavailable)?;
    library_of(&environment.python).ok_or_else(|| {
        ServeError::Load(format!(
            "the ONNX Runtime environment {} holds no libonnxruntime.so",
            environment.dir.display()
        ))
    })
}

/// The library of the `onnxruntime` package that `interpreter` imports.
fn library_of(interpreter: &Path) -> Option<PathBuf> {
    let output = Command::new(interpreter)
        .args([
            "-c",
            "import os, onnxruntime; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let capi = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    std::fs::read_dir(capi)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libonnxruntime.so"))
        })
}

/// Sessions of one model. ONNX Runtime's `Run` may be called concurrently, but `ort` takes a
/// session mutably, so each concurrent model call takes a session of its own from this pool
/// (it grows to the number of workers, each session one intra-op thread: Kiln's workers are the
/// parallelism).
pub struct OnnxRuntimeEngine {
    environment: &'static Environment,
    model: Model,
    /// The graph's input names, in order, read once from the first session.
    inputs: Vec<String>,
    idle: Mutex<Vec<Session>>,
}

/// What sessions are created from.
enum Model {
    /// The file on disk, as exported (its external data beside it).
    File(PathBuf),
    /// A rewritten graph.
    Bytes(Vec<u8>),
}

impl std::fmt::Debug for OnnxRuntimeEngine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("OnnxRuntimeEngine")
    }
}

impl OnnxRuntimeEngine {
    /// Creates the first session of the model at `path`, or of `rewritten` when the graph was
    /// changed; ONNX Runtime's own refusal (an unknown operator, a bad graph) is the load error.
    pub fn load(
        environment: &'static Environment,
        path: &Path,
        rewritten: Option<Vec<u8>>,
    ) -> Result<Self, ServeError> {
        let model = match rewritten {
            Some(bytes) => Model::Bytes(bytes),
            None => Model::File(path.to_path_buf()),
        };
        let mut engine = Self {
            environment,
            model,
            inputs: Vec::new(),
            idle: Mutex::new(Vec::new()),
        };
        let first = engine.session().map_err(ServeError::Load)?;
        engine.inputs = first
            .inputs()
            .iter()
            .map(|input| input.name().to_string())
            .collect();
        engine.give_back(first);
        Ok(engine)
    }

    fn session(&self) -> Result<Session, String> {
        if let Some(session) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(session);
        }
        let error = |error: ort::Error| error.to_string();
        let mut builder = Session::builder(self.environment)
            .map_err(error)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|error| error.to_string())?
            .with_intra_threads(1)
            .map_err(|error| error.to_string())?
            .with_inter_threads(1)
            .map_err(|error| error.to_string())?;
        match &self.model {
            Model::File(path) => builder.commit_from_file(path),
            Model::Bytes(bytes) => builder.commit_from_memory(bytes),
        }
        .map_err(error)
    }

    fn give_back(&self, session: Session) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(session);
        }
    }
}

impl Backend for OnnxRuntimeEngine {
    fn engine(&self) -> kiln_api::Engine {
        kiln_api::Engine::OnnxRuntime
    }

    fn run(&self, inputs: Vec<Array>) -> Result<Vec<Array>, String> {
        let values = self
            .inputs
            .iter()
            .zip(inputs)
            .map(|(name, array)| Ok((name.as_str(), value(array)?)))
            .collect::<Result<Vec<(&str, DynValue)>, ort::Error>>()
            .map_err(|error| error.to_string())?;
        let mut session = self.session()?;
        let result = session
            .run(values)
            .map_err(|error| error.to_string())
            .and_then(|outputs| {
                (0..outputs.len())
                    .map(|index| array(&outputs[index]).map_err(|error| error.to_string()))
                    .collect()
            });
        self.give_back(session);
        result
    }
}

fn value(array: Array) -> ort::Result<DynValue> {
    let shape = array.shape;
    Ok(match array.data {
        Data::F32(values) => Tensor::from_array((shape, values))?.into_dyn(),
        Data::F64(values) => Tensor::from_array((shape, values))?.into_dyn(),
        Data::I32(values) => Tensor::from_array((shape, values))?.into_dyn(),
        Data::I64(values) => Tensor::from_array((shape, values))?.into_dyn(),
        Data::Bool(values) => Tensor::from_array((shape, values))?.into_dyn(),
        Data::U8(values) => Tensor::from_array((shape, values))?.into_dyn(),
        Data::String(values) => Tensor::from_string_array((shape, values.as_slice()))?.into_dyn(),
    })
}

/// An output as an [`Array`]; a non-tensor output (a sequence or map) is an error.
fn array(value: &DynValue) -> ort::Result<Array> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(ort::Error::new(format!(
            "an output is a {}, not a tensor; export the model with tensor outputs",
            value.dtype()
        )));
    };
    fn copied<T: ort::value::PrimitiveTensorElementType + Clone>(
        value: &DynValue,
    ) -> ort::Result<(Vec<usize>, Vec<T>)> {
        let (shape, data) = value.try_extract_tensor::<T>()?;
        Ok((dims(shape), data.to_vec()))
    }
    let (shape, data) = match ty {
        TensorElementType::Float32 => {
            copied(value).map(|(shape, data)| (shape, Data::F32(data)))?
        }
        TensorElementType::Float64 => {
            copied(value).map(|(shape, data)| (shape, Data::F64(data)))?
        }
        TensorElementType::Int32 => copied(value).map(|(shape, data)| (shape, Data::I32(data)))?,
        TensorElementType::Int64 => copied(value).map(|(shape, data)| (shape, Data::I64(data)))?,
        TensorElementType::Bool => copied(value).map(|(shape, data)| (shape, Data::Bool(data)))?,
        TensorElementType::Uint8 => copied(value).map(|(shape, data)| (shape, Data::U8(data)))?,
        TensorElementType::String => {
            let (shape, data) = value.try_extract_strings()?;
            (dims(shape), Data::String(data))
        }
        other => {
            return Err(ort::Error::new(format!(
                "an output holds {other:?} elements, which Kiln does not return"
            )));
        }
    };
    Ok(Array { shape, data })
}

fn dims(shape: &[i64]) -> Vec<usize> {
    shape
        .iter()
        .map(|dim| usize::try_from(*dim).unwrap_or(0))
        .collect()
}
