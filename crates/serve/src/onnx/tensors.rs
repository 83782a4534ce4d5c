//! JSON instances in, JSON predictions out: the conversions between a request's values and the
//! tensors of an ONNX model's inputs and outputs, as engine-neutral [`Array`]s.
//!
//! Dimension 0 of an input is the batch when it is symbolic; the rest is what one instance
//! holds. An instance may give that as nested lists of the input's shape or flat (raw pixels for
//! a `[1, 28, 28]` image, a bare number for the `[1]`-shaped columns scikit-learn exports).
//! `{"b64": ...}` gives a string input its bytes as text, and a `uint8` input its bytes as
//! elements (an encoded image's raw pixels, say).

use kiln_model::sequential::input::b64_bytes;
use serde_json::{Map, Value};
use std::borrow::Cow;

use super::graph::{Element, Output};
pub use crate::tensor::{Array, Data};

/// One element of an instance: a JSON scalar, or a byte of a `b64` value given to a `uint8`
/// input.
#[derive(Debug, Clone, Copy)]
enum Leaf<'a> {
    Json(&'a Value),
    Byte(u8),
}

impl<'a> Leaf<'a> {
    fn value(self) -> Cow<'a, Value> {
        match self {
            Leaf::Json(value) => Cow::Borrowed(value),
            Leaf::Byte(byte) => Cow::Owned(Value::from(byte)),
        }
    }
}

/// The value under `b64` of a one-field `{"b64": ...}` object.
fn b64_field(value: &Value) -> Option<&Value> {
    match value {
        Value::Object(fields) if fields.len() == 1 => fields.get("b64"),
        _ => None,
    }
}

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
    pub element: Element,
    /// How its first dimension is used.
    pub batch: Batch,
    /// The shape one instance fills; `None` for a symbolic dimension, set by the first instance.
    pub row_shape: Vec<Option<usize>>,
}

impl Input {
    /// An input that takes a batch of instances of `row_shape`.
    #[cfg(test)]
    pub fn batched(name: &str, element: Element, row_shape: &[Option<usize>]) -> Self {
        Self {
            name: name.into(),
            element,
            batch: Batch::Dynamic,
            row_shape: row_shape.to_vec(),
        }
    }

    /// The value `instance` gives this input: its own key of an object, or the whole instance
    /// when the model has a single input.
    fn value_in<'a>(&self, instance: &'a Value, single: bool) -> Result<&'a Value, String> {
        match instance {
            Value::Object(fields) => match fields.get(&self.name) {
                Some(value) => Ok(value),
                None if single && (fields.len() != 1 || fields.contains_key("b64")) => Ok(instance),
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
    pub fn tensor(&self, instances: &[&Value], single: bool) -> Result<Array, (usize, String)> {
        let mut shape: Option<Vec<usize>> = None;
        let mut leaves = Vec::new();
        for (index, instance) in instances.iter().enumerate() {
            let value = self
                .value_in(instance, single)
                .map_err(|error| (index, error))?;
            let row = self
                .row(value, shape.as_deref(), &mut leaves)
                .map_err(|error| (index, error))?;
            shape.get_or_insert(row);
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
    /// batch's first instance set), appends its scalars to `leaves` and returns the shape it
    /// fills.
    fn row<'a>(
        &self,
        value: &'a Value,
        fixed: Option<&[usize]>,
        leaves: &mut Vec<Leaf<'a>>,
    ) -> Result<Vec<usize>, String> {
        let start = leaves.len();
        let given = match b64_field(value).filter(|_| self.element == Element::U8) {
            Some(b64) => {
                let bytes =
                    b64_bytes(b64).map_err(|error| format!("input '{}': {error}", self.name))?;
                leaves.extend(bytes.into_iter().map(Leaf::Byte));
                vec![leaves.len() - start]
            }
            None => {
                let given = shape_of(value);
                collect_leaves(value, &given, leaves)
                    .map_err(|error| format!("input '{}': {error}", self.name))?;
                given
            }
        };
        self.fit(given, leaves.len() - start, fixed)
    }

    /// The shape an instance's value of `given` shape and `count` scalars fills: `given` when it
    /// matches the row shape (and `fixed`, the shape the batch's first instance set), else the
    /// row shape when that is concrete and holds `count` scalars (flat pixels for an image).
    pub fn fit(
        &self,
        given: Vec<usize>,
        count: usize,
        fixed: Option<&[usize]>,
    ) -> Result<Vec<usize>, String> {
        let fits = |shape: &[usize]| {
            shape.len() == self.row_shape.len()
                && shape
                    .iter()
                    .zip(&self.row_shape)
                    .all(|(dim, want)| want.is_none_or(|want| want == *dim))
                && fixed.is_none_or(|fixed| fixed == shape)
        };
        if fits(&given) {
            return Ok(given);
        }
        if let Some(concrete) = self
            .row_shape
            .iter()
            .copied()
            .collect::<Option<Vec<usize>>>()
            && concrete.iter().product::<usize>() == count
        {
            return Ok(concrete);
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
            count
        ))
    }

    /// Builds the tensor from JSON scalars; an error carries the bad scalar's position.
    fn convert(&self, shape: &[usize], leaves: &[Leaf]) -> Result<Array, (usize, String)> {
        let number = |integral: bool| {
            move |value: &Value| {
                value
                    .as_f64()
                    .filter(|number| !integral || number.fract() == 0.0)
            }
        };
        let (integers, numbers) = ("integers", "numbers");
        let data = match self.element {
            Element::F32 => Data::F32(self.scalars(
                leaves,
                "numbers within float32's range (about ±3.4e38)",
                |v| number(false)(v).map(|n| n as f32).filter(|n| n.is_finite()),
            )?),
            Element::F64 => Data::F64(self.scalars(leaves, numbers, number(false))?),
            Element::I32 => Data::I32(self.scalars(leaves, integers, |v| {
                number(true)(v).and_then(|n| i32::try_from(n as i64).ok())
            })?),
            Element::I64 => Data::I64(self.scalars(leaves, integers, |v| {
                v.as_i64().or_else(|| number(true)(v).map(|n| n as i64))
            })?),
            Element::U8 => Data::U8(self.scalars(leaves, "integers from 0 to 255", |v| {
                number(true)(v).and_then(|n| u8::try_from(n as i64).ok())
            })?),
            Element::Bool => Data::Bool(self.scalars(leaves, "true or false", Value::as_bool)?),
            Element::String => {
                Data::String(self.scalars(leaves, "strings", |value| match value {
                    Value::String(text) => Some(text.clone()),
                    Value::Number(number) => Some(number.to_string()),
                    Value::Object(_) => {
                        let bytes = b64_bytes(b64_field(value)?).ok()?;
                        String::from_utf8(bytes).ok()
                    }
                    _ => None,
                })?)
            }
        };
        Ok(Array {
            shape: shape.to_vec(),
            data,
        })
    }

    /// Converts every leaf with `convert`, naming the first that does not convert.
    fn scalars<T>(
        &self,
        leaves: &[Leaf],
        what: &str,
        convert: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<T>, (usize, String)> {
        leaves
            .iter()
            .enumerate()
            .map(|(at, leaf)| {
                let value = leaf.value();
                convert(&value).ok_or_else(|| {
                    (
                        at,
                        format!("input '{}' takes {what}; got {value}", self.name),
                    )
                })
            })
            .collect()
    }
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
    leaves: &mut Vec<Leaf<'a>>,
) -> Result<(), String> {
    match (value, shape.split_first()) {
        (Value::Array(items), Some((&length, rest))) if items.len() == length => items
            .iter()
            .try_for_each(|item| collect_leaves(item, rest, leaves)),
        (Value::Array(_), _) | (_, Some(_)) => {
            Err("nested lists must be rectangular (every row the same length)".into())
        }
        (leaf, None) => {
            leaves.push(Leaf::Json(leaf));
            Ok(())
        }
    }
}

/// Splits an output into one JSON value per instance: along dimension 0 when it holds `rows`
/// rows, else the whole value for each.
pub fn rows(array: &Array, rows: usize, output: &Output) -> Vec<Value> {
    let (row_shape, split) = match array.shape.split_first() {
        Some((&first, rest)) if first == rows => (rest, true),
        _ => (&array.shape[..], false),
    };
    let values = array.data.to_json();
    let size = row_shape.iter().product::<usize>();
    let row = |index: usize| {
        let slice = values
            .get(index * size..(index + 1) * size)
            .unwrap_or_default();
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
    match split {
        true => (0..rows).map(row).collect(),
        false => vec![row(0); rows],
    }
}

/// The instance (row along dimension 0, when the output holds `rows` rows; else 0) of the first
/// NaN or infinity in a float output.
pub fn non_finite_row(array: &Array, rows: usize) -> Option<usize> {
    let (at, len) = match &array.data {
        Data::F32(values) => (
            values.iter().position(|value| !value.is_finite())?,
            values.len(),
        ),
        Data::F64(values) => (
            values.iter().position(|value| !value.is_finite())?,
            values.len(),
        ),
        _ => return None,
    };
    match array.shape.first() {
        Some(&first) if first == rows && rows > 0 => Some(at / (len / rows).max(1)),
        _ => Some(0),
    }
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

    fn input(element: Element, row_shape: &[Option<usize>]) -> Input {
        Input::batched("x", element, row_shape)
    }

    #[test]
    fn stacks_nested_flat_and_keyed_instances() {
        let image = input(Element::F32, &[Some(1), Some(2), Some(2)]);
        let instances = [
            json!([[[1, 2], [3, 4]]]),
            json!([5, 6, 7, 8]),
            json!({"x": [[[9, 0], [1, 2]]]}),
        ];
        let refs: Vec<&Value> = instances.iter().collect();
        let tensor = image.tensor(&refs, true).unwrap();
        assert_eq!(tensor.shape, [3, 1, 2, 2]);
        let Data::F32(values) = tensor.data else {
            panic!("{tensor:?}")
        };
        assert_eq!(values[4..8], [5.0, 6.0, 7.0, 8.0]);
    }

    #[test]
    fn string_inputs_take_b64_text() {
        let text = input(Element::String, &[Some(1)]);
        let instances = [
            json!({"b64": "aGVsbG8="}),
            json!({"x": [{"b64": "d29ybGQ="}]}),
            json!(["plain"]),
        ];
        let refs: Vec<&Value> = instances.iter().collect();
        let tensor = text.tensor(&refs, true).unwrap();
        assert_eq!(
            tensor.data,
            Data::String(vec!["hello".into(), "world".into(), "plain".into()])
        );
        // Not UTF-8, and a one-field object that is not b64: refused, not a panic.
        for bad in [json!({"b64": "/w=="}), json!({"x": [{"text": "a"}]})] {
            let error = text.tensor(&[&bad], true).unwrap_err();
            assert!(error.1.contains("takes strings"), "{error:?}");
        }
    }

    #[test]
    fn byte_inputs_take_numbers_or_b64_bytes() {
        let image = input(Element::U8, &[Some(2), Some(2)]);
        // "AAEC/w==" is the bytes 0, 1, 2, 255: a 2 x 2 image, flat.
        let instances = [json!({"b64": "AAEC/w=="}), json!([[3, 4], [5, 6]])];
        let refs: Vec<&Value> = instances.iter().collect();
        let tensor = image.tensor(&refs, true).unwrap();
        assert_eq!(tensor.shape, vec![2, 2, 2]);
        assert_eq!(tensor.data, Data::U8(vec![0, 1, 2, 255, 3, 4, 5, 6]));
        // Three bytes do not make a 2 x 2 image; 256 is not a byte.
        let error = image.tensor(&[&json!({"b64": "AAEC"})], true).unwrap_err();
        assert!(error.1.contains("shape [2, 2]"), "{error:?}");
        let error = image
            .tensor(&[&json!([[1, 2], [3, 256]])], true)
            .unwrap_err();
        assert!(error.1.contains("integers from 0 to 255"), "{error:?}");
        // Any length for a symbolic dimension.
        let bytes = input(Element::U8, &[None]);
        let tensor = bytes.tensor(&[&json!({"b64": "AAEC"})], true).unwrap();
        assert_eq!(
            (tensor.shape, tensor.data),
            (vec![1, 3], Data::U8(vec![0, 1, 2]))
        );
    }

    #[test]
    fn names_the_instance_and_the_input_that_do_not_fit() {
        let vector = input(Element::F32, &[Some(3)]);
        let instances = [json!([1, 2, 3]), json!([1, 2])];
        let refs: Vec<&Value> = instances.iter().collect();
        let (index, error) = vector.tensor(&refs, true).unwrap_err();
        assert_eq!(index, 1);
        assert!(
            error.contains("input 'x' takes instances of shape [3]"),
            "{error}"
        );

        let counts = input(Element::I64, &[None]);
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
        let probabilities = Array {
            shape: vec![2, 2],
            data: Data::F32(vec![0.25, 0.75, 0.1, 0.9]),
        };
        let zipped = Output {
            name: "p".into(),
            class_labels: Some(vec!["no".into(), "yes".into()]),
            dtype: Some("float32"),
            dims: vec![None, Some(2)],
        };
        assert_eq!(
            rows(&probabilities, 2, &zipped),
            [
                json!({"no": 0.25, "yes": 0.75}),
                json!({"no": 0.1, "yes": 0.9})
            ]
        );
        let labels = Array {
            shape: vec![2],
            data: Data::I64(vec![3, 1]),
        };
        let plain = Output {
            name: "label".into(),
            class_labels: None,
            dtype: Some("int64"),
            dims: vec![None],
        };
        assert_eq!(rows(&labels, 2, &plain), [json!(3), json!(1)]);
        assert_eq!(
            rows(&probabilities, 2, &plain),
            [json!([0.25, 0.75]), json!([0.1, 0.9])]
        );
    }
}
