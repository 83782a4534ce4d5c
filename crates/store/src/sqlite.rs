//! The embedded metadata database: one SQLite file.
//!
//! WAL journaling with `synchronous = FULL`: a write that returned survives a crash or SIGKILL of
//! the server. One connection behind a mutex is plenty for metadata traffic, and makes every
//! session serialisable without retry logic.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use refinery::Target;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ToSql};

use crate::session::{Cell, Database, DbError, Dialect, Param, Row, Session};
use crate::sql::SqlStore;
use crate::{Result, StoreError, migrations};

/// A [`crate::Store`] in a SQLite database file.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(SqlStore::new(Sqlite::open(path)?))
    }
}

/// A SQLite database file.
pub struct Sqlite {
    /// The one connection; SQLite serialises writers anyway.
    connection: Mutex<Connection>,
}

impl Sqlite {
    fn open(path: &Path) -> Result<Self> {
        let mut connection = Connection::open(path).map_err(|error| {
            StoreError::Database(format!("cannot open {}: {error}", path.display()))
        })?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(database)?;
        adopt_counted_schema(&mut connection)?;
        migrations::apply(migrations::sqlite(), &mut connection)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-written transaction (SQLite rolls
        // it back), so a poisoned lock is safe to reuse.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Databases made before the schema history was kept counted their migrations in
/// `PRAGMA user_version`; those migrations are recorded as applied, without running them again.
fn adopt_counted_schema(connection: &mut Connection) -> Result<()> {
    let counted: i32 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(database)?;
    let recorded: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'refinery_schema_history'",
            [],
            |row| row.get(0),
        )
        .map_err(database)?;
    if counted > 0 && recorded == 0 {
        migrations::sqlite()
            .set_target(Target::FakeVersion(counted))
            .run(connection)
            .map_err(|error| StoreError::Database(format!("recording the schema: {error}")))?;
    }
    Ok(())
}

impl Database for Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;

    fn with<R: Send>(
        &self,
        atomic: bool,
        work: &mut (dyn FnMut(&mut dyn Session) -> Result<R> + Send),
    ) -> Result<R> {
        let mut connection = self.lock();
        if !atomic {
            return work(&mut SqliteSession(&connection));
        }
        // Immediate: the write lock is taken when the transaction begins, so a transaction that
        // reads before it writes cannot be overtaken by another process's write on the same file.
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(database)?;
        let result = work(&mut SqliteSession(&transaction))?;
        transaction.commit().map_err(database)?;
        Ok(result)
    }

    fn schema_version(&self) -> Result<i64> {
        self.lock()
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM refinery_schema_history",
                [],
                |row| row.get(0),
            )
            .map_err(database)
    }
}

struct SqliteSession<'c>(&'c Connection);

impl SqliteSession<'_> {
    fn prepare(&self, sql: &str) -> std::result::Result<rusqlite::CachedStatement<'_>, DbError> {
        // Statements are cached per connection: the same few run over and over.
        self.0
            .prepare_cached(&numbered_parameters(sql))
            .map_err(classify)
    }
}

/// `sql` with each `$n` parameter written `?n`, SQLite's numbered form; a `$` not followed by a
/// digit (a JSON path's root) is left as it is.
fn numbered_parameters(sql: &str) -> String {
    let mut written = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => written.push('?'),
            c => written.push(c),
        }
    }
    written
}

impl Session for SqliteSession<'_> {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> std::result::Result<u64, DbError> {
        let count = self
            .prepare(sql)?
            .execute(rusqlite::params_from_iter(params))
            .map_err(classify)?;
        Ok(count as u64)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> std::result::Result<Vec<Row>, DbError> {
        let mut statement = self.prepare(sql)?;
        let columns = statement.column_count();
        let mut rows = statement
            .query(rusqlite::params_from_iter(params))
            .map_err(classify)?;
        let mut found = Vec::new();
        while let Some(row) = rows.next().map_err(classify)? {
            let cells = (0..columns)
                .map(|column| {
                    Ok(match row.get_ref(column).map_err(classify)? {
                        ValueRef::Integer(value) => Cell::Int(value),
                        ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into()),
                        ValueRef::Null => Cell::Null,
                        other => {
                            return Err(DbError::Other(format!(
                                "unexpected {:?} in column {column}",
                                other.data_type()
                            )));
                        }
                    })
                })
                .collect::<std::result::Result<Row, DbError>>()?;
            found.push(cells);
        }
        Ok(found)
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Text(text) => text.to_sql(),
            Param::Int(value) => value.to_sql(),
            Param::Bool(value) => value.to_sql(),
            Param::Null => rusqlite::types::Null.to_sql(),
        }
    }
}

fn database(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

fn classify(error: rusqlite::Error) -> DbError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            DbError::Constraint(error.to_string())
        }
        _ => DbError::Other(error.to_string()),
    }
}
