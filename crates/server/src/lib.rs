//! Kiln's HTTP server.
//!
//! # Layout (reading order)
//! - [`serve`] and [`open`] (this file): open the data directory and run the router on a bound
//!   listener until a shutdown future resolves (mini-redis' `server::run` shape, so tests bind
//!   `127.0.0.1:0` and the binary binds a real port).
//! - [`error`]: `ApiError` and the one exhaustive mapping from registry errors to HTTP statuses and
//!   ML Engine's two error bodies.
//! - [`extract`]: the JSON body and query extractors, whose errors name the field at fault.
//! - [`access`]: the access log and HTTP metrics of every request, the outermost layer.
//! - [`site`]: the same-site gate every request passes first: `Host`, `Origin`, JSON bodies only.
//! - [`auth`]: the gate of every `/v1` request: token, permission (one deny-by-default table of
//!   routes), audit log.
//! - [`route`]: what a route is, how a request finds its route, and the router built from the
//!   table.
//! - [`routes`]: the route table: each route's method, path, verb, API method, permission,
//!   resource, body and answer types, and handler, once.
//! - [`models`]: the handlers of models, versions, operations, predict and explain.
//! - [`jobs`]: the handlers of `projects.jobs` and the job log and metrics endpoints.
//! - [`studies`]: the handlers of `projects.locations.studies` and their trials (Vizier).
//! - [`iam`]: IAM policy methods, tokens, `whoami` and the audit log.
//! - [`inference`]: the Open Inference Protocol (KServe V2, Triton) over every version, JSON and
//!   binary tensors, on the same gate and batcher as `:predict`.
//! - [`metrics`]: `/v1/metrics` in Prometheus' text format: HTTP, serving and job counters.
//! - [`probes`]: `/healthz` and `/readyz`.
//! - [`openapi`]: the OpenAPI document of the route table, at `/v1/openapi.json`.
//! - [`console`]: the web console's static files (`console/`), served at `/`.
//! - [`tls`]: HTTPS: the certificate and key, and a listener that hands axum decrypted
//!   connections.
//!
//! **Architecture invariant:** this is the only crate that speaks HTTP. Handlers parse, call one
//! registry function and map its error; no rule of the API lives here. Every `/v1` route passes
//! [`auth::guard`] first, which finds the request's route in [`routes::ROUTES`].

pub mod access;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod iam;
pub mod inference;
pub mod jobs;
pub mod locations;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod probes;
pub mod route;
pub mod routes;
pub mod site;
pub mod studies;
pub mod tls;
pub mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::FromRef;
use kiln_artifacts::{ArtifactStore, PathPolicy};
use kiln_registry::{Access, BatchConfig, JobSettings, Jobs, Registry, Studies};
use kiln_scheduler::program::Runtime;
use kiln_scheduler::{
    Confinement, Executor, LocalExecutor, RayConfig, RayExecutor, Sandbox, SlurmConfig,
    SlurmExecutor,
};
use kiln_serve::python::{Confine, Frameworks};
use kiln_store::{SqliteStore, Store};
use tokio::net::TcpListener;

/// Name of the metadata database inside the data directory.
pub const DATABASE_FILE: &str = "kiln.db";
/// Name of the artifact root inside the data directory.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// The data directory's runtime environments for framework models (`--runtime-dir`'s default).
pub const RUNTIMES_DIR: &str = "runtimes";

/// The data directory's scratch space of framework worker processes.
pub const SERVING_SCRATCH_DIR: &str = "serving";

/// Errors from starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The metadata store cannot be opened.
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
    /// The artifact root cannot be opened.
    #[error(transparent)]
    Artifacts(#[from] kiln_artifacts::ArtifactError),
    /// Recovering unfinished work failed.
    #[error(transparent)]
    Registry(#[from] kiln_registry::RegistryError),
    /// The cluster engine cannot be used.
    #[error("executor: {0}")]
    Executor(#[from] kiln_scheduler::SchedulerError),
}

/// The services the routes call; handlers extract the one they need. One `Arc` around them all,
/// since axum clones the state for every request.
#[derive(Clone)]
pub struct Services(Arc<ServiceSet>);

impl std::ops::Deref for Services {
    type Target = ServiceSet;

    fn deref(&self) -> &ServiceSet {
        &self.0
    }
}

/// What [`Services`] holds.
pub struct ServiceSet {
    /// Models, versions, operations, predict.
    pub registry: Arc<Registry>,
    /// Training jobs.
    pub jobs: Arc<Jobs>,
    /// Tokens, policies, audit log.
    pub access: Arc<Access>,
    /// Vizier-style studies over the tuner.
    pub studies: Arc<Studies>,
    /// Names the server answers to besides its addresses ([`site`]).
    pub allowed_hosts: Vec<String>,
    /// HTTP requests by route, for `/v1/metrics`.
    pub http_metrics: Arc<metrics::HttpMetrics>,
    /// The token that reads `/v1/metrics` and nothing else, if one was given.
    pub metrics_token: Option<String>,
    /// Where the access log goes, if anywhere.
    pub access_log: Option<access::AccessLog>,
}

impl FromRef<Services> for Arc<Studies> {
    fn from_ref(services: &Services) -> Self {
        Arc::clone(&services.studies)
    }
}

impl FromRef<Services> for Arc<Access> {
    fn from_ref(services: &Services) -> Self {
        Arc::clone(&services.access)
    }
}

impl FromRef<Services> for Arc<Registry> {
    fn from_ref(services: &Services) -> Self {
        Arc::clone(&services.registry)
    }
}

impl FromRef<Services> for Arc<Jobs> {
    fn from_ref(services: &Services) -> Self {
        Arc::clone(&services.jobs)
    }
}

/// Where the server keeps its data and what job replicas run with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The metadata database (`--database`): a `postgres://` URL or a SQLite file; `None` is the
    /// data directory's SQLite file.
    pub database: Option<String>,
    /// The `kiln` binary (built-in algorithm replicas) and the Python interpreter.
    pub runtime: Runtime,
    /// ML units that may run at once (default: `kiln_registry::queue::default_quota` with local
    /// processes, no limit on a cluster).
    pub quota_ml_units: Option<f64>,
    /// Whether requests need tokens (`false`: `--insecure-no-auth`).
    pub auth: bool,
    /// Where projects may read and write besides their workspace (`{project}` is replaced).
    pub allowed_paths: Vec<String>,
    /// How online predictions are batched.
    pub batching: BatchConfig,
    /// Idle time after which versions with `autoScaling.minNodes: 0` are unloaded.
    pub scale_to_zero_after: std::time::Duration,
    /// Names the server answers to besides the addresses it listens on (`--allow-host`).
    pub allowed_hosts: Vec<String>,
    /// Whether commands and Python packages may run unconfined where the kernel cannot sandbox
    /// them, or the sandbox is off (`--allow-unconfined-code`).
    pub allow_unconfined_code: bool,
    /// Where the managed artifacts (deployed versions' files) live when not in the data
    /// directory: a bucket prefix (`--artifact-root`), copied into the data directory where
    /// served.
    pub artifact_root: Option<String>,
    /// Variables every job process gets (`--job-env`), with their values.
    pub job_env: Vec<(String, String)>,
    /// Whether job processes are confined where the kernel can (`--sandbox auto`), or never
    /// (`--sandbox off`).
    pub sandbox: bool,
    /// Where job replicas run.
    pub executor: ExecutorConfig,
    /// Where job logs and working directories live when not in the data directory: a directory
    /// every node of the cluster sees.
    pub cluster_shared_dir: Option<PathBuf>,
    /// Where the runtime versions' Python environments are built (default: the data directory's
    /// `runtimes/`).
    pub runtime_dir: Option<PathBuf>,
    /// A bearer token that reads `/v1/metrics` and nothing else (`--metrics-token-file`), for
    /// scrapers.
    pub metrics_token: Option<String>,
    /// Where each request's access line goes (`None`: no access log).
    pub access_log: Option<access::AccessLog>,
    /// The URL job processes reach this server at (`--advertise-url`, else [`local_url`]); `None`:
    /// tuning trials report through files only.
    pub advertise_url: Option<String>,
}

/// The URL of a server listening on `address` as a process on the same machine reaches it: a
/// loopback address when it listens on every address.
pub fn local_url(address: std::net::SocketAddr, https: bool) -> String {
    let ip = match address.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let scheme = if https { "https" } else { "http" };
    format!(
        "{scheme}://{}",
        std::net::SocketAddr::new(ip, address.port())
    )
}

/// Where job replicas run (`--executor`).
#[derive(Debug, Clone)]
pub enum ExecutorConfig {
    /// Local processes (the default).
    Local,
    /// A Slurm cluster, through slurmrestd.
    Slurm(SlurmConfig),
    /// A Ray cluster, through the Ray Jobs API.
    Ray(RayConfig),
}

/// Opens the data directory (SQLite metadata, artifact files, job logs) and ends the work a
/// previous server left unfinished.
pub async fn open(options: &Options) -> Result<Services, StartError> {
    let data_dir = &options.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let store = open_store(data_dir, options.database.as_deref())?;
    let local_artifacts = data_dir.join(ARTIFACTS_DIR);
    let (artifacts, paths) = match &options.artifact_root {
        Some(root) => (
            ArtifactStore::open_at(root, &local_artifacts).await?,
            PathPolicy::new(data_dir, options.allowed_paths.clone()).managing(root),
        ),
        None => (
            ArtifactStore::open(&local_artifacts)?,
            PathPolicy::new(data_dir, options.allowed_paths.clone()),
        ),
    };
    let sandbox = match options.sandbox {
        true => Sandbox::detect(&[&options.runtime.kiln, &options.runtime.python]),
        false => Sandbox::off(),
    };
    let frameworks = Frameworks {
        environments: options
            .runtime_dir
            .clone()
            .unwrap_or_else(|| data_dir.join(RUNTIMES_DIR)),
        scratch: data_dir.join(SERVING_SCRATCH_DIR),
        confine: Some(confine_workers(
            sandbox.clone(),
            options.allow_unconfined_code,
        )),
    };
    let access = Access::new(Arc::clone(&store), options.auth);
    let registry = Registry::new(
        Arc::clone(&store),
        Arc::clone(&access),
        artifacts,
        paths.clone(),
        options.batching,
        Some(frameworks),
    );
    registry.start_idle_unloading(options.scale_to_zero_after);
    let settings = JobSettings {
        shared_dir: options
            .cluster_shared_dir
            .clone()
            .unwrap_or_else(|| data_dir.clone()),
        runtime: options.runtime.clone(),
        stop_grace: std::time::Duration::from_secs(5),
        // A cluster engine queues what its nodes cannot hold yet; only this machine needs a limit.
        quota: options
            .quota_ml_units
            .unwrap_or_else(|| match options.executor {
                ExecutorConfig::Local => kiln_registry::queue::default_quota(),
                ExecutorConfig::Slurm(_) | ExecutorConfig::Ray(_) => f64::INFINITY,
            }),
        paths,
        sandbox,
        allow_unconfined: options.allow_unconfined_code,
        job_env: options.job_env.clone(),
        endpoint: options.advertise_url.clone(),
    };
    let executor: Arc<dyn Executor> = match &options.executor {
        ExecutorConfig::Local => Arc::new(LocalExecutor),
        ExecutorConfig::Slurm(config) => Arc::new(SlurmExecutor::connect(config.clone()).await?),
        ExecutorConfig::Ray(config) => Arc::new(RayExecutor::connect(config.clone()).await?),
    };
    let jobs = Jobs::new(
        Arc::clone(&store),
        Arc::clone(&registry),
        executor,
        settings,
    );
    // The lease first, then what servers that stopped left.
    let taken = kiln_registry::owners::round(&registry, &jobs)?;
    if taken.operations > 0 {
        tracing::warn!(
            closed = taken.operations,
            "closed operations servers that stopped left unfinished"
        );
    }
    if taken.failed_jobs > 0 {
        tracing::warn!(
            failed = taken.failed_jobs,
            "failed the jobs servers that stopped left and that could not be taken over"
        );
    }
    kiln_registry::owners::keep(Arc::clone(&registry), Arc::clone(&jobs));
    let studies = Arc::new(Studies::new(Arc::clone(&store), Arc::clone(&access)));
    Ok(Services(Arc::new(ServiceSet {
        registry,
        jobs,
        access,
        studies,
        allowed_hosts: options.allowed_hosts.clone(),
        http_metrics: Arc::default(),
        metrics_token: options.metrics_token.clone(),
        access_log: options.access_log.clone(),
    })))
}

/// Confines framework workers as job processes are: loading a pickle runs code its author chose.
/// Where the sandbox is off they run only if the administrator allowed unconfined code.
fn confine_workers(sandbox: Sandbox, allow_unconfined: bool) -> Confine {
    Arc::new(move |command, reach| {
        if !sandbox.is_on() && !allow_unconfined {
            return Err(
                "this server does not confine code it runs (its kernel has no Landlock, \
                        or it runs with --sandbox off), and loading a TensorFlow, scikit-learn or \
                        XGBoost model runs code the model's author chose; the administrator may \
                        allow that with kiln server --allow-unconfined-code"
                    .into(),
            );
        }
        let confinement = Confinement {
            read: reach.read.clone(),
            write: reach.write.clone(),
        };
        sandbox
            .prepare(&confinement)
            .map_err(|error| error.to_string())?
            .install_std(command);
        Ok(())
    })
}

/// Opens the metadata database: `database` when given, else the data directory's SQLite file.
pub fn open_store(
    data_dir: &std::path::Path,
    database: Option<&str>,
) -> Result<Arc<dyn Store>, StartError> {
    Ok(match database {
        Some(database) => kiln_store::open(database)?,
        None => Arc::new(SqliteStore::open(&data_dir.join(DATABASE_FILE))?),
    })
}

/// Makes an administrator token in the data directory's store, without a running server: the way
/// back in for whoever can read the data directory (the account the server runs as).
pub fn issue_admin_token(
    data_dir: &std::path::Path,
    database: Option<&str>,
    service_account: &str,
) -> Result<kiln_api::Token, StartError> {
    let store = open_store(data_dir, database)?;
    Ok(Access::new(store, true).create_token(kiln_api::Token {
        service_account: service_account.to_string(),
        description: "made by kiln auth bootstrap".into(),
        admin: true,
        ..kiln_api::Token::default()
    })?)
}

/// Serves the API on `listener` (over HTTPS with `tls`) until `shutdown` resolves, then finishes
/// in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<&tls::Tls>,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let site = site::Site::new(
        listener.local_addr()?,
        tls.is_some(),
        &services.allowed_hosts,
    );
    let registry = Arc::clone(&services.registry);
    let access = access::AccessLayer::new(
        Arc::clone(&services.http_metrics),
        services.access_log.clone(),
    );
    let router = route::router(services)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(site),
            site::guard,
        ))
        .layer(access);
    match tls {
        Some(tls) => {
            axum::serve(tls.listen(listener)?, router)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    if let Err(error) = registry.leave() {
        tracing::warn!(%error, "could not end this server's lease; others take over its jobs when it runs out");
    }
    Ok(())
}
