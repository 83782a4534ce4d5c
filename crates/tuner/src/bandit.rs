//! The default designer (ALGORITHM_UNSPECIFIED) for one objective: a GP bandit after Vizier's
//! (hpo-design.md §6).
//!
//! Warped objectives are fitted by a GP; the next point maximises the upper confidence bound
//! μ + β·σ inside a trust region around the points already tried, which grows with their number
//! and disappears once it would cover most of the box. (Log expected improvement without a trust
//! region, Optuna's choice, was tried on `bench/hpo.py`: worse on Hartmann-6 and Ackley-5.) Points
//! suggested but not yet measured (parallel trials) enter the GP with their predicted mean as their
//! value (Kriging believer): the mean does not move, the uncertainty around them collapses, so a
//! batch spreads out.

use rand_chacha::ChaCha8Rng;

use crate::acquisition::{maximise, taken};
use crate::model;
use crate::space::{Point, Space};
use crate::warp::warp;

/// Exploration weight of the upper confidence bound (Vizier's default).
const BETA: f64 = 1.8;
/// Best observed points whose neighbourhoods are searched.
const NEAR: usize = 5;

/// Suggests `count` new points. `observed` holds larger-is-better values (failures already set to
/// the worst).
pub fn suggest(
    space: &Space,
    observed: &[(Point, f64)],
    pending: &[Point],
    count: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Point> {
    let points: Vec<Point> = observed.iter().map(|(point, _)| point.clone()).collect();
    let raw = observed.iter().map(|(_, value)| *value).collect::<Vec<_>>();
    let Some(mut gp) = model::fit(space, &points, &warp(&raw), rng) else {
        return Vec::new();
    };
    let mut taken = taken(space, &points, pending);
    for point in pending {
        gp = gp.believing(point);
    }
    let mut best_observed: Vec<&(Point, f64)> = observed.iter().collect();
    best_observed.sort_by(|a, b| b.1.total_cmp(&a.1));
    let near: Vec<&Point> = best_observed.iter().take(NEAR).map(|(p, _)| p).collect();
    let mut chosen = Vec::new();
    for _ in 0..count {
        let score = |point: &Point| {
            let (mean, sd) = gp.predict(point);
            mean + BETA * sd
        };
        let Some(point) = maximise(space, &taken, &near, &score, rng) else {
            break;
        };
        gp = gp.believing(&point);
        taken.push(point.clone());
        chosen.push(point);
    }
    chosen
}
