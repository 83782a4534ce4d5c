//! Handlers of the IAM policy methods (on projects, models and jobs), of tokens, `whoami` and the
//! audit log. Permissions were checked by [`crate::auth::guard`] before these run.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use kiln_api::{SetIamPolicyRequest, TestIamPermissions, Token};
use kiln_iam::Principal;
use kiln_registry::Access;

use crate::extract::{JsonBody, QueryParams};
use crate::route::{ApiResult, Found, json};

type Shared = State<Arc<Access>>;

/// `:getIamPolicy` on the route's resource.
pub(crate) async fn get_policy(State(access): Shared, found: Found) -> ApiResult {
    json(access.get_policy(&found.resource())?)
}

/// `:setIamPolicy` on the route's resource.
pub(crate) async fn set_policy(
    State(access): Shared,
    found: Found,
    JsonBody(request): JsonBody<SetIamPolicyRequest>,
) -> ApiResult {
    json(access.set_policy(&found.resource(), request)?)
}

/// `:testIamPermissions` on the route's resource.
pub(crate) async fn test_permissions(
    State(access): Shared,
    Extension(principal): Extension<Principal>,
    found: Found,
    JsonBody(request): JsonBody<TestIamPermissions>,
) -> ApiResult {
    let permissions =
        access.test_permissions(&principal, &found.resource(), request.permissions)?;
    json(TestIamPermissions { permissions })
}

pub(crate) async fn project_audit_log(
    State(access): Shared,
    found: Found,
    query: QueryParams,
) -> ApiResult {
    json(access.audit_log(Some(found.project()), &query.list()?)?)
}

pub(crate) async fn audit_log(State(access): Shared, query: QueryParams) -> ApiResult {
    json(access.audit_log(None, &query.list()?)?)
}

pub(crate) async fn whoami(Extension(principal): Extension<Principal>) -> ApiResult {
    json(Access::identity(&principal))
}

pub(crate) async fn list_tokens(State(access): Shared, query: QueryParams) -> ApiResult {
    json(access.list_tokens(&query.list()?)?)
}

pub(crate) async fn create_token(
    State(access): Shared,
    JsonBody(token): JsonBody<Token>,
) -> ApiResult {
    json(access.create_token(token)?)
}

pub(crate) async fn revoke_token(State(access): Shared, found: Found) -> ApiResult {
    json(access.revoke_token(found.value("token"))?)
}
