//! The user's description of the training data.
//!
//! Everything is optional except the label: column names come from the CSV header when there is
//! one, types and vocabularies are inferred from the data ([`crate::resolve`]).
//!
//! ```yaml
//! columns: [age, workclass, fnlwgt, education, occupation, income_bracket]
//! label: income_bracket
//! ignore: [fnlwgt]
//! features:
//!   age: {type: numeric, boundaries: [18, 25, 30, 40, 50, 65]}
//!   occupation: {type: categorical, hash_buckets: 100, embedding_dim: 8}
//! crosses:
//!   - {columns: [education, occupation], hash_buckets: 10000}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use kiln_model::columns::CrossedColumn;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// A column's type as the user states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// A number.
    Numeric,
    /// A string category.
    Categorical,
}

/// Per-column settings; anything unset is inferred.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// The column's type.
    #[serde(rename = "type", default)]
    pub column_type: Option<ColumnType>,
    /// Categorical: the known values (otherwise taken from the training data or hashed).
    #[serde(default)]
    pub vocabulary: Option<Vec<String>>,
    /// Categorical: hash into this many buckets instead of a vocabulary.
    #[serde(default)]
    pub hash_buckets: Option<usize>,
    /// Categorical: embedding width in the deep part.
    #[serde(default)]
    pub embedding_dim: Option<usize>,
    /// Numeric: bucket boundaries for the wide part and crosses.
    #[serde(default)]
    pub boundaries: Option<Vec<f64>>,
}

/// The description of a training data set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// CSV column names in file order; required when the files have no header.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Name of the label column.
    pub label: String,
    /// Columns that are read but not used as features.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Per-column settings.
    #[serde(default)]
    pub features: BTreeMap<String, FeatureConfig>,
    /// Crossed columns for the wide part.
    #[serde(default)]
    pub crosses: Vec<CrossedColumn>,
    /// Whether the files start with a header line; inferred when unset.
    #[serde(default)]
    pub header: Option<bool>,
    /// Field separator, `,` when unset; `"\t"` for tab-separated files such as Criteo's.
    #[serde(default)]
    pub delimiter: Option<char>,
}

impl Schema {
    /// Reads a schema from a YAML or JSON file.
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_norway::from_str(&text)
            .map_err(|error| TrainError::Data(format!("schema {}: {error}", path.display())))
    }

    /// The field separator as a byte, or why it cannot be one.
    pub fn delimiter_byte(&self) -> Result<u8, TrainError> {
        let delimiter = self.delimiter.unwrap_or(',');
        u8::try_from(delimiter)
            .ok()
            .filter(u8::is_ascii)
            .ok_or_else(|| {
                TrainError::Data(format!(
                    "schema delimiter {delimiter:?} must be one ASCII character"
                ))
            })
    }
}
