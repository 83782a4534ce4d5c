//! From a schema and training rows to resolved feature columns and encoded examples.
//!
//! Defaults, chosen to work without tuning on typical tabular data:
//! - a column whose non-empty cells all parse as numbers is numeric, otherwise categorical;
//! - numeric columns are z-scored with the training mean and standard deviation; models with a
//!   wide part also bucketize them at the training deciles;
//! - categorical columns with at most [`MAX_VOCABULARY`] distinct values get a vocabulary from the
//!   training data, others [`DEFAULT_HASH_BUCKETS`] hash buckets; embeddings are
//!   [`DEFAULT_EMBEDDING_DIM`] wide;
//! - the label is categorical (classification) unless it is numeric with more than
//!   [`MAX_CLASSES`] distinct values, or the caller says otherwise.

use std::collections::{BTreeSet, HashMap};

use kiln_model::columns::{
    CategoricalColumn, Columns, Encoded, Encoder, Input, InputType, NumericColumn, RawValue,
};
use kiln_model::{ModelKind, Task};

use crate::TrainError;
use crate::data::Table;
use crate::schema::{ColumnType, FeatureConfig, Schema};

/// Largest vocabulary taken from the data before falling back to hash buckets.
pub const MAX_VOCABULARY: usize = 10_000;
/// Hash buckets of a categorical column with too many distinct values.
pub const DEFAULT_HASH_BUCKETS: usize = 100_000;
/// Embedding width when the schema gives none (the census sample's `embedding_size`).
pub const DEFAULT_EMBEDDING_DIM: usize = 8;
/// Most distinct numeric label values still treated as classes.
pub const MAX_CLASSES: usize = 10;

/// Whether the label is a class or a value, when the user says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    /// Predict a class.
    Classification,
    /// Predict a real value.
    Regression,
}

/// What [`resolve`] decided.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The feature columns.
    pub columns: Columns,
    /// The task.
    pub task: Task,
    /// Class names by id (classification).
    pub label_vocabulary: Vec<String>,
    /// Position of the label in the data's columns.
    pub label_index: usize,
    /// Columns of the data that are neither features nor the label.
    pub ignored: Vec<String>,
}

/// Resolves the feature columns from the schema and the training rows.
pub fn resolve(
    schema: &Schema,
    data: &Table,
    kind: ModelKind,
    model_type: Option<ModelType>,
) -> Result<Resolved, TrainError> {
    let label_index = data
        .names
        .iter()
        .position(|name| name == &schema.label)
        .ok_or_else(|| {
            TrainError::Data(format!(
                "label column {:?} is not among the columns {:?}",
                schema.label, data.names
            ))
        })?;
    for name in schema.features.keys().chain(&schema.ignore) {
        if !data.names.contains(name) {
            return Err(TrainError::Data(format!(
                "schema names unknown column {name:?}"
            )));
        }
    }
    let mut columns = Columns::default();
    for (index, name) in data.names.iter().enumerate() {
        if index == label_index || schema.ignore.contains(name) {
            continue;
        }
        let config = schema.features.get(name).cloned().unwrap_or_default();
        let cells = data.rows.iter().map(|row| row[index].as_str());
        let numbers = parse_numbers(cells.clone());
        let column_type = match config.column_type {
            Some(column_type) => column_type,
            None if config.vocabulary.is_some() || config.hash_buckets.is_some() => {
                ColumnType::Categorical
            }
            None if numbers.is_some() => ColumnType::Numeric,
            None => ColumnType::Categorical,
        };
        match column_type {
            ColumnType::Numeric => {
                let numbers = numbers.ok_or_else(|| {
                    TrainError::Data(format!("column {name:?} is numeric but holds text"))
                })?;
                columns.inputs.push(Input {
                    name: name.clone(),
                    input_type: InputType::Float,
                });
                columns
                    .numeric
                    .push(numeric_column(name, numbers, &config, kind));
            }
            ColumnType::Categorical => {
                columns.inputs.push(Input {
                    name: name.clone(),
                    input_type: InputType::String,
                });
                columns
                    .categorical
                    .push(categorical_column(name, cells, &config));
            }
        }
    }
    columns.crossed = schema.crosses.clone();

    let labels = data.rows.iter().map(|row| row[label_index].as_str());
    let label_numbers = parse_numbers(labels.clone());
    let distinct: BTreeSet<&str> = labels.clone().filter(|label| !label.is_empty()).collect();
    let model_type = model_type.unwrap_or(match &label_numbers {
        Some(_) if distinct.len() > MAX_CLASSES => ModelType::Regression,
        _ => ModelType::Classification,
    });
    let (task, label_vocabulary) = match model_type {
        ModelType::Regression => {
            if label_numbers.is_none() {
                return Err(TrainError::Data(format!(
                    "regression needs a numeric label, {:?} holds text",
                    schema.label
                )));
            }
            (Task::Regression, Vec::new())
        }
        ModelType::Classification => {
            let mut classes: Vec<String> = distinct.into_iter().map(str::to_string).collect();
            if label_numbers.is_some() {
                classes.sort_by(|a, b| {
                    a.parse::<f64>()
                        .unwrap_or(0.0)
                        .total_cmp(&b.parse().unwrap_or(0.0))
                });
            }
            match classes.len() {
                0 | 1 => {
                    return Err(TrainError::Data(format!(
                        "classification needs two or more classes in {:?}, found {classes:?}",
                        schema.label
                    )));
                }
                2 => (Task::BinaryClassification, classes),
                _ => (Task::MultiClassification, classes),
            }
        }
    };
    let ignored = schema.ignore.clone();
    Ok(Resolved {
        columns,
        task,
        label_vocabulary,
        label_index,
        ignored,
    })
}

/// Turns rows of cells (in the data's column order) into encoded examples and labels, as
/// [`resolve`] decided.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    resolved: Resolved,
    encoder: Encoder,
    /// Position in a row of each model input.
    positions: Vec<usize>,
    classes: HashMap<String, usize>,
}

impl RowEncoder {
    /// An encoder for rows whose columns are `names`.
    pub fn new(
        resolved: &Resolved,
        encoder: &Encoder,
        names: &[String],
    ) -> Result<Self, TrainError> {
        let positions = resolved
            .columns
            .inputs
            .iter()
            .map(|input| {
                names
                    .iter()
                    .position(|name| name == &input.name)
                    .ok_or_else(|| {
                        TrainError::Data(format!("the data has no column {:?}", input.name))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let classes = resolved
            .label_vocabulary
            .iter()
            .enumerate()
            .map(|(id, class)| (class.clone(), id))
            .collect();
        Ok(Self {
            resolved: resolved.clone(),
            encoder: encoder.clone(),
            positions,
            classes,
        })
    }

    /// One row's example and label.
    pub fn encode(&self, row: &[String]) -> Result<(Encoded, f32), String> {
        let values: Vec<RawValue> = self
            .positions
            .iter()
            .zip(&self.resolved.columns.inputs)
            .map(|(&position, input)| RawValue::from_cell(&row[position], input.input_type))
            .collect();
        let example = self
            .encoder
            .encode(&values)
            .map_err(|error| error.to_string())?;
        let cell = row[self.resolved.label_index].as_str();
        let label = match self.resolved.task {
            Task::Regression => cell
                .parse::<f32>()
                .map_err(|_| format!("label {cell:?} is not a number"))?,
            Task::BinaryClassification | Task::MultiClassification => {
                match self.classes.get(cell) {
                    Some(&id) => id as f32,
                    None => {
                        return Err(format!(
                            "label {cell:?} is not one of the training classes {:?}",
                            self.resolved.label_vocabulary
                        ));
                    }
                }
            }
        };
        Ok((example, label))
    }
}

/// The non-empty cells as numbers, or `None` when any of them is not a number.
fn parse_numbers<'a>(cells: impl Iterator<Item = &'a str>) -> Option<Vec<f64>> {
    let mut numbers = Vec::new();
    for cell in cells.filter(|cell| !cell.is_empty()) {
        numbers.push(
            cell.parse::<f64>()
                .ok()
                .filter(|number| number.is_finite())?,
        );
    }
    Some(numbers)
}

fn numeric_column(
    name: &str,
    mut numbers: Vec<f64>,
    config: &FeatureConfig,
    kind: ModelKind,
) -> NumericColumn {
    let count = numbers.len().max(1) as f64;
    let mean = numbers.iter().sum::<f64>() / count;
    let variance = numbers
        .iter()
        .map(|value| (value - mean).powi(2))
        .sum::<f64>()
        / count;
    let std = if variance > 0.0 { variance.sqrt() } else { 1.0 };
    let boundaries = match &config.boundaries {
        Some(boundaries) => boundaries.clone(),
        None if kind.has_wide() && !numbers.is_empty() => {
            numbers.sort_by(f64::total_cmp);
            let mut boundaries: Vec<f64> = (1..10)
                .map(|decile| numbers[decile * numbers.len() / 10])
                .collect();
            boundaries.dedup();
            boundaries
        }
        None => Vec::new(),
    };
    NumericColumn {
        name: name.to_string(),
        default: mean,
        mean,
        std,
        boundaries,
    }
}

fn categorical_column<'a>(
    name: &str,
    cells: impl Iterator<Item = &'a str>,
    config: &FeatureConfig,
) -> CategoricalColumn {
    let embedding_dim = config.embedding_dim.unwrap_or(DEFAULT_EMBEDDING_DIM);
    let (vocabulary, hash_buckets) = match (&config.vocabulary, config.hash_buckets) {
        (Some(vocabulary), _) => (Some(vocabulary.clone()), 0),
        (None, Some(buckets)) => (None, buckets),
        (None, None) => {
            let distinct: BTreeSet<&str> = cells.collect();
            match distinct.len() <= MAX_VOCABULARY {
                true => (Some(distinct.into_iter().map(str::to_string).collect()), 0),
                false => (None, DEFAULT_HASH_BUCKETS),
            }
        }
    };
    CategoricalColumn {
        name: name.to_string(),
        vocabulary,
        hash_buckets,
        embedding_dim,
    }
}
