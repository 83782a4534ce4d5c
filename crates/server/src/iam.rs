//! Handlers of the IAM policy methods (on projects, models and jobs), of tokens, `whoami` and the
//! audit log. Permissions were checked by [`crate::auth::guard`] before these run.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{delete, get};
use axum::{Extension, Router};
use kiln_api::{Operation, SetIamPolicyRequest, TestIamPermissions, Token};
use kiln_iam::Principal;
use kiln_registry::Access;

use crate::Services;
use crate::extract::{JsonBody, QueryParams, RawBody, or_empty_object, parse_json};
use crate::routes::{ApiResult, json, split_verb, unknown_verb};

type Shared = State<Arc<Access>>;

/// The routes of projects' policies, tokens, `whoami` and the audit logs.
pub fn routes() -> Router<Services> {
    Router::new()
        .route(
            "/v1/projects/{project}",
            get(project_verb).post(project_verb),
        )
        .route("/v1/projects/{project}/auditLogs", get(project_audit_log))
        .route("/v1/whoami", get(whoami))
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{token}", delete(revoke_token))
        .route("/v1/auditLogs", get(audit_log))
}

/// Answers `:getIamPolicy`, `:setIamPolicy` or `:testIamPermissions` on `resource`; `None` for
/// any other verb.
pub(crate) fn policy_verb(
    access: &Access,
    principal: &Principal,
    resource: &str,
    verb: &str,
    body: &[u8],
) -> Option<ApiResult> {
    let answer = match verb {
        "getIamPolicy" => access
            .get_policy(resource)
            .map_err(Into::into)
            .and_then(json),
        "setIamPolicy" => parse_json::<SetIamPolicyRequest>(or_empty_object(body))
            .and_then(|request| Ok(access.set_policy(resource, request)?))
            .and_then(json),
        "testIamPermissions" => parse_json::<TestIamPermissions>(or_empty_object(body))
            .and_then(|request| {
                Ok(access.test_permissions(principal, resource, request.permissions)?)
            })
            .and_then(|permissions| json(TestIamPermissions { permissions })),
        _ => return None,
    };
    Some(answer)
}

/// Makes the caller the owner of the operation it started, so it can follow it.
pub(crate) async fn owned_operation(
    access: &Access,
    principal: &Principal,
    operation: Operation,
) -> ApiResult {
    access
        .grant_creator(principal, &operation.name, kiln_iam::roles::OPERATION_OWNER)
        .await?;
    json(operation)
}

async fn project_verb(
    State(access): Shared,
    Extension(principal): Extension<Principal>,
    Path(segment): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult {
    let (project, verb) = split_verb(&segment);
    if verb == Some("getConfig") {
        return crate::locations::get_config(project);
    }
    let resource = format!("projects/{project}");
    match verb.and_then(|verb| policy_verb(&access, &principal, &resource, verb, &body)) {
        Some(answer) => answer,
        None => Err(unknown_verb(verb, crate::auth::known_verbs("projects"))),
    }
}

async fn project_audit_log(
    State(access): Shared,
    Path(project): Path<String>,
    query: QueryParams,
) -> ApiResult {
    json(access.audit_log(Some(&project), &query.list()?)?)
}

async fn audit_log(State(access): Shared, query: QueryParams) -> ApiResult {
    json(access.audit_log(None, &query.list()?)?)
}

async fn whoami(Extension(principal): Extension<Principal>) -> ApiResult {
    json(Access::identity(&principal))
}

async fn list_tokens(State(access): Shared, query: QueryParams) -> ApiResult {
    json(access.list_tokens(&query.list()?)?)
}

async fn create_token(State(access): Shared, JsonBody(token): JsonBody<Token>) -> ApiResult {
    json(access.create_token(token)?)
}

async fn revoke_token(State(access): Shared, Path(token): Path<String>) -> ApiResult {
    json(access.revoke_token(&token)?)
}
