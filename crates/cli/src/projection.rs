//! A projection's keys, as gcloud writes them: a dotted field path, transforms chained after it,
//! and an optional `:label=HEADING`, as in `createTime.date("%Y-%m-%d"):label=CREATED`.
//!
//! The transforms, with gcloud's names, arguments and defaults:
//! - `basename()`: the last `/` segment, such as a resource's short name;
//! - `date([format])`: an RFC 3339 time in UTC, written with strftime's `format` (default
//!   `%Y-%m-%dT%H:%M:%S`);
//! - `join([sep])`: a list's items joined by `sep` (default `/`);
//! - `len()`: the number of a list's items, an object's fields or a text's characters;
//! - `segment([index])`: the `/` segment at `index` (from 0; negative counts from the end; default
//!   the last);
//! - `yesno([yes], [no])`: for a value that is not empty, `yes` (default: the value itself), else
//!   `no` (default `No`).
//!
//! Arguments are positional or named (`yesno(yes=serving, no=idle)`), bare or quoted. A
//! transform that does not apply to a value (a date that is not a time) leaves it as it is.

use std::fmt::Write as _;

use serde_json::Value;

use crate::output::lookup;

/// One key of a projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The dotted field path.
    pub path: String,
    /// What is done to the value, in order.
    transforms: Vec<Transform>,
    /// The heading (`table`, `csv`).
    pub label: String,
}

/// A transform of a key's value.
#[derive(Debug, Clone, PartialEq)]
enum Transform {
    Basename,
    Date(String),
    Join(String),
    Len,
    Segment(i64),
    YesNo(Option<String>, String),
}

/// `key, key, ...`: commas inside a transform's parentheses or quotes do not separate keys.
pub fn parse_keys(text: &str) -> Result<Vec<Key>, String> {
    split_top_level(text, ',')
        .into_iter()
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(parse_key)
        .collect()
}

/// `path[.transform(args)...][:label=HEADING]`.
fn parse_key(key: &str) -> Result<Key, String> {
    let (field, label) = match split_top_level(key, ':').as_slice() {
        [field] => (*field, None),
        [field, attribute] => {
            let label = attribute
                .trim()
                .strip_prefix("label=")
                .ok_or_else(|| format!("key {key:?}: the only attribute is label=HEADING"))?;
            (field.trim(), Some(unquote(label.trim())))
        }
        _ => return Err(format!("key {key:?}: one ':label=HEADING' at most")),
    };
    let (path, transforms) = match field.find('(') {
        None => (field, Vec::new()),
        Some(open) => {
            let (path, _) = field[..open].rsplit_once('.').ok_or_else(|| {
                format!("key {key:?}: a transform follows a field, as in name.basename()")
            })?;
            (path, parse_transforms(key, &field[path.len() + 1..])?)
        }
    };
    let valid = !path.is_empty()
        && path.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !valid {
        return Err(format!(
            "key {key:?} is not a dotted field path (such as trainingInput.scaleTier)"
        ));
    }
    Ok(Key {
        path: path.to_string(),
        transforms,
        label: label.unwrap_or_else(|| path.to_string()),
    })
}

/// `name(args).name(args)...`.
fn parse_transforms(key: &str, mut rest: &str) -> Result<Vec<Transform>, String> {
    let mut transforms = Vec::new();
    loop {
        let open = rest
            .find('(')
            .ok_or_else(|| format!("key {key:?}: {rest:?} is not a transform such as len()"))?;
        let name = &rest[..open];
        let close = closing(&rest[open..])
            .map(|close| open + close)
            .ok_or_else(|| format!("key {key:?}: {name}( has no closing ')'"))?;
        let args: Vec<String> = split_top_level(&rest[open + 1..close], ',')
            .into_iter()
            .map(str::trim)
            .filter(|arg| !arg.is_empty())
            .map(str::to_string)
            .collect();
        transforms.push(transform(key, name, &args)?);
        rest = &rest[close + 1..];
        match rest.strip_prefix('.') {
            Some(next) => rest = next,
            None if rest.is_empty() => return Ok(transforms),
            None => return Err(format!("key {key:?}: {rest:?} after {name}(...)")),
        }
    }
}

/// The transform `name` with `args`, each positional or `name=value`.
fn transform(key: &str, name: &str, args: &[String]) -> Result<Transform, String> {
    let (names, most): (&[&str], usize) = match name {
        "basename" | "len" => (&[], 0),
        "date" => (&["format"], 1),
        "join" => (&["sep"], 1),
        "segment" => (&["index"], 1),
        "yesno" => (&["yes", "no"], 2),
        other => {
            return Err(format!(
                "key {key:?}: unknown transform {other}(); Kiln has basename(), date(), join(), \
                 len(), segment() and yesno()"
            ));
        }
    };
    if args.len() > most {
        return Err(format!(
            "key {key:?}: {name}() takes {most} arguments at most"
        ));
    }
    let mut given: Vec<Option<String>> = vec![None; names.len()];
    for (position, arg) in args.iter().enumerate() {
        let named = arg.split_once('=').and_then(|(argument, value)| {
            names
                .iter()
                .position(|known| *known == argument.trim())
                .map(|slot| (slot, value.trim()))
        });
        let (slot, value) = named.unwrap_or((position, arg.as_str()));
        given[slot] = Some(unquote(value));
    }
    let mut given = given.into_iter();
    let mut next = || given.next().flatten();
    Ok(match name {
        "basename" => Transform::Basename,
        "len" => Transform::Len,
        "date" => {
            let format = next().unwrap_or_else(|| "%Y-%m-%dT%H:%M:%S".into());
            let valid = chrono::format::StrftimeItems::new(&format)
                .all(|item| !matches!(item, chrono::format::Item::Error));
            if !valid {
                return Err(format!(
                    "key {key:?}: date({format:?}) is not a strftime format"
                ));
            }
            Transform::Date(format)
        }
        "join" => Transform::Join(next().unwrap_or_else(|| "/".into())),
        "segment" => Transform::Segment(match next() {
            None => -1,
            Some(index) => index
                .parse()
                .map_err(|_| format!("key {key:?}: segment({index}) takes a whole number"))?,
        }),
        _ => {
            let yes = next();
            Transform::YesNo(yes, next().unwrap_or_else(|| "No".into()))
        }
    })
}

impl Key {
    /// The key's value in `item` as text: strings as they are, lists of scalars joined by `;`,
    /// anything else as JSON; nothing for a missing field.
    pub fn text(&self, item: &Value) -> String {
        let value = self
            .transforms
            .iter()
            .fold(lookup(item, &self.path).clone(), |value, transform| {
                transform.apply(value)
            });
        match value {
            Value::Null => String::new(),
            Value::String(text) => text,
            Value::Array(values)
                if values
                    .iter()
                    .all(|value| !value.is_object() && !value.is_array()) =>
            {
                values.iter().map(scalar).collect::<Vec<_>>().join(";")
            }
            other => other.to_string(),
        }
    }
}

impl Transform {
    fn apply(&self, value: Value) -> Value {
        match self {
            Transform::Basename => segment(&value, -1),
            Transform::Segment(index) => segment(&value, *index),
            Transform::Date(format) => {
                let Some(time) = value
                    .as_str()
                    .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
                else {
                    return value;
                };
                let mut text = String::new();
                match write!(text, "{}", time.with_timezone(&chrono::Utc).format(format)) {
                    Ok(()) => Value::String(text),
                    Err(_) => value,
                }
            }
            Transform::Join(separator) => match &value {
                Value::Array(items) => {
                    Value::String(items.iter().map(scalar).collect::<Vec<_>>().join(separator))
                }
                _ => value,
            },
            Transform::Len => Value::from(match &value {
                Value::Array(items) => items.len(),
                Value::Object(fields) => fields.len(),
                Value::String(text) => text.chars().count(),
                _ => 0,
            }),
            Transform::YesNo(yes, no) => {
                let empty = match &value {
                    Value::Null => true,
                    Value::Bool(flag) => !flag,
                    Value::String(text) => text.is_empty(),
                    Value::Array(items) => items.is_empty(),
                    Value::Object(fields) => fields.is_empty(),
                    Value::Number(_) => false,
                };
                match (empty, yes) {
                    (true, _) => Value::String(no.clone()),
                    (false, Some(yes)) => Value::String(yes.clone()),
                    (false, None) => value,
                }
            }
        }
    }
}

/// The `/` segment of a value's text at `index` (negative: from the end); null if none.
fn segment(value: &Value, index: i64) -> Value {
    let text = match value {
        Value::Null => return Value::Null,
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let segments: Vec<&str> = text.split('/').collect();
    let at = match index < 0 {
        true => segments.len().checked_sub(index.unsigned_abs() as usize),
        false => Some(index as usize),
    };
    at.and_then(|at| segments.get(at))
        .map_or(Value::Null, |segment| Value::String(segment.to_string()))
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `text` split at each `separator` outside quotes and parentheses.
fn split_top_level(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (index, c, depth) in unquoted(text) {
        if c == separator && depth == 0 {
            parts.push(&text[start..index]);
            start = index + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Where the parenthesis that opens `text` closes.
fn closing(text: &str) -> Option<usize> {
    unquoted(text)
        .find(|(_, c, depth)| *c == ')' && *depth == 1)
        .map(|(index, _, _)| index)
}

/// Each character of `text` outside quotes, with its position and the depth of parentheses
/// around it (a parenthesis counts as outside itself).
fn unquoted(text: &str) -> impl Iterator<Item = (usize, char, usize)> + '_ {
    let (mut depth, mut quote) = (0usize, None);
    text.char_indices()
        .filter_map(move |(index, c)| match (quote, c) {
            (Some(open), c) if c == open => {
                quote = None;
                None
            }
            (Some(_), _) => None,
            (None, '"' | '\'') => {
                quote = Some(c);
                None
            }
            (None, c) => {
                let around = match c {
                    '(' => {
                        depth += 1;
                        depth - 1
                    }
                    ')' => {
                        depth = depth.saturating_sub(1);
                        depth + 1
                    }
                    _ => depth,
                };
                Some((index, c, around))
            }
        })
}

/// `value` without the quotes around it, if it has them.
fn unquote(value: &str) -> String {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|inner| inner.strip_suffix(quote))
        {
            return inner.to_string();
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(key: &str, item: &Value) -> String {
        parse_keys(key).unwrap().remove(0).text(item)
    }

    #[test]
    fn transforms_apply_in_order() {
        let item = json!({
            "name": "projects/p/models/m",
            "createTime": "2026-12-07T06:27:52.443316Z",
            "regions": ["us-central1", "europe-west1"],
            "labels": {},
            "defaultVersion": {"name": "projects/p/models/m/versions/v1"},
        });
        assert_eq!(text("name.basename()", &item), "m");
        assert_eq!(text("name.segment(1)", &item), "p");
        assert_eq!(text("name.segment(-2)", &item), "models");
        assert_eq!(text("name.segment(9)", &item), "");
        assert_eq!(text("createTime.date()", &item), "2026-12-07T06:27:52");
        assert_eq!(text("createTime.date('%Y-%m-%d')", &item), "2026-12-07");
        assert_eq!(text("createTime.date(\"%Y\").len()", &item), "4");
        assert_eq!(text("regions.join()", &item), "us-central1/europe-west1");
        assert_eq!(
            text("regions.join(sep=', ')", &item),
            "us-central1, europe-west1"
        );
        assert_eq!(text("regions.len()", &item), "2");
        assert_eq!(text("labels.yesno()", &item), "No");
        assert_eq!(
            text("defaultVersion.yesno(yes=serving, no=idle)", &item),
            "serving"
        );
        assert_eq!(text("missing.yesno(serving, idle)", &item), "idle");
        assert_eq!(text("defaultVersion.name.basename().yesno()", &item), "v1");
        assert_eq!(text("name.date()", &item), "projects/p/models/m");
    }

    #[test]
    fn keys_split_at_top_level_commas_and_keep_labels() {
        let keys = parse_keys("regions.join(', '):label=WHERE, name.basename()").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (keys[0].path.as_str(), keys[0].label.as_str()),
            ("regions", "WHERE")
        );
        assert_eq!(keys[1].label, "name");
    }

    #[test]
    fn malformed_transforms_are_refused_naming_the_key() {
        for (bad, says) in [
            ("name.upper()", "unknown transform upper()"),
            ("name.basename(", "has no closing ')'"),
            ("name.len(1)", "len() takes 0 arguments"),
            ("name.segment(x)", "takes a whole number"),
            ("createTime.date(%Q)", "not a strftime format"),
            ("name.basename()x", "after basename(...)"),
            ("basename()", "a transform follows a field"),
        ] {
            let error = parse_keys(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
