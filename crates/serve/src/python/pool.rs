//! The framework workers of one model: `most` processes, started together at load (`Pool::fill`)
//! and replaced when a call finds one dead, each serving one call at a time.

use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};

use serde_json::Value;

use super::worker::{Batch, Worker};
use crate::ServeError;

/// Builds the command of a new worker.
pub(super) type Starter = Box<dyn Fn() -> Result<Command, ServeError> + Send + Sync>;

/// The workers of one model.
pub(super) struct Pool {
    start: Starter,
    state: Mutex<State>,
    freed: Condvar,
}

/// Workers not serving a call, and how many exist in all.
struct State {
    idle: Vec<Worker>,
    started: usize,
    most: usize,
}

impl Pool {
    /// A pool holding `first`, which may grow to `most` workers started by `start`.
    pub(super) fn new(start: Starter, first: Worker, most: usize) -> Self {
        Self {
            start,
            state: Mutex::new(State {
                idle: vec![first],
                started: 1,
                most: most.max(1),
            }),
            freed: Condvar::new(),
        }
    }

    /// Starts the rest of the workers on a thread of their own, so that the first concurrent calls
    /// do not wait for a framework to load.
    pub(super) fn fill(self: &Arc<Self>) {
        let pool = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name("kiln-framework-start".into())
            .spawn(move || {
                loop {
                    {
                        let mut state = pool.lock();
                        if state.started >= state.most {
                            return;
                        }
                        state.started += 1;
                    }
                    match pool.launch() {
                        Ok(worker) => pool.lock().idle.push(worker),
                        Err(error) => {
                            tracing::warn!(%error, "could not start a framework worker");
                            return;
                        }
                    }
                    pool.freed.notify_one();
                }
            });
        if let Err(error) = started {
            tracing::warn!(%error, "could not start the framework workers' starter");
        }
    }

    /// Runs one call on a free worker, starting one if fewer than `most` run.
    pub(super) fn call(
        &self,
        batch: &Batch<'_>,
        signature: Option<&str>,
    ) -> Result<Vec<Value>, ServeError> {
        let mut worker = self.take()?;
        let answer = worker.predict(batch, signature);
        let mut state = self.lock();
        match worker.is_alive() {
            true => state.idle.push(worker),
            false => state.started -= 1,
        }
        self.freed.notify_one();
        answer
    }

    /// Starts a worker counted in `started` already; a failed start is uncounted again.
    fn launch(&self) -> Result<Worker, ServeError> {
        let started = (self.start)().and_then(Worker::start);
        if started.is_err() {
            self.lock().started -= 1;
            self.freed.notify_one();
        }
        started.map(|(worker, _)| worker)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self) -> Result<Worker, ServeError> {
        let mut state = self.lock();
        loop {
            if let Some(mut worker) = state.idle.pop() {
                // One that died while idle (killed, out of memory) is replaced, not used.
                if worker.is_alive() {
                    return Ok(worker);
                }
                state.started -= 1;
                continue;
            }
            if state.started < state.most {
                state.started += 1;
                drop(state);
                return self.launch().map_err(|error| {
                    ServeError::Worker(format!("could not start a framework worker: {error}"))
                });
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}
