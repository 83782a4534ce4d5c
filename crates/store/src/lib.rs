//! Kiln's metadata store.
//!
//! # Layout (reading order)
//! - [`Store`] (this file): the trait every metadata backend implements. It stores whole API
//!   resources keyed by project and name, and offers the few multi-row changes that must be atomic.
//!   [`open`] picks the backend a `--database` value names.
//! - [`sql`]: the one implementation of [`Store`], in SQL that both databases run.
//! - [`scan`]: the SQL of a list page, sorted by an [`order`] and paged by key.
//! - [`session`]: what that SQL needs of a database (statements, transactions).
//! - [`sqlite`]: the embedded default, a SQLite file.
//! - [`postgres`]: PostgreSQL, for servers that share their metadata.
//! - [`migrations`]: the schema, as refinery migrations per dialect.
//! - [`backup`]: every row of every table as JSON lines, restorable into either database.
//!
//! **Architecture invariant:** the store validates nothing about the API; it persists what the
//! registry decided, durably (a write that returned is committed), and keeps the rules of the
//! relational schema (primary keys) so concurrent creates cannot both win, on one server or many.

pub mod backup;
pub mod migrations;
pub mod order;
pub mod postgres;
pub mod scan;
pub mod session;
pub mod sql;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use kiln_api::study::{Study, StudyOperation, Trial as StudyTrial};
use kiln_api::{AuditEntry, Job, Model, Operation, Policy, Token, Version};

pub use order::{Order, SortKey};
pub use postgres::PostgresStore;
pub use scan::Scan;
pub use sqlite::SqliteStore;

/// Errors from a metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A resource with this key exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// No resource has this key.
    #[error("{0} not found")]
    NotFound(String),
    /// A conditional write found the record changed (a stale etag).
    #[error("{0} was changed concurrently")]
    Conflict(String),
    /// The database cannot be reached now; nothing was written, and a retry may succeed.
    #[error("the metadata database is unavailable: {0}")]
    Unavailable(String),
    /// A transaction kept losing races with concurrent ones and was given up.
    #[error("the metadata database is busy with concurrent changes: {0}")]
    Contended(String),
    /// The database's schema was made by a newer Kiln.
    #[error(
        "the metadata database is at schema version {database}, newer than this Kiln's \
         {binary}: run the Kiln that wrote it, or a newer one"
    )]
    NewerSchema {
        /// The newest migration the database has applied.
        database: i64,
        /// The newest migration this build knows.
        binary: i64,
    },
    /// The database failed.
    #[error("metadata database: {0}")]
    Database(String),
    /// A stored document does not parse (a bug or a hand-edited database).
    #[error("corrupt metadata record {key}: {message}")]
    Corrupt {
        /// Key of the record.
        key: String,
        /// The parse error.
        message: String,
    },
}

/// A condition on the JSON text a resource is stored as, which the database can test while it
/// scans: every group of `all_of` has a member whose strings all occur in the text. An empty
/// condition holds for every resource.
///
/// A list narrows its scan with it before applying its exact filter to what the scan returns, so
/// the condition only has to hold for every resource the filter would keep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contains {
    /// The groups, all of which must hold.
    pub all_of: Vec<Vec<Vec<String>>>,
}

/// An unfinished job or operation, with the server that watches it (`""`: none yet).
#[derive(Debug, Clone)]
pub struct Owned<T> {
    /// Its project.
    pub project: String,
    /// The job's or operation's id.
    pub id: String,
    /// The id of the server that owns it.
    pub owner: String,
    /// The job or operation.
    pub value: T,
}

/// Opens the metadata database `database` names: a `postgres://` or `postgresql://` URL, or the
/// path of a SQLite file (`sqlite://` optional).
pub fn open(database: &str) -> Result<Arc<dyn Store>> {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(database)?));
    }
    let path = database.strip_prefix("sqlite://").unwrap_or(database);
    Ok(Arc::new(SqliteStore::open(Path::new(path))?))
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A metadata backend. Names are short names (`census`, `v1`); resources carry their full names.
///
/// Methods are synchronous and quick; async callers run them on a blocking thread pool.
pub trait Store: Send + Sync + 'static {
    /// Inserts a model with its first IAM policy (its creator's, replacing any a deleted
    /// namesake left), in one transaction; fails with `AlreadyExists` when the name is taken.
    fn create_model(&self, project: &str, name: &str, model: &Model, policy: &Policy)
    -> Result<()>;
    /// A model, if present, with its default version (`defaultVersion`) if it has one.
    fn get_model(&self, project: &str, name: &str) -> Result<Option<Model>>;
    /// A page of a project's models (their own order: by name), each with its default version
    /// if it has one.
    fn scan_models(&self, project: &str, scan: &Scan<'_>) -> Result<Vec<Model>>;
    /// Changes a model in one transaction: `change` is given the stored model and says whether
    /// to write it (it may be called again when a concurrent change wins a race). The model as
    /// written, `None` when `change` declined; `NotFound` when absent.
    fn update_model_with(
        &self,
        project: &str,
        name: &str,
        change: &mut (dyn FnMut(&mut Model) -> bool + Send),
    ) -> Result<Option<Model>>;
    /// Deletes a model; fails with `NotFound` when absent.
    fn delete_model(&self, project: &str, name: &str) -> Result<()>;

    /// Inserts a version; when `make_default` or the model has no version yet, it becomes the
    /// default atomically (its `isDefault` is set before it is stored).
    fn create_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
        version: &Version,
    ) -> Result<Version>;
    /// The default version of a model, if it has one.
    fn default_version(&self, project: &str, model: &str) -> Result<Option<Version>>;
    /// A version, if present.
    fn get_version(&self, project: &str, model: &str, name: &str) -> Result<Option<Version>>;
    /// All versions of a model, by name.
    fn list_versions(&self, project: &str, model: &str) -> Result<Vec<Version>>;
    /// A page of a model's versions (their own order: by name).
    fn scan_versions(&self, project: &str, model: &str, scan: &Scan<'_>) -> Result<Vec<Version>>;
    /// Changes a version in one transaction, as [`Store::update_model_with`] a model. Whether
    /// it is its model's default is not `change`'s to decide: the stored flag is kept.
    fn update_version_with(
        &self,
        project: &str,
        model: &str,
        name: &str,
        change: &mut (dyn FnMut(&mut Version) -> bool + Send),
    ) -> Result<Option<Version>>;
    /// Deletes a version in one transaction if `allow`, given it and how many versions its model
    /// has, says so. The deleted version, `None` when refused; `NotFound` when absent.
    fn delete_version_with(
        &self,
        project: &str,
        model: &str,
        name: &str,
        allow: &mut (dyn FnMut(&mut (Version, usize)) -> bool + Send),
    ) -> Result<Option<Version>>;
    /// Makes `name` the model's only default version in one transaction, if `allow`, given the
    /// version as stored, says so. The new default, `None` when refused; `NotFound` when absent.
    fn set_default_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
        allow: &mut (dyn FnMut(&mut Version) -> bool + Send),
    ) -> Result<Option<Version>>;

    /// Inserts an operation that server `owner` carries out, with its first IAM policy, in one
    /// transaction.
    fn create_operation(
        &self,
        project: &str,
        id: &str,
        operation: &Operation,
        owner: &str,
        policy: &Policy,
    ) -> Result<()>;
    /// An operation, if present.
    fn get_operation(&self, project: &str, id: &str) -> Result<Option<Operation>>;
    /// A page of a project's operations (their own order: oldest first).
    fn scan_operations(&self, project: &str, scan: &Scan<'_>) -> Result<Vec<Operation>>;
    /// Replaces an operation.
    fn update_operation(&self, project: &str, id: &str, operation: &Operation) -> Result<()>;
    /// Operations of every project that are not done, oldest first, with their owners.
    fn unfinished_operations(&self) -> Result<Vec<Owned<Operation>>>;
    /// Makes server `to` the owner of an unfinished operation if `from` still is; whether it did.
    /// Of servers racing to take over one operation, exactly one does.
    fn claim_operation(&self, project: &str, id: &str, from: &str, to: &str) -> Result<bool>;

    /// Inserts a job that server `owner` watches, with its first IAM policy, in one transaction;
    /// fails with `AlreadyExists` when the id is taken in the project.
    fn create_job(&self, project: &str, job: &Job, owner: &str, policy: &Policy) -> Result<()>;
    /// A job, if present.
    fn get_job(&self, project: &str, job_id: &str) -> Result<Option<Job>>;
    /// A page of a project's jobs (their own order: oldest first).
    fn scan_jobs(&self, project: &str, scan: &Scan<'_>) -> Result<Vec<Job>>;
    /// Changes a job in one transaction, as [`Store::update_model_with`] a model.
    fn update_job_with(
        &self,
        project: &str,
        job_id: &str,
        change: &mut (dyn FnMut(&mut Job) -> bool + Send),
    ) -> Result<Option<Job>>;
    /// Jobs of every project that have not ended, oldest first, with their owners.
    fn active_jobs(&self) -> Result<Vec<Owned<Job>>>;
    /// Makes server `to` the owner of a job if `from` still is; whether it did. Of servers racing
    /// to take over one job, exactly one does.
    fn claim_job(&self, project: &str, job_id: &str, from: &str, to: &str) -> Result<bool>;
    /// Records the ML units a job needs, in millionths, for the quota the servers share; with
    /// `admitted`, as in use already (a running job), else as waiting for them.
    fn set_job_units(&self, project: &str, job_id: &str, units: i64, admitted: bool) -> Result<()>;
    /// Admits a job waiting for its units when no older unfinished job still waits and the
    /// units of the admitted unfinished jobs, its own included, stay within `quota`; whether it
    /// is admitted (also when it was already). Decided in one transaction, so two servers cannot
    /// both admit past the quota.
    fn admit_job(&self, project: &str, job_id: &str, quota: i64) -> Result<bool>;
    /// Records the executor's ids of a job's running replicas.
    fn set_job_processes(&self, project: &str, job_id: &str, processes: &[String]) -> Result<()>;
    /// The replica ids last recorded for a job.
    fn job_processes(&self, project: &str, job_id: &str) -> Result<Vec<String>>;

    /// Extends server `server`'s lease to `until` (milliseconds since the Unix epoch), starting one
    /// if it has none; leases that ended a day before are forgotten.
    fn renew_lease(&self, server: &str, until: i64) -> Result<()>;
    /// Ends server `server`'s lease (it is shutting down).
    fn end_lease(&self, server: &str) -> Result<()>;
    /// Every server's lease, as `(server, until)`.
    fn leases(&self) -> Result<Vec<(String, i64)>>;

    /// Inserts a token with the SHA-256 of its secret.
    fn create_token(&self, id: &str, hash: &str, token: &Token) -> Result<()>;
    /// A token and its secret's hash.
    fn get_token(&self, id: &str) -> Result<Option<(Token, String)>>;
    /// A page of the tokens (their own order: oldest first), keyed by id.
    fn scan_tokens(&self, scan: &Scan<'_>) -> Result<Vec<Token>>;
    /// Replaces a token's record (its hash stays); fails with `NotFound` when absent.
    fn update_token(&self, id: &str, token: &Token) -> Result<()>;

    /// The policy set on a resource, if any.
    fn get_policy(&self, resource: &str) -> Result<Option<Policy>>;
    /// Replaces a resource's policy (whose `etag` is already the new one). With `expected`, only if
    /// the stored policy's etag is that (`""`: no policy stored), else `Conflict`.
    fn set_policy(&self, resource: &str, policy: &Policy, expected: Option<&str>) -> Result<()>;

    /// Inserts a study; fails with `AlreadyExists` when its name is taken.
    fn create_study(&self, project: &str, study: &Study) -> Result<()>;
    /// A study by its full name, if present.
    fn get_study(&self, project: &str, name: &str) -> Result<Option<Study>>;
    /// All studies of a project, oldest first.
    fn list_studies(&self, project: &str) -> Result<Vec<Study>>;
    /// Replaces a study; fails with `NotFound` when absent.
    fn update_study(&self, project: &str, study: &Study) -> Result<()>;
    /// Deletes a study and its trials in one transaction.
    fn delete_study(&self, project: &str, name: &str) -> Result<()>;
    /// Inserts trials of a study by number, all in one transaction; `AlreadyExists` (and none
    /// inserted) when a number is taken, as when another server numbered trials at the same time.
    fn insert_trials(&self, project: &str, study: &str, trials: &[(i64, StudyTrial)])
    -> Result<()>;
    /// Changes trial `id` of a study in one transaction: `change` is given the stored trial and
    /// says whether to write it (it may be called again when a concurrent change wins a race).
    /// The trial as written, `None` when `change` declined; `NotFound` when absent.
    fn update_trial(
        &self,
        project: &str,
        study: &str,
        id: i64,
        change: &mut (dyn FnMut(&mut StudyTrial) -> bool + Send),
    ) -> Result<Option<StudyTrial>>;
    /// The trials of a study, by id.
    fn list_trials(&self, project: &str, study: &str) -> Result<Vec<(i64, StudyTrial)>>;
    /// Deletes trial `id` of a study.
    fn delete_trial(&self, project: &str, study: &str, id: i64) -> Result<()>;
    /// Stores an operation a study returned, by its full name.
    fn put_location_operation(&self, project: &str, operation: &StudyOperation) -> Result<()>;
    /// The operation a study returned under `name` in `project`.
    fn get_location_operation(&self, project: &str, name: &str) -> Result<Option<StudyOperation>>;

    /// How many schema migrations the database has applied.
    fn schema_version(&self) -> Result<i64>;
    /// Every row of every table, each a JSON object naming its `table`, in the order
    /// [`Store::restore`] inserts them; read in one transaction, so that they agree.
    fn backup(&self) -> Result<Vec<serde_json::Value>>;
    /// Inserts the rows of a backup into a database that holds none yet, in one transaction.
    fn restore(&self, rows: &[serde_json::Value]) -> Result<()>;

    /// Appends an entry to the audit log; `project` is empty for server-wide calls.
    fn append_audit(&self, project: &str, entry: &AuditEntry) -> Result<()>;
    /// A page of the audit log (its own order: newest first), of one project or of all; each
    /// entry carries its `id`, the decimal number a page token's `after` is.
    fn scan_audit(&self, project: Option<&str>, scan: &Scan<'_>) -> Result<Vec<AuditEntry>>;
}
