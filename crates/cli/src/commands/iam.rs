//! Access policy commands, shared by `kiln projects`, `kiln models` and `kiln jobs` as gcloud
//! has them: `get-iam-policy`, `set-iam-policy`, `add-iam-policy-binding`,
//! `remove-iam-policy-binding`.

use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::client::{Api, Context};
use crate::output;

/// The policy subcommands; RESOURCE is the project, model or job named by the command group.
#[derive(Debug, clap::Subcommand)]
pub enum IamCommand {
    /// Print the access policy.
    GetIamPolicy {
        /// Project, model or job.
        resource: String,
    },
    /// Replace the access policy with a JSON or YAML file (refused if it changed since the
    /// file's etag was read).
    SetIamPolicy {
        /// Project, model or job.
        resource: String,
        /// The policy: `{bindings: [{role, members}], etag}`.
        policy_file: PathBuf,
    },
    /// Grant a role to a member.
    AddIamPolicyBinding {
        /// Project, model or job.
        resource: String,
        /// `serviceAccount:NAME` or `allAuthenticatedUsers`.
        #[arg(long)]
        member: String,
        /// `roles/ml.developer`, `roles/ml.viewer`, `roles/ml.modelUser`, ...
        #[arg(long)]
        role: String,
    },
    /// Take a role from a member.
    RemoveIamPolicyBinding {
        /// Project, model or job.
        resource: String,
        /// `serviceAccount:NAME` or `allAuthenticatedUsers`.
        #[arg(long)]
        member: String,
        /// The role.
        #[arg(long)]
        role: String,
    },
}

/// `kiln projects ...`: the project's policy.
pub type ProjectsCommand = IamCommand;

/// Runs a `kiln projects` command.
pub fn run_projects(command: ProjectsCommand, context: &Context) -> anyhow::Result<()> {
    run(command, context, &context.root(), |project| {
        format!("projects/{project}")
    })
}

/// Runs a policy command on the resource `path_of(RESOURCE)` of `api`.
pub fn run(
    command: IamCommand,
    context: &Context,
    api: &Api,
    path_of: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    let policy = match command {
        IamCommand::GetIamPolicy { resource } => {
            api.get(&format!("{}:getIamPolicy", path_of(&resource)))?
        }
        IamCommand::SetIamPolicy {
            resource,
            policy_file,
        } => {
            let text = std::fs::read_to_string(&policy_file)
                .with_context(|| format!("reading {}", policy_file.display()))?;
            let policy: Value = serde_norway::from_str(&text)
                .with_context(|| format!("parsing {} as JSON or YAML", policy_file.display()))?;
            let policy = api.post(
                &format!("{}:setIamPolicy", path_of(&resource)),
                &json!({ "policy": policy }),
            )?;
            eprintln!("Updated IAM policy for [{resource}].");
            policy
        }
        IamCommand::AddIamPolicyBinding {
            resource,
            member,
            role,
        } => change(api, &path_of(&resource), |bindings| {
            match bindings.iter_mut().find(|binding| binding["role"] == role) {
                Some(binding) => {
                    let members = binding["members"].as_array_mut();
                    if let Some(members) =
                        members.filter(|members| !members.contains(&json!(member)))
                    {
                        members.push(json!(member));
                    }
                }
                None => bindings.push(json!({ "role": role, "members": [member] })),
            }
        })?,
        IamCommand::RemoveIamPolicyBinding {
            resource,
            member,
            role,
        } => change(api, &path_of(&resource), |bindings| {
            for binding in bindings
                .iter_mut()
                .filter(|binding| binding["role"] == role)
            {
                if let Some(members) = binding["members"].as_array_mut() {
                    members.retain(|present| *present != json!(member));
                }
            }
            bindings.retain(|binding| {
                binding["members"]
                    .as_array()
                    .is_some_and(|members| !members.is_empty())
            });
        })?,
    };
    output::print_resource(context.format.as_ref(), &policy);
    Ok(())
}

/// Reads the policy, edits its bindings and writes it back with the etag it was read with, so a
/// concurrent change is refused rather than overwritten.
fn change(api: &Api, path: &str, edit: impl FnOnce(&mut Vec<Value>)) -> anyhow::Result<Value> {
    let mut policy = api.get(&format!("{path}:getIamPolicy"))?;
    let mut bindings = policy["bindings"].as_array().cloned().unwrap_or_default();
    edit(&mut bindings);
    policy["bindings"] = Value::Array(bindings);
    api.post(
        &format!("{path}:setIamPolicy"),
        &json!({ "policy": policy }),
    )
}
