//! The registry service.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_api::model::{Framework, Version, VersionState};
use kiln_api::names::{
    check_description, check_labels, check_name, check_project, given_name, short,
};
use kiln_api::operation::{EMPTY_TYPE, MODEL_TYPE, OperationType, VERSION_TYPE};
use kiln_api::{
    Code, ListModelsResponse, ListOperationsResponse, ListVersionsResponse, Model, Operation,
    PredictRequest,
};
use kiln_artifacts::bucket;
use kiln_artifacts::{ArtifactStore, PathPolicy};
use kiln_scheduler::program::{PACKAGE_SUFFIXES, is_package};
use kiln_serve::batcher::{BatchConfig, Batcher};
use kiln_serve::explain::{self, Method};
use kiln_serve::python::{Frameworks, Routine, runtimes};
use kiln_serve::{LoadOptions, ModelRuntime};
use kiln_store::{Scan, Store};
use serde_json::Value;

use crate::error::refusable;
use crate::list::ListParams;
use crate::owners::{Roll, ServerId};
use crate::routes::{self, Routes};
use crate::serving::{Serving, check_instances};
use crate::{RegistryError, operations};

/// The default region of a model, as ML Engine's.
pub const DEFAULT_REGION: &str = "us-central1";

/// What a predict call addresses.
#[derive(Debug, Clone, Copy)]
pub struct PredictTarget<'a> {
    /// Project.
    pub project: &'a str,
    /// Model.
    pub model: &'a str,
    /// Version; the model's default when `None`.
    pub version: Option<&'a str>,
}

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

/// `autoScaling.minNodes` of a version, when it sets one.
fn min_nodes(version: &Version) -> Option<u64> {
    int64(version.auto_scaling.as_ref()?.get("minNodes")?)
}

/// A non-negative int64 field of an untyped part of a version: a string, as the API writes
/// int64s, or a number.
fn int64(value: &Value) -> Option<u64> {
    match value {
        Value::String(text) => text.trim().parse().ok(),
        other => other.as_u64(),
    }
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

/// A version's custom prediction routine, with its packages on this machine: those in buckets
/// downloaded into a temporary directory, which must outlive the load that installs them.
async fn routine_packages(
    version: &Version,
) -> Result<Option<(Routine, Option<tempfile::TempDir>)>, String> {
    if version.prediction_class.is_empty() {
        return Ok(None);
    }
    let downloaded = version
        .package_uris
        .iter()
        .any(|uri| bucket::is_bucket(uri))
        .then(tempfile::tempdir)
        .transpose()
        .map_err(|error| error.to_string())?;
    let mut packages = Vec::new();
    for uri in &version.package_uris {
        let path = match &downloaded {
            Some(dir) if bucket::is_bucket(uri) => bucket::fetch(uri, dir.path())
                .await
                .map_err(|error| format!("{uri}: {error}"))?,
            _ => PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri)),
        };
        packages.push(path);
    }
    let routine = Routine {
        class: version.prediction_class.clone(),
        packages,
    };
    Ok(Some((routine, downloaded)))
}

/// Longest a predict request waits for its version to finish creating.
const CREATE_HOLD: Duration = Duration::from_secs(60);

/// The registry: models, versions, operations and prediction routing.
pub struct Registry {
    pub(crate) store: Arc<dyn Store>,
    /// This server, as the owner of what it creates.
    server: ServerId,
    artifacts: ArtifactStore,
    /// Where `deploymentUri`s may point.
    paths: PathPolicy,
    /// Loaded models behind their batchers, by full version name. A std mutex: held only to look
    /// up or insert.
    pub(crate) servers: Mutex<HashMap<String, Arc<Batcher>>>,
    /// How predict requests are batched (a version's `manualScaling.nodes` sets its workers).
    batching: BatchConfig,
    /// Where predict requests go, remembered between store changes.
    routes: Routes,
    /// How TensorFlow, scikit-learn and XGBoost models are served (`None`: refused).
    frameworks: Option<Frameworks>,
}

/// Held while models or versions change; forgets the predict routes when dropped, after the
/// change is written. A rule that reads before it writes (the delete rules, set default, an
/// etag) is kept by the store's transaction, so that two requests, on this server or another,
/// cannot both pass a check meant for one.
struct WriteGuard<'a> {
    routes: &'a Routes,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.routes.invalidate();
    }
}

fn model_key(project: &str, model: &str) -> String {
    format!("projects/{project}/models/{model}")
}

fn version_key(project: &str, model: &str, version: &str) -> String {
    format!("projects/{project}/models/{model}/versions/{version}")
}

/// Runs quick synchronous store work on tokio's blocking pool.
pub(crate) async fn on_store<T: Send + 'static>(
    store: &Arc<dyn Store>,
    work: impl FnOnce(&dyn Store) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || work(store.as_ref()))
        .await
        .map_err(|error| RegistryError::Internal(format!("metadata task failed: {error}")))?
}

/// One INVALID_ARGUMENT naming every problem, or nothing when there is none.
pub(crate) fn refuse_all(problems: Vec<String>) -> Result<(), RegistryError> {
    match problems.is_empty() {
        true => Ok(()),
        false => Err(RegistryError::InvalidArgument(problems.join("; "))),
    }
}

/// An etag: a short hash of the resource's JSON.
pub(crate) fn etag(value: &impl serde::Serialize) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(serde_json::to_vec(value).unwrap_or_default());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

fn check_mask<'a>(mask: &'a str, allowed: &[&str]) -> Result<Vec<&'a str>, RegistryError> {
    let paths: Vec<&str> = mask
        .split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .collect();
    if paths.is_empty() {
        return Err(RegistryError::InvalidArgument(
            "updateMask is required and names the fields to change".into(),
        ));
    }
    for path in &paths {
        if !allowed.contains(path) {
            return Err(RegistryError::InvalidArgument(format!(
                "updateMask field {path:?} cannot be updated; allowed: {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(paths)
}

impl Registry {
    /// A registry over a metadata store and an artifact root, deploying from where `paths` allows
    /// and batching predictions as `batching` says.
    pub fn new(
        store: Arc<dyn Store>,
        artifacts: ArtifactStore,
        paths: PathPolicy,
        batching: BatchConfig,
        frameworks: Option<Frameworks>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            server: ServerId::of_this_process(),
            artifacts,
            paths,
            servers: Mutex::new(HashMap::new()),
            batching,
            routes: Routes::default(),
            frameworks,
        })
    }

    /// Marks a change of models or versions (see [`WriteGuard`]).
    fn write(&self) -> WriteGuard<'_> {
        WriteGuard {
            routes: &self.routes,
        }
    }

    /// This server's identity, the owner of the operations and jobs it starts.
    pub fn identity(&self) -> &ServerId {
        &self.server
    }

    /// Ends this server's lease: it is shutting down, and others take over its work at once.
    pub fn leave(&self) -> Result<(), RegistryError> {
        Ok(self.server.leave(&*self.store)?)
    }

    /// Takes over the operations that servers gone by `roll` left unfinished (a previous process
    /// of this one included): a version create interrupted so is marked FAILED with a message
    /// saying so, and its operation is closed. Returns how many.
    pub fn recover(&self, roll: &Roll<'_>) -> Result<usize, RegistryError> {
        let mut taken = 0;
        for owned in self.store.unfinished_operations()? {
            if !roll.is_gone(&owned.owner)
                || !self.store.claim_operation(
                    &owned.project,
                    &owned.id,
                    &owned.owner,
                    self.server.as_str(),
                )?
            {
                continue;
            }
            let (project, mut operation) = (owned.project, owned.value);
            let message = "the server stopped while this operation ran; it did not complete";
            if let Some(version) = &operation.metadata.version {
                let model = short(&operation.metadata.model_name).to_string();
                let name = short(&version.name).to_string();
                let failed =
                    self.store
                        .update_version_with(&project, &model, &name, &mut |stored| {
                            if stored.state != VersionState::Creating {
                                return false;
                            }
                            stored.state = VersionState::Failed;
                            stored.error_message =
                                format!("{message}; delete the version and create it again");
                            stored.etag = etag(stored);
                            true
                        });
                match failed {
                    Ok(_) | Err(kiln_store::StoreError::NotFound(_)) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            operations::fail(&mut operation, Code::Aborted, message);
            self.store
                .update_operation(&project, &owned.id, &operation)?;
            taken += 1;
        }
        Ok(taken)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Store) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        on_store(&self.store, work).await
    }

    fn existing_model(&self, project: &str, name: &str) -> Result<Model, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        self.store.get_model(project, name)?.ok_or_else(|| {
            RegistryError::NotFound(format!(
                "Field: name Error: The model resource: \"{name}\" was not found."
            ))
        })
    }

    fn existing_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
    ) -> Result<Version, RegistryError> {
        self.existing_model(project, model)?;
        self.store.get_version(project, model, name)?.ok_or_else(|| {
            RegistryError::NotFound(format!("Field: name Error: The version resource: \"{name}\" of model \"{model}\" was not found."))
        })
    }

    fn with_default(&self, project: &str, mut model: Model) -> Result<Model, RegistryError> {
        let short_name = short(&model.name).to_string();
        model.default_version = self.store.default_version(project, &short_name)?;
        Ok(model)
    }

    /// `projects.models.create`.
    pub async fn create_model(
        &self,
        project: &str,
        mut model: Model,
    ) -> Result<Model, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        let name = given_name(
            "model.name",
            &model.name,
            &format!("projects/{project}/models"),
        )
        .map_err(RegistryError::InvalidArgument)?
        .to_string();
        if name.is_empty() {
            return Err(RegistryError::InvalidArgument(
                "Field: model.name Error: A name should be specified".into(),
            ));
        }
        check_name("model.name", &name).map_err(RegistryError::InvalidArgument)?;
        let mut problems = check_labels("model.labels", &model.labels);
        problems.extend(check_description("model.description", &model.description).err());
        refuse_all(problems)?;
        match model.regions.len() {
            0 => model.regions = vec![DEFAULT_REGION.to_string()],
            1 => {}
            n => {
                return Err(RegistryError::InvalidArgument(format!(
                    "Field: model.regions Error: exactly one region is allowed, got {n}"
                )));
            }
        }
        model.name = model_key(project, &name);
        model.default_version = None;
        model.etag = etag(&model);
        let project = project.to_string();
        let stored = model.clone();
        self.blocking(move |store| Ok(store.create_model(&project, &name, &stored)?))
            .await?;
        Ok(model)
    }

    /// `projects.models.get`.
    pub fn get_model(&self, project: &str, name: &str) -> Result<Model, RegistryError> {
        self.existing_model(project, name)
    }

    /// `projects.models.list`.
    pub fn list_models(
        &self,
        project: &str,
        params: &ListParams,
    ) -> Result<ListModelsResponse, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        let page = params.scan(
            &["defaultVersion"],
            |scan| {
                let after = scan.after.map(short);
                Ok(self.store.scan_models(project, &Scan { after, ..*scan })?)
            },
            |model: &Model| model.name.clone(),
            |name| Ok(self.store.get_model(project, short(name))?.is_some()),
        )?;
        Ok(ListModelsResponse {
            models: page.items,
            next_page_token: page.next_page_token,
        })
    }

    /// `projects.models.patch`: `description`, `labels` and `defaultVersion.name` by `updateMask`.
    pub async fn patch_model(
        &self,
        project: &str,
        name: &str,
        patch: Model,
        update_mask: &str,
    ) -> Result<Operation, RegistryError> {
        let _guard = self.write();
        let current = self.existing_model(project, name)?;
        let stale = |etag: &str| {
            (!patch.etag.is_empty() && patch.etag != etag).then(|| {
                RegistryError::Aborted(format!(
                    "etag {:?} does not match the model's current etag",
                    patch.etag
                ))
            })
        };
        if let Some(error) = stale(&current.etag) {
            return Err(error);
        }
        let paths = check_mask(
            update_mask,
            &["description", "labels", "defaultVersion.name"],
        )?;
        for path in &paths {
            match *path {
                "description" => check_description("model.description", &patch.description)
                    .map_err(RegistryError::InvalidArgument)?,
                "labels" => refuse_all(check_labels("model.labels", &patch.labels))?,
                _ => {
                    let version = patch
                        .default_version
                        .as_ref()
                        .map(|version| version.name.clone())
                        .unwrap_or_default();
                    self.make_default(project, name, short(&version))?;
                }
            }
        }
        let model = refusable(
            |change| self.store.update_model_with(project, name, change),
            |model: &mut Model| {
                if let Some(error) = stale(&model.etag) {
                    return Err(error);
                }
                for path in &paths {
                    match *path {
                        "description" => model.description = patch.description.clone(),
                        "labels" => model.labels = patch.labels.clone(),
                        _ => {}
                    }
                }
                model.default_version = None;
                model.etag = etag(model);
                Ok(())
            },
        )?
        .ok_or_else(|| RegistryError::Internal("the model change was declined".into()))?;
        let (id, mut operation) =
            operations::start(project, name, None, OperationType::UpdateModel, name);
        operations::succeed(
            &mut operation,
            MODEL_TYPE,
            serde_json::to_value(self.with_default(project, model)?).unwrap_or_default(),
        );
        self.store
            .create_operation(project, &id, &operation, self.server.as_str())?;
        Ok(operation)
    }

    /// `projects.models.delete`: only a model without versions.
    pub async fn delete_model(
        &self,
        project: &str,
        name: &str,
    ) -> Result<Operation, RegistryError> {
        let _guard = self.write();
        self.existing_model(project, name)?;
        let versions = self.store.list_versions(project, name)?;
        if !versions.is_empty() {
            return Err(RegistryError::FailedPrecondition(format!(
                "A model with versions cannot be deleted: model \"{name}\" has {} version(s); delete them first",
                versions.len()
            )));
        }
        self.store.delete_model(project, name)?;
        let (id, mut operation) =
            operations::start(project, name, None, OperationType::DeleteModel, name);
        operations::succeed(&mut operation, EMPTY_TYPE, Value::Null);
        self.store
            .create_operation(project, &id, &operation, self.server.as_str())?;
        Ok(operation)
    }

    /// `projects.models.versions.create`: validates, records the version as CREATING and returns
    /// the operation; copying `deploymentUri` and loading the model happen in the background.
    pub async fn create_version(
        self: &Arc<Self>,
        project: &str,
        model: &str,
        mut version: Version,
    ) -> Result<Operation, RegistryError> {
        let guard = self.write();
        self.existing_model(project, model)?;
        let parent = format!("projects/{project}/models/{model}/versions");
        let mut problems = check_labels("version.labels", &version.labels);
        problems.extend(check_description("version.description", &version.description).err());
        let name = match given_name("version.name", &version.name, &parent) {
            Ok("") => {
                problems.push("Field: version.name Error: A name should be specified".into());
                String::new()
            }
            Ok(name) => {
                problems.extend(check_name("version.name", name).err());
                name.to_string()
            }
            Err(problem) => {
                problems.push(problem);
                String::new()
            }
        };
        let mut source = String::new();
        if version.deployment_uri.trim().is_empty() {
            problems.push(
                "Field: version.deployment_uri Error: Deployment URI must be specified".into(),
            );
        } else {
            match self.paths.check(
                project,
                "version.deployment_uri",
                version.deployment_uri.trim(),
            ) {
                Ok(checked) => source = checked,
                Err(problem) => problems.push(problem),
            }
        }
        if version.container.is_some() {
            problems.push("Field: version.container Error: custom serving containers are not supported by Kiln".into());
        }
        problems.extend(self.check_routine(project, &mut version));
        if let Err(problem) = kiln_serve::check_engine(
            version.framework,
            !version.prediction_class.trim().is_empty(),
            version.engine,
        ) {
            problems.push(problem);
        }
        match runtimes::select("version", &version.runtime_version, &version.python_version) {
            Ok((runtime, python)) => {
                version.runtime_version = runtime.name.to_string();
                version.python_version = python.to_string();
            }
            Err(problem) => problems.push(problem),
        }
        if problems.is_empty()
            && let Err(error) = ArtifactStore::probe(&source).await
        {
            problems.push(format!("Field: version.deployment_uri Error: {error}"));
        }
        if !problems.is_empty() {
            return Err(RegistryError::InvalidArgument(problems.join("; ")));
        }
        version.name = version_key(project, model, &name);
        version.state = VersionState::Creating;
        version.create_time = kiln_api::now();
        version.error_message.clear();
        version.last_use_time.clear();
        version.etag = etag(&version);
        if version.machine_type.is_empty() {
            version.machine_type = "mls1-c1-m2".to_string();
        }
        let version = self.store.create_version(project, model, &name, &version)?;
        let (id, operation) = operations::start(
            project,
            model,
            Some(&version),
            OperationType::CreateVersion,
            &format!("{model}_{name}"),
        );
        self.store
            .create_operation(project, &id, &operation, self.server.as_str())?;
        drop(guard);
        let registry = Arc::clone(self);
        let (project, model) = (project.to_string(), model.to_string());
        let pending = operation.clone();
        tokio::spawn(async move {
            registry
                .finish_create(&project, &model, &name, version, &source, pending)
                .await;
        });
        Ok(operation)
    }

    async fn finish_create(
        self: Arc<Self>,
        project: &str,
        model: &str,
        name: &str,
        mut version: Version,
        source: &str,
        mut operation: Operation,
    ) {
        let key = version_key(project, model, name);
        let id = short(&operation.name).to_string();
        let config = self.batch_config(&version);
        let outcome =
            self.import_and_load(&key, source, &version)
                .await
                .and_then(|(framework, runtime)| {
                    let batcher =
                        Batcher::start(runtime, config).map_err(|error| error.to_string())?;
                    Ok((framework, batcher))
                });
        match outcome {
            Ok((framework, batcher)) => {
                version.framework = framework;
                // Recorded, so a restart serves it on the same engine.
                version.engine = batcher.runtime().engine();
                version.state = VersionState::Ready;
                let server = Arc::new(batcher);
                self.servers
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(key.clone(), server);
            }
            Err(message) => {
                tracing::warn!(version = %key, %message, "version create failed");
                version.state = VersionState::Failed;
                version.error_message = message;
            }
        }
        let result = (|| -> Result<(), RegistryError> {
            // The default flag stays as stored: set-default may have run meanwhile. A version no
            // longer CREATING was closed by another server while this one stalled: its outcome
            // stands.
            let written = self
                .store
                .update_version_with(project, model, name, &mut |stored| {
                    if stored.state != VersionState::Creating {
                        return false;
                    }
                    let is_default = stored.is_default;
                    *stored = version.clone();
                    stored.is_default = is_default;
                    stored.etag = etag(stored);
                    true
                })?;
            let Some(written) = written else {
                return Ok(());
            };
            version = written;
            match version.state {
                VersionState::Ready => operations::succeed(
                    &mut operation,
                    VERSION_TYPE,
                    serde_json::to_value(&version).unwrap_or_default(),
                ),
                _ => operations::fail(
                    &mut operation,
                    Code::InvalidArgument,
                    version.error_message.clone(),
                ),
            }
            operation.metadata.version = Some(version.clone());
            self.store.update_operation(project, &id, &operation)?;
            Ok(())
        })();
        if let Err(error) = result {
            tracing::error!(version = %key, %error, "could not record the outcome of a version create");
        }
    }

    async fn import_and_load(
        &self,
        key: &str,
        source: &str,
        version: &Version,
    ) -> Result<(Framework, Arc<dyn ModelRuntime>), String> {
        let stamp = version.create_time.as_str();
        self.artifacts
            .import(source, key, stamp)
            .await
            .map_err(|error| error.to_string())?;
        let dir = self
            .artifacts
            .local(key, stamp)
            .await
            .map_err(|error| error.to_string())?;
        self.load_model(dir, version).await
    }

    /// Loads a version's model from its files in `dir`: its custom prediction routine, or the
    /// framework its files hold (the framework it was created as choosing a pickle's reader).
    async fn load_model(
        &self,
        dir: PathBuf,
        version: &Version,
    ) -> Result<(Framework, Arc<dyn ModelRuntime>), String> {
        let options = self.load_options(version);
        let requested = version.framework;
        let routine = routine_packages(version).await?;
        tokio::task::spawn_blocking(move || {
            if let Some((routine, _downloaded)) = &routine {
                return kiln_serve::load_routine(&dir, routine, &options)
                    .map(|runtime| (requested, runtime))
                    .map_err(|error| error.to_string());
            }
            let detected = kiln_serve::detect(&dir).map_err(|error| error.to_string())?;
            let (framework, detected) =
                kiln_serve::detect::served_as(detected, requested).ok_or_else(|| {
                    format!(
                        "framework {requested:?} was requested but the deployment directory holds a {} model",
                        detected.name()
                    )
                })?;
            let runtime =
                kiln_serve::load(&dir, detected, &options).map_err(|error| error.to_string())?;
            Ok((framework, runtime))
        })
        .await
        .map_err(|_| "the model could not be loaded: its loader stopped unexpectedly".to_string())?
    }

    /// Checks a new version's `predictionClass` and `packageUris`, replacing the packages by the
    /// locations the path policy resolved them to; returns the problems.
    fn check_routine(&self, project: &str, version: &mut Version) -> Vec<String> {
        let mut problems = Vec::new();
        let class = version.prediction_class.trim();
        let packages = std::mem::take(&mut version.package_uris);
        if class.is_empty() {
            if !packages.is_empty() {
                problems.push(
                    "Field: version.package_uris Error: packageUris hold a custom prediction \
                     routine; set predictionClass to the class in them"
                        .into(),
                );
            }
            return problems;
        }
        let identifier = |part: &str| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_alphanumeric() || c == '_')
        };
        if !(class.contains('.') && class.split('.').all(identifier)) {
            problems.push(format!(
                "Field: version.prediction_class Error: {class:?} is not module.Class"
            ));
        }
        if version.framework != Framework::FrameworkUnspecified {
            problems.push(
                "Field: version.framework Error: a custom prediction routine serves the model \
                 itself; leave framework unset"
                    .into(),
            );
        }
        if packages.is_empty() {
            problems.push(
                "Field: version.package_uris Error: a custom prediction routine needs the \
                 packages (sdists or wheels) that hold predictionClass"
                    .into(),
            );
        }
        for (index, uri) in packages.iter().enumerate() {
            let field = format!("version.package_uris[{index}]");
            if !is_package(uri.trim()) {
                problems.push(format!(
                    "Field: {field} Error: {uri:?} is not an sdist or wheel ({})",
                    PACKAGE_SUFFIXES.join(", ")
                ));
                continue;
            }
            match self.paths.check(project, &field, uri.trim()) {
                Ok(checked) => version.package_uris.push(checked),
                Err(problem) => problems.push(problem),
            }
        }
        version.prediction_class = class.to_string();
        problems
    }

    /// `projects.models.versions.get`.
    pub fn get_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
    ) -> Result<Version, RegistryError> {
        self.existing_version(project, model, name)
    }

    /// `projects.models.versions.list`.
    pub fn list_versions(
        &self,
        project: &str,
        model: &str,
        params: &ListParams,
    ) -> Result<ListVersionsResponse, RegistryError> {
        self.existing_model(project, model)?;
        let page = params.scan(
            &[],
            |scan| {
                let after = scan.after.map(short);
                Ok(self
                    .store
                    .scan_versions(project, model, &Scan { after, ..*scan })?)
            },
            |version: &Version| version.name.clone(),
            |name| {
                Ok(self
                    .store
                    .get_version(project, model, short(name))?
                    .is_some())
            },
        )?;
        Ok(ListVersionsResponse {
            versions: page.items,
            next_page_token: page.next_page_token,
        })
    }

    /// `projects.models.versions.patch`.
    pub async fn patch_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
        patch: Version,
        update_mask: &str,
    ) -> Result<Operation, RegistryError> {
        let _guard = self.write();
        self.existing_version(project, model, name)?;
        let allowed = [
            "description",
            "labels",
            "requestLoggingConfig",
            "autoScaling.minNodes",
            "manualScaling.nodes",
        ];
        let paths = check_mask(update_mask, &allowed)?;
        for path in &paths {
            match *path {
                "description" => check_description("version.description", &patch.description)
                    .map_err(RegistryError::InvalidArgument)?,
                "labels" => refuse_all(check_labels("version.labels", &patch.labels))?,
                _ => {}
            }
        }
        let version = refusable(
            |change| self.store.update_version_with(project, model, name, change),
            |version: &mut Version| {
                if matches!(
                    version.state,
                    VersionState::Creating | VersionState::Deleting | VersionState::Updating
                ) {
                    return Err(RegistryError::FailedPrecondition(format!(
                        "version \"{name}\" is {:?} and cannot be updated now",
                        version.state
                    )));
                }
                if !patch.etag.is_empty() && patch.etag != version.etag {
                    return Err(RegistryError::Aborted(format!(
                        "etag {:?} does not match the version's current etag",
                        patch.etag
                    )));
                }
                for path in &paths {
                    match *path {
                        "description" => version.description = patch.description.clone(),
                        "labels" => version.labels = patch.labels.clone(),
                        "requestLoggingConfig" => {
                            version.request_logging_config = patch.request_logging_config.clone()
                        }
                        "autoScaling.minNodes" => version.auto_scaling = patch.auto_scaling.clone(),
                        _ => version.manual_scaling = patch.manual_scaling.clone(),
                    }
                }
                version.etag = etag(version);
                Ok(())
            },
        )?
        .ok_or_else(|| RegistryError::Internal("the version change was declined".into()))?;
        let (id, mut operation) = operations::start(
            project,
            model,
            Some(&version),
            OperationType::UpdateVersion,
            &format!("{model}_{name}"),
        );
        operations::succeed(
            &mut operation,
            VERSION_TYPE,
            serde_json::to_value(&version).unwrap_or_default(),
        );
        self.store
            .create_operation(project, &id, &operation, self.server.as_str())?;
        Ok(operation)
    }

    /// `projects.models.versions.delete`: the default version only when it is the last one.
    pub async fn delete_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
    ) -> Result<Operation, RegistryError> {
        let _guard = self.write();
        self.existing_version(project, model, name)?;
        let version = refusable(
            |allow| self.store.delete_version_with(project, model, name, allow),
            |(version, count): &mut (Version, usize)| {
                if version.state == VersionState::Creating {
                    return Err(RegistryError::FailedPrecondition(format!(
                        "version \"{name}\" is still being created; wait for its operation to finish"
                    )));
                }
                if version.is_default && *count > 1 {
                    return Err(RegistryError::FailedPrecondition(format!(
                        "Cannot delete the default version \"{name}\" of model \"{model}\" while it has other versions; \
                         set another version as default first"
                    )));
                }
                Ok(())
            },
        )?
        .ok_or_else(|| RegistryError::Internal("the version delete was declined".into()))?;
        let key = version_key(project, model, name);
        self.servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&key);
        if let Err(error) = self.artifacts.remove(&key).await {
            tracing::warn!(version = %key, %error, "deleted version's files could not be removed");
        }
        let (id, mut operation) = operations::start(
            project,
            model,
            Some(&version),
            OperationType::DeleteVersion,
            &format!("{model}_{name}"),
        );
        operations::succeed(&mut operation, EMPTY_TYPE, Value::Null);
        self.store
            .create_operation(project, &id, &operation, self.server.as_str())?;
        Ok(operation)
    }

    /// `projects.models.versions.setDefault`.
    pub async fn set_default_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
    ) -> Result<Version, RegistryError> {
        let _guard = self.write();
        self.make_default(project, model, name)
    }

    fn make_default(
        &self,
        project: &str,
        model: &str,
        name: &str,
    ) -> Result<Version, RegistryError> {
        self.existing_version(project, model, name)?;
        refusable(
            |allow| self.store.set_default_version(project, model, name, allow),
            |version: &mut Version| match version.state {
                VersionState::Ready => Ok(()),
                state => Err(RegistryError::FailedPrecondition(format!(
                    "version \"{name}\" is {state:?}; only a READY version can be the default"
                ))),
            },
        )?
        .ok_or_else(|| RegistryError::Internal("the default change was declined".into()))
    }

    /// `projects.operations.get`.
    pub fn get_operation(&self, project: &str, id: &str) -> Result<Operation, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        self.store.get_operation(project, id)?.ok_or_else(|| {
            RegistryError::NotFound(format!(
                "operation \"projects/{project}/operations/{id}\" was not found"
            ))
        })
    }

    /// `projects.operations.list`.
    pub fn list_operations(
        &self,
        project: &str,
        params: &ListParams,
    ) -> Result<ListOperationsResponse, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        // Page tokens name operations in full; the store keys them by id.
        let id = |name: &str| name.rsplit('/').next().unwrap_or_default().to_string();
        let page = params.scan(
            &[],
            |scan| {
                let after = scan.after.map(id);
                let after = after.as_deref();
                Ok(self
                    .store
                    .scan_operations(project, &Scan { after, ..*scan })?)
            },
            |operation: &Operation| operation.name.clone(),
            |name| Ok(self.store.get_operation(project, &id(name))?.is_some()),
        )?;
        Ok(ListOperationsResponse {
            operations: page.items,
            next_page_token: page.next_page_token,
        })
    }

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

    /// Where runtime environments are built (`None`: framework models are not served).
    pub fn runtime_environments(&self) -> Option<&std::path::Path> {
        self.frameworks
            .as_ref()
            .map(|frameworks| frameworks.environments.as_path())
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

    /// Unloads, every couple of seconds, the models of versions that are gone (deleted through
    /// this server or another on the same database) and of versions that may scale to zero
    /// (`autoScaling.minNodes: 0`) once no request has come for `after`; the next request loads
    /// the model again. Other versions stay warm, also while the store cannot be read.
    pub fn start_idle_unloading(self: &Arc<Self>, after: Duration) {
        let registry = Arc::downgrade(self);
        tokio::spawn(async move {
            let period = (after / 4).clamp(Duration::from_millis(100), Duration::from_secs(2));
            loop {
                tokio::time::sleep(period).await;
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                let loaded: Vec<(String, bool)> = registry
                    .servers
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .iter()
                    .map(|(name, server)| {
                        let idle = server.idle() >= after && server.queued() == 0;
                        (name.clone(), idle)
                    })
                    .collect();
                let reader = Arc::clone(&registry);
                let Ok(unload) = tokio::task::spawn_blocking(move || {
                    loaded
                        .into_iter()
                        .filter_map(|(name, idle)| match reader.version_by_name(&name) {
                            Ok(None) => Some((name, "it was deleted")),
                            Ok(Some(version)) if idle && min_nodes(&version) == Some(0) => {
                                Some((name, "it is idle (autoScaling.minNodes 0)"))
                            }
                            Ok(Some(_)) | Err(_) => None,
                        })
                        .collect::<Vec<_>>()
                })
                .await
                else {
                    continue;
                };
                for (name, why) in unload {
                    tracing::info!(version = %name, "unloading a version: {why}");
                    registry
                        .servers
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .remove(&name);
                    registry.routes.invalidate();
                }
            }
        });
    }

    /// A version by its full name, if it exists.
    fn version_by_name(&self, name: &str) -> Result<Option<Version>, RegistryError> {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            ["projects", project, "models", model, "versions", version] => {
                Ok(self.store.get_version(project, model, version)?)
            }
            _ => Ok(None),
        }
    }

    /// The batching configuration of `version`: the server's, with `manualScaling.nodes` workers
    /// when the version sets it.
    fn batch_config(&self, version: &Version) -> BatchConfig {
        let nodes = version
            .manual_scaling
            .as_ref()
            .and_then(|scaling| int64(scaling.get("nodes")?))
            .filter(|nodes| *nodes > 0);
        BatchConfig {
            workers: nodes.map_or(self.batching.workers, |nodes| nodes as usize),
            ..self.batching
        }
    }

    /// How a version's model is loaded: its runtime, and as many framework worker processes as
    /// its batcher has threads.
    fn load_options(&self, version: &Version) -> LoadOptions {
        LoadOptions {
            runtime_version: version.runtime_version.clone(),
            python_version: version.python_version.clone(),
            engine: version.engine,
            processes: self.batch_config(version).workers,
            frameworks: self.frameworks.clone(),
        }
    }

    /// The batcher of a READY version, loading the model from its files after a restart.
    async fn server(&self, version: &Version) -> Result<Arc<Batcher>, RegistryError> {
        if let Some(server) = self
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&version.name)
        {
            return Ok(Arc::clone(server));
        }
        let dir = self
            .artifacts
            .local(&version.name, &version.create_time)
            .await
            .map_err(|error| RegistryError::Prediction(format!("Failed to load model: {error}")))?;
        let (_, runtime) = self
            .load_model(dir, version)
            .await
            .map_err(|error| RegistryError::Prediction(format!("Failed to load model: {error}")))?;
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Two requests may have loaded it at once; the first one in is kept.
        if let Some(server) = servers.get(&version.name) {
            return Ok(Arc::clone(server));
        }
        let server = Batcher::start(runtime, self.batch_config(version))
            .map_err(|error| RegistryError::Prediction(format!("Failed to load model: {error}")))?;
        let server = Arc::new(server);
        servers.insert(version.name.clone(), Arc::clone(&server));
        Ok(server)
    }
}
