//! `--format`, as gcloud reads it: `json`, `yaml`, `table`, or a projection of chosen fields,
//! `table(...)`, `value(...)`, `csv(...)`.
//!
//! A projection's keys are dotted field paths, each optionally followed by transforms and
//! `:label=HEADING` (`projection`): `table(name.basename(), createTime.date(), state:label=S)`.
//! `value` prints a row per resource, tab-separated, without a heading; `csv` prints a heading of
//! the keys and comma-separated rows; `table` aligns columns under upper-case headings. A list's
//! own columns (a bare `table`, the default for lists) show resource names by their last segment.

use serde_json::Value;

use crate::projection::{Key, parse_keys};

/// An output format.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// Pretty JSON.
    Json,
    /// YAML (gcloud's default for describe).
    Yaml,
    /// Aligned columns (gcloud's default for list): the command's own when no key is given.
    Table(Vec<Key>),
    /// Tab-separated values, no heading.
    Value(Vec<Key>),
    /// Comma-separated values under a heading.
    Csv(Vec<Key>),
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (name, keys) = match text.split_once('(') {
            None => (text, None),
            Some((name, rest)) => {
                let inner = rest.strip_suffix(')').ok_or_else(|| {
                    format!("{text:?}: a projection ends with ')', as in value(name,state)")
                })?;
                (name.trim(), Some(parse_keys(inner)?))
            }
        };
        let projected = |keys: Option<Vec<Key>>| {
            keys.filter(|keys| !keys.is_empty())
                .ok_or_else(|| format!("{name}(...) needs at least one key, as in {name}(name)"))
        };
        match name {
            "json" | "yaml" if keys.is_some() => Err(format!(
                "{name} takes no keys; use table(...), value(...) or csv(...)"
            )),
            "json" => Ok(Format::Json),
            "yaml" => Ok(Format::Yaml),
            "table" => Ok(Format::Table(keys.unwrap_or_default())),
            "value" => Ok(Format::Value(projected(keys)?)),
            "csv" => Ok(Format::Csv(projected(keys)?)),
            other => Err(format!(
                "unknown format {other:?}; use json, yaml, table, table(...), value(...) or csv(...)"
            )),
        }
    }
}

/// A table column: header and the dotted path of the value.
pub type Column<'a> = (&'a str, &'a str);

/// Prints one resource; YAML unless `format` says otherwise.
pub fn print_resource(format: Option<&Format>, value: &Value) {
    match format.unwrap_or(&Format::Yaml) {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Format::Yaml | Format::Table(_) if !projects(format) => {
            print!("{}", serde_norway::to_string(value).unwrap_or_default())
        }
        _ => print_list(format, std::slice::from_ref(value), &[]),
    }
}

/// Whether `format` chooses fields.
fn projects(format: Option<&Format>) -> bool {
    match format {
        Some(Format::Table(keys)) => !keys.is_empty(),
        Some(Format::Value(_) | Format::Csv(_)) => true,
        _ => false,
    }
}

/// Prints a list; a table of `columns` unless `format` says otherwise.
pub fn print_list(format: Option<&Format>, items: &[Value], columns: &[Column<'_>]) {
    match format.unwrap_or(&Format::Table(Vec::new())) {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(items).unwrap_or_default()
        ),
        Format::Yaml => {
            for item in items {
                println!("---");
                print!("{}", serde_norway::to_string(item).unwrap_or_default());
            }
        }
        Format::Table(keys) if keys.is_empty() => print!("{}", table(items, columns)),
        Format::Table(keys) => print!("{}", projected_table(items, keys)),
        Format::Value(keys) => {
            for item in items {
                let cells: Vec<String> = keys.iter().map(|key| key.text(item)).collect();
                println!("{}", cells.join("\t"));
            }
        }
        Format::Csv(keys) => {
            let heading: Vec<String> = keys.iter().map(|key| csv_cell(&key.label)).collect();
            println!("{}", heading.join(","));
            for item in items {
                let cells: Vec<String> = keys.iter().map(|key| csv_cell(&key.text(item))).collect();
                println!("{}", cells.join(","));
            }
        }
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_cell(text: &str) -> String {
    match text.contains([',', '"', '\n', '\r']) {
        true => format!("\"{}\"", text.replace('"', "\"\"")),
        false => text.to_string(),
    }
}

/// A table of a projection's keys, headed by their labels in upper case.
fn projected_table(items: &[Value], keys: &[Key]) -> String {
    let headings: Vec<String> = keys
        .iter()
        .map(|key| key.label.to_ascii_uppercase().replace('.', "_"))
        .collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| keys.iter().map(|key| key.text(item)).collect())
        .collect();
    aligned(&headings, &rows)
}

/// Renders items as aligned columns.
pub fn table(items: &[Value], columns: &[Column<'_>]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(_, path)| cell(lookup(item, path)))
                .collect()
        })
        .collect();
    let headings: Vec<String> = columns
        .iter()
        .map(|(header, _)| header.to_string())
        .collect();
    aligned(&headings, &rows)
}

/// Headings and rows in columns as wide as their widest cell.
fn aligned(headings: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = headings
        .iter()
        .enumerate()
        .map(|(index, heading)| {
            rows.iter()
                .map(|row| row[index].len())
                .chain([heading.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(headings);
    for row in rows {
        line(row);
    }
    out
}

/// The value at a dotted field path (null where missing).
pub fn lookup<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |current, part| &current[part])
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => kiln_api::names::short(text).to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_uses_short_names_and_aligns() {
        let items = vec![
            serde_json::json!({"name": "projects/p/models/census", "defaultVersion": {"name": "projects/p/models/census/versions/v1"}}),
            serde_json::json!({"name": "projects/p/models/x"}),
        ];
        let text = table(
            &items,
            &[
                ("NAME", "name"),
                ("DEFAULT_VERSION_NAME", "defaultVersion.name"),
            ],
        );
        assert_eq!(text, "NAME    DEFAULT_VERSION_NAME\ncensus  v1\nx\n");
    }

    #[test]
    fn formats_parse_as_gcloud_writes_them() {
        let format: Format = "table(name.basename(), trainingInput.scaleTier:label=TIER)"
            .parse()
            .unwrap();
        let Format::Table(keys) = &format else {
            panic!("{format:?}");
        };
        assert_eq!(
            (keys[0].path.as_str(), keys[0].label.as_str()),
            ("name", "name")
        );
        assert_eq!(keys[1].label, "TIER");
        let items = [
            json!({"name": "projects/p/jobs/a", "trainingInput": {"scaleTier": "BASIC"}}),
            json!({"name": "projects/p/jobs/bb"}),
        ];
        assert_eq!(
            projected_table(&items, keys),
            "NAME  TIER\na     BASIC\nbb\n"
        );
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert_eq!("table".parse::<Format>(), Ok(Format::Table(Vec::new())));
        for (bad, says) in [
            ("xml", "unknown format \"xml\""),
            ("value()", "value(...) needs at least one key"),
            ("csv(name", "ends with ')'"),
            ("json(name)", "json takes no keys"),
            ("value(name:width=3)", "the only attribute is label=HEADING"),
            ("value(name.upper())", "unknown transform upper()"),
            ("value(a..b)", "\"a..b\" is not a dotted field path"),
        ] {
            let error = bad.parse::<Format>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn values_and_csv_cells_are_written_whole() {
        let key = |text: &str| parse_keys(text).unwrap().remove(0);
        let item =
            json!({"labels": {"env": "a,b"}, "tags": ["x", 2], "name": "projects/p/models/m"});
        assert_eq!(key("tags").text(&item), "x;2");
        assert_eq!(key("labels").text(&item), r#"{"env":"a,b"}"#);
        assert_eq!(key("name").text(&item), "projects/p/models/m");
        assert_eq!(key("name.basename()").text(&item), "m");
        assert_eq!(key("missing.field").text(&item), "");
        assert_eq!(csv_cell(&key("labels.env").text(&item)), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("a\"b,c"), "\"a\"\"b,c\"");
    }
}
