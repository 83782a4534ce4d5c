//! Dynamic batching: the data plane between concurrent predict requests and one loaded model.
//!
//! Requests for a version wait in a queue bounded in requests and in bytes of instance text
//! (either full: [`BatchError::Overloaded`], HTTP 429). The bytes count from a request's arrival
//! to its answer, so they bound the memory its instances hold; a request alone is always
//! admitted, however large (the body limit bounds it).
//! `workers` threads of their own serve it (the model is CPU-bound; the async runtime never runs
//! it). A free worker takes the oldest request and keeps adding queued ones until the batch holds
//! `max_batch_size` instances or `max_wait` has passed (at the default of zero, the batch is what
//! queued while the workers were busy: batching comes from load and adds no latency when there is
//! none). One model call serves the whole batch; its outputs are split back per request. When a
//! batch fails because of one request's instance, each request of the batch is run on its own, so
//! one client's bad instance never fails another's request.
//!
//! The workers pull from the queue rather than being handed batches: under load a worker goes
//! from one batch straight to the next, with no task or thread to wake in between (a dispatcher
//! task handing batches to tokio's blocking pool left the cores idle between batches).
//!
//! Only the first worker always waits on the queue. The others are helpers, asleep until a
//! worker's batch is busy: it left work behind that batching cannot absorb, or the model is slow
//! (its calls average a millisecond), so a request arriving during a call waits long for it. Work
//! is left behind when a request did not fit the batch, when the batch is full and more requests
//! wait, or when one request fills a batch alone (such requests cannot share a call, so only more
//! calls at once serve more of them). A called helper serves the queue until one of its own
//! batches is not busy. Requests to a fast model are thus served by one thread while it keeps up,
//! which takes what queued during its last call as one batch: with every worker on the queue they
//! took turns at single requests, and on two cores their contention with the HTTP thread
//! lengthened the tail. A full batch of several requests with none left waiting does not call a
//! helper either: one worker taking many requests a call serves more of them, at a shorter tail,
//! than two taking one request each (`bench/serve.py` measures both).
//!
//! Tensors ([`Batcher::infer`], for a runtime that reads them itself) wait in the same queue,
//! under the same bounds, and run a model call of their own: like a request that fills a batch
//! alone, one calls a helper.
//!
//! The threads end when the batcher is dropped: the queue closes and sleeping helpers are told.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use serde_json::Value;
use tokio::sync::oneshot;

use crate::tensor::Tensor;
use crate::{Instances, ModelRuntime, ServeError};

/// How a version's requests are batched and run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchConfig {
    /// Most instances in one model call (a larger request runs alone).
    pub max_batch_size: usize,
    /// Longest a batch is held for more requests once a worker is free.
    pub max_wait: Duration,
    /// Most requests waiting; more are refused.
    pub max_queued: usize,
    /// Most bytes of instance text waiting or being predicted; more are refused.
    pub max_queued_bytes: usize,
    /// Most model calls running at once: the worker threads (all but the first asleep while one
    /// keeps up).
    pub workers: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 512,
            max_wait: Duration::ZERO,
            max_queued: 1024,
            max_queued_bytes: 64 << 20,
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        }
    }
}

/// Why a request was not answered with predictions.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The queue is full (of requests or of bytes; the bound is named): the client should retry
    /// later.
    #[error("the version's request queue is full ({0}); retry later")]
    Overloaded(String),
    /// The model refused the request.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The batcher stopped (the version was unloaded while the request waited).
    #[error("the model was unloaded; retry")]
    Stopped,
}

/// Counters of one batcher, for the server's metrics.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Requests answered or failed by the model.
    pub requests: AtomicU64,
    /// Instances predicted.
    pub instances: AtomicU64,
    /// Model calls.
    pub batches: AtomicU64,
    /// Requests refused because the queue was full.
    pub rejected: AtomicU64,
    /// Bytes of instance text waiting or being predicted now.
    pub queued_bytes: AtomicUsize,
    /// Time from a request's arrival to its answer (waiting and model call), for requests the
    /// model answered or failed.
    pub latency: crate::histogram::Histogram,
}

/// Bytes of a request counted in [`BatchStats::queued_bytes`] until it is answered.
struct Reserved<'a> {
    counter: &'a AtomicUsize,
    bytes: usize,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// What waits in the queue.
enum Job {
    /// Instances, which share model calls.
    Predict(Request),
    /// Tensors, which run a call of their own.
    Infer(Inference),
}

struct Request {
    instances: Instances,
    reply: oneshot::Sender<Result<Vec<Value>, ServeError>>,
}

struct Inference {
    inputs: Vec<Tensor>,
    reply: oneshot::Sender<Result<Vec<Tensor>, ServeError>>,
}

/// The workers beyond the first, asleep until a worker calls one.
#[derive(Default)]
struct Helpers {
    state: Mutex<HelperState>,
    wake: Condvar,
}

#[derive(Default)]
struct HelperState {
    /// Helpers waiting for a call.
    asleep: usize,
    /// Calls not yet taken (never more than the helpers asleep).
    called: usize,
    /// The batcher is gone: helpers end.
    closed: bool,
}

impl Helpers {
    /// Wakes one sleeping helper, if any.
    fn call(&self) {
        if let Ok(mut state) = self.state.lock()
            && state.called < state.asleep
        {
            state.called += 1;
            self.wake.notify_one();
        }
    }

    /// Sleeps until called; `false` once the batcher is gone.
    fn wait(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        state.asleep += 1;
        while state.called == 0 && !state.closed {
            state = match self.wake.wait(state) {
                Ok(state) => state,
                Err(_) => return false,
            };
        }
        state.asleep -= 1;
        if state.closed {
            return false;
        }
        state.called -= 1;
        true
    }

    /// Helpers asleep now.
    fn asleep(&self) -> usize {
        self.state.lock().map_or(0, |state| state.asleep)
    }

    /// Ends every helper, asleep or not.
    fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
        }
        self.wake.notify_all();
    }
}

/// The batching front of one loaded model.
pub struct Batcher {
    queue: Sender<Job>,
    /// The model, for calls that do not go through the queue (another signature).
    runtime: Arc<dyn ModelRuntime>,
    /// What the model takes and returns, read once at start.
    signature: crate::signature::Signature,
    config: BatchConfig,
    stats: Arc<BatchStats>,
    /// When the last request arrived, to unload idle models.
    last_used: Mutex<Instant>,
    helpers: Arc<Helpers>,
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.helpers.close();
    }
}

impl Batcher {
    /// Starts the worker threads of `runtime`.
    pub fn start(runtime: Arc<dyn ModelRuntime>, config: BatchConfig) -> Result<Self, ServeError> {
        let signature = runtime.signature();
        let (queue, requests) = crossbeam_channel::bounded(config.max_queued.max(1));
        let stats = Arc::new(BatchStats::default());
        let helpers = Arc::new(Helpers::default());
        let pace = Arc::new(Pace::default());
        for index in 0..config.workers.max(1) {
            let worker = Worker {
                runtime: Arc::clone(&runtime),
                config,
                requests: requests.clone(),
                stats: Arc::clone(&stats),
                helpers: Arc::clone(&helpers),
                pace: Arc::clone(&pace),
                first: index == 0,
            };
            std::thread::Builder::new()
                .name(format!("kiln-predict-{index}"))
                .spawn(move || worker.work())
                .map_err(|error| {
                    ServeError::Load(format!("could not start a prediction worker: {error}"))
                })?;
        }
        Ok(Self {
            queue,
            runtime,
            signature,
            config,
            stats,
            last_used: Mutex::new(Instant::now()),
            helpers,
        })
    }

    /// The model behind the queue.
    pub fn runtime(&self) -> &Arc<dyn ModelRuntime> {
        &self.runtime
    }

    /// What the model takes and returns.
    pub fn signature(&self) -> &crate::signature::Signature {
        &self.signature
    }

    /// How long since the last request arrived.
    pub fn idle(&self) -> Duration {
        self.last_used
            .lock()
            .map_or(Duration::ZERO, |last| last.elapsed())
    }

    /// Predicts `instances` (JSON text, as a request carries them), batched with other requests.
    pub async fn predict(&self, instances: Instances) -> Result<Vec<Value>, BatchError> {
        let (reply, answer) = oneshot::channel();
        let bytes = instances.text_len();
        self.admit(Job::Predict(Request { instances, reply }), bytes, answer)
            .await
    }

    /// Whether [`Batcher::infer`] serves this model: its runtime reads tensors itself.
    pub fn takes_tensors(&self) -> bool {
        self.runtime.tensors().is_some()
    }

    /// Runs the model on named tensors, a call of their own; a model that takes instances only
    /// refuses them.
    pub async fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BatchError> {
        if !self.takes_tensors() {
            return Err(BatchError::Serve(takes_instances_only()));
        }
        let (reply, answer) = oneshot::channel();
        let bytes = inputs.iter().map(|input| input.array.data.bytes()).sum();
        self.admit(Job::Infer(Inference { inputs, reply }), bytes, answer)
            .await
    }

    /// Queues `job`, holding `bytes` in the queue's count until it is answered, unless the queue
    /// is full.
    async fn admit<T>(
        &self,
        job: Job,
        bytes: usize,
        answer: oneshot::Receiver<Result<T, ServeError>>,
    ) -> Result<T, BatchError> {
        let arrived = Instant::now();
        if let Ok(mut last) = self.last_used.lock() {
            *last = arrived;
        }
        let before = self.stats.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        let _reserved = Reserved {
            counter: &self.stats.queued_bytes,
            bytes,
        };
        if before > 0 && before + bytes > self.config.max_queued_bytes {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(BatchError::Overloaded(format!(
                "{before} bytes of instances waiting, at most {} with this request's {bytes}",
                self.config.max_queued_bytes
            )));
        }
        if let Err(error) = self.queue.try_send(job) {
            return Err(match error {
                TrySendError::Full(_) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    BatchError::Overloaded(format!("{} requests waiting", self.config.max_queued))
                }
                TrySendError::Disconnected(_) => BatchError::Stopped,
            });
        }
        let answer = answer.await.map_err(|_| BatchError::Stopped)?;
        self.stats.latency.record(arrived.elapsed());
        Ok(answer?)
    }

    /// The counters.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }

    /// Requests waiting now.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Workers awake now: the first, and the helpers that busy batches called.
    pub fn awake(&self) -> usize {
        self.config
            .workers
            .max(1)
            .saturating_sub(self.helpers.asleep())
    }
}

/// A model whose recent calls took this long on average is slow: its workers all wait on the
/// queue, as a request that arrives during a call would wait that long for it, against the tens
/// of microseconds a thread takes to wake.
const SLOW_CALL: Duration = Duration::from_millis(1);

/// How long a helper of a fast model waits on an empty queue before it sleeps again.
const LINGER: Duration = Duration::from_millis(10);

/// A thread serving the queue: the first always; a helper from a call as long as its batches are
/// busy (see [`Worker::work`]).
struct Worker {
    runtime: Arc<dyn ModelRuntime>,
    config: BatchConfig,
    requests: Receiver<Job>,
    stats: Arc<BatchStats>,
    helpers: Arc<Helpers>,
    pace: Arc<Pace>,
    first: bool,
}

impl Worker {
    /// Forms batches and runs them until the queue closes. A batch is busy, and calls a helper,
    /// when more work waits than one call at a time keeps up with: it left requests behind that
    /// it had no room for, or it is one request too large to share a call, or the model is slow.
    /// A helper sleeps again after a batch that is not busy.
    fn work(&self) {
        // A request that did not fit the last batch starts the next.
        let mut carried = None;
        loop {
            if !self.first && !self.helpers.wait() {
                return;
            }
            loop {
                let first = match carried.take() {
                    Some(job) => job,
                    None => match self.next_request() {
                        Ok(Some(job)) => job,
                        Ok(None) => break,
                        Err(Closed) => return,
                    },
                };
                let first = match first {
                    Job::Predict(request) => request,
                    Job::Infer(inference) => {
                        self.helpers.call();
                        let started = Instant::now();
                        run_inference(self.runtime.as_ref(), inference, &self.stats);
                        self.pace.record(started.elapsed());
                        continue;
                    }
                };
                let (batch, size) = next_batch(first, &self.requests, &mut carried, self.config);
                let full = size >= self.config.max_batch_size;
                let left_behind = carried.is_some() || (full && !self.requests.is_empty());
                let busy = left_behind || (full && batch.len() == 1) || self.pace.slow();
                if busy {
                    self.helpers.call();
                }
                let started = Instant::now();
                run_batch(self.runtime.as_ref(), batch, &self.stats);
                self.pace.record(started.elapsed());
                if !self.first && !busy {
                    break;
                }
            }
        }
    }

    /// The oldest queued request, waited for; a helper of a fast model waits [`LINGER`], then
    /// goes back to sleep (`None`).
    fn next_request(&self) -> Result<Option<Job>, Closed> {
        let next = match self.first || self.pace.slow() {
            true => self
                .requests
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
            false => self.requests.recv_timeout(LINGER),
        };
        match next {
            Ok(request) => Ok(Some(request)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Closed),
        }
    }
}

/// The model's recent call time, over all workers.
#[derive(Default)]
struct Pace {
    /// Nanoseconds: a moving average weighting each call a quarter, a call counted as at most
    /// twice [`SLOW_CALL`] so that it takes three slow calls running to make the model slow (one
    /// preempted call of a fast model does not).
    average: AtomicU64,
}

impl Pace {
    const CAP: u64 = 2 * SLOW_CALL.as_nanos() as u64;

    fn record(&self, call: Duration) {
        let call = u64::try_from(call.as_nanos()).map_or(Self::CAP, |call| call.min(Self::CAP));
        let average = self.average.load(Ordering::Relaxed);
        self.average
            .store(average - average / 4 + call / 4, Ordering::Relaxed);
    }

    fn slow(&self) -> bool {
        self.average.load(Ordering::Relaxed) >= SLOW_CALL.as_nanos() as u64
    }
}

/// The batcher is gone.
struct Closed;

/// `first` and the requests queued behind it, up to `max_batch_size` instances and `max_wait`,
/// with their instance count. Tensors end the batch.
fn next_batch(
    first: Request,
    requests: &Receiver<Job>,
    carried: &mut Option<Job>,
    config: BatchConfig,
) -> (Vec<Request>, usize) {
    let mut size = first.instances.len();
    let mut batch = vec![first];
    let deadline = Instant::now() + config.max_wait;
    while size < config.max_batch_size {
        let next = match config.max_wait.is_zero() {
            true => requests.try_recv().ok(),
            false => requests.recv_deadline(deadline).ok(),
        };
        let request = match next {
            Some(Job::Predict(request)) => request,
            Some(job @ Job::Infer(_)) => {
                *carried = Some(job);
                break;
            }
            None => break,
        };
        if size + request.instances.len() > config.max_batch_size {
            *carried = Some(Job::Predict(request));
            break;
        }
        size += request.instances.len();
        batch.push(request);
    }
    (batch, size)
}

/// One model call for the whole batch, or one per request when an instance spoils it.
fn run_batch(runtime: &dyn ModelRuntime, batch: Vec<Request>, stats: &BatchStats) {
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    if batch.len() == 1 {
        let request = batch.into_iter().next();
        if let Some(Request { instances, reply }) = request {
            let answer = call(runtime, &text(&instances));
            if answer.is_ok() {
                stats
                    .instances
                    .fetch_add(instances.len() as u64, Ordering::Relaxed);
            }
            let _ = reply.send(answer);
        }
        return;
    }
    let instances: Vec<&str> = batch
        .iter()
        .flat_map(|request| request.instances.iter())
        .collect();
    match call(runtime, &instances) {
        Ok(mut predictions) => {
            stats
                .instances
                .fetch_add(predictions.len() as u64, Ordering::Relaxed);
            for request in batch {
                let rest = predictions.split_off(request.instances.len().min(predictions.len()));
                let _ = request
                    .reply
                    .send(Ok(std::mem::replace(&mut predictions, rest)));
            }
        }
        Err(_) => {
            for request in batch {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                let answer = call(runtime, &text(&request.instances));
                if answer.is_ok() {
                    stats
                        .instances
                        .fetch_add(request.instances.len() as u64, Ordering::Relaxed);
                }
                let _ = request.reply.send(answer);
            }
        }
    }
}

/// One model call on tensors.
fn run_inference(runtime: &dyn ModelRuntime, inference: Inference, stats: &BatchStats) {
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let Inference { inputs, reply } = inference;
    let rows = inputs
        .first()
        .and_then(|input| input.array.shape.first().copied())
        .unwrap_or_default();
    let answer = guarded(|| match runtime.tensors() {
        Some(tensors) => tensors.infer(inputs),
        None => Err(takes_instances_only()),
    });
    if answer.is_ok() {
        stats.instances.fetch_add(rows as u64, Ordering::Relaxed);
    }
    let _ = reply.send(answer);
}

/// The refusal of tensors by a model without a tensor path.
fn takes_instances_only() -> ServeError {
    ServeError::Request("this model takes instances, not tensors".into())
}

/// One model call on instances.
fn call(runtime: &dyn ModelRuntime, instances: &[&str]) -> Result<Vec<Value>, ServeError> {
    guarded(|| runtime.predict_json(instances))
}

/// Runs a model call; a panic in the model fails the call's requests, not the worker.
fn guarded<T>(call: impl FnOnce() -> Result<T, ServeError>) -> Result<T, ServeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|_| {
        tracing::error!("a model call panicked");
        Err(ServeError::Request(
            "the model failed (it panicked; see the server log)".into(),
        ))
    })
}

fn text(instances: &Instances) -> Vec<&str> {
    instances.iter().collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use serde_json::json;

    /// Doubles numbers, slowly; refuses strings; panics on "panic".
    struct Doubler {
        delay: Duration,
    }

    impl ModelRuntime for Doubler {
        fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError> {
            std::thread::sleep(self.delay);
            instances
                .iter()
                .enumerate()
                .map(|(index, value)| match value.as_f64() {
                    _ if value == "panic" => panic!("asked to"),
                    Some(number) => Ok(json!(number * 2.0)),
                    None => Err(ServeError::Instance {
                        index,
                        message: "not a number".into(),
                    }),
                })
                .collect()
        }
    }

    fn text_of(instances: &[Value]) -> Instances {
        crate::instance_text(instances)
    }

    fn batcher(delay_ms: u64, config: BatchConfig) -> Arc<Batcher> {
        let runtime = Arc::new(Doubler {
            delay: Duration::from_millis(delay_ms),
        });
        Arc::new(Batcher::start(runtime, config).unwrap())
    }

    /// A batcher with one worker and the default batching.
    fn one_worker(delay_ms: u64) -> Arc<Batcher> {
        let config = BatchConfig {
            workers: 1,
            max_batch_size: 64,
            ..BatchConfig::default()
        };
        batcher(delay_ms, config)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_model_calls_and_get_their_own_answers() {
        let batcher = one_worker(5);
        let calls: Vec<_> = (0..40)
            .map(|i| {
                let batcher = Arc::clone(&batcher);
                tokio::spawn(
                    async move { (i, batcher.predict(text_of(&[json!(i), json!(-i)])).await) },
                )
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.unwrap();
            assert_eq!(
                answer.unwrap(),
                [json!(2.0 * i as f64), json!(-2.0 * i as f64)]
            );
        }
        let stats = batcher.stats();
        let batches = stats.batches.load(Ordering::Relaxed);
        assert_eq!(stats.requests.load(Ordering::Relaxed), 40);
        assert_eq!(stats.instances.load(Ordering::Relaxed), 80);
        assert!(
            (2..40).contains(&batches),
            "{batches} model calls for 40 requests of 2 (at most 64 instances per call)"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_holds_a_bounded_number_of_bytes_but_admits_any_request_alone() {
        let config = BatchConfig {
            workers: 1,
            max_queued_bytes: 100,
            ..BatchConfig::default()
        };
        let batcher = batcher(50, config);
        let big: Vec<Value> = (0..100).map(|i| json!(i)).collect();
        assert_eq!(batcher.predict(text_of(&big)).await.unwrap().len(), 100);
        assert_eq!(batcher.stats().queued_bytes.load(Ordering::Relaxed), 0);
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let batcher = Arc::clone(&batcher);
                let forty: Vec<Value> = (0..15).map(|i| json!(i)).collect();
                tokio::spawn(async move { batcher.predict(text_of(&forty)).await })
            })
            .collect();
        let mut refused = 0;
        for call in calls {
            match call.await.unwrap() {
                Err(BatchError::Overloaded(why)) if why.contains("at most 100") => refused += 1,
                Ok(answer) => assert_eq!(answer.len(), 15),
                Err(other) => panic!("{other}"),
            }
        }
        assert!(
            refused > 0,
            "six requests of about 40 bytes exceed 100 bytes at once"
        );
        assert_eq!(batcher.stats().queued_bytes.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_and_a_bad_instance_fails_only_its_request() {
        let config = BatchConfig {
            workers: 1,
            max_queued: 2,
            max_batch_size: 1,
            ..BatchConfig::default()
        };
        let batcher = batcher(30, config);
        let calls: Vec<_> = (0..12)
            .map(|i| {
                let batcher = Arc::clone(&batcher);
                tokio::spawn(async move { batcher.predict(text_of(&[json!(i)])).await })
            })
            .collect();
        let mut refused = 0;
        for call in calls {
            match call.await.unwrap() {
                Err(BatchError::Overloaded(why)) if why.contains("2 requests") => refused += 1,
                Ok(answer) => assert_eq!(answer.len(), 1),
                Err(other) => panic!("{other}"),
            }
        }
        assert!(refused > 0, "a queue of 2 cannot hold 12 requests at once");
        assert_eq!(batcher.stats().rejected.load(Ordering::Relaxed), refused);

        let batcher = batcher_with_wait();
        let good = {
            let batcher = Arc::clone(&batcher);
            tokio::spawn(async move { batcher.predict(text_of(&[json!(1), json!(2)])).await })
        };
        let bad = {
            let batcher = Arc::clone(&batcher);
            tokio::spawn(async move { batcher.predict(text_of(&[json!(3), json!("x")])).await })
        };
        assert_eq!(good.await.unwrap().unwrap(), [json!(2.0), json!(4.0)]);
        match bad.await.unwrap() {
            Err(BatchError::Serve(ServeError::Instance { index: 1, .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_model_call_fails_its_request_and_the_worker_goes_on() {
        let batcher = one_worker(0);
        match batcher.predict(text_of(&[json!("panic")])).await {
            Err(BatchError::Serve(ServeError::Request(message))) => {
                assert!(message.contains("panicked"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let answer = batcher.predict(text_of(&[json!(2)])).await.unwrap();
        assert_eq!(answer, [json!(4.0)], "the only worker still serves");
        assert_eq!(batcher.queued(), 0);
    }

    /// Echoes its instances after `delay`, noting the threads that ran it, the most calls
    /// running at once and the longest call.
    #[derive(Default)]
    struct Watcher {
        delay: Duration,
        running: AtomicUsize,
        most: AtomicUsize,
        threads: Mutex<HashSet<String>>,
        longest: Mutex<Duration>,
    }

    impl Watcher {
        /// Some call took as long as a slow model's: on a loaded machine a short sleep can, and
        /// then the batcher rightly calls helpers whatever its batches hold.
        fn was_slow(&self) -> bool {
            *self.longest.lock().unwrap() >= SLOW_CALL
        }
    }

    impl ModelRuntime for Watcher {
        fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError> {
            let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(running, Ordering::SeqCst);
            let thread = std::thread::current().name().unwrap_or_default().to_owned();
            self.threads.lock().unwrap().insert(thread);
            let started = Instant::now();
            std::thread::sleep(self.delay);
            let took = started.elapsed();
            let mut longest = self.longest.lock().unwrap();
            *longest = (*longest).max(took);
            drop(longest);
            self.running.fetch_sub(1, Ordering::SeqCst);
            Ok(instances.to_vec())
        }
    }

    /// Two workers on a [`Watcher`].
    fn watched(delay: Duration, max_batch_size: usize) -> (Arc<Watcher>, Arc<Batcher>) {
        let watcher = Arc::new(Watcher {
            delay,
            ..Watcher::default()
        });
        let config = BatchConfig {
            workers: 2,
            max_batch_size,
            ..BatchConfig::default()
        };
        let batcher = Batcher::start(Arc::clone(&watcher) as Arc<dyn ModelRuntime>, config);
        (watcher, Arc::new(batcher.unwrap()))
    }

    /// `clients` tasks each sending `requests` one-instance requests in turn.
    async fn load(batcher: &Arc<Batcher>, clients: usize, requests: usize) {
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let batcher = Arc::clone(batcher);
                tokio::spawn(async move {
                    for request in 0..requests {
                        let instance = json!(client * requests + request);
                        let answer = batcher
                            .predict(text_of(std::slice::from_ref(&instance)))
                            .await;
                        assert_eq!(answer.unwrap(), [instance]);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// Waits up to ten seconds for `done`, failing with `failure`.
    async fn eventually(failure: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{failure}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_worker_serves_while_it_keeps_up_and_every_worker_ends_with_the_batcher() {
        let (watcher, batcher) = watched(Duration::ZERO, 64);
        load(&batcher, 4, 50).await;
        assert!(
            *watcher.threads.lock().unwrap() == HashSet::from(["kiln-predict-0".to_owned()])
                || watcher.was_slow(),
            "four clients of a fast model never fill a batch of 64: the helper sleeps"
        );
        drop(batcher);
        eventually("a worker outlived its batcher", || {
            Arc::strong_count(&watcher) == 1
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_batch_calls_a_helper_only_when_requests_are_left_waiting() {
        let (watcher, batcher) = watched(Duration::from_micros(200), 4);
        load(&batcher, 4, 25).await;
        assert!(
            watcher.most.load(Ordering::SeqCst) == 1 || watcher.was_slow(),
            "four clients fill batches of four and leave nothing waiting: one worker keeps up"
        );
        load(&batcher, 8, 25).await;
        assert_eq!(watcher.most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_batches_wake_a_helper_that_sleeps_again_when_they_stop() {
        let (watcher, batcher) = watched(Duration::from_micros(200), 1);
        load(&batcher, 4, 25).await;
        assert_eq!(watcher.most.load(Ordering::SeqCst), 2);
        eventually("the helper stayed awake with nothing to do", || {
            batcher.awake() == 1
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_model_keeps_every_worker_on_the_queue() {
        let (watcher, batcher) = watched(Duration::from_millis(20), 64);
        // Three calls in turn make the model slow; batches of one are never full.
        load(&batcher, 1, 3).await;
        assert_eq!(watcher.most.load(Ordering::SeqCst), 1);
        let first = {
            let batcher = Arc::clone(&batcher);
            tokio::spawn(async move { batcher.predict(text_of(&[json!(1)])).await })
        };
        while watcher.running.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let second = batcher.predict(text_of(&[json!(2)])).await;
        assert_eq!(second.unwrap(), [json!(2)]);
        assert_eq!(first.await.unwrap().unwrap(), [json!(1)]);
        assert_eq!(
            watcher.most.load(Ordering::SeqCst),
            2,
            "the second request ran beside the first"
        );
    }

    /// A batcher that waits long enough for two requests to share a batch.
    fn batcher_with_wait() -> Arc<Batcher> {
        batcher(
            1,
            BatchConfig {
                max_wait: Duration::from_millis(200),
                workers: 1,
                ..BatchConfig::default()
            },
        )
    }

    /// Sums rows: of a `[batch, n]` float tensor, or of instances that are lists of numbers.
    struct RowSums;

    impl ModelRuntime for RowSums {
        fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError> {
            Ok(instances
                .iter()
                .map(|row| {
                    let numbers = row.as_array().into_iter().flatten();
                    json!(numbers.filter_map(Value::as_f64).sum::<f64>())
                })
                .collect())
        }

        fn tensors(&self) -> Option<&dyn crate::TensorRuntime> {
            Some(self)
        }
    }

    impl crate::TensorRuntime for RowSums {
        fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ServeError> {
            use crate::tensor::{Array, Data};
            let [Tensor { array, .. }] = inputs.as_slice() else {
                return Err(ServeError::Request("one input".into()));
            };
            let (Data::F32(values), [_, width]) = (&array.data, array.shape.as_slice()) else {
                return Err(ServeError::Request("a [batch, n] float32 input".into()));
            };
            let sums: Vec<f32> = values.chunks(*width).map(|row| row.iter().sum()).collect();
            Ok(vec![Tensor {
                name: "sum".into(),
                array: Array {
                    shape: vec![sums.len()],
                    data: Data::F32(sums),
                },
            }])
        }
    }

    fn rows(rows: &[[f32; 2]]) -> Vec<Tensor> {
        vec![Tensor {
            name: "x".into(),
            array: crate::tensor::Array {
                shape: vec![rows.len(), 2],
                data: crate::tensor::Data::F32(rows.concat()),
            },
        }]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tensors_run_calls_of_their_own_among_instances() {
        let config = BatchConfig {
            workers: 2,
            ..BatchConfig::default()
        };
        let batcher = Arc::new(Batcher::start(Arc::new(RowSums), config).unwrap());
        assert!(batcher.takes_tensors());
        let calls: Vec<_> = (0..40)
            .map(|index| {
                let batcher = Arc::clone(&batcher);
                let number = index as f32;
                tokio::spawn(async move {
                    match index % 2 {
                        0 => {
                            let sums = batcher.infer(rows(&[[number, 1.0], [number, 2.0]])).await;
                            let sums = sums.unwrap();
                            let data = crate::tensor::Data::F32(vec![number + 1.0, number + 2.0]);
                            assert_eq!(
                                (sums[0].name.as_str(), &sums[0].array.data),
                                ("sum", &data)
                            );
                        }
                        _ => {
                            let instances = text_of(&[json!([number, 3.0])]);
                            let sums = batcher.predict(instances).await.unwrap();
                            assert_eq!(sums, [json!(f64::from(number) + 3.0)]);
                        }
                    }
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
        let stats = batcher.stats();
        assert_eq!(stats.requests.load(Ordering::Relaxed), 40);
        assert_eq!(stats.instances.load(Ordering::Relaxed), 20 * 2 + 20);
        assert!(
            stats.batches.load(Ordering::Relaxed) >= 20,
            "one call per tensor request"
        );
        assert_eq!(stats.queued_bytes.load(Ordering::Relaxed), 0);

        let doubler = one_worker(0);
        assert!(!doubler.takes_tensors());
        let refused = doubler.infer(rows(&[[1.0, 2.0]])).await.unwrap_err();
        assert!(
            refused.to_string().contains("takes instances, not tensors"),
            "{refused}"
        );
    }
}
