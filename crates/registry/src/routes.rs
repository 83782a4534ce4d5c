//! Where predict requests go: the READY version a model or version name resolves to, and its
//! loaded model, remembered so that the hot path does not read the metadata store.
//!
//! Resolving a model's default version took two store reads per request (a tenth of a one-instance
//! `:predict`'s CPU time on SQLite). The table is emptied whenever this process changes a model or
//! a version (the registry's write guard does it on drop), and an entry is trusted for at most
//! [`FRESH`], which bounds how long another server sharing the store (PostgreSQL) can be missed.
//! A generation counter keeps a resolution that raced with a change from being stored.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::serving::Serving;

/// How long an entry is used without reading the store again.
pub const FRESH: Duration = Duration::from_secs(1);

/// The key of a target: `project/model/[version]`.
pub fn key(project: &str, model: &str, version: Option<&str>) -> String {
    format!("{project}/{model}/{}", version.unwrap_or_default())
}

struct Table<R> {
    /// Bumped by every change; a resolution started under an older one is not stored.
    generation: u64,
    entries: HashMap<String, (R, Instant)>,
}

/// The table of routes (`R`: a [`Serving`]), by [`key`].
pub struct Routes<R = Serving> {
    table: Mutex<Table<R>>,
}

impl<R> Default for Routes<R> {
    fn default() -> Self {
        Self {
            table: Mutex::new(Table {
                generation: 0,
                entries: HashMap::new(),
            }),
        }
    }
}

impl<R: Clone> Routes<R> {
    fn table(&self) -> MutexGuard<'_, Table<R>> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A fresh route for `key`, or the generation to pass to [`Routes::insert`] once resolved.
    pub fn get(&self, key: &str) -> Result<R, u64> {
        let table = self.table();
        match table.entries.get(key) {
            Some((route, at)) if at.elapsed() < FRESH => Ok(route.clone()),
            _ => Err(table.generation),
        }
    }

    /// Remembers `route`, unless something changed since `generation` was read.
    pub fn insert(&self, key: String, route: R, generation: u64) {
        let mut table = self.table();
        if table.generation == generation {
            table.entries.insert(key, (route, Instant::now()));
        }
    }

    /// Forgets every route: a model, a version or a loaded model changed.
    pub fn invalidate(&self) {
        let mut table = self.table();
        table.generation += 1;
        table.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_empties_the_table_and_voids_resolutions_begun_before_it() {
        let routes: Routes<&str> = Routes::default();
        let key = key("p", "census", None);
        let generation = routes.get(&key).unwrap_err();
        routes.insert(key.clone(), "v1", generation);
        assert_eq!(routes.get(&key), Ok("v1"));

        routes.invalidate();
        let before = routes.get(&key).unwrap_err();
        // A resolution that read the store before a change must not be remembered after it.
        routes.invalidate();
        routes.insert(key.clone(), "v1", before);
        let now = routes.get(&key).unwrap_err();
        assert_eq!(now, before + 1);
        routes.insert(key.clone(), "v2", now);
        assert_eq!(routes.get(&key), Ok("v2"));
    }
}
