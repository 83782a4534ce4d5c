//! Runtime versions: which framework versions a version's `runtimeVersion` installs.
//!
//! As on ML Engine, a runtime version names a set of framework releases and the Python versions
//! they are built for. Kiln's own models and ONNX models do not depend on it; TensorFlow,
//! scikit-learn and XGBoost models are served in an environment with exactly these releases
//! ([`super::environment`]).

/// One runtime version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeVersion {
    /// The `runtimeVersion` value.
    pub name: &'static str,
    /// The `pythonVersion` values it takes, the default first.
    pub python: &'static [&'static str],
    /// The TensorFlow release.
    pub tensorflow: &'static str,
    /// The scikit-learn release.
    pub scikit_learn: &'static str,
    /// The XGBoost release.
    pub xgboost: &'static str,
    /// The ONNX releases that convert its framework models and run them, where it has them.
    pub onnx: Option<OnnxReleases>,
}

/// The releases that turn a runtime version's framework models into ONNX and run them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnnxReleases {
    /// ONNX itself, which the converters build graphs with.
    pub onnx: &'static str,
    /// scikit-learn's converter.
    pub skl2onnx: &'static str,
    /// XGBoost's converter.
    pub onnxmltools: &'static str,
    /// TensorFlow's converter.
    pub tf2onnx: &'static str,
    /// ONNX Runtime, whose shared library Kiln loads.
    pub onnxruntime: &'static str,
}

/// Every runtime version Kiln knows, oldest first. The last is the default.
pub const RUNTIME_VERSIONS: &[RuntimeVersion] = &[
    RuntimeVersion {
        name: "1.15",
        python: &["3.7"],
        tensorflow: "1.15.5",
        scikit_learn: "0.20.4",
        xgboost: "0.90",
        onnx: None,
    },
    RuntimeVersion {
        name: "2.11",
        python: &["3.7"],
        tensorflow: "2.11.0",
        scikit_learn: "1.0.2",
        xgboost: "1.6.2",
        onnx: None,
    },
    RuntimeVersion {
        name: "2.21",
        python: &["3.11"],
        tensorflow: "2.21.0",
        scikit_learn: "1.9.1",
        xgboost: "3.2.0",
        onnx: Some(OnnxReleases {
            onnx: "1.23.2",
            skl2onnx: "1.20.0",
            onnxmltools: "1.16.0",
            tf2onnx: "1.17.0",
            onnxruntime: "1.32.0",
        }),
    },
];

/// The framework of a model served in Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PythonFramework {
    /// A SavedModel.
    TensorFlow,
    /// A pickled estimator or pipeline.
    ScikitLearn,
    /// A booster file, or a pickled booster or estimator.
    XgBoost,
    /// A custom prediction routine: the user's Predictor class, with every framework at hand.
    Custom,
}

impl PythonFramework {
    /// The Python framework a detected model is served by (`None`: Kiln's own or ONNX).
    pub fn of(detected: crate::DetectedFramework) -> Option<Self> {
        match detected {
            crate::DetectedFramework::TensorFlow => Some(PythonFramework::TensorFlow),
            crate::DetectedFramework::ScikitLearn => Some(PythonFramework::ScikitLearn),
            crate::DetectedFramework::XgBoost => Some(PythonFramework::XgBoost),
            crate::DetectedFramework::Kiln | crate::DetectedFramework::Onnx => None,
        }
    }

    /// The API's spelling, as the worker takes it.
    pub fn name(self) -> &'static str {
        match self {
            PythonFramework::TensorFlow => "TENSORFLOW",
            PythonFramework::ScikitLearn => "SCIKIT_LEARN",
            PythonFramework::XgBoost => "XGBOOST",
            PythonFramework::Custom => "CUSTOM",
        }
    }

    /// The name of the environment it is served in, in a file name.
    pub fn slug(self) -> &'static str {
        match self {
            PythonFramework::TensorFlow => "tensorflow",
            PythonFramework::ScikitLearn => "scikit-learn",
            PythonFramework::XgBoost => "xgboost",
            PythonFramework::Custom => "custom",
        }
    }
}

impl RuntimeVersion {
    /// The pip requirements that serve `framework` (XGBoost's estimators pickle scikit-learn's
    /// base classes, so XGBoost gets scikit-learn too; a custom routine may use any of them).
    pub fn requirements(&self, framework: PythonFramework) -> Vec<String> {
        let tensorflow = format!("tensorflow=={}", self.tensorflow);
        let scikit_learn = format!("scikit-learn=={}", self.scikit_learn);
        let xgboost = format!("xgboost=={}", self.xgboost);
        match framework {
            PythonFramework::TensorFlow => vec![tensorflow],
            PythonFramework::ScikitLearn => vec![scikit_learn],
            PythonFramework::XgBoost => vec![xgboost, scikit_learn],
            PythonFramework::Custom => vec![tensorflow, scikit_learn, xgboost],
        }
    }

    /// The pip requirements that convert `framework`'s models to ONNX: the framework's own, its
    /// converter and ONNX; `None` where this runtime version has no converter for it.
    pub fn converter_requirements(&self, framework: PythonFramework) -> Option<Vec<String>> {
        let releases = self.onnx?;
        let converter = match framework {
            PythonFramework::TensorFlow => format!("tf2onnx=={}", releases.tf2onnx),
            PythonFramework::ScikitLearn => format!("skl2onnx=={}", releases.skl2onnx),
            PythonFramework::XgBoost => format!("onnxmltools=={}", releases.onnxmltools),
            PythonFramework::Custom => return None,
        };
        let mut requirements = self.requirements(framework);
        requirements.extend([converter, format!("onnx=={}", releases.onnx)]);
        Some(requirements)
    }
}

/// The default runtime version.
pub fn latest() -> &'static RuntimeVersion {
    &RUNTIME_VERSIONS[RUNTIME_VERSIONS.len() - 1]
}

/// The environment that serves `framework` on the runtime and Python versions given (empty: the
/// defaults), or why there is none, naming the field (in the message `object`).
pub fn spec(
    object: &str,
    runtime_version: &str,
    python_version: &str,
    framework: PythonFramework,
) -> Result<super::environment::Spec, String> {
    let (runtime, python) = select(object, runtime_version, python_version)?;
    Ok(super::environment::Spec {
        runtime,
        python,
        framework,
        converter: false,
    })
}

/// The runtime version and Python version asked for (empty: the defaults), or why they cannot be
/// served, naming the fields of `object` (`version`, `prediction_input`) and the values there are.
pub fn select(
    object: &str,
    runtime_version: &str,
    python_version: &str,
) -> Result<(&'static RuntimeVersion, &'static str), String> {
    let runtime = match runtime_version.trim() {
        "" => latest(),
        given => RUNTIME_VERSIONS
            .iter()
            .find(|runtime| runtime.name == given)
            .ok_or_else(|| {
                format!(
                    "Field: {object}.runtime_version Error: unknown runtime version {given:?}; \
                     the runtime versions are {}",
                    RUNTIME_VERSIONS
                        .iter()
                        .map(|runtime| runtime.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
    };
    let python = match python_version.trim() {
        "" => runtime.python[0],
        given => runtime
            .python
            .iter()
            .copied()
            .find(|python| *python == given)
            .ok_or_else(|| {
                format!(
                    "Field: {object}.python_version Error: runtime version {} takes Python {}, \
                     not {given:?}",
                    runtime.name,
                    runtime.python.join(", ")
                )
            })?,
    };
    Ok((runtime, python))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_the_default_or_names_what_there_is() {
        assert_eq!(
            select("version", "", "").unwrap(),
            (latest(), latest().python[0])
        );
        let (runtime, python) = select("version", "2.11", "3.7").unwrap();
        assert_eq!((runtime.scikit_learn, python), ("1.0.2", "3.7"));
        let error = select("version", "9.9", "").unwrap_err();
        assert!(
            error.contains("version.runtime_version") && error.contains("1.15, 2.11, 2.21"),
            "{error}"
        );
        let error = select("prediction_input", "2.11", "3.11").unwrap_err();
        assert!(
            error.contains("prediction_input.python_version") && error.contains("3.7"),
            "{error}"
        );
        assert_eq!(
            latest().requirements(PythonFramework::XgBoost),
            ["xgboost==3.2.0", "scikit-learn==1.9.1"]
        );
    }
}
