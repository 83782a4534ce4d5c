//! The jobs this server watches, each with its stop signal and the task that watches it.
//!
//! A server that stalled past its lease may find, when it runs again, that another server took
//! some of its jobs over. It then lets those go ([`Watchers::let_go`]): their tasks are dropped
//! where they wait, which stops nothing (the replicas are the new owner's to watch), and their
//! units leave this server's queue.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::StopReason;

/// One watched job.
struct Watcher {
    stop: watch::Sender<Option<StopReason>>,
    task: Option<AbortHandle>,
    /// The ML units it takes from the queue.
    units: f64,
}

/// The jobs this server watches, by `project/jobId`. A std mutex: held only to look up, insert
/// or remove.
#[derive(Default)]
pub(crate) struct Watchers(Mutex<HashMap<String, Watcher>>);

impl Watchers {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Watcher>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts watching `key`, a job taking `units` from the queue; the receiver learns why the
    /// job is to stop.
    pub(crate) fn insert(&self, key: &str, units: f64) -> watch::Receiver<Option<StopReason>> {
        let (stop, stopped) = watch::channel(None);
        let watcher = Watcher {
            stop,
            task: None,
            units,
        };
        self.map().insert(key.to_string(), watcher);
        stopped
    }

    /// Spawns the task that watches `key` (which removes it when done) and records it, unless it
    /// has finished already.
    pub(crate) fn spawn(&self, key: &str, task: impl Future<Output = ()> + Send + 'static) {
        let task = tokio::spawn(task).abort_handle();
        if let Some(watcher) = self.map().get_mut(key) {
            watcher.task = Some(task);
        }
    }

    /// Stops watching `key`: its task is done.
    pub(crate) fn remove(&self, key: &str) {
        self.map().remove(key);
    }

    /// Signals the job `key` to stop, unless it was already.
    pub(crate) fn stop(&self, key: &str, reason: StopReason) {
        if let Some(watcher) = self.map().get(key)
            && watcher.stop.borrow().is_none()
        {
            let _ = watcher.stop.send(Some(reason));
        }
    }

    /// Drops the task watching `key` where it waits, leaving the job's replicas running; the
    /// units the job took from the queue, if it was watched.
    pub(crate) fn let_go(&self, key: &str) -> Option<f64> {
        let watcher = self.map().remove(key)?;
        if let Some(task) = watcher.task {
            task.abort();
        }
        Some(watcher.units)
    }
}
