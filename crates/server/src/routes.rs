//! The route table: every route of the API, once.
//!
//! A route added here is served, gated, audited and described in the OpenAPI document; a route
//! not here is answered 404 by the gate before any handler runs (deny by default).

use kiln_api::location::{GetConfigResponse, ListLocationsResponse, Location};
use kiln_api::study::{
    AddMeasurementRequest, CompleteTrialRequest, ListStudiesResponse, ListTrialsResponse, Study,
    StudyOperation, SuggestTrialsRequest, Trial,
};
use kiln_api::{
    Empty, ExampleRequest, ExplainResponse, Identity, Job, JobLogs, JobMetrics,
    ListAuditEntriesResponse, ListBuiltInAlgorithmsResponse, ListJobsResponse, ListModelsResponse,
    ListOperationsResponse, ListTokensResponse, ListVersionsResponse, Model, Operation, Policy,
    PredictRequest, PredictResponse, Readiness, SetIamPolicyRequest, TestIamPermissions, Token,
    Version,
};

use crate::inference::{self, tensors::InferRequest};
use crate::route::{Gate, Http, Param, ParamKind, Route, SERVER_ADMIN, handler, schema};
use crate::{iam, jobs, locations, models, probes, studies};

use Http::{Delete, Get, Patch, Post};

/// The parameters of list methods.
const LIST: &[Param] = &[
    Param {
        name: "filter",
        kind: ParamKind::Text,
        required: false,
        about: "Keeps the items the filter matches (Google's filter grammar, AIP-160)",
    },
    Param {
        name: "orderBy",
        kind: ParamKind::Text,
        required: false,
        about: "Sorts by these fields: `field [desc], ...`",
    },
    Param {
        name: "pageSize",
        kind: ParamKind::Integer,
        required: false,
        about: "Most items a page holds",
    },
    Param {
        name: "pageToken",
        kind: ParamKind::Text,
        required: false,
        about: "Where to continue, from a previous page's nextPageToken",
    },
];

/// The parameter of patch methods.
const PATCH: &[Param] = &[Param {
    name: "updateMask",
    kind: ParamKind::Text,
    required: true,
    about: "The fields to change, comma-separated",
}];

/// The parameters of a job's log.
const LOGS: &[Param] = &[
    Param {
        name: "pageToken",
        kind: ParamKind::Integer,
        required: false,
        about: "The line to start from, from a previous page's nextPageToken",
    },
    Param {
        name: "pageSize",
        kind: ParamKind::Integer,
        required: false,
        about: "Most entries a page holds",
    },
    Param {
        name: "taskName",
        kind: ParamKind::Text,
        required: false,
        about: "Only this replica's entries (`master-replica-0`)",
    },
];

/// How long a watch lasts.
const TIMEOUT_SECONDS: Param = Param {
    name: "timeoutSeconds",
    kind: ParamKind::Integer,
    required: false,
    about: "How long the stream lasts, 1 to 3600 seconds (300 unless given)",
};

/// The parameters of a list's watch: the list's, and how long it lasts.
const WATCH_LIST: &[Param] = &[LIST[0], LIST[1], LIST[2], LIST[3], TIMEOUT_SECONDS];

/// The parameters of a job's watch.
const WATCH_JOB: &[Param] = &[
    Param {
        name: "pageToken",
        kind: ParamKind::Integer,
        required: false,
        about: "The log line to start from",
    },
    TIMEOUT_SECONDS,
];

/// The parameter of a watch.
const WATCH: &[Param] = &[TIMEOUT_SECONDS];

/// The parameter of `jobs.create` (AIP-163).
const VALIDATE_ONLY: &[Param] = &[Param {
    name: "validateOnly",
    kind: ParamKind::Boolean,
    required: false,
    about: "Checks the job as create would, and answers it as it would be stored, without creating it",
}];

/// The parameter of `studies.create`.
const STUDY_ID: &[Param] = &[Param {
    name: "studyId",
    kind: ParamKind::Text,
    required: true,
    about: "The new study's id",
}];

/// The API method of `/v1/metrics`, which the metrics token may also call.
pub const METRICS_API: &str = "kiln.metrics.get";

const PROJECT: &str = "projects/{project}";
const MODELS: &str = "/v1/projects/{project}/models";
const MODEL: &str = "/v1/projects/{project}/models/{model}";
const MODEL_RESOURCE: &str = "projects/{project}/models/{model}";
const VERSIONS: &str = "/v1/projects/{project}/models/{model}/versions";
const VERSION: &str = "/v1/projects/{project}/models/{model}/versions/{version}";
const VERSION_RESOURCE: &str = "projects/{project}/models/{model}/versions/{version}";
const OPERATION: &str = "/v1/projects/{project}/operations/{operation}";
const JOBS: &str = "/v1/projects/{project}/jobs";
const JOB: &str = "/v1/projects/{project}/jobs/{job}";
const JOB_RESOURCE: &str = "projects/{project}/jobs/{job}";
const STUDIES: &str = "/v1/projects/{project}/locations/{location}/studies";
const STUDY: &str = "/v1/projects/{project}/locations/{location}/studies/{study}";
const TRIALS: &str = "/v1/projects/{project}/locations/{location}/studies/{study}/trials";
const TRIAL: &str = "/v1/projects/{project}/locations/{location}/studies/{study}/trials/{trial}";
const V2: &str = "/v1/projects/{project}/v2";

/// The three IAM policy methods on one kind of resource (`:getIamPolicy` by GET or POST).
macro_rules! policy_routes {
    ($path:expr, $resource:expr, $api:literal, $kind:literal) => {
        [
            Route::new(
                Get,
                $path,
                concat!($api, ".getIamPolicy"),
                Gate::Permission(concat!("ml.", $kind, ".getIamPolicy")),
                $resource,
                schema::<Policy>,
                handler!(iam::get_policy),
            )
            .verb("getIamPolicy")
            .about("The resource's IAM policy"),
            Route::new(
                Post,
                $path,
                concat!($api, ".getIamPolicy"),
                Gate::Permission(concat!("ml.", $kind, ".getIamPolicy")),
                $resource,
                schema::<Policy>,
                handler!(iam::get_policy),
            )
            .verb("getIamPolicy")
            .about("The resource's IAM policy"),
            Route::new(
                Post,
                $path,
                concat!($api, ".setIamPolicy"),
                Gate::Permission(concat!("ml.", $kind, ".setIamPolicy")),
                $resource,
                schema::<Policy>,
                handler!(iam::set_policy),
            )
            .verb("setIamPolicy")
            .writes()
            .body(schema::<SetIamPolicyRequest>)
            .about("Replaces the resource's IAM policy"),
            Route::new(
                Post,
                $path,
                concat!($api, ".testIamPermissions"),
                Gate::Token,
                $resource,
                schema::<TestIamPermissions>,
                handler!(iam::test_permissions),
            )
            .verb("testIamPermissions")
            .body(schema::<TestIamPermissions>)
            .about("Which of the given permissions the caller holds on the resource"),
        ]
    };
}

const PROJECT_POLICY: [Route; 4] =
    policy_routes!("/v1/projects/{project}", PROJECT, "projects", "projects");
const MODEL_POLICY: [Route; 4] = policy_routes!(MODEL, MODEL_RESOURCE, "projects.models", "models");
const JOB_POLICY: [Route; 4] = policy_routes!(JOB, JOB_RESOURCE, "projects.jobs", "jobs");

/// Every route of the API.
pub static ROUTES: &[Route] = &[
    // Probes and the API's description.
    Route::new(
        Get,
        "/healthz",
        "kiln.healthz",
        Gate::Open,
        "",
        schema::<String>,
        handler!(probes::healthz),
    )
    .text()
    .about("Liveness: `ok` while the server answers"),
    Route::new(
        Get,
        "/readyz",
        "kiln.readyz",
        Gate::Open,
        "",
        schema::<Readiness>,
        handler!(probes::readyz),
    )
    .about("Readiness: 200 while the metadata store answers, else 503"),
    Route::new(
        Get,
        "/v1/openapi.json",
        "kiln.openapi.get",
        Gate::Open,
        "",
        schema::<serde_json::Value>,
        handler!(crate::openapi::document),
    )
    .about("This document"),
    Route::new(
        Get,
        "/v1/metrics",
        METRICS_API,
        SERVER_ADMIN,
        "metrics",
        schema::<String>,
        handler!(crate::metrics::scrape),
    )
    .text()
    .about(
        "The server's counters in Prometheus' text format (administrators or the metrics token)",
    ),
    // Projects.
    Route::new(
        Get,
        "/v1/projects/{project}",
        "projects.getConfig",
        Gate::Permission("ml.projects.getConfig"),
        PROJECT,
        schema::<GetConfigResponse>,
        handler!(locations::get_config),
    )
    .verb("getConfig")
    .about("The service account jobs run as"),
    PROJECT_POLICY[0],
    PROJECT_POLICY[1],
    PROJECT_POLICY[2],
    PROJECT_POLICY[3],
    Route::new(
        Get,
        "/v1/projects/{project}/auditLogs",
        "projects.auditLogs.list",
        Gate::Permission("kiln.auditLogs.list"),
        PROJECT,
        schema::<ListAuditEntriesResponse>,
        handler!(iam::project_audit_log),
    )
    .query(LIST)
    .about("The project's audit log, newest first"),
    // Models.
    Route::new(
        Get,
        MODELS,
        "projects.models.list",
        Gate::Permission("ml.models.list"),
        PROJECT,
        schema::<ListModelsResponse>,
        handler!(models::list_models),
    )
    .query(LIST),
    Route::new(
        Get,
        MODELS,
        "projects.models.watchList",
        Gate::Permission("ml.models.list"),
        PROJECT,
        schema::<ListModelsResponse>,
        handler!(models::watch_models),
    )
    .verb("watch")
    .query(WATCH_LIST)
    .events(&[("models", schema::<ListModelsResponse>)])
    .about("The models list as it changes"),
    Route::new(
        Post,
        MODELS,
        "projects.models.create",
        Gate::Permission("ml.models.create"),
        PROJECT,
        schema::<Model>,
        handler!(models::create_model),
    )
    .writes()
    .body(schema::<Model>),
    Route::new(
        Get,
        MODEL,
        "projects.models.get",
        Gate::Permission("ml.models.get"),
        MODEL_RESOURCE,
        schema::<Model>,
        handler!(models::get_model),
    ),
    Route::new(
        Patch,
        MODEL,
        "projects.models.patch",
        Gate::Permission("ml.models.update"),
        MODEL_RESOURCE,
        schema::<Operation>,
        handler!(models::patch_model),
    )
    .writes()
    .query(PATCH)
    .body(schema::<Model>),
    Route::new(
        Delete,
        MODEL,
        "projects.models.delete",
        Gate::Permission("ml.models.delete"),
        MODEL_RESOURCE,
        schema::<Operation>,
        handler!(models::delete_model),
    )
    .writes(),
    Route::new(
        Post,
        MODEL,
        "projects.models.predict",
        Gate::Permission("ml.models.predict"),
        MODEL_RESOURCE,
        schema::<PredictResponse>,
        handler!(models::predict),
    )
    .verb("predict")
    .body(schema::<PredictRequest>)
    .predicts()
    .about("Predicts with the model's default version"),
    Route::new(
        Post,
        MODEL,
        "projects.models.explain",
        Gate::Permission("ml.models.predict"),
        MODEL_RESOURCE,
        schema::<ExplainResponse>,
        handler!(models::explain),
    )
    .verb("explain")
    .body(schema::<PredictRequest>)
    .predicts()
    .about("Feature attributions from the model's default version"),
    MODEL_POLICY[0],
    MODEL_POLICY[1],
    MODEL_POLICY[2],
    MODEL_POLICY[3],
    // Versions.
    Route::new(
        Get,
        VERSIONS,
        "projects.models.versions.list",
        Gate::Permission("ml.versions.list"),
        MODEL_RESOURCE,
        schema::<ListVersionsResponse>,
        handler!(models::list_versions),
    )
    .query(LIST),
    Route::new(
        Get,
        VERSIONS,
        "projects.models.versions.watchList",
        Gate::Permission("ml.versions.list"),
        MODEL_RESOURCE,
        schema::<ListVersionsResponse>,
        handler!(models::watch_versions),
    )
    .verb("watch")
    .query(WATCH_LIST)
    .events(&[("versions", schema::<ListVersionsResponse>)])
    .about("The versions list as it changes"),
    Route::new(
        Post,
        VERSIONS,
        "projects.models.versions.create",
        Gate::Permission("ml.versions.create"),
        MODEL_RESOURCE,
        schema::<Operation>,
        handler!(models::create_version),
    )
    .writes()
    .body(schema::<Version>),
    Route::new(
        Get,
        VERSION,
        "projects.models.versions.get",
        Gate::Permission("ml.versions.get"),
        VERSION_RESOURCE,
        schema::<Version>,
        handler!(models::get_version),
    ),
    Route::new(
        Patch,
        VERSION,
        "projects.models.versions.patch",
        Gate::Permission("ml.versions.update"),
        VERSION_RESOURCE,
        schema::<Operation>,
        handler!(models::patch_version),
    )
    .writes()
    .query(PATCH)
    .body(schema::<Version>),
    Route::new(
        Delete,
        VERSION,
        "projects.models.versions.delete",
        Gate::Permission("ml.versions.delete"),
        VERSION_RESOURCE,
        schema::<Operation>,
        handler!(models::delete_version),
    )
    .writes(),
    Route::new(
        Post,
        VERSION,
        "projects.models.versions.predict",
        Gate::Permission("ml.versions.predict"),
        VERSION_RESOURCE,
        schema::<PredictResponse>,
        handler!(models::predict),
    )
    .verb("predict")
    .body(schema::<PredictRequest>)
    .predicts(),
    Route::new(
        Get,
        "/v1/projects/{project}/models/{model}/versions/{version}/example",
        "projects.models.versions.example",
        Gate::Permission("ml.versions.predict"),
        VERSION_RESOURCE,
        schema::<ExampleRequest>,
        handler!(models::example),
    )
    .about("A predict request body the version takes, with one instance at typical values"),
    Route::new(
        Post,
        VERSION,
        "projects.models.versions.explain",
        Gate::Permission("ml.versions.predict"),
        VERSION_RESOURCE,
        schema::<ExplainResponse>,
        handler!(models::explain),
    )
    .verb("explain")
    .body(schema::<PredictRequest>)
    .predicts(),
    Route::new(
        Post,
        VERSION,
        "projects.models.versions.setDefault",
        Gate::Permission("ml.versions.update"),
        VERSION_RESOURCE,
        schema::<Version>,
        handler!(models::set_default),
    )
    .verb("setDefault")
    .writes()
    .body(schema::<Empty>)
    .about("Makes the version its model's default"),
    // Operations.
    Route::new(
        Get,
        "/v1/projects/{project}/operations",
        "projects.operations.list",
        Gate::Permission("ml.operations.list"),
        PROJECT,
        schema::<ListOperationsResponse>,
        handler!(models::list_operations),
    )
    .query(LIST),
    Route::new(
        Get,
        OPERATION,
        "projects.operations.get",
        Gate::Permission("ml.operations.get"),
        "projects/{project}/operations/{operation}",
        schema::<Operation>,
        handler!(models::get_operation),
    ),
    Route::new(
        Post,
        OPERATION,
        "projects.operations.cancel",
        Gate::Permission("ml.operations.cancel"),
        "projects/{project}/operations/{operation}",
        schema::<Empty>,
        handler!(models::cancel_operation),
    )
    .verb("cancel")
    .writes()
    .body(schema::<Empty>),
    // Jobs.
    Route::new(
        Get,
        JOBS,
        "projects.jobs.list",
        Gate::Permission("ml.jobs.list"),
        PROJECT,
        schema::<ListJobsResponse>,
        handler!(jobs::list_jobs),
    )
    .query(LIST),
    Route::new(
        Get,
        JOBS,
        "projects.jobs.watchList",
        Gate::Permission("ml.jobs.list"),
        PROJECT,
        schema::<ListJobsResponse>,
        handler!(jobs::watch_jobs),
    )
    .verb("watch")
    .query(WATCH_LIST)
    .events(&[("jobs", schema::<ListJobsResponse>)])
    .about("The jobs list as it changes"),
    Route::new(
        Post,
        JOBS,
        "projects.jobs.create",
        Gate::Permission("ml.jobs.create"),
        PROJECT,
        schema::<Job>,
        handler!(jobs::create_job),
    )
    .writes()
    .query(VALIDATE_ONLY)
    .body(schema::<Job>),
    Route::new(
        Get,
        JOB,
        "projects.jobs.get",
        Gate::Permission("ml.jobs.get"),
        JOB_RESOURCE,
        schema::<Job>,
        handler!(jobs::get_job),
    ),
    Route::new(
        Get,
        JOB,
        "projects.jobs.watch",
        Gate::Permission("ml.jobs.get"),
        JOB_RESOURCE,
        schema::<Job>,
        handler!(jobs::watch_job),
    )
    .verb("watch")
    .query(WATCH_JOB)
    .events(&[
        ("job", schema::<Job>),
        ("logs", schema::<JobLogs>),
        ("metrics", schema::<JobMetrics>),
    ])
    .about("The job, its new log lines and its curves as they change, until it ends"),
    Route::new(
        Patch,
        JOB,
        "projects.jobs.patch",
        Gate::Permission("ml.jobs.update"),
        JOB_RESOURCE,
        schema::<Job>,
        handler!(jobs::patch_job),
    )
    .writes()
    .query(PATCH)
    .body(schema::<Job>),
    Route::new(
        Post,
        JOB,
        "projects.jobs.cancel",
        Gate::Permission("ml.jobs.cancel"),
        JOB_RESOURCE,
        schema::<Empty>,
        handler!(jobs::cancel_job),
    )
    .verb("cancel")
    .writes()
    .body(schema::<Empty>),
    JOB_POLICY[0],
    JOB_POLICY[1],
    JOB_POLICY[2],
    JOB_POLICY[3],
    Route::new(
        Get,
        "/v1/projects/{project}/jobs/{job}/logs",
        "projects.jobs.logs",
        Gate::Permission("ml.jobs.get"),
        JOB_RESOURCE,
        schema::<JobLogs>,
        handler!(jobs::job_logs),
    )
    .query(LOGS)
    .about("The job's log, from a line on; also while the job runs"),
    Route::new(
        Get,
        "/v1/projects/{project}/jobs/{job}/metrics",
        "projects.jobs.metrics",
        Gate::Permission("ml.jobs.get"),
        JOB_RESOURCE,
        schema::<JobMetrics>,
        handler!(jobs::job_metrics),
    )
    .about("The job's training curves"),
    Route::new(
        Post,
        "/v1/projects/{project}/jobs/{job}/trials/{trial}",
        "projects.jobs.trials.addMeasurement",
        Gate::Permission("kiln.jobs.addMeasurement"),
        "projects/{project}/jobs/{job}/trials/{trial}",
        schema::<Empty>,
        handler!(jobs::add_measurement),
    )
    .verb("addMeasurement")
    .writes()
    .body(schema::<AddMeasurementRequest>)
    .about(
        "Adds a running tuning trial's measurement, as its trainer reports it: with the token \
         its replicas get as KILN_TOKEN",
    ),
    // Locations and study operations.
    Route::new(
        Get,
        "/v1/projects/{project}/locations",
        "projects.locations.list",
        Gate::Permission("ml.locations.list"),
        PROJECT,
        schema::<ListLocationsResponse>,
        handler!(locations::list_locations),
    )
    .query(LIST),
    Route::new(
        Get,
        "/v1/projects/{project}/locations/{location}",
        "projects.locations.get",
        Gate::Permission("ml.locations.get"),
        "projects/{project}/locations/{location}",
        schema::<Location>,
        handler!(locations::get_location),
    ),
    Route::new(
        Get,
        "/v1/projects/{project}/locations/{location}/operations/{operation}",
        "projects.locations.operations.get",
        Gate::Permission("ml.operations.get"),
        PROJECT,
        schema::<StudyOperation>,
        handler!(locations::get_operation),
    ),
    Route::new(
        Post,
        "/v1/projects/{project}/locations/{location}/operations/{operation}",
        "projects.locations.operations.cancel",
        Gate::Permission("ml.operations.cancel"),
        PROJECT,
        schema::<Empty>,
        handler!(locations::cancel_operation),
    )
    .verb("cancel")
    .writes()
    .body(schema::<Empty>),
    // Studies and trials. They have no policies of their own: the project's decide.
    Route::new(
        Get,
        STUDIES,
        "projects.locations.studies.list",
        Gate::Permission("ml.studies.list"),
        PROJECT,
        schema::<ListStudiesResponse>,
        handler!(studies::list_studies),
    ),
    Route::new(
        Post,
        STUDIES,
        "projects.locations.studies.create",
        Gate::Permission("ml.studies.create"),
        PROJECT,
        schema::<Study>,
        handler!(studies::create_study),
    )
    .writes()
    .query(STUDY_ID)
    .body(schema::<Study>),
    Route::new(
        Get,
        STUDY,
        "projects.locations.studies.get",
        Gate::Permission("ml.studies.get"),
        PROJECT,
        schema::<Study>,
        handler!(studies::get_study),
    ),
    Route::new(
        Delete,
        STUDY,
        "projects.locations.studies.delete",
        Gate::Permission("ml.studies.delete"),
        PROJECT,
        schema::<Empty>,
        handler!(studies::delete_study),
    )
    .writes(),
    Route::new(
        Get,
        TRIALS,
        "projects.locations.studies.trials.list",
        Gate::Permission("ml.trials.list"),
        PROJECT,
        schema::<ListTrialsResponse>,
        handler!(studies::list_trials),
    ),
    Route::new(
        Get,
        TRIALS,
        "projects.locations.studies.trials.watchList",
        Gate::Permission("ml.trials.list"),
        PROJECT,
        schema::<ListTrialsResponse>,
        handler!(studies::watch_trials),
    )
    .verb("watch")
    .query(WATCH)
    .events(&[("trials", schema::<ListTrialsResponse>)])
    .about("The study's trials as they change"),
    Route::new(
        Post,
        TRIALS,
        "projects.locations.studies.trials.create",
        Gate::Permission("ml.trials.create"),
        PROJECT,
        schema::<Trial>,
        handler!(studies::create_trial),
    )
    .writes()
    .body(schema::<Trial>),
    Route::new(
        Post,
        TRIALS,
        "projects.locations.studies.trials.suggest",
        Gate::Permission("ml.trials.create"),
        PROJECT,
        schema::<StudyOperation>,
        handler!(studies::suggest),
    )
    .verb("suggest")
    .writes()
    .body(schema::<SuggestTrialsRequest>)
    .about("New trials from the tuner, or the caller's pending ones"),
    Route::new(
        Post,
        TRIALS,
        "projects.locations.studies.trials.listOptimalTrials",
        Gate::Permission("ml.trials.list"),
        PROJECT,
        schema::<ListTrialsResponse>,
        handler!(studies::optimal),
    )
    .verb("listOptimalTrials")
    .writes()
    .body(schema::<Empty>),
    Route::new(
        Get,
        TRIAL,
        "projects.locations.studies.trials.get",
        Gate::Permission("ml.trials.get"),
        PROJECT,
        schema::<Trial>,
        handler!(studies::get_trial),
    ),
    Route::new(
        Delete,
        TRIAL,
        "projects.locations.studies.trials.delete",
        Gate::Permission("ml.trials.delete"),
        PROJECT,
        schema::<Empty>,
        handler!(studies::delete_trial),
    )
    .writes(),
    Route::new(
        Post,
        TRIAL,
        "projects.locations.studies.trials.addMeasurement",
        Gate::Permission("ml.trials.update"),
        PROJECT,
        schema::<Trial>,
        handler!(studies::add_measurement),
    )
    .verb("addMeasurement")
    .writes()
    .body(schema::<AddMeasurementRequest>),
    Route::new(
        Post,
        TRIAL,
        "projects.locations.studies.trials.complete",
        Gate::Permission("ml.trials.update"),
        PROJECT,
        schema::<Trial>,
        handler!(studies::complete),
    )
    .verb("complete")
    .writes()
    .body(schema::<CompleteTrialRequest>),
    Route::new(
        Post,
        TRIAL,
        "projects.locations.studies.trials.stop",
        Gate::Permission("ml.trials.update"),
        PROJECT,
        schema::<Trial>,
        handler!(studies::stop),
    )
    .verb("stop")
    .writes()
    .body(schema::<Empty>),
    Route::new(
        Post,
        TRIAL,
        "projects.locations.studies.trials.checkEarlyStoppingState",
        Gate::Permission("ml.trials.get"),
        PROJECT,
        schema::<StudyOperation>,
        handler!(studies::check_early_stopping),
    )
    .verb("checkEarlyStoppingState")
    .writes()
    .body(schema::<Empty>),
    // The Open Inference Protocol.
    Route::new(
        Get,
        "/v2/health/live",
        "inference.health.live",
        Gate::Open,
        "",
        schema::<inference::Live>,
        handler!(inference::live),
    ),
    Route::new(
        Get,
        "/v2/health/ready",
        "inference.health.ready",
        Gate::Open,
        "",
        schema::<inference::Ready>,
        handler!(inference::ready_server),
    ),
    Route::new(
        Get,
        V2,
        "inference.server",
        Gate::Token,
        PROJECT,
        schema::<inference::ServerMetadata>,
        handler!(inference::server_metadata),
    ),
    Route::new(
        Get,
        "/v1/projects/{project}/v2/health/live",
        "inference.server",
        Gate::Token,
        PROJECT,
        schema::<inference::Live>,
        handler!(inference::live),
    ),
    Route::new(
        Get,
        "/v1/projects/{project}/v2/health/ready",
        "inference.server",
        Gate::Token,
        PROJECT,
        schema::<inference::Ready>,
        handler!(inference::ready_server),
    ),
    Route::new(
        Get,
        "/v1/projects/{project}/v2/models/{model}",
        "inference.models.get",
        Gate::Permission("ml.models.get"),
        MODEL_RESOURCE,
        schema::<inference::ModelMetadata>,
        handler!(inference::model_metadata),
    )
    .predicts(),
    Route::new(
        Get,
        "/v1/projects/{project}/v2/models/{model}/ready",
        "inference.models.get",
        Gate::Permission("ml.models.get"),
        MODEL_RESOURCE,
        schema::<inference::ModelReady>,
        handler!(inference::model_ready),
    )
    .predicts(),
    Route::new(
        Post,
        "/v1/projects/{project}/v2/models/{model}/infer",
        "inference.models.predict",
        Gate::Permission("ml.models.predict"),
        MODEL_RESOURCE,
        schema::<inference::InferResponse>,
        handler!(inference::model_infer),
    )
    .body(schema::<InferRequest>)
    .predicts(),
    Route::new(
        Get,
        "/v1/projects/{project}/v2/models/{model}/versions/{version}",
        "inference.versions.get",
        Gate::Permission("ml.versions.get"),
        VERSION_RESOURCE,
        schema::<inference::ModelMetadata>,
        handler!(inference::version_metadata),
    )
    .predicts(),
    Route::new(
        Get,
        "/v1/projects/{project}/v2/models/{model}/versions/{version}/ready",
        "inference.versions.get",
        Gate::Permission("ml.versions.get"),
        VERSION_RESOURCE,
        schema::<inference::ModelReady>,
        handler!(inference::version_ready),
    )
    .predicts(),
    Route::new(
        Post,
        "/v1/projects/{project}/v2/models/{model}/versions/{version}/infer",
        "inference.versions.predict",
        Gate::Permission("ml.versions.predict"),
        VERSION_RESOURCE,
        schema::<inference::InferResponse>,
        handler!(inference::version_infer),
    )
    .body(schema::<InferRequest>)
    .predicts(),
    // Server-wide: the caller, tokens and the audit log.
    Route::new(
        Get,
        "/v1/builtInAlgorithms",
        "kiln.builtInAlgorithms.list",
        Gate::Token,
        "",
        schema::<ListBuiltInAlgorithmsResponse>,
        handler!(jobs::built_in_algorithms),
    )
    .about("The built-in algorithms a training job's masterConfig.imageUri may name"),
    Route::new(
        Get,
        "/v1/whoami",
        "kiln.whoami",
        Gate::Token,
        "",
        schema::<Identity>,
        handler!(iam::whoami),
    )
    .about("Who the token belongs to"),
    Route::new(
        Get,
        "/v1/tokens",
        "kiln.tokens.list",
        SERVER_ADMIN,
        "tokens",
        schema::<ListTokensResponse>,
        handler!(iam::list_tokens),
    )
    .query(LIST),
    Route::new(
        Post,
        "/v1/tokens",
        "kiln.tokens.create",
        SERVER_ADMIN,
        "tokens",
        schema::<Token>,
        handler!(iam::create_token),
    )
    .writes()
    .body(schema::<Token>)
    .about("A new token; its secret is shown this once"),
    Route::new(
        Delete,
        "/v1/tokens/{token}",
        "kiln.tokens.revoke",
        SERVER_ADMIN,
        "tokens/{token}",
        schema::<Token>,
        handler!(iam::revoke_token),
    )
    .writes(),
    Route::new(
        Get,
        "/v1/auditLogs",
        "kiln.auditLogs.list",
        SERVER_ADMIN,
        "auditLogs",
        schema::<ListAuditEntriesResponse>,
        handler!(iam::audit_log),
    )
    .query(LIST)
    .about("Every project's audit log, newest first"),
];
