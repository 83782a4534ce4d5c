//! What the store's queries need of a database: statements with numbered parameters on one
//! connection, optionally inside a transaction.
//!
//! Both backends run the same SQL text, but for the few expressions that read inside a stored
//! document ([`Dialect`]). Parameters are written `$1`, `$2`, … (PostgreSQL's form;
//! SQLite reads them as `?1`, `?2`, …), and the schema keeps the types to those both databases
//! share: text, 64-bit integers and booleans.

/// A value bound to a query's `$n` parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// Text.
    Text(&'a str),
    /// A 64-bit integer.
    Int(i64),
    /// A boolean (SQLite stores 0 or 1).
    Bool(bool),
    /// SQL `NULL`.
    Null,
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(value)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(value)
    }
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Bool(value)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Param::Null, Param::Text)
    }
}

/// A value a query returned. Booleans come back as integers (0 or 1), as SQLite keeps them.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// SQL `NULL`.
    Null,
}

/// One row a query returned.
pub type Row = Vec<Cell>;

/// Why a statement failed, in the terms the store acts on.
#[derive(Debug)]
pub enum DbError {
    /// A primary key, uniqueness or foreign key constraint refused the change.
    Constraint(String),
    /// The database cannot be reached (or is shutting down); retrying later may succeed.
    Unavailable(String),
    /// A transaction lost a race with a concurrent one and may simply be run again.
    Serialization(String),
    /// Anything else.
    Other(String),
}

/// One connection: statements run one at a time, inside the transaction the session was opened
/// with, if any.
pub trait Session {
    /// Runs a statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError>;
    /// Runs a query; its rows, each column as a [`Cell`].
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError>;
}

/// Which SQL a database speaks where the two differ (reading inside JSON documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite's JSON functions.
    Sqlite,
    /// PostgreSQL's `json` operators.
    Postgres,
}

/// A metadata database: lends a session to work that needs one.
pub trait Database: Send + Sync + 'static {
    /// The SQL it speaks.
    const DIALECT: Dialect;

    /// Runs `work` on one connection. With `atomic`, in one transaction that commits when `work`
    /// returns `Ok` and rolls back otherwise; a transaction a concurrent one made fail is run
    /// again, so `work` may be called more than once.
    fn with<R: Send>(
        &self,
        atomic: bool,
        work: &mut (dyn FnMut(&mut dyn Session) -> crate::Result<R> + Send),
    ) -> crate::Result<R>;

    /// How many schema migrations the database has applied.
    fn schema_version(&self) -> crate::Result<i64>;
}
