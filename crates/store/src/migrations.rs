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
    // 2: training jobs. `processes` holds the process-group ids of a running job's replicas (not part
    // of the API), so a restarted server can stop trainers its predecessor left behind.
    r#"
    CREATE TABLE jobs (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        project    TEXT NOT NULL,
        job_id     TEXT NOT NULL,
        done       INTEGER NOT NULL DEFAULT 0,
        processes  TEXT NOT NULL DEFAULT '[]',
        body       TEXT NOT NULL,
        UNIQUE (project, job_id)
    );
    CREATE INDEX jobs_active ON jobs (done) WHERE done = 0;
    "#,
    // 3: access control. Tokens keep the SHA-256 of their secret, never the secret; policies are
    // keyed by resource name; the audit log only ever grows.
    r#"
    CREATE TABLE tokens (
        id         TEXT PRIMARY KEY,
        hash       TEXT NOT NULL,
        body       TEXT NOT NULL
    );
    CREATE TABLE policies (
        resource   TEXT PRIMARY KEY,
        etag       TEXT NOT NULL,
        body       TEXT NOT NULL
    );
    CREATE TABLE audit_log (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        project    TEXT NOT NULL,
        body       TEXT NOT NULL
    );
    CREATE INDEX audit_log_project ON audit_log (project, seq);
    "#,
    // 4: Vizier-style studies and their trials, keyed by the study's full name; trials are numbered
    // within their study.
    r#"
    CREATE TABLE studies (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        project    TEXT NOT NULL,
        name       TEXT NOT NULL,
        body       TEXT NOT NULL,
        UNIQUE (project, name)
    );
    CREATE TABLE trials (
        project    TEXT NOT NULL,
        study      TEXT NOT NULL,
        id         INTEGER NOT NULL,
        body       TEXT NOT NULL,
        PRIMARY KEY (project, study, id)
    );
    "#,
    // 5: the operations studies return (`projects/{p}/locations/{l}/operations/{id}`), by full name.
    r#"
    CREATE TABLE location_operations (
        project    TEXT NOT NULL,
        name       TEXT NOT NULL,
        body       TEXT NOT NULL,
        PRIMARY KEY (project, name)
    );
    "#,
];
