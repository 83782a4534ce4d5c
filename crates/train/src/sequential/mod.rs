//! The `sequential` built-in algorithm: a Keras-style model definition (input, layers,
//! optimizer; JSON or YAML) trained on images, text or vectors.
//!
//! ```yaml
//! input: {type: image, height: 28, width: 28, scale: 0.00392156862745098}
//! layers:
//!   - {type: Conv2D, filters: 32, kernel_size: 3, activation: relu}
//!   - {type: MaxPool2D, pool_size: 2}
//!   - {type: Flatten}
//!   - {type: Dense, units: 10, activation: softmax}
//! optimizer: {type: Adadelta, learning_rate: 1.0}
//! ```
//!
//! The run reads the examples ([`data`]), fits a text input's tokenizer on the training texts,
//! checks the layers against the input and the labels, encodes every example once, and trains
//! through the shared epoch loop. Checkpoints hold the model and the optimizer's state, so a
//! resumed run continues with the same moments.

pub mod data;
pub mod optimizer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use kiln_model::sequential::{
    InputSpec, LayerSpec, Network, SEQUENTIAL_FORMAT, SequentialModel, SequentialSpec, forward,
};
use kiln_model::{Prediction, Task};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::accelerator::Accelerator;
use crate::epochs::{
    self, Batches, Finished, Schedule, Trainee, latest_checkpoint, load_optimizer, renumber,
    save_optimizer, shuffled_indices,
};
use crate::metrics::evaluate;
use crate::telemetry::Telemetry;
use crate::trainer::{EarlyStopping, TrainOutcome, loss};
use data::{Examples, Raw, Source};
use optimizer::OptimizerSpec;

/// A model definition file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The input and its preprocessing.
    pub input: InputSpec,
    /// The layers.
    pub layers: Vec<LayerSpec>,
    /// The optimizer; Adam when absent.
    #[serde(default)]
    pub optimizer: OptimizerSpec,
}

impl Definition {
    /// Reads a definition from a JSON or YAML file.
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_norway::from_str(&text).map_err(|error| {
            TrainError::Config(format!("model definition {}: {error}", path.display()))
        })
    }
}

/// Everything a Sequential training run needs.
#[derive(Debug, Clone)]
pub struct SequentialConfig {
    /// The model.
    pub definition: Definition,
    /// Training examples.
    pub train: Source,
    /// Evaluation examples; when absent, 10% of the training examples are held out.
    pub eval: Option<Source>,
    /// The classes to keep, in label-id order; examples of other classes are skipped. When empty,
    /// every label is a class, sorted (numerically when all are integers).
    pub classes: Vec<String>,
    /// Examples per step.
    pub batch_size: usize,
    /// Passes over the training data.
    pub num_epochs: usize,
    /// Stop after this many steps.
    pub max_steps: Option<usize>,
    /// Seed of initialisation, dropout and shuffles.
    pub seed: u64,
    /// Output directory: checkpoints, event files, export.
    pub job_dir: PathBuf,
    /// A progress line every this many steps.
    pub log_every: usize,
    /// The tuning trial's hypertune file.
    pub metric_file: Option<PathBuf>,
    /// When to stop early.
    pub early_stopping: Option<EarlyStopping>,
    /// Continue from the newest checkpoint.
    pub resume: bool,
    /// Where to train.
    pub accelerator: Accelerator,
}

/// Trains a Sequential model as `config` says and exports it to `<job dir>/model`.
pub fn train(
    config: &SequentialConfig,
    log: &mut dyn FnMut(&str),
) -> Result<TrainOutcome, TrainError> {
    if config.batch_size == 0 || config.num_epochs == 0 || config.log_every == 0 {
        return Err(TrainError::Config(
            "batch_size, num_epochs and log_every must be positive".into(),
        ));
    }
    let mut train_data = keep_classes(config.train.read()?, &config.classes);
    let eval_data = match &config.eval {
        Some(source) => keep_classes(source.read()?, &config.classes),
        None => hold_out(&mut train_data, config.seed),
    };
    if train_data.inputs.is_empty() || eval_data.inputs.is_empty() {
        return Err(TrainError::Data(
            "no training or no evaluation examples (of the --classes asked for)".into(),
        ));
    }
    let mut input = config.definition.input.clone();
    if let InputSpec::Text { tokenizer, .. } = &mut input {
        tokenizer.fit(train_data.inputs.iter().filter_map(|raw| match raw {
            Raw::Text(text) => Some(text.as_str()),
            Raw::Values(_) => None,
        }));
    }
    let layers = &config.definition.layers;
    let (task, _) = SequentialSpec::check(&input, layers, None).map_err(TrainError::Config)?;
    let vocabulary = match task {
        Task::Regression => Vec::new(),
        _ if !config.classes.is_empty() => config.classes.clone(),
        _ => classes_of(&train_data.labels),
    };
    let classes = (task != Task::Regression).then_some(vocabulary.len());
    let (_, shapes) = SequentialSpec::check(&input, layers, classes).map_err(TrainError::Config)?;
    let train_set = Encoded::new(&input, &train_data, task, &vocabulary, "training")?;
    let eval_set = Encoded::new(&input, &eval_data, task, &vocabulary, "evaluation")?;
    log(&format!(
        "sequential: {} training and {} evaluation examples, input {}, {} layers, task {task:?}",
        train_set.labels.len(),
        eval_set.labels.len(),
        input.shape(),
        layers.len()
    ));
    let spec = SequentialSpec {
        format: SEQUENTIAL_FORMAT.into(),
        algorithm: "sequential".into(),
        input,
        layers: layers.clone(),
        task,
        label_vocabulary: vocabulary,
        metrics: BTreeMap::new(),
    };

    let device = config.accelerator.training_device()?;
    device.seed(config.seed);
    let checkpoints = config.job_dir.join("checkpoints");
    let optimizer_spec = &config.definition.optimizer;
    let fresh = || {
        let network = Network::init(
            spec.input.shape(),
            &spec.layers,
            &shapes,
            spec.input.vocabulary(),
            &device,
        );
        (renumber(network), optimizer_spec.init(), None)
    };
    let (network, optimizer, resumed) = match config.resume.then(|| latest_checkpoint(&checkpoints))
    {
        Some(Some(checkpoint)) => {
            let (network, optimizer) =
                resume(&checkpoint.dir, &spec, optimizer_spec.init(), &device)?;
            log(&format!(
                "resuming from {} after epoch {}",
                checkpoint.dir.display(),
                checkpoint.epoch
            ));
            (network, optimizer, Some(checkpoint))
        }
        Some(None) => {
            log("no checkpoint to resume from: starting afresh");
            fresh()
        }
        None => fresh(),
    };
    let mut telemetry = Telemetry::create(&config.job_dir, config.metric_file.clone())?;
    let steps_per_epoch = train_set.labels.len().div_ceil(config.batch_size);
    let schedule = Schedule {
        num_epochs: config.num_epochs,
        max_steps: config.max_steps,
        resumed,
        log_every: config.log_every,
        early_stopping: config.early_stopping.as_ref(),
        checkpoints,
    };
    let mut run = Run {
        spec,
        network,
        optimizer,
        learning_rate: optimizer_spec.learning_rate(),
        batch_size: config.batch_size,
        seed: config.seed,
        train: train_set,
        eval: eval_set,
        device,
    };
    let Finished {
        mut model,
        metrics,
        steps,
        examples_per_second,
    } = epochs::run(&mut run, &schedule, &mut telemetry, log)?;
    model.spec.metrics = metrics.clone();
    let export_dir = config.job_dir.join("model");
    model.save(&export_dir)?;
    log(&format!(
        "exported to {} after {steps} steps ({steps_per_epoch} steps/epoch, {examples_per_second:.0} examples/s)",
        export_dir.display()
    ));
    Ok(TrainOutcome {
        export_dir,
        metrics,
        steps,
        examples_per_second,
        eval_rows: run.eval.labels.len(),
    })
}

/// Drops the examples whose label is not one of `classes` (none when `classes` is empty).
fn keep_classes(examples: Examples, classes: &[String]) -> Examples {
    if classes.is_empty() {
        return examples;
    }
    let (inputs, labels) = examples
        .inputs
        .into_iter()
        .zip(examples.labels)
        .filter(|(_, label)| classes.contains(label))
        .unzip();
    Examples { inputs, labels }
}

/// Moves a seeded 10% of `train` into an evaluation set.
fn hold_out(train: &mut Examples, seed: u64) -> Examples {
    let mut order: Vec<usize> = (0..train.inputs.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let held = (order.len() / 10).max(1).min(order.len());
    let mut eval_rows: Vec<usize> = order[..held].to_vec();
    eval_rows.sort_unstable_by(|a, b| b.cmp(a));
    let mut eval = Examples::default();
    for row in eval_rows {
        eval.inputs.push(train.inputs.swap_remove(row));
        eval.labels.push(train.labels.swap_remove(row));
    }
    eval
}

/// The distinct labels, sorted as numbers when all are integers, else as text.
fn classes_of(labels: &[String]) -> Vec<String> {
    let mut classes: Vec<String> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    if classes.iter().all(|class| class.parse::<i64>().is_ok()) {
        classes.sort_by_key(|class| class.parse::<i64>().unwrap_or_default());
    }
    classes
}

/// Examples encoded for the network: one row of `width` values each, and numeric labels.
#[derive(Debug)]
struct Encoded {
    width: usize,
    values: Vec<f32>,
    labels: Vec<f32>,
}

impl Encoded {
    fn new(
        input: &InputSpec,
        examples: &Examples,
        task: Task,
        vocabulary: &[String],
        what: &str,
    ) -> Result<Self, TrainError> {
        let width = input.width();
        let mut values = Vec::with_capacity(examples.inputs.len() * width);
        for (index, raw) in examples.inputs.iter().enumerate() {
            match raw {
                Raw::Values(numbers) => input.encode_values(numbers, &mut values),
                Raw::Text(text) => input.encode_text(text, &mut values),
            }
            .map_err(|message| {
                TrainError::Data(format!("{what} example {}: {message}", index + 1))
            })?;
        }
        let labels = examples
            .labels
            .iter()
            .enumerate()
            .map(|(index, label)| match task {
                Task::Regression => label.parse::<f32>().map_err(|_| {
                    format!(
                        "{what} example {}: the label {label:?} is not a number",
                        index + 1
                    )
                }),
                _ => vocabulary
                    .iter()
                    .position(|class| class == label)
                    .map(|id| id as f32)
                    .ok_or_else(|| {
                        format!("{what} example {}: unknown class {label:?}", index + 1)
                    }),
            })
            .collect::<Result<_, _>>()
            .map_err(TrainError::Data)?;
        Ok(Self {
            width,
            values,
            labels,
        })
    }

    /// The rows at `indices`, back to back.
    fn rows(&self, indices: impl Iterator<Item = usize>) -> Vec<f32> {
        let mut values = Vec::new();
        for index in indices {
            values.extend_from_slice(&self.values[index * self.width..(index + 1) * self.width]);
        }
        values
    }
}

/// The network and optimizer state of the checkpoint in `dir`, which must be of this model.
fn resume(
    dir: &Path,
    spec: &SequentialSpec,
    optimizer: ModuleOptimizer,
    device: &Device,
) -> Result<(Network, ModuleOptimizer), TrainError> {
    let saved = SequentialModel::load(dir, device)?;
    if saved.spec.layers != spec.layers || saved.spec.input != spec.input {
        return Err(TrainError::Config(format!(
            "the checkpoint {} is of another model (input or layers differ): resume with the \
             definition and data it was trained with, or use a new --job-dir",
            dir.display()
        )));
    }
    Ok((renumber(saved.network), load_optimizer(optimizer, dir)?))
}

/// A Sequential training run.
struct Run {
    spec: SequentialSpec,
    network: Network,
    optimizer: ModuleOptimizer,
    learning_rate: f64,
    batch_size: usize,
    seed: u64,
    train: Encoded,
    eval: Encoded,
    device: Device,
}

impl Trainee for Run {
    type Model = SequentialModel;
    type Batch = Vec<usize>;

    fn batches(&self, epoch: usize) -> Batches<Vec<usize>> {
        let order = shuffled_indices(self.train.labels.len(), self.batch_size, self.seed, epoch);
        Box::new(order.into_iter().map(Ok))
    }

    fn batch_len(batch: &Vec<usize>) -> usize {
        batch.len()
    }

    fn step(&mut self, batch: Vec<usize>) -> Result<f32, TrainError> {
        let values = self.train.rows(batch.iter().copied());
        let labels: Vec<f32> = batch.iter().map(|&i| self.train.labels[i]).collect();
        let input = SequentialModel::batch(&self.spec.input, values, batch.len(), &self.device);
        let logits = forward(&self.network, &self.spec.layers, input, true);
        let loss = loss(self.spec.task, logits, &labels, &self.device);
        let gradients = loss.backward();
        let value = loss.into_scalar::<f32>();
        let gradients = GradientsParams::from_grads(gradients, &self.network);
        self.network = self
            .optimizer
            .step(self.learning_rate, self.network.clone(), gradients);
        Ok(value)
    }

    fn snapshot(&self) -> Result<SequentialModel, TrainError> {
        Ok(SequentialModel {
            spec: self.spec.clone(),
            network: self.network.valid().to_device(&Device::flex()),
            device: Device::flex(),
        })
    }

    fn evaluate(&mut self, model: &SequentialModel) -> Result<BTreeMap<String, f64>, TrainError> {
        let rows = self.eval.labels.len();
        let predictions: Vec<Prediction> = (0..rows)
            .step_by(1000)
            .flat_map(|start| {
                let end = (start + 1000).min(rows);
                model.predict(self.eval.rows(start..end), end - start)
            })
            .collect();
        Ok(evaluate(&predictions, &self.eval.labels))
    }

    fn checkpoint(&self, model: &SequentialModel, dir: &Path) -> Result<(), TrainError> {
        model.save(dir)?;
        save_optimizer(&self.optimizer, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_sort_as_numbers_when_they_are() {
        let labels = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            classes_of(&labels(&["10", "9", "2", "9"])),
            ["2", "9", "10"]
        );
        assert_eq!(classes_of(&labels(&["b", "a", "10"])), ["10", "a", "b"]);
    }
}
