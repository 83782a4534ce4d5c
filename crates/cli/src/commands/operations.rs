//! `kiln operations ...`.

use crate::client::Context;
use crate::output;

/// `kiln operations` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OperationsCommand {
    /// List operations.
    List,
    /// Describe an operation.
    Describe {
        /// Operation id or name.
        name: String,
    },
}

/// Runs a `kiln operations` command.
pub fn run(command: OperationsCommand, context: &Context) -> anyhow::Result<()> {
    let api = context.client();
    match command {
        OperationsCommand::List => {
            let operations = api.list_all("operations", "operations")?;
            output::print_list(
                context.format,
                &operations,
                &[
                    ("NAME", "name"),
                    ("TYPE", "metadata.operationType"),
                    ("DONE", "done"),
                ],
            );
        }
        OperationsCommand::Describe { name } => {
            let id = kiln_api::names::short(&name);
            output::print_resource(context.format, &api.get(&format!("operations/{id}"))?);
        }
    }
    Ok(())
}
