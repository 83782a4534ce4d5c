//! The description of a trained model, stored as `kiln_model.json` in an export.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::columns::Columns;

/// The format tag written into every export; loaders refuse anything else.
pub const FORMAT: &str = "kiln.model/v1";

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Two classes; one logit.
    BinaryClassification,
    /// More than two classes; one logit per class.
    MultiClassification,
    /// A real value.
    Regression,
}

/// Which parts of the network the model has, as TensorFlow's canned estimators name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Wide part only (`LinearClassifier` / `LinearRegressor`).
    Linear,
    /// Deep part only (`DNNClassifier` / `DNNRegressor`).
    Dnn,
    /// Both (`DNNLinearCombinedClassifier` / `DNNLinearCombinedRegressor`).
    WideDeep,
}

impl ModelKind {
    /// Whether the model has a wide (linear) part.
    pub fn has_wide(self) -> bool {
        matches!(self, Self::Linear | Self::WideDeep)
    }

    /// Whether the model has a deep (DNN) part.
    pub fn has_deep(self) -> bool {
        matches!(self, Self::Dnn | Self::WideDeep)
    }
}

/// Everything about a model except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Always [`FORMAT`].
    pub format: String,
    /// The built-in algorithm that trained it (for example `wide_deep`).
    pub algorithm: String,
    /// Network shape.
    pub kind: ModelKind,
    /// What it predicts.
    pub task: Task,
    /// Name of the label column in the training data.
    pub label: String,
    /// Class names, index = class id (classification only).
    #[serde(default)]
    pub label_vocabulary: Vec<String>,
    /// Feature columns, with vocabularies and normalisation resolved from the training data.
    pub columns: Columns,
    /// Hidden layer widths of the deep part.
    #[serde(default)]
    pub hidden_units: Vec<usize>,
    /// Names of the prediction outputs, for documentation and clients.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// All columns of the training data in file order (label and unused columns included), so a
    /// CSV line can be served as an instance.
    #[serde(default)]
    pub data_columns: Vec<String>,
    /// Columns of the training data that the model does not use; instances may carry them.
    #[serde(default)]
    pub ignored_inputs: Vec<String>,
    /// Evaluation metrics measured when the model was exported.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

impl ModelSpec {
    /// Number of logits the network produces.
    pub fn n_outputs(&self) -> usize {
        match self.task {
            Task::BinaryClassification | Task::Regression => 1,
            Task::MultiClassification => self.label_vocabulary.len(),
        }
    }

    /// The prediction outputs of a task, as TensorFlow's canned estimators name them.
    pub fn output_names(task: Task) -> Vec<String> {
        let names: &[&str] = match task {
            Task::BinaryClassification => &[
                "classes",
                "class_ids",
                "logits",
                "logistic",
                "probabilities",
            ],
            Task::MultiClassification => &["classes", "class_ids", "logits", "probabilities"],
            Task::Regression => &["predictions"],
        };
        names.iter().map(|name| name.to_string()).collect()
    }
}
