//! Feature columns and the transform from raw examples to model inputs.
//!
//! Every raw input is either a number or a string. Numeric columns feed the deep part as
//! z-scored values and, when they have bucket boundaries, the wide part and crosses as a
//! bucket id. Categorical columns become ids by vocabulary lookup (out-of-vocabulary values share
//! one extra id) or by hashing into a fixed number of buckets; they feed the wide part and, through
//! an embedding, the deep part. Crossed columns hash the ids of two or more columns together.
//!
//! The output of the transform is an [`Encoded`] example: dense floats and one id per *slot*.
//! Slots are numbered in this order: categorical columns, bucketized numeric columns, crosses.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// One raw input value, as read from CSV or decoded from a JSON instance.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// A number.
    Number(f64),
    /// A string; surrounding whitespace is ignored.
    Text(String),
    /// An empty cell or an absent field; the column's default applies.
    Missing,
}

impl RawValue {
    /// A CSV cell read as an input of `input_type`: empty is missing; a cell that is not a number
    /// stays text, so the encoder reports it naming the input.
    pub fn from_cell(cell: &str, input_type: InputType) -> Self {
        match (cell.is_empty(), input_type) {
            (true, _) => RawValue::Missing,
            (false, InputType::Float) => cell
                .parse()
                .map(RawValue::Number)
                .unwrap_or_else(|_| RawValue::Text(cell.to_string())),
            (false, InputType::String) => RawValue::Text(cell.to_string()),
        }
    }
}

/// The type of a raw input as the model's signature declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// A floating-point number.
    Float,
    /// A UTF-8 string.
    String,
}

/// A raw input of the model: its name (the JSON field of an instance) and type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// Name of the input, as in the training data header.
    pub name: String,
    /// Type of the input.
    #[serde(rename = "type")]
    pub input_type: InputType,
}

/// A numeric column, normalised with the training data's mean and standard deviation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericColumn {
    /// Input name.
    pub name: String,
    /// Value used when the input is missing (the training mean).
    pub default: f64,
    /// Training mean, subtracted before the deep part sees the value.
    pub mean: f64,
    /// Training standard deviation (1 when the column is constant).
    pub std: f64,
    /// Bucket boundaries; when non-empty the bucket id feeds the wide part and crosses.
    #[serde(default)]
    pub boundaries: Vec<f64>,
}

/// A categorical column: ids from a vocabulary or from hash buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalColumn {
    /// Input name.
    pub name: String,
    /// Known values; id = position, out-of-vocabulary values get id `vocabulary.len()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<Vec<String>>,
    /// Number of hash buckets, used when there is no vocabulary.
    #[serde(default)]
    pub hash_buckets: usize,
    /// Width of the column's embedding in the deep part.
    pub embedding_dim: usize,
}

impl CategoricalColumn {
    /// Number of distinct ids this column produces.
    pub fn cardinality(&self) -> usize {
        match &self.vocabulary {
            Some(vocabulary) => vocabulary.len() + 1,
            None => self.hash_buckets.max(1),
        }
    }
}

/// A cross of two or more categorical or bucketized columns, hashed into buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossedColumn {
    /// Names of the crossed columns (categorical, or numeric with boundaries).
    pub columns: Vec<String>,
    /// Number of hash buckets of the cross.
    pub hash_buckets: usize,
}

/// The resolved feature columns of a model: everything needed to encode a raw example.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Columns {
    /// Raw inputs in signature order.
    pub inputs: Vec<Input>,
    /// Numeric columns.
    pub numeric: Vec<NumericColumn>,
    /// Categorical columns.
    pub categorical: Vec<CategoricalColumn>,
    /// Crossed columns.
    #[serde(default)]
    pub crossed: Vec<CrossedColumn>,
}

/// One example after the transform.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded {
    /// Normalised numeric values, one per numeric column.
    pub dense: Vec<f32>,
    /// One id per slot, each below that slot's cardinality.
    pub ids: Vec<u32>,
}

/// Where a crossed column takes each of its parts from.
#[derive(Debug, Clone, Copy)]
enum CrossPart {
    Categorical(usize),
    Bucketized(usize),
}

/// [`Columns`] with lookup structures built once, ready to encode many examples.
#[derive(Debug, Clone)]
pub struct Encoder {
    columns: Columns,
    /// Position of each input by name.
    input_index: HashMap<String, usize>,
    /// Index into `inputs` for each numeric and categorical column.
    numeric_input: Vec<usize>,
    categorical_input: Vec<usize>,
    vocabularies: Vec<Option<HashMap<String, u32>>>,
    bucketized: Vec<usize>,
    crosses: Vec<Vec<CrossPart>>,
}

impl Encoder {
    /// Checks that every column refers to a declared input and builds the lookup tables.
    pub fn new(columns: Columns) -> Result<Self, ModelError> {
        let input_index: HashMap<String, usize> = columns
            .inputs
            .iter()
            .enumerate()
            .map(|(index, input)| (input.name.clone(), index))
            .collect();
        let find = |name: &str| {
            input_index
                .get(name)
                .copied()
                .ok_or_else(|| ModelError::Format(format!("column {name:?} is not an input")))
        };
        let numeric_input = columns
            .numeric
            .iter()
            .map(|column| find(&column.name))
            .collect::<Result<Vec<_>, _>>()?;
        let categorical_input = columns
            .categorical
            .iter()
            .map(|column| find(&column.name))
            .collect::<Result<Vec<_>, _>>()?;
        let vocabularies = columns
            .categorical
            .iter()
            .map(|column| {
                column.vocabulary.as_ref().map(|vocabulary| {
                    vocabulary
                        .iter()
                        .enumerate()
                        .map(|(id, value)| (value.clone(), id as u32))
                        .collect()
                })
            })
            .collect();
        let bucketized: Vec<usize> = (0..columns.numeric.len())
            .filter(|&index| !columns.numeric[index].boundaries.is_empty())
            .collect();
        let mut crosses = Vec::new();
        for cross in &columns.crossed {
            if cross.columns.len() < 2 || cross.hash_buckets == 0 {
                return Err(ModelError::Format(format!(
                    "cross {:?} needs two or more columns and hash_buckets > 0",
                    cross.columns
                )));
            }
            let parts = cross
                .columns
                .iter()
                .map(|name| {
                    if let Some(index) = columns.categorical.iter().position(|c| &c.name == name) {
                        Ok(CrossPart::Categorical(index))
                    } else if let Some(index) = bucketized
                        .iter()
                        .position(|&numeric| &columns.numeric[numeric].name == name)
                    {
                        Ok(CrossPart::Bucketized(index))
                    } else {
                        Err(ModelError::Format(format!(
                            "crossed column {name:?} must be categorical or numeric with boundaries"
                        )))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            crosses.push(parts);
        }
        Ok(Self {
            columns,
            input_index,
            numeric_input,
            categorical_input,
            vocabularies,
            bucketized,
            crosses,
        })
    }

    /// The columns this encoder was built from.
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// Position of an input by name.
    pub fn input_index(&self, name: &str) -> Option<usize> {
        self.input_index.get(name).copied()
    }

    /// Cardinality of every slot, in slot order.
    pub fn slot_cardinalities(&self) -> Vec<usize> {
        let mut slots: Vec<usize> = self
            .columns
            .categorical
            .iter()
            .map(CategoricalColumn::cardinality)
            .collect();
        slots.extend(
            self.bucketized
                .iter()
                .map(|&index| self.columns.numeric[index].boundaries.len() + 1),
        );
        slots.extend(self.columns.crossed.iter().map(|cross| cross.hash_buckets));
        slots
    }

    /// Row offset of every slot in a table that stacks all slots, and the total row count.
    pub fn slot_offsets(&self) -> (Vec<usize>, usize) {
        let mut offsets = Vec::new();
        let mut total = 0;
        for cardinality in self.slot_cardinalities() {
            offsets.push(total);
            total += cardinality;
        }
        (offsets, total)
    }

    /// Encodes one example whose values are in input order.
    pub fn encode(&self, values: &[RawValue]) -> Result<Encoded, ModelError> {
        let mut encoded = Encoded {
            dense: Vec::with_capacity(self.columns.numeric.len()),
            ids: Vec::with_capacity(self.slot_count()),
        };
        let mut raw_numbers = Vec::with_capacity(self.columns.numeric.len());
        for (column, &input) in self.columns.numeric.iter().zip(&self.numeric_input) {
            let value = match &values[input] {
                RawValue::Number(number) if number.is_finite() => *number,
                RawValue::Number(_) | RawValue::Missing => column.default,
                RawValue::Text(text) if text.trim().is_empty() => column.default,
                RawValue::Text(text) => text.trim().parse::<f64>().map_err(|_| {
                    ModelError::Input(format!(
                        "input {:?} must be a number, got {text:?}",
                        column.name
                    ))
                })?,
            };
            let normalized = ((value - column.mean) / column.std) as f32;
            if !value.is_finite() || !normalized.is_finite() {
                return Err(ModelError::Input(format!(
                    "input {:?} must be a finite number within float32's range (about ±3.4e38), got {value}",
                    column.name
                )));
            }
            raw_numbers.push(value);
            encoded.dense.push(normalized);
        }
        for (index, (column, &input)) in self
            .columns
            .categorical
            .iter()
            .zip(&self.categorical_input)
            .enumerate()
        {
            let text = match &values[input] {
                RawValue::Text(text) => text.trim().to_string(),
                RawValue::Number(number) => format_number(*number),
                RawValue::Missing => String::new(),
            };
            let id = match &self.vocabularies[index] {
                Some(vocabulary) => vocabulary
                    .get(&text)
                    .copied()
                    .unwrap_or(vocabulary.len() as u32),
                None => (fingerprint(text.as_bytes()) % column.cardinality() as u64) as u32,
            };
            encoded.ids.push(id);
        }
        for &numeric in &self.bucketized {
            let boundaries = &self.columns.numeric[numeric].boundaries;
            let value = raw_numbers[numeric];
            encoded
                .ids
                .push(boundaries.partition_point(|&boundary| boundary <= value) as u32);
        }
        let n_categorical = self.columns.categorical.len();
        for (cross, parts) in self.columns.crossed.iter().zip(&self.crosses) {
            let mut key = Vec::with_capacity(parts.len() * 8);
            for part in parts {
                let (slot, tag) = match part {
                    CrossPart::Categorical(index) => (*index, 0u32),
                    CrossPart::Bucketized(index) => (n_categorical + index, 1u32),
                };
                key.extend_from_slice(&tag.to_le_bytes());
                key.extend_from_slice(&encoded.ids[slot].to_le_bytes());
            }
            encoded
                .ids
                .push((fingerprint(&key) % cross.hash_buckets as u64) as u32);
        }
        Ok(encoded)
    }

    fn slot_count(&self) -> usize {
        self.columns.categorical.len() + self.bucketized.len() + self.columns.crossed.len()
    }
}

/// Formats a number the way a CSV would spell it, so `3` and `"3"` hash alike.
fn format_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

/// 64-bit FNV-1a: Kiln's stable hash for hash buckets and crosses. It is part of the export format:
/// changing it would silently change every hashed model's predictions.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder() -> Encoder {
        Encoder::new(Columns {
            inputs: vec![
                Input {
                    name: "age".into(),
                    input_type: InputType::Float,
                },
                Input {
                    name: "color".into(),
                    input_type: InputType::String,
                },
                Input {
                    name: "city".into(),
                    input_type: InputType::String,
                },
            ],
            numeric: vec![NumericColumn {
                name: "age".into(),
                default: 30.0,
                mean: 30.0,
                std: 10.0,
                boundaries: vec![18.0, 65.0],
            }],
            categorical: vec![
                CategoricalColumn {
                    name: "color".into(),
                    vocabulary: Some(vec!["red".into(), "blue".into()]),
                    hash_buckets: 0,
                    embedding_dim: 2,
                },
                CategoricalColumn {
                    name: "city".into(),
                    vocabulary: None,
                    hash_buckets: 7,
                    embedding_dim: 2,
                },
            ],
            crossed: vec![CrossedColumn {
                columns: vec!["color".into(), "age".into()],
                hash_buckets: 5,
            }],
        })
        .unwrap()
    }

    #[test]
    fn encodes_numeric_vocabulary_hash_bucket_and_cross() {
        let encoder = encoder();
        assert_eq!(encoder.slot_cardinalities(), vec![3, 7, 3, 5]);
        let encoded = encoder
            .encode(&[
                RawValue::Number(50.0),
                RawValue::Text(" blue ".into()),
                RawValue::Text("Paris".into()),
            ])
            .unwrap();
        assert_eq!(encoded.dense, vec![2.0]);
        assert_eq!(encoded.ids[0], 1, "vocabulary lookup trims whitespace");
        assert_eq!(encoded.ids[1], (fingerprint(b"Paris") % 7) as u32);
        assert_eq!(
            encoded.ids[2], 1,
            "50 falls between the boundaries 18 and 65"
        );
        assert!(encoded.ids[3] < 5);
    }

    #[test]
    fn missing_and_unknown_values_fall_back() {
        let encoded = encoder()
            .encode(&[
                RawValue::Missing,
                RawValue::Text("green".into()),
                RawValue::Missing,
            ])
            .unwrap();
        assert_eq!(encoded.dense, vec![0.0], "missing numbers take the mean");
        assert_eq!(encoded.ids[0], 2, "out-of-vocabulary id");
    }

    #[test]
    fn text_in_a_numeric_input_is_an_input_error() {
        let error = encoder()
            .encode(&[
                RawValue::Text("old".into()),
                RawValue::Missing,
                RawValue::Missing,
            ])
            .unwrap_err();
        assert!(error.to_string().contains("\"age\""), "{error}");
    }

    #[test]
    fn a_cross_of_an_unknown_column_is_rejected() {
        let mut columns = encoder().columns().clone();
        columns.crossed[0].columns[1] = "nope".into();
        assert!(Encoder::new(columns).is_err());
    }
}
