//! Kiln's access rules, as pure functions: which permissions a role grants, whether a policy lets
//! a member do something, what a valid policy is, and how token secrets are made and checked.
//!
//! # Layout (reading order)
//! - [`roles`]: the permissions of ML Engine's API and the roles that bundle them
//!   (`roles/ml.admin`, `roles/ml.developer`, ... as Cloud IAM defines them).
//! - [`policy`]: policy validation, the resource hierarchy a check walks, and the check itself.
//! - [`token`]: bearer token secrets: generation, parsing, hashing, constant-time verification.
//!
//! **Architecture invariant:** no I/O here. The registry loads policies and tokens from the store
//! and asks this crate; the HTTP layer only maps a route to a permission.

pub mod policy;
pub mod roles;
pub mod token;

/// Who a request is from, once its token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `serviceAccount:NAME`, or [`ANONYMOUS`] when authentication is off.
    pub member: String,
    /// Id of the token used; empty when authentication is off.
    pub token_id: String,
    /// Server administrator: every permission on every resource.
    pub admin: bool,
    /// A role the token holds on one resource besides its service account's bindings.
    pub grant: Option<Grant>,
}

/// A role on one resource and everything under it, held by a token rather than bound in a policy:
/// a tuning trial's replicas report their measurements with a token that holds
/// [`roles::TRIAL_REPORTER`] on their trial, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `projects/p/jobs/j/trials/t`, ...
    pub resource: String,
    /// The role held there.
    pub role: &'static roles::Role,
}

impl Grant {
    /// Whether this grant gives `permission` on `resource`: the granted resource or one under it.
    pub fn allows(&self, permission: &str, resource: &str) -> bool {
        let within = resource
            .strip_prefix(self.resource.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        within && self.role.grants(permission)
    }
}

/// The member of every request to a server started with `--insecure-no-auth`.
pub const ANONYMOUS: &str = "anonymous";

impl Principal {
    /// The caller of a server without authentication: an administrator, as on a laptop anyone
    /// who can reach the loopback port is the machine's user anyway.
    pub fn anonymous() -> Self {
        Self {
            member: ANONYMOUS.into(),
            token_id: String::new(),
            admin: true,
            grant: None,
        }
    }

    /// The member string of a service account.
    pub fn service_account(name: &str) -> String {
        format!("serviceAccount:{name}")
    }
}
