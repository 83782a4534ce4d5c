//! The training loop.
//!
//! Each step: encode a batch, gather its rows from the host tables into tensors that require
//! gradients, run the forward pass and loss in burn, backpropagate, hand the dense gradients to
//! burn's Adam and the gathered rows' gradients to the row-sparse optimizers. After each epoch the
//! model is evaluated and checkpointed; at the end it is exported to `<job dir>/model`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Param;
use burn::nn::LinearConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::log_softmax;
use kiln_model::columns::{Encoded, Encoder};
use kiln_model::network::{Dense, Leaves, Model, forward, gather};
use kiln_model::{ModelKind, ModelSpec, Table, Task, predict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::TrainError;
use crate::accelerator::Accelerator;
use crate::data::Files;
use crate::epochs::{
    self, Batches, Finished, Schedule, Trainee, epoch_seed, latest_checkpoint, load_optimizer,
    renumber, save_optimizer, shuffled_indices,
};
use crate::metrics::evaluate;
use crate::resolve::{ModelType, RowEncoder, resolve};
use crate::schema::Schema;
use crate::sparse::{RowGradients, SparseOptimizer, SparseTable};
use crate::stream::{Batch, Source, Split};
use crate::telemetry::Telemetry;

/// Everything a training run needs.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Name of the algorithm, recorded in the export.
    pub algorithm: String,
    /// Network shape.
    pub kind: ModelKind,
    /// Training CSV files.
    pub train_files: Vec<PathBuf>,
    /// Evaluation CSV files; when empty, 10% of the training rows are held out.
    pub eval_files: Vec<PathBuf>,
    /// Description of the data.
    pub schema: Schema,
    /// Classification or regression; inferred from the label when unset.
    pub model_type: Option<ModelType>,
    /// Hidden layer widths of the deep part.
    pub hidden_units: Vec<usize>,
    /// Examples per step.
    pub batch_size: usize,
    /// Passes over the training data.
    pub num_epochs: usize,
    /// Stop after this many steps, even mid-epoch.
    pub max_steps: Option<usize>,
    /// Adam step size for the deep part and embeddings.
    pub learning_rate: f64,
    /// FTRL step size for the wide part (TensorFlow's canned estimators use 0.2 at most).
    pub linear_learning_rate: f64,
    /// Seed for initialisation and shuffling.
    pub seed: u64,
    /// Output directory: checkpoints, export.
    pub job_dir: PathBuf,
    /// Log a progress line every this many steps.
    pub log_every: usize,
    /// Where each evaluation's metrics are reported for hyperparameter tuning, in the
    /// `cloudml-hypertune` file format (`CLOUD_ML_HP_METRIC_FILE` in a tuning trial).
    pub metric_file: Option<PathBuf>,
    /// Stop when an eval metric stops improving, and export the best epoch's model.
    pub early_stopping: Option<EarlyStopping>,
    /// Continue from the newest checkpoint under `job_dir/checkpoints` (after a crash or to train
    /// more epochs) instead of starting afresh.
    pub resume: bool,
    /// Read the training files again each epoch through a shuffle buffer (`Some(true)`), or keep
    /// the encoded examples in memory (`Some(false)`); `None` streams files over
    /// [`IN_MEMORY_BYTES`](crate::stream::IN_MEMORY_BYTES).
    pub streaming: Option<bool>,
    /// Examples in the shuffle buffer of a streamed run.
    pub shuffle_buffer: usize,
    /// Where the dense part trains (the tables stay in host memory).
    pub accelerator: Accelerator,
}

/// The file in a checkpoint that holds the row-sparse optimizers' state.
const SPARSE_STATE_FILE: &str = "sparse_optimizers.safetensors";

/// Rows read to resolve column types, vocabularies and statistics.
pub const RESOLVE_ROWS: usize = 200_000;

/// When to stop: `metric` has not improved by more than `min_delta` for `patience` evaluations.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    /// An eval metric: `auc`, `accuracy`, `loss`, `rmse`, ...
    pub metric: String,
    /// Evaluations without improvement before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
}

impl EarlyStopping {
    /// Whether `value` improves on `best`: lower is better for losses and errors, higher for the rest.
    pub(crate) fn improves(&self, value: f64, best: f64) -> bool {
        match matches!(self.metric.as_str(), "loss" | "rmse" | "mae") {
            true => value < best - self.min_delta,
            false => value > best + self.min_delta,
        }
    }
}

impl TrainConfig {
    /// A configuration with Kiln's defaults for `algorithm` and `kind`.
    pub fn new(algorithm: &str, kind: ModelKind, schema: Schema, job_dir: PathBuf) -> Self {
        Self {
            algorithm: algorithm.to_string(),
            kind,
            train_files: Vec::new(),
            eval_files: Vec::new(),
            schema,
            model_type: None,
            hidden_units: vec![100, 70, 50, 25],
            batch_size: 64,
            num_epochs: 5,
            max_steps: None,
            learning_rate: 0.002,
            linear_learning_rate: 0.05,
            seed: 42,
            job_dir,
            log_every: 100,
            metric_file: None,
            early_stopping: None,
            resume: false,
            streaming: None,
            shuffle_buffer: 100_000,
            accelerator: Accelerator::Cpu,
        }
    }
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The exported model directory.
    pub export_dir: PathBuf,
    /// Final evaluation metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Steps taken.
    pub steps: usize,
    /// Training throughput over the whole run.
    pub examples_per_second: f64,
    /// Rows the final metrics were measured on.
    pub eval_rows: usize,
}

/// Trains a model as `config` says, calling `log` with one line per progress event.
pub fn train(config: &TrainConfig, log: &mut dyn FnMut(&str)) -> Result<TrainOutcome, TrainError> {
    validate(config)?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let delimiter = config.schema.delimiter_byte()?;
    let train_files = Files::new(
        &config.train_files,
        &config.schema.columns,
        config.schema.header,
        delimiter,
    )?;
    let held_out = config.eval_files.is_empty();
    let train_split = if held_out {
        Split::Training
    } else {
        Split::All
    };
    // Types, vocabularies and statistics come from the first rows; a larger file streams past them.
    let mut sample = train_files.read(Some(RESOLVE_ROWS))?;
    if held_out {
        let mut index = 0;
        sample.rows.retain(|_| {
            index += 1;
            train_split.takes(index - 1)
        });
    }
    let resolved = resolve(&config.schema, &sample, config.kind, config.model_type)?;
    drop(sample);
    let spec = ModelSpec {
        format: kiln_model::spec::FORMAT.to_string(),
        algorithm: config.algorithm.clone(),
        kind: config.kind,
        task: resolved.task,
        label: config.schema.label.clone(),
        label_vocabulary: resolved.label_vocabulary.clone(),
        columns: resolved.columns.clone(),
        hidden_units: if config.kind.has_deep() {
            config.hidden_units.clone()
        } else {
            Vec::new()
        },
        outputs: ModelSpec::output_names(resolved.task),
        metrics: BTreeMap::new(),
        data_columns: train_files.names.clone(),
        ignored_inputs: resolved.ignored.clone(),
    };
    let encoder = Encoder::new(spec.columns.clone())?;
    let rows = Arc::new(RowEncoder::new(&resolved, &encoder, &train_files.names)?);
    let eval_source = match held_out {
        true => Source::new(
            train_files.clone(),
            Split::HeldOut,
            Arc::clone(&rows),
            "evaluation",
        ),
        false => {
            let files = Files::new(
                &config.eval_files,
                &train_files.names,
                config.schema.header,
                delimiter,
            )?;
            Source::new(files, Split::All, Arc::clone(&rows), "evaluation")
        }
    };
    let train_source = Source::new(train_files, train_split, rows, "training");
    let train = match config.streaming.unwrap_or(!train_source.fits_in_memory()) {
        true => Examples::Stream(Arc::new(train_source)),
        false => Examples::Memory(Arc::new(train_source.read_all()?)),
    };
    let eval = match config.streaming.unwrap_or(!eval_source.fits_in_memory()) {
        true => Examples::Stream(Arc::new(eval_source)),
        false => Examples::Memory(Arc::new(eval_source.read_all()?)),
    };
    log(&format!(
        "{}: {} training rows, {} evaluation rows, {} numeric and {} categorical columns, {} crosses, task {:?}",
        config.algorithm,
        train.describe(config.shuffle_buffer),
        eval.describe(config.shuffle_buffer),
        spec.columns.numeric.len(),
        spec.columns.categorical.len(),
        spec.columns.crossed.len(),
        spec.task
    ));

    let device = config.accelerator.training_device()?;
    device.seed(config.seed);
    let checkpoints = config.job_dir.join("checkpoints");
    let resumed = config.resume.then(|| latest_checkpoint(&checkpoints));
    let (state, resumed) = match resumed {
        Some(Some(checkpoint)) => {
            let state = State::resume(&checkpoint.dir, checkpoint.step, spec, config, &device)?;
            log(&format!(
                "resuming from {} after epoch {} (step {})",
                checkpoint.dir.display(),
                checkpoint.epoch,
                checkpoint.step
            ));
            (state, Some(checkpoint))
        }
        Some(None) => {
            log("no checkpoint to resume from: starting afresh");
            (State::init(spec, config, &device, &mut rng)?, None)
        }
        None => (State::init(spec, config, &device, &mut rng)?, None),
    };
    let mut telemetry = Telemetry::create(&config.job_dir, config.metric_file.clone())?;
    let schedule = Schedule {
        num_epochs: config.num_epochs,
        max_steps: config.max_steps,
        resumed,
        log_every: config.log_every,
        early_stopping: config.early_stopping.as_ref(),
        checkpoints,
    };
    let optimizer = match &schedule.resumed {
        Some(checkpoint) => load_optimizer(AdamConfig::new().init(), &checkpoint.dir)?,
        None => AdamConfig::new().init(),
    };
    let mut run = Run {
        state,
        optimizer,
        learning_rate: config.learning_rate,
        batch_size: config.batch_size,
        shuffle_buffer: config.shuffle_buffer,
        seed: config.seed,
        train,
        eval,
        eval_rows: 0,
    };
    let Finished {
        mut model,
        metrics,
        steps: step,
        examples_per_second,
    } = epochs::run(&mut run, &schedule, &mut telemetry, log)?;
    model.spec.metrics = metrics.clone();
    let export_dir = config.job_dir.join("model");
    kiln_model::save(&model, &export_dir)?;
    log(&format!(
        "exported to {} after {step} steps ({examples_per_second:.0} examples/s)",
        export_dir.display(),
    ));
    Ok(TrainOutcome {
        export_dir,
        metrics,
        steps: step,
        examples_per_second,
        eval_rows: run.eval_rows,
    })
}

fn validate(config: &TrainConfig) -> Result<(), TrainError> {
    let mut problems = Vec::new();
    if config.train_files.is_empty() {
        problems.push("no training files (--training_data_path / --train-files)".to_string());
    }
    if config.batch_size == 0 {
        problems.push("batch_size must be positive".into());
    }
    if config.num_epochs == 0 {
        problems.push("num_epochs must be positive".into());
    }
    if config.log_every == 0 {
        problems.push("log_every must be positive".into());
    }
    if config.shuffle_buffer == 0 {
        problems.push("shuffle_buffer must be positive".into());
    }
    if !(config.learning_rate > 0.0 && config.linear_learning_rate > 0.0) {
        problems.push("learning rates must be positive".into());
    }
    if config.kind.has_deep() && config.hidden_units.contains(&0) {
        problems.push(format!(
            "hidden_units must be positive, got {:?}",
            config.hidden_units
        ));
    }
    if config.schema.label.is_empty() {
        problems.push("the schema names no label column".into());
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(TrainError::Config(problems.join("; "))),
    }
}

/// The model being trained, with its optimizer state.
struct State {
    spec: ModelSpec,
    wide: Option<SparseTable>,
    wide_offsets: Vec<usize>,
    embeddings: Vec<SparseTable>,
    dense: Dense,
    device: Device,
}

/// The row-sparse optimizers of the embeddings (lazy Adam) and of the wide part (FTRL).
fn sparse_optimizers(config: &TrainConfig) -> (SparseOptimizer, SparseOptimizer) {
    (
        SparseOptimizer::Adam {
            learning_rate: config.learning_rate as f32,
        },
        SparseOptimizer::Ftrl {
            learning_rate: config.linear_learning_rate as f32,
            l1: 0.0,
            l2: 0.0,
        },
    )
}

impl State {
    /// The state of a checkpoint taken after `step` steps: its weights, on `device` for training,
    /// and the row-sparse optimizers' state. `spec` is what this run resolved from its data and
    /// arguments; a checkpoint of another model is refused.
    fn resume(
        dir: &Path,
        step: usize,
        spec: ModelSpec,
        config: &TrainConfig,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let model = kiln_model::load(dir, device)?;
        if model.spec.columns != spec.columns
            || model.spec.hidden_units != spec.hidden_units
            || model.spec.kind != spec.kind
        {
            return Err(TrainError::Config(format!(
                "the checkpoint {} is of another model (columns, network or algorithm differ): \
                 resume with the data and arguments it was trained with, or use a new --job-dir",
                dir.display()
            )));
        }
        let (embedding_optimizer, wide_optimizer) = sparse_optimizers(config);
        let (wide_offsets, _) = Encoder::new(spec.columns.clone())?.slot_offsets();
        let mut state = Self {
            spec,
            wide: model
                .wide
                .map(|table| SparseTable::new(table, wide_optimizer)),
            wide_offsets,
            embeddings: model
                .embeddings
                .into_iter()
                .map(|table| SparseTable::new(table, embedding_optimizer))
                .collect(),
            dense: renumber(model.dense),
            device: device.clone(),
        };
        let path = dir.join(SPARSE_STATE_FILE);
        let mut saved = kiln_model::export::load_tensors(&path)?;
        let names = state.sparse_names();
        let tables = state.wide.iter_mut().chain(state.embeddings.iter_mut());
        for (name, table) in names.into_iter().zip(tables) {
            let mut take = |slot: &str| {
                saved
                    .remove(&format!("{name}/{slot}"))
                    .map(|(values, _)| values)
                    .ok_or_else(|| {
                        TrainError::Data(format!("{}: no {name}/{slot}", path.display()))
                    })
            };
            let (first, second) = (take("first")?, take("second")?);
            table.restore(first, second, step).map_err(|message| {
                TrainError::Data(format!("{}: {name}: {message}", path.display()))
            })?;
        }
        Ok(state)
    }

    /// The names the row-sparse tables' state is saved under, in the order of
    /// `wide.iter().chain(&embeddings)`.
    fn sparse_names(&self) -> Vec<String> {
        let wide = self.wide.iter().map(|_| "wide".to_string());
        let embeddings = (0..self.embeddings.len()).map(|index| format!("embedding/{index}"));
        wide.chain(embeddings).collect()
    }

    /// Saves the row-sparse optimizers' state into the checkpoint directory `dir`.
    fn save_sparse_state(&self, dir: &Path) -> Result<(), TrainError> {
        let mut tensors = Vec::new();
        let tables = self.wide.iter().chain(&self.embeddings);
        for (name, table) in self.sparse_names().into_iter().zip(tables) {
            let (first, second) = table.state();
            tensors.push((format!("{name}/first"), vec![first.len()], first.to_vec()));
            tensors.push((
                format!("{name}/second"),
                vec![second.len()],
                second.to_vec(),
            ));
        }
        Ok(kiln_model::export::save_tensors(
            &dir.join(SPARSE_STATE_FILE),
            tensors,
        )?)
    }

    fn init(
        spec: ModelSpec,
        config: &TrainConfig,
        device: &Device,
        rng: &mut StdRng,
    ) -> Result<Self, TrainError> {
        let n_outputs = spec.n_outputs();
        let (embedding_optimizer, wide_optimizer) = sparse_optimizers(config);
        let (wide_offsets, total) = Encoder::new(spec.columns.clone())?.slot_offsets();
        let wide = (spec.kind.has_wide() && total > 0)
            .then(|| SparseTable::new(Table::zeros(total, n_outputs), wide_optimizer));
        let embeddings = match spec.kind.has_deep() {
            true => spec
                .columns
                .categorical
                .iter()
                .map(|column| {
                    let scale = 1.0 / (column.embedding_dim as f32).sqrt();
                    let table = Table::from_fn(column.cardinality(), column.embedding_dim, || {
                        rng.random_range(-scale..scale)
                    });
                    SparseTable::new(table, embedding_optimizer)
                })
                .collect(),
            false => Vec::new(),
        };
        let mut hidden = Vec::new();
        let mut width = Model::deep_input_width(&spec);
        if spec.kind.has_deep() {
            for &units in &spec.hidden_units {
                hidden.push(LinearConfig::new(width, units).init(device));
                width = units;
            }
        }
        let output = spec
            .kind
            .has_deep()
            .then(|| LinearConfig::new(width, n_outputs).init(device));
        let bias = Param::from_tensor(Tensor::zeros([n_outputs], device));
        let state = Self {
            spec,
            wide,
            wide_offsets,
            embeddings,
            dense: renumber(Dense {
                hidden,
                output,
                bias,
            }),
            device: device.clone(),
        };
        if state.wide.is_none() && !state.spec.kind.has_deep() {
            return Err(TrainError::Config(
                "a linear model needs categorical, bucketized or crossed columns".into(),
            ));
        }
        Ok(state)
    }

    /// One training step; returns the batch's mean loss.
    fn step(
        &mut self,
        batch: &[Encoded],
        labels: &[f32],
        optimizer: &mut burn::optim::ModuleOptimizer,
        learning_rate: f64,
    ) -> f32 {
        let size = batch.len();
        let leaves = self.leaves(batch);
        let logits = forward(&self.dense, &leaves);
        let loss = loss(self.spec.task, logits, labels, &self.device);
        let gradients = loss.backward();
        let loss_value = loss.into_scalar::<f32>();
        if let Some(values) = gradient_of(&leaves.embedded, &gradients) {
            let width = values.len() / size;
            let mut start = 0;
            for (slot, table) in self.embeddings.iter_mut().enumerate() {
                let dim = table.table.dim;
                let mut rows = RowGradients::with_capacity(dim, size);
                for (example_index, example) in batch.iter().enumerate() {
                    let offset = example_index * width + start;
                    rows.add(example.ids[slot] as usize, &values[offset..offset + dim]);
                }
                table.apply(&rows);
                start += dim;
            }
        }
        if let (Some(values), Some(table)) =
            (gradient_of(&leaves.wide, &gradients), self.wide.as_mut())
        {
            let dim = table.table.dim;
            let slots = self.wide_offsets.len();
            let mut rows = RowGradients::with_capacity(dim, size * slots);
            for (example_index, example) in batch.iter().enumerate() {
                for (slot, (offset, id)) in self.wide_offsets.iter().zip(&example.ids).enumerate() {
                    let start = (example_index * slots + slot) * dim;
                    rows.add(offset + *id as usize, &values[start..start + dim]);
                }
            }
            table.apply(&rows);
        }
        let dense_gradients = GradientsParams::from_grads(gradients, &self.dense);
        self.dense = optimizer.step(learning_rate, self.dense.clone(), dense_gradients);
        loss_value
    }

    /// The batch's rows as gradient leaves on the autodiff device.
    fn leaves(&self, batch: &[Encoded]) -> Leaves {
        let embeddings: Vec<&Table> = self.embeddings.iter().map(|table| &table.table).collect();
        let wide = self.wide.as_ref().map(|table| &table.table);
        let mut leaves = gather(
            &self.spec,
            &embeddings,
            wide,
            &self.wide_offsets,
            batch,
            &self.device,
        );
        leaves.embedded = leaves.embedded.map(Tensor::require_grad);
        leaves.wide = leaves.wide.map(Tensor::require_grad);
        leaves
    }

    /// The current weights as a servable model on the plain (non-autodiff) CPU device.
    fn model_for_inference(&self) -> Result<Model, TrainError> {
        Ok(Model::from_parts(
            self.spec.clone(),
            self.wide.as_ref().map(|table| table.table.clone()),
            self.embeddings
                .iter()
                .map(|table| table.table.clone())
                .collect(),
            self.dense.valid().to_device(&Device::flex()),
            Device::flex(),
        )?)
    }
}

/// Examples in memory, or read from their files again each time.
enum Examples {
    Memory(Arc<Batch>),
    Stream(Arc<Source>),
}

impl Examples {
    fn describe(&self, shuffle_buffer: usize) -> String {
        match self {
            Examples::Memory(examples) => examples.0.len().to_string(),
            Examples::Stream(_) => format!("streamed (shuffle buffer {shuffle_buffer})"),
        }
    }
}

/// A run of the feature-column trainer: the state, Adam for the dense part, and the data.
struct Run {
    state: State,
    optimizer: burn::optim::ModuleOptimizer,
    learning_rate: f64,
    batch_size: usize,
    shuffle_buffer: usize,
    seed: u64,
    train: Examples,
    eval: Examples,
    /// Rows the last evaluation saw.
    eval_rows: usize,
}

impl Trainee for Run {
    type Model = Model;
    type Batch = Batch;

    fn batches(&self, epoch: usize) -> Batches<Batch> {
        let seed = epoch_seed(self.seed, epoch);
        match &self.train {
            Examples::Memory(examples) => {
                let examples = Arc::clone(examples);
                let order = shuffled_indices(examples.0.len(), self.batch_size, self.seed, epoch);
                Box::new(order.into_iter().map(move |indices| {
                    Ok((
                        indices.iter().map(|&i| examples.0[i].clone()).collect(),
                        indices.iter().map(|&i| examples.1[i]).collect(),
                    ))
                }))
            }
            Examples::Stream(source) => Box::new(
                source
                    .shuffled_batches(self.batch_size, self.shuffle_buffer, seed)
                    .into_iter(),
            ),
        }
    }

    fn batch_len(batch: &Batch) -> usize {
        batch.0.len()
    }

    fn step(&mut self, (examples, labels): Batch) -> Result<f32, TrainError> {
        Ok(self
            .state
            .step(&examples, &labels, &mut self.optimizer, self.learning_rate))
    }

    fn snapshot(&self) -> Result<Model, TrainError> {
        self.state.model_for_inference()
    }

    fn evaluate(&mut self, model: &Model) -> Result<BTreeMap<String, f64>, TrainError> {
        let mut predictions = Vec::new();
        let mut labels = Vec::new();
        let mut add = |(examples, block_labels): &Batch| {
            for chunk in examples.chunks(1024) {
                predictions.extend(predict(model, chunk));
            }
            labels.extend_from_slice(block_labels);
        };
        match &self.eval {
            Examples::Memory(examples) => add(examples),
            Examples::Stream(source) => source.blocks(&mut |block| {
                add(&block);
                Ok(true)
            })?,
        }
        self.eval_rows = labels.len();
        Ok(evaluate(&predictions, &labels))
    }

    fn checkpoint(&self, model: &Model, dir: &Path) -> Result<(), TrainError> {
        kiln_model::save(model, dir)?;
        save_optimizer(&self.optimizer, dir)?;
        self.state.save_sparse_state(dir)
    }
}

/// The gradient of a gathered leaf, as values in the leaf's row-major order.
fn gradient_of<const D: usize>(
    leaf: &Option<Tensor<D>>,
    gradients: &burn::tensor::Gradients,
) -> Option<Vec<f32>> {
    let gradient = leaf.as_ref()?.grad(gradients)?;
    Some(
        gradient
            .into_data()
            .try_into_vec::<f32>()
            .expect("training tensors are f32. This is a bug."),
    )
}

/// Mean loss of a batch: sigmoid cross-entropy, softmax cross-entropy or squared error.
pub(crate) fn loss(task: Task, logits: Tensor<2>, labels: &[f32], device: &Device) -> Tensor<1> {
    let size = labels.len();
    match task {
        Task::BinaryClassification => {
            let y = Tensor::<2>::from_data(TensorData::new(labels.to_vec(), [size, 1]), device);
            // max(z, 0) - z*y + log(1 + exp(-|z|)): the numerically stable form.
            let stable = logits.clone().clamp_min(0.0) - logits.clone() * y
                + logits.abs().neg().exp().log1p();
            stable.mean()
        }
        Task::MultiClassification => {
            let [_, classes] = logits.dims();
            let mut one_hot = vec![0.0f32; size * classes];
            for (row, &label) in labels.iter().enumerate() {
                one_hot[row * classes + label as usize] = 1.0;
            }
            let y = Tensor::<2>::from_data(TensorData::new(one_hot, [size, classes]), device);
            (log_softmax(logits, 1) * y).sum_dim(1).mean().neg()
        }
        Task::Regression => {
            let y = Tensor::<2>::from_data(TensorData::new(labels.to_vec(), [size, 1]), device);
            (logits - y).powi_scalar(2).mean()
        }
    }
}
