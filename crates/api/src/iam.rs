//! Access control on the wire: IAM policies (api-surface.md A.2, `getIamPolicy`, `setIamPolicy`,
//! `testIamPermissions` on projects, models and jobs), and Kiln's own tokens and audit log.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An IAM policy: who holds which role on one resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Policy format version (1; conditions, which need 3, are not supported).
    #[serde(default)]
    pub version: i32,
    /// Role bindings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<Binding>,
    /// Kept as given; Kiln audits every mutating call regardless.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_configs: Vec<Value>,
    /// Optimistic-concurrency token: a `setIamPolicy` carrying a stale etag is refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
}

/// One role granted to members.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Binding {
    /// `roles/ml.developer`, ...
    #[serde(default)]
    pub role: String,
    /// `serviceAccount:NAME` or `allAuthenticatedUsers`.
    #[serde(default)]
    pub members: Vec<String>,
    /// A condition expression; refused, as Kiln does not evaluate conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

/// Body of `:setIamPolicy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetIamPolicyRequest {
    /// The complete new policy.
    #[serde(default)]
    pub policy: Option<Policy>,
    /// Fields of the policy to change (`bindings,etag` when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub update_mask: String,
}

/// Body of `:testIamPermissions`, and its response (the subset the caller holds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestIamPermissions {
    /// Permission names such as `ml.models.predict`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
}

/// An API token of a service account (a Kiln extension: `/v1/tokens`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Token {
    /// `tokens/{id}` (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The service account the token authenticates as; policies name it `serviceAccount:NAME`.
    #[serde(default)]
    pub service_account: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Server administrator: every permission everywhere, and token management.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// A role the token holds on one resource and what lies under it, besides the bindings of its
    /// service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<TokenGrant>,
    /// When the token was created (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub create_time: String,
    /// When the token stops working; empty: never.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expire_time: String,
    /// When the token was revoked (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revoke_time: String,
    /// The bearer secret: returned once, by create, and never stored.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
}

/// A role a token holds on one resource (a Kiln extension).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenGrant {
    /// `projects/p`, `projects/p/models/m`, `projects/p/jobs/j/trials/t`, ...
    pub resource: String,
    /// `roles/ml.modelUser`, `roles/kiln.trialReporter`, ...
    pub role: String,
}

/// Response of `GET /v1/tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListTokensResponse {
    /// The tokens, without secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<Token>,
    /// Token of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Who a request authenticated as (`GET /v1/whoami`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// `serviceAccount:NAME`, or `anonymous` when the server runs without authentication.
    pub member: String,
    /// `tokens/{id}` of the token used; empty without authentication.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Server administrator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// One mutating call, as the audit log keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Sequence number in the log, ascending with time (output only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// When the call finished.
    pub time: String,
    /// Who made it (see [`Identity::member`]); empty when no valid token came with it.
    #[serde(default)]
    pub member: String,
    /// The token used, `tokens/{id}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// The API method, e.g. `projects.models.create`.
    pub method: String,
    /// The resource the call addressed, e.g. `projects/p/models/census`.
    pub resource: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// Response of the audit log lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListAuditEntriesResponse {
    /// Entries, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<AuditEntry>,
    /// Token of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
