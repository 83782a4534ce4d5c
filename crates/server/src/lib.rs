//! Kiln's HTTP server.
//!
//! # Layout (reading order)
//! - [`serve`] and [`open`] (this file): open the data directory and run the router on a bound
//!   listener until a shutdown future resolves (mini-redis' `server::run` shape, so tests bind
//!   `127.0.0.1:0` and the binary binds a real port).
//! - [`error`]: `ApiError` and the one exhaustive mapping from registry errors to HTTP statuses and
//!   ML Engine's two error bodies.
//! - [`extract`]: the JSON body and query extractors, whose errors name the field at fault.
//! - [`routes`]: the route table and the thin handlers, one per API method.
//!
//! **Architecture invariant:** this is the only crate that speaks HTTP. Handlers parse, call one
//! registry function and map its error; no rule of the API lives here.

pub mod error;
pub mod extract;
pub mod routes;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_artifacts::ArtifactStore;
use kiln_registry::Registry;
use kiln_store::SqliteStore;
use tokio::net::TcpListener;

/// Name of the metadata database inside the data directory.
pub const DATABASE_FILE: &str = "kiln.db";
/// Name of the artifact root inside the data directory.
pub const ARTIFACTS_DIR: &str = "artifacts";

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
}

/// Opens the data directory (SQLite metadata, artifact files) and recovers unfinished operations.
pub async fn open(data_dir: &Path) -> Result<Arc<Registry>, StartError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let store = SqliteStore::open(&data_dir.join(DATABASE_FILE))?;
    let artifacts = ArtifactStore::open(&data_dir.join(ARTIFACTS_DIR))?;
    let registry = Registry::new(Arc::new(store), artifacts);
    let recovered = registry.recover().await?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "closed operations a previous server left unfinished"
        );
    }
    Ok(registry)
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, routes::router(registry))
        .with_graceful_shutdown(shutdown)
        .await
}
