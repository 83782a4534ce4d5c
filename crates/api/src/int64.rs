//! int64 fields as the API writes them: JSON strings, read from strings or numbers.

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes an `i64` as a string.
pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_string())
}

/// Reads an `i64` from a string or a number.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Text(String),
        Number(i64),
    }
    match Wire::deserialize(deserializer)? {
        Wire::Number(number) => Ok(number),
        Wire::Text(text) => text
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, got {text:?}"))),
    }
}

/// A list of int64 values, each written as a string and read from a string or a number.
pub mod list {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes each `i64` as a string.
    pub fn serialize<S: Serializer>(values: &[i64], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(values.iter().map(i64::to_string))
    }

    /// Reads each `i64` from a string or a number.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<i64>, D::Error> {
        #[derive(Deserialize)]
        struct One(#[serde(with = "super")] i64);
        Ok(Vec::<One>::deserialize(deserializer)?
            .into_iter()
            .map(|One(value)| value)
            .collect())
    }
}

/// Whether an int64 field holds its default and is left out.
pub fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// The JSON schema of an int64 field: a string of decimal digits (a number is also read).
pub struct Int64;

impl schemars::JsonSchema for Int64 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Int64".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "int64",
            "pattern": "^-?[0-9]{1,18}$",
        })
    }
}
