//! The default designer (ALGORITHM_UNSPECIFIED) for several metrics: objectives whose Pareto front
//! is sought, and safety constraints every trial should meet.
//!
//! Each metric has a GP of its own. Objectives are warped as a single objective is (the warp keeps
//! their order, so the front is the same), and a point's acquisition is the hypervolume its upper
//! confidence bounds would add to the front found so far, computed through random hypervolume
//! scalarizations (Golovin and Zhang, 2020; Vizier's multi-objective acquisition): for a weight
//! vector λ on the positive unit sphere, `s_λ(y) = minᵢ max(0, yᵢ − rᵢ) / λᵢ`, and the hypervolume a
//! set dominates above the reference point `r` is proportional to the mean over λ of the largest
//! `s_λᵏ` in the set (k objectives). A point dominated by the front adds nothing; a small share of
//! its own scalarized value still leads the search towards the front.
//!
//! A constraint's GP sees its margin (how far on the safe side of the threshold a trial lies,
//! standardised), and the acquisition is weighed by the probability that every margin is
//! non-negative. Only safe trials make the front. Suggested but unmeasured points are believed at
//! their predicted means, in every GP and on the front, so a batch spreads along it.

use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::acquisition::{gaussian, maximise, taken};
use crate::front::dominates;
use crate::gp::Gp;
use crate::model;
use crate::space::{Point, Space};
use crate::warp::{moments, standardise, warp};

/// Exploration weight of the upper confidence bounds: below one objective's, since the
/// hypervolume improvement itself already rewards points away from those tried.
const BETA: f64 = 1.0;
/// Weight vectors over which the hypervolume improvement is averaged.
const SCALARIZATIONS: usize = 128;
/// The reference point lies this share of each objective's observed range below its worst value.
const REFERENCE_MARGIN: f64 = 0.1;
/// Share of a point's own scalarized value added to its improvement (a gradient where it is 0).
const TOWARDS_FRONT: f64 = 1e-3;
/// Front points whose neighbourhoods are searched.
const NEAR: usize = 5;

/// Suggests `count` new points. Each observation holds the `objectives` larger-is-better values,
/// then one margin per constraint (safe when ≥ 0); failures already set to the worst of each.
pub fn suggest(
    space: &Space,
    objectives: usize,
    observed: &[(Point, Vec<f64>)],
    pending: &[Point],
    count: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Point> {
    let points: Vec<Point> = observed.iter().map(|(point, _)| point.clone()).collect();
    let metrics = observed.first().map_or(0, |(_, values)| values.len());
    let column = |at: usize| -> Vec<f64> { observed.iter().map(|(_, v)| v[at]).collect() };
    let mut warped = Vec::new();
    let mut gps = Vec::new();
    let mut bars = Vec::new();
    for at in 0..metrics {
        let (targets, bar) = if at < objectives {
            (warp(&column(at)), 0.0)
        } else {
            standardised_margin(&column(at))
        };
        let Some(gp) = model::fit(space, &points, &targets, rng) else {
            return Vec::new();
        };
        gps.push(gp);
        if at < objectives {
            warped.push(targets);
        } else {
            bars.push(bar);
        }
    }
    let reference: Vec<f64> = warped
        .iter()
        .map(|values| {
            let (low, high) = values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                    (l.min(*v), h.max(*v))
                });
            low - REFERENCE_MARGIN * (high - low).max(1e-9)
        })
        .collect();
    let safe: Vec<usize> = (0..observed.len())
        .filter(|at| observed[*at].1[objectives..].iter().all(|m| *m >= 0.0))
        .collect();
    let front_values: Vec<Vec<f64>> = safe
        .iter()
        .map(|at| warped.iter().map(|values| values[*at]).collect())
        .collect();
    let mut hypervolume = Scalarizations::new(objectives, reference, SCALARIZATIONS, rng);
    for values in &front_values {
        hypervolume.add(values);
    }
    let near = front_points(&safe, &front_values, &points, rng);
    let mut taken = taken(space, &points, pending);
    for point in pending {
        believe(&mut gps, &mut hypervolume, objectives, point);
    }
    let mut chosen = Vec::new();
    for _ in 0..count {
        let score = |point: &Point| {
            let mut bounds = Vec::with_capacity(objectives);
            let mut safety = 1.0;
            for (at, gp) in gps.iter().enumerate() {
                let (mean, sd) = gp.predict(point);
                match at.checked_sub(objectives) {
                    None => bounds.push(mean + BETA * sd),
                    Some(constraint) => safety *= normal_cdf((mean - bars[constraint]) / sd),
                }
            }
            safety * hypervolume.improvement(&bounds)
        };
        let Some(point) = maximise(space, &taken, &near, &score, rng) else {
            break;
        };
        believe(&mut gps, &mut hypervolume, objectives, &point);
        taken.push(point.clone());
        chosen.push(point);
    }
    chosen
}

/// Every GP believes `point` at its mean, and the front takes the objectives' means.
fn believe(gps: &mut Vec<Gp>, hypervolume: &mut Scalarizations, objectives: usize, point: &Point) {
    let means: Vec<f64> = gps[..objectives]
        .iter()
        .map(|gp| gp.predict(point).0)
        .collect();
    hypervolume.add(&means);
    *gps = std::mem::take(gps)
        .into_iter()
        .map(|gp| gp.believing(point))
        .collect();
}

/// Up to [`NEAR`] points of the safe front (non-dominated among the safe trials), drawn at random.
fn front_points<'a>(
    safe: &[usize],
    values: &[Vec<f64>],
    points: &'a [Point],
    rng: &mut ChaCha8Rng,
) -> Vec<&'a Point> {
    let front: Vec<usize> = (0..values.len())
        .filter(|i| !values.iter().any(|other| dominates(other, &values[*i])))
        .collect();
    sample(rng, front.len(), NEAR.min(front.len()))
        .iter()
        .map(|at| &points[safe[front[at]]])
        .collect()
}

/// Margins standardised, and where a margin of 0 (the threshold) lies after that.
fn standardised_margin(margins: &[f64]) -> (Vec<f64>, f64) {
    let (mean, sd) = moments(margins);
    (standardise(margins), -mean / sd)
}

/// Random hypervolume scalarizations of a front: the weight vectors, the reference point and the
/// largest `s_λᵏ` of the front for each λ.
struct Scalarizations {
    weights: Vec<Vec<f64>>,
    reference: Vec<f64>,
    best: Vec<f64>,
}

impl Scalarizations {
    /// `count` weight vectors drawn uniformly on the positive part of the unit sphere (normalised
    /// absolute Gaussian draws).
    fn new(objectives: usize, reference: Vec<f64>, count: usize, rng: &mut ChaCha8Rng) -> Self {
        let weights: Vec<Vec<f64>> = (0..count)
            .map(|_| {
                let draw: Vec<f64> = (0..objectives).map(|_| gaussian(rng).abs()).collect();
                let norm = draw.iter().map(|w| w * w).sum::<f64>().sqrt().max(1e-12);
                draw.iter().map(|w| (w / norm).max(1e-6)).collect()
            })
            .collect();
        Self {
            best: vec![0.0; weights.len()],
            weights,
            reference,
        }
    }

    /// `s_λ(y)ᵏ`.
    fn scalarize(reference: &[f64], weight: &[f64], values: &[f64]) -> f64 {
        let s = values
            .iter()
            .zip(reference)
            .zip(weight)
            .map(|((y, r), w)| (y - r).max(0.0) / w)
            .fold(f64::INFINITY, f64::min);
        s.powi(values.len() as i32)
    }

    fn add(&mut self, values: &[f64]) {
        for (weight, best) in self.weights.iter().zip(&mut self.best) {
            *best = best.max(Self::scalarize(&self.reference, weight, values));
        }
    }

    /// The hypervolume `values` would add (up to a constant), plus a small share of their own.
    fn improvement(&self, values: &[f64]) -> f64 {
        let (mut gained, mut own) = (0.0, 0.0);
        for (weight, best) in self.weights.iter().zip(&self.best) {
            let s = Self::scalarize(&self.reference, weight, values);
            gained += (s - best).max(0.0);
            own += s;
        }
        (gained + TOWARDS_FRONT * own) / self.weights.len() as f64
    }
}

/// Φ(x), the standard normal distribution function (erfc by Numerical Recipes' Chebyshev fit,
/// relative error below 1.2e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let erfc = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_normal_distribution_function_is_phi() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_963_985) - 0.975).abs() < 1e-7);
        assert!((normal_cdf(-3.090_232_306) - 0.001).abs() < 1e-8);
    }

    #[test]
    fn scalarizations_measure_the_hypervolume_a_point_adds() {
        // Two objectives, reference (0, 0), front {(1, 3), (3, 1)}: 5 units dominated. (2, 2) adds
        // exactly 1 and (4, 4) adds 11; the ratio of their improvements says so.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut front = Scalarizations::new(2, vec![0.0, 0.0], 20_000, &mut rng);
        front.add(&[1.0, 3.0]);
        front.add(&[3.0, 1.0]);
        assert!(front.improvement(&[0.5, 0.5]) < 1e-2, "dominated");
        let ratio = front.improvement(&[4.0, 4.0]) / front.improvement(&[2.0, 2.0]);
        assert!((ratio - 11.0).abs() < 1.0, "{ratio}");
    }
}
