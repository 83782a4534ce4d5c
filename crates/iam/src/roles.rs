//! Permissions and the roles that bundle them, after Cloud IAM's predefined ML Engine roles.
//!
//! Creators are made owners: whoever creates a model holds `roles/ml.modelOwner` on it, whoever
//! submits a job `roles/ml.jobOwner`, whoever starts an operation `roles/ml.operationOwner` (as
//! ML Engine grants them), so a developer can manage what they made and nothing else.

/// Every permission Kiln checks. `kiln.*` are Kiln's own (the audit log, a tuning job's trials'
/// measurements); the rest are ML Engine's.
pub const PERMISSIONS: &[&str] = &[
    "ml.projects.getConfig",
    "ml.locations.get",
    "ml.locations.list",
    "ml.projects.getIamPolicy",
    "ml.projects.setIamPolicy",
    "ml.models.create",
    "ml.models.get",
    "ml.models.list",
    "ml.models.update",
    "ml.models.delete",
    "ml.models.predict",
    "ml.models.getIamPolicy",
    "ml.models.setIamPolicy",
    "ml.versions.create",
    "ml.versions.get",
    "ml.versions.list",
    "ml.versions.update",
    "ml.versions.delete",
    "ml.versions.predict",
    "ml.jobs.create",
    "ml.jobs.get",
    "ml.jobs.list",
    "ml.jobs.update",
    "ml.jobs.cancel",
    "ml.jobs.getIamPolicy",
    "ml.jobs.setIamPolicy",
    "ml.operations.get",
    "ml.operations.list",
    "ml.operations.cancel",
    "ml.studies.create",
    "ml.studies.get",
    "ml.studies.list",
    "ml.studies.delete",
    "ml.trials.create",
    "ml.trials.get",
    "ml.trials.list",
    "ml.trials.update",
    "ml.trials.delete",
    "kiln.auditLogs.list",
    "kiln.jobs.addMeasurement",
];

/// A predefined role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// `roles/ml.admin`, ...
    pub name: &'static str,
    /// What the role is for.
    pub description: &'static str,
    /// Permissions granted; `*` grants all of [`PERMISSIONS`].
    pub permissions: &'static [&'static str],
}

/// Full control of a project's jobs, models, versions, operations, policies and audit log.
pub const ADMIN: &str = "roles/ml.admin";
/// Creates jobs, models and studies, reads and predicts everything in the project.
pub const DEVELOPER: &str = "roles/ml.developer";
/// Reads everything in the project.
pub const VIEWER: &str = "roles/ml.viewer";
/// Full control of one model and its versions.
pub const MODEL_OWNER: &str = "roles/ml.modelOwner";
/// Reads one model and predicts with it.
pub const MODEL_USER: &str = "roles/ml.modelUser";
/// Full control of one job.
pub const JOB_OWNER: &str = "roles/ml.jobOwner";
/// Reads and cancels one operation.
pub const OPERATION_OWNER: &str = "roles/ml.operationOwner";
/// Reports one tuning trial's measurements: what the token of a trial's replicas holds.
pub const TRIAL_REPORTER: &str = "roles/kiln.trialReporter";

/// The predefined roles.
pub const ROLES: &[Role] = &[
    Role {
        name: ADMIN,
        description: "full control of the project's resources, policies and audit log",
        permissions: &["*"],
    },
    Role {
        name: DEVELOPER,
        description: "create jobs and models; read and predict everything in the project",
        permissions: &[
            "ml.projects.getConfig",
            "ml.locations.get",
            "ml.locations.list",
            "ml.models.create",
            "ml.models.get",
            "ml.models.list",
            "ml.models.predict",
            "ml.versions.get",
            "ml.versions.list",
            "ml.versions.predict",
            "ml.jobs.create",
            "ml.jobs.get",
            "ml.jobs.list",
            "ml.operations.get",
            "ml.operations.list",
            "ml.studies.create",
            "ml.studies.get",
            "ml.studies.list",
            "ml.studies.delete",
            "ml.trials.create",
            "ml.trials.get",
            "ml.trials.list",
            "ml.trials.update",
            "ml.trials.delete",
        ],
    },
    Role {
        name: VIEWER,
        description: "read the project's jobs, models, versions and operations",
        permissions: &[
            "ml.projects.getConfig",
            "ml.locations.get",
            "ml.locations.list",
            "ml.models.get",
            "ml.models.list",
            "ml.versions.get",
            "ml.versions.list",
            "ml.jobs.get",
            "ml.jobs.list",
            "ml.operations.get",
            "ml.operations.list",
            "ml.studies.get",
            "ml.studies.list",
            "ml.trials.get",
            "ml.trials.list",
        ],
    },
    Role {
        name: MODEL_OWNER,
        description: "full control of one model and its versions",
        permissions: &[
            "ml.models.get",
            "ml.models.update",
            "ml.models.delete",
            "ml.models.predict",
            "ml.models.getIamPolicy",
            "ml.models.setIamPolicy",
            "ml.versions.create",
            "ml.versions.get",
            "ml.versions.list",
            "ml.versions.update",
            "ml.versions.delete",
            "ml.versions.predict",
        ],
    },
    Role {
        name: MODEL_USER,
        description: "read one model and predict with it",
        permissions: &[
            "ml.models.get",
            "ml.models.predict",
            "ml.versions.get",
            "ml.versions.list",
            "ml.versions.predict",
        ],
    },
    Role {
        name: JOB_OWNER,
        description: "full control of one job",
        permissions: &[
            "ml.jobs.get",
            "ml.jobs.update",
            "ml.jobs.cancel",
            "ml.jobs.getIamPolicy",
            "ml.jobs.setIamPolicy",
            "kiln.jobs.addMeasurement",
        ],
    },
    Role {
        name: OPERATION_OWNER,
        description: "read and cancel one operation",
        permissions: &["ml.operations.get", "ml.operations.cancel"],
    },
    Role {
        name: TRIAL_REPORTER,
        description: "report the measurements of one tuning job's trial",
        permissions: &["kiln.jobs.addMeasurement"],
    },
];

/// The role called `name`.
pub fn role(name: &str) -> Option<&'static Role> {
    ROLES.iter().find(|role| role.name == name)
}

/// The role called `name`, or the problem: a role Kiln does not know, with the ones it does.
pub fn known(name: &str) -> Result<&'static Role, String> {
    role(name).ok_or_else(|| {
        let known: Vec<&str> = ROLES.iter().map(|role| role.name).collect();
        format!("unknown role {name:?}; roles are {}", known.join(", "))
    })
}

/// Whether `name` is a permission Kiln knows.
pub fn is_permission(name: &str) -> bool {
    PERMISSIONS.contains(&name)
}

impl Role {
    /// Whether this role grants `permission`.
    pub fn grants(&self, permission: &str) -> bool {
        self.permissions
            .iter()
            .any(|granted| *granted == "*" || *granted == permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_granted_permission_exists() {
        for role in ROLES {
            for permission in role.permissions {
                assert!(
                    *permission == "*" || is_permission(permission),
                    "{} grants unknown {permission}",
                    role.name
                );
            }
        }
    }

    #[test]
    fn roles_grant_what_they_say() {
        let user = role(MODEL_USER).unwrap();
        assert!(user.grants("ml.models.predict"));
        assert!(!user.grants("ml.models.delete"));
        assert!(role(ADMIN).unwrap().grants("kiln.auditLogs.list"));
        assert!(!role(DEVELOPER).unwrap().grants("ml.versions.create"));
        assert!(role("roles/owner").is_none());
    }
}
