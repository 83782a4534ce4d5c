//! Asynchronous successive halving (ASHA, Li et al. 2020) over the steps trials report: the
//! learning-curve rule.
//!
//! Rungs sit at the first step any finished trial reported (the grace period) times 1, η, η², …,
//! below the budget (the last step one reported), each moved down to the nearest step a finished
//! trial reported. A running trial is judged at the highest rung it has passed: it goes on while
//! the best value it reported up to the rung reaches the finished trials' (1 − 1/η) quantile there
//! (interpolated, as Ray Tune's ASHA does), so about one trial in η carries on past each rung. A rung is judged only once [`MIN_PEERS`] finished
//! trials have reached it, and nothing is judged before a trial has finished.

use super::Measurement;
use crate::Goal;
use crate::front::oriented;

/// The reduction factor: rungs are η times apart, and one trial in η passes each.
pub const ETA: f64 = 3.0;

/// Finished trials that must have reached a rung before it stops anyone.
pub const MIN_PEERS: usize = 2;

/// Whether successive halving stops a running trial, given its measurements and the curves of the
/// finished trials.
pub fn should_stop(goal: Goal, running: &[Measurement], finished: &[Vec<Measurement>]) -> bool {
    let Some(latest) = running.iter().map(|m| m.step).reduce(f64::max) else {
        return false;
    };
    let mut steps: Vec<f64> = finished
        .iter()
        .flatten()
        .map(|m| m.step)
        .filter(|step| step.is_finite())
        .collect();
    steps.sort_by(f64::total_cmp);
    steps.dedup();
    let Some(rung) = rung(&steps, latest) else {
        return false;
    };
    // A curve's value at the rung: its best up to there, if it ran that far.
    let at = |curve: &[Measurement]| -> Option<f64> {
        curve.iter().any(|m| m.step >= rung).then_some(())?;
        curve
            .iter()
            .filter(|m| m.step <= rung && m.value.is_finite())
            .map(|m| oriented(goal, m.value))
            .reduce(f64::max)
    };
    let Some(own) = at(running) else {
        return false;
    };
    let mut peers: Vec<f64> = finished.iter().filter_map(|curve| at(curve)).collect();
    if peers.len() < MIN_PEERS {
        return false;
    }
    peers.sort_by(f64::total_cmp);
    own < quantile(&peers, 1.0 - 1.0 / ETA)
}

/// The highest rung at or below `latest`: the last step of `steps` (sorted) at or below
/// first · ηᵏ, k ≥ 0, short of the budget (the last step).
fn rung(steps: &[f64], latest: f64) -> Option<f64> {
    let (first, budget) = (*steps.first()?, *steps.last()?);
    let mut found = None;
    let mut bound = first;
    while bound < budget {
        let step = *steps.iter().rev().find(|step| **step <= bound)?;
        if step > latest {
            break;
        }
        found = Some(step);
        bound *= ETA;
    }
    found
}

/// The `q` quantile of sorted `values`, interpolated linearly between neighbours.
fn quantile(values: &[f64], q: f64) -> f64 {
    let position = q * (values.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    values[low] + (position - low as f64) * (values[high] - values[low])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stopping::Rule;
    use crate::stopping::curves::{assert_saves, curve};

    #[test]
    fn rungs_are_reported_steps_a_factor_eta_apart() {
        let steps: Vec<f64> = (1..=27).map(f64::from).collect();
        assert_eq!(rung(&steps, 0.5), None);
        assert_eq!(rung(&steps, 1.0), Some(1.0));
        assert_eq!(rung(&steps, 8.0), Some(3.0));
        assert_eq!(rung(&steps, 26.0), Some(9.0));
        // The budget itself is no rung.
        assert_eq!(rung(&steps, 27.0), Some(9.0));
        // Epochs of 1018 steps: rungs at epochs 1 and 3; 9 is past the budget.
        let steps: Vec<f64> = (1..=8).map(|i| f64::from(i * 1018)).collect();
        assert_eq!(rung(&steps, 2036.0), Some(1018.0));
        assert_eq!(rung(&steps, 8144.0), Some(3054.0));
        // Uneven steps: 15 · 3 = 45 moves down to 40.
        let steps = [15.0, 40.0, 50.0, 200.0];
        assert_eq!(rung(&steps, 45.0), Some(40.0));
        assert_eq!(rung(&steps, 14.0), None);
    }

    #[test]
    fn stops_below_the_top_third_at_a_rung_and_keeps_the_rest() {
        let finished = vec![curve(0.8, 200), curve(0.85, 200), curve(0.9, 200)];
        // At rung 30 the peers' 2/3 quantile lies between 0.85's and 0.9's curves.
        assert!(should_stop(Goal::Maximize, &curve(0.84, 30), &finished));
        assert!(!should_stop(Goal::Maximize, &curve(0.95, 30), &finished));
        // Before the first rung nothing is judged; with one peer neither.
        let early = [Measurement {
            step: 5.0,
            value: 0.0,
        }];
        assert!(!should_stop(Goal::Maximize, &early, &finished));
        assert!(should_stop(Goal::Maximize, &curve(0.3, 10), &finished));
        assert!(!should_stop(
            Goal::Maximize,
            &curve(0.3, 30),
            &finished[..1]
        ));
        // Trials stopped early count only at the rungs they reached: at rung 90 only one did.
        let stopped = vec![curve(0.8, 200), curve(0.95, 30), curve(0.99, 30)];
        assert!(should_stop(Goal::Maximize, &curve(0.84, 70), &stopped));
        assert!(!should_stop(Goal::Maximize, &curve(0.84, 100), &stopped));
        // For a loss, lower is better.
        let losses: Vec<_> = [0.8, 0.85, 0.9].map(|v| curve(-v, 200)).to_vec();
        assert!(should_stop(Goal::Minimize, &curve(-0.84, 30), &losses));
        assert!(!should_stop(Goal::Minimize, &curve(-0.95, 30), &losses));
    }

    #[test]
    fn saves_two_fifths_of_the_steps_without_losing_the_best() {
        assert_saves(Rule::Halving, 0.6);
    }
}
