//! Instances' JSON text read straight into input tensors: the fast path of a predict request.
//!
//! Parsing a 512-instance request into `serde_json::Value`s, then walking the values into
//! tensors, cost more than running the model on it: every number, list and key of every instance
//! became an allocation. Here the text is read once, each scalar converted and appended to its
//! input's buffer as the parser meets it.
//!
//! Only the common form is read: each instance an object keyed by input name (or, for a model
//! with one input, that input's value), each value a scalar of the input's element type or
//! rectangular nested lists of them that fit the input's shape. Anything else (`{"b64": ...}`, a
//! string for a number, a missing or repeated key, an empty or ragged list, a shape that does
//! not fit) makes [`read`] give up, and the caller takes the value path
//! ([`super::tensors`]), which accepts the instance or words its error. Both paths therefore
//! accept the same instances and build the same tensors; a test holds them to it.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::graph::Element;
use super::tensors::{Array, Batch, Data, Input};

/// The inputs' tensors for `instances`, in input order; `None` when an instance is not in the
/// form this path reads.
pub fn read(inputs: &[Input], instances: &[&RawValue]) -> Option<Vec<Array>> {
    if inputs.iter().any(|input| input.batch != Batch::Dynamic) {
        return None;
    }
    let mut columns: Vec<Column> = inputs
        .iter()
        .map(|input| {
            let row: usize = input.row_shape.iter().map(|dim| dim.unwrap_or(1)).product();
            Column::new(input.element, instances.len() * row)
        })
        .collect();
    for instance in instances {
        let mut deserializer = serde_json::Deserializer::from_str(instance.get());
        let seed = InstanceSeed {
            columns: &mut columns,
            inputs,
        };
        serde::Deserializer::deserialize_any(&mut deserializer, seed).ok()?;
        for (column, input) in columns.iter_mut().zip(inputs) {
            column.end_instance(input)?;
        }
    }
    Some(
        columns
            .into_iter()
            .map(|column| Array {
                shape: std::iter::once(instances.len())
                    .chain(column.fixed.unwrap_or_default())
                    .collect(),
                data: column.data,
            })
            .collect(),
    )
}

/// One input's tensor as it fills, and the shape of the instance being read.
struct Column {
    data: Data,
    /// The row shape the first instance set; every later one must fill the same.
    fixed: Option<Vec<usize>>,
    /// The current instance's list length at each depth (`None` until a list there ends).
    dims: Vec<Option<usize>>,
    /// The depth of the current instance's scalars.
    leaf_depth: Option<usize>,
    /// Scalars in `data` before the current instance.
    start: usize,
    /// Whether the current instance gave this input a value.
    given: bool,
}

/// Why the fast path gave up; the value path says what, if anything, is wrong.
#[derive(Debug)]
struct GiveUp;

impl fmt::Display for GiveUp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("not in the form the fast path reads")
    }
}

impl Column {
    /// An empty column with room for `capacity` scalars.
    fn new(element: Element, capacity: usize) -> Self {
        let data = match element {
            Element::F32 => Data::F32(Vec::with_capacity(capacity)),
            Element::F64 => Data::F64(Vec::with_capacity(capacity)),
            Element::I32 => Data::I32(Vec::with_capacity(capacity)),
            Element::I64 => Data::I64(Vec::with_capacity(capacity)),
            Element::Bool => Data::Bool(Vec::with_capacity(capacity)),
            Element::String => Data::String(Vec::with_capacity(capacity)),
            Element::U8 => Data::U8(Vec::with_capacity(capacity)),
        };
        Self {
            data,
            fixed: None,
            dims: Vec::new(),
            leaf_depth: None,
            start: 0,
            given: false,
        }
    }

    fn len(&self) -> usize {
        match &self.data {
            Data::F32(values) => values.len(),
            Data::F64(values) => values.len(),
            Data::I32(values) => values.len(),
            Data::I64(values) => values.len(),
            Data::Bool(values) => values.len(),
            Data::String(values) => values.len(),
            Data::U8(values) => values.len(),
        }
    }

    /// Checks the instance just read against the input's shape, as the value path does, and
    /// makes ready for the next.
    fn end_instance(&mut self, input: &Input) -> Option<()> {
        if !self.given {
            return None;
        }
        let count = self.len() - self.start;
        let given: Vec<usize> = match self.leaf_depth {
            Some(depth) => self
                .dims
                .get(..depth)?
                .iter()
                .copied()
                .collect::<Option<_>>()?,
            None => return None,
        };
        let shape = input.fit(given, count, self.fixed.as_deref()).ok()?;
        self.fixed.get_or_insert(shape);
        self.dims.clear();
        self.leaf_depth = None;
        self.start = self.len();
        self.given = false;
        Some(())
    }

    /// A list of `length` elements ended at `depth`.
    fn list(&mut self, depth: usize, length: usize) -> Result<(), GiveUp> {
        if self.dims.len() <= depth {
            self.dims.resize(depth + 1, None);
        }
        match self.dims[depth] {
            _ if length == 0 => Err(GiveUp),
            None => {
                self.dims[depth] = Some(length);
                Ok(())
            }
            Some(known) if known == length => Ok(()),
            Some(_) => Err(GiveUp),
        }
    }

    /// A scalar at `depth`: all of an instance's scalars must sit at the same depth.
    fn at_leaf(&mut self, depth: usize) -> Result<(), GiveUp> {
        match *self.leaf_depth.get_or_insert(depth) == depth {
            true => Ok(()),
            false => Err(GiveUp),
        }
    }

    /// Appends a JSON integer, converted as the value path converts it.
    fn integer<T: Integer>(&mut self, depth: usize, value: T) -> Result<(), GiveUp> {
        self.at_leaf(depth)?;
        let as_f64 = || value.to_f64();
        match &mut self.data {
            Data::F32(values) => values.push(as_f64() as f32),
            Data::F64(values) => values.push(as_f64()),
            Data::I32(values) => values.push(value.try_into().map_err(|_| GiveUp)?),
            // Beyond i64 the value path reads the number as a float and saturates.
            Data::I64(values) => values.push(value.try_into().unwrap_or(as_f64() as i64)),
            Data::U8(values) => values.push(value.try_into().map_err(|_| GiveUp)?),
            Data::Bool(_) | Data::String(_) => return Err(GiveUp),
        }
        Ok(())
    }

    /// Appends a JSON number with a fraction or an exponent.
    fn float(&mut self, depth: usize, value: f64) -> Result<(), GiveUp> {
        self.at_leaf(depth)?;
        let integral = value.fract() == 0.0;
        match &mut self.data {
            Data::F32(values) => values.push(value as f32),
            Data::F64(values) => values.push(value),
            Data::I32(values) if integral => {
                values.push(i32::try_from(value as i64).map_err(|_| GiveUp)?);
            }
            Data::I64(values) if integral => values.push(value as i64),
            Data::U8(values) if integral => {
                values.push(u8::try_from(value as i64).map_err(|_| GiveUp)?);
            }
            _ => return Err(GiveUp),
        }
        Ok(())
    }

    fn boolean(&mut self, depth: usize, value: bool) -> Result<(), GiveUp> {
        self.at_leaf(depth)?;
        match &mut self.data {
            Data::Bool(values) => values.push(value),
            _ => return Err(GiveUp),
        }
        Ok(())
    }

    fn string(&mut self, depth: usize, value: &str) -> Result<(), GiveUp> {
        self.at_leaf(depth)?;
        match &mut self.data {
            Data::String(values) => values.push(value.to_owned()),
            _ => return Err(GiveUp),
        }
        Ok(())
    }
}

/// The integers JSON numbers parse to: `i64` when negative, `u64` when not.
trait Integer: Copy + TryInto<i64> + TryInto<i32> + TryInto<u8> {
    fn to_f64(self) -> f64;
}

impl Integer for i64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Integer for u64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// One instance: an object keyed by input name, or the value of a model's only input.
struct InstanceSeed<'a> {
    columns: &'a mut [Column],
    inputs: &'a [Input],
}

impl<'de> DeserializeSeed<'de> for InstanceSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a> InstanceSeed<'a> {
    /// A bare instance: the value of the model's only input.
    fn only(self) -> Result<ValueReader<'a>, GiveUp> {
        match self.columns {
            [column] => {
                column.given = true;
                Ok(ValueReader { column, depth: 0 })
            }
            _ => Err(GiveUp),
        }
    }
}

/// Forwards the events of a bare instance to the only input's reader.
macro_rules! forward {
    ($($method:ident($type:ty)),*) => {$(
        fn $method<E: de::Error>(self, value: $type) -> Result<(), E> {
            self.only().map_err(E::custom)?.$method(value)
        }
    )*};
}

impl<'de> Visitor<'de> for InstanceSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an instance")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed(self.inputs))? {
            match key {
                Some(index) if !self.columns[index].given => {
                    self.columns[index].given = true;
                    map.next_value_seed(ValueReader {
                        column: &mut self.columns[index],
                        depth: 0,
                    })?;
                }
                Some(_) => return Err(de::Error::custom(GiveUp)),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.only().map_err(de::Error::custom)?.visit_seq(seq)
    }

    forward!(
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_bool(bool),
        visit_str(&str)
    );
}

/// An object key: the index of the input it names, `None` for any other key.
struct KeySeed<'a>(&'a [Input]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an input name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|input| input.name == key))
    }
}

/// One input's value, or a list inside it at `depth`, appended to its column.
struct ValueReader<'a> {
    column: &'a mut Column,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueReader<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueReader<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a scalar or a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut length = 0;
        while seq
            .next_element_seed(ValueReader {
                column: &mut *self.column,
                depth: self.depth + 1,
            })?
            .is_some()
        {
            length += 1;
        }
        self.column
            .list(self.depth, length)
            .map_err(de::Error::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.column.integer(self.depth, value).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.column.integer(self.depth, value).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        self.column.float(self.depth, value).map_err(E::custom)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        self.column.boolean(self.depth, value).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.column.string(self.depth, value).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn input(name: &str, element: Element, row_shape: &[Option<usize>]) -> Input {
        Input {
            name: name.into(),
            element,
            batch: Batch::Dynamic,
            row_shape: row_shape.to_vec(),
        }
    }

    /// Reads `batch` on both paths: whatever the fast path reads, the value path must read to
    /// the same tensors. Returns whether the fast path read it.
    fn both(inputs: &[Input], batch: &[&str]) -> bool {
        let raw: Vec<Box<RawValue>> = batch
            .iter()
            .map(|text| RawValue::from_string(text.to_string()).unwrap())
            .collect();
        let refs: Vec<&RawValue> = raw.iter().map(AsRef::as_ref).collect();
        let values: Vec<Value> = batch
            .iter()
            .map(|text| serde_json::from_str(text).unwrap())
            .collect();
        let values: Vec<&Value> = values.iter().collect();
        let slow: Result<Vec<Array>, _> = inputs
            .iter()
            .map(|input| input.tensor(&values, inputs.len() == 1))
            .collect();
        match read(inputs, &refs) {
            Some(fast) => {
                assert_eq!(Ok(fast), slow, "{batch:?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn reads_the_common_forms_as_the_value_path_does() {
        let census = [
            input("cat", Element::I64, &[Some(2)]),
            input("num", Element::F32, &[Some(3)]),
            input("word", Element::String, &[Some(1)]),
        ];
        assert!(both(
            &census,
            &[
                r#"{"cat": [1, 2], "num": [0.5, -1, 1e3], "word": ["a"]}"#,
                r#"{"word": ["b"], "num": [0.6638542413711548, 2, 3], "cat": [3.0, 18446744073709551615], "id": {"x": 1}}"#,
            ]
        ));
        let image = [input("x", Element::F32, &[Some(1), Some(2), Some(2)])];
        assert!(both(
            &image,
            &[
                "[[[1, 2], [3, 4]]]",
                "[5, 6, 7, 8]",
                r#"{"x": [[[9, 0], [1, 2]]]}"#
            ]
        ));
        let ragged = [input("x", Element::I32, &[None, Some(2)])];
        assert!(both(
            &ragged,
            &["[[1, 2], [3, 4], [5, 6]]", "[[7, 8], [9, 1e1], [-3, 0]]"]
        ));
        let scalar = [input("x", Element::F64, &[])];
        assert!(both(&scalar, &["1.5", "-2", r#"{"x": 3}"#]));
        let flags = [input("x", Element::Bool, &[Some(2)])];
        assert!(both(&flags, &["[true, false]", "[false, false]"]));
        let bytes = [input("x", Element::U8, &[None])];
        assert!(both(&bytes, &["[0, 255, 7]", "[1, 2, 3]"]));
    }

    #[test]
    fn gives_up_on_what_only_the_value_path_accepts_or_words() {
        let census = [
            input("cat", Element::I64, &[Some(2)]),
            input("word", Element::String, &[Some(1)]),
        ];
        let image = [input("x", Element::F32, &[Some(2), Some(2)])];
        let bytes = [input("x", Element::U8, &[None])];
        let numbers = [input("x", Element::I32, &[None])];
        for (inputs, batch) in [
            (&census[..], &[r#"{"cat": [1, 2]}"#][..]),
            (&census, &[r#"{"cat": [1, 2], "word": [7]}"#]),
            (
                &census,
                &[r#"{"cat": [1, 2], "cat": [3, 4], "word": ["a"]}"#],
            ),
            (&census, &[r#"[1, 2]"#]),
            (&census, &[r#"{"cat": ["1", 2], "word": ["a"]}"#]),
            (&census, &[r#"{"cat": [1, null], "word": ["a"]}"#]),
            (&image, &["[[1, 2], [3]]"]),
            (&image, &["[[1, 2], 3, 4]"]),
            (&image, &["[1, 2, 3]"]),
            (&image, &["[[1, 2], [3, 4]]", "[[1, 2, 3]]"]),
            (&image, &["[[], []]"]),
            (&bytes, &[r#"{"b64": "AAEC"}"#]),
            (&bytes, &["[256]"]),
            (&bytes, &["[-1]"]),
            (&numbers, &["[1, 2.5]"]),
            (&numbers, &["[1, 2]", "[3]"]),
            (&numbers, &["[4294967296]"]),
        ] {
            assert!(!both(inputs, batch), "{batch:?}");
        }
    }
}
