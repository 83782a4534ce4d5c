//! `--format json|yaml|table`.

use serde_json::Value;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Pretty JSON.
    Json,
    /// YAML (gcloud's default for describe).
    Yaml,
    /// Aligned columns (gcloud's default for list).
    Table,
}

/// A table column: header and the dotted path of the value.
pub type Column<'a> = (&'a str, &'a str);

/// Prints one resource; YAML unless `format` says otherwise.
pub fn print_resource(format: Option<Format>, value: &Value) {
    match format.unwrap_or(Format::Yaml) {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Format::Yaml | Format::Table => {
            print!("{}", serde_norway::to_string(value).unwrap_or_default())
        }
    }
}

/// Prints a list; a table of `columns` unless `format` says otherwise.
pub fn print_list(format: Option<Format>, items: &[Value], columns: &[Column<'_>]) {
    match format.unwrap_or(Format::Table) {
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
        Format::Table => print!("{}", table(items, columns)),
    }
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
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, (header, _))| {
            rows.iter()
                .map(|row| row[index].len())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(columns.iter().map(|(header, _)| *header).collect());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn lookup<'a>(value: &'a Value, path: &str) -> &'a Value {
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
}
