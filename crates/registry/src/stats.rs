//! What the loaded versions are doing: their batchers' counters, read for the server's metrics.

use std::sync::atomic::Ordering::Relaxed;

use kiln_api::JobState;
use kiln_serve::histogram::Snapshot;

use crate::{Registry, RegistryError};

/// One loaded version's serving counters since its model was loaded.
#[derive(Debug, Clone)]
pub struct VersionStats {
    /// The version's full name, `projects/p/models/m/versions/v`.
    pub version: String,
    /// What runs its model (`native`, `ONNX Runtime 1.23`, ...).
    pub engine: String,
    /// Requests the model answered or failed.
    pub requests: u64,
    /// Instances predicted.
    pub instances: u64,
    /// Model calls.
    pub batches: u64,
    /// Requests refused because the queue was full.
    pub rejected: u64,
    /// Requests waiting now.
    pub queued: usize,
    /// Model workers awake now.
    pub awake: usize,
    /// Time from a request's arrival to its answer.
    pub latency: Snapshot,
}

impl Registry {
    /// The counters of every loaded version, by name.
    pub fn serving_stats(&self) -> Vec<VersionStats> {
        let servers = self
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut stats: Vec<VersionStats> = servers
            .iter()
            .map(|(name, batcher)| {
                let counters = batcher.stats();
                VersionStats {
                    version: name.clone(),
                    engine: batcher.runtime().engine_description(),
                    requests: counters.requests.load(Relaxed),
                    instances: counters.instances.load(Relaxed),
                    batches: counters.batches.load(Relaxed),
                    rejected: counters.rejected.load(Relaxed),
                    queued: batcher.queued(),
                    awake: batcher.awake(),
                    latency: counters.latency.snapshot(),
                }
            })
            .collect();
        stats.sort_by(|a, b| a.version.cmp(&b.version));
        stats
    }

    /// Jobs of every project that have not ended, by state: each of `QUEUED`, `PREPARING`,
    /// `RUNNING` and `CANCELLING`, with the ones that have none at zero.
    pub fn active_job_counts(&self) -> Result<Vec<(JobState, u64)>, RegistryError> {
        let mut counts: Vec<(JobState, u64)> = [
            JobState::Queued,
            JobState::Preparing,
            JobState::Running,
            JobState::Cancelling,
        ]
        .into_iter()
        .map(|state| (state, 0))
        .collect();
        for owned in self.store.active_jobs()? {
            if let Some((_, count)) = counts
                .iter_mut()
                .find(|(state, _)| *state == owned.value.state)
            {
                *count += 1;
            }
        }
        Ok(counts)
    }

    /// Whether the metadata store answers: the server's readiness.
    pub fn check_store(&self) -> Result<(), RegistryError> {
        self.store.schema_version()?;
        Ok(())
    }

    /// How many versions have their model loaded now.
    pub fn loaded_versions(&self) -> usize {
        self.servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}
