//! The epoch loop every built-in trainer shares: seeded shuffles, steps, progress lines and
//! TensorBoard scalars, an evaluation and a checkpoint after each epoch, `max_steps`, and early
//! stopping with the best epoch's model kept for the export. What a step *is* belongs to the
//! trainer, behind [`Trainee`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::TrainError;
use crate::telemetry::Telemetry;
use crate::trainer::EarlyStopping;

/// A model being trained, as the loop sees it.
pub(crate) trait Trainee {
    /// The servable model an evaluation produces.
    type Model;

    /// One step on the training examples at `batch`; returns the batch's mean loss.
    fn step(&mut self, batch: &[usize]) -> Result<f32, TrainError>;

    /// The current weights as a servable model.
    fn snapshot(&self) -> Result<Self::Model, TrainError>;

    /// Eval metrics of `model` on the evaluation examples.
    fn evaluate(&self, model: &Self::Model) -> BTreeMap<String, f64>;

    /// Writes a checkpoint of `model` (and whatever else a resume needs) into `dir`.
    fn checkpoint(&self, model: &Self::Model, dir: &Path) -> Result<(), TrainError>;
}

/// How long to train and how to report it.
pub(crate) struct Schedule<'a> {
    /// Training examples.
    pub examples: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Last epoch to run.
    pub num_epochs: usize,
    /// Stop after this many steps, even mid-epoch.
    pub max_steps: Option<usize>,
    /// Epochs a resumed run has already done.
    pub done_epochs: usize,
    /// Seed of the shuffles.
    pub seed: u64,
    /// A progress line every this many steps.
    pub log_every: usize,
    /// When to stop early.
    pub early_stopping: Option<&'a EarlyStopping>,
    /// Where `epoch-N` checkpoints go.
    pub checkpoints: PathBuf,
}

impl Schedule<'_> {
    /// Steps in one epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.examples.div_ceil(self.batch_size)
    }
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
    let mut order: Vec<usize> = (0..schedule.examples).collect();
    let mut step = schedule.done_epochs * schedule.steps_per_epoch();
    let mut examples_seen = 0usize;
    let mut watch = Watch::new(schedule.early_stopping);
    // The last evaluation, unless `watch` kept it as the best.
    let mut last: Option<(BTreeMap<String, f64>, T::Model)> = None;
    'epochs: for epoch in schedule.done_epochs + 1..=schedule.num_epochs {
        // Each epoch's order depends on the seed and the epoch only, so a resumed run shuffles
        // its remaining epochs as the uninterrupted run would have.
        order.sort_unstable();
        order.shuffle(&mut StdRng::seed_from_u64(
            schedule.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9),
        ));
        for batch in order.chunks(schedule.batch_size) {
            let loss = trainee.step(batch)?;
            step += 1;
            examples_seen += batch.len();
            window.1 += batch.len();
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
                let metrics = trainee.evaluate(&model);
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
        let metrics = trainee.evaluate(&model);
        log(&format!(
            "eval after epoch {epoch} (step {step}): {}",
            format_metrics(&metrics)
        ));
        telemetry.evaluation(step, &metrics)?;
        trainee.checkpoint(&model, &schedule.checkpoints.join(format!("epoch-{epoch}")))?;
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
            (trainee.evaluate(&model), model)
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

/// Metrics as `name value, ...` for log lines.
pub(crate) fn format_metrics(metrics: &BTreeMap<String, f64>) -> String {
    metrics
        .iter()
        .map(|(name, value)| format!("{name} {value:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The newest checkpoint under `dir` (`epoch-N` directories holding an export) and its epoch.
pub(crate) fn latest_checkpoint(dir: &Path) -> Option<(usize, PathBuf)> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let epoch = name.strip_prefix("epoch-")?.parse::<usize>().ok()?;
            entry
                .path()
                .join(kiln_model::export::EXPORT_FILE)
                .is_file()
                .then(|| (epoch, entry.path()))
        })
        .max_by_key(|(epoch, _)| *epoch)
}

/// Keeps the two most recent epoch checkpoints.
fn prune_checkpoints(dir: &Path, epoch: usize) {
    if epoch > 2 {
        let _ = std::fs::remove_dir_all(dir.join(format!("epoch-{}", epoch - 2)));
    }
}
