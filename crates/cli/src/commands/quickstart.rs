//! `kiln quickstart`: Kiln's main job end to end on the embedded default.
//!
//! Trains the built-in Wide & Deep classifier on the census data shipped in `data/census`,
//! starts a server on a loopback port over a fresh data directory, deploys the export as model
//! `census` version `v1` through the REST API, sends the two JSON instances of
//! `data/census/test.json` to `:predict`, and prints the predictions and the eval accuracy.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use kiln_model::ModelKind;
use kiln_train::{Schema, TrainConfig};
use serde_json::json;

use crate::client::Context;
use crate::{instances, output};

/// `kiln quickstart` flags.
#[derive(Debug, clap::Args)]
pub struct QuickstartArgs {
    /// Working directory for the job output and the server's data (default: a new temporary one).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory with the census data (default: `data/census` of this repository).
    #[arg(long)]
    pub census_dir: Option<PathBuf>,
}

fn census_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let candidates = given.into_iter().chain([
        PathBuf::from("data/census"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/census"),
    ]);
    for candidate in candidates {
        if candidate.join("schema.yaml").is_file() {
            return Ok(candidate);
        }
    }
    bail!("census data not found: run from the repository root or pass --census-dir")
}

/// Runs the quickstart.
pub fn run(args: QuickstartArgs, context: &Context) -> anyhow::Result<()> {
    let census = census_dir(args.census_dir)?;
    let work = match args.data_dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("kiln-quickstart-{}", std::process::id())),
    };
    if work.join("server").exists() {
        bail!(
            "{} already holds a quickstart; pass another --data-dir",
            work.display()
        );
    }
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let work = std::fs::canonicalize(&work)?;

    println!(
        "== 1/4 training the built-in Wide & Deep classifier on census ({})",
        census.display()
    );
    let schema = Schema::from_file(&census.join("schema.yaml"))?;
    let mut config = TrainConfig::new(
        "wide_deep",
        ModelKind::WideDeep,
        schema,
        work.join("jobs/census"),
    );
    config.train_files = vec![census.join("adult.data.csv.gz")];
    config.eval_files = vec![census.join("adult.test.csv.gz")];
    config.log_every = 250;
    let outcome = kiln_train::train(&config, &mut |line| println!("  {line}"))?;

    println!(
        "== 2/4 starting a Kiln server (data in {})",
        work.join("server").display()
    );
    let server = EmbeddedServer::start(&work.join("server"), &work)?;
    let context = Context {
        endpoint: server.url.clone(),
        token: Some(server.token.clone()),
        ..context.clone()
    };
    let api = context.client();

    println!("== 3/4 deploying model census, version v1 ({})", server.url);
    api.post(
        "models",
        &json!({ "name": "census", "description": "Census income, built-in Wide & Deep" }),
    )?;
    let operation = api.post(
        "models/census/versions",
        &json!({ "name": "v1", "deploymentUri": format!("file://{}", outcome.export_dir.display()) }),
    )?;
    let version = api.wait(operation)?;
    println!(
        "  version {} is {} (framework {})",
        version["name"].as_str().unwrap_or_default(),
        version["state"],
        version["framework"]
    );

    let instances_file = census.join("test.json");
    println!(
        "== 4/4 predicting {} through POST /v1/projects/{}/models/census:predict",
        instances_file.display(),
        context.project
    );
    let body = instances::request(Some(&instances_file), None, None)?;
    let response = api.post("models/census:predict", &body)?;
    output::print_resource(Some(&output::Format::Json), &response);
    println!(
        "eval accuracy: {:.4} (AUC {:.4}) on {} census test rows; {} training steps at {:.0} examples/s",
        outcome.metrics.get("accuracy").copied().unwrap_or_default(),
        outcome.metrics.get("auc").copied().unwrap_or_default(),
        outcome.eval_rows,
        outcome.steps,
        outcome.examples_per_second
    );
    server.stop();
    Ok(())
}

/// A server on a loopback port, running on its own thread and runtime, with authentication on
/// (the quickstart uses the administrator token of the fresh data directory) and `work` as the one
/// location projects may use.
struct EmbeddedServer {
    url: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl EmbeddedServer {
    fn start(data_dir: &Path, work: &Path) -> anyhow::Result<Self> {
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let data_dir = data_dir.to_path_buf();
        let allowed = vec![work.display().to_string()];
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let options = super::server::options(
                    data_dir,
                    None,
                    true,
                    allowed,
                    kiln_serve::batcher::BatchConfig::default(),
                    std::time::Duration::from_secs(900),
                )?;
                let services = kiln_server::open(&options).await?;
                let token = services
                    .access
                    .bootstrap()?
                    .context("the quickstart's data directory already has tokens")?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let _ = address_tx.send((listener.local_addr()?, token));
                kiln_server::serve(listener, None, services, async {
                    let _ = stopped.await;
                })
                .await?;
                Ok(())
            })
        });
        let (address, token) = address_rx
            .recv()
            .context("the embedded server did not start")?;
        Ok(Self {
            url: format!("http://{address}"),
            token,
            stop,
            thread,
        })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
