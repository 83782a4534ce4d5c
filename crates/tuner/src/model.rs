//! Fitting a GP to one metric's observations, for the designers that model the objective.
//!
//! The GP's hyper-parameters are fitted from the priors' means and from one seeded random start,
//! never from an earlier fit, so the same history always gives the same model. Beyond
//! [`MAX_POINTS`] observations the GP sees a subset (the best half of it by value, the rest drawn
//! at random): its fit costs the cube of the points it sees, and each prediction their square.

use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::acquisition::gaussian;
use crate::gp::{Gp, Theta};
use crate::space::{Point, Space};

/// Most observations one GP is fitted and conditioned on.
pub const MAX_POINTS: usize = 200;
/// L-BFGS iterations per hyper-parameter fit start.
const FIT_ITERATIONS: u64 = 40;

/// A GP fitted to `targets` (standardised, larger is better) at `points`; `None` only when no
/// kernel matrix could be factored.
pub fn fit(space: &Space, points: &[Point], targets: &[f64], rng: &mut ChaCha8Rng) -> Option<Gp> {
    let (points, targets) = subset(points, targets, rng);
    let dims = space.unit_dims() + space.category_sizes().len();
    let mut starts = vec![Theta::default_for(dims)];
    starts.push(Theta(
        starts[0].0.iter().map(|t| t + gaussian(rng)).collect(),
    ));
    Gp::fit(points, targets, &starts, FIT_ITERATIONS)
}

/// All observations when they are at most [`MAX_POINTS`]; else the best half of that many and
/// the rest drawn at random from the others.
fn subset(points: &[Point], targets: &[f64], rng: &mut ChaCha8Rng) -> (Vec<Point>, Vec<f64>) {
    if points.len() <= MAX_POINTS {
        return (points.to_vec(), targets.to_vec());
    }
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|a, b| targets[*b].total_cmp(&targets[*a]));
    let (best, others) = order.split_at(MAX_POINTS / 2);
    let drawn = sample(rng, others.len(), MAX_POINTS - best.len());
    best.iter()
        .copied()
        .chain(drawn.iter().map(|at| others[at]))
        .map(|at| (points[at].clone(), targets[at]))
        .unzip()
}
