//! Pareto optimality among measured trials: which trials a study reports as optimal.
//!
//! A trial is feasible when it was measured and meets every safety threshold; among the feasible,
//! the optimal are those no other trial dominates (at least as good in every objective and better
//! in one). With one objective that is every trial tied for the best value.

use crate::{Goal, Metric, Trial};

/// Whether `a` dominates `b`, both larger-is-better.
pub(crate) fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x >= y) && a.iter().zip(b).any(|(x, y)| x > y)
}

/// Larger-is-better value of `value` for a metric with this goal.
pub(crate) fn oriented(goal: Goal, value: f64) -> f64 {
    match goal {
        Goal::Maximize => value,
        Goal::Minimize => -value,
    }
}

/// A trial's measured values, larger-is-better: the objectives in order, and each constraint's
/// margin (its value less the threshold, non-negative when met); `None` unless there is one
/// finite value per metric.
pub(crate) fn split(metrics: &[Metric], values: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    if values.len() != metrics.len() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let (mut objectives, mut margins) = (Vec::new(), Vec::new());
    for (metric, value) in metrics.iter().zip(values) {
        let value = oriented(metric.goal, *value);
        match metric.threshold {
            Some(threshold) => margins.push(value - oriented(metric.goal, threshold)),
            None => objectives.push(value),
        }
    }
    Some((objectives, margins))
}

/// Indices of the optimal trials among `trials`, measured on `metrics`, in their order.
pub fn optimal(metrics: &[Metric], trials: &[Trial]) -> Vec<usize> {
    let feasible: Vec<(usize, Vec<f64>)> = trials
        .iter()
        .enumerate()
        .filter_map(|(at, trial)| {
            let (objectives, margins) = split(metrics, trial.metrics.as_ref()?)?;
            margins
                .iter()
                .all(|m| *m >= 0.0)
                .then_some((at, objectives))
        })
        .collect();
    feasible
        .iter()
        .filter(|(_, values)| !feasible.iter().any(|(_, other)| dominates(other, values)))
        .map(|(at, _)| *at)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn trial(metrics: Option<Vec<f64>>) -> Trial {
        Trial {
            values: vec![Value::Number(0.0)],
            metrics,
        }
    }

    #[test]
    fn the_front_keeps_the_feasible_non_dominated_trials() {
        let metrics = [
            Metric::objective(Goal::Maximize),
            Metric::objective(Goal::Minimize),
            Metric {
                goal: Goal::Minimize,
                threshold: Some(10.0),
            },
        ];
        let trials = [
            trial(Some(vec![1.0, 1.0, 5.0])),  // on the front
            trial(Some(vec![2.0, 3.0, 5.0])),  // on the front
            trial(Some(vec![1.0, 2.0, 5.0])),  // dominated by 0
            trial(Some(vec![9.0, 0.0, 11.0])), // would dominate all, but unsafe
            trial(None),                       // failed
            trial(Some(vec![2.0, 3.0, 10.0])), // ties 1, exactly at the threshold
        ];
        assert_eq!(optimal(&metrics, &trials), vec![0, 1, 5]);
        let single = [Metric::objective(Goal::Minimize)];
        let trials = [
            trial(Some(vec![3.0])),
            trial(Some(vec![1.0])),
            trial(Some(vec![1.0])),
        ];
        assert_eq!(optimal(&single, &trials), vec![1, 2]);
    }
}
