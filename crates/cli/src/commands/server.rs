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
}

/// `~/.kiln`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".kiln")
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let registry = kiln_server::open(&data_dir).await?;
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        let address = listener.local_addr()?;
        // One parseable line on stdout, so scripts and tests that bind port 0 learn the port.
        println!(
            "Kiln server listening on http://{address} (data in {})",
            data_dir.display()
        );
        kiln_server::serve(listener, registry, shutdown_signal())
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
