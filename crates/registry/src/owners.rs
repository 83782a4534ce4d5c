//! Which server watches what, when several share one database.
//!
//! Every unfinished job and operation has an owner: the server that created it, or the one that
//! took it over. Each server holds a lease in the database, renewed every [`RENEW_EVERY`] while it
//! runs and ended when it shuts down. An owner is gone when its lease has run out ([`LEASE`]), or
//! when it ran on this machine and its process has exited (so a restarted server need not wait
//! out its predecessor's lease). What a gone owner left is claimed by a compare-and-set on the
//! owner, so of servers racing for it exactly one takes it over. A server claims from owners whose
//! lease ran out only once it has held its own for a whole lease: after the database was out of
//! reach, every lease has run out, and the others get a lease's time to renew theirs. The
//! servers' clocks must agree to well within a lease.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kiln_store::{Store, StoreError};

use crate::{Jobs, Registry, RegistryError};

/// How long a lease lasts unless renewed: what a gone server's work waits before another takes it.
pub const LEASE: Duration = Duration::from_secs(10);

/// How often a server renews its lease, takes over what gone owners left and looks for cancels
/// another server recorded on its jobs.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

/// A server's identity among those sharing a database: `host:pid:space:start`, where `space`
/// names the machine's boot and process-id namespace in which `pid` is meaningful.
#[derive(Debug)]
pub struct ServerId {
    id: String,
    space: String,
    /// Set once the lease is ended: it is not renewed again.
    left: AtomicBool,
    /// Since when this server has renewed its lease without a failure.
    held_since: Mutex<Option<Instant>>,
}

impl ServerId {
    /// The identity of this process.
    pub fn of_this_process() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let host = read("/proc/sys/kernel/hostname").trim().replace(':', "_");
        let boot: String = read("/proc/sys/kernel/random/boot_id")
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(12)
            .collect();
        let namespace = std::fs::read_link("/proc/self/ns/pid")
            .map(|link| {
                link.display()
                    .to_string()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>()
            })
            .unwrap_or_default();
        let space = format!("{boot}-{namespace}");
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let id = format!("{host}:{}:{space}:{start:x}", std::process::id());
        Self {
            id,
            space,
            left: AtomicBool::new(false),
            held_since: Mutex::new(None),
        }
    }

    /// The id stored as an owner.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Whether server `other` ran in this process-id space and its process has exited (or is a
    /// zombie). A live process of that id might be another program by now: then it is not known
    /// to have exited, and its lease decides.
    fn saw_exit(&self, other: &str) -> bool {
        let mut parts = other.split(':');
        let (Some(_host), Some(pid), Some(space)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        if space != self.space || self.space.len() < 3 || other == self.id {
            return false;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        if pid == std::process::id() {
            return true;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // The state follows the command name's closing parenthesis.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        }
    }

    /// Extends this server's lease by [`LEASE`] from now, unless it has left.
    pub fn renew(&self, store: &dyn Store) -> Result<(), StoreError> {
        if self.left.load(Ordering::SeqCst) {
            return Ok(());
        }
        let renewed = store.renew_lease(&self.id, now_ms() + LEASE.as_millis() as i64);
        let mut held_since = self.held();
        match &renewed {
            Ok(()) => {
                held_since.get_or_insert_with(Instant::now);
            }
            Err(_) => *held_since = None,
        }
        renewed
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.held_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends this server's lease for good, so others take over its work at once.
    pub fn leave(&self, store: &dyn Store) -> Result<(), StoreError> {
        self.left.store(true, Ordering::SeqCst);
        store.end_lease(&self.id)
    }

    /// The leases as they stand now, to judge owners by.
    pub fn roll(&self, store: &dyn Store) -> Result<Roll<'_>, StoreError> {
        Ok(Roll {
            me: self,
            live: store.leases()?.into_iter().collect(),
            now: now_ms(),
            claims_lapsed: self.held().is_some_and(|since| since.elapsed() >= LEASE),
        })
    }
}

/// The servers' leases at one moment.
pub struct Roll<'a> {
    me: &'a ServerId,
    live: HashMap<String, i64>,
    now: i64,
    /// Whether this server has held its lease long enough to take over from lapsed ones.
    claims_lapsed: bool,
}

impl Roll<'_> {
    /// Whether `owner` (a server id, or `""` for none) can no longer watch what it owns, as
    /// far as this server may judge now.
    pub fn is_gone(&self, owner: &str) -> bool {
        let lapsed = self.live.get(owner).is_none_or(|until| *until <= self.now);
        owner != self.me.id
            && (owner.is_empty() || self.me.saw_exit(owner) || (lapsed && self.claims_lapsed))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// What one [`round`] took over.
#[derive(Debug, Clone, Copy)]
pub struct TakenOver {
    /// Operations closed.
    pub operations: usize,
    /// Jobs that could not be taken over and failed.
    pub failed_jobs: usize,
}

/// One round of keeping the lease: renews it, then, judging owners by the leases as read once,
/// takes over the operations and jobs gone owners left and passes on the cancels other servers
/// recorded. Both are tried even when one fails; the first error is returned. Calls the store:
/// run it where blocking is allowed.
pub fn round(registry: &Registry, jobs: &Arc<Jobs>) -> Result<TakenOver, RegistryError> {
    let server = registry.identity();
    server.renew(&*registry.store)?;
    let roll = server.roll(&*registry.store)?;
    let operations = registry.recover(&roll);
    let failed_jobs = jobs.recover(&roll);
    Ok(TakenOver {
        operations: operations?,
        failed_jobs: failed_jobs?,
    })
}

/// Keeps this server's lease while it runs: a [`round`] every [`RENEW_EVERY`], on the blocking
/// pool.
pub fn keep(registry: Arc<Registry>, jobs: Arc<Jobs>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(RENEW_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if registry.identity().left.load(Ordering::SeqCst) {
                return;
            }
            let (registry, jobs) = (Arc::clone(&registry), Arc::clone(&jobs));
            match tokio::task::spawn_blocking(move || round(&registry, &jobs)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::error!(%error, "could not keep the lease or take over others' work")
                }
                Err(error) => tracing::error!(%error, "the lease task failed"),
            }
        }
    });
}
