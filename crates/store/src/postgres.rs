//! The metadata database for a team: PostgreSQL.
//!
//! Connections come from an r2d2 pool, each with its own cache of prepared statements. A session
//! that must be atomic runs as one `SERIALIZABLE` transaction, run again when PostgreSQL makes it
//! give way to a concurrent one, so servers sharing the database keep the rules one server keeps.
//! A connection that fails, or a database that does not answer within the pool's timeout, is
//! [`StoreError::Unavailable`]: nothing was half-written, and the request may be retried.
//!
//! The client is synchronous (`postgres` drives `tokio-postgres` on a runtime of its own). The
//! store is called from tokio's worker threads too, where a runtime may not be started: such a
//! caller is moved off the worker for the call (`block_in_place`).

use std::collections::HashMap;
use std::time::Duration;

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement, error::SqlState};

use crate::session::{Cell, Database, DbError, Dialect, Param, Row, Session};
use crate::sql::SqlStore;
use crate::{Result, StoreError, migrations};

/// A [`crate::Store`] in a PostgreSQL database.
pub type PostgresStore = SqlStore<Postgres>;

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`) and
    /// applies pending migrations, one server at a time.
    pub fn connect(url: &str) -> Result<Self> {
        Ok(SqlStore::new(Postgres::connect(url)?))
    }
}

/// How long a request waits for a connection before the database counts as unavailable.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections a server keeps at most.
const POOL_SIZE: u32 = 16;

/// Times a transaction is run again after losing a race to a concurrent one.
const SERIALIZATION_RETRIES: u32 = 20;

/// The advisory lock that keeps two servers from migrating the schema at once.
const MIGRATION_LOCK: i64 = 0x6b69_6c6e; // "kiln"

/// A PostgreSQL database, through a pool of connections.
pub struct Postgres {
    pool: r2d2::Pool<Manager>,
}

impl Postgres {
    fn connect(url: &str) -> Result<Self> {
        let config: postgres::Config = url.parse().map_err(|error| {
            StoreError::Database(format!("--database is not a PostgreSQL URL: {error}"))
        })?;
        let place = describe(&config);
        off_runtime(move || {
            let pool = r2d2::Pool::builder()
                .max_size(POOL_SIZE)
                .min_idle(Some(1))
                .connection_timeout(CONNECTION_TIMEOUT)
                .error_handler(Box::new(r2d2::NopErrorHandler))
                .build(Manager { config })
                .map_err(|error| {
                    StoreError::Unavailable(format!("cannot reach PostgreSQL at {place}: {error}"))
                })?;
            let mut connection = pool.get().map_err(unavailable)?;
            let client = connection.client();
            client
                .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .map_err(|error| StoreError::from(classify(error)))?;
            let migrated = migrations::apply(migrations::postgres(), client);
            client
                .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
                .map_err(|error| StoreError::from(classify(error)))?;
            migrated?;
            drop(connection);
            Ok(Self { pool })
        })
    }

    /// Runs `work` in one `SERIALIZABLE` transaction, again while it loses races.
    fn atomically<R>(
        connection: &mut Connection,
        work: &mut (dyn FnMut(&mut dyn Session) -> Result<R> + Send),
    ) -> Result<R> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            connection.batch("BEGIN ISOLATION LEVEL SERIALIZABLE")?;
            let outcome = work(connection).and_then(|result| {
                connection.batch("COMMIT")?;
                Ok(result)
            });
            match outcome {
                Ok(result) => return Ok(result),
                Err(error) => {
                    // A failed COMMIT has already ended the transaction; ROLLBACK then only warns.
                    let _ = connection.batch("ROLLBACK");
                    match error {
                        StoreError::Contended(_) if attempt < SERIALIZATION_RETRIES => {
                            std::thread::sleep(Duration::from_millis(2 * u64::from(attempt)));
                        }
                        error => return Err(error),
                    }
                }
            }
        }
    }
}

impl Database for Postgres {
    const DIALECT: Dialect = Dialect::Postgres;

    fn with<R: Send>(
        &self,
        atomic: bool,
        work: &mut (dyn FnMut(&mut dyn Session) -> Result<R> + Send),
    ) -> Result<R> {
        off_runtime(|| {
            let mut connection = self.pool.get().map_err(unavailable)?;
            match atomic {
                true => Self::atomically(&mut connection, work),
                false => work(&mut *connection),
            }
        })
    }

    fn schema_version(&self) -> Result<i64> {
        let rows = self.with(false, &mut |session| {
            Ok(session.query(
                "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM refinery_schema_history",
                &[],
            )?)
        })?;
        match rows.first().and_then(|row| row.first()) {
            Some(Cell::Int(version)) => Ok(*version),
            _ => Ok(0),
        }
    }
}

/// Runs blocking database work where blocking is allowed: off a tokio worker thread if called on
/// one, in a thread of its own inside a single-threaded runtime.
fn off_runtime<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        Ok(_) => std::thread::scope(|scope| match scope.spawn(work).join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => work(),
    }
}

/// Where the database is, for messages: host, port and database name, never the password.
fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}:{}/{}",
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

fn unavailable(error: r2d2::Error) -> StoreError {
    StoreError::Unavailable(format!("no connection to PostgreSQL: {error}"))
}

fn classify(error: postgres::Error) -> DbError {
    let code = error.code().cloned();
    let message = match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => error.to_string(),
    };
    if error.is_closed() {
        return DbError::Unavailable(message);
    }
    match code {
        Some(SqlState::UNIQUE_VIOLATION) | Some(SqlState::FOREIGN_KEY_VIOLATION) => {
            DbError::Constraint(message)
        }
        Some(SqlState::T_R_SERIALIZATION_FAILURE) | Some(SqlState::T_R_DEADLOCK_DETECTED) => {
            DbError::Serialization(message)
        }
        Some(SqlState::ADMIN_SHUTDOWN) | Some(SqlState::CANNOT_CONNECT_NOW) => {
            DbError::Unavailable(message)
        }
        Some(code) if code.code().starts_with("08") => DbError::Unavailable(message),
        Some(_) => DbError::Other(message),
        // No answer from the server: the connection broke.
        None => DbError::Unavailable(message),
    }
}

/// A pooled connection and the statements prepared on it.
pub struct Connection {
    /// Always present but while the connection is dropped (see `Drop`).
    client: Option<Client>,
    statements: HashMap<String, Statement>,
}

impl Drop for Connection {
    /// Closing a client blocks on its runtime, which cannot happen where the pool may be dropped
    /// last: in a tokio task, when the server shuts down.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            off_runtime(move || drop(client));
        }
    }
}

impl Connection {
    fn client(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a connection has its client until it is dropped")
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.client()
            .batch_execute(sql)
            .map_err(|error| StoreError::from(classify(error)))
    }

    fn prepare(&mut self, sql: &str) -> std::result::Result<Statement, DbError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client().prepare(sql).map_err(classify)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

impl Session for Connection {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> std::result::Result<u64, DbError> {
        let statement = self.prepare(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        self.client().execute(&statement, &params).map_err(classify)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> std::result::Result<Vec<Row>, DbError> {
        let statement = self.prepare(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = self.client().query(&statement, &params).map_err(classify)?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|column| cell(row, column))
                    .collect::<std::result::Result<Row, DbError>>()
            })
            .collect()
    }
}

fn cell(row: &postgres::Row, column: usize) -> std::result::Result<Cell, DbError> {
    let read = |error: postgres::Error| DbError::Other(format!("column {column}: {error}"));
    let ty = row.columns()[column].type_();
    Ok(match *ty {
        Type::TEXT | Type::VARCHAR => row
            .try_get::<_, Option<String>>(column)
            .map_err(read)?
            .map_or(Cell::Null, Cell::Text),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(column)
            .map_err(read)?
            .map_or(Cell::Null, Cell::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(column)
            .map_err(read)?
            .map_or(Cell::Null, |value| Cell::Int(value.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(column)
            .map_err(read)?
            .map_or(Cell::Null, |value| Cell::Int(value.into())),
        _ => return Err(DbError::Other(format!("column {column} has type {ty}"))),
    })
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Text(text) => text.to_sql(ty, out),
            Param::Int(value) => value.to_sql(ty, out),
            Param::Bool(value) => value.to_sql(ty, out),
            Param::Null => Ok(IsNull::Yes),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty) || <i64 as ToSql>::accepts(ty) || <bool as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// Makes the pool's connections.
struct Manager {
    config: postgres::Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Connection, postgres::Error> {
        Ok(Connection {
            client: Some(self.config.connect(NoTls)?),
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, connection: &mut Connection) -> std::result::Result<(), postgres::Error> {
        connection.client().simple_query("").map(drop)
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        connection.client.as_ref().is_none_or(Client::is_closed)
    }
}

/// The URL of schema `schema` in the database at `url`, making the schema if it is missing: servers
/// given such URLs keep their metadata apart in one database (the tests give each server its own).
pub fn in_schema(url: &str, schema: &str) -> Result<String> {
    if schema.is_empty()
        || !schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(StoreError::Database(format!(
            "schema name {schema:?} must be lowercase letters, digits and underscores"
        )));
    }
    let config: postgres::Config = url
        .parse()
        .map_err(|error| StoreError::Database(format!("not a PostgreSQL URL: {error}")))?;
    off_runtime(|| {
        let mut client = config
            .connect(NoTls)
            .map_err(|error| StoreError::from(classify(error)))?;
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .map_err(|error| StoreError::from(classify(error)))
    })?;
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{url}{separator}options=-c%20search_path%3D{schema}"
    ))
}
