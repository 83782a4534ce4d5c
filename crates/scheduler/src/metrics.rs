//! A tuning trial's metric, read while the trial runs, from wherever the trainer reports it.
//!
//! - Hypertune files: the `cloudml-hypertune` file (`CLOUD_ML_HP_METRIC_FILE`), and the file the
//!   server appends the measurements a trainer sends over HTTP to. JSON lines such as
//!   `{"global_step": "100", "accuracy": "0.85", "timestamp": 1.7e9, "trial": "1", ...}`. The Python
//!   package rewrites the whole file (its last 100 reports) on each report, and Kiln's built-in
//!   trainers append to it; reports are keyed by timestamp and tag, so both read the same.
//! - TensorBoard event files under the trial's output directory (`<jobDir>/<trialId>`, where ML
//!   Engine trainers write): scalars whose tag is the metric tag, followed with [`kiln_events::Tail`].
//!   A step already reported in a hypertune file is not counted again from the event files.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// One report of the metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Training step.
    pub step: i64,
    /// Value.
    pub value: f64,
    /// Seconds since the epoch when it was reported (orders reports from different sources).
    pub time: f64,
}

/// The source number of event files in [`MetricWatch`]'s keys; hypertune files are numbered from 0.
const EVENTS: u8 = u8::MAX;

/// Follows one trial's reports of one metric tag.
#[derive(Debug)]
pub struct MetricWatch {
    tag: String,
    hypertune_files: Vec<PathBuf>,
    events_dir: Option<PathBuf>,
    /// Event scalars written before this time (seconds since the epoch) belong to an earlier run
    /// that used the same directory.
    since: f64,
    tails: HashMap<PathBuf, kiln_events::Tail>,
    /// Reports by (time bits, source, step) so rereading a hypertune file adds nothing twice.
    reports: BTreeMap<(u64, u8, i64), Report>,
}

impl MetricWatch {
    /// Watches `hypertune_files` and, when given, event files anywhere under `events_dir` written
    /// from `since` (seconds since the epoch) on.
    pub fn new(
        tag: &str,
        hypertune_files: Vec<PathBuf>,
        events_dir: Option<PathBuf>,
        since: f64,
    ) -> Self {
        Self {
            tag: tag.to_string(),
            hypertune_files,
            events_dir,
            since,
            tails: HashMap::new(),
            reports: BTreeMap::new(),
        }
    }

    /// Reads what is new and returns every report so far, oldest first. Unreadable or malformed
    /// input is skipped: a trainer's half-written line must not fail its trial.
    pub fn poll(&mut self) -> Vec<Report> {
        for (source, file) in (0u8..EVENTS).zip(&self.hypertune_files) {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            for line in text.lines() {
                if let Some(report) = hypertune_line(line, &self.tag) {
                    self.reports
                        .insert((report.time.to_bits(), source, report.step), report);
                }
            }
        }
        if let Some(dir) = &self.events_dir {
            for file in kiln_events::find(dir, 4) {
                let tail = self.tails.entry(file.clone()).or_default();
                for scalar in tail.read(&file).unwrap_or_default() {
                    if scalar.tag == self.tag && scalar.wall_time >= self.since {
                        let report = Report {
                            step: scalar.step,
                            value: scalar.value,
                            time: scalar.wall_time,
                        };
                        self.reports
                            .insert((report.time.to_bits(), EVENTS, report.step), report);
                    }
                }
            }
        }
        // A trainer that reports through both channels (Kiln's built-ins do) counts once per step.
        let reported: std::collections::HashSet<i64> = self
            .reports
            .keys()
            .filter(|(_, source, _)| *source != EVENTS)
            .map(|(_, _, step)| *step)
            .collect();
        let mut reports: Vec<Report> = self
            .reports
            .iter()
            .filter(|((_, source, step), _)| *source != EVENTS || !reported.contains(step))
            .map(|(_, report)| *report)
            .collect();
        reports.sort_by(|a, b| a.time.total_cmp(&b.time).then(a.step.cmp(&b.step)));
        reports
    }
}

/// A report of `tag` in one line of a hypertune file; values may be strings or numbers.
fn hypertune_line(line: &str, tag: &str) -> Option<Report> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    let number = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => text.trim().parse::<f64>().ok(),
        other => other.as_f64(),
    };
    let value = number(entry.get(tag)?).filter(|value| value.is_finite())?;
    Some(Report {
        step: entry.get("global_step").and_then(number).unwrap_or(0.0) as i64,
        value,
        time: entry.get("timestamp").and_then(number).unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_sources_once_each_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("output.metrics");
        std::fs::write(
            &file,
            "{\"accuracy\": \"0.5\", \"global_step\": \"10\", \"timestamp\": 100.0, \"trial\": \"1\"}\n\
             {\"loss\": \"0.9\", \"global_step\": \"10\", \"timestamp\": 100.5}\n\
             not json\n",
        )
        .unwrap();
        let events = dir.path().join("1/eval");
        let mut writer = kiln_events::Writer::create(&events, 50.0).unwrap();
        writer.scalars(5, 50.0, &[("accuracy", 0.25)]).unwrap();
        let pushed = dir.path().join("pushed.metrics");
        let mut watch = MetricWatch::new(
            "accuracy",
            vec![file.clone(), pushed.clone()],
            Some(dir.path().join("1")),
            40.0,
        );
        kiln_events::Writer::create(&events.join("old"), 30.0)
            .unwrap()
            .scalars(1, 30.0, &[("accuracy", 0.99)])
            .unwrap();
        let reports = watch.poll();
        assert_eq!(
            reports
                .iter()
                .map(|r| (r.step, r.value))
                .collect::<Vec<_>>(),
            [(5, 0.25), (10, 0.5)]
        );
        // The package rewrites the file with one more line; nothing is counted twice.
        std::fs::write(
            &file,
            "{\"accuracy\": \"0.5\", \"global_step\": \"10\", \"timestamp\": 100.0}\n\
             {\"accuracy\": 0.75, \"global_step\": \"20\", \"timestamp\": 101.0}\n",
        )
        .unwrap();
        assert_eq!(
            watch.poll().last().map(|r| (r.step, r.value)),
            Some((20, 0.75))
        );
        assert_eq!(watch.poll().len(), 3);
        // A built-in trainer writes the same evaluation to both channels: it counts once.
        writer.scalars(20, 101.0, &[("accuracy", 0.75)]).unwrap();
        assert_eq!(watch.poll().len(), 3);
        // Measurements sent over HTTP join the rest in time order.
        std::fs::write(
            &pushed,
            "{\"accuracy\": 0.875, \"global_step\": 30, \"timestamp\": 100.7}\n",
        )
        .unwrap();
        assert_eq!(
            watch
                .poll()
                .iter()
                .map(|r| (r.step, r.value))
                .collect::<Vec<_>>(),
            [(5, 0.25), (10, 0.5), (30, 0.875), (20, 0.75)]
        );
    }
}
