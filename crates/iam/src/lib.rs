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
        }
    }

    /// The member string of a service account.
    pub fn service_account(name: &str) -> String {
        format!("serviceAccount:{name}")
    }
}
