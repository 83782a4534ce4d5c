//! Kiln's hyperparameter tuner (HyperTune): what to try next, given what was tried.
//!
//! A pure library: no I/O, no clocks, no threads. A [`Tuner`] is built from a validated [`Space`],
//! a [`Goal`], an [`Algorithm`] and a seed, and answers [`Tuner::suggest`] from the trials so far.
//! It keeps no state between calls, so a service may rebuild it from stored trials after a restart
//! and get the same suggestions for the same history.
//!
//! A tuner measures one or more [`Metric`]s: objectives, and safety constraints (a metric with a
//! threshold each trial should meet). With one objective it seeks the best trial; with several, the
//! Pareto front ([`front::optimal`] says which trials are on it).
//!
//! - `ALGORITHM_UNSPECIFIED` (Bayesian): a quasi-random start-up design, then a GP bandit
//!   (Matérn-5/2 ARD GPs on warped outputs, an acquisition maximised in a trust region, Kriging
//!   believer for pending trials): UCB for one objective ([`bandit`]), the hypervolume improvement
//!   of the UCBs weighed by the chance of meeting the constraints otherwise ([`multi`]).
//! - `GRID_SEARCH`: the Cartesian product in order, for INTEGER, DISCRETE and CATEGORICAL spaces.
//! - `RANDOM_SEARCH`: uniform in the scaled space.
//!
//! Early stopping is a [`stopping::Rule`]: the median rule, or successive halving.

mod acquisition;
mod bandit;
pub mod condition;
pub mod front;
mod gp;
mod model;
mod multi;
mod search;
pub mod space;
pub mod stopping;
mod warp;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use condition::Condition;
pub use space::{Domain, Param, Point, Scale, Space, Value};
pub use stopping::{Measurement, Rule as StoppingRule};

/// Why a tuner cannot be built or asked.
#[derive(Debug, thiserror::Error)]
pub enum TunerError {
    /// Problems with the parameters, each with the index of the parameter it concerns.
    #[error("invalid search space: {}", describe(.0))]
    InvalidSpace(Vec<(Option<usize>, String)>),
    /// Problems with the metrics.
    #[error("invalid metrics: {}", describe(.0))]
    InvalidMetrics(Vec<(Option<usize>, String)>),
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

/// A metric the trials report: an objective, or with a threshold a safety constraint, met by a
/// trial whose value is the threshold or on the goal's side of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// Direction of the objective, or which side of the threshold is safe.
    pub goal: Goal,
    /// The value a trial must reach to be safe; `None` for an objective.
    pub threshold: Option<f64>,
}

impl Metric {
    /// An objective.
    pub fn objective(goal: Goal) -> Self {
        Self {
            goal,
            threshold: None,
        }
    }
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

/// A finished trial: its values and what it measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// One value per parameter, in order.
    pub values: Vec<Value>,
    /// One value per metric of the tuner, in order; `None` when the trial failed or was
    /// infeasible.
    pub metrics: Option<Vec<f64>>,
}

/// A seeded, deterministic suggestion engine for one study.
pub struct Tuner {
    space: Space,
    metrics: Vec<Metric>,
    algorithm: Algorithm,
    seed: u64,
}

impl Tuner {
    /// A tuner of one objective; GRID_SEARCH is refused for spaces with a DOUBLE parameter.
    pub fn new(
        space: Space,
        goal: Goal,
        algorithm: Algorithm,
        seed: u64,
    ) -> Result<Self, TunerError> {
        Self::with_metrics(space, vec![Metric::objective(goal)], algorithm, seed)
    }

    /// A tuner of several metrics, at least one of them an objective, every threshold finite.
    pub fn with_metrics(
        space: Space,
        metrics: Vec<Metric>,
        algorithm: Algorithm,
        seed: u64,
    ) -> Result<Self, TunerError> {
        let mut problems = Vec::new();
        if !metrics.iter().any(|metric| metric.threshold.is_none()) {
            problems.push((
                None,
                "at least one metric must be an objective (without a safety threshold)".into(),
            ));
        }
        if metrics
            .iter()
            .any(|metric| metric.threshold.is_some_and(|t| !t.is_finite()))
        {
            problems.push((None, "safety thresholds must be finite".into()));
        }
        if !problems.is_empty() {
            return Err(TunerError::InvalidMetrics(problems));
        }
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
            metrics,
            algorithm,
            seed,
        })
    }

    /// The search space.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The goal of the first objective.
    pub fn goal(&self) -> Goal {
        self.metrics
            .iter()
            .find(|metric| metric.threshold.is_none())
            .map_or(Goal::Maximize, |metric| metric.goal)
    }

    /// The metrics, in order.
    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    /// Whether the tuner seeks one best value with no constraint beside it.
    fn single_objective(&self) -> bool {
        matches!(self.metrics.as_slice(), [metric] if metric.threshold.is_none())
    }

    /// A trial's metrics, larger-is-better: the objectives in order, then each constraint's margin
    /// (non-negative when met); `None` unless every one is finite.
    fn oriented(&self, metrics: &[f64]) -> Option<Vec<f64>> {
        let (mut objectives, margins) = front::split(&self.metrics, metrics)?;
        objectives.extend(margins);
        Some(objectives)
    }

    /// Up to `count` new points, none equal to a completed or pending one. Fewer (or none) come
    /// back only when a finite space is exhausted.
    pub fn suggest(
        &self,
        completed: &[Trial],
        pending: &[Vec<Value>],
        count: usize,
    ) -> Result<Vec<Vec<Value>>, TunerError> {
        let mut observed: Vec<(Point, Vec<f64>)> = Vec::new();
        let mut failed = Vec::new();
        for (index, trial) in completed.iter().enumerate() {
            let point = self
                .space
                .encode(&trial.values)
                .ok_or(TunerError::ForeignTrial { index })?;
            match trial.metrics.as_deref().and_then(|m| self.oriented(m)) {
                Some(values) => observed.push((point, values)),
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

    /// The GP bandit's suggestions; failed trials count as the worst value seen of each metric.
    fn bandit(
        &self,
        observed: &[(Point, Vec<f64>)],
        failed: &[Point],
        pending: &[Point],
        count: usize,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Point> {
        let worst: Vec<f64> = (0..self.metrics.len())
            .map(|at| {
                observed
                    .iter()
                    .map(|(_, values)| values[at])
                    .fold(f64::INFINITY, f64::min)
            })
            .collect();
        let mut all = observed.to_vec();
        all.extend(failed.iter().map(|point| (point.clone(), worst.clone())));
        let mut points = if self.single_objective() {
            let all: Vec<(Point, f64)> = all.into_iter().map(|(p, v)| (p, v[0])).collect();
            bandit::suggest(&self.space, &all, pending, count, rng)
        } else {
            let objectives = self.metrics.iter().filter(|m| m.threshold.is_none());
            multi::suggest(&self.space, objectives.count(), &all, pending, count, rng)
        };
        if points.len() < count {
            // The acquisition found nothing new (a nearly exhausted finite space): fill at random.
            let taken: Vec<Point> = observed
                .iter()
                .map(|(p, _)| p.clone())
                .chain(failed.iter().cloned())
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
                condition: None,
            },
            Param {
                name: "n".into(),
                domain: Domain::Integer {
                    min: 1,
                    max: 8,
                    scale: Scale::Linear,
                },
                condition: None,
            },
            Param {
                name: "c".into(),
                domain: Domain::Categorical {
                    values: vec!["a".into(), "b".into()],
                },
                condition: None,
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
            let metrics = Some(vec![loss(&values)]);
            history.push(Trial { values, metrics });
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
            condition: None,
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
                condition: None,
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
                    metrics: Some(vec![objective]),
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
            .filter_map(|t| t.metrics.as_ref().map(|m| m[0]))
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

    /// ZDT1 in three variables: the front is `f₂ = 1 − √f₁` where the last two are 0.
    fn zdt1(values: &[Value]) -> Vec<f64> {
        let x: Vec<f64> = values
            .iter()
            .map(|value| match value {
                Value::Number(x) => *x,
                _ => unreachable!("numbers"),
            })
            .collect();
        let g = 1.0 + 9.0 * (x[1] + x[2]) / 2.0;
        vec![x[0], g * (1.0 - (x[0] / g).sqrt())]
    }

    /// The area two minimised objectives dominate below (11, 11).
    fn hypervolume(points: &[Vec<f64>]) -> f64 {
        let mut front: Vec<&Vec<f64>> = points
            .iter()
            .filter(|p| p[0] < 11.0 && p[1] < 11.0)
            .collect();
        front.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let (mut area, mut ceiling) = (0.0, 11.0);
        for point in front {
            if point[1] < ceiling {
                area += (11.0 - point[0]) * (ceiling - point[1]);
                ceiling = point[1];
            }
        }
        area
    }

    fn unit_space(dims: usize) -> Space {
        Space::new(
            (0..dims)
                .map(|at| Param {
                    name: format!("x{at}"),
                    domain: Domain::Double {
                        min: 0.0,
                        max: 1.0,
                        scale: Scale::Linear,
                    },
                    condition: None,
                })
                .collect(),
        )
        .unwrap()
    }

    /// Runs `trials` sequential trials measuring `measure`; the history.
    fn run_with(
        tuner: &Tuner,
        trials: usize,
        measure: impl Fn(&[Value]) -> Vec<f64>,
    ) -> Vec<Trial> {
        let mut history = Vec::new();
        for _ in 0..trials {
            let values = tuner.suggest(&history, &[], 1).unwrap().remove(0);
            let metrics = Some(measure(&values));
            history.push(Trial { values, metrics });
        }
        history
    }

    #[test]
    fn two_objectives_reach_a_larger_hypervolume_than_random_search() {
        let minimise = vec![Metric::objective(Goal::Minimize); 2];
        let volume = |algorithm, seed| {
            let tuner =
                Tuner::with_metrics(unit_space(3), minimise.clone(), algorithm, seed).unwrap();
            let history = run_with(&tuner, 30, zdt1);
            let measured: Vec<Vec<f64>> =
                history.iter().filter_map(|t| t.metrics.clone()).collect();
            hypervolume(&measured)
        };
        for seed in 1..=3 {
            let (bandit, random) = (
                volume(Algorithm::Bayesian, seed),
                volume(Algorithm::Random, seed),
            );
            // The whole box below (11, 11) less the area above the front: 121 − 11 + 1/3 ≈ 120.67.
            assert!(
                bandit > random && bandit > 119.0,
                "seed {seed}: {bandit} against {random}"
            );
        }
    }

    #[test]
    fn suggestions_keep_to_where_a_safety_threshold_is_met() {
        // Maximise x₀ + x₁ while x₀ stays at most 0.4: the optimum sits on the constraint.
        let metrics = vec![
            Metric::objective(Goal::Maximize),
            Metric {
                goal: Goal::Minimize,
                threshold: Some(0.4),
            },
        ];
        let tuner =
            Tuner::with_metrics(unit_space(2), metrics.clone(), Algorithm::Bayesian, 5).unwrap();
        let number = |value: &Value| match value {
            Value::Number(x) => *x,
            _ => unreachable!("numbers"),
        };
        let history = run_with(&tuner, 25, |values| {
            let (x0, x1) = (number(&values[0]), number(&values[1]));
            vec![x0 + x1, x0]
        });
        let late = &history[8..];
        let safe = late.iter().filter(|t| number(&t.values[0]) <= 0.4).count();
        // Random search would be safe 40% of the time.
        assert!(safe * 10 >= late.len() * 8, "{safe} of {} safe", late.len());
        let optimal = front::optimal(&metrics, &history);
        assert_eq!(optimal.len(), 1);
        let best = &history[optimal[0]].metrics.as_ref().unwrap();
        assert!(best[1] <= 0.4 && best[0] > 1.3, "{best:?}");
    }

    /// `optimizer` chooses between `momentum` (sgd) and `beta` (adam); sgd's `schedule` may be
    /// `cosine`, which brings `warmup`. The best loss, 0, is adam with `beta` = 0.9 and lr = 0.01.
    fn conditional_space() -> Space {
        let unit = |name: &str, condition| Param {
            condition,
            ..Param::new(
                name,
                Domain::Double {
                    min: 0.0,
                    max: 1.0,
                    scale: Scale::Linear,
                },
            )
        };
        let on = |parent: usize, value: &str| {
            Some(Condition {
                parent,
                values: vec![Value::Category(value.into())],
            })
        };
        Space::new(vec![
            Param::new(
                "optimizer",
                Domain::Categorical {
                    values: vec!["sgd".into(), "adam".into()],
                },
            ),
            Param::new(
                "lr",
                Domain::Double {
                    min: 1e-4,
                    max: 1.0,
                    scale: Scale::Log,
                },
            ),
            unit("momentum", on(0, "sgd")),
            unit("beta", on(0, "adam")),
            Param {
                condition: on(0, "sgd"),
                ..Param::new(
                    "schedule",
                    Domain::Categorical {
                        values: vec!["constant".into(), "cosine".into()],
                    },
                )
            },
            Param {
                condition: on(4, "cosine"),
                ..Param::new(
                    "warmup",
                    Domain::Integer {
                        min: 0,
                        max: 10,
                        scale: Scale::Linear,
                    },
                )
            },
        ])
        .unwrap()
    }

    fn conditional_loss(values: &[Value]) -> f64 {
        let number = |at: usize| values[at].number().expect("an active number");
        let lr = (number(1).log10() + 2.0).powi(2) / 4.0;
        match &values[0] {
            Value::Category(adam) if adam == "adam" => lr + (number(3) - 0.9).powi(2),
            _ => {
                let warmup = match &values[4] {
                    Value::Category(cosine) if cosine == "cosine" => number(5) / 100.0,
                    _ => 0.0,
                };
                0.2 + lr + (number(2) - 0.5).powi(2) + warmup
            }
        }
    }

    #[test]
    fn conditional_parameters_take_values_only_under_their_parents() {
        let space = conditional_space();
        let tuner = Tuner::new(space.clone(), Goal::Minimize, Algorithm::Bayesian, 11).unwrap();
        let history = run_with(&tuner, 45, |values| vec![conditional_loss(values)]);
        let mut seen: Vec<&Vec<Value>> = Vec::new();
        for trial in &history {
            let values = &trial.values;
            let adam = values[0] == Value::Category("adam".into());
            let cosine = values[4] == Value::Category("cosine".into());
            let active = [true, true, !adam, adam, !adam, !adam && cosine];
            for (at, on) in active.iter().enumerate() {
                assert_eq!(values[at] != Value::Inactive, *on, "{values:?}");
            }
            assert_eq!(space.decode(&space.encode(values).unwrap()), *values);
            assert!(!seen.contains(&values), "repeated {values:?}");
            seen.push(values);
        }
        let best = history
            .iter()
            .filter_map(|t| t.metrics.as_ref().map(|m| m[0]))
            .fold(f64::INFINITY, f64::min);
        // The sgd branch cannot go below 0.2.
        assert!(best < 0.02, "best loss {best}");
        // An inactive parameter's value is ignored when encoding; an active one must be given.
        let mut values = history[0].values.clone();
        let inactive = values.iter().position(|v| *v == Value::Inactive).unwrap();
        values[inactive] = Value::Number(0.3);
        assert_eq!(space.encode(&values), space.encode(&history[0].values));
        values[1] = Value::Inactive;
        assert!(space.encode(&values).is_none());
    }

    #[test]
    fn conditions_are_checked() {
        let Err(TunerError::InvalidSpace(problems)) = Space::new(vec![
            Param::new(
                "x",
                Domain::Double {
                    min: 0.0,
                    max: 1.0,
                    scale: Scale::Linear,
                },
            ),
            Param {
                condition: Some(Condition {
                    parent: 0,
                    values: vec![Value::Number(0.5)],
                }),
                ..Param::new(
                    "a",
                    Domain::Categorical {
                        values: vec!["u".into()],
                    },
                )
            },
            Param {
                condition: Some(Condition {
                    parent: 3,
                    values: vec![Value::Category("u".into())],
                }),
                ..Param::new(
                    "b",
                    Domain::Categorical {
                        values: vec!["u".into()],
                    },
                )
            },
            Param {
                condition: Some(Condition {
                    parent: 1,
                    values: vec![Value::Category("v".into())],
                }),
                ..Param::new(
                    "c",
                    Domain::Categorical {
                        values: vec!["u".into()],
                    },
                )
            },
        ]) else {
            panic!("accepted invalid conditions");
        };
        let found: Vec<String> = problems
            .iter()
            .map(|(at, message)| format!("{at:?} {message}"))
            .collect();
        assert!(
            found[0].starts_with("Some(1) its parent \"x\" is DOUBLE"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("Some(2) a conditional parameter must come after"),
            "{found:?}"
        );
        assert!(
            found[2].starts_with("Some(3) the parent \"a\" cannot take the value v"),
            "{found:?}"
        );
    }

    #[test]
    fn an_exhausted_grid_suggests_nothing_and_failures_count_as_tried() {
        let space = Space::new(vec![Param {
            name: "c".into(),
            domain: Domain::Categorical {
                values: vec!["a".into(), "b".into()],
            },
            condition: None,
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
                    metrics: None,
                })
                .collect();
            assert!(
                tuner.suggest(&history, &[], 1).unwrap().is_empty(),
                "{algorithm:?}"
            );
        }
    }
}
