//! Framework detection by file names (ML Engine's `prediction_utils.detect_framework`).

use std::path::Path;

use kiln_api::model::Framework;

use crate::ServeError;

/// The framework a model directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectedFramework {
    /// `kiln_model.json`.
    Kiln,
    /// `model.onnx`, from any framework that exports ONNX.
    Onnx,
    /// `saved_model.pb` or `saved_model.pbtxt`.
    TensorFlow,
    /// `model.joblib` or `model.pkl`.
    ScikitLearn,
    /// `model.bst`, `model.json` or `model.ubj`.
    XgBoost,
}

impl DetectedFramework {
    /// The API's spelling.
    pub fn name(self) -> &'static str {
        self.framework().name()
    }
}

impl DetectedFramework {
    /// The API's framework of these files.
    pub fn framework(self) -> Framework {
        match self {
            DetectedFramework::Kiln => Framework::Kiln,
            DetectedFramework::Onnx => Framework::Onnx,
            DetectedFramework::TensorFlow => Framework::Tensorflow,
            DetectedFramework::ScikitLearn => Framework::ScikitLearn,
            DetectedFramework::XgBoost => Framework::Xgboost,
        }
    }
}

/// The framework a version whose files hold `detected` is served as, and the loader that serves
/// it, given the framework the version names (`FrameworkUnspecified`: the files decide); `None`
/// when the name contradicts the files. A pickle named `XGBOOST` is read by XGBoost, and an ONNX
/// file may be named by the framework it was exported from.
pub fn served_as(
    detected: DetectedFramework,
    named: Framework,
) -> Option<(Framework, DetectedFramework)> {
    match (detected, named) {
        (_, Framework::FrameworkUnspecified) => Some((detected.framework(), detected)),
        (DetectedFramework::ScikitLearn, Framework::Xgboost) => {
            Some((named, DetectedFramework::XgBoost))
        }
        (DetectedFramework::Onnx, Framework::ScikitLearn | Framework::Xgboost) => {
            Some((named, detected))
        }
        _ => (named == detected.framework()).then_some((named, detected)),
    }
}

/// Detects the framework from the files directly in `dir`.
pub fn detect(dir: &Path) -> Result<DetectedFramework, ServeError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| ServeError::Load(format!("{}: {error}", dir.display())))?;
    let names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let has = |name: &str| names.iter().any(|file| file == name);
    let mut found = Vec::new();
    if has(kiln_model::EXPORT_FILE) {
        found.push(DetectedFramework::Kiln);
    }
    if has(crate::onnx::MODEL_FILE) {
        found.push(DetectedFramework::Onnx);
    }
    if has("saved_model.pb") || has("saved_model.pbtxt") {
        found.push(DetectedFramework::TensorFlow);
    }
    if has("model.joblib") || has("model.pkl") {
        found.push(DetectedFramework::ScikitLearn);
    }
    if has("model.bst") || has("model.json") || has("model.ubj") {
        found.push(DetectedFramework::XgBoost);
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(ServeError::Unsupported(format!(
            "no model file found in the deployment directory (looked for {}, {}, \
             saved_model.pb, model.joblib, model.pkl, model.bst, model.json, model.ubj; found {})",
            kiln_model::EXPORT_FILE,
            crate::onnx::MODEL_FILE,
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            }
        ))),
        many => Err(ServeError::Unsupported(format!(
            "the deployment directory holds files of several frameworks ({}); keep one",
            many.iter()
                .map(|framework| framework.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_files(files: &[&str]) -> Result<DetectedFramework, ServeError> {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            std::fs::write(dir.path().join(file), b"").unwrap();
        }
        detect(dir.path())
    }

    #[test]
    fn a_named_framework_chooses_the_loader_the_files_allow() {
        use DetectedFramework::*;
        assert_eq!(
            served_as(ScikitLearn, Framework::Xgboost),
            Some((Framework::Xgboost, XgBoost))
        );
        assert_eq!(
            served_as(Onnx, Framework::ScikitLearn),
            Some((Framework::ScikitLearn, Onnx))
        );
        assert_eq!(
            served_as(Kiln, Framework::FrameworkUnspecified),
            Some((Framework::Kiln, Kiln))
        );
        assert_eq!(served_as(TensorFlow, Framework::ScikitLearn), None);
    }

    #[test]
    fn detects_by_file_name() {
        assert_eq!(
            detect_files(&["kiln_model.json", "weights.safetensors"]).unwrap(),
            DetectedFramework::Kiln
        );
        assert_eq!(
            detect_files(&["saved_model.pb"]).unwrap(),
            DetectedFramework::TensorFlow
        );
        assert_eq!(
            detect_files(&["model.onnx"]).unwrap(),
            DetectedFramework::Onnx
        );
        assert_eq!(
            detect_files(&["model.joblib"]).unwrap(),
            DetectedFramework::ScikitLearn
        );
        let error = detect_files(&["notes.txt"]).unwrap_err().to_string();
        assert!(
            error.contains("no model file found") && error.contains("notes.txt"),
            "{error}"
        );
        let error = detect_files(&["model.bst", "model.pkl"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("several frameworks"), "{error}");
    }
}
