//! A job's training curves, for the console and `tensorboard`-less users: the scalars of the
//! TensorBoard event files under the job directory, grouped into series by run and tag.
//!
//! Event files are read from the local disk. Those of a `jobDir` in a bucket are first mirrored
//! into the job's working directory ([`events_root`], [`mirror_events`]), which is also where a
//! tuning job's trials' metrics are read from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_api::{JobMetrics, MetricPoint, MetricSeries};
use kiln_artifacts::bucket;

use crate::RegistryError;
use crate::jobs::Jobs;

/// The file names TensorBoard event files have in common.
const EVENTS_MARKER: &str = "tfevents";

/// Where the event files under a job's `jobDir` are read: the directory itself, or for a bucket
/// the mirror in the job's working directory that [`mirror_events`] keeps.
pub(crate) fn events_root(job_dir: &str, working_dir: &Path) -> PathBuf {
    match bucket::is_bucket(job_dir) {
        true => working_dir.join("job-dir"),
        false => PathBuf::from(job_dir),
    }
}

/// Brings the event files under `<jobDir>/<below>` of a job whose `jobDir` is in a bucket into
/// their mirror (nothing to do for a local `jobDir`). A bucket that cannot be read leaves the
/// mirror as it was: curves are shown as far as they could be read.
pub(crate) async fn mirror_events(job_dir: &str, working_dir: &Path, below: &str) {
    if !bucket::is_bucket(job_dir) {
        return;
    }
    let (source, target) = match below.is_empty() {
        true => (job_dir.to_string(), events_root(job_dir, working_dir)),
        false => (
            format!("{}/{below}", job_dir.trim_end_matches('/')),
            events_root(job_dir, working_dir).join(below),
        ),
    };
    if let Err(error) = bucket::mirror(&source, &target, EVENTS_MARKER).await {
        tracing::warn!(%error, job_dir, "could not read the job's event files");
    }
}

/// Most points of one series [`Jobs::metrics`] returns.
const MAX_SERIES_POINTS: usize = 1000;

impl Jobs {
    /// The job's training curves, read from the TensorBoard event files under its `jobDir` (the
    /// built-in algorithms write them, and so does any TensorFlow or PyTorch trainer that logs
    /// summaries there). A job without a `jobDir`, or with no events yet, has no series.
    pub async fn metrics(
        self: &Arc<Self>,
        project: &str,
        job_id: &str,
    ) -> Result<JobMetrics, RegistryError> {
        let job = self.get(project, job_id)?;
        let Some(input) = job.training_input.filter(|input| !input.job_dir.is_empty()) else {
            return Ok(JobMetrics::default());
        };
        let working_dir = self.working_dir(project, job_id);
        mirror_events(&input.job_dir, &working_dir, "").await;
        let root = events_root(&input.job_dir, &working_dir);
        tokio::task::spawn_blocking(move || read_series(&root))
            .await
            .map_err(|error| RegistryError::Internal(error.to_string()))
    }
}

/// The scalars of the event files under `root`, as series by run (the directory below `root`)
/// and tag.
fn read_series(root: &Path) -> JobMetrics {
    let mut series: BTreeMap<(String, String), Vec<MetricPoint>> = BTreeMap::new();
    for file in kiln_events::find(root, 4) {
        let run = file
            .parent()
            .and_then(|dir| dir.strip_prefix(root).ok())
            .map(|dir| dir.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A damaged file still gives the scalars before the damage.
        let mut tail = kiln_events::Tail::default();
        for scalar in tail.read(&file).unwrap_or_default() {
            series
                .entry((run.clone(), scalar.tag))
                .or_default()
                .push(MetricPoint {
                    step: scalar.step,
                    value: scalar.value,
                    wall_time: scalar.wall_time,
                });
        }
    }
    let series = series
        .into_iter()
        .map(|((run, tag), mut points)| {
            points.sort_by(|a, b| {
                a.step
                    .cmp(&b.step)
                    .then(a.wall_time.total_cmp(&b.wall_time))
            });
            MetricSeries {
                run,
                tag,
                points: thin(points, MAX_SERIES_POINTS),
            }
        })
        .collect();
    JobMetrics { series }
}

/// At most `limit` of `points`, evenly spaced, always keeping the last.
fn thin(points: Vec<MetricPoint>, limit: usize) -> Vec<MetricPoint> {
    if points.len() <= limit {
        return points;
    }
    let stride = points.len().div_ceil(limit);
    let last = points.len() - 1;
    points
        .into_iter()
        .enumerate()
        .filter(|(index, _)| (last - index).is_multiple_of(stride))
        .map(|(_, point)| point)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_at_most_the_limit_evenly_and_the_last_point() {
        let points: Vec<MetricPoint> = (0..2500)
            .map(|step| MetricPoint {
                step,
                value: step as f64,
                wall_time: 0.0,
            })
            .collect();
        let thinned = thin(points.clone(), 1000);
        assert!(
            thinned.len() <= 1000 && thinned.len() > 800,
            "{}",
            thinned.len()
        );
        assert_eq!(thinned.last().map(|p| p.step), Some(2499));
        let gaps: Vec<i64> = thinned.windows(2).map(|w| w[1].step - w[0].step).collect();
        assert!(gaps.iter().all(|gap| *gap == gaps[0]), "even spacing");
        assert_eq!(thin(points[..10].to_vec(), 1000).len(), 10);
    }
}
