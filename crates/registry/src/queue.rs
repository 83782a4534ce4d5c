//! The job queue: jobs wait in order until the ML units they need fit under the server's quota.
//!
//! A job is never refused because the machine is busy, only when it alone needs more than the quota.
//! Admission is first-in, first-out: a small job does not overtake a big one waiting ahead of it.
//! With a [`Gate`], the quota is one that servers sharing a database share: the gate admits in the
//! database too, and [`Queue::retry`] asks again after units were freed on another server.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// ML units per hour of one `standard` machine (api-surface.md §A.12).
pub const STANDARD_UNITS: f64 = 0.3878;

/// The default quota: four `standard` replicas per core, since local replicas share the cores.
pub fn default_quota() -> f64 {
    let cores = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    STANDARD_UNITS * 4.0 * cores as f64
}

struct Waiter {
    key: String,
    units: f64,
    admit: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    in_use: f64,
    waiting: VecDeque<Waiter>,
}

/// What admits a job besides this server's own count: `(key, units)` → whether it is admitted.
pub type Gate = Box<dyn Fn(&str, f64) -> bool + Send + Sync>;

/// The queue of one server.
pub struct Queue {
    quota: f64,
    gate: Option<Gate>,
    /// A std mutex: every critical section is a few arithmetic steps.
    state: Mutex<State>,
}

impl Queue {
    /// A queue admitting up to `quota` ML units at once.
    pub fn new(quota: f64) -> Self {
        Self {
            quota,
            gate: None,
            state: Mutex::new(State::default()),
        }
    }

    /// A queue whose jobs are also admitted by `gate`, asked for the job at the head of the queue
    /// once it fits this server's own count.
    pub fn gated(quota: f64, gate: Gate) -> Self {
        Self {
            gate: Some(gate),
            ..Self::new(quota)
        }
    }

    /// Asks again for the jobs waiting (units may have been freed elsewhere).
    pub fn retry(&self) {
        let mut state = self.lock();
        self.admit_waiting(&mut state);
    }

    /// The quota.
    pub fn quota(&self) -> f64 {
        self.quota
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `key`; the receiver resolves when its units are granted.
    pub fn enqueue(&self, key: &str, units: f64) -> oneshot::Receiver<()> {
        let (admit, admitted) = oneshot::channel();
        let mut state = self.lock();
        state.waiting.push_back(Waiter {
            key: key.to_string(),
            units,
            admit,
        });
        self.admit_waiting(&mut state);
        admitted
    }

    /// Returns `units` to the pool and admits waiting jobs that now fit.
    pub fn release(&self, units: f64) {
        let mut state = self.lock();
        state.in_use = (state.in_use - units).max(0.0);
        self.admit_waiting(&mut state);
    }

    /// Removes a waiting job. `false` when it was admitted already (its units are then in use and
    /// the caller must release them).
    pub fn withdraw(&self, key: &str) -> bool {
        let mut state = self.lock();
        let before = state.waiting.len();
        state.waiting.retain(|waiter| waiter.key != key);
        let withdrawn = state.waiting.len() != before;
        self.admit_waiting(&mut state);
        withdrawn
    }

    /// 1-based position of a waiting job.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.lock()
            .waiting
            .iter()
            .position(|waiter| waiter.key == key)
            .map(|index| index + 1)
    }

    fn admit_waiting(&self, state: &mut State) {
        while let Some(front) = state.waiting.front() {
            // A small tolerance: unit figures are sums of decimals.
            if state.in_use + front.units > self.quota + 1e-9
                || self
                    .gate
                    .as_ref()
                    .is_some_and(|gate| !gate(&front.key, front.units))
            {
                break;
            }
            let Some(waiter) = state.waiting.pop_front() else {
                break;
            };
            state.in_use += waiter.units;
            if waiter.admit.send(()).is_err() {
                state.in_use -= waiter.units;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_quota_holds_at_least_one_standard_replica() {
        let quota = default_quota();
        assert!(quota >= STANDARD_UNITS, "{quota}");
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap() as f64;
        assert!(quota <= STANDARD_UNITS * 4.0 * cores + 1e-9, "{quota}");
    }

    #[tokio::test]
    async fn admits_in_order_within_the_quota() {
        let queue = Queue::new(1.0);
        let first = queue.enqueue("a", 0.6);
        let mut second = queue.enqueue("b", 0.6);
        let mut third = queue.enqueue("c", 0.3);
        first.await.unwrap();
        assert_eq!(queue.position("b"), Some(1));
        assert_eq!(queue.position("c"), Some(2), "c fits but waits behind b");
        assert!(second.try_recv().is_err() && third.try_recv().is_err());
        queue.release(0.6);
        second.await.unwrap();
        third.await.unwrap();
        assert!(!queue.withdraw("b"), "b was admitted already");
    }

    #[tokio::test]
    async fn a_gate_holds_the_head_of_the_queue_until_it_admits() {
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate_open = std::sync::Arc::clone(&open);
        let queue = Queue::gated(
            10.0,
            Box::new(move |_, _| gate_open.load(std::sync::atomic::Ordering::SeqCst)),
        );
        let mut first = queue.enqueue("a", 0.5);
        let mut second = queue.enqueue("b", 0.5);
        queue.retry();
        assert!(first.try_recv().is_err() && second.try_recv().is_err());
        open.store(true, std::sync::atomic::Ordering::SeqCst);
        queue.retry();
        first.await.unwrap();
        second.await.unwrap();
    }

    #[tokio::test]
    async fn withdrawing_a_waiter_lets_the_next_one_in() {
        let queue = Queue::new(1.0);
        queue.enqueue("a", 0.5).await.unwrap();
        let _blocked = queue.enqueue("big", 0.9);
        let small = queue.enqueue("small", 0.4);
        assert!(queue.withdraw("big"));
        small.await.unwrap();
        assert_eq!(queue.position("big"), None);
    }
}
