//! The model pool: each serving version's model, loaded on first use behind its batcher, and
//! unloaded when its version is deleted or, when it may scale to zero, idle.

use std::sync::Arc;
use std::time::Duration;

use kiln_api::model::Version;
use kiln_serve::LoadOptions;
use kiln_serve::batcher::{BatchConfig, Batcher};
use serde_json::Value;

use super::Registry;
use crate::RegistryError;

/// `autoScaling.minNodes` of a version, when it sets one.
fn min_nodes(version: &Version) -> Option<u64> {
    int64(version.auto_scaling.as_ref()?.get("minNodes")?)
}

/// A non-negative int64 field of an untyped part of a version: a string, as the API writes
/// int64s, or a number.
pub(super) fn int64(value: &Value) -> Option<u64> {
    match value {
        Value::String(text) => text.trim().parse().ok(),
        other => other.as_u64(),
    }
}

impl Registry {
    /// Unloads, every couple of seconds, the models of versions that are gone (deleted through
    /// this server or another on the same database) and of versions that may scale to zero
    /// (`autoScaling.minNodes: 0`) once no request has come for `after`; the next request loads
    /// the model again. Other versions stay warm, also while the store cannot be read.
    pub fn start_idle_unloading(self: &Arc<Self>, after: Duration) {
        let registry = Arc::downgrade(self);
        tokio::spawn(async move {
            let period = (after / 4).clamp(Duration::from_millis(100), Duration::from_secs(2));
            loop {
                tokio::time::sleep(period).await;
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                let loaded: Vec<(String, bool)> = registry
                    .servers
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .iter()
                    .map(|(name, server)| {
                        let idle = server.idle() >= after && server.queued() == 0;
                        (name.clone(), idle)
                    })
                    .collect();
                let reader = Arc::clone(&registry);
                let Ok(unload) = tokio::task::spawn_blocking(move || {
                    loaded
                        .into_iter()
                        .filter_map(|(name, idle)| match reader.version_by_name(&name) {
                            Ok(None) => Some((name, "it was deleted")),
                            Ok(Some(version)) if idle && min_nodes(&version) == Some(0) => {
                                Some((name, "it is idle (autoScaling.minNodes 0)"))
                            }
                            Ok(Some(_)) | Err(_) => None,
                        })
                        .collect::<Vec<_>>()
                })
                .await
                else {
                    continue;
                };
                for (name, why) in unload {
                    tracing::info!(version = %name, "unloading a version: {why}");
                    registry
                        .servers
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .remove(&name);
                    registry.routes.invalidate();
                }
            }
        });
    }

    /// A version by its full name, if it exists.
    fn version_by_name(&self, name: &str) -> Result<Option<Version>, RegistryError> {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            ["projects", project, "models", model, "versions", version] => {
                Ok(self.store.get_version(project, model, version)?)
            }
            _ => Ok(None),
        }
    }

    /// The batching configuration of `version`: the server's, with `manualScaling.nodes` workers
    /// when the version sets it.
    pub(super) fn batch_config(&self, version: &Version) -> BatchConfig {
        let nodes = version
            .manual_scaling
            .as_ref()
            .and_then(|scaling| int64(scaling.get("nodes")?))
            .filter(|nodes| *nodes > 0);
        BatchConfig {
            workers: nodes.map_or(self.batching.workers, |nodes| nodes as usize),
            ..self.batching
        }
    }

    /// How a version's model is loaded: its runtime, and as many framework worker processes as
    /// its batcher has threads.
    pub(super) fn load_options(&self, version: &Version) -> LoadOptions {
        LoadOptions {
            runtime_version: version.runtime_version.clone(),
            python_version: version.python_version.clone(),
            engine: version.engine,
            processes: self.batch_config(version).workers,
            frameworks: self.frameworks.clone(),
        }
    }

    /// The batcher of a READY version, loading the model from its files after a restart.
    pub(super) async fn server(&self, version: &Version) -> Result<Arc<Batcher>, RegistryError> {
        if let Some(server) = self
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&version.name)
        {
            return Ok(Arc::clone(server));
        }
        let dir = self
            .artifacts
            .local(&version.name, &version.create_time)
            .await
            .map_err(|error| RegistryError::Prediction(format!("Failed to load model: {error}")))?;
        let (_, runtime) = self
            .load_model(dir, version)
            .await
            .map_err(|error| RegistryError::Prediction(format!("Failed to load model: {error}")))?;
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Two requests may have loaded it at once; the first one in is kept.
        if let Some(server) = servers.get(&version.name) {
            return Ok(Arc::clone(server));
        }
        let server = Batcher::start(runtime, self.batch_config(version))
            .map_err(|error| RegistryError::Prediction(format!("Failed to load model: {error}")))?;
        let server = Arc::new(server);
        servers.insert(version.name.clone(), Arc::clone(&server));
        Ok(server)
    }
}
