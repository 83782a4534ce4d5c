//! Answers a cluster engine gave lately, shared by the replicas that ask the same question.
//!
//! Every replica of a gang (and on Ray every trial of a pool) follows the same engine job, asking
//! about it once a second; the engine is asked at most once per [`FRESH`] per job however many
//! replicas follow it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::SchedulerError;

/// How long an answer stands for everyone who asks.
const FRESH: Duration = Duration::from_millis(500);

/// Entries kept before stale ones are dropped.
const KEPT: usize = 1024;

/// The engine's latest answer about each job, by the engine's job id.
#[derive(Debug)]
pub(crate) struct Answers<K, V> {
    latest: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Answers<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            latest: Mutex::new(HashMap::new()),
        }
    }

    fn latest(&self) -> MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer about `key` given within [`FRESH`], else `ask`'s (kept when it is one).
    pub(crate) async fn get<Fut>(
        &self,
        key: &K,
        ask: impl FnOnce() -> Fut,
    ) -> Result<V, SchedulerError>
    where
        Fut: Future<Output = Result<V, SchedulerError>>,
    {
        if let Some((at, answer)) = self.latest().get(key)
            && at.elapsed() < FRESH
        {
            return Ok(answer.clone());
        }
        let answer = ask().await?;
        let mut latest = self.latest();
        if latest.len() >= KEPT {
            latest.retain(|_, (at, _)| at.elapsed() < FRESH);
        }
        latest.insert(key.clone(), (Instant::now(), answer.clone()));
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_of_one_job_share_an_answer_and_a_failure_is_not_kept() {
        let answers: Answers<u64, u32> = Answers::new();
        let mut asked = 0;
        for _ in 0..3 {
            let answer = answers
                .get(&7, || {
                    asked += 1;
                    std::future::ready(Ok(asked))
                })
                .await;
            assert_eq!(answer.ok(), Some(1));
        }
        let failed = answers
            .get(&8, || {
                std::future::ready(Err(SchedulerError::Io("unreachable".into())))
            })
            .await;
        assert!(failed.is_err());
        let answer = answers.get(&8, || std::future::ready(Ok(5))).await;
        assert_eq!(answer.ok(), Some(5));
    }
}
