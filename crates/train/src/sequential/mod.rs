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
//! The run surveys the training examples once ([`data`], [`examples`]): it counts them, collects
//! their labels and fits a text input's tokenizer. It checks the layers against the input and the
//! labels, then trains through the shared epoch loop on the examples encoded once and held in
//! memory, or, for files larger than memory, read again each epoch through a shuffle buffer.
//! Checkpoints hold the model and the optimizer's state, so a resumed run continues with the same
//! moments.

pub mod data;
mod examples;
pub mod optimizer;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use kiln_model::sequential::{
    InputSpec, LayerSpec, Network, SEQUENTIAL_FORMAT, SequentialModel, SequentialSpec, forward,
};
use kiln_model::{Prediction, Task};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::accelerator::Accelerator;
use crate::epochs::{
    self, Batches, Finished, Schedule, Trainee, epoch_seed, latest_checkpoint, load_optimizer,
    renumber, save_optimizer, shuffled_indices,
};
use crate::metrics::evaluate;
use crate::stream::{self, Split};
use crate::telemetry::Telemetry;
use crate::trainer::{EarlyStopping, TrainOutcome, loss};
use data::Source;
use examples::{Encoder, Examples, MAX_LABELS, Reader};
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
    /// Evaluation examples; when absent, every tenth training example is held out.
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
    /// Stream the examples from their files each epoch (`Some(true)`) or hold them in memory
    /// (`Some(false)`); `None` streams files over [`IN_MEMORY_BYTES`](crate::stream::IN_MEMORY_BYTES).
    pub streaming: Option<bool>,
    /// Examples in the shuffle buffer of a streamed run.
    pub shuffle_buffer: usize,
}

/// Trains a Sequential model as `config` says and exports it to `<job dir>/model`.
pub fn train(
    config: &SequentialConfig,
    log: &mut dyn FnMut(&str),
) -> Result<TrainOutcome, TrainError> {
    if config.batch_size == 0
        || config.num_epochs == 0
        || config.log_every == 0
        || config.shuffle_buffer == 0
    {
        return Err(TrainError::Config(
            "batch_size, num_epochs, log_every and shuffle_buffer must be positive".into(),
        ));
    }
    let (train_split, eval_source, eval_split) = match &config.eval {
        Some(source) => (Split::All, source, Split::All),
        None => (Split::Training, &config.train, Split::HeldOut),
    };
    let survey = examples::survey(
        &config.train,
        train_split,
        &config.definition.input,
        &config.classes,
    )?;
    if survey.examples == 0 {
        return Err(TrainError::Data(
            "no training examples (of the --classes asked for)".into(),
        ));
    }
    let mut input = config.definition.input.clone();
    if let InputSpec::Text { tokenizer, .. } = &mut input {
        tokenizer.fit_counts(survey.words);
    }
    let layers = &config.definition.layers;
    let (task, _) = SequentialSpec::check(&input, layers, None).map_err(TrainError::Config)?;
    let vocabulary = match (task, survey.labels) {
        (Task::Regression, _) => Vec::new(),
        _ if !config.classes.is_empty() => config.classes.clone(),
        (_, Some(labels)) => classes_of(labels),
        (_, None) => {
            return Err(TrainError::Data(format!(
                "the training labels take more than {MAX_LABELS} values: too many for classes; \
                 name the classes with --classes, or end the model with one linear unit \
                 (regression)"
            )));
        }
    };
    let classes = (task != Task::Regression).then_some(vocabulary.len());
    let (_, shapes) = SequentialSpec::check(&input, layers, classes).map_err(TrainError::Config)?;
    let encoder = Arc::new(Encoder {
        input: input.clone(),
        task,
        classes: vocabulary.clone(),
        skip_others: !config.classes.is_empty(),
    });
    let reader = |source: &Source, split, what| Reader {
        source: source.clone(),
        split,
        encoder: Arc::clone(&encoder),
        what,
    };
    let train_set = Examples::new(
        reader(&config.train, train_split, "training"),
        config.streaming,
    )?;
    let eval_set = Examples::new(
        reader(eval_source, eval_split, "evaluation"),
        config.streaming,
    )?;
    let eval_size = match &eval_set {
        Examples::Memory(encoded) if encoded.labels.is_empty() => {
            return Err(TrainError::Data(
                "no evaluation examples (of the --classes asked for)".into(),
            ));
        }
        Examples::Memory(encoded) => encoded.labels.len().to_string(),
        Examples::Stream(_) => "streamed".into(),
    };
    log(&format!(
        "sequential: {} training examples ({}), {eval_size} evaluation examples, input {}, {} layers, task {task:?}",
        survey.examples,
        match &train_set {
            Examples::Memory(_) => "in memory".to_string(),
            Examples::Stream(_) => format!("streamed, shuffle buffer {}", config.shuffle_buffer),
        },
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
    let steps_per_epoch = survey.examples.div_ceil(config.batch_size);
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
        shuffle_buffer: config.shuffle_buffer,
        seed: config.seed,
        train: train_set,
        eval: eval_set,
        eval_rows: 0,
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
        eval_rows: run.eval_rows,
    })
}

/// The distinct labels, sorted as numbers when all are integers, else as text.
fn classes_of(labels: BTreeSet<String>) -> Vec<String> {
    let mut classes: Vec<String> = labels.into_iter().collect();
    if classes.iter().all(|class| class.parse::<i64>().is_ok()) {
        classes.sort_by_key(|class| class.parse::<i64>().unwrap_or_default());
    }
    classes
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
    shuffle_buffer: usize,
    seed: u64,
    train: Examples,
    eval: Examples,
    /// Examples the last evaluation saw.
    eval_rows: usize,
    device: Device,
}

impl Trainee for Run {
    type Model = SequentialModel;
    /// Rows back to back, and their labels.
    type Batch = (Vec<f32>, Vec<f32>);

    fn batches(&self, epoch: usize) -> Batches<Self::Batch> {
        match &self.train {
            Examples::Memory(encoded) => {
                let encoded = Arc::clone(encoded);
                let order =
                    shuffled_indices(encoded.labels.len(), self.batch_size, self.seed, epoch);
                Box::new(order.into_iter().map(move |indices| {
                    Ok((
                        encoded.rows(indices.iter().copied()),
                        indices.iter().map(|&i| encoded.labels[i]).collect(),
                    ))
                }))
            }
            Examples::Stream(reader) => {
                let reader = Arc::clone(reader);
                let batches = stream::shuffled(
                    move |visit| reader.blocks(visit),
                    self.batch_size,
                    self.shuffle_buffer,
                    epoch_seed(self.seed, epoch),
                );
                Box::new(
                    batches
                        .into_iter()
                        .map(|batch| batch.map(|(rows, labels)| (rows.concat(), labels))),
                )
            }
        }
    }

    fn batch_len((_, labels): &Self::Batch) -> usize {
        labels.len()
    }

    fn step(&mut self, (values, labels): Self::Batch) -> Result<f32, TrainError> {
        let input = SequentialModel::batch(&self.spec.input, values, labels.len(), &self.device);
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

    /// The weights stay on the training device, so that a GPU run evaluates on the GPU.
    fn snapshot(&self) -> Result<SequentialModel, TrainError> {
        Ok(SequentialModel {
            spec: self.spec.clone(),
            network: self.network.valid(),
            device: self.device.clone().without_autodiff(),
        })
    }

    fn evaluate(&mut self, model: &SequentialModel) -> Result<BTreeMap<String, f64>, TrainError> {
        let (mut predictions, mut labels) = (Vec::<Prediction>::new(), Vec::new());
        self.eval.each_block(&mut |rows, block_labels| {
            predictions.extend(model.predict(rows, block_labels.len()));
            labels.extend_from_slice(block_labels);
            Ok(())
        })?;
        if labels.is_empty() {
            return Err(TrainError::Data(
                "no evaluation examples (of the --classes asked for)".into(),
            ));
        }
        self.eval_rows = labels.len();
        Ok(evaluate(&predictions, &labels))
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
        let labels = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(classes_of(labels(&["10", "9", "2", "9"])), ["2", "9", "10"]);
        assert_eq!(classes_of(labels(&["b", "a", "10"])), ["10", "a", "b"]);
    }
}
