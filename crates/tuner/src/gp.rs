//! Gaussian-process regression on encoded points: Matérn-5/2 with one length scale per numeric
//! dimension and per categorical parameter (ARD), fitted by maximum a posteriori with L-BFGS.
//!
//! Hyper-parameters live in log space, θ = (ln σ², ln ℓ₁², …, ln ℓ_D², ln σₙ²), with weak
//! log-normal priors and soft bounds, so the optimiser is unconstrained and a handful of points
//! cannot push a length scale to zero or infinity. Targets are expected standardised (mean 0,
//! variance 1), so the mean is the constant 0.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use nalgebra::{DMatrix, DVector};

use crate::space::Point;

/// Prior mean and spread of one log hyper-parameter, and the range it is softly held in.
#[derive(Clone, Copy)]
struct Prior {
    mean: f64,
    sd: f64,
    low: f64,
    high: f64,
}

/// Signal variance ≈ 1 (targets are standardised).
const AMPLITUDE: Prior = Prior {
    mean: 0.0,
    sd: 1.0,
    low: -4.6,
    high: 3.0,
};
/// Length scales around half the unit box; from 0.01 to 10.
const LENGTH: Prior = Prior {
    mean: -1.4,
    sd: 1.5,
    low: -9.2,
    high: 4.6,
};
/// Observation noise: small (objectives are often deterministic), between 1e-8 and 1.
const NOISE: Prior = Prior {
    mean: -9.0,
    sd: 3.0,
    low: -18.4,
    high: 0.0,
};
/// Added to the diagonal, growing on each failed Cholesky.
const JITTER: [f64; 4] = [1e-10, 1e-8, 1e-6, 1e-4];

fn matern(r2: f64, amplitude: f64) -> f64 {
    let s = (5.0 * r2).sqrt();
    amplitude * (1.0 + s + s * s / 3.0) * (-s).exp()
}

/// Per-dimension squared differences of two points: numeric coordinates, then 0/1 per category.
fn squared_differences(a: &Point, b: &Point) -> impl Iterator<Item = f64> {
    let units = a.unit.iter().zip(&b.unit).map(|(x, y)| (x - y) * (x - y));
    let categories = a
        .category
        .iter()
        .zip(&b.category)
        .map(|(x, y)| f64::from(u8::from(x != y)));
    units.chain(categories)
}

/// Hyper-parameters in log space.
#[derive(Debug, Clone, PartialEq)]
pub struct Theta(pub Vec<f64>);

impl Theta {
    /// The priors' means for `dims` dimensions.
    pub fn default_for(dims: usize) -> Self {
        let mut theta = vec![AMPLITUDE.mean];
        theta.extend(std::iter::repeat_n(LENGTH.mean, dims));
        theta.push(NOISE.mean);
        Self(theta)
    }

    fn prior(index: usize, len: usize) -> Prior {
        match index {
            0 => AMPLITUDE,
            i if i + 1 == len => NOISE,
            _ => LENGTH,
        }
    }

    fn amplitude(&self) -> f64 {
        self.0[0].exp()
    }

    fn noise(&self) -> f64 {
        self.0[self.0.len() - 1].exp()
    }

    fn inverse_lengths(&self) -> Vec<f64> {
        self.0[1..self.0.len() - 1]
            .iter()
            .map(|l| (-l).exp())
            .collect()
    }
}

/// A GP conditioned on data.
pub struct Gp {
    theta: Theta,
    inverse_lengths: Vec<f64>,
    points: Vec<Point>,
    targets: Vec<f64>,
    /// Lower Cholesky factor of K + σₙ²I.
    factor: DMatrix<f64>,
    alpha: DVector<f64>,
}

/// The training data's pairwise squared differences, computed once per fit.
struct Pairs {
    n: usize,
    dims: usize,
    /// `[(i * n + j) * dims + d]`.
    differences: Vec<f64>,
}

impl Pairs {
    fn new(points: &[Point]) -> Self {
        let n = points.len();
        let dims = points
            .first()
            .map_or(0, |p| p.unit.len() + p.category.len());
        let mut differences = vec![0.0; n * n * dims];
        for i in 0..n {
            for j in 0..i {
                for (d, value) in squared_differences(&points[i], &points[j]).enumerate() {
                    differences[(i * n + j) * dims + d] = value;
                    differences[(j * n + i) * dims + d] = value;
                }
            }
        }
        Self {
            n,
            dims,
            differences,
        }
    }

    fn r2(&self, i: usize, j: usize, inverse_lengths: &[f64]) -> f64 {
        let at = (i * self.n + j) * self.dims;
        self.differences[at..at + self.dims]
            .iter()
            .zip(inverse_lengths)
            .map(|(d, w)| d * w)
            .sum()
    }
}

/// Cholesky of `k` with growing jitter; `None` when even the largest fails.
fn cholesky(k: &DMatrix<f64>) -> Option<nalgebra::Cholesky<f64, nalgebra::Dyn>> {
    JITTER.iter().find_map(|jitter| {
        let mut jittered = k.clone();
        for i in 0..k.nrows() {
            jittered[(i, i)] += jitter;
        }
        jittered.cholesky()
    })
}

/// (LLᵀ)⁻¹ from the lower Cholesky factor L (only its lower triangle is read): M = L⁻¹ by forward
/// substitution, then MᵀM, about n³/3 multiply-adds, each pass along a contiguous column of the
/// column-major matrices.
fn inverse_from_factor(l: &DMatrix<f64>) -> DMatrix<f64> {
    let n = l.nrows();
    let factor = l.as_slice();
    // Column j of M solves L x = e_j, and is zero above row j.
    let mut m = vec![0.0; n * n];
    for j in 0..n {
        let x = &mut m[j * n..(j + 1) * n];
        x[j] = 1.0;
        for k in j..n {
            let column = &factor[k * n..(k + 1) * n];
            x[k] /= column[k];
            let xk = x[k];
            for (xi, lik) in x[k + 1..].iter_mut().zip(&column[k + 1..]) {
                *xi -= lik * xk;
            }
        }
    }
    // (MᵀM)ᵢⱼ = Σₖ Mₖᵢ Mₖⱼ over k ≥ max(i, j), where both columns can be non-zero.
    let mut inverse = DMatrix::zeros(n, n);
    for i in 0..n {
        let column_i = &m[i * n + i..(i + 1) * n];
        for j in 0..=i {
            let column_j = &m[j * n + i..(j + 1) * n];
            let value = dot(column_i, column_j);
            inverse[(i, j)] = value;
            inverse[(j, i)] = value;
        }
    }
    inverse
}

/// Σ aᵢbᵢ in four independent sums, which the compiler keeps in vector registers.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0; 4];
    let (a_chunks, b_chunks) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..4 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Negative log posterior of θ and its gradient.
fn objective(theta: &Theta, pairs: &Pairs, y: &DVector<f64>) -> Option<(f64, Vec<f64>)> {
    let n = pairs.n;
    let (amplitude, noise) = (theta.amplitude(), theta.noise());
    let inverse_lengths = theta.inverse_lengths();
    // The kernel and its slope ∂k/∂(r²) share one square root and one exponential per pair.
    let mut k = DMatrix::zeros(n, n);
    let mut slopes = DMatrix::zeros(n, n);
    for i in 0..n {
        for j in 0..i {
            let s = (5.0 * pairs.r2(i, j, &inverse_lengths)).sqrt();
            let decay = amplitude * (-s).exp();
            let value = (1.0 + s + s * s / 3.0) * decay;
            (k[(i, j)], k[(j, i)]) = (value, value);
            slopes[(i, j)] = -5.0 / 6.0 * (1.0 + s) * decay;
        }
        k[(i, i)] = amplitude + noise;
    }
    let chol = cholesky(&k)?;
    let alpha = chol.solve(y);
    let log_det: f64 = chol
        .l_dirty()
        .diagonal()
        .iter()
        .map(|d| d.ln())
        .sum::<f64>()
        * 2.0;
    let mut value =
        0.5 * y.dot(&alpha) + 0.5 * log_det + 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
    // ∂/∂θ = ½ Σᵢⱼ Wᵢⱼ ∂Kᵢⱼ/∂θ with W = K⁻¹ − ααᵀ, symmetric: each pair i > j counts twice.
    let mut w = inverse_from_factor(chol.l_dirty());
    w -= &alpha * alpha.transpose();
    let mut gradient = vec![0.0; theta.0.len()];
    for i in 0..n {
        gradient[0] += 0.5 * w[(i, i)] * amplitude;
        for j in 0..i {
            gradient[0] += w[(i, j)] * k[(i, j)];
            let slope = w[(i, j)] * slopes[(i, j)];
            let at = (i * n + j) * pairs.dims;
            for (d, inverse) in inverse_lengths.iter().enumerate() {
                gradient[1 + d] -= slope * pairs.differences[at + d] * inverse;
            }
        }
    }
    let last = gradient.len() - 1;
    gradient[last] = 0.5 * w.trace() * noise;
    for (index, (t, g)) in theta.0.iter().zip(&mut gradient).enumerate() {
        let prior = Theta::prior(index, theta.0.len());
        let z = (t - prior.mean) / prior.sd;
        value += 0.5 * z * z;
        *g += z / prior.sd;
        let excess = (t - prior.high).max(0.0) - (prior.low - t).max(0.0);
        value += 50.0 * excess * excess;
        *g += 100.0 * excess;
    }
    Some((value, gradient))
}

/// θ, the objective there and its gradient.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

/// Runs L-BFGS from `start`; a start that fails to move still competes as itself.
fn minimise(
    start: &Theta,
    pairs: &Pairs,
    y: &DVector<f64>,
    iterations: u64,
) -> Option<(f64, Theta)> {
    let problem = Fit {
        pairs,
        y,
        last: RefCell::new(None),
    };
    let found = LBFGS::new(MoreThuenteLineSearch::new(), 6)
        .with_tolerance_grad(1e-5)
        .and_then(|solver| solver.with_tolerance_cost(1e-9))
        .ok()
        .and_then(|solver| {
            Executor::new(problem, solver)
                .configure(|state| state.param(start.0.clone()).max_iters(iterations))
                .run()
                .ok()
        })
        .and_then(|result| {
            let state = result.state();
            state
                .best_param
                .clone()
                .map(|theta| (state.best_cost, Theta(theta)))
        });
    found.or_else(|| objective(start, pairs, y).map(|(value, _)| (value, start.clone())))
}

/// The fitting problem for argmin, remembering the last evaluation: L-BFGS asks for the cost and
/// the gradient of the same θ one after the other, and each costs a Cholesky.
struct Fit<'a> {
    pairs: &'a Pairs,
    y: &'a DVector<f64>,
    last: RefCell<Option<Evaluation>>,
}

impl Fit<'_> {
    fn evaluate(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        if let Some((at, value, gradient)) = self.last.borrow().as_ref()
            && at.as_slice() == theta
        {
            return (*value, gradient.clone());
        }
        let (value, gradient) = objective(&Theta(theta.to_vec()), self.pairs, self.y)
            .unwrap_or_else(|| (1e10, theta.iter().map(|t| t.signum()).collect()));
        *self.last.borrow_mut() = Some((theta.to_vec(), value, gradient.clone()));
        (value, gradient)
    }
}

impl CostFunction for Fit<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, theta: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.evaluate(theta).0)
    }
}

impl Gradient for Fit<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, theta: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.evaluate(theta).1)
    }
}

impl Gp {
    /// Fits θ by MAP from each start (keeping the best) and conditions on the data. `None` only if
    /// no θ gives a positive-definite kernel matrix, which jitter makes practically impossible.
    pub fn fit(
        points: Vec<Point>,
        targets: Vec<f64>,
        starts: &[Theta],
        iterations: u64,
    ) -> Option<Self> {
        let pairs = Pairs::new(&points);
        let y = DVector::from_vec(targets.clone());
        // The starts are independent: fit them on their own threads. The best is picked in start
        // order afterwards, so the result does not depend on which thread finishes first.
        let fitted: Vec<Option<(f64, Theta)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = starts
                .iter()
                .map(|start| scope.spawn(|| minimise(start, &pairs, &y, iterations)))
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().ok().flatten())
                .collect()
        });
        let mut best: Option<(f64, Theta)> = None;
        for (value, theta) in fitted.into_iter().flatten() {
            if value.is_finite()
                && best
                    .as_ref()
                    .is_none_or(|(best_value, _)| value < *best_value)
            {
                best = Some((value, theta));
            }
        }
        Self::condition(best?.1, points, targets)
    }

    /// Conditions a GP with fixed θ on data.
    pub fn condition(theta: Theta, points: Vec<Point>, targets: Vec<f64>) -> Option<Self> {
        let n = points.len();
        let (amplitude, noise) = (theta.amplitude(), theta.noise());
        let inverse_lengths = theta.inverse_lengths();
        let pairs = Pairs::new(&points);
        let k = DMatrix::from_fn(n, n, |i, j| {
            let distance = if i == j {
                0.0
            } else {
                pairs.r2(i, j, &inverse_lengths)
            };
            matern(distance, amplitude) + if i == j { noise } else { 0.0 }
        });
        let chol = cholesky(&k)?;
        let alpha = chol.solve(&DVector::from_vec(targets.clone()));
        Some(Self {
            theta,
            inverse_lengths,
            points,
            targets,
            factor: chol.unpack(),
            alpha,
        })
    }

    /// The GP that has also seen `point`, at the value it predicts there, θ unchanged (Kriging
    /// believer, for points suggested but not yet measured): its mean stays, its uncertainty
    /// around the point collapses. Unchanged if that kernel matrix cannot be factored.
    pub fn believing(self, point: &Point) -> Self {
        let (mean, _) = self.predict(point);
        let mut points = self.points.clone();
        let mut targets = self.targets.clone();
        points.push(point.clone());
        targets.push(mean);
        Self::condition(self.theta.clone(), points, targets).unwrap_or(self)
    }

    fn kernel(&self, a: &Point, b: &Point) -> f64 {
        let r2 = squared_differences(a, b)
            .zip(&self.inverse_lengths)
            .map(|(d, w)| d * w)
            .sum();
        matern(r2, self.theta.amplitude())
    }

    /// Posterior mean and standard deviation at a point.
    pub fn predict(&self, point: &Point) -> (f64, f64) {
        let n = self.points.len();
        let k: Vec<f64> = self.points.iter().map(|p| self.kernel(point, p)).collect();
        let mean = k.iter().zip(self.alpha.iter()).map(|(a, b)| a * b).sum();
        // ‖L⁻¹k‖² by forward substitution, column by column of the column-major factor.
        let mut v = k;
        for j in 0..n {
            v[j] /= self.factor[(j, j)];
            let vj = v[j];
            let column = &self.factor.as_slice()[j * n..(j + 1) * n];
            for (vi, lij) in v[j + 1..].iter_mut().zip(&column[j + 1..]) {
                *vi -= lij * vj;
            }
        }
        let explained: f64 = v.iter().map(|x| x * x).sum();
        let variance = (self.theta.amplitude() - explained).max(1e-12);
        (mean, variance.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(x: f64) -> Point {
        Point {
            unit: vec![x],
            category: vec![],
        }
    }

    #[test]
    fn posterior_matches_a_hand_computed_three_point_example() {
        // θ: σ² = 1, ℓ² = 0.25, σₙ² ≈ 0.
        let theta = Theta(vec![0.0, 0.25f64.ln(), -30.0]);
        let gp = Gp::condition(
            theta,
            vec![point(0.0), point(0.5), point(1.0)],
            vec![1.0, -1.0, 0.5],
        )
        .unwrap();
        for (x, y) in [(0.0, 1.0), (0.5, -1.0), (1.0, 0.5)] {
            let (mean, sd) = gp.predict(&point(x));
            assert!((mean - y).abs() < 1e-4, "interpolates {x}: {mean}");
            assert!(sd < 1e-3);
        }
        // Far away the posterior is the prior.
        let (mean, sd) = gp.predict(&point(20.0));
        assert!(mean.abs() < 1e-6 && (sd - 1.0).abs() < 1e-6);
        // k(0, 0.25) with r² = 0.0625 / 0.25 = 0.25: (1 + √1.25 + 1.25/3)·e^(−√1.25).
        let s = 1.25f64.sqrt();
        let expected = (1.0 + s + 1.25 / 3.0) * (-s).exp();
        assert!((gp.kernel(&point(0.0), &point(0.25)) - expected).abs() < 1e-12);
    }

    #[test]
    fn objective_gradient_matches_finite_differences() {
        let points: Vec<Point> = (0..7)
            .map(|i| Point {
                unit: vec![i as f64 / 7.0, (i * i % 5) as f64 / 5.0],
                category: vec![i % 3],
            })
            .collect();
        let y = DVector::from_vec((0..7).map(|i| (i as f64).sin()).collect());
        let pairs = Pairs::new(&points);
        let theta = Theta(vec![0.3, -1.0, -0.5, 0.2, -3.0]);
        let (_, gradient) = objective(&theta, &pairs, &y).unwrap();
        for (index, analytic) in gradient.iter().enumerate() {
            let step = 1e-6;
            let mut up = theta.clone();
            up.0[index] += step;
            let mut down = theta.clone();
            down.0[index] -= step;
            let numeric = (objective(&up, &pairs, &y).unwrap().0
                - objective(&down, &pairs, &y).unwrap().0)
                / (2.0 * step);
            assert!(
                (numeric - analytic).abs() < 1e-4 * (1.0 + numeric.abs()),
                "θ{index}: {numeric} vs {analytic}"
            );
        }
    }

    #[test]
    fn the_inverse_from_the_factor_inverts() {
        let a = DMatrix::from_fn(9, 9, |i, j| ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.4);
        let k = &a * a.transpose() + DMatrix::identity(9, 9) * 0.1;
        let inverse = inverse_from_factor(&k.clone().cholesky().unwrap().unpack());
        let product = k * inverse;
        assert!((product - DMatrix::identity(9, 9)).abs().max() < 1e-9);
    }

    #[test]
    fn fitting_finds_a_long_length_scale_for_a_smooth_function() {
        let points: Vec<Point> = (0..12).map(|i| point(i as f64 / 11.0)).collect();
        let targets: Vec<f64> = points.iter().map(|p| (p.unit[0] * 3.0).sin()).collect();
        let mean = targets.iter().sum::<f64>() / 12.0;
        let targets: Vec<f64> = targets.iter().map(|t| t - mean).collect();
        let gp = Gp::fit(points, targets, &[Theta::default_for(1)], 100).unwrap();
        let (prediction, _) = gp.predict(&point(0.5));
        assert!(
            (prediction + mean - 1.5f64.sin()).abs() < 1e-2,
            "{prediction}"
        );
        assert!(gp.theta.noise() < 1e-3);
    }
}
