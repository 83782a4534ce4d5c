//! Watches (`:watch`): a job, the jobs list, a model's versions or a study's trials as a stream of
//! server-sent events, so a client that shows them live holds one response open instead of
//! polling.
//!
//! A watch first answers as the matching get or list would (a 404 or 400 before any stream
//! starts), then sends the value at once and again each time it changes, until `timeoutSeconds`
//! pass (the client then reconnects) or what it watches cannot change any more (a finished
//! job). Changes are found by reading the store and the job's files every [`EVERY`] inside the
//! server: a change made by another server sharing the store, or a line a replica writes to its
//! log, is seen the same way as one made here. An error after the stream started is sent as an
//! `error` event holding the API's error body, and ends the stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::extract::QueryParams;
use crate::route::ApiResult;

/// How often a watch looks for changes.
pub const EVERY: Duration = Duration::from_millis(500);

/// How long a watch lasts when `timeoutSeconds` does not say.
const DEFAULT_SECONDS: u64 = 300;

/// The longest a watch may last.
const MAX_SECONDS: u64 = 3600;

/// The sending side of one watch.
pub struct Events {
    sender: mpsc::Sender<Event>,
    /// Each event's last data, to send only changes.
    last: HashMap<&'static str, String>,
    deadline: Instant,
}

impl Events {
    /// Sends `value` as event `name` unless it equals the last one sent under that name. False
    /// once the client has gone.
    pub async fn changed(&mut self, name: &'static str, value: &impl Serialize) -> bool {
        let data = encode(value);
        if self.last.get(name) == Some(&data) {
            return !self.sender.is_closed();
        }
        self.last.insert(name, data.clone());
        self.emit(name, data).await
    }

    /// Sends `value` as event `name`. False once the client has gone.
    pub async fn send(&mut self, name: &'static str, value: &impl Serialize) -> bool {
        self.emit(name, encode(value)).await
    }

    /// Sends `error` as the last event.
    pub async fn fail(&mut self, error: impl Into<ApiError>) {
        let error: ApiError = error.into();
        self.emit("error", encode(&error.body())).await;
    }

    /// Waits until the next look; false when the watch's time is up or the client has gone.
    pub async fn pause(&self) -> bool {
        let next = Instant::now() + EVERY;
        if next >= self.deadline {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next) => !self.sender.is_closed(),
            () = self.sender.closed() => false,
        }
    }

    async fn emit(&self, name: &'static str, data: String) -> bool {
        self.sender
            .send(Event::default().event(name).data(data))
            .await
            .is_ok()
    }
}

fn encode(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// A watch of the value `read` gives, sent as event `name` at once and whenever it changes.
pub fn value<T, E, F>(query: &QueryParams, name: &'static str, read: F) -> ApiResult
where
    T: Serialize + Send + Sync,
    E: Into<ApiError> + Send,
    F: Fn() -> Result<T, E> + Send + 'static,
{
    let first = read().map_err(Into::into)?;
    let first = encode(&first);
    stream(query, move |mut events| async move {
        if !events.emit(name, first.clone()).await {
            return;
        }
        events.last.insert(name, first);
        while events.pause().await {
            match read() {
                Ok(value) if events.changed(name, &value).await => {}
                Ok(_) => return,
                Err(error) => return events.fail(error).await,
            }
        }
    })
}

/// Answers a watch: `produce` sends its events until it returns (the stream then ends) or the
/// client leaves (its sends then fail).
pub fn stream<F, Fut>(query: &QueryParams, produce: F) -> ApiResult
where
    F: FnOnce(Events) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let seconds = match query.0.get("timeoutSeconds") {
        None => DEFAULT_SECONDS,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|seconds| (1..=MAX_SECONDS).contains(seconds))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid value at 'timeoutSeconds' ({text:?}): must be a whole number of \
                     seconds from 1 to {MAX_SECONDS}"
                ))
            })?,
    };
    let (sender, receiver) = mpsc::channel(16);
    let events = Events {
        sender,
        last: HashMap::new(),
        deadline: Instant::now() + Duration::from_secs(seconds),
    };
    tokio::spawn(produce(events));
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        Some((Ok::<_, Infallible>(event), receiver))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
