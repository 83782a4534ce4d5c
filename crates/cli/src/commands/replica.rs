//! `kiln replica`: the per-replica launcher an executor starts on the node it chose
//! (`kiln_scheduler::launcher`). Hidden: users never call it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// `replica`.
#[derive(Debug, Args)]
pub struct ReplicaArgs {
    /// The gang's `gang.json`.
    #[arg(long)]
    pub gang: PathBuf,
    /// This replica's rank [default: Slurm's SLURM_PROCID].
    #[arg(long)]
    pub rank: Option<usize>,
    /// The address to listen and publish at [default: the node's host name's address].
    #[arg(long)]
    pub host: Option<String>,
    /// End the replica when the process that started this one ends (a Ray task's worker).
    #[arg(long)]
    pub exit_with_parent: bool,
}

/// Runs the replica to its end; returns the exit code to leave with (the trainer's).
pub fn run(args: ReplicaArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the launcher's runtime")?;
    let placement = kiln_scheduler::launcher::Placement {
        rank: args.rank,
        host: args.host,
        exit_with_parent: args.exit_with_parent,
    };
    let code = runtime.block_on(kiln_scheduler::launcher::run(&args.gang, placement))?;
    Ok(code)
}
