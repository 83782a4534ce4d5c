//! `kiln server`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

/// `kiln server` flags.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Where metadata (SQLite) and artifacts live; default `~/.kiln`.
    #[arg(long, env = "KILN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// ML units that may run at once; more jobs wait QUEUED (default: from the cores and memory).
    #[arg(long, env = "KILN_QUOTA_ML_UNITS")]
    pub quota_ml_units: Option<f64>,
}

/// `~/.kiln`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".kiln")
}

/// Server options for `data_dir`: job replicas run this very binary for built-in algorithms, and
/// `KILN_PYTHON` (default `python3`) for Python trainers.
pub fn options(
    data_dir: PathBuf,
    quota_ml_units: Option<f64>,
) -> anyhow::Result<kiln_server::Options> {
    let kiln = std::env::current_exe().context("locating the kiln binary")?;
    let python = std::env::var_os("KILN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    if quota_ml_units.is_some_and(|quota| quota.is_nan() || quota <= 0.0) {
        anyhow::bail!("--quota-ml-units must be a positive number");
    }
    Ok(kiln_server::Options {
        data_dir,
        runtime: kiln_scheduler::program::Runtime { kiln, python },
        quota_ml_units,
    })
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let services = kiln_server::open(&options(data_dir.clone(), args.quota_ml_units)?).await?;
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        let address = listener.local_addr()?;
        // One parseable line on stdout, so scripts and tests that bind port 0 learn the port.
        println!(
            "Kiln server listening on http://{address} (data in {})",
            data_dir.display()
        );
        kiln_server::serve(listener, services, shutdown_signal())
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
