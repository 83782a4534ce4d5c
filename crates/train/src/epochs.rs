//! The epoch loop every built-in trainer shares: seeded shuffles, steps, progress lines and
//! TensorBoard scalars, an evaluation and a checkpoint after each epoch, `max_steps`, and early
//! stopping with the best epoch's model kept for the export. What a step *is* belongs to the
//! trainer, behind [`Trainee`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::ModuleOptimizer;
use burn::prelude::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::TrainError;
use crate::telemetry::Telemetry;
use crate::trainer::EarlyStopping;

/// The batches of one epoch, in training order.
pub(crate) type Batches<B> = Box<dyn Iterator<Item = Result<B, TrainError>>>;

/// A model being trained, as the loop sees it.
pub(crate) trait Trainee {
    /// The servable model an evaluation produces.
    type Model;
    /// What one step trains on.
    type Batch;

    /// The batches of `epoch`. Their order must depend only on the seed and the epoch, so a
    /// resumed run trains its remaining epochs as the uninterrupted run would have.
    fn batches(&self, epoch: usize) -> Batches<Self::Batch>;

    /// Examples in a batch.
    fn batch_len(batch: &Self::Batch) -> usize;

    /// One step; returns the batch's mean loss.
    fn step(&mut self, batch: Self::Batch) -> Result<f32, TrainError>;

    /// The current weights as a servable model.
    fn snapshot(&self) -> Result<Self::Model, TrainError>;

    /// Eval metrics of `model` on the evaluation examples.
    fn evaluate(&mut self, model: &Self::Model) -> Result<BTreeMap<String, f64>, TrainError>;

    /// Writes a checkpoint of `model` (and whatever else a resume needs) into `dir`.
    fn checkpoint(&self, model: &Self::Model, dir: &Path) -> Result<(), TrainError>;
}

/// How long to train and how to report it.
pub(crate) struct Schedule<'a> {
    /// Last epoch to run.
    pub num_epochs: usize,
    /// Stop after this many steps, even mid-epoch.
    pub max_steps: Option<usize>,
    /// Where a resumed run starts; `None` for a fresh one.
    pub resumed: Option<Checkpoint>,
    /// A progress line every this many steps.
    pub log_every: usize,
    /// When to stop early.
    pub early_stopping: Option<&'a EarlyStopping>,
    /// Where `epoch-N` checkpoints go.
    pub checkpoints: PathBuf,
}

/// A checkpoint on disk: `<checkpoints>/epoch-N`, with the step it was taken at.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoint {
    /// Epochs done.
    pub epoch: usize,
    /// Steps done.
    pub step: usize,
    /// Its directory.
    pub dir: PathBuf,
}

/// The file in a checkpoint that records how far the run was.
const PROGRESS_FILE: &str = "progress.json";

/// The seeded order of `examples` for `epoch`, cut into batches.
pub(crate) fn shuffled_indices(
    examples: usize,
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples).collect();
    order.shuffle(&mut StdRng::seed_from_u64(epoch_seed(seed, epoch)));
    order.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

/// The seed of an epoch's shuffle: a function of the run's seed and the epoch only.
pub(crate) fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9)
}

/// What the loop ends with.
pub(crate) struct Finished<M> {
    /// The model to export: the best epoch's under early stopping, else the last.
    pub model: M,
    /// Its eval metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Steps taken, a resumed run's earlier ones included.
    pub steps: usize,
    /// Training throughput of this run.
    pub examples_per_second: f64,
}

/// Trains `trainee` as `schedule` says.
pub(crate) fn run<T: Trainee>(
    trainee: &mut T,
    schedule: &Schedule,
    telemetry: &mut Telemetry,
    log: &mut dyn FnMut(&str),
) -> Result<Finished<T::Model>, TrainError> {
    let started = Instant::now();
    let mut window = (Instant::now(), 0usize, 0.0f64);
    let (done_epochs, mut step) = schedule
        .resumed
        .as_ref()
        .map_or((0, 0), |checkpoint| (checkpoint.epoch, checkpoint.step));
    let mut examples_seen = 0usize;
    let mut watch = Watch::new(schedule.early_stopping);
    // The last evaluation, unless `watch` kept it as the best.
    let mut last: Option<(BTreeMap<String, f64>, T::Model)> = None;
    'epochs: for epoch in done_epochs + 1..=schedule.num_epochs {
        for batch in trainee.batches(epoch) {
            let batch = batch?;
            let size = T::batch_len(&batch);
            let loss = trainee.step(batch)?;
            step += 1;
            examples_seen += size;
            window.1 += size;
            window.2 += f64::from(loss);
            if step.is_multiple_of(schedule.log_every) {
                let elapsed = window.0.elapsed().as_secs_f64().max(1e-9);
                let (mean_loss, rate) = (
                    window.2 / schedule.log_every as f64,
                    window.1 as f64 / elapsed,
                );
                log(&format!(
                    "step {step} epoch {epoch} loss {mean_loss:.4} examples/s {rate:.0}"
                ));
                telemetry.progress(step, mean_loss, rate)?;
                window = (Instant::now(), 0, 0.0);
            }
            if schedule.max_steps.is_some_and(|max| step >= max) {
                let model = trainee.snapshot()?;
                let metrics = trainee.evaluate(&model)?;
                log(&format!(
                    "eval at step {step}: {}",
                    format_metrics(&metrics)
                ));
                telemetry.evaluation(step, &metrics)?;
                last = Some((metrics, model));
                break 'epochs;
            }
        }
        let model = trainee.snapshot()?;
        let metrics = trainee.evaluate(&model)?;
        log(&format!(
            "eval after epoch {epoch} (step {step}): {}",
            format_metrics(&metrics)
        ));
        telemetry.evaluation(step, &metrics)?;
        let dir = schedule.checkpoints.join(format!("epoch-{epoch}"));
        trainee.checkpoint(&model, &dir)?;
        let progress = serde_json::json!({"epoch": epoch, "step": step}).to_string();
        std::fs::write(dir.join(PROGRESS_FILE), progress).map_err(|source| TrainError::Io {
            path: dir.join(PROGRESS_FILE).display().to_string(),
            source,
        })?;
        prune_checkpoints(&schedule.checkpoints, epoch);
        let (stop, unkept) = watch.record(epoch, metrics, model, log)?;
        last = unkept;
        if stop {
            break;
        }
    }
    let examples_per_second = examples_seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let (metrics, model) = match (watch.best, last) {
        (Some(best), _) => {
            log(&format!(
                "exporting the best model, after epoch {}",
                best.epoch
            ));
            (best.metrics, best.model)
        }
        (None, Some(last)) => last,
        (None, None) => {
            // Resumed with every epoch already done: the checkpoint, evaluated.
            let model = trainee.snapshot()?;
            (trainee.evaluate(&model)?, model)
        }
    };
    Ok(Finished {
        model,
        metrics,
        steps: step,
        examples_per_second,
    })
}

/// The best evaluation so far.
struct Best<M> {
    epoch: usize,
    value: f64,
    metrics: BTreeMap<String, f64>,
    model: M,
}

/// Early stopping's bookkeeping: the best evaluation and how many evaluations since.
struct Watch<'a, M> {
    stopping: Option<&'a EarlyStopping>,
    best: Option<Best<M>>,
    stale: usize,
}

impl<'a, M> Watch<'a, M> {
    fn new(stopping: Option<&'a EarlyStopping>) -> Self {
        Self {
            stopping,
            best: None,
            stale: 0,
        }
    }

    /// Records an epoch's evaluation. Returns whether to stop, and the evaluation back unless it
    /// was kept as the best.
    #[allow(clippy::type_complexity)]
    fn record(
        &mut self,
        epoch: usize,
        metrics: BTreeMap<String, f64>,
        model: M,
        log: &mut dyn FnMut(&str),
    ) -> Result<(bool, Option<(BTreeMap<String, f64>, M)>), TrainError> {
        let Some(stopping) = self.stopping else {
            return Ok((false, Some((metrics, model))));
        };
        let value = *metrics.get(&stopping.metric).ok_or_else(|| {
            TrainError::Config(format!(
                "--early_stopping_metric {:?} is not an eval metric of this model ({})",
                stopping.metric,
                metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let unkept = match &self.best {
            Some(best) if !stopping.improves(value, best.value) => {
                self.stale += 1;
                Some((metrics, model))
            }
            _ => {
                self.best = Some(Best {
                    epoch,
                    value,
                    metrics,
                    model,
                });
                self.stale = 0;
                None
            }
        };
        let stop = self.stale >= stopping.patience;
        if let (true, Some(best)) = (stop, &self.best) {
            log(&format!(
                "early stopping after epoch {epoch}: {} has not improved for {} evaluations (best {:.4} after epoch {})",
                stopping.metric, self.stale, best.value, best.epoch
            ));
        }
        Ok((stop, unkept))
    }
}

/// The file in a checkpoint that holds the dense optimizer's state (burn's burnpack format).
const OPTIMIZER_FILE: &str = "optimizer.bpk";

/// Gives a module's parameters the ids 1, 2, ... in module order, so the optimizer state saved in
/// a checkpoint (keyed by parameter id) finds its parameters again after a resume.
pub(crate) fn renumber<M: Module>(module: M) -> M {
    struct Renumber(u64);
    impl ModuleMapper for Renumber {
        fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            self.0 += 1;
            param.id = ParamId::from(self.0);
            param
        }
    }
    module.map(&mut Renumber(0))
}

/// Saves the dense optimizer's state into the checkpoint directory `dir`.
pub(crate) fn save_optimizer(optimizer: &ModuleOptimizer, dir: &Path) -> Result<(), TrainError> {
    let path = dir.join(OPTIMIZER_FILE);
    optimizer
        .save(&path)
        .map_err(|error| TrainError::Data(format!("{}: {error}", path.display())))
}

/// The dense optimizer with the state saved in the checkpoint directory `dir`.
pub(crate) fn load_optimizer(
    optimizer: ModuleOptimizer,
    dir: &Path,
) -> Result<ModuleOptimizer, TrainError> {
    let path = dir.join(OPTIMIZER_FILE);
    optimizer
        .load(&path)
        .map_err(|error| TrainError::Data(format!("{}: {error}", path.display())))
}

/// Metrics as `name value, ...` for log lines.
pub(crate) fn format_metrics(metrics: &BTreeMap<String, f64>) -> String {
    metrics
        .iter()
        .map(|(name, value)| format!("{name} {value:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The newest complete checkpoint under `dir`: an `epoch-N` directory holding an export and
/// its progress file, which is written last.
pub(crate) fn latest_checkpoint(dir: &Path) -> Option<Checkpoint> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let epoch = name.strip_prefix("epoch-")?.parse::<usize>().ok()?;
            let progress: serde_json::Value =
                serde_json::from_slice(&std::fs::read(entry.path().join(PROGRESS_FILE)).ok()?)
                    .ok()?;
            Some(Checkpoint {
                epoch,
                step: progress["step"].as_u64()? as usize,
                dir: entry.path(),
            })
        })
        .max_by_key(|checkpoint| checkpoint.epoch)
}

/// Keeps the two most recent epoch checkpoints.
fn prune_checkpoints(dir: &Path, epoch: usize) {
    if epoch > 2 {
        let _ = std::fs::remove_dir_all(dir.join(format!("epoch-{}", epoch - 2)));
    }
}
