//! The schema, as migrations applied in order. `PRAGMA user_version` records how many ran.
//!
//! Never edit a released migration: append a new one.

/// Migration scripts; index + 1 is the schema version after the script.
pub const MIGRATIONS: &[&str] = &[
    // 1: models, versions and operations. Resources are stored whole as JSON documents (the API's
    // own representation), keyed by the columns lists and uniqueness need.
    r#"
    CREATE TABLE models (
        project    TEXT NOT NULL,
        name       TEXT NOT NULL,
        body       TEXT NOT NULL,
        PRIMARY KEY (project, name)
    );
    CREATE TABLE versions (
        project    TEXT NOT NULL,
        model      TEXT NOT NULL,
        name       TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0,
        body       TEXT NOT NULL,
        PRIMARY KEY (project, model, name),
        FOREIGN KEY (project, model) REFERENCES models (project, name)
    );
    CREATE TABLE operations (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        project    TEXT NOT NULL,
        id         TEXT NOT NULL,
        done       INTEGER NOT NULL,
        body       TEXT NOT NULL,
        UNIQUE (project, id)
    );
    CREATE INDEX operations_unfinished ON operations (done) WHERE done = 0;
    "#,
];
