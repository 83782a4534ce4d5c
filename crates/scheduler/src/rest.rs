//! The HTTP client the cluster executors reach their engine's REST API with. Every error names
//! the engine and its address, since it ends up in a job's `errorMessage` or the server's startup
//! failure.

use std::time::Duration;

use crate::SchedulerError;

/// An engine's REST API at one address.
#[derive(Debug)]
pub(crate) struct Rest {
    http: reqwest::Client,
    /// `Slurm`, `Ray`.
    engine: &'static str,
    /// The API's root, without a trailing `/`.
    base: String,
}

impl Rest {
    /// A client of `engine`'s API under `base`.
    pub(crate) fn new(engine: &'static str, base: &str) -> Result<Self, SchedulerError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|error| SchedulerError::Io(error.to_string()))?;
        Ok(Self {
            http,
            engine,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// A request for `path` under the API's root.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}/{path}", self.base))
    }

    /// An error in `words`, naming the engine: `Slurm at http://…: {words}`.
    pub(crate) fn error(&self, words: impl std::fmt::Display) -> SchedulerError {
        SchedulerError::Io(format!("{} at {} {words}", self.engine, self.base))
    }

    /// Sends `request`; returns the answer's status and text.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, String), SchedulerError> {
        let unreachable = |error| self.error(format_args!("is unreachable: {error}"));
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        Ok((status, text))
    }

    /// Sends `request` and reads the answer as JSON, whatever its status (engines put their
    /// errors in it).
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SchedulerError> {
        let (status, text) = self.send(request).await?;
        serde_json::from_str(&text).map_err(|_| {
            self.error(format_args!(
                "answered {status} with something that is not its JSON: {}",
                text.chars().take(300).collect::<String>()
            ))
        })
    }
}
