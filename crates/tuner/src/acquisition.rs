//! Maximising an acquisition over the search space: quasi-random candidates over the whole box
//! and mutations of the best points so far, the best few refined by pattern search, all inside a
//! trust region around the points already tried. The acquisition itself (UCB for one objective,
//! hypervolume improvement for several) is the caller's.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::space::{Point, Space};

/// Quasi-random candidates scored per suggestion.
const GLOBAL_CANDIDATES: u32 = 1000;
/// Samples around each of the points given as promising.
const MUTATIONS: usize = 40;
/// Candidates refined by local search.
const REFINED: usize = 6;

/// Every point measured or in flight, snapped onto the space: what no suggestion may repeat.
pub fn taken(space: &Space, observed: &[Point], pending: &[Point]) -> Vec<Point> {
    observed
        .iter()
        .chain(pending)
        .map(|p| space.snap(p))
        .collect()
}

/// The untaken point with the highest `score` found, or `None` when every candidate is taken.
/// `near` are the points whose neighbourhoods are searched besides the whole box. The score is
/// only asked inside the trust region around `taken`; outside it, the nearer the better.
pub fn maximise(
    space: &Space,
    taken: &[Point],
    near: &[&Point],
    score: &(dyn Fn(&Point) -> f64 + Sync),
    rng: &mut ChaCha8Rng,
) -> Option<Point> {
    let region = TrustRegion::new(taken, space.unit_dims());
    let score = |point: &Point| region.penalty(point).unwrap_or_else(|| score(point));
    let mut candidates = global_candidates(space, rng);
    for point in near {
        for _ in 0..MUTATIONS {
            candidates.push(mutate(space, point, rng));
        }
    }
    candidates.retain(|candidate| !candidate.is_among(taken));
    let mut scored: Vec<(f64, Point)> = parallel_map(&candidates, score)
        .into_iter()
        .zip(candidates)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.dedup_by(|a, b| a.1.same_as(&b.1));
    scored.truncate(REFINED);
    parallel_map(&scored, |(value, start)| {
        local_search(space, start.clone(), *value, &score, taken)
    })
    .into_iter()
    .max_by(|a, b| a.0.total_cmp(&b.0))
    .map(|(_, point)| point)
}

/// Where the acquisition may look: within an L∞ radius of some point already tried.
struct TrustRegion<'a> {
    centres: &'a [Point],
    radius: Option<f64>,
}

impl<'a> TrustRegion<'a> {
    fn new(centres: &'a [Point], unit_dims: usize) -> Self {
        let radius = 0.2 + 0.3 * centres.len() as f64 / (5.0 * (unit_dims as f64 + 1.0));
        Self {
            centres,
            radius: (radius < 0.5 && unit_dims > 0).then_some(radius),
        }
    }

    /// `None` inside; outside, a score below any acquisition's, better the closer the point is.
    fn penalty(&self, point: &Point) -> Option<f64> {
        let radius = self.radius?;
        let distance = self
            .centres
            .iter()
            .map(|centre| {
                centre
                    .unit
                    .iter()
                    .zip(&point.unit)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max)
            })
            .fold(f64::INFINITY, f64::min);
        (distance > radius).then(|| -1e4 - distance)
    }
}

/// A standard normal sample (Box–Muller).
pub(crate) fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A scrambled Sobol point set over the whole space.
fn global_candidates(space: &Space, rng: &mut ChaCha8Rng) -> Vec<Point> {
    let seed: u32 = rng.random();
    (0..GLOBAL_CANDIDATES)
        .map(|index| space.snap(&sobol_point(space, index, seed)))
        .collect()
}

/// Point `index` of the Owen-scrambled Sobol sequence with `seed`, categories by equal shares.
pub(crate) fn sobol_point(space: &Space, index: u32, seed: u32) -> Point {
    let units = space.unit_dims();
    let coordinate = |dimension: usize| {
        f64::from(sobol_burley::sample(
            index,
            dimension as u32 % 256,
            seed ^ (dimension as u32 / 256),
        ))
    };
    Point {
        unit: (0..units).map(coordinate).collect(),
        category: space
            .category_sizes()
            .iter()
            .enumerate()
            .map(|(at, size)| ((coordinate(units + at) * *size as f64) as usize).min(size - 1))
            .collect(),
    }
}

/// A random neighbour: Gaussian steps of a random width on the numeric coordinates, and each
/// category switched with probability 1/dimensions.
fn mutate(space: &Space, point: &Point, rng: &mut ChaCha8Rng) -> Point {
    let sizes = space.category_sizes();
    let dims = point.unit.len() + sizes.len();
    let width = [0.01, 0.05, 0.2][rng.random_range(0..3)];
    let mut next = point.clone();
    for unit in &mut next.unit {
        *unit = (*unit + width * gaussian(rng)).clamp(0.0, 1.0);
    }
    for (category, size) in next.category.iter_mut().zip(&sizes) {
        if *size > 1 && rng.random_bool(1.0 / dims as f64) {
            *category = rng.random_range(0..*size);
        }
    }
    space.snap(&next)
}

/// `f` of each item, the items shared among the available cores; the results come back in the
/// items' order, so nothing downstream depends on how the threads ran.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Pattern search from `start`: moves each numeric coordinate by ± a step that halves when nothing
/// improves, and tries every other value of each category, keeping what raises the score.
fn local_search(
    space: &Space,
    start: Point,
    value: f64,
    score: &(dyn Fn(&Point) -> f64 + Sync),
    taken: &[Point],
) -> (f64, Point) {
    let (mut best, mut best_value) = (start, value);
    let mut step = 0.05;
    let sizes = space.category_sizes();
    while step > 2e-4 {
        let mut improved = false;
        for dim in 0..best.unit.len() {
            for direction in [-1.0, 1.0] {
                let mut next = best.clone();
                next.unit[dim] = (next.unit[dim] + direction * step).clamp(0.0, 1.0);
                let next = space.snap(&next);
                if next != best && !next.is_among(taken) {
                    let next_value = score(&next);
                    if next_value > best_value {
                        (best, best_value, improved) = (next, next_value, true);
                    }
                }
            }
        }
        for (dim, size) in sizes.iter().enumerate() {
            for category in 0..*size {
                let mut next = best.clone();
                next.category[dim] = category;
                // A category may switch conditional parameters on or off: snap to where that
                // leaves their coordinates.
                let next = space.snap(&next);
                if next != best && !next.is_among(taken) {
                    let next_value = score(&next);
                    if next_value > best_value {
                        (best, best_value, improved) = (next, next_value, true);
                    }
                }
            }
        }
        if !improved {
            step /= 2.0;
        }
    }
    (best_value, best)
}
