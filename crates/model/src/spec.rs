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
#[serde(deny_unknown_fields)]
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
    /// Checks that the fields agree with each other: a binary classifier names two classes, a
    /// multi-class one at least two, a regression none (each class once); only a model with a
    /// deep part has hidden units; `outputs`, when given, are the task's.
    pub fn check(&self) -> Result<(), crate::ModelError> {
        let refuse =
            |why: String| Err(crate::ModelError::Format(format!("kiln_model.json: {why}")));
        let classes = &self.label_vocabulary;
        let distinct: std::collections::BTreeSet<&String> = classes.iter().collect();
        if distinct.len() != classes.len() {
            return refuse(format!("label_vocabulary names a class twice: {classes:?}"));
        }
        match self.task {
            Task::BinaryClassification if classes.len() != 2 => {
                return refuse(format!(
                    "a binary classifier's label_vocabulary must name 2 classes, it names {}",
                    classes.len()
                ));
            }
            Task::MultiClassification if classes.len() < 2 => {
                return refuse(format!(
                    "a multi-class classifier's label_vocabulary must name 2 or more classes, it names {}",
                    classes.len()
                ));
            }
            Task::Regression if !classes.is_empty() => {
                return refuse("a regression model has no label_vocabulary".into());
            }
            _ => {}
        }
        if !self.kind.has_deep() && !self.hidden_units.is_empty() {
            return refuse(format!(
                "hidden_units {:?} are given, but a {:?} model has no deep part",
                self.hidden_units, self.kind
            ));
        }
        if self.hidden_units.contains(&0) {
            return refuse("a hidden layer has 0 units".into());
        }
        if !self.outputs.is_empty() && self.outputs != Self::output_names(self.task) {
            return refuse(format!(
                "outputs {:?} are not the outputs of a {:?} model, {:?}",
                self.outputs,
                self.task,
                Self::output_names(self.task)
            ));
        }
        Ok(())
    }

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
