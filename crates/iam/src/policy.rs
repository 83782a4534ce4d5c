//! Policies: what a valid one is, which policies a check consults, and the check.
//!
//! A permission on a resource is granted by a binding in the policy of the resource or of any
//! ancestor: a version is checked against its model's and its project's policies, a job against
//! its own and its project's. Versions and a tuning job's trials carry no policy of their own, as
//! in ML Engine.

use kiln_api::Policy;

use crate::Principal;
use crate::roles;

/// The member every authenticated caller matches.
pub const ALL_AUTHENTICATED: &str = "allAuthenticatedUsers";

/// Policy format versions accepted (0 is an unset field).
const VERSIONS: &[i32] = &[0, 1];

/// The resources whose policies govern `resource`, outermost first: `projects/p/models/m/versions/v`
/// gives `projects/p` and `projects/p/models/m`, `projects/p/jobs/j/trials/t` `projects/p` and
/// `projects/p/jobs/j`. `None` when `resource` is not a Kiln resource name.
pub fn hierarchy(resource: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = resource.split('/').collect();
    if parts.len() < 2 || parts[0] != "projects" || parts.iter().any(|part| part.is_empty()) {
        return None;
    }
    let project = format!("projects/{}", parts[1]);
    match parts[2..] {
        [] => Some(vec![project]),
        ["models" | "jobs" | "operations", child, ..] => {
            let own = format!("{project}/{}/{child}", parts[2]);
            match parts[2..] {
                [_, _] | ["models", _, "versions", _] | ["jobs", _, "trials", _] => {
                    Some(vec![project, own])
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether policies can be set on `resource`: projects, models and jobs.
pub fn has_own_policy(resource: &str) -> bool {
    matches!(
        resource.split('/').collect::<Vec<_>>()[..],
        ["projects", _] | ["projects", _, "models" | "jobs", _]
    )
}

/// Whether `principal` holds `permission` on `resource`: as an administrator, through its token's
/// grant, or through any of `policies` (the resource's hierarchy).
pub fn allows(
    principal: &Principal,
    permission: &str,
    resource: &str,
    policies: &[Policy],
) -> bool {
    principal.admin
        || principal
            .grant
            .as_ref()
            .is_some_and(|grant| grant.allows(permission, resource))
        || policies.iter().any(|policy| {
            policy.bindings.iter().any(|binding| {
                binding
                    .members
                    .iter()
                    .any(|member| *member == principal.member || member == ALL_AUTHENTICATED)
                    && roles::role(&binding.role).is_some_and(|role| role.grants(permission))
            })
        })
}

/// Checks a policy a client wants to set; every problem names its field.
pub fn validate(policy: &Policy) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if !VERSIONS.contains(&policy.version) {
        problems.push(format!(
            "Field: policy.version Error: {} is not supported; use 1 (Kiln does not evaluate conditions)",
            policy.version
        ));
    }
    for (index, binding) in policy.bindings.iter().enumerate() {
        let field = format!("policy.bindings[{index}]");
        if let Err(problem) = roles::known(&binding.role) {
            problems.push(format!("Field: {field}.role Error: {problem}"));
        }
        if binding.condition.is_some() {
            problems.push(format!(
                "Field: {field}.condition Error: conditions are not supported"
            ));
        }
        if binding.members.is_empty() {
            problems.push(format!(
                "Field: {field}.members Error: a binding needs at least one member"
            ));
        }
        for (position, member) in binding.members.iter().enumerate() {
            if let Err(problem) = check_member(member) {
                problems.push(format!(
                    "Field: {field}.members[{position}] Error: {problem}"
                ));
            }
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems),
    }
}

/// A member is `serviceAccount:NAME` (the identity of Kiln's tokens) or `allAuthenticatedUsers`.
pub fn check_member(member: &str) -> Result<(), String> {
    if member == ALL_AUTHENTICATED {
        return Ok(());
    }
    match member.strip_prefix("serviceAccount:") {
        Some(name) => crate::token::check_account(name),
        None if member == "allUsers" => Err(
            "allUsers is not supported: every request to Kiln carries a token; use allAuthenticatedUsers"
                .into(),
        ),
        None => Err(format!(
            "{member:?} is not a member Kiln knows; use serviceAccount:NAME or allAuthenticatedUsers"
        )),
    }
}

#[cfg(test)]
mod tests {
    use kiln_api::Binding;

    use super::*;

    fn policy(role: &str, member: &str) -> Policy {
        Policy {
            version: 1,
            bindings: vec![Binding {
                role: role.into(),
                members: vec![member.into()],
                condition: None,
            }],
            ..Policy::default()
        }
    }

    fn alice() -> Principal {
        Principal {
            member: "serviceAccount:alice".into(),
            token_id: "t1".into(),
            admin: false,
            grant: None,
        }
    }

    #[test]
    fn hierarchy_walks_up_to_the_project() {
        assert_eq!(hierarchy("projects/p"), Some(vec!["projects/p".into()]));
        assert_eq!(
            hierarchy("projects/p/models/m/versions/v"),
            Some(vec!["projects/p".into(), "projects/p/models/m".into()])
        );
        assert_eq!(
            hierarchy("projects/p/jobs/j"),
            Some(vec!["projects/p".into(), "projects/p/jobs/j".into()])
        );
        assert_eq!(
            hierarchy("projects/p/jobs/j/trials/3"),
            Some(vec!["projects/p".into(), "projects/p/jobs/j".into()])
        );
        assert_eq!(hierarchy("projects/p/jobs/j/versions/v"), None);
        assert_eq!(hierarchy("projects//models/m"), None);
        assert_eq!(hierarchy("tokens/x"), None);
        assert!(has_own_policy("projects/p/models/m"));
        assert!(!has_own_policy("projects/p/models/m/versions/v"));
    }

    #[test]
    fn bindings_grant_their_roles_permissions_only() {
        let policies = [policy(roles::MODEL_USER, "serviceAccount:alice")];
        let model = "projects/p/models/m";
        assert!(allows(&alice(), "ml.models.predict", model, &policies));
        assert!(!allows(&alice(), "ml.models.delete", model, &policies));
        let bob = Principal {
            member: "serviceAccount:bob".into(),
            ..alice()
        };
        assert!(!allows(&bob, "ml.models.predict", model, &policies));
        let everyone = [policy(roles::VIEWER, ALL_AUTHENTICATED)];
        assert!(allows(&bob, "ml.jobs.list", "projects/p", &everyone));
        assert!(allows(
            &Principal::anonymous(),
            "ml.jobs.cancel",
            "projects/p/jobs/j",
            &[]
        ));
    }

    #[test]
    fn a_grant_reaches_its_resource_and_what_lies_under_it_only() {
        let reporter = Principal {
            grant: Some(crate::Grant {
                resource: "projects/p/jobs/j/trials/3".into(),
                role: roles::role(roles::TRIAL_REPORTER).unwrap(),
            }),
            ..alice()
        };
        let report = "kiln.jobs.addMeasurement";
        assert!(allows(&reporter, report, "projects/p/jobs/j/trials/3", &[]));
        for elsewhere in [
            "projects/p/jobs/j/trials/4",
            "projects/p/jobs/j/trials/30",
            "projects/p/jobs/j",
            "projects/q/jobs/j/trials/3",
        ] {
            assert!(!allows(&reporter, report, elsewhere, &[]), "{elsewhere}");
        }
        assert!(!allows(
            &reporter,
            "ml.jobs.get",
            "projects/p/jobs/j/trials/3",
            &[]
        ));
    }

    #[test]
    fn invalid_policies_name_each_field() {
        let mut bad = policy("roles/owner", "user:alice@example.com");
        bad.version = 3;
        bad.bindings.push(Binding {
            role: roles::VIEWER.into(),
            members: vec![],
            condition: Some(serde_json::json!({"expression": "true"})),
        });
        let problems = validate(&bad).unwrap_err().join("\n");
        for field in [
            "policy.version",
            "policy.bindings[0].role",
            "policy.bindings[0].members[0]",
            "policy.bindings[1].condition",
            "policy.bindings[1].members",
        ] {
            assert!(problems.contains(field), "{field} missing in {problems}");
        }
        assert!(validate(&policy(roles::ADMIN, "allAuthenticatedUsers")).is_ok());
        assert!(check_member("allUsers").is_err());
    }
}
