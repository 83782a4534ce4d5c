//! `kiln server`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kiln_serve::batcher::BatchConfig;

/// `kiln server` flags.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// A YAML file whose keys are these flags' names (`bind: 0.0.0.0:8443`, `allow-path: [/a,
    /// /b]`, `insecure-no-auth: false`); flags and environment variables win over it.
    #[arg(long, env = "KILN_SERVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where artifacts, job logs and (by default) the metadata database live; default `~/.kiln`.
    #[arg(long, env = "KILN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The metadata database: `postgres://user:password@host:port/database` to share it between
    /// servers, or the path of a SQLite file. Default: `kiln.db` in the data directory.
    #[arg(long, env = "KILN_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Address to listen on. Any address but loopback needs authentication, which is on unless
    /// --insecure-no-auth.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Serve HTTPS with this PEM certificate chain (the server's certificate first); needs
    /// --tls-key. Without it the server speaks plain HTTP, and tokens cross the network in clear.
    #[arg(long, env = "KILN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "KILN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// ML units that may run at once; more jobs wait QUEUED (default: from the cores and memory
    /// with local processes; no limit on a cluster, whose engine queues what it cannot place).
    #[arg(long, env = "KILN_QUOTA_ML_UNITS")]
    pub quota_ml_units: Option<f64>,
    /// Serve without tokens: every caller is an administrator. For local experiments; refused
    /// unless --bind is a loopback address.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// A directory (or gs:// / s3:// prefix) projects may read and write through deploymentUri,
    /// jobDir and packageUris, besides their workspace in the data directory; `{project}` stands
    /// for the project. Repeat or separate with commas. Without it, --insecure-no-auth allows
    /// the home and temporary directories.
    #[arg(long = "allow-path", env = "KILN_ALLOW_PATHS", value_delimiter = ',')]
    pub allow_paths: Vec<String>,
    /// Threads that serve HTTP (default: half the cores, at least one). Model calls run on
    /// --predict-workers threads of their own (one per core by default), so a thread per core
    /// for HTTP as well leaves threads waiting for a core when the server is saturated.
    #[arg(long, env = "KILN_HTTP_THREADS")]
    pub http_threads: Option<usize>,
    /// A host name the server answers to besides the addresses it listens on (a proxy's name, or
    /// this machine's for a non-loopback --bind). Requests naming any other Host, and cross-origin
    /// requests, are refused so that web pages cannot drive the server. Repeat or separate with
    /// commas.
    #[arg(long = "allow-host", env = "KILN_ALLOW_HOSTS", value_delimiter = ',')]
    pub allow_hosts: Vec<String>,
    /// Run containerCommand and Python packages even where they are not confined (no Landlock in
    /// the kernel, or --sandbox off): they then run with this server's privileges and can read its
    /// data directory.
    #[arg(long)]
    pub allow_unconfined_code: bool,
    /// Where deployed versions' files are kept: a bucket prefix (`s3://bucket/kiln`,
    /// `gs://bucket/kiln`) that servers sharing a --database share, each copying a version into
    /// its data directory when it first serves it. Default: the data directory's `artifacts/`.
    #[arg(long, env = "KILN_ARTIFACT_ROOT")]
    pub artifact_root: Option<String>,
    /// A variable every job process gets: `NAME` passes this server's value on, `NAME=VALUE`
    /// sets one. Job processes otherwise see none of the server's environment; pass the
    /// credentials of the buckets their jobDir and packages are in (AWS_ACCESS_KEY_ID,
    /// GOOGLE_APPLICATION_CREDENTIALS, ...). Repeat or separate with commas.
    #[arg(long = "job-env", env = "KILN_JOB_ENV", value_delimiter = ',')]
    pub job_env: Vec<String>,
    /// How the server writes its log, the access log included (one event per request, target
    /// `kiln::access`): `text` lines, or `json` lines for a log collector. RUST_LOG filters it
    /// (`info,kiln::access=off` drops the access log).
    #[arg(long, value_enum, env = "KILN_LOG_FORMAT", default_value = "text")]
    pub log_format: crate::logging::LogFormat,
    /// A file holding a bearer token that reads /v1/metrics and nothing else, for Prometheus'
    /// `authorization.credentials_file`. Administrators' tokens read the metrics too.
    #[arg(long, env = "KILN_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// Confine job processes to their job's directories and their project's allowed paths:
    /// `auto` where the kernel has Landlock, `off` never.
    #[arg(long, value_enum, default_value = "auto")]
    pub sandbox: SandboxMode,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub serving: ServingArgs,
}

/// Where job replicas run.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Where job replicas run: `local` processes on this machine, a `slurm` cluster through
    /// slurmrestd, or a `ray` cluster through the Ray Jobs API (`bash scripts/dev-cluster.sh slurm
    /// up` or `ray up` starts one for development).
    #[arg(long, value_enum, env = "KILN_EXECUTOR", default_value = "local")]
    pub executor: ExecutorKind,
    /// slurmrestd's URL, such as http://127.0.0.1:6820.
    #[arg(long, env = "KILN_SLURM_URL")]
    pub slurm_url: Option<String>,
    /// The Slurm user jobs are submitted as.
    #[arg(long, env = "KILN_SLURM_USER")]
    pub slurm_user: Option<String>,
    /// The user's JWT (`scontrol token username=USER`).
    #[arg(long, env = "KILN_SLURM_TOKEN", hide_env_values = true)]
    pub slurm_token: Option<String>,
    /// The partition jobs go to [default: Slurm's default partition].
    #[arg(long, env = "KILN_SLURM_PARTITION")]
    pub slurm_partition: Option<String>,
    /// The account jobs are charged to.
    #[arg(long, env = "KILN_SLURM_ACCOUNT")]
    pub slurm_account: Option<String>,
    /// The Ray dashboard's URL, such as http://127.0.0.1:8265.
    #[arg(long, env = "KILN_RAY_ADDRESS")]
    pub ray_address: Option<String>,
    /// The Python on Ray's head node that has the `ray` package (it runs Kiln's driver).
    #[arg(long, env = "KILN_RAY_PYTHON", default_value = "python3")]
    pub ray_python: String,
    /// A directory every node of the cluster sees at the same path (a shared file system), for
    /// job logs, working directories, packages and virtual environments [default: the data
    /// directory, which must then be shared]. The `kiln` binary and the Python interpreter must
    /// be at the same paths on every node too.
    #[arg(long, env = "KILN_CLUSTER_SHARED_DIR")]
    pub cluster_shared_dir: Option<PathBuf>,
    /// The URL job processes reach this server at: tuning trials get it as KILN_ENDPOINT, with a
    /// token of their own as KILN_TOKEN, to send their measurements to [default: the address this
    /// server listens on, a loopback one when it listens on every address]. Set it when replicas
    /// run on other nodes; its host is then a name the server answers to.
    #[arg(long, env = "KILN_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
}

/// `--executor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    /// Local processes.
    Local,
    /// A Slurm cluster.
    Slurm,
    /// A Ray cluster.
    Ray,
}

impl ClusterArgs {
    /// The executor these flags describe.
    pub fn executor(&self) -> anyhow::Result<kiln_server::ExecutorConfig> {
        Ok(match self.executor {
            ExecutorKind::Local => kiln_server::ExecutorConfig::Local,
            ExecutorKind::Slurm => {
                let (Some(url), Some(user), Some(token)) =
                    (&self.slurm_url, &self.slurm_user, &self.slurm_token)
                else {
                    bail!(
                        "--executor slurm needs --slurm-url, --slurm-user and --slurm-token \
                         (KILN_SLURM_URL, KILN_SLURM_USER, KILN_SLURM_TOKEN)"
                    );
                };
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("--slurm-url {url:?} must be an http:// or https:// URL");
                }
                kiln_server::ExecutorConfig::Slurm(kiln_scheduler::SlurmConfig {
                    url: url.clone(),
                    user: user.clone(),
                    token: token.clone(),
                    partition: self.slurm_partition.clone(),
                    account: self.slurm_account.clone(),
                })
            }
            ExecutorKind::Ray => {
                let Some(address) = &self.ray_address else {
                    bail!("--executor ray needs --ray-address (KILN_RAY_ADDRESS)");
                };
                if !(address.starts_with("http://") || address.starts_with("https://")) {
                    bail!("--ray-address {address:?} must be the dashboard's http:// URL");
                }
                kiln_server::ExecutorConfig::Ray(kiln_scheduler::RayConfig {
                    address: address.clone(),
                    python: self.ray_python.clone(),
                })
            }
        })
    }
}

/// The metrics token in `path`: its content without surrounding white space, at least 16
/// characters.
fn metrics_token(path: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("--metrics-token-file {}", path.display()))?
        .trim()
        .to_string();
    if token.len() < 16 {
        bail!(
            "--metrics-token-file {}: the token must be at least 16 characters \
             (openssl rand -hex 32 makes one)",
            path.display()
        );
    }
    Ok(token)
}

/// Whether job processes are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxMode {
    /// Where the kernel has Landlock.
    Auto,
    /// Never.
    Off,
}

/// How online predictions are batched (per version).
#[derive(Debug, clap::Args)]
pub struct ServingArgs {
    /// Most instances one model call serves; concurrent requests are batched up to it.
    #[arg(long, default_value_t = BatchConfig::default().max_batch_size)]
    pub max_batch_size: usize,
    /// Longest a batch is held for more requests once a worker is free, in milliseconds. At 0
    /// (Triton's and TF Serving's default) a batch is what queued while the workers were busy.
    #[arg(long, default_value_t = 0)]
    pub batch_timeout_ms: u64,
    /// Most requests waiting per version; more are answered 429 RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = BatchConfig::default().max_queued)]
    pub max_queued_requests: usize,
    /// Most bytes of instances waiting or being predicted per version; more are answered 429
    /// RESOURCE_EXHAUSTED (a request alone is always taken).
    #[arg(long, default_value_t = BatchConfig::default().max_queued_bytes)]
    pub max_queued_bytes: usize,
    /// Model calls running at once per version (default: one per core); a version's
    /// manualScaling.nodes overrides it.
    #[arg(long)]
    pub predict_workers: Option<usize>,
    /// Unload the model of a version with autoScaling.minNodes 0 after this many seconds without
    /// requests (it loads again on the next one).
    #[arg(long, default_value_t = 900)]
    pub scale_to_zero_after_seconds: u64,
    /// Where the runtime versions' Python environments (TensorFlow, scikit-learn, XGBoost) are
    /// built, once each, and kept [default: the data directory's `runtimes/`].
    #[arg(long, env = "KILN_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,
}

impl ServingArgs {
    /// The batching these flags describe.
    pub fn config(&self) -> anyhow::Result<BatchConfig> {
        if self.max_batch_size == 0
            || self.max_queued_requests == 0
            || self.max_queued_bytes == 0
            || self.predict_workers == Some(0)
        {
            bail!(
                "--max-batch-size, --max-queued-requests, --max-queued-bytes and --predict-workers \
                 must be positive"
            );
        }
        let defaults = BatchConfig::default();
        Ok(BatchConfig {
            max_batch_size: self.max_batch_size,
            max_wait: std::time::Duration::from_millis(self.batch_timeout_ms),
            max_queued: self.max_queued_requests,
            max_queued_bytes: self.max_queued_bytes,
            workers: self.predict_workers.unwrap_or(defaults.workers),
        })
    }
}

/// `~/.kiln`.
pub fn default_data_dir() -> PathBuf {
    home().join(".kiln")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Server options: job replicas run this very binary for built-in algorithms, and `KILN_PYTHON`
/// (default `python3`) for Python trainers.
pub fn options(
    data_dir: PathBuf,
    quota_ml_units: Option<f64>,
    auth: bool,
    allowed_paths: Vec<String>,
    batching: BatchConfig,
    scale_to_zero_after: std::time::Duration,
) -> anyhow::Result<kiln_server::Options> {
    let kiln = std::env::current_exe().context("locating the kiln binary")?;
    let python = std::env::var_os("KILN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    if quota_ml_units.is_some_and(|quota| quota.is_nan() || quota <= 0.0) {
        bail!("--quota-ml-units must be a positive number");
    }
    for root in &allowed_paths {
        if !(root.starts_with('/') || root.starts_with("gs://") || root.starts_with("s3://"))
            || root.split('/').any(|segment| segment == "..")
        {
            bail!(
                "--allow-path {root:?} must be an absolute path (or gs:// / s3:// prefix) without '..'"
            );
        }
    }
    Ok(kiln_server::Options {
        data_dir,
        database: None,
        runtime: kiln_scheduler::program::Runtime { kiln, python },
        quota_ml_units,
        auth,
        allowed_paths,
        batching,
        scale_to_zero_after,
        allowed_hosts: Vec::new(),
        allow_unconfined_code: false,
        job_env: Vec::new(),
        artifact_root: None,
        sandbox: true,
        executor: kiln_server::ExecutorConfig::Local,
        cluster_shared_dir: None,
        runtime_dir: None,
        metrics_token: None,
        access_log: None,
        advertise_url: None,
    })
}

/// The `--job-env` variables with their values: `NAME=VALUE` as given, `NAME` from this
/// server's environment (refused when it has none, so a typo does not pass silently).
fn job_env(given: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    given
        .iter()
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (name, value) = match entry.split_once('=') {
                Some((name, value)) => (name.trim(), value.to_string()),
                None => {
                    let name = entry.trim();
                    let value = std::env::var(name).map_err(|_| {
                        anyhow::anyhow!("--job-env {name}: this server's environment has no {name}")
                    })?;
                    (name, value)
                }
            };
            if name.is_empty() || name.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            {
                bail!("--job-env {entry:?}: a variable name is letters, digits and underscores");
            }
            Ok((name.to_string(), value))
        })
        .collect()
}

/// The host of an `--advertise-url`, refused unless it is an `http(s)://host[:port]` URL.
fn advertised_host(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url)
        .with_context(|| format!("--advertise-url {url:?} is not a URL"))?;
    match (parsed.scheme(), parsed.host_str(), parsed.path()) {
        ("http" | "https", Some(host), "/" | "") if parsed.query().is_none() => Ok(host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()),
        _ => bail!(
            "--advertise-url {url:?} must be http://host[:port] or https://host[:port], with no \
             path, such as https://kiln.example.com:8443"
        ),
    }
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    if args.insecure_no_auth && !args.bind.ip().is_loopback() {
        bail!(
            "--insecure-no-auth is accepted only on a loopback --bind (127.0.0.1 or [::1]), not {}: \
             anyone who could reach the port would be an administrator. Drop --insecure-no-auth \
             and use tokens (kiln auth tokens create).",
            args.bind
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(kiln_server::tls::Tls::load(cert, key)?),
        _ => None,
    };
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let mut allowed = args.allow_paths;
    if args.insecure_no_auth && allowed.is_empty() {
        allowed = vec![
            home().display().to_string(),
            std::env::temp_dir().display().to_string(),
        ];
    }
    let mut options = options(
        data_dir.clone(),
        args.quota_ml_units,
        !args.insecure_no_auth,
        allowed,
        args.serving.config()?,
        std::time::Duration::from_secs(args.serving.scale_to_zero_after_seconds.max(1)),
    )?;
    options.allowed_hosts = args.allow_hosts;
    options.database = args.database;
    options.allow_unconfined_code = args.allow_unconfined_code;
    options.job_env = job_env(&args.job_env)?;
    options.artifact_root = args.artifact_root;
    options.sandbox = args.sandbox == SandboxMode::Auto;
    options.executor = args.cluster.executor()?;
    options.runtime_dir = args.serving.runtime_dir.clone();
    options.access_log = Some(kiln_server::access::AccessLog {
        json: args.log_format == crate::logging::LogFormat::Json,
        sink: crate::logging::sink(),
    });
    options.metrics_token = args
        .metrics_token_file
        .as_deref()
        .map(metrics_token)
        .transpose()?;
    if let Some(shared) = &args.cluster.cluster_shared_dir {
        if !shared.is_absolute() {
            bail!(
                "--cluster-shared-dir {} must be an absolute path",
                shared.display()
            );
        }
        if let Some(root) = options.allowed_paths.iter().find(|root| {
            let root = Path::new(root.as_str());
            root.starts_with(shared) || shared.starts_with(root)
        }) {
            bail!(
                "--cluster-shared-dir {} and --allow-path {root} overlap: projects could reach \
                 other jobs' files",
                shared.display()
            );
        }
        options.cluster_shared_dir = Some(shared.clone());
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    match args.http_threads {
        Some(0) => bail!("--http-threads must be positive"),
        Some(threads) => runtime.worker_threads(threads),
        None => runtime.worker_threads(
            std::thread::available_parallelism().map_or(1, |cores| cores.get().div_ceil(2)),
        ),
    };
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if let Some(url) = &args.cluster.advertise_url {
        options.allowed_hosts.push(advertised_host(url)?);
    }
    runtime.block_on(async {
        // Bound first, so that job processes the opening server starts know its port.
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        let address = listener.local_addr()?;
        options.advertise_url = Some(match &args.cluster.advertise_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => kiln_server::local_url(address, tls.is_some()),
        });
        let services = kiln_server::open(&options).await?;
        let first_token = services.access.bootstrap()?;
        // One parseable line on stdout first, so scripts and tests that bind port 0 learn the port.
        println!(
            "Kiln server listening on {}://{address} (data in {})",
            if tls.is_some() { "https" } else { "http" },
            data_dir.display()
        );
        if let Some(token) = first_token {
            println!("Administrator token (shown once; `kiln auth login` saves it): {token}");
        }
        if tls.is_none() && !address.ip().is_loopback() {
            println!(
                "WARNING: plain HTTP on {address}, which other machines can reach: tokens, \
                 predictions and training data cross the network unencrypted, readable and \
                 alterable by anyone on the path. Serve HTTPS with --tls-cert and --tls-key, or \
                 put a TLS-terminating proxy in front and bind 127.0.0.1."
            );
        }
        if args.insecure_no_auth {
            println!(
                "WARNING: authentication is off (--insecure-no-auth): anyone who can reach \
                 {address} acts as an administrator"
            );
        }
        println!(
            "Job processes: {}",
            match (services.jobs.confines_jobs(), options.allow_unconfined_code) {
                (true, _) =>
                    "confined (Landlock: each job reaches only its directories and its project's)",
                (false, false) =>
                    "NOT confined (no Landlock in this kernel, or --sandbox off): containerCommand \
                     and Python packages are refused",
                (false, true) =>
                    "NOT confined (no Landlock in this kernel, or --sandbox off), and commands and \
                     packages run with the server's privileges (--allow-unconfined-code)",
            }
        );
        println!(
            "Job replicas run on: {}",
            match &options.executor {
                kiln_server::ExecutorConfig::Local => "local processes".to_string(),
                kiln_server::ExecutorConfig::Slurm(slurm) => format!(
                    "Slurm at {} (partition {})",
                    slurm.url,
                    slurm.partition.as_deref().unwrap_or("default")
                ),
                kiln_server::ExecutorConfig::Ray(ray) => format!("Ray at {}", ray.address),
            }
        );
        println!(
            "Projects may use: {}",
            match options.allowed_paths.is_empty() {
                true =>
                    "their workspace in the data directory only (--allow-path adds more)".into(),
                false => options.allowed_paths.join(", ") + " and their workspace",
            }
        );
        kiln_server::serve(listener, tls.as_ref(), services, shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("server stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
