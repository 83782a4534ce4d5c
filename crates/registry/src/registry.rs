//! The registry service: the rules of models, versions and operations (this file), the model
//! pool that serves their versions ([`pool`]), and predict and explain ([`predict`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kiln_api::model::{Framework, Version, VersionState};
use kiln_api::names::{
    check_description, check_labels, check_name, check_project, given_name, short,
};
use kiln_api::operation::{EMPTY_TYPE, MODEL_TYPE, OperationType, VERSION_TYPE};
use kiln_api::{
    Code, ListModelsResponse, ListOperationsResponse, ListVersionsResponse, Model, Operation,
};
use kiln_artifacts::bucket;
use kiln_artifacts::{ArtifactStore, PathPolicy};
use kiln_iam::{Principal, roles};
use kiln_scheduler::program::{PACKAGE_SUFFIXES, is_package};
use kiln_serve::ModelRuntime;
use kiln_serve::batcher::{BatchConfig, Batcher};
use kiln_serve::python::{Frameworks, Routine, runtimes};
use kiln_store::{Scan, Store};
use serde_json::Value;

use crate::error::refusable;
use crate::list::ListParams;
use crate::owners::{Roll, ServerId};
use crate::routes::Routes;
use crate::{Access, RegistryError, operations};

mod pool;
mod predict;

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

/// The registry: models, versions, operations and prediction routing.
pub struct Registry {
    pub(crate) store: Arc<dyn Store>,
    /// Policies: what a new resource's creator is granted.
    access: Arc<Access>,
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
        access: Arc<Access>,
        artifacts: ArtifactStore,
        paths: PathPolicy,
        batching: BatchConfig,
        frameworks: Option<Frameworks>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            access,
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

    /// Records operation `id`, which `creator` started, as its owner.
    fn record_operation(
        &self,
        project: &str,
        id: &str,
        operation: &Operation,
        creator: &Principal,
    ) -> Result<(), RegistryError> {
        let policy = Access::creator_policy(creator, roles::OPERATION_OWNER);
        self.store
            .create_operation(project, id, operation, self.server.as_str(), &policy)?;
        self.access.created(&operation.name);
        Ok(())
    }

    /// The access service that keeps the policies new resources are created with.
    pub fn access(&self) -> &Arc<Access> {
        &self.access
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
        creator: &Principal,
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
        let (stored_project, stored) = (project.to_string(), model.clone());
        let policy = Access::creator_policy(creator, roles::MODEL_OWNER);
        self.blocking(move |store| {
            Ok(store.create_model(&stored_project, &name, &stored, &policy)?)
        })
        .await?;
        self.access.created(&model.name);
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
        creator: &Principal,
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
        self.record_operation(project, &id, &operation, creator)?;
        Ok(operation)
    }

    /// `projects.models.delete`: only a model without versions.
    pub async fn delete_model(
        &self,
        project: &str,
        name: &str,
        creator: &Principal,
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
        self.record_operation(project, &id, &operation, creator)?;
        Ok(operation)
    }

    /// `projects.models.versions.create`: validates, records the version as CREATING and returns
    /// the operation; copying `deploymentUri` and loading the model happen in the background.
    pub async fn create_version(
        self: &Arc<Self>,
        project: &str,
        model: &str,
        mut version: Version,
        creator: &Principal,
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
        self.record_operation(project, &id, &operation, creator)?;
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
        creator: &Principal,
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
        self.record_operation(project, &id, &operation, creator)?;
        Ok(operation)
    }

    /// `projects.models.versions.delete`: the default version only when it is the last one.
    pub async fn delete_version(
        &self,
        project: &str,
        model: &str,
        name: &str,
        creator: &Principal,
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
        self.record_operation(project, &id, &operation, creator)?;
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

    /// Where runtime environments are built (`None`: framework models are not served).
    pub fn runtime_environments(&self) -> Option<&std::path::Path> {
        self.frameworks
            .as_ref()
            .map(|frameworks| frameworks.environments.as_path())
    }
}
