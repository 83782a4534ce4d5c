//! gcloud's list flags, on every list verb: `--filter` (sent to the server, which reads Google's
//! filter grammar), `--sort-by`, `--limit` and `--page-size`. As in gcloud, sorting happens here,
//! before the limit: a sorted list reads every page, an unsorted one stops at the limit.

use std::cmp::Ordering;

use serde_json::Value;

use crate::client::{Api, encode};
use crate::output::lookup;

/// The flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Which resources, in Google's filter grammar: `jobId:census* AND NOT (state=FAILED OR
    /// state=CANCELLED)`.
    #[arg(long)]
    pub filter: Option<String>,
    /// Fields to sort by, comma-separated, the first first; `~` before a field sorts it
    /// descending: `~createTime`.
    #[arg(long, value_delimiter = ',')]
    pub sort_by: Vec<String>,
    /// The most resources to list.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Resources per request to the server.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=100), default_value_t = 100)]
    pub page_size: u16,
}

impl ListArgs {
    /// The resources of `collection` (their list under `field`), filtered, sorted and limited.
    pub fn list(&self, api: &Api, collection: &str, field: &str) -> anyhow::Result<Vec<Value>> {
        let mut path = format!("{collection}?pageSize={}", self.page_size);
        if let Some(filter) = &self.filter {
            path.push_str(&format!("&filter={}", encode(filter)));
        }
        let enough = match self.sort_by.is_empty() {
            true => self.limit,
            false => None,
        };
        let mut items = api.list_all(&path, field, enough)?;
        let keys: Vec<(&str, bool)> = self
            .sort_by
            .iter()
            .map(|key| key.trim())
            .filter(|key| !key.is_empty())
            .map(|key| match key.strip_prefix('~') {
                Some(key) => (key, true),
                None => (key, false),
            })
            .collect();
        items.sort_by(|a, b| {
            keys.iter()
                .map(|(path, descending)| {
                    let order = compare(lookup(a, path), lookup(b, path));
                    match descending {
                        true => order.reverse(),
                        false => order,
                    }
                })
                .find(|order| *order != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        if let Some(limit) = self.limit {
            items.truncate(limit);
        }
        Ok(items)
    }
}

/// Missing fields first, then numbers (numerically, also when written as strings, as int64
/// fields are), then text.
fn compare(a: &Value, b: &Value) -> Ordering {
    let rank = |value: &Value| -> (u8, f64, String) {
        match value {
            Value::Null => (0, 0.0, String::new()),
            Value::Number(number) => (1, number.as_f64().unwrap_or(0.0), String::new()),
            Value::String(text) => match text.parse::<f64>() {
                Ok(number) => (1, number, String::new()),
                Err(_) => (2, 0.0, text.clone()),
            },
            other => (2, 0.0, other.to_string()),
        }
    };
    let (a, b) = (rank(a), rank(b));
    a.0.cmp(&b.0)
        .then(a.1.total_cmp(&b.1))
        .then_with(|| a.2.cmp(&b.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_sort_missing_first_then_numbers_then_text() {
        let mut values = vec![json!("b"), json!("10"), json!(null), json!(9), json!("a")];
        values.sort_by(compare);
        assert_eq!(
            values,
            [json!(null), json!(9), json!("10"), json!("a"), json!("b")]
        );
    }
}
