//! Batch inference: encoded examples in, one [`Prediction`] per example out.

use burn::Tensor;
use burn::tensor::activation::{sigmoid, softmax};

use crate::columns::Encoded;
use crate::network::{Model, forward};
use crate::spec::Task;

/// One example's prediction, with the outputs TensorFlow's canned estimators produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Binary classifier output.
    Binary {
        /// The single logit.
        logit: f32,
        /// Probability of class 1 (`logistic`).
        probability: f32,
        /// Predicted class id.
        class_id: usize,
        /// Predicted class name.
        class: String,
    },
    /// Multi-class classifier output.
    MultiClass {
        /// One logit per class.
        logits: Vec<f32>,
        /// Softmax of the logits.
        probabilities: Vec<f32>,
        /// Predicted class id.
        class_id: usize,
        /// Predicted class name.
        class: String,
    },
    /// Regressor output.
    Regression {
        /// The predicted value.
        value: f32,
    },
}

impl Prediction {
    /// Whether every number in it is finite: a NaN or an infinity means the weights hold one, or
    /// the input drove the network past `f32`'s range, and no class or value can be trusted.
    pub fn is_finite(&self) -> bool {
        match self {
            Prediction::Binary {
                logit, probability, ..
            } => logit.is_finite() && probability.is_finite(),
            Prediction::MultiClass {
                logits,
                probabilities,
                ..
            } => logits
                .iter()
                .chain(probabilities)
                .all(|value| value.is_finite()),
            Prediction::Regression { value } => value.is_finite(),
        }
    }
}

/// Runs the model on a batch of encoded examples.
pub fn predict(model: &Model, batch: &[Encoded]) -> Vec<Prediction> {
    if batch.is_empty() {
        return Vec::new();
    }
    let logits = forward(&model.dense, &model.leaves(batch));
    from_logits(model.spec.task, &model.spec.label_vocabulary, logits)
}

/// The predictions a task makes from a batch's logits `[batch, n_outputs]`; `vocabulary` names
/// the classes.
pub fn from_logits(task: Task, vocabulary: &[String], logits: Tensor<2>) -> Vec<Prediction> {
    let [_, n_outputs] = logits.dims();
    let class_name = |id: usize| {
        vocabulary
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    match task {
        Task::Regression => values(logits)
            .into_iter()
            .map(|value| Prediction::Regression { value })
            .collect(),
        Task::BinaryClassification => {
            let probabilities = values(sigmoid(logits.clone()));
            values(logits)
                .into_iter()
                .zip(probabilities)
                .map(|(logit, probability)| {
                    let class_id = usize::from(probability > 0.5);
                    Prediction::Binary {
                        logit,
                        probability,
                        class_id,
                        class: class_name(class_id),
                    }
                })
                .collect()
        }
        Task::MultiClassification => {
            let probabilities = values(softmax(logits.clone(), 1));
            values(logits)
                .chunks(n_outputs)
                .zip(probabilities.chunks(n_outputs))
                .map(|(logits, probabilities)| {
                    let class_id = argmax(probabilities);
                    Prediction::MultiClass {
                        logits: logits.to_vec(),
                        probabilities: probabilities.to_vec(),
                        class_id,
                        class: class_name(class_id),
                    }
                })
                .collect()
        }
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (index, value) in values.iter().enumerate() {
        if *value > values[best] {
            best = index;
        }
    }
    best
}

fn values<const D: usize>(tensor: burn::Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .try_into_vec::<f32>()
        .expect("logits are f32. This is a bug.")
}
