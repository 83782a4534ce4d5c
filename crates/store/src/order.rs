//! The order a list is sorted in: fields of the stored document, each ascending or descending.
//!
//! Values of one field compare by kind first: absent (or `null`), then numbers, then text, then
//! objects and lists. Numbers are JSON numbers and the decimal integer strings that int64 fields
//! are written as, compared by value; text is a string's own text or `true`/`false`, compared
//! byte by byte; objects and lists tie. A descending field reverses all of it, so absent values
//! come last. The list's own order breaks ties.
//!
//! The database sorts a scan by the same rule ([`crate::scan`]), so a list sorted in memory and
//! one sorted in SQL agree.

use std::cmp::Ordering;

use serde_json::Value;

/// The fields a list is sorted by, most significant first; empty keeps the list's own order.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    keys: Vec<SortKey>,
}

/// One field of an [`Order`].
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    path: Vec<String>,
    descending: bool,
}

impl SortKey {
    /// The field at the dotted `path` (`trainingOutput.consumedMLUnits`), or `None` when a
    /// segment is not a field name (letters, digits and `_`, not starting with a digit).
    pub fn new(path: &str, descending: bool) -> Option<SortKey> {
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        let field = |segment: &String| {
            segment.chars().next().is_some_and(|c| !c.is_ascii_digit())
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        path.iter()
            .all(field)
            .then_some(SortKey { path, descending })
    }

    /// The field's path, segment by segment; each is a field name, safe to write into SQL.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// Whether larger values come first.
    pub fn descending(&self) -> bool {
        self.descending
    }
}

impl Order {
    /// No sort: the list's own order.
    pub const OWN: Order = Order { keys: Vec::new() };

    /// Sorted by `keys`, the first most significant.
    pub fn new(keys: Vec<SortKey>) -> Order {
        Order { keys }
    }

    /// The fields, most significant first.
    pub fn keys(&self) -> &[SortKey] {
        &self.keys
    }

    /// Whether the list keeps its own order.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How two documents compare; `Equal` leaves them in the list's own order.
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        self.keys
            .iter()
            .map(|key| {
                let ordering = rank(lookup(a, &key.path)).cmp(&rank(lookup(b, &key.path)));
                if key.descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            })
            .find(|ordering| ordering.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, field| value.get(field))
}

/// A value's place in the order: its kind (absent, number, text, other), then its number or text.
#[derive(Debug, Clone, Copy)]
enum Rank<'a> {
    Absent,
    Number(f64),
    Text(&'a str),
    Other,
}

impl Rank<'_> {
    fn kind(&self) -> u8 {
        match self {
            Rank::Absent => 0,
            Rank::Number(_) => 1,
            Rank::Text(_) => 2,
            Rank::Other => 3,
        }
    }

    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Rank::Number(a), Rank::Number(b)) => a.total_cmp(b),
            (Rank::Text(a), Rank::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => self.kind().cmp(&other.kind()),
        }
    }
}

fn rank(value: Option<&Value>) -> Rank<'_> {
    match value {
        None | Some(Value::Null) => Rank::Absent,
        Some(Value::Number(number)) => number.as_f64().map_or(Rank::Other, Rank::Number),
        Some(Value::String(text)) if is_integer(text) => {
            text.parse().map_or(Rank::Text(text), Rank::Number)
        }
        Some(Value::String(text)) => Rank::Text(text),
        Some(Value::Bool(true)) => Rank::Text("true"),
        Some(Value::Bool(false)) => Rank::Text("false"),
        Some(_) => Rank::Other,
    }
}

/// An optional `-` and one or more decimal digits: how int64 fields are written.
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sorted(order: &Order, mut values: Vec<Value>) -> Vec<Value> {
        values.sort_by(|a, b| order.compare(a, b));
        values
    }

    #[test]
    fn kinds_come_in_order_and_numbers_by_value() {
        let order = Order::new(vec![SortKey::new("a", false).unwrap()]);
        let values = vec![
            json!({"a": "b"}),
            json!({"a": {"x": 1}}),
            json!({"a": "10"}),
            json!({"a": 9.5}),
            json!({}),
            json!({"a": true}),
            json!({"a": "-3"}),
            json!({"a": "B"}),
        ];
        assert_eq!(
            sorted(&order, values),
            vec![
                json!({}),
                json!({"a": "-3"}),
                json!({"a": 9.5}),
                json!({"a": "10"}),
                json!({"a": "B"}),
                json!({"a": "b"}),
                json!({"a": true}),
                json!({"a": {"x": 1}}),
            ]
        );
    }

    #[test]
    fn descending_reverses_and_later_keys_break_ties() {
        let order = Order::new(vec![
            SortKey::new("s.t", true).unwrap(),
            SortKey::new("n", false).unwrap(),
        ]);
        let values = vec![
            json!({"n": 2, "s": {"t": "x"}}),
            json!({"n": 1}),
            json!({"n": 1, "s": {"t": "x"}}),
            json!({"n": 0, "s": {"t": "y"}}),
        ];
        assert_eq!(
            sorted(&order, values),
            vec![
                json!({"n": 0, "s": {"t": "y"}}),
                json!({"n": 1, "s": {"t": "x"}}),
                json!({"n": 2, "s": {"t": "x"}}),
                json!({"n": 1}),
            ]
        );
    }

    #[test]
    fn only_field_names_make_keys() {
        assert!(SortKey::new("trainingOutput.consumed_ML", false).is_some());
        for bad in ["", "a..b", "a'; DROP TABLE jobs", "1st", "a-b", "a.b "] {
            assert!(SortKey::new(bad, false).is_none(), "{bad:?}");
        }
    }
}
