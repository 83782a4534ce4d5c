//! Converting a framework model to ONNX: `converter.py`, run once, confined, in the runtime's
//! converter environment, writes the ONNX form and a check set (instances with the framework's
//! own predictions for them) that the ONNX form must reproduce before it may serve.

use std::path::Path;

use serde_json::Value;

use super::Frameworks;
use super::environment::{self, Spec};
use super::launch::Launcher;
use crate::ServeError;
use crate::onnx::MODEL_FILE;

/// A model's ONNX form and what it must predict.
pub struct Conversion {
    /// The instances of the check set.
    pub instances: Vec<Value>,
    /// The framework's predictions for them.
    pub predictions: Vec<Value>,
    /// The converter's release, such as `skl2onnx 1.20.0`.
    pub converter: String,
    /// The framework's release, such as `scikit-learn 1.9.1`.
    pub framework: String,
    /// Holds the scratch directory with `model.onnx`, which lives as long as the conversion.
    launcher: Launcher,
}

impl Conversion {
    /// The directory holding `model.onnx`.
    pub fn dir(&self) -> &Path {
        self.launcher.scratch()
    }
}

/// Converts the model in `dir`, served by `spec`'s framework, in `spec`'s converter environment
/// (built if it is not yet).
pub fn to_onnx(dir: &Path, spec: &Spec, frameworks: &Frameworks) -> Result<Conversion, ServeError> {
    let spec = Spec {
        converter: true,
        ..*spec
    };
    let environment = environment::ensure(&frameworks.environments, &spec)?;
    let launcher = Launcher::new(dir, &environment, frameworks, 1)?;
    let out = launcher.scratch();
    let mut command = launcher.command(&[])?;
    command
        .arg(out.join("converter.py"))
        .arg(spec.framework.name())
        .arg(dir)
        .arg(out);
    environment::run(
        &mut command,
        &format!("converting the {} model to ONNX", spec.framework.name()),
    )?;
    let check = out.join("check.json");
    let text = std::fs::read(&check)
        .map_err(|error| ServeError::Load(format!("{}: {error}", check.display())))?;
    let check: Value = serde_json::from_slice(&text)
        .map_err(|error| ServeError::Load(format!("the converter's check set: {error}")))?;
    let list = |key: &str| check[key].as_array().cloned().unwrap_or_default();
    let text = |key: &str| check[key].as_str().unwrap_or_default().to_string();
    if !out.join(MODEL_FILE).is_file() {
        return Err(ServeError::Load("the converter wrote no model.onnx".into()));
    }
    Ok(Conversion {
        instances: list("instances"),
        predictions: list("predictions"),
        converter: text("converter"),
        framework: text("framework"),
        launcher,
    })
}
