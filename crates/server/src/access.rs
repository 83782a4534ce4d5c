//! The access log and the HTTP metrics: every request, as it is answered.
//!
//! [`AccessLayer`] is the outermost layer, so it sees what every other layer answers, refusals
//! included. It counts each request in [`HttpMetrics`] and writes one line to the [`AccessLog`]:
//! method, path, status, latency, caller and route, as the server's other log lines are written
//! (text or JSON, target `kiln::access` at `INFO`, which `RUST_LOG` can silence:
//! `kiln::access=off`). The line is formatted here rather than by `tracing`'s formatter, which
//! cost several times more per request; and the layer is a service of its own rather than
//! `axum::middleware::from_fn`, which boxes every request's future and clones the service below
//! it. The query string is left out of the log: it may carry page tokens and filters with users'
//! data.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, Uri};
use axum::response::Response;
use tower::{Layer, Service};

use crate::auth::Caller;
use crate::metrics::HttpMetrics;

/// Where a request went when no route matched it.
const UNMATCHED: &str = "unmatched";

/// Takes each access line, newline included.
pub type Sink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Where access lines go, and in which format.
#[derive(Clone)]
pub struct AccessLog {
    /// JSON objects rather than text.
    pub json: bool,
    /// Where the lines go.
    pub sink: Sink,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AccessLog")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl AccessLog {
    /// The line of one answered request.
    fn line(
        &self,
        request: &Seen,
        status: u16,
        micros: u128,
        caller: &str,
        route: &str,
    ) -> Vec<u8> {
        use std::io::Write as _;
        let mut line = Vec::with_capacity(256);
        let time = kiln_api::now();
        let latency = format_args!("{}.{:03}", micros / 1000, micros % 1000);
        let path = request.uri.path();
        if self.json {
            let text = |value: &str| serde_json::to_string(value).unwrap_or_default();
            let _ = writeln!(
                line,
                "{{\"timestamp\":\"{time}\",\"level\":\"INFO\",\"target\":\"kiln::access\",\
                 \"method\":{},\"path\":{},\"status\":{status},\"latency_ms\":{latency},\
                 \"caller\":{},\"route\":{}}}",
                text(request.method.as_str()),
                text(path),
                text(caller),
                text(route),
            );
        } else {
            let _ = writeln!(
                line,
                "{time}  INFO kiln::access: method={} path={path} status={status} \
                 latency_ms={latency} caller={caller:?} route={route:?}",
                request.method,
            );
        }
        line
    }
}

/// Logs and counts every request of the services it wraps.
#[derive(Clone)]
pub struct AccessLayer(Arc<Recorder>);

/// Where each request is counted and logged; one per server, shared by every request.
struct Recorder {
    metrics: Arc<HttpMetrics>,
    log: Option<AccessLog>,
}

impl AccessLayer {
    /// Counting into `metrics`, and writing to `log` when there is one.
    pub fn new(metrics: Arc<HttpMetrics>, log: Option<AccessLog>) -> AccessLayer {
        AccessLayer(Arc::new(Recorder { metrics, log }))
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            recorder: Arc::clone(&self.0),
        }
    }
}

/// A service whose requests are logged and counted.
#[derive(Clone)]
pub struct Access<S> {
    inner: S,
    recorder: Arc<Recorder>,
}

impl<S> Service<Request> for Access<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Answering<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let seen = Seen {
            arrived: Instant::now(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            matched: request.extensions().get::<MatchedPath>().cloned(),
            recorder: Arc::clone(&self.recorder),
        };
        Answering {
            inner: self.inner.call(request),
            seen: Some(seen),
        }
    }
}

/// What the log needs of a request, kept until its answer.
struct Seen {
    arrived: Instant,
    method: Method,
    uri: Uri,
    matched: Option<MatchedPath>,
    recorder: Arc<Recorder>,
}

impl Seen {
    /// Logs and counts `response`.
    fn answered(self, response: &Response) {
        let elapsed = self.arrived.elapsed();
        let status = response.status().as_u16();
        let caller = response.extensions().get::<Caller>();
        let route = caller
            .map(|caller| caller.method.as_str())
            .or(self.matched.as_ref().map(MatchedPath::as_str))
            .unwrap_or(UNMATCHED);
        self.recorder.metrics.record(route, status, elapsed);
        if let Some(log) = &self.recorder.log
            && tracing::enabled!(target: "kiln::access", tracing::Level::INFO)
        {
            let caller = caller
                .and_then(|caller| caller.member.as_deref())
                .unwrap_or("-");
            (log.sink)(&log.line(&self, status, elapsed.as_micros(), caller, route));
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, logged once it is ready.
    pub struct Answering<F> {
        #[pin]
        inner: F,
        seen: Option<Seen>,
    }
}

impl<F, E> Future for Answering<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(seen)) = (&answer, this.seen.take()) {
            seen.answered(response);
        }
        Poll::Ready(answer)
    }
}
