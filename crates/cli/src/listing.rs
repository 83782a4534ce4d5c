//! gcloud's list flags, on every list verb: `--filter` (sent to the server, which reads Google's
//! filter grammar), `--flatten`, `--sort-by`, `--limit` and `--page-size`. As in gcloud,
//! flattening and sorting happen here, before the limit, which counts the flattened records: a
//! sorted list reads every page, an unsorted one stops at the limit.

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
    /// List fields whose items become records of their own, each with the resource's other
    /// fields, comma-separated: `--flatten regions` (gcloud's `regions[]` is read alike). A
    /// resource whose list is empty or missing stays one record, without the field.
    #[arg(long, value_delimiter = ',')]
    pub flatten: Vec<String>,
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
        for key in &self.flatten {
            let key = key.trim().trim_end_matches("[]");
            if !key.is_empty() {
                items = flatten(items, key);
            }
        }
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

/// Each item whose field at the dotted `path` is a list, once per element, with the element in
/// the list's place; other items as they are, an empty list removed.
fn flatten(items: Vec<Value>, path: &str) -> Vec<Value> {
    items
        .into_iter()
        .flat_map(|item| match lookup(&item, path) {
            Value::Array(elements) if !elements.is_empty() => elements
                .clone()
                .into_iter()
                .map(|element| with(&item, path, element))
                .collect::<Vec<_>>(),
            Value::Array(_) => vec![with(&item, path, Value::Null)],
            _ => vec![item],
        })
        .collect()
}

/// `item` with `value` at the dotted `path` (its last field removed when `value` is null).
fn with(item: &Value, path: &str, value: Value) -> Value {
    let mut item = item.clone();
    let mut fields: Vec<&str> = path.split('.').collect();
    let last = fields.pop().unwrap_or_default();
    let mut parent = &mut item;
    for field in fields {
        parent = &mut parent[field];
    }
    if let Value::Object(object) = parent {
        match value {
            Value::Null => {
                object.remove(last);
            }
            value => {
                object.insert(last.to_string(), value);
            }
        }
    }
    item
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
    fn flattening_makes_a_record_per_element() {
        let items = vec![
            json!({"name": "a", "spec": {"args": ["-x", "-y"]}}),
            json!({"name": "b", "spec": {"args": []}}),
            json!({"name": "c"}),
        ];
        assert_eq!(
            flatten(items, "spec.args"),
            [
                json!({"name": "a", "spec": {"args": "-x"}}),
                json!({"name": "a", "spec": {"args": "-y"}}),
                json!({"name": "b", "spec": {}}),
                json!({"name": "c"}),
            ]
        );
    }

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
