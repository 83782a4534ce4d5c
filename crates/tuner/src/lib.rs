//! Kiln's hyperparameter tuner (HyperTune): what to try next, given what was tried.
//!
//! A pure library: no I/O, no clocks, no threads. A [`Tuner`] is built from a validated [`Space`],
//! a [`Goal`], an [`Algorithm`] and a seed, and answers [`Tuner::suggest`] from the trials so far.
//! It keeps no state between calls, so a service may rebuild it from stored trials after a restart
//! and get the same suggestions for the same history.
//!
//! - `ALGORITHM_UNSPECIFIED` (Bayesian): a quasi-random start-up design, then the GP bandit of
//!   [`bandit`] (Matérn-5/2 ARD GP on warped outputs, UCB in a trust region, Kriging believer for
//!   pending trials).
//! - `GRID_SEARCH`: the Cartesian product in order, for INTEGER, DISCRETE and CATEGORICAL spaces.
//! - `RANDOM_SEARCH`: uniform in the scaled space.
//!
//! Early stopping is [`stopping::should_stop`] (the median rule).

mod bandit;
mod gp;
mod search;
pub mod space;
pub mod stopping;
mod warp;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use space::{Domain, Param, Point, Scale, Space, Value};
pub use stopping::{Measurement, should_stop};

/// Why a tuner cannot be built or asked.
#[derive(Debug, thiserror::Error)]
pub enum TunerError {
    /// Problems with the parameters, each with the index of the parameter it concerns.
    #[error("invalid search space: {}", describe(.0))]
    InvalidSpace(Vec<(Option<usize>, String)>),
    /// A trial whose values do not belong to the space.
    #[error("trial {index}: its values do not match the search space")]
    ForeignTrial {
        /// Position of the trial in the list given.
        index: usize,
    },
}

fn describe(problems: &[(Option<usize>, String)]) -> String {
    problems
        .iter()
        .map(|(index, message)| match index {
            Some(index) => format!("params[{index}]: {message}"),
            None => message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Direction of the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Goal {
    /// Larger is better (ML Engine's default).
    #[default]
    Maximize,
    /// Smaller is better.
    Minimize,
}

/// Search strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// GP bandit.
    #[default]
    Bayesian,
    /// Every point of a finite space, in order.
    Grid,
    /// Uniform in the scaled space.
    Random,
}

/// A finished trial: its values and its objective (`None` when it failed).
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// One value per parameter, in order.
    pub values: Vec<Value>,
    /// The reported objective.
    pub objective: Option<f64>,
}

/// A seeded, deterministic suggestion engine for one study.
pub struct Tuner {
    space: Space,
    goal: Goal,
    algorithm: Algorithm,
    seed: u64,
}

impl Tuner {
    /// A tuner; GRID_SEARCH is refused for spaces with a DOUBLE parameter.
    pub fn new(
        space: Space,
        goal: Goal,
        algorithm: Algorithm,
        seed: u64,
    ) -> Result<Self, TunerError> {
        if algorithm == Algorithm::Grid {
            let doubles: Vec<(Option<usize>, String)> = space
                .params()
                .iter()
                .enumerate()
                .filter(|(_, param)| matches!(param.domain, Domain::Double { .. }))
                .map(|(index, _)| {
                    (
                        Some(index),
                        "GRID_SEARCH takes only INTEGER, DISCRETE and CATEGORICAL parameters"
                            .to_string(),
                    )
                })
                .collect();
            if !doubles.is_empty() {
                return Err(TunerError::InvalidSpace(doubles));
            }
        }
        Ok(Self {
            space,
            goal,
            algorithm,
            seed,
        })
    }

    /// The search space.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The goal.
    pub fn goal(&self) -> Goal {
        self.goal
    }

    /// Up to `count` new points, none equal to a completed or pending one. Fewer (or none) come
    /// back only when a finite space is exhausted.
    pub fn suggest(
        &self,
        completed: &[Trial],
        pending: &[Vec<Value>],
        count: usize,
    ) -> Result<Vec<Vec<Value>>, TunerError> {
        let mut observed = Vec::new();
        let mut failed = Vec::new();
        for (index, trial) in completed.iter().enumerate() {
            let point = self
                .space
                .encode(&trial.values)
                .ok_or(TunerError::ForeignTrial { index })?;
            match trial.objective.filter(|value| value.is_finite()) {
                Some(value) => observed.push((
                    point,
                    if self.goal == Goal::Minimize {
                        -value
                    } else {
                        value
                    },
                )),
                None => failed.push(point),
            }
        }
        let pending: Vec<Point> = pending
            .iter()
            .enumerate()
            .map(|(index, values)| {
                self.space.encode(values).ok_or(TunerError::ForeignTrial {
                    index: completed.len() + index,
                })
            })
            .collect::<Result<_, _>>()?;
        let history = (completed.len() + pending.len()) as u64;
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ history.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let taken: Vec<Point> = observed
            .iter()
            .map(|(p, _)| p.clone())
            .chain(failed.iter().cloned())
            .chain(pending.iter().cloned())
            .collect();
        let start_up = self.space.params().len().min(4) + 1;
        let points = match self.algorithm {
            Algorithm::Grid => search::grid(&self.space, &taken, count),
            Algorithm::Random => {
                search::random_unseen(&self.space, &taken, count, count * 50, &mut rng)
            }
            Algorithm::Bayesian if observed.len() < 2 || taken.len() < start_up => {
                let seed = (self.seed ^ (self.seed >> 32)) as u32;
                let wanted = count.min(start_up.saturating_sub(taken.len()).max(1));
                let mut points = search::quasi_random(&self.space, &taken, wanted, seed);
                if points.len() < count {
                    let rest = count - points.len();
                    let more = if observed.len() >= 2 {
                        let in_flight: Vec<Point> =
                            pending.iter().chain(&points).cloned().collect();
                        self.bandit(&observed, &failed, &in_flight, rest, &mut rng)
                    } else {
                        let all: Vec<Point> = taken.iter().chain(&points).cloned().collect();
                        search::quasi_random(&self.space, &all, rest, seed)
                    };
                    points.extend(more);
                }
                points
            }
            Algorithm::Bayesian => self.bandit(&observed, &failed, &pending, count, &mut rng),
        };
        Ok(points
            .iter()
            .map(|point| self.space.decode(point))
            .collect())
    }

    /// The GP bandit's suggestions; failed trials count as the worst value seen.
    fn bandit(
        &self,
        observed: &[(Point, f64)],
        failed: &[Point],
        pending: &[Point],
        count: usize,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Point> {
        let worst = observed
            .iter()
            .map(|(_, v)| *v)
            .fold(f64::INFINITY, f64::min);
        let mut all = observed.to_vec();
        all.extend(failed.iter().map(|point| (point.clone(), worst)));
        let mut points = bandit::suggest(&self.space, &all, pending, count, rng);
        if points.len() < count {
            // The acquisition found nothing new (a nearly exhausted finite space): fill at random.
            let taken: Vec<Point> = all
                .iter()
                .map(|(p, _)| p.clone())
                .chain(pending.iter().cloned())
                .chain(points.iter().cloned())
                .collect();
            let rest = count - points.len();
            points.extend(search::random_unseen(&self.space, &taken, rest, 1000, rng));
        }
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuner(seed: u64) -> Tuner {
        let space = Space::new(vec![
            Param {
                name: "x".into(),
                domain: Domain::Double {
                    min: -5.0,
                    max: 5.0,
                    scale: Scale::Linear,
                },
            },
            Param {
                name: "n".into(),
                domain: Domain::Integer {
                    min: 1,
                    max: 8,
                    scale: Scale::Linear,
                },
            },
            Param {
                name: "c".into(),
                domain: Domain::Categorical {
                    values: vec!["a".into(), "b".into()],
                },
            },
        ])
        .unwrap();
        Tuner::new(space, Goal::Minimize, Algorithm::Bayesian, seed).unwrap()
    }

    fn loss(values: &[Value]) -> f64 {
        match values {
            [Value::Number(x), Value::Number(n), Value::Category(c)] => {
                (x - 1.3).powi(2) + (n - 6.0).powi(2) / 10.0 + if c == "b" { 0.0 } else { 0.5 }
            }
            _ => unreachable!("three values"),
        }
    }

    fn run(tuner: &Tuner, trials: usize) -> Vec<Trial> {
        let mut history = Vec::new();
        for _ in 0..trials {
            let values = tuner.suggest(&history, &[], 1).unwrap().remove(0);
            let objective = Some(loss(&values));
            history.push(Trial { values, objective });
        }
        history
    }

    /// The census seed's space (two integers and a reverse-log double), run with two trials in
    /// flight whose run time grows with `num-layers`, so trials end out of order.
    #[test]
    fn parallel_trials_never_repeat_one_in_flight_or_done() {
        let integer = |name: &str, min, max| Param {
            name: name.into(),
            domain: Domain::Integer {
                min,
                max,
                scale: Scale::Linear,
            },
        };
        let space = Space::new(vec![
            integer("first-layer-size", 50, 500),
            integer("num-layers", 1, 15),
            Param {
                name: "scale-factor".into(),
                domain: Domain::Double {
                    min: 0.1,
                    max: 1.0,
                    scale: Scale::ReverseLog,
                },
            },
        ])
        .unwrap();
        // The seed a tuning job with id `census_hp` gets (FNV-1a of its id), whose start-up
        // points include one that decoding and encoding again moves by a rounding error.
        let census_hp = "census_hp"
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
            });
        let runs = [
            (Algorithm::Bayesian, census_hp),
            (Algorithm::Bayesian, 3),
            (Algorithm::Random, census_hp),
        ];
        for (algorithm, seed) in runs {
            let tuner = Tuner::new(space.clone(), Goal::Maximize, algorithm, seed).unwrap();
            let (mut done, mut flying, mut seen) = (Vec::new(), Vec::new(), Vec::new());
            let mut clock = 0.0;
            while seen.len() < 12 || !flying.is_empty() {
                while flying.len() < 2 && seen.len() < 12 {
                    let pending: Vec<Vec<Value>> = flying
                        .iter()
                        .map(|(v, _): &(Vec<Value>, f64)| v.clone())
                        .collect();
                    let suggested = tuner.suggest(&done, &pending, 1).unwrap().remove(0);
                    // As a tuning job keeps them: written as flags, read back.
                    let values: Vec<Value> = suggested
                        .iter()
                        .map(|value| Value::Number(value.to_string().parse().unwrap()))
                        .collect();
                    assert!(
                        !seen.contains(&values),
                        "{algorithm:?} seed {seed} repeated {values:?}"
                    );
                    seen.push(values.clone());
                    let Value::Number(layers) = values[1] else {
                        unreachable!()
                    };
                    flying.push((values, clock + 0.4 * layers));
                }
                flying.sort_by(|a, b| a.1.total_cmp(&b.1));
                let (values, end) = flying.remove(0);
                clock = end;
                let objective = match &values[..] {
                    [
                        Value::Number(size),
                        Value::Number(layers),
                        Value::Number(scale),
                    ] => -((size - 272.0) / 100.0).powi(2) - (layers - 4.0).powi(2) / 10.0 + scale,
                    _ => unreachable!("three numbers"),
                };
                done.push(Trial {
                    values,
                    objective: Some(objective),
                });
            }
        }
    }

    #[test]
    fn the_same_seed_and_history_give_the_same_suggestions() {
        let first = run(&tuner(7), 12);
        assert_eq!(first, run(&tuner(7), 12));
        assert_ne!(first, run(&tuner(8), 12));
    }

    #[test]
    fn a_mixed_quadratic_is_solved_in_twenty_five_trials_and_batches_spread_out() {
        let tuner = tuner(1);
        let history = run(&tuner, 25);
        let best = history
            .iter()
            .filter_map(|t| t.objective)
            .fold(f64::INFINITY, f64::min);
        assert!(best < 0.01, "best loss {best}");
        let batch = tuner.suggest(&history, &[], 4).unwrap();
        assert_eq!(batch.len(), 4);
        for (i, a) in batch.iter().enumerate() {
            assert!(
                batch[i + 1..].iter().all(|b| b != a),
                "duplicate in {batch:?}"
            );
            assert!(history.iter().all(|t| &t.values != a));
        }
    }

    #[test]
    fn an_exhausted_grid_suggests_nothing_and_failures_count_as_tried() {
        let space = Space::new(vec![Param {
            name: "c".into(),
            domain: Domain::Categorical {
                values: vec!["a".into(), "b".into()],
            },
        }])
        .unwrap();
        for algorithm in [Algorithm::Grid, Algorithm::Bayesian, Algorithm::Random] {
            let tuner = Tuner::new(space.clone(), Goal::Maximize, algorithm, 3).unwrap();
            let first = tuner.suggest(&[], &[], 5).unwrap();
            assert_eq!(first.len(), 2, "{algorithm:?}");
            let history: Vec<Trial> = first
                .into_iter()
                .map(|values| Trial {
                    values,
                    objective: None,
                })
                .collect();
            assert!(
                tuner.suggest(&history, &[], 1).unwrap().is_empty(),
                "{algorithm:?}"
            );
        }
    }
}
