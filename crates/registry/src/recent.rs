//! A short-lived copy of what the store answered, so the predict path reads no metadata.
//!
//! Authentication and authorization read a token and a few policies for every request. Each
//! answer is kept for [`TRUSTED_FOR`]: a change made through this server forgets the entry at
//! once, and one made by another server sharing the store is seen within that time. The map is
//! bounded: past [`MAX_ENTRIES`] it starts again empty, so callers cannot grow it without end.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long an answer from the store is trusted.
pub const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// Most entries kept.
const MAX_ENTRIES: usize = 10_000;

/// Recent answers from the store, by key.
pub(crate) struct Recent<V> {
    entries: RwLock<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> Recent<V> {
    pub(crate) fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The value of `key`: the kept one when younger than [`TRUSTED_FOR`], else what `load`
    /// reads, kept when `keep` says so.
    pub(crate) fn get<E>(
        &self,
        key: &str,
        load: impl FnOnce() -> Result<V, E>,
        keep: impl FnOnce(&V) -> bool,
    ) -> Result<V, E> {
        if let Ok(entries) = self.entries.read()
            && let Some((value, read_at)) = entries.get(key)
            && read_at.elapsed() < TRUSTED_FOR
        {
            return Ok(value.clone());
        }
        let value = load()?;
        if keep(&value)
            && let Ok(mut entries) = self.entries.write()
        {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key.to_string(), (value.clone(), Instant::now()));
        }
        Ok(value)
    }

    /// Forgets `key`, so the next read goes to the store.
    pub(crate) fn forget(&self, key: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_for_a_second_and_forgotten_on_demand() {
        let recent = Recent::new();
        let reads = std::cell::Cell::new(0);
        let load = || -> Result<i32, ()> {
            reads.set(reads.get() + 1);
            Ok(reads.get())
        };
        assert_eq!(recent.get("a", load, |_| true), Ok(1));
        assert_eq!(recent.get("a", load, |_| true), Ok(1));
        recent.forget("a");
        assert_eq!(recent.get("a", load, |_| true), Ok(2));
        std::thread::sleep(TRUSTED_FOR + Duration::from_millis(50));
        assert_eq!(recent.get("a", load, |_| true), Ok(3));
        assert_eq!(recent.get("b", load, |_| false), Ok(4));
        assert_eq!(recent.get("b", load, |_| false), Ok(5));
    }
}
