//! Framework models served in their ONNX form: converted once at load ([`python::convert`]),
//! served by the ONNX runtime only if the form reproduces the framework's predictions on the
//! check set (labels and text exactly, numbers to a relative 1e-5 plus an absolute 1e-6, float32's
//! resolution near 1), so a version served this way answers as the framework would, faster.

use serde_json::Value;

use crate::onnx::OnnxRuntime;
use crate::python::convert::{self, Conversion};
use crate::python::{Frameworks, environment::Spec};
use crate::{ModelRuntime, ServeError};

/// Relative difference allowed between a number the framework predicts and the ONNX form's.
const RELATIVE_TOLERANCE: f64 = 1e-5;
/// Absolute difference allowed besides: numbers near zero (a saturated sigmoid's) computed in
/// float32 by two engines differ by more than a relative 1e-5 of themselves.
const ABSOLUTE_TOLERANCE: f64 = 1e-6;

/// A framework model converted to ONNX, served on an ONNX engine.
pub struct ConvertedRuntime {
    onnx: OnnxRuntime,
    /// Keeps the converted file's directory.
    conversion: Conversion,
}

impl ConvertedRuntime {
    /// Converts the model in `dir` with `spec`'s converter, loads the ONNX form on `engine` and
    /// checks it against the framework's predictions.
    pub fn load(
        dir: &std::path::Path,
        spec: &Spec,
        engine: kiln_api::Engine,
        frameworks: &Frameworks,
    ) -> Result<Self, ServeError> {
        let conversion = convert::to_onnx(dir, spec, frameworks)?;
        let onnx = OnnxRuntime::load(conversion.dir(), engine, Some(&frameworks.environments))?;
        let refused = |why: String| {
            ServeError::Load(format!(
                "the ONNX form of the {} model (made by {}) does not predict as {} does: {why}; \
                 serve it with engine FRAMEWORK",
                spec.framework.name(),
                conversion.converter,
                conversion.framework
            ))
        };
        let predicted = onnx
            .predict(&conversion.instances)
            .map_err(|error| refused(format!("it fails on the check set: {error}")))?;
        if predicted.len() != conversion.predictions.len() {
            return Err(refused(format!(
                "{} predictions for {} check instances",
                predicted.len(),
                conversion.predictions.len()
            )));
        }
        if let Some((index, (framework, converted))) = conversion
            .predictions
            .iter()
            .zip(&predicted)
            .enumerate()
            .find(|(_, (framework, converted))| !same(framework, converted))
        {
            return Err(refused(format!(
                "check instance {index}: {framework} against {converted}"
            )));
        }
        Ok(Self { onnx, conversion })
    }
}

/// Whether two predictions agree: numbers to [`RELATIVE_TOLERANCE`] and [`ABSOLUTE_TOLERANCE`],
/// all else exactly.
fn same(framework: &Value, converted: &Value) -> bool {
    match (framework, converted) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            (a - b).abs() <= RELATIVE_TOLERANCE * a.abs().max(b.abs()) + ABSOLUTE_TOLERANCE
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| same(a, b)))
        }
        (a, b) => a == b,
    }
}

impl ModelRuntime for ConvertedRuntime {
    fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError> {
        self.onnx.predict(instances)
    }

    fn predict_json(&self, instances: &[&str]) -> Result<Vec<Value>, ServeError> {
        self.onnx.predict_json(instances)
    }

    fn signature(&self) -> crate::signature::Signature {
        self.onnx.signature()
    }

    fn engine(&self) -> kiln_api::Engine {
        self.onnx.engine()
    }

    fn tensors(&self) -> Option<&dyn crate::TensorRuntime> {
        self.onnx.tensors()
    }

    fn engine_description(&self) -> String {
        format!(
            "{} ({} from {})",
            self.onnx.engine_description(),
            self.conversion.converter,
            self.conversion.framework
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_agree_to_the_tolerance_and_all_else_exactly() {
        let value = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert!(same(&value("[1, 0.5]"), &value("[1.0, 0.500001]")));
        assert!(!same(&value("0.5"), &value("0.5001")));
        assert!(same(&value("0"), &value("1e-12")));
        assert!(same(&value("2.26e-8"), &value("5.96e-8")));
        assert!(!same(&value("0.001"), &value("0.0011")));
        assert!(!same(&value("\"cat\""), &value("\"dog\"")));
        assert!(!same(&value("[1, 2]"), &value("[1]")));
        assert!(same(&value(r#"{"a": [1]}"#), &value(r#"{"a": [1.0]}"#)));
        assert!(!same(&value(r#"{"a": 1}"#), &value(r#"{"b": 1}"#)));
    }
}
