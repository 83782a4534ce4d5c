//! The `Access` service: who a request is from, what it may do, the policies that say so, the
//! tokens that prove it, and the audit log of what was done.
//!
//! The rules themselves are `kiln-iam`'s; this service loads what they need from the store.

use std::sync::Arc;

use kiln_api::iam::{ListAuditEntriesResponse, ListTokensResponse};
use kiln_api::{AuditEntry, Binding, Identity, Policy, SetIamPolicyRequest, Token};
use kiln_iam::{Principal, policy, roles, token};
use kiln_store::{Contains, Order, Scan, Store};

use crate::RegistryError;
use crate::list::ListParams;
use crate::recent::Recent;
use crate::registry::{etag, on_store};

/// The etag of a resource that has no policy yet (the one Cloud IAM returns for empty policies).
pub const EMPTY_POLICY_ETAG: &str = "ACAB";

/// The service account of the token a server makes on its first start.
pub const FIRST_ADMIN: &str = "admin";

/// Most permissions one `testIamPermissions` call may ask about.
const MAX_TESTED: usize = 100;

/// Tokens, policies and the audit log.
pub struct Access {
    store: Arc<dyn Store>,
    /// `false` for `--insecure-no-auth`: every request is [`Principal::anonymous`].
    enabled: bool,
    /// Tokens found, with their secret's hash, by id.
    tokens: Recent<Option<(Token, String)>>,
    /// Policies by resource.
    policies: Recent<Option<Policy>>,
}

fn denied(permission: &str, resource: &str) -> RegistryError {
    RegistryError::PermissionDenied(format!(
        "Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
    ))
}

fn unauthenticated(why: &str) -> RegistryError {
    RegistryError::Unauthenticated(format!(
        "Request had invalid authentication credentials: {why}. Send 'Authorization: Bearer \
         <token>' with a Kiln token (kiln auth login)."
    ))
}

impl Access {
    /// Access control over `store`; `enabled: false` lets every request in as an administrator.
    pub fn new(store: Arc<dyn Store>, enabled: bool) -> Arc<Self> {
        Arc::new(Self {
            store,
            enabled,
            tokens: Recent::new(),
            policies: Recent::new(),
        })
    }

    /// Whether requests must carry a token (`false` under `--insecure-no-auth`).
    pub fn authenticates(&self) -> bool {
        self.enabled
    }

    /// On a first start (no token exists), makes an administrator token and returns its bearer
    /// secret, which is shown once and never stored.
    pub fn bootstrap(&self) -> Result<Option<String>, RegistryError> {
        let first = Scan {
            after: None,
            contains: &Contains::default(),
            order: &Order::OWN,
            limit: 1,
        };
        if !self.enabled || !self.store.scan_tokens(&first)?.is_empty() {
            return Ok(None);
        }
        let token = self.create_token(Token {
            service_account: FIRST_ADMIN.into(),
            description: "made on the server's first start".into(),
            admin: true,
            ..Token::default()
        })?;
        Ok(Some(token.secret))
    }

    /// The principal an `Authorization` header proves. Unknown ids and wrong secrets get the
    /// same answer, so the answer does not tell which ids exist.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, RegistryError> {
        if !self.enabled {
            return Ok(Principal::anonymous());
        }
        let header = authorization.ok_or_else(|| {
            RegistryError::Unauthenticated(
                "Request is missing required authentication credential: send 'Authorization: \
                 Bearer <token>' with a Kiln token (kiln auth login)."
                    .into(),
            )
        })?;
        let bearer = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthenticated("the Authorization header is not 'Bearer <token>'"))?;
        let (id, secret) = token::parse(bearer.trim())
            .ok_or_else(|| unauthenticated("the token is not a Kiln token"))?;
        let (record, _) = self
            .tokens
            .get(id, || self.store.get_token(id), Option::is_some)?
            .filter(|(_, hash)| token::verify(secret, hash))
            .ok_or_else(|| unauthenticated("the token is not valid"))?;
        if !record.revoke_time.is_empty() {
            return Err(unauthenticated(&format!(
                "token {} was revoked at {}",
                record.name, record.revoke_time
            )));
        }
        if expired(&record.expire_time) {
            return Err(unauthenticated(&format!(
                "token {} expired at {}",
                record.name, record.expire_time
            )));
        }
        Ok(Principal {
            member: Principal::service_account(&record.service_account),
            token_id: id.to_string(),
            admin: record.admin,
            // Checked when the token was made; a role this build no longer knows grants nothing.
            grant: record.grant.as_ref().and_then(|grant| {
                Some(kiln_iam::Grant {
                    resource: grant.resource.clone(),
                    role: roles::role(&grant.role)?,
                })
            }),
        })
    }

    /// The identity of a principal, as `GET /v1/whoami` shows it.
    pub fn identity(principal: &Principal) -> Identity {
        Identity {
            member: principal.member.clone(),
            token: match principal.token_id.is_empty() {
                true => String::new(),
                false => format!("tokens/{}", principal.token_id),
            },
            admin: principal.admin,
        }
    }

    /// Succeeds when `principal` holds `permission` on `resource` (a `projects/...` name; any
    /// other resource, such as `tokens`, is for server administrators only).
    pub fn authorize(
        &self,
        principal: &Principal,
        permission: &str,
        resource: &str,
    ) -> Result<(), RegistryError> {
        if principal.admin {
            return Ok(());
        }
        let Some(chain) = policy::hierarchy(resource) else {
            return Err(denied(permission, resource));
        };
        let policies = self.policies(&chain)?;
        match policy::allows(principal, permission, resource, &policies) {
            true => Ok(()),
            false => Err(denied(permission, resource)),
        }
    }

    fn policies(&self, chain: &[String]) -> Result<Vec<Policy>, RegistryError> {
        let mut policies = Vec::with_capacity(chain.len());
        for resource in chain {
            policies.extend(self.policies.get(
                resource,
                || self.store.get_policy(resource),
                |_| true,
            )?);
        }
        Ok(policies)
    }

    /// Fails with NOT_FOUND unless `resource` is a project, or a model or job that exists.
    fn ensure_exists(&self, resource: &str) -> Result<(), RegistryError> {
        let exists = match resource.split('/').collect::<Vec<_>>()[..] {
            ["projects", project] => kiln_api::names::check_project(project).is_ok(),
            ["projects", project, "models", model] => {
                self.store.get_model(project, model)?.is_some()
            }
            ["projects", project, "jobs", job] => self.store.get_job(project, job)?.is_some(),
            _ => {
                return Err(RegistryError::InvalidArgument(format!(
                    "{resource} has no policy: policies are set on projects, models and jobs"
                )));
            }
        };
        match exists {
            true => Ok(()),
            false => Err(RegistryError::NotFound(format!(
                "The resource {resource} was not found."
            ))),
        }
    }

    /// `getIamPolicy`: the policy set on `resource`, or an empty one.
    pub fn get_policy(&self, resource: &str) -> Result<Policy, RegistryError> {
        self.ensure_exists(resource)?;
        Ok(self.store.get_policy(resource)?.unwrap_or_else(|| Policy {
            version: 1,
            etag: EMPTY_POLICY_ETAG.into(),
            ..Policy::default()
        }))
    }

    /// `setIamPolicy`: replaces the policy of `resource` (the fields `updateMask` names, default
    /// `bindings,etag`). A request carrying an etag succeeds only if the policy is unchanged since.
    pub fn set_policy(
        &self,
        resource: &str,
        request: SetIamPolicyRequest,
    ) -> Result<Policy, RegistryError> {
        let current = self.get_policy(resource)?;
        let requested = request.policy.ok_or_else(|| {
            RegistryError::InvalidArgument("Field: policy Error: a policy is required".into())
        })?;
        policy::validate(&requested)
            .map_err(|problems| RegistryError::InvalidArgument(problems.join("; ")))?;
        let mut next = Policy {
            version: 1,
            ..current
        };
        let mask: Vec<&str> = request
            .update_mask
            .split(',')
            .map(str::trim)
            .filter(|field| !field.is_empty())
            .collect();
        let fields = if mask.is_empty() {
            vec!["bindings", "etag"]
        } else {
            mask
        };
        for field in fields {
            match field {
                "bindings" => next.bindings = requested.bindings.clone(),
                "auditConfigs" => next.audit_configs = requested.audit_configs.clone(),
                "etag" | "version" => {}
                other => {
                    return Err(RegistryError::InvalidArgument(format!(
                        "Field: update_mask Error: {other:?} cannot be updated; use bindings, \
                         auditConfigs or etag"
                    )));
                }
            }
        }
        let expected = match requested.etag.as_str() {
            "" => None,
            EMPTY_POLICY_ETAG => Some(""),
            given => Some(given),
        };
        next.etag = String::new();
        next.etag = etag(&next);
        self.store
            .set_policy(resource, &next, expected)
            .inspect(|_| self.policies.forget(resource))
            .map_err(|error| match error {
                kiln_store::StoreError::Conflict(_) => RegistryError::Aborted(format!(
                    "etag {:?} does not match the current policy of {resource}; get the policy and \
                 apply the change again",
                    requested.etag
                )),
                other => other.into(),
            })?;
        Ok(next)
    }

    /// `testIamPermissions`: which of `permissions` the caller holds on `resource`.
    pub fn test_permissions(
        &self,
        principal: &Principal,
        resource: &str,
        permissions: Vec<String>,
    ) -> Result<Vec<String>, RegistryError> {
        self.ensure_exists(resource)?;
        if permissions.len() > MAX_TESTED {
            return Err(RegistryError::InvalidArgument(format!(
                "Field: permissions Error: at most {MAX_TESTED} permissions per call"
            )));
        }
        if let Some((index, unknown)) = permissions
            .iter()
            .enumerate()
            .find(|(_, permission)| !roles::is_permission(permission))
        {
            return Err(RegistryError::InvalidArgument(format!(
                "Field: permissions[{index}] Error: {unknown:?} is not a permission Kiln knows"
            )));
        }
        let chain = policy::hierarchy(resource).unwrap_or_default();
        let policies = self.policies(&chain)?;
        Ok(permissions
            .into_iter()
            .filter(|permission| policy::allows(principal, permission, resource, &policies))
            .collect())
    }

    /// The first policy of a resource `creator` creates: `role` for the creator. The anonymous
    /// caller of a server without authentication is bound to nothing. The store writes it with
    /// the resource, replacing whatever policy a deleted namesake left; then
    /// [`Access::created`] forgets what this server kept of that one.
    pub fn creator_policy(creator: &Principal, role: &'static str) -> Policy {
        let mut policy = Policy {
            version: 1,
            ..Policy::default()
        };
        if creator.member != kiln_iam::ANONYMOUS {
            policy.bindings.push(Binding {
                role: role.into(),
                members: vec![creator.member.clone()],
                condition: None,
            });
        }
        policy.etag = etag(&policy);
        policy
    }

    /// Forgets the kept policy of `resource`, just created with its creator's.
    pub fn created(&self, resource: &str) {
        self.policies.forget(resource);
    }

    /// Creates a token; the answer carries its secret, the only time it is shown.
    pub fn create_token(&self, request: Token) -> Result<Token, RegistryError> {
        let mut problems = Vec::new();
        if let Err(problem) = token::check_account(&request.service_account) {
            problems.push(format!("Field: token.service_account Error: {problem}"));
        }
        if let Some(grant) = &request.grant {
            if let Err(problem) = roles::known(&grant.role) {
                problems.push(format!("Field: token.grant.role Error: {problem}"));
            }
            if policy::hierarchy(&grant.resource).is_none() {
                problems.push(format!(
                    "Field: token.grant.resource Error: {:?} is not a resource name such as \
                     projects/p or projects/p/models/m",
                    grant.resource
                ));
            }
        }
        if !request.expire_time.is_empty() {
            match chrono::DateTime::parse_from_rfc3339(&request.expire_time) {
                Ok(time) if time <= chrono::Utc::now() => problems.push(format!(
                    "Field: token.expire_time Error: {} is in the past",
                    request.expire_time
                )),
                Ok(_) => {}
                Err(_) => problems.push(format!(
                    "Field: token.expire_time Error: {:?} is not an RFC 3339 time such as \
                     2030-01-01T00:00:00Z",
                    request.expire_time
                )),
            }
        }
        for (field, value) in [
            ("name", &request.name),
            ("create_time", &request.create_time),
            ("revoke_time", &request.revoke_time),
            ("secret", &request.secret),
        ] {
            if !value.is_empty() {
                problems.push(format!("Field: token.{field} Error: it is output only"));
            }
        }
        if !problems.is_empty() {
            return Err(RegistryError::InvalidArgument(problems.join("; ")));
        }
        let made = token::generate();
        let record = Token {
            name: format!("tokens/{}", made.id),
            create_time: kiln_api::now(),
            ..request
        };
        self.store.create_token(&made.id, &made.hash, &record)?;
        Ok(Token {
            secret: made.bearer,
            ..record
        })
    }

    /// The tokens, oldest first, without secrets.
    pub fn list_tokens(&self, params: &ListParams) -> Result<ListTokensResponse, RegistryError> {
        // Page tokens name tokens in full (`tokens/{id}`); the store keys them by id.
        let id = |name: &str| name.strip_prefix("tokens/").unwrap_or(name).to_string();
        let page = params.scan(
            &[],
            |scan| {
                let after = scan.after.map(id);
                let after = after.as_deref();
                Ok(self.store.scan_tokens(&Scan { after, ..*scan })?)
            },
            |token| token.name.clone(),
            |name| Ok(self.store.get_token(&id(name))?.is_some()),
        )?;
        Ok(ListTokensResponse {
            tokens: page.items,
            next_page_token: page.next_page_token,
        })
    }

    /// Revokes a token at once; it stays listed, marked with its revocation time.
    pub fn revoke_token(&self, id: &str) -> Result<Token, RegistryError> {
        let (mut record, _) = self.store.get_token(id)?.ok_or_else(|| {
            RegistryError::NotFound(format!("The token tokens/{id} was not found."))
        })?;
        if record.revoke_time.is_empty() {
            record.revoke_time = kiln_api::now();
            self.store.update_token(id, &record)?;
            self.tokens.forget(id);
        }
        Ok(record)
    }

    /// Appends an entry to the audit log of `project` (empty: server-wide).
    pub async fn record(&self, project: &str, entry: AuditEntry) -> Result<(), RegistryError> {
        let project = project.to_string();
        on_store(&self.store, move |store| {
            Ok(store.append_audit(&project, &entry)?)
        })
        .await
    }

    /// Audit entries newest first: one project's, or with `None` every project's and the
    /// server-wide ones.
    pub fn audit_log(
        &self,
        project: Option<&str>,
        params: &ListParams,
    ) -> Result<ListAuditEntriesResponse, RegistryError> {
        // The log is only ever appended to, so an entry a token names is still there.
        let page = params.scan(
            &["id"],
            |scan| Ok(self.store.scan_audit(project, scan)?),
            |entry| entry.id.clone(),
            |id| Ok(id.parse::<i64>().is_ok()),
        )?;
        Ok(ListAuditEntriesResponse {
            entries: page.items,
            next_page_token: page.next_page_token,
        })
    }
}

/// Whether an RFC 3339 expiry time has passed; an empty one never does, an unreadable one has.
fn expired(expire_time: &str) -> bool {
    !expire_time.is_empty()
        && chrono::DateTime::parse_from_rfc3339(expire_time)
            .map_or(true, |time| time <= chrono::Utc::now())
}
