//! `kiln versions ...`.

use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::client::Context;
use crate::output;

/// `kiln versions` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum VersionsCommand {
    /// Create a version from a model directory; waits until it is ready unless --async.
    Create(Box<CreateArgs>),
    /// List the versions of a model.
    List {
        /// Model name.
        #[arg(long)]
        model: String,
        #[command(flatten)]
        list: crate::listing::ListArgs,
    },
    /// Describe a version.
    Describe {
        /// Version name.
        name: String,
        /// Model name.
        #[arg(long)]
        model: String,
    },
    /// Delete a version.
    Delete {
        /// Version name.
        name: String,
        /// Model name.
        #[arg(long)]
        model: String,
    },
    /// Make a version the model's default.
    SetDefault {
        /// Version name.
        name: String,
        /// Model name.
        #[arg(long)]
        model: String,
    },
}

/// Flags of `kiln versions create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Version name.
    pub name: String,
    /// Model name.
    #[arg(long)]
    pub model: String,
    /// Model directory: a local path, file://, gs:// or s3:// URI.
    #[arg(long)]
    pub origin: String,
    /// Framework: kiln, onnx, tensorflow, scikit-learn, xgboost (detected when absent; an ONNX
    /// export may be named by the framework it came from).
    #[arg(long)]
    pub framework: Option<String>,
    /// Runtime version: the framework releases that serve a TensorFlow, scikit-learn or
    /// XGBoost model (1.15, 2.11, 2.21; default the newest).
    #[arg(long)]
    pub runtime_version: Option<String>,
    /// Python version of the runtime (default: the runtime's).
    #[arg(long)]
    pub python_version: Option<String>,
    /// What computes predictions: kiln, onnx-runtime, tract or framework (default: Kiln
    /// chooses; onnx-runtime and tract serve a framework model converted to ONNX, if it predicts
    /// as the framework does).
    #[arg(long)]
    pub engine: Option<String>,
    /// A custom prediction routine's `module.Class`, which serves the model (with
    /// --package-uris).
    #[arg(long)]
    pub prediction_class: Option<String>,
    /// The sdists or wheels holding --prediction-class: local paths, file://, gs:// or s3://
    /// URIs, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub package_uris: Vec<String>,
    /// Serving machine type (recorded).
    #[arg(long)]
    pub machine_type: Option<String>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Labels, KEY=VALUE,...
    #[arg(long)]
    pub labels: Option<String>,
    /// Return at once instead of waiting for the version to be ready.
    #[arg(long = "async")]
    pub no_wait: bool,
    /// Region (accepted for compatibility).
    #[arg(long)]
    pub region: Option<String>,
}

/// A local `--origin` (or package) is sent as an absolute `file://` URI, so the server finds it
/// whatever its working directory.
fn origin_uri(flag: &str, origin: &str) -> anyhow::Result<String> {
    if origin.contains("://") {
        return Ok(origin.to_string());
    }
    let path = PathBuf::from(origin);
    let absolute = std::fs::canonicalize(&path).with_context(|| format!("{flag} {origin}"))?;
    Ok(format!("file://{}", absolute.display()))
}

/// Runs a `kiln versions` command.
pub fn run(command: VersionsCommand, context: &Context) -> anyhow::Result<()> {
    let api = context.client();
    match command {
        VersionsCommand::Create(args) => {
            let CreateArgs {
                name,
                model,
                origin,
                framework,
                runtime_version,
                python_version,
                engine,
                prediction_class,
                package_uris,
                machine_type,
                description,
                labels,
                no_wait,
                region: _,
            } = *args;
            let mut body = json!({
                "name": name,
                "deploymentUri": origin_uri("--origin", &origin)?,
                "labels": super::labels(labels.as_deref())?,
            });
            if !package_uris.is_empty() {
                let uris: Vec<String> = package_uris
                    .iter()
                    .map(|uri| origin_uri("--package-uris", uri))
                    .collect::<anyhow::Result<_>>()?;
                body["packageUris"] = json!(uris);
            }
            let optional = [
                ("framework", framework.as_deref().map(super::enum_value)),
                ("runtimeVersion", runtime_version),
                ("pythonVersion", python_version),
                ("engine", engine.as_deref().map(super::enum_value)),
                ("predictionClass", prediction_class),
                ("machineType", machine_type),
                ("description", description),
            ];
            for (field, value) in optional {
                if let Some(value) = value {
                    body[field] = Value::String(value);
                }
            }
            let operation = api.post(&format!("models/{model}/versions"), &body)?;
            if no_wait {
                output::print_resource(context.format.as_ref(), &operation);
                return Ok(());
            }
            eprintln!("Creating version (this might take a few minutes)......");
            api.wait(operation)?;
            eprintln!("Created version [{name}] of model [{model}].");
            Ok(())
        }
        VersionsCommand::List { model, list } => {
            let versions = list.list(&api, &format!("models/{model}/versions"), "versions")?;
            output::print_list(
                context.format.as_ref(),
                &versions,
                &[
                    ("NAME", "name"),
                    ("DEPLOYMENT_URI", "deploymentUri"),
                    ("FRAMEWORK", "framework"),
                    ("ENGINE", "engine"),
                    ("STATE", "state"),
                    ("DEFAULT", "isDefault"),
                ],
            );
            Ok(())
        }
        VersionsCommand::Describe { name, model } => {
            output::print_resource(
                context.format.as_ref(),
                &api.get(&format!("models/{model}/versions/{name}"))?,
            );
            Ok(())
        }
        VersionsCommand::Delete { name, model } => {
            let operation = api.delete(&format!("models/{model}/versions/{name}"))?;
            api.wait(operation)?;
            eprintln!("Deleted version [{name}] of model [{model}].");
            Ok(())
        }
        VersionsCommand::SetDefault { name, model } => {
            let version = api.post(
                &format!("models/{model}/versions/{name}:setDefault"),
                &json!({}),
            )?;
            output::print_resource(context.format.as_ref(), &version);
            Ok(())
        }
    }
}
