//! The median stopping rule of the Vizier paper (§6), with Katib's and Ray's guards.
//!
//! A running trial is stopped when the best value it has reported so far is worse than the median,
//! over completed trials, of their running averages up to the same step. It is never judged before
//! [`MIN_COMPLETED`] completed trials have measurements that early, nor before a quarter of the
//! longest completed trial's steps (the grace period).

use super::Measurement;
use crate::Goal;

/// Completed trials needed before any trial is stopped.
pub const MIN_COMPLETED: usize = 3;

/// Whether the median rule stops a running trial, given its measurements and those of the
/// completed trials.
pub fn should_stop(goal: Goal, running: &[Measurement], completed: &[Vec<Measurement>]) -> bool {
    let Some(latest) = running.iter().map(|m| m.step).reduce(f64::max) else {
        return false;
    };
    let longest = completed
        .iter()
        .flat_map(|curve| curve.iter().map(|m| m.step))
        .fold(f64::NEG_INFINITY, f64::max);
    if latest < 0.25 * longest {
        return false;
    }
    let better = |a: f64, b: f64| match goal {
        Goal::Maximize => a > b,
        Goal::Minimize => a < b,
    };
    let mut averages: Vec<f64> = completed
        .iter()
        .filter_map(|curve| {
            let early: Vec<f64> = curve
                .iter()
                .filter(|m| m.step <= latest)
                .map(|m| m.value)
                .collect();
            (!early.is_empty()).then(|| early.iter().sum::<f64>() / early.len() as f64)
        })
        .collect();
    if averages.len() < MIN_COMPLETED {
        return false;
    }
    averages.sort_by(f64::total_cmp);
    let n = averages.len();
    let median = if n % 2 == 1 {
        averages[n / 2]
    } else {
        0.5 * (averages[n / 2 - 1] + averages[n / 2])
    };
    let best = running
        .iter()
        .map(|m| m.value)
        .reduce(|a, b| if better(a, b) { a } else { b })
        .unwrap_or(median);
    better(median, best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stopping::Rule;
    use crate::stopping::curves::{assert_saves, curve};

    #[test]
    fn stops_a_clearly_bad_trial_and_keeps_a_good_one() {
        let completed = vec![curve(0.8, 100), curve(0.85, 100), curve(0.9, 100)];
        assert!(should_stop(Goal::Maximize, &curve(0.3, 40), &completed));
        assert!(!should_stop(Goal::Maximize, &curve(0.95, 40), &completed));
        // Grace period: too early to judge.
        assert!(!should_stop(Goal::Maximize, &curve(0.3, 20), &completed));
        // Too few completed trials.
        assert!(!should_stop(
            Goal::Maximize,
            &curve(0.3, 40),
            &completed[..2]
        ));
        // For a loss, lower is better.
        let losses = vec![curve(-0.8, 100), curve(-0.85, 100), curve(-0.9, 100)];
        assert!(should_stop(Goal::Minimize, &curve(-0.3, 40), &losses));
        assert!(!should_stop(Goal::Minimize, &curve(-0.95, 40), &losses));
    }

    #[test]
    fn saves_steps_on_synthetic_curves_without_losing_the_best() {
        assert_saves(Rule::Median, 0.8);
    }
}
