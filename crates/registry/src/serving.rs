//! A version that serves, with its loaded model: what predictions, explanations and the Open
//! Inference Protocol run on once a request's target is resolved.
//!
//! Every call goes through the version's batcher, whose queue bounds the work waiting, except
//! a prediction on another signature than the default, which is served a request per call
//! beside it.

use std::sync::Arc;

use kiln_api::PredictRequest;
use kiln_api::model::Version;
use kiln_serve::ServeError;
use kiln_serve::batcher::{BatchError, Batcher};
use kiln_serve::signature::Signature;
use kiln_serve::tensor::Tensor;
use serde_json::Value;

use crate::RegistryError;

/// A READY version and the batcher of its loaded model.
#[derive(Clone)]
pub struct Serving {
    pub(crate) version: Arc<Version>,
    pub(crate) server: Arc<Batcher>,
}

impl Serving {
    /// The version.
    pub fn version(&self) -> &Arc<Version> {
        &self.version
    }

    /// What its model takes and returns.
    pub fn signature(&self) -> &Signature {
        self.server.signature()
    }

    /// An instance its model takes, at typical values, when the model says what it takes.
    pub fn example_instance(&self) -> Option<Value> {
        self.server.runtime().example_instance()
    }

    /// Whether [`Serving::infer`] serves it: its model reads named tensors itself. Otherwise a
    /// tensor's rows are given to [`Serving::predict`] as instances.
    pub fn takes_tensors(&self) -> bool {
        self.server.takes_tensors()
    }

    /// `projects.predict`: the predictions of `request`'s instances.
    pub async fn predict(&self, request: PredictRequest) -> Result<Vec<Value>, RegistryError> {
        check_instances(&request)?;
        let signature = request.signature_name.as_deref().unwrap_or_default();
        let other = match signature {
            "" => None,
            name => self
                .server
                .runtime()
                .for_signature(name)
                .map_err(|error| self.error(BatchError::Serve(error)))?,
        };
        let Some(runtime) = other else {
            return self
                .server
                .predict(request.instances)
                .await
                .map_err(|error| self.error(error));
        };
        let instances = request.instances;
        tokio::task::spawn_blocking(move || {
            let texts: Vec<&str> = instances.iter().collect();
            runtime.predict_json(&texts)
        })
        .await
        .map_err(|error| RegistryError::Internal(format!("prediction task failed: {error}")))?
        .map_err(|error| self.error(BatchError::Serve(error)))
    }

    /// Inference on named tensors, for a model that [takes them](Serving::takes_tensors): its
    /// output tensors.
    pub async fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, RegistryError> {
        self.server
            .infer(inputs)
            .await
            .map_err(|error| self.error(error))
    }

    /// The batcher's refusal as the API reports it.
    pub(crate) fn error(&self, error: BatchError) -> RegistryError {
        let name = &self.version.name;
        match error {
            BatchError::Overloaded(_) => {
                RegistryError::ResourceExhausted(format!("version {name}: {error}"))
            }
            BatchError::Serve(ServeError::Unsupported(_) | ServeError::Load(_)) => {
                RegistryError::Prediction(format!("Failed to load model: {error}"))
            }
            BatchError::Serve(ServeError::Worker(_)) => {
                RegistryError::Internal(format!("version {name}: {error}"))
            }
            BatchError::Serve(_) => RegistryError::Prediction(error.to_string()),
            BatchError::Stopped => RegistryError::FailedPrecondition(format!(
                "version {name} was deleted while the request waited"
            )),
        }
    }
}

/// A predict or explain request needs at least one instance.
pub(crate) fn check_instances(request: &PredictRequest) -> Result<(), RegistryError> {
    match request.instances.is_empty() {
        true => Err(RegistryError::InvalidArgument(
            "instances must hold at least one instance".into(),
        )),
        false => Ok(()),
    }
}
