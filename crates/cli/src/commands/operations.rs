//! `kiln operations ...`.

use crate::client::Context;
use crate::output;

/// `kiln operations` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OperationsCommand {
    /// List operations.
    List {
        #[command(flatten)]
        list: crate::listing::ListArgs,
    },
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
        OperationsCommand::List { list } => {
            let operations = list.list(&api, "operations", "operations")?;
            output::print_list(
                context.format.as_ref(),
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
            output::print_resource(
                context.format.as_ref(),
                &api.get(&format!("operations/{id}"))?,
            );
        }
    }
    Ok(())
}
