//! Tensors as plain data: what the engines take and give, and what inference protocols carry
//! between a client and a runtime that reads tensors itself ([`crate::TensorRuntime`]).

use serde_json::Value;

/// A tensor as plain data: its shape and its elements, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: Data,
}

/// The elements of an [`Array`].
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    U8(Vec<u8>),
}

impl Data {
    /// How many elements it holds.
    pub fn len(&self) -> usize {
        match self {
            Data::F32(values) => values.len(),
            Data::F64(values) => values.len(),
            Data::I32(values) => values.len(),
            Data::I64(values) => values.len(),
            Data::Bool(values) => values.len(),
            Data::String(values) => values.len(),
            Data::U8(values) => values.len(),
        }
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes its elements take in memory (a string's own bytes), for queue bounds.
    pub fn bytes(&self) -> usize {
        match self {
            Data::F32(values) => values.len() * 4,
            Data::F64(values) => values.len() * 8,
            Data::I32(values) => values.len() * 4,
            Data::I64(values) => values.len() * 8,
            Data::Bool(values) => values.len(),
            Data::String(values) => values.iter().map(String::len).sum(),
            Data::U8(values) => values.len(),
        }
    }

    /// Its element type in NumPy's words, as signatures name them.
    pub fn dtype(&self) -> &'static str {
        match self {
            Data::F32(_) => "float32",
            Data::F64(_) => "float64",
            Data::I32(_) => "int32",
            Data::I64(_) => "int64",
            Data::Bool(_) => "bool",
            Data::String(_) => "string",
            Data::U8(_) => "uint8",
        }
    }

    /// The elements as JSON scalars. Floats print as their own type's shortest decimal (0.1f32
    /// as 0.1, not 0.10000000149011612); NaN and infinities, which JSON lacks, become null.
    pub fn to_json(&self) -> Vec<Value> {
        let float =
            |value: f64| serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        match self {
            Data::F32(values) => {
                let mut text = ryu::Buffer::new();
                values
                    .iter()
                    .map(|value| match value.is_finite() {
                        true => float(text.format_finite(*value).parse().unwrap_or(f64::NAN)),
                        false => Value::Null,
                    })
                    .collect()
            }
            Data::F64(values) => values.iter().map(|value| float(*value)).collect(),
            Data::I32(values) => values.iter().map(|value| Value::from(*value)).collect(),
            Data::I64(values) => values.iter().map(|value| Value::from(*value)).collect(),
            Data::U8(values) => values.iter().map(|value| Value::from(*value)).collect(),
            Data::Bool(values) => values.iter().map(|value| Value::Bool(*value)).collect(),
            Data::String(values) => values
                .iter()
                .map(|value| Value::from(value.as_str()))
                .collect(),
        }
    }
}

/// A named tensor: one input or output of a model, its first dimension the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The model input or output it is.
    pub name: String,
    /// Its shape and elements.
    pub array: Array,
}
