//! Where a training run reports its numbers besides the log: TensorBoard event files under the job
//! directory (`train/` for loss and throughput, `eval/` for each evaluation's metrics, as
//! TensorFlow's Keras callback lays them out), so `tensorboard --logdir <jobDir>` and Kiln's
//! console draw the curves; and the `cloudml-hypertune` file of a tuning trial.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_events::Writer;

use crate::TrainError;

/// The open event files and the hypertune file of one run.
pub struct Telemetry {
    train: Writer,
    eval: Writer,
    metric_file: Option<PathBuf>,
}

impl Telemetry {
    /// Opens new event files under `job_dir`; `metric_file` is the tuning trial's hypertune file.
    pub fn create(job_dir: &Path, metric_file: Option<PathBuf>) -> Result<Self, TrainError> {
        let open = |run: &str| {
            let dir = job_dir.join(run);
            Writer::create(&dir, now()).map_err(|source| events_error(&dir, source))
        };
        Ok(Self {
            train: open("train")?,
            eval: open("eval")?,
            metric_file,
        })
    }

    /// Records the mean training loss and the throughput over the last window of steps.
    pub fn progress(
        &mut self,
        step: usize,
        loss: f64,
        examples_per_second: f64,
    ) -> Result<(), TrainError> {
        self.train
            .scalars(
                step as i64,
                now(),
                &[("loss", loss), ("examples_per_second", examples_per_second)],
            )
            .map_err(|source| events_error(Path::new("train"), source))
    }

    /// Records one evaluation's metrics: as event scalars, and as one `cloudml-hypertune` line per
    /// metric so a tuning job reads the built-in algorithms' metrics the way it reads any
    /// trainer's.
    pub fn evaluation(
        &mut self,
        step: usize,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<(), TrainError> {
        let timestamp = now();
        let values: Vec<(&str, f64)> = metrics
            .iter()
            .map(|(tag, value)| (tag.as_str(), *value))
            .collect();
        self.eval
            .scalars(step as i64, timestamp, &values)
            .map_err(|source| events_error(Path::new("eval"), source))?;
        let Some(path) = &self.metric_file else {
            return Ok(());
        };
        let mut lines = String::new();
        for (tag, value) in metrics {
            let mut line = serde_json::Map::new();
            line.insert(tag.clone(), value.to_string().into());
            line.insert("global_step".into(), step.to_string().into());
            line.insert("timestamp".into(), timestamp.into());
            lines.push_str(&serde_json::Value::Object(line).to_string());
            lines.push('\n');
        }
        let io = |source| TrainError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        std::io::Write::write_all(&mut file, lines.as_bytes()).map_err(io)
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

fn events_error(dir: &Path, source: kiln_events::EventsError) -> TrainError {
    match source {
        kiln_events::EventsError::Io(source) => TrainError::Io {
            path: dir.display().to_string(),
            source,
        },
        other => TrainError::Data(format!("{}: {other}", dir.display())),
    }
}
