//! JSON instances in, JSON predictions out: the conversions between a request's values and the
//! tensors of an ONNX model's inputs and outputs.
//!
//! Dimension 0 of an input is the batch when it is symbolic; the rest is what one instance
//! holds. An instance may give that as nested lists of the input's shape or flat (raw pixels for
//! a `[1, 28, 28]` image, a bare number for the `[1]`-shaped columns scikit-learn exports).

use serde_json::{Map, Value};
use tract_onnx::prelude::{Datum, DatumType, Tensor, TractResult};

use super::graph::Output;

/// How an input's first dimension relates to the instances of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Symbolic: instances are stacked along it.
    Dynamic,
    /// Fixed at 1: one instance per run.
    One,
    /// A scalar input, or a first dimension that is not a batch: the instance is the whole tensor.
    Whole,
}

/// What one model input takes from each instance.
#[derive(Debug, Clone)]
pub struct Input {
    /// The graph input's name, the instance key that feeds it.
    pub name: String,
    /// Its element type.
    pub datum_type: DatumType,
    /// How its first dimension is used.
    pub batch: Batch,
    /// The shape one instance fills; `None` for a symbolic dimension, set by the first instance.
    pub row_shape: Vec<Option<usize>>,
}

impl Input {
    /// The element types an instance's JSON values can be converted to.
    pub fn accepts(datum_type: DatumType) -> bool {
        datum_type.is_number() || matches!(datum_type, DatumType::Bool | DatumType::String)
    }

    /// The value `instance` gives this input: its own key of an object, or the whole instance
    /// when the model has a single input.
    fn value_in<'a>(&self, instance: &'a Value, single: bool) -> Result<&'a Value, String> {
        match instance {
            Value::Object(fields) => match fields.get(&self.name) {
                Some(value) => Ok(value),
                None if single && fields.len() != 1 => Ok(instance),
                None => Err(format!(
                    "the instance has no value for input '{}'",
                    self.name
                )),
            },
            _ if single => Ok(instance),
            _ => Err(format!(
                "the model has several inputs; give each instance as an object keyed by input \
                 name ('{}', ...)",
                self.name
            )),
        }
    }

    /// Stacks the instances' values for this input into one tensor; an error names the
    /// instance at fault.
    pub fn tensor(&self, instances: &[&Value], single: bool) -> Result<Tensor, (usize, String)> {
        let mut shape: Option<Vec<usize>> = None;
        let mut leaves = Vec::new();
        for (index, instance) in instances.iter().enumerate() {
            let value = self
                .value_in(instance, single)
                .map_err(|error| (index, error))?;
            let row = self
                .row(value, shape.as_deref())
                .map_err(|error| (index, error))?;
            shape.get_or_insert(row.0);
            leaves.extend(row.1);
        }
        let row_shape = shape.unwrap_or_default();
        let full: Vec<usize> = match self.batch {
            Batch::Dynamic => std::iter::once(instances.len()).chain(row_shape).collect(),
            Batch::One => std::iter::once(1).chain(row_shape).collect(),
            Batch::Whole => row_shape,
        };
        let per_instance = (leaves.len() / instances.len().max(1)).max(1);
        self.convert(&full, &leaves)
            .map_err(|(leaf, error)| (leaf / per_instance, error))
    }

    /// Checks one instance's value against the row shape (or against `fixed`, the shape the
    /// batch's first instance set) and returns the shape it fills and its scalars.
    fn row<'a>(
        &self,
        value: &'a Value,
        fixed: Option<&[usize]>,
    ) -> Result<(Vec<usize>, Vec<&'a Value>), String> {
        let given = shape_of(value);
        let mut leaves = Vec::new();
        collect_leaves(value, &given, &mut leaves)
            .map_err(|error| format!("input '{}': {error}", self.name))?;
        let fits = |shape: &[usize]| {
            shape.len() == self.row_shape.len()
                && shape
                    .iter()
                    .zip(&self.row_shape)
                    .all(|(dim, want)| want.is_none_or(|want| want == *dim))
                && fixed.is_none_or(|fixed| fixed == shape)
        };
        if fits(&given) {
            return Ok((given, leaves));
        }
        if let Some(concrete) = self
            .row_shape
            .iter()
            .copied()
            .collect::<Option<Vec<usize>>>()
            && concrete.iter().product::<usize>() == leaves.len()
        {
            return Ok((concrete, leaves));
        }
        let want: Vec<String> = self
            .row_shape
            .iter()
            .zip(
                fixed
                    .unwrap_or_default()
                    .iter()
                    .map(Some)
                    .chain(std::iter::repeat(None)),
            )
            .map(|(dim, set)| match (dim, set) {
                (Some(dim), _) => dim.to_string(),
                (None, Some(set)) => set.to_string(),
                (None, None) => "?".into(),
            })
            .collect();
        Err(format!(
            "input '{}' takes instances of shape [{}]; got shape {:?} ({} values)",
            self.name,
            want.join(", "),
            given,
            leaves.len()
        ))
    }

    /// Builds the tensor from JSON scalars; an error carries the bad scalar's position.
    fn convert(&self, shape: &[usize], leaves: &[&Value]) -> Result<Tensor, (usize, String)> {
        let built = match self.datum_type {
            DatumType::Bool => {
                let values = scalars(leaves, |value| value.as_bool(), "true or false")
                    .map_err(|(at, error)| (at, self.named(error)))?;
                Tensor::from_shape(shape, &values)
            }
            DatumType::String => {
                let values = scalars(
                    leaves,
                    |value| match value {
                        Value::String(text) => Some(text.clone()),
                        Value::Number(number) => Some(number.to_string()),
                        _ => None,
                    },
                    "strings",
                )
                .map_err(|(at, error)| (at, self.named(error)))?;
                tract_onnx::prelude::tract_ndarray::ArrayD::from_shape_vec(shape, values)
                    .map(Tensor::from)
                    .map_err(|error| error.into())
            }
            datum_type => {
                let integral = !datum_type.is_float();
                let values = scalars(
                    leaves,
                    |value| {
                        value
                            .as_f64()
                            .filter(|number| !integral || number.fract() == 0.0)
                    },
                    if integral { "integers" } else { "numbers" },
                )
                .map_err(|(at, error)| (at, self.named(error)))?;
                Tensor::from_shape(shape, &values)
                    .and_then(|tensor| tensor.cast_to_dt(datum_type).map(|cast| cast.into_owned()))
            }
        };
        built.map_err(|error| (0, format!("input '{}': {error}", self.name)))
    }

    fn named(&self, error: String) -> String {
        format!("input '{}' takes {error}", self.name)
    }
}

/// Converts every leaf with `convert`, naming the first that does not convert.
fn scalars<T>(
    leaves: &[&Value],
    convert: impl Fn(&Value) -> Option<T>,
    what: &str,
) -> Result<Vec<T>, (usize, String)> {
    leaves
        .iter()
        .enumerate()
        .map(|(at, leaf)| convert(leaf).ok_or_else(|| (at, format!("{what}; got {leaf}"))))
        .collect()
}

/// The shape of nested lists, read down their first elements.
fn shape_of(value: &Value) -> Vec<usize> {
    let mut shape = Vec::new();
    let mut current = value;
    while let Value::Array(items) = current {
        shape.push(items.len());
        match items.first() {
            Some(first) => current = first,
            None => break,
        }
    }
    shape
}

/// The scalars of `value` in row-major order, checking that every list has the length `shape`
/// says at its depth.
fn collect_leaves<'a>(
    value: &'a Value,
    shape: &[usize],
    leaves: &mut Vec<&'a Value>,
) -> Result<(), String> {
    match (value, shape.split_first()) {
        (Value::Array(items), Some((&length, rest))) if items.len() == length => items
            .iter()
            .try_for_each(|item| collect_leaves(item, rest, leaves)),
        (Value::Array(_), _) | (_, Some(_)) => {
            Err("nested lists must be rectangular (every row the same length)".into())
        }
        (leaf, None) => {
            leaves.push(leaf);
            Ok(())
        }
    }
}

/// Splits an output tensor into one JSON value per instance: along dimension 0 when it holds
/// `rows` rows, else the whole value for each.
pub fn rows(tensor: &Tensor, rows: usize, output: &Output) -> Result<Vec<Value>, String> {
    let shape = tensor.shape();
    let (row_shape, split) = match shape.split_first() {
        Some((&first, rest)) if first == rows => (rest, true),
        _ => (shape, false),
    };
    let values = flat_json(tensor)?;
    let size = row_shape.iter().product::<usize>();
    let row = |index: usize| {
        let slice = &values[index * size..(index + 1) * size];
        match &output.class_labels {
            Some(labels) if labels.len() == slice.len() => Value::Object(
                labels
                    .iter()
                    .cloned()
                    .zip(slice.iter().cloned())
                    .collect::<Map<String, Value>>(),
            ),
            _ => nest(slice, row_shape),
        }
    };
    Ok(match split {
        true => (0..rows).map(row).collect(),
        false => vec![row(0); rows],
    })
}

/// The tensor's elements as JSON scalars, row-major. Floats print as their own type's shortest
/// decimal (0.1f32 as 0.1, not 0.10000000149011612).
fn flat_json(tensor: &Tensor) -> Result<Vec<Value>, String> {
    fn each<T: Datum>(tensor: &Tensor, json: impl Fn(&T) -> Value) -> TractResult<Vec<Value>> {
        Ok(tensor
            .try_as_plain_ram()?
            .as_slice::<T>()?
            .iter()
            .map(json)
            .collect())
    }
    let converted = match tensor.datum_type() {
        DatumType::F32 => each(tensor, |value: &f32| {
            float(value.to_string().parse().unwrap_or(f64::NAN))
        }),
        DatumType::Bool => each(tensor, |value: &bool| Value::Bool(*value)),
        DatumType::String => each(tensor, |value: &String| Value::String(value.clone())),
        datum_type if datum_type.is_float() => tensor
            .cast_to::<f64>()
            .and_then(|cast| each(&cast, |value: &f64| float(*value))),
        _ => tensor
            .cast_to::<i64>()
            .and_then(|cast| each(&cast, |value: &i64| Value::from(*value))),
    };
    converted.map_err(|error| format!("output conversion: {error}"))
}

/// A float as JSON; NaN and infinities, which JSON lacks, become null.
fn float(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// Rebuilds nested lists of `shape` from row-major scalars; a scalar for the empty shape.
fn nest(values: &[Value], shape: &[usize]) -> Value {
    match shape.split_first() {
        None => values.first().cloned().unwrap_or(Value::Null),
        Some((&length, rest)) => {
            let size = rest.iter().product::<usize>();
            Value::Array(
                (0..length)
                    .map(|index| nest(&values[index * size..(index + 1) * size], rest))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(datum_type: DatumType, row_shape: &[Option<usize>]) -> Input {
        Input {
            name: "x".into(),
            datum_type,
            batch: Batch::Dynamic,
            row_shape: row_shape.to_vec(),
        }
    }

    #[test]
    fn stacks_nested_flat_and_keyed_instances() {
        let image = input(DatumType::F32, &[Some(1), Some(2), Some(2)]);
        let instances = [
            json!([[[1, 2], [3, 4]]]),
            json!([5, 6, 7, 8]),
            json!({"x": [[[9, 0], [1, 2]]]}),
        ];
        let refs: Vec<&Value> = instances.iter().collect();
        let tensor = image.tensor(&refs, true).unwrap();
        assert_eq!(tensor.shape(), &[3, 1, 2, 2]);
        assert_eq!(
            tensor
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap()[4..8],
            [5.0, 6.0, 7.0, 8.0]
        );
    }

    #[test]
    fn names_the_instance_and_the_input_that_do_not_fit() {
        let vector = input(DatumType::F32, &[Some(3)]);
        let instances = [json!([1, 2, 3]), json!([1, 2])];
        let refs: Vec<&Value> = instances.iter().collect();
        let (index, error) = vector.tensor(&refs, true).unwrap_err();
        assert_eq!(index, 1);
        assert!(
            error.contains("input 'x' takes instances of shape [3]"),
            "{error}"
        );

        let counts = input(DatumType::I64, &[None]);
        let instances = [json!([1, 2]), json!([3, 4.5])];
        let refs: Vec<&Value> = instances.iter().collect();
        let (index, error) = counts.tensor(&refs, true).unwrap_err();
        assert_eq!(index, 1);
        assert!(error.contains("takes integers; got 4.5"), "{error}");

        let instances = [json!([1, 2]), json!([3, 4, 5])];
        let refs: Vec<&Value> = instances.iter().collect();
        let (index, error) = counts.tensor(&refs, true).unwrap_err();
        assert_eq!(index, 1);
        assert!(error.contains("shape [2]"), "{error}");

        let instances = [json!({"y": [1.0]})];
        let refs: Vec<&Value> = instances.iter().collect();
        let (_, error) = vector.tensor(&refs, false).unwrap_err();
        assert!(error.contains("no value for input 'x'"), "{error}");
    }

    #[test]
    fn splits_outputs_per_instance_and_keys_zipmap_probabilities() {
        let probabilities = Tensor::from_shape(&[2, 2], &[0.25f32, 0.75, 0.1, 0.9]).unwrap();
        let zipped = Output {
            name: "p".into(),
            class_labels: Some(vec!["no".into(), "yes".into()]),
        };
        assert_eq!(
            rows(&probabilities, 2, &zipped).unwrap(),
            [
                json!({"no": 0.25, "yes": 0.75}),
                json!({"no": 0.1, "yes": 0.9})
            ]
        );
        let labels = Tensor::from_shape(&[2], &[3i64, 1]).unwrap();
        let plain = Output {
            name: "label".into(),
            class_labels: None,
        };
        assert_eq!(rows(&labels, 2, &plain).unwrap(), [json!(3), json!(1)]);
        assert_eq!(
            rows(&probabilities, 2, &plain).unwrap(),
            [json!([0.25, 0.75]), json!([0.1, 0.9])]
        );
    }
}
