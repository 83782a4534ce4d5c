//! The [`Store`] in SQL, written once for every [`Database`].
//!
//! Resources are kept whole as JSON documents (the API's own representation) beside the columns
//! that keys, order and the few conditions need. Every multi-row change runs in one transaction.

use kiln_api::study::{Study, StudyOperation, Trial as StudyTrial};
use kiln_api::{AuditEntry, Job, Model, Operation, Policy, Token, Version};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::scan::{Listing, Scan};
use crate::session::{Cell, Database, DbError, Param, Row, Session};
use crate::{Owned, Result, Store, StoreError, backup};

/// A [`Store`] over a SQL [`Database`].
pub struct SqlStore<D> {
    database: D,
}

impl<D: Database> SqlStore<D> {
    /// A store over a database whose schema is up to date.
    pub fn new(database: D) -> Self {
        Self { database }
    }

    /// Runs one statement outside any transaction; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.database
            .with(false, &mut |session| Ok(session.execute(sql, params)?))
    }

    /// Inserts a row; a key conflict becomes `AlreadyExists(key)`.
    fn insert(&self, sql: &str, params: &[Param<'_>], key: &str) -> Result<()> {
        self.database.with(false, &mut |session| {
            insert(session, sql, params, key)?;
            Ok(())
        })
    }

    /// Inserts a new resource's row, as [`SqlStore::insert`] does, and writes its first policy,
    /// in one transaction.
    fn insert_with_policy(
        &self,
        sql: &str,
        params: &[Param<'_>],
        key: &str,
        policy: &Policy,
    ) -> Result<()> {
        let body = encode(policy)?;
        self.database.with(true, &mut |session| {
            insert(session, sql, params, key)?;
            put_policy(session, key, &policy.etag, &body)
        })
    }

    /// Changes exactly the row `key` names; `NotFound(key)` when none changed.
    fn change(&self, sql: &str, params: &[Param<'_>], key: &str) -> Result<()> {
        changed(self.execute(sql, params)?, key)
    }

    /// The rows a query returns.
    fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        self.database
            .with(false, &mut |session| Ok(session.query(sql, params)?))
    }

    /// Makes server `to` the owner of the unfinished row of `table` whose `key` column is `id`,
    /// if `from` still is; whether it did.
    fn claim(
        &self,
        (table, key): (&str, &str),
        project: &str,
        id: &str,
        from: &str,
        to: &str,
    ) -> Result<bool> {
        let claimed = self.execute(
            &format!(
                "UPDATE {table} SET owner = $4 \
                 WHERE project = $1 AND {key} = $2 AND owner = $3 AND NOT done"
            ),
            &[project.into(), id.into(), from.into(), to.into()],
        )?;
        Ok(claimed == 1)
    }

    /// Changes, in one transaction, the document that `select` reads (its first column, `key`
    /// for messages): `change` says whether to write it, and `update` writes it back, its text
    /// bound after `params` and then what `columns` derives from it for other columns. The
    /// document as written, `None` when `change` declined; `NotFound` when absent.
    fn change_document<T: Serialize + DeserializeOwned + Send>(
        &self,
        (select, update): (&str, &str),
        params: &[Param<'_>],
        (key, columns): (&str, fn(&T) -> Vec<Param<'static>>),
        change: &mut (dyn FnMut(&mut T) -> bool + Send),
    ) -> Result<Option<T>> {
        self.database.with(true, &mut |session| {
            let rows = session.query(select, params)?;
            let row = rows
                .first()
                .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
            let mut document: T = decode(key, text(row, 0, key)?)?;
            if !change(&mut document) {
                return Ok(None);
            }
            let body = encode(&document)?;
            let mut bound = params.to_vec();
            bound.push((&body).into());
            bound.extend(columns(&document));
            session.execute(update, &bound)?;
            Ok(Some(document))
        })
    }

    /// Unfinished jobs or operations of `table`: `sql` selects project, id, owner and body.
    fn owned<T: DeserializeOwned>(&self, table: &str, sql: &str) -> Result<Vec<Owned<T>>> {
        self.rows(sql, &[])?
            .iter()
            .map(|row| {
                let (project, id) = (text(row, 0, table)?, text(row, 1, table)?);
                Ok(Owned {
                    project: project.to_string(),
                    id: id.to_string(),
                    owner: text(row, 2, table)?.to_string(),
                    value: decode(
                        &format!("projects/{project}/{table}/{id}"),
                        text(row, 3, table)?,
                    )?,
                })
            })
            .collect()
    }

    /// The document in the first column of the one row a query selects, if any.
    fn one<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        key: &str,
    ) -> Result<Option<T>> {
        self.rows(sql, params)?
            .first()
            .map(|row| decode(key, text(row, 0, key)?))
            .transpose()
    }

    /// A page of a list: the documents (first column) of the rows `listing` selects in the
    /// scope `scope` binds.
    fn page<T: DeserializeOwned>(
        &self,
        listing: &Listing<'_>,
        scope: &[Param<'_>],
        scan: &Scan<'_>,
    ) -> Result<Vec<T>> {
        let query = listing.page(D::DIALECT, scan);
        self.all(&query.sql, &query.params(scope), listing.table)
    }

    /// The documents in the first column of every row a query selects.
    fn all<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        key: &str,
    ) -> Result<Vec<T>> {
        self.rows(sql, params)?
            .iter()
            .map(|row| decode(key, text(row, 0, key)?))
            .collect()
    }
}

impl From<DbError> for StoreError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(message) => StoreError::Unavailable(message),
            DbError::Serialization(message) => StoreError::Contended(message),
            DbError::Constraint(message) | DbError::Other(message) => StoreError::Database(message),
        }
    }
}

/// Writes a resource's policy, replacing the one stored.
fn put_policy(session: &mut dyn Session, resource: &str, etag: &str, body: &str) -> Result<()> {
    session.execute(
        "INSERT INTO policies (resource, etag, body) VALUES ($1, $2, $3)
         ON CONFLICT (resource) DO UPDATE SET etag = excluded.etag, body = excluded.body",
        &[resource.into(), etag.into(), body.into()],
    )?;
    Ok(())
}

fn insert(session: &mut dyn Session, sql: &str, params: &[Param<'_>], key: &str) -> Result<()> {
    match session.execute(sql, params) {
        Ok(_) => Ok(()),
        Err(DbError::Constraint(_)) => Err(StoreError::AlreadyExists(key.to_string())),
        Err(error) => Err(error.into()),
    }
}

/// A model (first column) with its default version (second column, `NULL` when it has none).
fn model_with_default(row: &Row, key: &str) -> Result<Model> {
    let mut model: Model = decode(key, text(row, 0, key)?)?;
    model.default_version = match row.get(1) {
        Some(Cell::Text(body)) => Some(decode(key, body)?),
        _ => None,
    };
    Ok(model)
}

/// Replaces a stored version, its `is_default` column as the version says.
fn write_version(
    session: &mut dyn Session,
    project: &str,
    model: &str,
    name: &str,
    version: &Version,
) -> Result<()> {
    session.execute(
        "UPDATE versions SET body = $4, is_default = $5 \
         WHERE project = $1 AND model = $2 AND name = $3",
        &[
            project.into(),
            model.into(),
            name.into(),
            (&encode(version)?).into(),
            version.is_default.into(),
        ],
    )?;
    Ok(())
}

/// A version as stored, its default flag from the `is_default` column.
fn stored_version(
    session: &mut dyn Session,
    project: &str,
    model: &str,
    name: &str,
    key: &str,
) -> Result<Version> {
    let rows = session.query(
        "SELECT body, is_default FROM versions WHERE project = $1 AND model = $2 AND name = $3",
        &[project.into(), model.into(), name.into()],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
    let mut version: Version = decode(key, text(row, 0, key)?)?;
    version.is_default = int(row, 1, key)? != 0;
    Ok(version)
}

fn changed(count: u64, key: &str) -> Result<()> {
    match count {
        0 => Err(StoreError::NotFound(key.to_string())),
        _ => Ok(()),
    }
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

fn text<'r>(row: &'r Row, column: usize, key: &str) -> Result<&'r str> {
    match row.get(column) {
        Some(Cell::Text(text)) => Ok(text),
        other => Err(corrupt(key, column, other)),
    }
}

fn int(row: &Row, column: usize, key: &str) -> Result<i64> {
    match row.get(column) {
        Some(Cell::Int(value)) => Ok(*value),
        other => Err(corrupt(key, column, other)),
    }
}

fn corrupt(key: &str, column: usize, found: Option<&Cell>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        message: format!("column {column} holds {found:?}"),
    }
}

/// The SQL condition on `body` that a [`Contains`] states, with the `LIKE` pattern bound to each
/// of its parameters, numbered from `$first` on: each string anywhere in the text, its wildcards
/// escaped with `\`. `LIKE` is case-insensitive on SQLite and exact on PostgreSQL: either way every
/// resource whose text holds the strings passes.
fn model_key(project: &str, name: &str) -> String {
    format!("projects/{project}/models/{name}")
}

fn version_key(project: &str, model: &str, name: &str) -> String {
    format!("projects/{project}/models/{model}/versions/{name}")
}

fn job_key(project: &str, job_id: &str) -> String {
    format!("projects/{project}/jobs/{job_id}")
}

impl<D: Database> Store for SqlStore<D> {
    fn create_model(
        &self,
        project: &str,
        name: &str,
        model: &Model,
        policy: &Policy,
    ) -> Result<()> {
        self.insert_with_policy(
            "INSERT INTO models (project, name, body) VALUES ($1, $2, $3)",
            &[project.into(), name.into(), (&encode(model)?).into()],
            &model_key(project, name),
            policy,
        )
    }

    fn get_model(&self, project: &str, name: &str) -> Result<Option<Model>> {
        let key = model_key(project, name);
        self.rows(
            "SELECT m.body, v.body FROM models m
             LEFT JOIN versions v ON v.project = m.project AND v.model = m.name AND v.is_default
             WHERE m.project = $1 AND m.name = $2",
            &[project.into(), name.into()],
        )?
        .first()
        .map(|row| model_with_default(row, &key))
        .transpose()
    }

    fn scan_models(&self, project: &str, scan: &Scan<'_>) -> Result<Vec<Model>> {
        let key = format!("projects/{project}/models");
        let listing = Listing {
            select: "r.body, v.body",
            join: "LEFT JOIN versions v ON v.project = $1 AND v.model = r.k AND v.is_default",
            ..Listing::of("models", &["project"], "name", "name")
        };
        let query = listing.page(D::DIALECT, scan);
        self.rows(&query.sql, &query.params(&[project.into()]))?
            .iter()
            .map(|row| model_with_default(row, &key))
            .collect()
    }

    fn update_model_with(
        &self,
        project: &str,
        name: &str,
        change: &mut (dyn FnMut(&mut Model) -> bool + Send),
    ) -> Result<Option<Model>> {
        self.change_document(
            (
                "SELECT body FROM models WHERE project = $1 AND name = $2",
                "UPDATE models SET body = $3 WHERE project = $1 AND name = $2",
            ),
            &[project.into(), name.into()],
            (&model_key(project, name), |_| Vec::new()),
            change,
        )
    }

    fn delete_model(&self, project: &str, name: &str) -> Result<()> {
        let key = model_key(project, name);
        let count = self
            .database
            .with(false, &mut |session| match session.execute(
                "DELETE FROM models WHERE project = $1 AND name = $2",
                &[project.into(), name.into()],
            ) {
                Err(DbError::Constraint(_)) => {
                    Err(StoreError::Database(format!("{key} still has versions")))
                }
                other => Ok(other?),
            })?;
        changed(count, &key)
    }

    fn create_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
        version: &Version,
    ) -> Result<Version> {
        let key = version_key(project, model, name);
        self.database.with(true, &mut |session| {
            let rows = session.query(
                "SELECT COUNT(*) FROM versions WHERE project = $1 AND model = $2",
                &[project.into(), model.into()],
            )?;
            let existing = rows.first().map_or(Ok(0), |row| int(row, 0, &key))?;
            let mut version = version.clone();
            version.is_default = existing == 0;
            insert(
                session,
                "INSERT INTO versions (project, model, name, is_default, body) VALUES ($1, $2, $3, $4, $5)",
                &[
                    project.into(),
                    model.into(),
                    name.into(),
                    version.is_default.into(),
                    (&encode(&version)?).into(),
                ],
                &key,
            )?;
            Ok(version)
        })
    }

    fn default_version(&self, project: &str, model: &str) -> Result<Option<Version>> {
        self.one(
            "SELECT body FROM versions WHERE project = $1 AND model = $2 AND is_default",
            &[project.into(), model.into()],
            &format!("projects/{project}/models/{model}/versions"),
        )
    }

    fn get_version(&self, project: &str, model: &str, name: &str) -> Result<Option<Version>> {
        self.one(
            "SELECT body FROM versions WHERE project = $1 AND model = $2 AND name = $3",
            &[project.into(), model.into(), name.into()],
            &version_key(project, model, name),
        )
    }

    fn list_versions(&self, project: &str, model: &str) -> Result<Vec<Version>> {
        self.all(
            "SELECT body FROM versions WHERE project = $1 AND model = $2 ORDER BY name",
            &[project.into(), model.into()],
            &format!("projects/{project}/models/{model}/versions"),
        )
    }

    fn scan_versions(&self, project: &str, model: &str, scan: &Scan<'_>) -> Result<Vec<Version>> {
        self.page(
            &Listing::of("versions", &["project", "model"], "name", "name"),
            &[project.into(), model.into()],
            scan,
        )
    }

    fn update_version_with(
        &self,
        project: &str,
        model: &str,
        name: &str,
        change: &mut (dyn FnMut(&mut Version) -> bool + Send),
    ) -> Result<Option<Version>> {
        let key = version_key(project, model, name);
        self.database.with(true, &mut |session| {
            let mut version = stored_version(session, project, model, name, &key)?;
            let is_default = version.is_default;
            if !change(&mut version) {
                return Ok(None);
            }
            version.is_default = is_default;
            write_version(session, project, model, name, &version)?;
            Ok(Some(version))
        })
    }

    fn delete_version_with(
        &self,
        project: &str,
        model: &str,
        name: &str,
        allow: &mut (dyn FnMut(&mut (Version, usize)) -> bool + Send),
    ) -> Result<Option<Version>> {
        let key = version_key(project, model, name);
        self.database.with(true, &mut |session| {
            let version = stored_version(session, project, model, name, &key)?;
            let rows = session.query(
                "SELECT COUNT(*) FROM versions WHERE project = $1 AND model = $2",
                &[project.into(), model.into()],
            )?;
            let count = rows.first().map_or(Ok(0), |row| int(row, 0, &key))?;
            let mut subject = (version, count as usize);
            if !allow(&mut subject) {
                return Ok(None);
            }
            session.execute(
                "DELETE FROM versions WHERE project = $1 AND model = $2 AND name = $3",
                &[project.into(), model.into(), name.into()],
            )?;
            Ok(Some(subject.0))
        })
    }

    fn set_default_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
        allow: &mut (dyn FnMut(&mut Version) -> bool + Send),
    ) -> Result<Option<Version>> {
        let key = version_key(project, model, name);
        self.database.with(true, &mut |session| {
            if !allow(&mut stored_version(session, project, model, name, &key)?) {
                return Ok(None);
            }
            let rows = session.query(
                "SELECT name, body FROM versions WHERE project = $1 AND model = $2",
                &[project.into(), model.into()],
            )?;
            let mut chosen = None;
            for row in &rows {
                let row_name = text(row, 0, &key)?;
                let mut version: Version = decode(&key, text(row, 1, &key)?)?;
                version.is_default = row_name == name;
                write_version(session, project, model, row_name, &version)?;
                if version.is_default {
                    chosen = Some(version);
                }
            }
            chosen
                .map(Some)
                .ok_or_else(|| StoreError::NotFound(key.clone()))
        })
    }

    fn create_operation(
        &self,
        project: &str,
        id: &str,
        operation: &Operation,
        owner: &str,
        policy: &Policy,
    ) -> Result<()> {
        self.insert_with_policy(
            "INSERT INTO operations (project, id, done, body, owner) VALUES ($1, $2, $3, $4, $5)",
            &[
                project.into(),
                id.into(),
                operation.done.into(),
                (&encode(operation)?).into(),
                owner.into(),
            ],
            &format!("projects/{project}/operations/{id}"),
            policy,
        )
    }

    fn get_operation(&self, project: &str, id: &str) -> Result<Option<Operation>> {
        self.one(
            "SELECT body FROM operations WHERE project = $1 AND id = $2",
            &[project.into(), id.into()],
            &format!("projects/{project}/operations/{id}"),
        )
    }

    fn scan_operations(&self, project: &str, scan: &Scan<'_>) -> Result<Vec<Operation>> {
        self.page(
            &Listing::of("operations", &["project"], "id", "seq"),
            &[project.into()],
            scan,
        )
    }

    fn update_operation(&self, project: &str, id: &str, operation: &Operation) -> Result<()> {
        self.change(
            "UPDATE operations SET body = $3, done = $4 WHERE project = $1 AND id = $2",
            &[
                project.into(),
                id.into(),
                (&encode(operation)?).into(),
                operation.done.into(),
            ],
            &format!("projects/{project}/operations/{id}"),
        )
    }

    fn unfinished_operations(&self) -> Result<Vec<Owned<Operation>>> {
        self.owned(
            "operations",
            "SELECT project, id, owner, body FROM operations WHERE NOT done ORDER BY seq",
        )
    }

    fn claim_operation(&self, project: &str, id: &str, from: &str, to: &str) -> Result<bool> {
        self.claim(("operations", "id"), project, id, from, to)
    }

    fn create_job(&self, project: &str, job: &Job, owner: &str, policy: &Policy) -> Result<()> {
        self.insert_with_policy(
            "INSERT INTO jobs (project, job_id, done, body, owner) VALUES ($1, $2, $3, $4, $5)",
            &[
                project.into(),
                (&job.job_id).into(),
                job.state.is_final().into(),
                (&encode(job)?).into(),
                owner.into(),
            ],
            &job_key(project, &job.job_id),
            policy,
        )
    }

    fn get_job(&self, project: &str, job_id: &str) -> Result<Option<Job>> {
        self.one(
            "SELECT body FROM jobs WHERE project = $1 AND job_id = $2",
            &[project.into(), job_id.into()],
            &job_key(project, job_id),
        )
    }

    fn scan_jobs(&self, project: &str, scan: &Scan<'_>) -> Result<Vec<Job>> {
        self.page(
            &Listing::of("jobs", &["project"], "job_id", "seq"),
            &[project.into()],
            scan,
        )
    }

    fn update_job_with(
        &self,
        project: &str,
        job_id: &str,
        change: &mut (dyn FnMut(&mut Job) -> bool + Send),
    ) -> Result<Option<Job>> {
        self.change_document(
            (
                "SELECT body FROM jobs WHERE project = $1 AND job_id = $2",
                "UPDATE jobs SET body = $3, done = $4 WHERE project = $1 AND job_id = $2",
            ),
            &[project.into(), job_id.into()],
            (&job_key(project, job_id), |job: &Job| {
                vec![job.state.is_final().into()]
            }),
            change,
        )
    }

    fn active_jobs(&self) -> Result<Vec<Owned<Job>>> {
        self.owned(
            "jobs",
            "SELECT project, job_id, owner, body FROM jobs WHERE NOT done ORDER BY seq",
        )
    }

    fn claim_job(&self, project: &str, job_id: &str, from: &str, to: &str) -> Result<bool> {
        self.claim(("jobs", "job_id"), project, job_id, from, to)
    }

    fn set_job_units(&self, project: &str, job_id: &str, units: i64, admitted: bool) -> Result<()> {
        self.change(
            "UPDATE jobs SET units = $3, admitted = (admitted OR $4) \
             WHERE project = $1 AND job_id = $2",
            &[project.into(), job_id.into(), units.into(), admitted.into()],
            &job_key(project, job_id),
        )
    }

    fn admit_job(&self, project: &str, job_id: &str, quota: i64) -> Result<bool> {
        let key = job_key(project, job_id);
        self.database.with(true, &mut |session| {
            let rows = session.query(
                "SELECT seq, units, admitted FROM jobs \
                 WHERE project = $1 AND job_id = $2 AND NOT done",
                &[project.into(), job_id.into()],
            )?;
            let Some(row) = rows.first() else {
                return Ok(false);
            };
            let (seq, units) = (int(row, 0, &key)?, int(row, 1, &key)?);
            if int(row, 2, &key)? != 0 {
                return Ok(true);
            }
            let ahead = session.query(
                "SELECT COUNT(*) FROM jobs \
                 WHERE NOT done AND NOT admitted AND units > 0 AND seq < $1",
                &[seq.into()],
            )?;
            if ahead.first().map(|row| int(row, 0, &key)).transpose()? != Some(0) {
                return Ok(false);
            }
            let used = session.query(
                "SELECT CAST(COALESCE(SUM(units), 0) AS BIGINT) FROM jobs \
                 WHERE admitted AND NOT done",
                &[],
            )?;
            let used = used.first().map(|row| int(row, 0, &key)).transpose()?;
            if used.unwrap_or(0) + units > quota {
                return Ok(false);
            }
            session.execute(
                "UPDATE jobs SET admitted = TRUE WHERE project = $1 AND job_id = $2",
                &[project.into(), job_id.into()],
            )?;
            Ok(true)
        })
    }

    fn set_job_processes(&self, project: &str, job_id: &str, processes: &[String]) -> Result<()> {
        self.change(
            "UPDATE jobs SET processes = $3 WHERE project = $1 AND job_id = $2",
            &[project.into(), job_id.into(), (&encode(&processes)?).into()],
            &job_key(project, job_id),
        )
    }

    fn job_processes(&self, project: &str, job_id: &str) -> Result<Vec<String>> {
        let key = job_key(project, job_id);
        // Ids were process-group numbers before executors named their replicas: both read back.
        let ids: Vec<serde_json::Value> = self
            .one(
                "SELECT processes FROM jobs WHERE project = $1 AND job_id = $2",
                &[project.into(), job_id.into()],
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

    fn renew_lease(&self, server: &str, until: i64) -> Result<()> {
        const DAY_MS: i64 = 24 * 3600 * 1000;
        self.database.with(true, &mut |session| {
            session.execute(
                "INSERT INTO servers (id, lease_until) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until",
                &[server.into(), until.into()],
            )?;
            session.execute(
                "DELETE FROM servers WHERE lease_until < $1",
                &[(until - DAY_MS).into()],
            )?;
            Ok(())
        })
    }

    fn end_lease(&self, server: &str) -> Result<()> {
        self.execute("DELETE FROM servers WHERE id = $1", &[server.into()])?;
        Ok(())
    }

    fn leases(&self) -> Result<Vec<(String, i64)>> {
        let key = "servers";
        self.rows("SELECT id, lease_until FROM servers", &[])?
            .iter()
            .map(|row| Ok((text(row, 0, key)?.to_string(), int(row, 1, key)?)))
            .collect()
    }

    fn create_token(&self, id: &str, hash: &str, token: &Token) -> Result<()> {
        self.insert(
            "INSERT INTO tokens (id, hash, body) VALUES ($1, $2, $3)",
            &[id.into(), hash.into(), (&encode(token)?).into()],
            &format!("tokens/{id}"),
        )
    }

    fn get_token(&self, id: &str) -> Result<Option<(Token, String)>> {
        self.rows("SELECT body, hash FROM tokens WHERE id = $1", &[id.into()])?
            .first()
            .map(|row| {
                Ok((
                    decode(id, text(row, 0, id)?)?,
                    text(row, 1, id)?.to_string(),
                ))
            })
            .transpose()
    }

    fn scan_tokens(&self, scan: &Scan<'_>) -> Result<Vec<Token>> {
        self.page(&Listing::of("tokens", &[], "id", "rowid"), &[], scan)
    }

    fn update_token(&self, id: &str, token: &Token) -> Result<()> {
        self.change(
            "UPDATE tokens SET body = $2 WHERE id = $1",
            &[id.into(), (&encode(token)?).into()],
            &format!("tokens/{id}"),
        )
    }

    fn get_policy(&self, resource: &str) -> Result<Option<Policy>> {
        self.one(
            "SELECT body FROM policies WHERE resource = $1",
            &[resource.into()],
            resource,
        )
    }

    fn set_policy(&self, resource: &str, policy: &Policy, expected: Option<&str>) -> Result<()> {
        let body = encode(policy)?;
        self.database.with(true, &mut |session| {
            if let Some(expected) = expected {
                let rows = session.query(
                    "SELECT etag FROM policies WHERE resource = $1",
                    &[resource.into()],
                )?;
                let current = match rows.first() {
                    Some(row) => text(row, 0, resource)?,
                    None => "",
                };
                if current != expected {
                    return Err(StoreError::Conflict(resource.to_string()));
                }
            }
            put_policy(session, resource, &policy.etag, &body)
        })
    }

    fn create_study(&self, project: &str, study: &Study) -> Result<()> {
        self.insert(
            "INSERT INTO studies (project, name, body) VALUES ($1, $2, $3)",
            &[
                project.into(),
                (&study.name).into(),
                (&encode(study)?).into(),
            ],
            &study.name,
        )
    }

    fn get_study(&self, project: &str, name: &str) -> Result<Option<Study>> {
        self.one(
            "SELECT body FROM studies WHERE project = $1 AND name = $2",
            &[project.into(), name.into()],
            name,
        )
    }

    fn list_studies(&self, project: &str) -> Result<Vec<Study>> {
        self.all(
            "SELECT body FROM studies WHERE project = $1 ORDER BY seq",
            &[project.into()],
            &format!("projects/{project}/studies"),
        )
    }

    fn update_study(&self, project: &str, study: &Study) -> Result<()> {
        self.change(
            "UPDATE studies SET body = $3 WHERE project = $1 AND name = $2",
            &[
                project.into(),
                (&study.name).into(),
                (&encode(study)?).into(),
            ],
            &study.name,
        )
    }

    fn delete_study(&self, project: &str, name: &str) -> Result<()> {
        self.database.with(true, &mut |session| {
            session.execute(
                "DELETE FROM trials WHERE project = $1 AND study = $2",
                &[project.into(), name.into()],
            )?;
            let count = session.execute(
                "DELETE FROM studies WHERE project = $1 AND name = $2",
                &[project.into(), name.into()],
            )?;
            changed(count, name)
        })
    }

    fn insert_trials(
        &self,
        project: &str,
        study: &str,
        trials: &[(i64, StudyTrial)],
    ) -> Result<()> {
        let bodies = trials
            .iter()
            .map(|(id, trial)| Ok((*id, encode(trial)?)))
            .collect::<Result<Vec<_>>>()?;
        self.database.with(true, &mut |session| {
            for (id, body) in &bodies {
                insert(
                    session,
                    "INSERT INTO trials (project, study, id, body) VALUES ($1, $2, $3, $4)",
                    &[project.into(), study.into(), (*id).into(), body.into()],
                    &format!("{study}/trials/{id}"),
                )?;
            }
            Ok(())
        })
    }

    fn update_trial(
        &self,
        project: &str,
        study: &str,
        id: i64,
        change: &mut (dyn FnMut(&mut StudyTrial) -> bool + Send),
    ) -> Result<Option<StudyTrial>> {
        self.change_document(
            (
                "SELECT body FROM trials WHERE project = $1 AND study = $2 AND id = $3",
                "UPDATE trials SET body = $4 WHERE project = $1 AND study = $2 AND id = $3",
            ),
            &[project.into(), study.into(), id.into()],
            (&format!("{study}/trials/{id}"), |_| Vec::new()),
            change,
        )
    }

    fn list_trials(&self, project: &str, study: &str) -> Result<Vec<(i64, StudyTrial)>> {
        self.rows(
            "SELECT id, body FROM trials WHERE project = $1 AND study = $2 ORDER BY id",
            &[project.into(), study.into()],
        )?
        .iter()
        .map(|row| {
            let id = int(row, 0, study)?;
            let key = format!("{study}/trials/{id}");
            Ok((id, decode(&key, text(row, 1, &key)?)?))
        })
        .collect()
    }

    fn delete_trial(&self, project: &str, study: &str, id: i64) -> Result<()> {
        self.change(
            "DELETE FROM trials WHERE project = $1 AND study = $2 AND id = $3",
            &[project.into(), study.into(), id.into()],
            &format!("{study}/trials/{id}"),
        )
    }

    fn put_location_operation(&self, project: &str, operation: &StudyOperation) -> Result<()> {
        self.execute(
            "INSERT INTO location_operations (project, name, body) VALUES ($1, $2, $3)
             ON CONFLICT (project, name) DO UPDATE SET body = excluded.body",
            &[
                project.into(),
                (&operation.name).into(),
                (&encode(operation)?).into(),
            ],
        )?;
        Ok(())
    }

    fn get_location_operation(&self, project: &str, name: &str) -> Result<Option<StudyOperation>> {
        self.one(
            "SELECT body FROM location_operations WHERE project = $1 AND name = $2",
            &[project.into(), name.into()],
            name,
        )
    }

    fn schema_version(&self) -> Result<i64> {
        self.database.schema_version()
    }

    fn backup(&self) -> Result<Vec<serde_json::Value>> {
        self.database
            .with(true, &mut |session| backup::rows(session))
    }

    fn restore(&self, rows: &[serde_json::Value]) -> Result<()> {
        self.database
            .with(true, &mut |session| backup::restore(session, rows))
    }

    fn append_audit(&self, project: &str, entry: &AuditEntry) -> Result<()> {
        self.execute(
            "INSERT INTO audit_log (project, body) VALUES ($1, $2)",
            &[project.into(), (&encode(entry)?).into()],
        )?;
        Ok(())
    }

    fn scan_audit(&self, project: Option<&str>, scan: &Scan<'_>) -> Result<Vec<AuditEntry>> {
        let key = "audit_log";
        let scope: &[&str] = match project {
            Some(_) => &["project"],
            None => &[],
        };
        let listing = Listing {
            numbered: true,
            newest_first: true,
            select: "r.k, r.body",
            ..Listing::of("audit_log", scope, "seq", "seq")
        };
        let query = listing.page(D::DIALECT, scan);
        let scope: Vec<Param<'_>> = project.into_iter().map(Param::from).collect();
        self.rows(&query.sql, &query.params(&scope))?
            .iter()
            .map(|row| {
                let mut entry: AuditEntry = decode(key, text(row, 1, key)?)?;
                entry.id = int(row, 0, key)?.to_string();
                Ok(entry)
            })
            .collect()
    }
}
