//! The gate every `/v1` request passes: authenticate the token, find the permission the route
//! needs, check it, and write mutating calls to the audit log.
//!
//! The route → permission table ([`target`]) is deny-by-default: a path it does not know is
//! answered 404 here and never reaches a handler, so a route added to the router without a line
//! in this table is unreachable rather than open.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kiln_api::{AuditEntry, Code};
use kiln_iam::Principal;

use crate::Services;
use crate::error::{ApiError, ErrorMessage};
use crate::routes::unknown_verb;

/// What a request needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// API method, for the audit log: `projects.models.create`.
    pub method: String,
    /// The permission checked; `None` when any authenticated caller may.
    pub permission: Option<&'static str>,
    /// The resource checked and audited: `projects/p/models/m`.
    pub resource: String,
    /// The project (empty for server-wide routes such as `/v1/tokens`).
    pub project: String,
    /// Whether the call changes something and goes to the audit log.
    pub audited: bool,
}

/// Server-wide routes need this pseudo-permission, which only administrators hold.
const SERVER_ADMIN: Option<&str> = Some("kiln.server.admin");

/// The permission and resource of `method` on `path`, or the error to answer with.
pub fn target(method: &Method, path: &str) -> Result<Target, ApiError> {
    let not_found = || ApiError::Http(Code::NotFound, format!("Not found: {path}"));
    let rest = path.strip_prefix("/v1/").ok_or_else(not_found)?;
    let mut segments = Vec::new();
    for raw in rest.split('/') {
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| ApiError::invalid(format!("{path:?} is not valid UTF-8")))?;
        segments.push(decoded.into_owned());
    }
    let last = segments.pop().unwrap_or_default();
    let (name, verb) = crate::routes::split_verb(&last);
    segments.push(name.to_string());
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let is_get = method == Method::GET;
    let wrong_method = || {
        ApiError::Http(
            Code::InvalidArgument,
            format!("method {method} is not allowed on {path}"),
        )
    };
    // (api method, permission, resource, project)
    let (api, permission, resource, project): (String, Option<&'static str>, String, String) =
        match (parts.as_slice(), verb) {
            (["whoami"], None) if is_get => {
                ("kiln.whoami".into(), None, String::new(), String::new())
            }
            (["tokens"], None) => {
                let api = match *method {
                    Method::GET => "kiln.tokens.list",
                    Method::POST => "kiln.tokens.create",
                    _ => return Err(wrong_method()),
                };
                (api.into(), SERVER_ADMIN, "tokens".into(), String::new())
            }
            (["tokens", id], None) => {
                if method != Method::DELETE {
                    return Err(wrong_method());
                }
                (
                    "kiln.tokens.revoke".into(),
                    SERVER_ADMIN,
                    format!("tokens/{id}"),
                    String::new(),
                )
            }
            (["metrics"], None) if is_get => (
                METRICS_METHOD.into(),
                SERVER_ADMIN,
                "metrics".into(),
                String::new(),
            ),
            (["auditLogs"], None) if is_get => (
                "kiln.auditLogs.list".into(),
                SERVER_ADMIN,
                "auditLogs".into(),
                String::new(),
            ),
            (["projects", project, "v2", rest @ ..], None) => {
                let (api, permission, resource) = inference_method(project, rest, method)?;
                (api, permission, resource, project.to_string())
            }
            (["projects", project], Some("getConfig")) => {
                if !is_get {
                    return Err(ApiError::Http(
                        Code::NotFound,
                        "the method :getConfig takes GET".into(),
                    ));
                }
                (
                    "projects.getConfig".into(),
                    Some("ml.projects.getConfig"),
                    format!("projects/{project}"),
                    project.to_string(),
                )
            }
            (["projects", project, "locations"], None) if is_get => (
                "projects.locations.list".into(),
                Some("ml.locations.list"),
                format!("projects/{project}"),
                project.to_string(),
            ),
            (["projects", project, "locations", location], None) if is_get => (
                "projects.locations.get".into(),
                Some("ml.locations.get"),
                format!("projects/{project}/locations/{location}"),
                project.to_string(),
            ),
            (["projects", project, "locations", _, "operations", _], verb) => {
                let (api, permission) = match (verb, method.clone()) {
                    (None, Method::GET) => ("get", "ml.operations.get"),
                    (Some("cancel"), Method::POST) => ("cancel", "ml.operations.cancel"),
                    (Some(verb), _) => return Err(verb_error("operations", verb)),
                    (None, _) => return Err(wrong_method()),
                };
                // Study operations have no policies of their own: the project's decide.
                (
                    format!("projects.locations.operations.{api}"),
                    Some(permission),
                    format!("projects/{project}"),
                    project.to_string(),
                )
            }
            (["projects", project], Some(verb)) => {
                let (api, permission) = iam_verb("projects", verb, method)
                    .ok_or_else(|| verb_error("projects", verb))?;
                (
                    api,
                    permission,
                    format!("projects/{project}"),
                    project.to_string(),
                )
            }
            (["projects", project, "auditLogs"], None) if is_get => (
                "projects.auditLogs.list".into(),
                Some("kiln.auditLogs.list"),
                format!("projects/{project}"),
                project.to_string(),
            ),
            (
                [
                    "projects",
                    project,
                    collection @ ("models" | "jobs" | "operations"),
                ],
                None,
            ) => {
                let kind = *collection;
                let (api, permission) = match (method.clone(), kind) {
                    (Method::GET, _) => ("list", list_permission(kind)),
                    (Method::POST, "models") => ("create", "ml.models.create"),
                    (Method::POST, "jobs") => ("create", "ml.jobs.create"),
                    _ => return Err(wrong_method()),
                };
                (
                    api_name(kind, api),
                    Some(permission),
                    format!("projects/{project}"),
                    project.to_string(),
                )
            }
            (["projects", project, "models", model, "versions"], None) => {
                let (api, permission) = match *method {
                    Method::GET => ("list", "ml.versions.list"),
                    Method::POST => ("create", "ml.versions.create"),
                    _ => return Err(wrong_method()),
                };
                (
                    api_name("versions", api),
                    Some(permission),
                    format!("projects/{project}/models/{model}"),
                    project.to_string(),
                )
            }
            (
                [
                    "projects",
                    project,
                    "jobs",
                    job,
                    tail @ ("logs" | "metrics"),
                ],
                None,
            ) if is_get => (
                format!("projects.jobs.{tail}"),
                Some("ml.jobs.get"),
                format!("projects/{project}/jobs/{job}"),
                project.to_string(),
            ),
            (
                [
                    "projects",
                    project,
                    collection @ ("models" | "jobs" | "operations"),
                    id,
                ],
                verb,
            ) => {
                let kind = *collection;
                let (api, permission) =
                    resource_method(kind, verb, method).ok_or_else(|| match verb {
                        Some(verb) => verb_error(kind, verb),
                        None => wrong_method(),
                    })?;
                (
                    api,
                    permission,
                    format!("projects/{project}/{collection}/{id}"),
                    project.to_string(),
                )
            }
            (["projects", project, "models", model, "versions", version], verb) => {
                let (api, permission) =
                    resource_method("versions", verb, method).ok_or_else(|| match verb {
                        Some(verb) => verb_error("versions", verb),
                        None => wrong_method(),
                    })?;
                (
                    api,
                    permission,
                    format!("projects/{project}/models/{model}/versions/{version}"),
                    project.to_string(),
                )
            }
            (
                [
                    "projects",
                    project,
                    "locations",
                    location,
                    "studies",
                    rest @ ..,
                ],
                verb,
            ) => {
                let (api, permission) = study_method(rest, verb, method)?;
                if location.is_empty() {
                    return Err(not_found());
                }
                // Studies have no policies of their own: the project's decide.
                (
                    api,
                    Some(permission),
                    format!("projects/{project}"),
                    project.to_string(),
                )
            }
            _ => return Err(not_found()),
        };
    let read_only = is_get
        || api.ends_with(".predict")
        || api.starts_with("inference.")
        || api.ends_with(".explain")
        || api.ends_with(".getIamPolicy")
        || api.ends_with(".testIamPermissions");
    Ok(Target {
        method: api,
        permission,
        resource,
        project,
        audited: !read_only,
    })
}

/// API method, permission and resource of a path of the Open Inference Protocol under
/// `projects/{p}/v2`: reading a model's metadata is reading it, inferring is predicting.
fn inference_method(
    project: &str,
    rest: &[&str],
    method: &Method,
) -> Result<(String, Option<&'static str>, String), ApiError> {
    let is_get = method == Method::GET;
    let model = |model: &str| format!("projects/{project}/models/{model}");
    let version = |name: &str, version: &str| format!("{}/versions/{version}", model(name));
    let (api, permission, resource) = match rest {
        [] | ["health", "live" | "ready"] if is_get => {
            ("inference.server", None, format!("projects/{project}"))
        }
        ["models", name] | ["models", name, "ready"] if is_get => {
            ("inference.models.get", Some("ml.models.get"), model(name))
        }
        ["models", name, "versions", v] | ["models", name, "versions", v, "ready"] if is_get => (
            "inference.versions.get",
            Some("ml.versions.get"),
            version(name, v),
        ),
        ["models", name, "infer"] if method == Method::POST => (
            "inference.models.predict",
            Some("ml.models.predict"),
            model(name),
        ),
        ["models", name, "versions", v, "infer"] if method == Method::POST => (
            "inference.versions.predict",
            Some("ml.versions.predict"),
            version(name, v),
        ),
        _ => {
            return Err(ApiError::Http(
                Code::NotFound,
                format!(
                    "Not found: {method} /v1/projects/{project}/v2/{}",
                    rest.join("/")
                ),
            ));
        }
    };
    Ok((api.to_string(), permission, resource))
}

/// API method and permission of a path under `projects/{p}/locations/{l}/studies`.
fn study_method(
    rest: &[&str],
    verb: Option<&str>,
    method: &Method,
) -> Result<(String, &'static str), ApiError> {
    let wrong_method = || {
        ApiError::Http(
            Code::InvalidArgument,
            format!("method {method} is not allowed here"),
        )
    };
    let (api, permission) = match (rest, verb, method.clone()) {
        ([], None, Method::GET) => ("studies.list", "ml.studies.list"),
        ([], None, Method::POST) => ("studies.create", "ml.studies.create"),
        ([_], None, Method::GET) => ("studies.get", "ml.studies.get"),
        ([_], None, Method::DELETE) => ("studies.delete", "ml.studies.delete"),
        ([_, "trials"], None, Method::GET) => ("studies.trials.list", "ml.trials.list"),
        ([_, "trials"], None, Method::POST) => ("studies.trials.create", "ml.trials.create"),
        ([_, "trials"], Some("suggest"), Method::POST) => {
            ("studies.trials.suggest", "ml.trials.create")
        }
        ([_, "trials"], Some("listOptimalTrials"), Method::POST) => {
            ("studies.trials.listOptimalTrials", "ml.trials.list")
        }
        ([_, "trials", _], None, Method::GET) => ("studies.trials.get", "ml.trials.get"),
        ([_, "trials", _], None, Method::DELETE) => ("studies.trials.delete", "ml.trials.delete"),
        ([_, "trials", _], Some("addMeasurement"), Method::POST) => {
            ("studies.trials.addMeasurement", "ml.trials.update")
        }
        ([_, "trials", _], Some("complete"), Method::POST) => {
            ("studies.trials.complete", "ml.trials.update")
        }
        ([_, "trials", _], Some("stop"), Method::POST) => {
            ("studies.trials.stop", "ml.trials.update")
        }
        ([_, "trials", _], Some("checkEarlyStoppingState"), Method::POST) => {
            ("studies.trials.checkEarlyStoppingState", "ml.trials.get")
        }
        ([_, "trials"], Some(verb), _) => return Err(verb_error("trials", verb)),
        ([_, "trials", _], Some(verb), _) => return Err(verb_error("trial", verb)),
        ([] | [_] | [_, "trials"] | [_, "trials", _], None, _) => return Err(wrong_method()),
        _ => {
            return Err(ApiError::Http(
                Code::NotFound,
                "Not found: no such study path".into(),
            ));
        }
    };
    Ok((format!("projects.locations.{api}"), permission))
}

/// The custom methods (`:verb`) of each kind of resource.
pub fn known_verbs(kind: &str) -> &'static [&'static str] {
    match kind {
        "projects" => &[
            "getConfig",
            "getIamPolicy",
            "setIamPolicy",
            "testIamPermissions",
        ],
        "models" => &[
            "predict",
            "explain",
            "getIamPolicy",
            "setIamPolicy",
            "testIamPermissions",
        ],
        "versions" => &["predict", "explain", "setDefault"],
        "trials" => &["suggest", "listOptimalTrials"],
        "trial" => &[
            "addMeasurement",
            "complete",
            "stop",
            "checkEarlyStoppingState",
        ],
        "jobs" => &[
            "cancel",
            "getIamPolicy",
            "setIamPolicy",
            "testIamPermissions",
        ],
        _ => &["cancel"],
    }
}

/// A custom method this kind of resource lacks, or one used with the wrong HTTP method.
fn verb_error(kind: &str, verb: &str) -> ApiError {
    match known_verbs(kind).contains(&verb) {
        true => ApiError::Http(Code::NotFound, format!("the method :{verb} takes POST")),
        false => unknown_verb(Some(verb), known_verbs(kind)),
    }
}

fn list_permission(kind: &str) -> &'static str {
    match kind {
        "models" => "ml.models.list",
        "jobs" => "ml.jobs.list",
        _ => "ml.operations.list",
    }
}

/// `getIamPolicy`, `setIamPolicy` and `testIamPermissions` on projects, models and jobs.
fn iam_verb(kind: &str, verb: &str, method: &Method) -> Option<(String, Option<&'static str>)> {
    let permission = match (kind, verb, method.clone()) {
        (_, "testIamPermissions", Method::POST) => None,
        ("projects", "getIamPolicy", Method::GET | Method::POST) => {
            Some("ml.projects.getIamPolicy")
        }
        ("projects", "setIamPolicy", Method::POST) => Some("ml.projects.setIamPolicy"),
        ("models", "getIamPolicy", Method::GET | Method::POST) => Some("ml.models.getIamPolicy"),
        ("models", "setIamPolicy", Method::POST) => Some("ml.models.setIamPolicy"),
        ("jobs", "getIamPolicy", Method::GET | Method::POST) => Some("ml.jobs.getIamPolicy"),
        ("jobs", "setIamPolicy", Method::POST) => Some("ml.jobs.setIamPolicy"),
        _ => return None,
    };
    Some((api_name(kind, verb), permission))
}

/// The API method name of `method` on a kind of resource: `projects.models.versions.predict`.
fn api_name(kind: &str, method: &str) -> String {
    match kind {
        "projects" => format!("projects.{method}"),
        "versions" => format!("projects.models.versions.{method}"),
        kind => format!("projects.{kind}.{method}"),
    }
}

/// The method and permission of `method` (with `verb`) on one model, version, job or operation.
fn resource_method(
    kind: &str,
    verb: Option<&str>,
    method: &Method,
) -> Option<(String, Option<&'static str>)> {
    if let Some(found) = verb.and_then(|verb| iam_verb(kind, verb, method)) {
        return Some(found);
    }
    let (api, permission) = match (kind, verb, method.clone()) {
        ("models", None, Method::GET) => ("get", "ml.models.get"),
        ("models", None, Method::PATCH) => ("patch", "ml.models.update"),
        ("models", None, Method::DELETE) => ("delete", "ml.models.delete"),
        ("models", Some("predict"), Method::POST) => ("predict", "ml.models.predict"),
        ("models", Some("explain"), Method::POST) => ("explain", "ml.models.predict"),
        ("versions", None, Method::GET) => ("get", "ml.versions.get"),
        ("versions", None, Method::PATCH) => ("patch", "ml.versions.update"),
        ("versions", None, Method::DELETE) => ("delete", "ml.versions.delete"),
        ("versions", Some("predict"), Method::POST) => ("predict", "ml.versions.predict"),
        ("versions", Some("explain"), Method::POST) => ("explain", "ml.versions.predict"),
        ("versions", Some("setDefault"), Method::POST) => ("setDefault", "ml.versions.update"),
        ("jobs", None, Method::GET) => ("get", "ml.jobs.get"),
        ("jobs", None, Method::PATCH) => ("patch", "ml.jobs.update"),
        ("jobs", Some("cancel"), Method::POST) => ("cancel", "ml.jobs.cancel"),
        ("operations", None, Method::GET) => ("get", "ml.operations.get"),
        ("operations", Some("cancel"), Method::POST) => ("cancel", "ml.operations.cancel"),
        _ => return None,
    };
    Some((api_name(kind, api), Some(permission)))
}

/// The middleware: authenticates, authorizes, runs the handler with the [`Principal`] in the
/// request's extensions, and audits.
pub async fn guard(State(services): State<Services>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if !path.starts_with("/v1/") {
        return next.run(request).await;
    }
    let target = match target(request.method(), &path) {
        Ok(target) => target,
        Err(error) => return error.into_response(),
    };
    let access = &services.access;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if target.method == METRICS_METHOD && is_metrics_token(&services, authorization) {
        let mut response = next.run(request).await;
        response.extensions_mut().insert(Caller {
            member: Some(METRICS_SCRAPER.into()),
            method: target.method,
        });
        return response;
    }
    let (mut response, principal) = match access.authenticate(authorization) {
        Err(error) => (ApiError::from(error).into_response(), None),
        Ok(principal) => {
            let allowed = match target.permission {
                Some(permission) => access.authorize(&principal, permission, &target.resource),
                None => Ok(()),
            };
            let response = match allowed {
                Ok(()) => {
                    request.extensions_mut().insert(principal.clone());
                    next.run(request).await
                }
                Err(error) => ApiError::from(error).into_response(),
            };
            (response, Some(principal))
        }
    };
    if target.audited {
        let error = response
            .extensions()
            .get::<ErrorMessage>()
            .map(|message| message.0.clone())
            .unwrap_or_default();
        let status = response.status().as_u16();
        audit(&services, &target, principal.as_ref(), status, error).await;
    }
    response.extensions_mut().insert(Caller {
        member: principal.map(|principal| principal.member),
        method: target.method,
    });
    response
}

/// The API method of `/v1/metrics`.
const METRICS_METHOD: &str = "kiln.metrics.get";

/// The caller the access log names for the metrics token.
const METRICS_SCRAPER: &str = "metrics-token";

/// Who called which API method, left on the response for the access log.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated member (`serviceAccount:ci`), if the token was accepted.
    pub member: Option<String>,
    /// The API method (`projects.models.predict`).
    pub method: String,
}

/// Whether `authorization` carries the server's metrics token (compared in constant time).
fn is_metrics_token(services: &Services, authorization: Option<&str>) -> bool {
    let (Some(expected), Some(given)) = (
        services.metrics_token.as_deref(),
        authorization.and_then(|value| value.strip_prefix("Bearer ")),
    ) else {
        return false;
    };
    bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        given.trim().as_bytes(),
    ))
}

async fn audit(
    services: &Services,
    target: &Target,
    principal: Option<&Principal>,
    status: u16,
    error: String,
) {
    let entry = AuditEntry {
        id: String::new(),
        time: kiln_api::now(),
        member: principal.map(|p| p.member.clone()).unwrap_or_default(),
        token: principal
            .filter(|p| !p.token_id.is_empty())
            .map(|p| format!("tokens/{}", p.token_id))
            .unwrap_or_default(),
        method: target.method.clone(),
        resource: target.resource.clone(),
        status,
        error,
    };
    if let Err(error) = services.access.record(&target.project, entry).await {
        tracing::error!(%error, method = %target.method, "could not write the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: Method, path: &str) -> (String, Option<&'static str>, String, bool) {
        let target = target(&method, path).unwrap_or_else(|_| panic!("{method} {path}"));
        (
            target.method,
            target.permission,
            target.resource,
            target.audited,
        )
    }

    #[test]
    fn routes_map_to_permissions() {
        assert_eq!(
            check(Method::POST, "/v1/projects/p/models"),
            (
                "projects.models.create".into(),
                Some("ml.models.create"),
                "projects/p".into(),
                true
            )
        );
        assert_eq!(
            check(Method::POST, "/v1/projects/p/models/m/versions/v:predict"),
            (
                "projects.models.versions.predict".into(),
                Some("ml.versions.predict"),
                "projects/p/models/m/versions/v".into(),
                false
            )
        );
        assert_eq!(
            check(Method::POST, "/v1/projects/p/models/m%3Apredict").1,
            Some("ml.models.predict"),
            "an encoded colon is a verb, as the router sees it"
        );
        assert_eq!(
            check(Method::GET, "/v1/projects/p/jobs/j/logs").1,
            Some("ml.jobs.get")
        );
        assert_eq!(
            check(Method::POST, "/v1/projects/p:setIamPolicy"),
            (
                "projects.setIamPolicy".into(),
                Some("ml.projects.setIamPolicy"),
                "projects/p".into(),
                true
            )
        );
        assert_eq!(check(Method::DELETE, "/v1/tokens/abc").1, SERVER_ADMIN);
        assert_eq!(check(Method::GET, "/v1/metrics").1, SERVER_ADMIN);
        assert_eq!(
            check(Method::GET, "/v1/projects/p/jobs/j/metrics").1,
            Some("ml.jobs.get")
        );
        assert_eq!(
            check(Method::POST, "/v1/projects/p/models/m:explain"),
            (
                "projects.models.explain".into(),
                Some("ml.models.predict"),
                "projects/p/models/m".into(),
                false
            )
        );
        assert_eq!(
            check(Method::POST, "/v1/projects/p/jobs/j:testIamPermissions").1,
            None
        );
        assert_eq!(
            check(Method::GET, "/v1/projects/p:getConfig"),
            (
                "projects.getConfig".into(),
                Some("ml.projects.getConfig"),
                "projects/p".into(),
                false
            )
        );
        assert_eq!(
            check(Method::GET, "/v1/projects/p/locations").1,
            Some("ml.locations.list")
        );
        assert_eq!(
            check(Method::GET, "/v1/projects/p/locations/us-east1").1,
            Some("ml.locations.get")
        );
        assert_eq!(
            check(
                Method::POST,
                "/v1/projects/p/locations/l/operations/o:cancel"
            ),
            (
                "projects.locations.operations.cancel".into(),
                Some("ml.operations.cancel"),
                "projects/p".into(),
                true
            )
        );
    }

    #[test]
    fn unknown_routes_are_refused_before_any_handler() {
        for (method, path) in [
            (Method::GET, "/v1/projects/p/secrets"),
            (Method::POST, "/v1/projects/p/models/m:erase"),
            (Method::GET, "/v1/projects/p/models/m/versions/v/files"),
            (Method::GET, "/v1/projects"),
            (Method::PUT, "/v1/projects/p/models/m"),
            (Method::GET, "/v1/projects/p%ff/models"),
        ] {
            assert!(target(&method, path).is_err(), "{method} {path}");
        }
    }
}
