//! The gate every `/v1` request passes: authenticate the token, find the permission the route
//! needs, check it, and write mutating calls to the audit log.
//!
//! The route table ([`crate::routes::ROUTES`]) is deny-by-default: a `/v1` path it does not know
//! is answered 404 here and never reaches a handler. The route found is left in the request's
//! extensions, and the router runs its handler ([`crate::route::router`]).

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kiln_api::AuditEntry;
use kiln_iam::Principal;

use crate::Services;
use crate::error::{ApiError, ErrorMessage};
use crate::route::{Found, Gate, find};
use crate::routes::METRICS_API;

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

impl Target {
    /// What the request of a found route needs.
    pub fn of(found: &Found) -> Self {
        let route = found.route;
        Target {
            method: route.api.to_string(),
            permission: match route.gate {
                Gate::Permission(permission) => Some(permission),
                Gate::Open | Gate::Token => None,
            },
            resource: found.resource(),
            project: found.project().to_string(),
            audited: route.writes,
        }
    }
}

/// The permission and resource of `method` on `path`, or the error to answer with.
pub fn target(method: &Method, path: &str) -> Result<Target, ApiError> {
    find(method, path).map(|found| Target::of(&found))
}

/// The middleware: authenticates, authorizes, runs the handler with the [`Principal`] in the
/// request's extensions, and audits.
pub async fn guard(State(services): State<Services>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let found = match find(request.method(), path) {
        Ok(found) => found,
        Err(error) if path.starts_with("/v1/") => return error.into_response(),
        // The console's files, and paths the router's fallback refuses.
        Err(_) => return next.run(request).await,
    };
    if found.route.gate == Gate::Open {
        request.extensions_mut().insert(found);
        return next.run(request).await;
    }
    let target = Target::of(&found);
    request.extensions_mut().insert(found);
    let access = &services.access;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if target.method == METRICS_API && is_metrics_token(&services, authorization) {
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
        assert_eq!(
            check(Method::POST, "/v1/projects/p/models/m:setIamPolicy"),
            (
                "projects.models.setIamPolicy".into(),
                Some("ml.models.setIamPolicy"),
                "projects/p/models/m".into(),
                true
            )
        );
        assert_eq!(
            check(Method::GET, "/v1/projects/p/jobs/j:getIamPolicy"),
            (
                "projects.jobs.getIamPolicy".into(),
                Some("ml.jobs.getIamPolicy"),
                "projects/p/jobs/j".into(),
                false
            )
        );
        assert_eq!(
            check(
                Method::POST,
                "/v1/projects/p/locations/l/studies/s/trials/t:addMeasurement"
            ),
            (
                "projects.locations.studies.trials.addMeasurement".into(),
                Some("ml.trials.update"),
                "projects/p".into(),
                true
            )
        );
        assert_eq!(
            check(
                Method::POST,
                "/v1/projects/p/jobs/j/trials/3:addMeasurement"
            ),
            (
                "projects.jobs.trials.addMeasurement".into(),
                Some("kiln.jobs.addMeasurement"),
                "projects/p/jobs/j/trials/3".into(),
                true
            )
        );
        assert_eq!(
            check(Method::GET, "/v1/projects/%7Bmodel%7D/models/x").2,
            "projects/{model}/models/x",
            "a value is never read as a template"
        );
        assert_eq!(
            check(Method::DELETE, "/v1/tokens/abc").1,
            Some("kiln.server.admin")
        );
        assert_eq!(
            check(Method::GET, "/v1/metrics").1,
            Some("kiln.server.admin")
        );
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
            (Method::GET, "/v1/projects//models"),
            (Method::GET, "/v1/projects/p%2Fmodels%2Fm/models/x"),
            (Method::GET, "/v1/projects/p/locations//studies"),
            (
                Method::POST,
                "/v1/projects/p/models/m/versions/v:testIamPermissions",
            ),
        ] {
            assert!(target(&method, path).is_err(), "{method} {path}");
        }
    }
}
