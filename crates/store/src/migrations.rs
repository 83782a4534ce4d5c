//! The schema, as migrations that refinery applies in order and records in the database itself
//! (its `refinery_schema_history` table).
//!
//! Each dialect has its own scripts (`migrations/sqlite`, `migrations/postgres`), numbered alike:
//! script N makes the same tables, with the same columns, on both. Never edit a released script:
//! append a new one to both directories.

use refinery::Runner;
use refinery::error::Kind;

use crate::{Result, StoreError};

mod sqlite_scripts {
    refinery::embed_migrations!("migrations/sqlite");
}

mod postgres_scripts {
    refinery::embed_migrations!("migrations/postgres");
}

/// The SQLite scripts.
pub(crate) fn sqlite() -> Runner {
    sqlite_scripts::migrations::runner()
}

/// The PostgreSQL scripts.
pub(crate) fn postgres() -> Runner {
    postgres_scripts::migrations::runner()
}

/// The schema version this build knows: the number of its latest migration.
pub fn latest() -> i64 {
    sqlite()
        .get_migrations()
        .iter()
        .map(|migration| i64::from(migration.version()))
        .max()
        .unwrap_or(0)
}

/// Applies the pending scripts of `runner`; refuses a database that has applied a migration this
/// build does not know (one made by a newer Kiln).
pub(crate) fn apply<C: refinery::Migrate>(runner: Runner, connection: &mut C) -> Result<()> {
    match runner.run(connection) {
        Ok(_) => Ok(()),
        Err(error) => Err(match error.kind() {
            Kind::MissingVersion(migration) => StoreError::NewerSchema {
                database: i64::from(migration.version()),
                binary: latest(),
            },
            _ => StoreError::Database(format!("migrating the schema: {error}")),
        }),
    }
}
