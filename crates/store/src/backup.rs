//! Backups of the metadata: every row of every table as a JSON object, the same for both
//! databases, so that a backup of one restores into the other.
//!
//! Rows keep their order (the order lists show), not their sequence numbers: a restore inserts
//! them in that order into an empty database, which numbers them afresh.

use std::io::{BufRead, Write};

use serde_json::{Map, Value};

use crate::session::{Cell, Param, Session};
use crate::{Result, Store, StoreError, migrations};

/// The version of the backup format, in its first line.
const FORMAT: i64 = 1;

/// Writes a backup of `store`: a first line naming the format and the schema version, then one
/// line per row. Returns the number of rows.
pub fn write(store: &dyn Store, out: &mut dyn Write) -> Result<usize> {
    let schema = store.schema_version()?;
    let rows = store.backup()?;
    let failed =
        |error: std::io::Error| StoreError::Database(format!("writing the backup: {error}"));
    let header = serde_json::json!({"kilnBackup": FORMAT, "schema": schema});
    writeln!(out, "{header}").map_err(failed)?;
    for row in &rows {
        writeln!(out, "{row}").map_err(failed)?;
    }
    out.flush().map_err(failed)?;
    Ok(rows.len())
}

/// Restores a backup [`write`] made into `store`, which must hold nothing yet and whose schema
/// must be at least the backup's. Returns the number of rows.
pub fn read(store: &dyn Store, input: &mut dyn BufRead) -> Result<usize> {
    let mut lines = input.lines();
    let mut line = |number: usize| -> Result<Option<Value>> {
        match lines.next() {
            None => Ok(None),
            Some(Err(error)) => Err(StoreError::Database(format!("reading the backup: {error}"))),
            Some(Ok(text)) => serde_json::from_str(&text).map(Some).map_err(|error| {
                StoreError::Database(format!("backup line {number} is not JSON: {error}"))
            }),
        }
    };
    let header = line(1)?.unwrap_or(Value::Null);
    let (Some(FORMAT), Some(schema)) = (
        header.get("kilnBackup").and_then(Value::as_i64),
        header.get("schema").and_then(Value::as_i64),
    ) else {
        return Err(StoreError::Database(format!(
            "not a Kiln backup of format {FORMAT}: its first line is {header}"
        )));
    };
    if schema > migrations::latest() {
        return Err(StoreError::NewerSchema {
            database: schema,
            binary: migrations::latest(),
        });
    }
    let mut rows = Vec::new();
    while let Some(row) = line(rows.len() + 2)? {
        rows.push(row);
    }
    store.restore(&rows)?;
    Ok(rows.len())
}

/// A table as a backup carries it.
struct Table {
    name: &'static str,
    /// The columns a backup carries (never the sequence numbers the database assigns).
    columns: &'static [&'static str],
    /// Those of them that hold booleans.
    booleans: &'static [&'static str],
    /// Those of them that hold integers.
    integers: &'static [&'static str],
    /// The order rows are read and restored in.
    order: &'static str,
}

/// The tables, in the order a restore fills them (a model before its versions).
const TABLES: &[Table] = &[
    Table {
        name: "models",
        columns: &["project", "name", "body"],
        booleans: &[],
        integers: &[],
        order: "project, name",
    },
    Table {
        name: "versions",
        columns: &["project", "model", "name", "is_default", "body"],
        booleans: &["is_default"],
        integers: &[],
        order: "project, model, name",
    },
    Table {
        name: "operations",
        columns: &["project", "id", "done", "body"],
        booleans: &["done"],
        integers: &[],
        order: "seq",
    },
    Table {
        name: "jobs",
        columns: &["project", "job_id", "done", "processes", "body"],
        booleans: &["done"],
        integers: &[],
        order: "seq",
    },
    Table {
        name: "tokens",
        columns: &["id", "hash", "body"],
        booleans: &[],
        integers: &[],
        order: "rowid",
    },
    Table {
        name: "policies",
        columns: &["resource", "etag", "body"],
        booleans: &[],
        integers: &[],
        order: "resource",
    },
    Table {
        name: "audit_log",
        columns: &["project", "body"],
        booleans: &[],
        integers: &[],
        order: "seq",
    },
    Table {
        name: "studies",
        columns: &["project", "name", "body"],
        booleans: &[],
        integers: &[],
        order: "seq",
    },
    Table {
        name: "trials",
        columns: &["project", "study", "id", "body"],
        booleans: &[],
        integers: &["id"],
        order: "project, study, id",
    },
    Table {
        name: "location_operations",
        columns: &["project", "name", "body"],
        booleans: &[],
        integers: &[],
        order: "project, name",
    },
];

/// Every row of every table, each as an object naming its `table`, in restore order.
pub(crate) fn rows(session: &mut dyn Session) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for table in TABLES {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            table.columns.join(", "),
            table.name,
            table.order
        );
        for cells in session.query(&sql, &[])? {
            let mut row = Map::new();
            row.insert("table".into(), Value::from(table.name));
            for (column, cell) in table.columns.iter().zip(cells) {
                let value = match cell {
                    Cell::Text(text) => Value::from(text),
                    Cell::Int(value) if table.booleans.contains(column) => Value::from(value != 0),
                    Cell::Int(value) => Value::from(value),
                    Cell::Null => Value::Null,
                };
                row.insert((*column).into(), value);
            }
            rows.push(Value::Object(row));
        }
    }
    Ok(rows)
}

/// Inserts the rows of a backup into a database that holds none yet.
pub(crate) fn restore(session: &mut dyn Session, rows: &[Value]) -> Result<()> {
    for table in TABLES {
        let count = session.query(&format!("SELECT COUNT(*) FROM {}", table.name), &[])?;
        if !matches!(
            count.first().and_then(|row| row.first()),
            Some(Cell::Int(0))
        ) {
            return Err(StoreError::Database(format!(
                "a backup restores only into an empty database; table {} holds rows",
                table.name
            )));
        }
    }
    for (index, row) in rows.iter().enumerate() {
        let refuse = |why: String| StoreError::Database(format!("backup row {}: {why}", index + 1));
        let name = row.get("table").and_then(Value::as_str).unwrap_or_default();
        let table = TABLES
            .iter()
            .find(|table| table.name == name)
            .ok_or_else(|| refuse(format!("no table {name:?}")))?;
        let mut params = Vec::with_capacity(table.columns.len());
        for column in table.columns {
            let value = row.get(*column).unwrap_or(&Value::Null);
            params.push(match value {
                Value::Null => Param::Null,
                Value::String(text) => Param::Text(text),
                Value::Bool(value) if table.booleans.contains(column) => Param::Bool(*value),
                Value::Number(number) if table.integers.contains(column) => {
                    Param::Int(number.as_i64().ok_or_else(|| {
                        refuse(format!("{}.{column} is not an integer", table.name))
                    })?)
                }
                other => return Err(refuse(format!("{}.{column} holds {other}", table.name))),
            });
        }
        let placeholders: Vec<String> = (1..=params.len()).map(|n| format!("${n}")).collect();
        session.execute(
            &format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.name,
                table.columns.join(", "),
                placeholders.join(", ")
            ),
            &params,
        )?;
    }
    Ok(())
}
