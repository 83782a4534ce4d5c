//! The search space: typed parameters and their encoding into the unit box the GP works in.
//!
//! Every DOUBLE, INTEGER and DISCRETE parameter becomes one continuous coordinate in [0, 1] after its
//! scale (linear, log or reverse log); every CATEGORICAL parameter becomes an index in its own
//! dimension, compared by "same or different". Decoding rounds integers and snaps discrete values, so
//! `decode(encode(v)) == v` for every value the space can hold. A conditional parameter
//! ([`condition`](crate::condition)) that is inactive takes no value and a fixed coordinate.

use std::fmt;

use crate::TunerError;
use crate::condition::{self, Condition};

/// How a numeric range is mapped onto [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// Uniform in the value.
    #[default]
    Linear,
    /// Uniform in log(value): for learning rates and the like. Needs a positive range.
    Log,
    /// Dense near the top of the range: for values such as momentum close to 1. Needs a positive
    /// range.
    ReverseLog,
}

/// What values a parameter takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// Any real number in `[min, max]`.
    Double { min: f64, max: f64, scale: Scale },
    /// Any integer in `[min, max]`.
    Integer { min: i64, max: i64, scale: Scale },
    /// One of a strictly increasing list of numbers.
    Discrete { values: Vec<f64>, scale: Scale },
    /// One of a list of strings, unordered.
    Categorical { values: Vec<String> },
}

impl Domain {
    /// Whether `value` is one this domain takes.
    pub fn holds(&self, value: &Value) -> bool {
        match (self, value) {
            (Domain::Double { min, max, .. }, Value::Number(x)) => (*min..=*max).contains(x),
            (Domain::Integer { min, max, .. }, Value::Number(x)) => {
                x.fract() == 0.0 && (*min as f64..=*max as f64).contains(x)
            }
            (Domain::Discrete { values, .. }, Value::Number(x)) => values.contains(x),
            (Domain::Categorical { values }, Value::Category(name)) => values.contains(name),
            _ => false,
        }
    }
}

/// A named parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Name, also the trainer's flag (`--name=value`).
    pub name: String,
    /// Its values.
    pub domain: Domain,
    /// When it takes a value; `None` for always.
    pub condition: Option<Condition>,
}

impl Param {
    /// A parameter that always takes a value.
    pub fn new(name: impl Into<String>, domain: Domain) -> Self {
        Self {
            name: name.into(),
            domain,
            condition: None,
        }
    }
}

/// One parameter's value in a suggestion or an observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// DOUBLE, INTEGER and DISCRETE values (integers are whole numbers).
    Number(f64),
    /// CATEGORICAL values.
    Category(String),
    /// No value: a conditional parameter whose condition does not hold.
    Inactive,
}

impl Value {
    /// The number of a DOUBLE, INTEGER or DISCRETE value.
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Number(number) => Some(*number),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// As a trainer flag expects it: `32`, `0.001`, `relu` (and nothing for an inactive one).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(number) => write!(f, "{number}"),
            Value::Category(category) => f.write_str(category),
            Value::Inactive => Ok(()),
        }
    }
}

/// A point in the encoded space: unit coordinates of the numeric parameters, category indices of
/// the categorical ones, each in parameter order.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Numeric parameters in [0, 1].
    pub unit: Vec<f64>,
    /// Categorical parameters as indices.
    pub category: Vec<usize>,
}

/// How close two points' unit coordinates may be and still be one trial: closer than this in
/// every numeric parameter (a millionth of its range) with the same categories. Decoding a point
/// and encoding its values again may move a coordinate by a rounding error, so exact equality
/// would let a point through as new whose values repeat a trial's.
const SAME_WITHIN: f64 = 1e-6;

impl Point {
    /// Whether `self` and `other` are one trial: the same categories and numeric coordinates
    /// within [`SAME_WITHIN`] (integers and discrete values are snapped to theirs before).
    pub fn same_as(&self, other: &Point) -> bool {
        self.category == other.category
            && self.unit.len() == other.unit.len()
            && self
                .unit
                .iter()
                .zip(&other.unit)
                .all(|(a, b)| (a - b).abs() < SAME_WITHIN)
    }

    /// Whether one of `points` is the same trial as `self`.
    pub fn is_among(&self, points: &[Point]) -> bool {
        points.iter().any(|point| point.same_as(self))
    }
}

/// The unit coordinate of an inactive numeric parameter: the middle of its axis.
const INACTIVE_UNIT: f64 = 0.5;

/// A validated list of parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    params: Vec<Param>,
}

/// Where a parameter's coordinate lives in a [`Point`].
#[derive(Clone, Copy)]
enum Slot {
    Unit(usize),
    Category(usize),
}

impl Space {
    /// Checks every parameter and returns all problems found, each naming the parameter's index.
    pub fn new(params: Vec<Param>) -> Result<Self, TunerError> {
        let mut problems = Vec::new();
        if params.is_empty() {
            problems.push((None, "a study needs at least one parameter".to_string()));
        }
        for (index, param) in params.iter().enumerate() {
            let mut problem = |message: String| problems.push((Some(index), message));
            if param.name.is_empty() {
                problem("the parameter needs a name".into());
            }
            if params[..index].iter().any(|other| other.name == param.name) {
                problem(format!("the name {:?} is used twice", param.name));
            }
            match &param.domain {
                Domain::Double { min, max, scale } => {
                    if !(min.is_finite() && max.is_finite() && min < max) {
                        problem(format!(
                            "minValue ({min}) must be less than maxValue ({max})"
                        ));
                    } else if *scale != Scale::Linear && *min <= 0.0 {
                        problem(format!("a log scale needs minValue > 0, got {min}"));
                    }
                }
                Domain::Integer { min, max, scale } => {
                    if min > max {
                        problem(format!("minValue ({min}) must not exceed maxValue ({max})"));
                    } else if *scale != Scale::Linear && *min <= 0 {
                        problem(format!("a log scale needs minValue > 0, got {min}"));
                    }
                }
                Domain::Discrete { values, scale } => {
                    if values.is_empty() {
                        problem("discreteValues must not be empty".into());
                    } else if values.iter().any(|value| !value.is_finite())
                        || values.windows(2).any(|pair| pair[0] >= pair[1])
                    {
                        problem("discreteValues must be finite and strictly increasing".into());
                    } else if *scale != Scale::Linear && values[0] <= 0.0 {
                        problem(format!(
                            "a log scale needs positive discreteValues, got {}",
                            values[0]
                        ));
                    }
                }
                Domain::Categorical { values } => {
                    if values.is_empty() {
                        problem("categoricalValues must not be empty".into());
                    }
                    for (position, value) in values.iter().enumerate() {
                        if values[..position].contains(value) {
                            problem(format!("categoricalValues has {value:?} twice"));
                        }
                    }
                }
            }
            for found in condition::problems(&params, index) {
                problems.push((Some(index), found));
            }
        }
        if problems.is_empty() {
            Ok(Self { params })
        } else {
            Err(TunerError::InvalidSpace(problems))
        }
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Number of numeric (unit) coordinates.
    pub fn unit_dims(&self) -> usize {
        self.params
            .iter()
            .filter(|param| !matches!(param.domain, Domain::Categorical { .. }))
            .count()
    }

    /// Number of categories of each categorical parameter, in order.
    pub fn category_sizes(&self) -> Vec<usize> {
        self.params
            .iter()
            .filter_map(|param| match &param.domain {
                Domain::Categorical { values } => Some(values.len()),
                _ => None,
            })
            .collect()
    }

    fn slots(&self) -> impl Iterator<Item = (&Param, Slot)> {
        let (mut unit, mut category) = (0, 0);
        self.params.iter().map(move |param| {
            let slot = match param.domain {
                Domain::Categorical { .. } => {
                    category += 1;
                    Slot::Category(category - 1)
                }
                _ => {
                    unit += 1;
                    Slot::Unit(unit - 1)
                }
            };
            (param, slot)
        })
    }

    /// Encodes values (one per parameter, in order); `None` when an active parameter's value does
    /// not belong to its domain. Inactive parameters take their fixed coordinate, whatever value
    /// they were given.
    pub fn encode(&self, values: &[Value]) -> Option<Point> {
        if values.len() != self.params.len() {
            return None;
        }
        let active = condition::active(&self.params, values);
        let mut point = Point {
            unit: vec![0.0; self.unit_dims()],
            category: vec![0; self.category_sizes().len()],
        };
        for (((param, slot), value), on) in self.slots().zip(values).zip(active) {
            match (slot, &param.domain, value) {
                (Slot::Unit(at), _, _) if !on => point.unit[at] = INACTIVE_UNIT,
                (Slot::Category(at), _, _) if !on => point.category[at] = 0,
                (Slot::Category(at), Domain::Categorical { values }, Value::Category(name)) => {
                    point.category[at] = values.iter().position(|known| known == name)?;
                }
                (Slot::Unit(at), domain, Value::Number(number)) if number.is_finite() => {
                    let (low, high, scale) = bounds(domain);
                    point.unit[at] = to_unit(*number, low, high, scale).clamp(0.0, 1.0);
                }
                _ => return None,
            }
        }
        Some(point)
    }

    /// Decodes a point into values: integers rounded, discrete values snapped to the nearest one,
    /// inactive parameters [`Value::Inactive`].
    pub fn decode(&self, point: &Point) -> Vec<Value> {
        let mut decoded: Vec<Value> = Vec::with_capacity(self.params.len());
        for (param, slot) in self.slots() {
            let on = condition::holds(param, &decoded);
            let value = match (slot, &param.domain) {
                _ if !on => Value::Inactive,
                (Slot::Category(at), Domain::Categorical { values }) => {
                    let index = point.category[at].min(values.len() - 1);
                    Value::Category(values[index].clone())
                }
                (Slot::Unit(at), domain) => {
                    let (low, high, scale) = bounds(domain);
                    let raw = from_unit(point.unit[at].clamp(0.0, 1.0), low, high, scale);
                    Value::Number(match domain {
                        Domain::Integer { min, max, .. } => {
                            raw.round().clamp(*min as f64, *max as f64)
                        }
                        Domain::Discrete { values, .. } => nearest(values, raw),
                        _ => raw.clamp(low, high),
                    })
                }
                _ => unreachable!("slots pair categorical parameters with category slots"),
            };
            decoded.push(value);
        }
        decoded
    }

    /// The point moved onto the nearest value the space can hold (integers, discrete values).
    pub fn snap(&self, point: &Point) -> Point {
        self.encode(&self.decode(point))
            .expect("decoded values always belong to the space")
    }
}

/// The numeric range a domain's unit coordinate spans. Integers span `[min − ½, max + ½]` so every
/// integer owns an equal share of the axis (on a log scale `min ≥ 1` keeps the range positive).
fn bounds(domain: &Domain) -> (f64, f64, Scale) {
    match domain {
        Domain::Double { min, max, scale } => (*min, *max, *scale),
        Domain::Integer { min, max, scale } => {
            let low = *min as f64 - 0.5;
            let low = if *scale == Scale::Linear {
                low
            } else {
                low.max(*min as f64 * 0.5)
            };
            (low, *max as f64 + 0.5, *scale)
        }
        Domain::Discrete { values, scale } => {
            let (first, last) = (values[0], values[values.len() - 1]);
            if first == last {
                (first, first + 1.0, *scale)
            } else {
                (first, last, *scale)
            }
        }
        Domain::Categorical { .. } => (0.0, 1.0, Scale::Linear),
    }
}

fn to_unit(value: f64, low: f64, high: f64, scale: Scale) -> f64 {
    match scale {
        Scale::Linear => (value - low) / (high - low),
        Scale::Log => (value.max(low).ln() - low.ln()) / (high.ln() - low.ln()),
        Scale::ReverseLog => {
            // Mirror the value in the range, take the log scale, mirror back.
            let mirrored = high + low - value.min(high);
            1.0 - (mirrored.ln() - low.ln()) / (high.ln() - low.ln())
        }
    }
}

fn from_unit(unit: f64, low: f64, high: f64, scale: Scale) -> f64 {
    match scale {
        Scale::Linear => low + unit * (high - low),
        Scale::Log => (low.ln() + unit * (high.ln() - low.ln())).exp(),
        Scale::ReverseLog => high + low - (low.ln() + (1.0 - unit) * (high.ln() - low.ln())).exp(),
    }
}

fn nearest(values: &[f64], target: f64) -> f64 {
    values
        .iter()
        .copied()
        .min_by(|a, b| (a - target).abs().total_cmp(&(b - target).abs()))
        .unwrap_or(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, domain: Domain) -> Param {
        Param::new(name, domain)
    }

    #[test]
    fn scales_round_trip_and_place_values_as_their_scale_says() {
        for scale in [Scale::Linear, Scale::Log, Scale::ReverseLog] {
            for value in [0.1, 0.25, 0.5, 0.9, 1.0] {
                let unit = to_unit(value, 0.1, 1.0, scale);
                assert!((0.0..=1.0).contains(&unit));
                assert!(
                    (from_unit(unit, 0.1, 1.0, scale) - value).abs() < 1e-12,
                    "{scale:?} {value}"
                );
            }
        }
        // The middle of the log axis is the geometric mean; the reverse log scale is dense at the top.
        assert!((from_unit(0.5, 0.01, 1.0, Scale::Log) - 0.1).abs() < 1e-12);
        assert!(1.0 - to_unit(0.95, 0.1, 1.0, Scale::ReverseLog) > 0.15);
        assert!(1.0 - to_unit(0.95, 0.1, 1.0, Scale::Linear) < 0.06);
    }

    #[test]
    fn integers_round_discrete_values_snap_and_categories_decode() {
        let space = Space::new(vec![
            param(
                "layers",
                Domain::Integer {
                    min: 1,
                    max: 15,
                    scale: Scale::Linear,
                },
            ),
            param(
                "batch",
                Domain::Discrete {
                    values: vec![16.0, 32.0, 128.0],
                    scale: Scale::Log,
                },
            ),
            param(
                "act",
                Domain::Categorical {
                    values: vec!["relu".into(), "tanh".into()],
                },
            ),
            param(
                "size",
                Domain::Integer {
                    min: 1,
                    max: 1000,
                    scale: Scale::Log,
                },
            ),
        ])
        .unwrap();
        let point = Point {
            unit: vec![0.51, 0.6, 1.0],
            category: vec![1],
        };
        let values = space.decode(&point);
        assert_eq!(values[0], Value::Number(8.0));
        assert_eq!(values[1], Value::Number(32.0));
        assert_eq!(values[2], Value::Category("tanh".into()));
        assert_eq!(values[3], Value::Number(1000.0));
        assert_eq!(space.decode(&space.encode(&values).unwrap()), values);
        for unit in [0.0, 0.03, 0.5, 1.0] {
            let snapped = space.snap(&Point {
                unit: vec![unit; 3],
                category: vec![0],
            });
            assert_eq!(space.snap(&snapped), snapped);
        }
        assert_eq!(values[0].to_string(), "8");
        assert_eq!(Value::Number(0.001).to_string(), "0.001");
        assert!(space.encode(&[Value::Number(1.0)]).is_none());
        assert!(
            space
                .encode(&[
                    Value::Number(1.0),
                    Value::Number(16.0),
                    Value::Category("gelu".into()),
                    Value::Number(3.0)
                ])
                .is_none()
        );
    }

    #[test]
    fn invalid_spaces_name_every_problem() {
        let Err(TunerError::InvalidSpace(problems)) = Space::new(vec![
            param(
                "lr",
                Domain::Double {
                    min: 0.0,
                    max: 1.0,
                    scale: Scale::Log,
                },
            ),
            param(
                "lr",
                Domain::Double {
                    min: 2.0,
                    max: 1.0,
                    scale: Scale::Linear,
                },
            ),
            param(
                "d",
                Domain::Discrete {
                    values: vec![1.0, 1.0],
                    scale: Scale::Linear,
                },
            ),
            param("c", Domain::Categorical { values: vec![] }),
        ]) else {
            panic!("accepted an invalid space");
        };
        let indices: Vec<_> = problems.iter().map(|(index, _)| *index).collect();
        assert_eq!(indices, vec![Some(0), Some(1), Some(1), Some(2), Some(3)]);
        assert!(problems[0].1.contains("log scale"));
    }
}
