//! The embedded metadata store: one SQLite file.
//!
//! WAL journaling with `synchronous = FULL`: a write that returned survives a crash or SIGKILL of
//! the server. One connection behind a mutex is plenty for metadata traffic, and makes every
//! method a serialisable transaction without retry logic.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use kiln_api::study::{Study, StudyOperation, Trial as StudyTrial};
use kiln_api::{AuditEntry, Job, Model, Operation, Policy, Token, Version};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::migrations::MIGRATIONS;
use crate::{Result, Store, StoreError};

/// A [`Store`] in a SQLite database file.
pub struct SqliteStore {
    /// The one connection; SQLite serialises writers anyway.
    connection: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        let connection = Connection::open(path).map_err(database)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(database)?;
        let store = Self {
            connection: Mutex::new(connection),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<usize> {
        let connection = self.lock();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(database)?;
        Ok(version as usize)
    }

    fn migrate(&self) -> Result<()> {
        let applied = self.schema_version()?;
        let mut connection = self.lock();
        for (index, script) in MIGRATIONS.iter().enumerate().skip(applied) {
            let transaction = connection.transaction().map_err(database)?;
            transaction.execute_batch(script).map_err(database)?;
            transaction
                .execute_batch(&format!("PRAGMA user_version = {}", index + 1))
                .map_err(database)?;
            transaction.commit().map_err(database)?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-written transaction (SQLite rolls
        // it back), so a poisoned lock is safe to reuse.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn database(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

fn encode<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|error| StoreError::Database(error.to_string()))
}

fn decode<T: DeserializeOwned>(key: &str, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|error| StoreError::Corrupt {
        key: key.to_string(),
        message: error.to_string(),
    })
}

fn is_constraint(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(failure, _)
        if failure.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn changed(count: usize, key: String) -> Result<()> {
    match count {
        0 => Err(StoreError::NotFound(key)),
        _ => Ok(()),
    }
}

/// Maps an insert's error: a key conflict becomes `AlreadyExists(key)`.
fn insert_error(key: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |error| match is_constraint(&error) {
        true => StoreError::AlreadyExists(key),
        false => database(error),
    }
}

/// The one document a query selects, if any. Statements are cached per connection: the predict
/// path reads the model and version on every request.
fn fetch_one<T: DeserializeOwned>(
    connection: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
    key: &str,
) -> Result<Option<T>> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| statement.query_row(parameters, |row| row.get::<_, String>(0)))
        .optional()
        .map_err(database)?
        .map(|body| decode(key, &body))
        .transpose()
}

fn collect<T: DeserializeOwned>(
    connection: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
    key: &str,
) -> Result<Vec<T>> {
    let mut statement = connection.prepare_cached(sql).map_err(database)?;
    let bodies = statement
        .query_map(parameters, |row| row.get::<_, String>(0))
        .map_err(database)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(database)?;
    bodies.iter().map(|body| decode(key, body)).collect()
}

impl Store for SqliteStore {
    fn create_model(&self, project: &str, name: &str, model: &Model) -> Result<()> {
        let body = encode(model)?;
        self.lock()
            .execute(
                "INSERT INTO models (project, name, body) VALUES (?1, ?2, ?3)",
                params![project, name, body],
            )
            .map_err(insert_error(format!("projects/{project}/models/{name}")))?;
        Ok(())
    }

    fn get_model(&self, project: &str, name: &str) -> Result<Option<Model>> {
        fetch_one(
            &self.lock(),
            "SELECT body FROM models WHERE project = ?1 AND name = ?2",
            params![project, name],
            &format!("projects/{project}/models/{name}"),
        )
    }

    fn list_models(&self, project: &str) -> Result<Vec<Model>> {
        collect(
            &self.lock(),
            "SELECT body FROM models WHERE project = ?1 ORDER BY name",
            params![project],
            &format!("projects/{project}/models"),
        )
    }

    fn update_model(&self, project: &str, name: &str, model: &Model) -> Result<()> {
        let body = encode(model)?;
        let count = self
            .lock()
            .execute(
                "UPDATE models SET body = ?3 WHERE project = ?1 AND name = ?2",
                params![project, name, body],
            )
            .map_err(database)?;
        changed(count, format!("projects/{project}/models/{name}"))
    }

    fn delete_model(&self, project: &str, name: &str) -> Result<()> {
        let count = self
            .lock()
            .execute(
                "DELETE FROM models WHERE project = ?1 AND name = ?2",
                params![project, name],
            )
            .map_err(|error| match is_constraint(&error) {
                true => StoreError::Database(format!(
                    "projects/{project}/models/{name} still has versions"
                )),
                false => database(error),
            })?;
        changed(count, format!("projects/{project}/models/{name}"))
    }

    fn create_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
        version: &Version,
    ) -> Result<Version> {
        let key = format!("projects/{project}/models/{model}/versions/{name}");
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(database)?;
        let existing: i64 = transaction
            .query_row(
                "SELECT COUNT(*) FROM versions WHERE project = ?1 AND model = ?2",
                params![project, model],
                |row| row.get(0),
            )
            .map_err(database)?;
        let mut version = version.clone();
        version.is_default = existing == 0;
        transaction
            .execute(
                "INSERT INTO versions (project, model, name, is_default, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![project, model, name, version.is_default, encode(&version)?],
            )
            .map_err(insert_error(key))?;
        transaction.commit().map_err(database)?;
        Ok(version)
    }

    fn get_version(&self, project: &str, model: &str, name: &str) -> Result<Option<Version>> {
        fetch_one(
            &self.lock(),
            "SELECT body FROM versions WHERE project = ?1 AND model = ?2 AND name = ?3",
            params![project, model, name],
            &format!("projects/{project}/models/{model}/versions/{name}"),
        )
    }

    fn list_versions(&self, project: &str, model: &str) -> Result<Vec<Version>> {
        collect(
            &self.lock(),
            "SELECT body FROM versions WHERE project = ?1 AND model = ?2 ORDER BY name",
            params![project, model],
            &format!("projects/{project}/models/{model}/versions"),
        )
    }

    fn update_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
        version: &Version,
    ) -> Result<()> {
        let count = self
            .lock()
            .execute(
                "UPDATE versions SET body = ?4, is_default = ?5 WHERE project = ?1 AND model = ?2 AND name = ?3",
                params![project, model, name, encode(version)?, version.is_default],
            )
            .map_err(database)?;
        changed(
            count,
            format!("projects/{project}/models/{model}/versions/{name}"),
        )
    }

    fn delete_version(&self, project: &str, model: &str, name: &str) -> Result<()> {
        let count = self
            .lock()
            .execute(
                "DELETE FROM versions WHERE project = ?1 AND model = ?2 AND name = ?3",
                params![project, model, name],
            )
            .map_err(database)?;
        changed(
            count,
            format!("projects/{project}/models/{model}/versions/{name}"),
        )
    }

    fn set_default_version(&self, project: &str, model: &str, name: &str) -> Result<Version> {
        let key = format!("projects/{project}/models/{model}/versions/{name}");
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(database)?;
        let rows: Vec<(String, String)> = {
            let mut statement = transaction
                .prepare_cached("SELECT name, body FROM versions WHERE project = ?1 AND model = ?2")
                .map_err(database)?;
            statement
                .query_map(params![project, model], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map_err(database)?
                .collect::<std::result::Result<_, _>>()
                .map_err(database)?
        };
        if !rows.iter().any(|(row_name, _)| row_name == name) {
            return Err(StoreError::NotFound(key));
        }
        let mut chosen = None;
        for (row_name, body) in rows {
            let mut version: Version = decode(&key, &body)?;
            version.is_default = row_name == name;
            transaction
                .execute(
                    "UPDATE versions SET body = ?4, is_default = ?5 WHERE project = ?1 AND model = ?2 AND name = ?3",
                    params![project, model, row_name, encode(&version)?, version.is_default],
                )
                .map_err(database)?;
            if version.is_default {
                chosen = Some(version);
            }
        }
        transaction.commit().map_err(database)?;
        chosen.ok_or(StoreError::NotFound(key))
    }

    fn create_operation(&self, project: &str, id: &str, operation: &Operation) -> Result<()> {
        self.lock()
            .execute(
                "INSERT INTO operations (project, id, done, body) VALUES (?1, ?2, ?3, ?4)",
                params![project, id, operation.done, encode(operation)?],
            )
            .map_err(insert_error(format!("projects/{project}/operations/{id}")))?;
        Ok(())
    }

    fn get_operation(&self, project: &str, id: &str) -> Result<Option<Operation>> {
        fetch_one(
            &self.lock(),
            "SELECT body FROM operations WHERE project = ?1 AND id = ?2",
            params![project, id],
            &format!("projects/{project}/operations/{id}"),
        )
    }

    fn list_operations(&self, project: &str) -> Result<Vec<Operation>> {
        collect(
            &self.lock(),
            "SELECT body FROM operations WHERE project = ?1 ORDER BY seq",
            params![project],
            &format!("projects/{project}/operations"),
        )
    }

    fn update_operation(&self, project: &str, id: &str, operation: &Operation) -> Result<()> {
        let count = self
            .lock()
            .execute(
                "UPDATE operations SET body = ?3, done = ?4 WHERE project = ?1 AND id = ?2",
                params![project, id, encode(operation)?, operation.done],
            )
            .map_err(database)?;
        changed(count, format!("projects/{project}/operations/{id}"))
    }

    fn unfinished_operations(&self) -> Result<Vec<(String, String, Operation)>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT project, id, body FROM operations WHERE done = 0 ORDER BY seq")
            .map_err(database)?;
        let rows: Vec<(String, String, String)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(database)?
            .collect::<std::result::Result<_, _>>()
            .map_err(database)?;
        rows.into_iter()
            .map(|(project, id, body)| {
                let operation = decode(&id, &body)?;
                Ok((project, id, operation))
            })
            .collect()
    }

    fn create_job(&self, project: &str, job: &Job) -> Result<()> {
        self.lock()
            .execute(
                "INSERT INTO jobs (project, job_id, done, body) VALUES (?1, ?2, ?3, ?4)",
                params![project, job.job_id, job.state.is_final(), encode(job)?],
            )
            .map_err(insert_error(format!(
                "projects/{project}/jobs/{}",
                job.job_id
            )))?;
        Ok(())
    }

    fn get_job(&self, project: &str, job_id: &str) -> Result<Option<Job>> {
        fetch_one(
            &self.lock(),
            "SELECT body FROM jobs WHERE project = ?1 AND job_id = ?2",
            params![project, job_id],
            &format!("projects/{project}/jobs/{job_id}"),
        )
    }

    fn list_jobs(&self, project: &str) -> Result<Vec<Job>> {
        collect(
            &self.lock(),
            "SELECT body FROM jobs WHERE project = ?1 ORDER BY seq",
            params![project],
            &format!("projects/{project}/jobs"),
        )
    }

    fn create_study(&self, project: &str, study: &Study) -> Result<()> {
        self.lock()
            .execute(
                "INSERT INTO studies (project, name, body) VALUES (?1, ?2, ?3)",
                params![project, study.name, encode(study)?],
            )
            .map_err(insert_error(study.name.clone()))?;
        Ok(())
    }

    fn get_study(&self, project: &str, name: &str) -> Result<Option<Study>> {
        fetch_one(
            &self.lock(),
            "SELECT body FROM studies WHERE project = ?1 AND name = ?2",
            params![project, name],
            name,
        )
    }

    fn list_studies(&self, project: &str) -> Result<Vec<Study>> {
        collect(
            &self.lock(),
            "SELECT body FROM studies WHERE project = ?1 ORDER BY seq",
            params![project],
            &format!("projects/{project}/studies"),
        )
    }

    fn update_study(&self, project: &str, study: &Study) -> Result<()> {
        let count = self
            .lock()
            .execute(
                "UPDATE studies SET body = ?3 WHERE project = ?1 AND name = ?2",
                params![project, study.name, encode(study)?],
            )
            .map_err(database)?;
        changed(count, study.name.clone())
    }

    fn delete_study(&self, project: &str, name: &str) -> Result<()> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(database)?;
        transaction
            .execute(
                "DELETE FROM trials WHERE project = ?1 AND study = ?2",
                params![project, name],
            )
            .map_err(database)?;
        let count = transaction
            .execute(
                "DELETE FROM studies WHERE project = ?1 AND name = ?2",
                params![project, name],
            )
            .map_err(database)?;
        changed(count, name.to_string())?;
        transaction.commit().map_err(database)
    }

    fn put_trial(&self, project: &str, study: &str, id: i64, trial: &StudyTrial) -> Result<()> {
        self.lock()
            .execute(
                "INSERT OR REPLACE INTO trials (project, study, id, body) VALUES (?1, ?2, ?3, ?4)",
                params![project, study, id, encode(trial)?],
            )
            .map_err(database)?;
        Ok(())
    }

    fn put_location_operation(&self, project: &str, operation: &StudyOperation) -> Result<()> {
        self.lock()
            .execute(
                "INSERT OR REPLACE INTO location_operations (project, name, body) VALUES (?1, ?2, ?3)",
                params![project, operation.name, encode(operation)?],
            )
            .map_err(database)?;
        Ok(())
    }

    fn get_location_operation(&self, project: &str, name: &str) -> Result<Option<StudyOperation>> {
        fetch_one(
            &self.lock(),
            "SELECT body FROM location_operations WHERE project = ?1 AND name = ?2",
            params![project, name],
            name,
        )
    }

    fn list_trials(&self, project: &str, study: &str) -> Result<Vec<(i64, StudyTrial)>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT id, body FROM trials WHERE project = ?1 AND study = ?2 ORDER BY id",
            )
            .map_err(database)?;
        let rows = statement
            .query_map(params![project, study], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(database)?;
        let mut trials = Vec::new();
        for row in rows {
            let (id, body) = row.map_err(database)?;
            trials.push((id, decode(&format!("{study}/trials/{id}"), &body)?));
        }
        Ok(trials)
    }

    fn delete_trial(&self, project: &str, study: &str, id: i64) -> Result<()> {
        let count = self
            .lock()
            .execute(
                "DELETE FROM trials WHERE project = ?1 AND study = ?2 AND id = ?3",
                params![project, study, id],
            )
            .map_err(database)?;
        changed(count, format!("{study}/trials/{id}"))
    }

    fn update_job(&self, project: &str, job: &Job) -> Result<()> {
        let count = self
            .lock()
            .execute(
                "UPDATE jobs SET body = ?3, done = ?4 WHERE project = ?1 AND job_id = ?2",
                params![project, job.job_id, encode(job)?, job.state.is_final()],
            )
            .map_err(database)?;
        changed(count, format!("projects/{project}/jobs/{}", job.job_id))
    }

    fn active_jobs(&self) -> Result<Vec<(String, Job)>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT project, body FROM jobs WHERE done = 0 ORDER BY seq")
            .map_err(database)?;
        let rows: Vec<(String, String)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(database)?
            .collect::<std::result::Result<_, _>>()
            .map_err(database)?;
        rows.into_iter()
            .map(|(project, body)| {
                Ok((
                    project.clone(),
                    decode(&format!("projects/{project}/jobs"), &body)?,
                ))
            })
            .collect()
    }

    fn set_job_processes(&self, project: &str, job_id: &str, processes: &[String]) -> Result<()> {
        let count = self
            .lock()
            .execute(
                "UPDATE jobs SET processes = ?3 WHERE project = ?1 AND job_id = ?2",
                params![project, job_id, encode(&processes)?],
            )
            .map_err(database)?;
        changed(count, format!("projects/{project}/jobs/{job_id}"))
    }

    fn job_processes(&self, project: &str, job_id: &str) -> Result<Vec<String>> {
        let key = format!("projects/{project}/jobs/{job_id}");
        // Ids were process-group numbers before executors named their replicas: both read back.
        let ids: Vec<serde_json::Value> = fetch_one(
            &self.lock(),
            "SELECT processes FROM jobs WHERE project = ?1 AND job_id = ?2",
            params![project, job_id],
            &key,
        )?
        .ok_or(StoreError::NotFound(key))?;
        Ok(ids
            .into_iter()
            .map(|id| match id {
                serde_json::Value::String(id) => id,
                other => other.to_string(),
            })
            .collect())
    }

    fn create_token(&self, id: &str, hash: &str, token: &Token) -> Result<()> {
        let body = encode(token)?;
        self.lock()
            .execute(
                "INSERT INTO tokens (id, hash, body) VALUES (?1, ?2, ?3)",
                params![id, hash, body],
            )
            .map_err(insert_error(format!("tokens/{id}")))?;
        Ok(())
    }

    fn get_token(&self, id: &str) -> Result<Option<(Token, String)>> {
        let row: Option<(String, String)> = self
            .lock()
            .query_row(
                "SELECT body, hash FROM tokens WHERE id = ?1",
                params![id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(database)?;
        row.map(|(body, hash)| Ok((decode(id, &body)?, hash)))
            .transpose()
    }

    fn list_tokens(&self) -> Result<Vec<Token>> {
        collect(
            &self.lock(),
            "SELECT body FROM tokens ORDER BY rowid",
            [],
            "tokens",
        )
    }

    fn update_token(&self, id: &str, token: &Token) -> Result<()> {
        let body = encode(token)?;
        let count = self
            .lock()
            .execute(
                "UPDATE tokens SET body = ?2 WHERE id = ?1",
                params![id, body],
            )
            .map_err(database)?;
        changed(count, format!("tokens/{id}"))
    }

    fn get_policy(&self, resource: &str) -> Result<Option<Policy>> {
        fetch_one(
            &self.lock(),
            "SELECT body FROM policies WHERE resource = ?1",
            params![resource],
            resource,
        )
    }

    fn set_policy(&self, resource: &str, policy: &Policy, expected: Option<&str>) -> Result<()> {
        let body = encode(policy)?;
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(database)?;
        if let Some(expected) = expected {
            let current: String = transaction
                .query_row(
                    "SELECT etag FROM policies WHERE resource = ?1",
                    params![resource],
                    |row| row.get(0),
                )
                .optional()
                .map_err(database)?
                .unwrap_or_default();
            if current != expected {
                return Err(StoreError::Conflict(resource.to_string()));
            }
        }
        transaction
            .execute(
                "INSERT INTO policies (resource, etag, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (resource) DO UPDATE SET etag = excluded.etag, body = excluded.body",
                params![resource, policy.etag, body],
            )
            .map_err(database)?;
        transaction.commit().map_err(database)
    }

    fn append_audit(&self, project: &str, entry: &AuditEntry) -> Result<()> {
        let body = encode(entry)?;
        self.lock()
            .execute(
                "INSERT INTO audit_log (project, body) VALUES (?1, ?2)",
                params![project, body],
            )
            .map_err(database)?;
        Ok(())
    }

    fn list_audit(&self, project: Option<&str>) -> Result<Vec<AuditEntry>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT seq, body FROM audit_log WHERE ?1 IS NULL OR project = ?1 ORDER BY seq DESC",
            )
            .map_err(database)?;
        let rows = statement
            .query_map(params![project], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(database)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(database)?;
        rows.into_iter()
            .map(|(seq, body)| {
                let mut entry: AuditEntry = decode("audit_log", &body)?;
                entry.id = seq.to_string();
                Ok(entry)
            })
            .collect()
    }
}
