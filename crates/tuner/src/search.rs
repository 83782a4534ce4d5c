//! The model-free designers: GRID_SEARCH, RANDOM_SEARCH and the quasi-random start-up design.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::acquisition::sobol_point;
use crate::space::{Domain, Point, Space, Value};

/// Every value of one parameter, in order (None for DOUBLE, which a grid cannot hold).
fn levels(domain: &Domain) -> Option<Vec<Value>> {
    match domain {
        Domain::Double { .. } => None,
        Domain::Integer { min, max, .. } => {
            Some((*min..=*max).map(|v| Value::Number(v as f64)).collect())
        }
        Domain::Discrete { values, .. } => Some(values.iter().map(|v| Value::Number(*v)).collect()),
        Domain::Categorical { values } => {
            Some(values.iter().cloned().map(Value::Category).collect())
        }
    }
}

/// How many distinct points the space holds; `None` when it has a DOUBLE or more than 2⁶⁴ points.
pub fn size(space: &Space) -> Option<u64> {
    space.params().iter().try_fold(1u64, |total, param| {
        let count = match &param.domain {
            Domain::Double { .. } => return None,
            Domain::Integer { min, max, .. } => {
                u64::try_from(max.checked_sub(*min)?).ok()?.checked_add(1)?
            }
            Domain::Discrete { values, .. } => values.len() as u64,
            Domain::Categorical { values } => values.len() as u64,
        };
        total.checked_mul(count)
    })
}

/// The next `count` grid points in order (the last parameter varies fastest) that are not `taken`.
pub fn grid(space: &Space, taken: &[Point], count: usize) -> Vec<Point> {
    let levels: Vec<Vec<Value>> = space
        .params()
        .iter()
        .filter_map(|param| levels(&param.domain))
        .collect();
    let total = size(space).unwrap_or(0);
    let mut found = Vec::new();
    let mut index = 0u64;
    while found.len() < count && index < total {
        let mut rest = index;
        let mut values = vec![Value::Number(0.0); levels.len()];
        for (slot, level) in values.iter_mut().zip(&levels).rev() {
            *slot = level[(rest % level.len() as u64) as usize].clone();
            rest /= level.len() as u64;
        }
        if let Some(point) = space.encode(&values)
            && !point.is_among(taken)
            && !point.is_among(&found)
        {
            found.push(point);
        }
        index += 1;
    }
    found
}

/// A uniform point in the scaled space (log-uniform for log scales), snapped.
pub fn random(space: &Space, rng: &mut ChaCha8Rng) -> Point {
    let point = Point {
        unit: (0..space.unit_dims()).map(|_| rng.random()).collect(),
        category: space
            .category_sizes()
            .iter()
            .map(|size| rng.random_range(0..*size))
            .collect(),
    };
    space.snap(&point)
}

/// Up to `count` distinct random points not `taken`, from at most `attempts` draws.
pub fn random_unseen(
    space: &Space,
    taken: &[Point],
    count: usize,
    attempts: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Point> {
    let mut found: Vec<Point> = Vec::new();
    for _ in 0..attempts {
        if found.len() == count {
            break;
        }
        let point = random(space, rng);
        if !point.is_among(taken) && !point.is_among(&found) {
            found.push(point);
        }
    }
    found
}

/// Start-up points: the centre of the box first, then a scrambled Sobol sequence, skipping points
/// already `taken` (integer spaces repeat).
pub fn quasi_random(space: &Space, taken: &[Point], count: usize, seed: u32) -> Vec<Point> {
    let centre = Point {
        unit: vec![0.5; space.unit_dims()],
        category: vec![0; space.category_sizes().len()],
    };
    let mut found: Vec<Point> = Vec::new();
    let candidates =
        std::iter::once(centre).chain((1..4096).map(|index| sobol_point(space, index, seed)));
    for candidate in candidates {
        let candidate = space.snap(&candidate);
        if found.len() == count {
            break;
        }
        if !candidate.is_among(taken) && !candidate.is_among(&found) {
            found.push(candidate);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::space::{Param, Scale};

    fn space() -> Space {
        Space::new(vec![
            Param {
                name: "a".into(),
                domain: Domain::Integer {
                    min: 1,
                    max: 3,
                    scale: Scale::Linear,
                },
                condition: None,
            },
            Param {
                name: "b".into(),
                domain: Domain::Categorical {
                    values: vec!["x".into(), "y".into()],
                },
                condition: None,
            },
        ])
        .unwrap()
    }

    #[test]
    fn grid_walks_the_product_in_order_and_stops_when_exhausted() {
        let space = space();
        assert_eq!(size(&space), Some(6));
        let first = grid(&space, &[], 4);
        let values: Vec<String> = first
            .iter()
            .map(|p| {
                space
                    .decode(p)
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        assert_eq!(values, ["1,x", "1,y", "2,x", "2,y"]);
        assert_eq!(grid(&space, &first, 4).len(), 2);
        let all: Vec<Point> = grid(&space, &[], 6);
        assert!(grid(&space, &all, 1).is_empty());
    }

    #[test]
    fn random_search_is_log_uniform_on_a_log_scale() {
        // Kolmogorov–Smirnov: log10 of 2000 samples over [1e-4, 1] against the uniform law.
        let space = Space::new(vec![Param {
            name: "lr".into(),
            domain: Domain::Double {
                min: 1e-4,
                max: 1.0,
                scale: Scale::Log,
            },
            condition: None,
        }])
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut samples: Vec<f64> = (0..2000)
            .map(|_| match &space.decode(&random(&space, &mut rng))[0] {
                Value::Number(lr) => (lr.log10() + 4.0) / 4.0,
                _ => unreachable!("numbers"),
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let statistic = samples
            .iter()
            .enumerate()
            .map(|(i, x)| {
                ((i + 1) as f64 / 2000.0 - x)
                    .abs()
                    .max((x - i as f64 / 2000.0).abs())
            })
            .fold(0.0, f64::max);
        // Critical value at α = 0.01: 1.63 / √n.
        assert!(
            statistic < 1.63 / 2000f64.sqrt(),
            "KS statistic {statistic}"
        );
    }

    #[test]
    fn start_up_begins_at_the_centre_and_never_repeats() {
        let space = space();
        let points = quasi_random(&space, &[], 6, 1);
        assert_eq!(space.decode(&points[0])[0], Value::Number(2.0));
        assert_eq!(points.len(), 6);
        assert!(quasi_random(&space, &points, 1, 1).is_empty());
    }
}
