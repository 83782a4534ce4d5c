//! Automated early stopping: a rule judges a running trial by the measurements it has reported,
//! against the curves of the trials that finished before it.
//!
//! - [`Rule::Median`]: the median stopping rule of the Vizier paper, which stops trials clearly
//!   worse than the typical one.
//! - [`Rule::Halving`]: asynchronous successive halving over the reported steps, a learning-curve
//!   rule that lets about one trial in [`halving::ETA`] go on past each rung; it saves the most
//!   compute.

pub mod halving;
pub mod median;

use crate::Goal;

/// One measurement of a trial's objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Training step (or elapsed seconds).
    pub step: f64,
    /// Objective value.
    pub value: f64,
}

/// Which rule judges running trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rule {
    /// The median rule ([`median`]).
    Median,
    /// Asynchronous successive halving ([`halving`]).
    #[default]
    Halving,
}

impl Rule {
    /// Whether to stop a running trial, given its measurements and the curves of the finished
    /// trials (a trial stopped early counts with the steps it ran).
    pub fn should_stop(
        self,
        goal: Goal,
        running: &[Measurement],
        finished: &[Vec<Measurement>],
    ) -> bool {
        match self {
            Rule::Median => median::should_stop(goal, running, finished),
            Rule::Halving => halving::should_stop(goal, running, finished),
        }
    }
}

/// Learning curves for the rules' tests.
#[cfg(test)]
mod curves {
    use super::{Measurement, Rule};
    use crate::Goal;

    /// y_t = y∞ · (1 − e^(−t/τ)), measured every 10 steps up to `until`.
    pub(super) fn curve(final_value: f64, until: usize) -> Vec<Measurement> {
        (1..=until / 10)
            .map(|i| {
                let step = (i * 10) as f64;
                Measurement {
                    step,
                    value: final_value * (1.0 - (-step / 30.0).exp()),
                }
            })
            .collect()
    }

    /// Runs 20 trials of 200 steps in order under `rule`, their final values an anchor function of a
    /// 1-D parameter, and checks that the rule ran at most `share` of the 400 reports and let the
    /// best trial (1.0) run to its end.
    pub(super) fn assert_saves(rule: Rule, share: f64) {
        let finals: Vec<f64> = (0..20)
            .map(|i| 1.0 - (((i * 7 % 20) as f64 - 13.0) / 10.0).powi(2))
            .collect();
        let mut finished: Vec<Vec<Measurement>> = Vec::new();
        let (mut steps, mut best) = (0, f64::NEG_INFINITY);
        for final_value in &finals {
            let full = curve(*final_value, 200);
            let mut seen = Vec::new();
            for measurement in &full {
                seen.push(*measurement);
                if rule.should_stop(Goal::Maximize, &seen, &finished) {
                    break;
                }
            }
            steps += seen.len();
            if seen.len() == full.len() {
                best = best.max(*final_value);
            }
            finished.push(seen);
        }
        assert!(steps as f64 <= share * 400.0, "{steps} of 400 steps");
        assert_eq!(best, 1.0, "the best trial ran to the end");
    }
}
