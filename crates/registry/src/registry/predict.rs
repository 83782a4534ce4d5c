//! Predict and explain: the version a request addresses (waiting for one being created), its
//! loaded model from the route table or the pool, the explanation method it asks for, and the
//! files a batch prediction reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_api::PredictRequest;
use kiln_api::model::{Version, VersionState};
use kiln_api::names::short;
use kiln_serve::explain::{self, Method};
use serde_json::Value;

use super::pool::int64;
use super::{PredictTarget, Registry};
use crate::RegistryError;
use crate::routes;
use crate::serving::{Serving, check_instances};

/// Longest a predict request waits for its version to finish creating.
const CREATE_HOLD: Duration = Duration::from_secs(60);

/// Paths sampled per explanation when the version's `explanationConfig` sets none.
const DEFAULT_SHAPLEY_PATHS: usize = 10;

/// The method of a version whose `explanationConfig` names none.
const DEFAULT_METHOD: Method = Method::SampledShapley {
    paths: DEFAULT_SHAPLEY_PATHS,
};

/// Integral steps when `integratedGradientsAttribution` sets none (Vertex AI's default).
const DEFAULT_INTEGRAL_STEPS: usize = 50;

/// An attribution method of `explanationConfig`, and the bounds of its one setting.
struct ExplanationMethod {
    field: &'static str,
    /// The setting as errors name it (snake case, from the method).
    error_field: &'static str,
    count: &'static str,
    default: usize,
    most: usize,
    make: fn(usize) -> Method,
}

const EXPLANATION_METHODS: [ExplanationMethod; 2] = [
    ExplanationMethod {
        field: "integratedGradientsAttribution",
        error_field: "integrated_gradients_attribution.num_integral_steps",
        count: "numIntegralSteps",
        default: DEFAULT_INTEGRAL_STEPS,
        most: explain::MAX_STEPS,
        make: |steps| Method::IntegratedGradients { steps },
    },
    ExplanationMethod {
        field: "sampledShapleyAttribution",
        error_field: "sampled_shapley_attribution.num_paths",
        count: "numPaths",
        default: DEFAULT_SHAPLEY_PATHS,
        most: explain::MAX_PATHS,
        make: |paths| Method::SampledShapley { paths },
    },
];

/// The attribution method `version`'s `explanationConfig` asks for (`DEFAULT_METHOD` when it
/// names none).
fn explanation_method(version: &Version) -> Result<Method, RegistryError> {
    let Some(config) = &version.explanation_config else {
        return Ok(DEFAULT_METHOD);
    };
    if config.get("xraiAttribution").is_some() {
        return Err(RegistryError::InvalidArgument(
            "Field: explanation_config.xrai_attribution Error: XRAI explains images; not \
             supported by Kiln (use sampledShapleyAttribution or integratedGradientsAttribution)"
                .into(),
        ));
    }
    for method in EXPLANATION_METHODS {
        let Some(settings) = config.get(method.field) else {
            continue;
        };
        return match settings.get(method.count).map(int64) {
            None => Ok((method.make)(method.default)),
            Some(Some(value)) if (1..=method.most as u64).contains(&value) => {
                Ok((method.make)(value as usize))
            }
            Some(_) => Err(RegistryError::InvalidArgument(format!(
                "Field: explanation_config.{} Error: must be between 1 and {}",
                method.error_field, method.most
            ))),
        };
    }
    Ok(DEFAULT_METHOD)
}

/// `version` if it is READY; otherwise why it cannot serve.
fn require_ready(version: Version, model: &str) -> Result<Version, RegistryError> {
    if version.state == VersionState::Ready {
        return Ok(version);
    }
    let detail = match version.error_message.is_empty() {
        true => String::new(),
        false => format!(": {}", version.error_message),
    };
    Err(RegistryError::FailedPrecondition(format!(
        "version \"{}\" of model \"{model}\" is {:?}, not READY{detail}",
        short(&version.name),
        version.state
    )))
}

impl Registry {
    /// `projects.predict` on a model (its default version) or a version.
    pub async fn predict(
        &self,
        target: PredictTarget<'_>,
        request: PredictRequest,
    ) -> Result<Vec<Value>, RegistryError> {
        self.serving(&target).await?.predict(request).await
    }

    /// The version a prediction on `target` goes to, once it serves, with its loaded model (the
    /// Open Inference Protocol's metadata, readiness and inference), from the route table when
    /// it is there.
    pub async fn serving(&self, target: &PredictTarget<'_>) -> Result<Serving, RegistryError> {
        let key = routes::key(target.project, target.model, target.version);
        let generation = match self.routes.get(&key) {
            Ok(serving) => return Ok(serving),
            Err(generation) => generation,
        };
        let version = self.ready_version(target).await?;
        let server = self.server(&version).await?;
        let serving = Serving {
            version: Arc::new(version),
            server,
        };
        self.routes.insert(key, serving.clone(), generation);
        Ok(serving)
    }

    /// `projects.explain`: attributions of each instance's named inputs by the version's
    /// method (`kiln_serve::explain`), run through the version's batcher like any prediction.
    pub async fn explain(
        &self,
        target: PredictTarget<'_>,
        request: PredictRequest,
    ) -> Result<Vec<Value>, RegistryError> {
        let serving = self.serving(&target).await?;
        let method = explanation_method(&serving.version)?;
        check_instances(&request)?;
        let instances: Vec<&str> = request.instances.iter().collect();
        let instances = kiln_serve::parse_instances(&instances)
            .map_err(|error| RegistryError::InvalidArgument(error.to_string()))?;
        let mut explanations = Vec::with_capacity(instances.len());
        for (index, instance) in instances.iter().enumerate() {
            let plan = explain::plan(instance, method, index as u64).map_err(|message| {
                RegistryError::InvalidArgument(format!("instances[{index}]: {message}"))
            })?;
            let predictions = serving
                .server
                .predict(kiln_serve::instance_text(&plan.instances))
                .await
                .map_err(|error| serving.error(error))?;
            explanations.push(
                plan.attribute(&predictions)
                    .map_err(RegistryError::Prediction)?,
            );
        }
        Ok(explanations)
    }

    /// The version a predict or explain request addresses, once READY: the model's default when
    /// none is named; a version being created is waited for.
    async fn ready_version(&self, target: &PredictTarget<'_>) -> Result<Version, RegistryError> {
        let version = self.addressed_version(target.project, target.model, target.version)?;
        let version = self
            .when_created(target.project, target.model, version)
            .await?;
        require_ready(version, target.model)
    }

    /// `version` of `model`, or the model's default version.
    fn addressed_version(
        &self,
        project: &str,
        model: &str,
        version: Option<&str>,
    ) -> Result<Version, RegistryError> {
        match version {
            Some(name) => self.existing_version(project, model, name),
            None => {
                self.existing_model(project, model)?;
                self.store
                    .list_versions(project, model)?
                    .into_iter()
                    .find(|version| version.is_default)
                    .ok_or_else(|| {
                        RegistryError::FailedPrecondition(format!(
                            "model \"{model}\" has no default version; create a version first"
                        ))
                    })
            }
        }
    }

    /// `version` once it is no longer CREATING: a request for a version being created waits for
    /// it (up to [`CREATE_HOLD`]) instead of failing.
    async fn when_created(
        &self,
        project: &str,
        model: &str,
        mut version: Version,
    ) -> Result<Version, RegistryError> {
        let deadline = tokio::time::Instant::now() + CREATE_HOLD;
        while version.state == VersionState::Creating && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            version = self.existing_version(project, model, short(&version.name))?;
        }
        Ok(version)
    }

    /// The files a batch prediction job predicts with: `version` of `model`, or the model's
    /// default version; READY versions only.
    pub fn serving_dir(
        &self,
        project: &str,
        model: &str,
        version: Option<&str>,
    ) -> Result<(PathBuf, Version), RegistryError> {
        let version = require_ready(self.addressed_version(project, model, version)?, model)?;
        Ok((self.artifacts.local_path(&version.name), version))
    }

    /// Makes sure the files of a version that [`Registry::serving_dir`] named are on the local
    /// disk (a managed root in a bucket copies them on first use).
    pub(crate) async fn ensure_local(&self, dir: &std::path::Path) -> Result<(), String> {
        let Some(key) = self.artifacts.key_of(dir) else {
            return Ok(());
        };
        let version = match key.split('/').collect::<Vec<_>>().as_slice() {
            ["projects", project, "models", model, "versions", name] => {
                self.store.get_version(project, model, name)
            }
            _ => return Ok(()),
        };
        let stamp = match version {
            Ok(Some(version)) => version.create_time,
            Ok(None) => return Err(format!("{key} no longer exists")),
            Err(error) => return Err(error.to_string()),
        };
        self.artifacts
            .local(&key, &stamp)
            .await
            .map(|_| ())
            .map_err(|error| error.to_string())
    }
}
