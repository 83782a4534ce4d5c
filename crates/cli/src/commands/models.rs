//! `kiln models ...`.

use serde_json::{Value, json};

use crate::client::Context;
use crate::output;

/// `kiln models` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Create a model.
    Create {
        /// Model name.
        name: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Region (one).
        #[arg(long, alias = "region")]
        regions: Option<String>,
        /// Keep prediction access logs.
        #[arg(long)]
        enable_logging: bool,
        /// Keep prediction stdout/stderr.
        #[arg(long)]
        enable_console_logging: bool,
        /// Labels, KEY=VALUE,...
        #[arg(long)]
        labels: Option<String>,
    },
    /// List models.
    List {
        #[command(flatten)]
        list: crate::listing::ListArgs,
    },
    /// Describe a model.
    Describe {
        /// Model name.
        name: String,
    },
    /// Delete a model (it must have no versions).
    Delete {
        /// Model name.
        name: String,
    },
    #[command(flatten)]
    Iam(super::iam::IamCommand),
}

/// Runs a `kiln models` command.
pub fn run(command: ModelsCommand, context: &Context) -> anyhow::Result<()> {
    let api = context.client();
    match command {
        ModelsCommand::Create {
            name,
            description,
            regions,
            enable_logging,
            enable_console_logging,
            labels,
        } => {
            let mut body = json!({ "name": name, "labels": super::labels(labels.as_deref())? });
            if let Some(description) = description {
                body["description"] = Value::String(description);
            }
            if let Some(regions) = regions {
                body["regions"] = json!(regions.split(',').collect::<Vec<_>>());
            }
            body["onlinePredictionLogging"] = Value::Bool(enable_logging);
            body["onlinePredictionConsoleLogging"] = Value::Bool(enable_console_logging);
            let model = api.post("models", &body)?;
            eprintln!(
                "Created Kiln model [{}].",
                model["name"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        ModelsCommand::List { list } => {
            let models = list.list(&api, "models", "models")?;
            output::print_list(
                context.format.as_ref(),
                &models,
                &[
                    ("NAME", "name"),
                    ("DEFAULT_VERSION_NAME", "defaultVersion.name"),
                ],
            );
            Ok(())
        }
        ModelsCommand::Describe { name } => {
            output::print_resource(
                context.format.as_ref(),
                &api.get(&format!("models/{name}"))?,
            );
            Ok(())
        }
        ModelsCommand::Delete { name } => {
            let operation = api.delete(&format!("models/{name}"))?;
            api.wait(operation)?;
            eprintln!("Deleted model [{name}].");
            Ok(())
        }
        ModelsCommand::Iam(command) => {
            super::iam::run(command, context, &api, |model| format!("models/{model}"))
        }
    }
}
