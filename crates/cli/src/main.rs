//! `kiln`: the server, the quickstart, and a CLI whose verbs mirror `gcloud ml-engine` /
//! `gcloud ai-platform` (either group name may precede the verbs).
//!
//! # Layout
//! - `main.rs`: argument parsing (clap) and dispatch.
//! - `client`: the REST client the resource commands share.
//! - `config`: the config file (`kiln auth login` saves the endpoint and token there).
//! - `output`: `--format`: json, yaml, table, and gcloud's projections.
//! - `projection`: a projection's keys: field paths, gcloud's transforms, labels.
//! - `logging`: the log's format, filter and buffer.
//! - `listing`: the list verbs' `--filter`, `--sort-by`, `--limit` and `--page-size`.
//! - `instances`: reading `--json-instances`, `--text-instances` and `--json-request` files.
//! - `commands/*`: one module per command group.

mod client;
mod commands;
mod config;
mod instances;
mod listing;
mod logging;
mod output;
mod projection;

/// mimalloc rather than glibc's malloc: the server's JSON values are many small allocations,
/// freed on other threads than the ones that made them, which glibc's malloc serves slowly
/// (`bench/serve.py` measures the difference).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::output::Format;

/// Kiln: a self-hosted ML Engine.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    /// Project that resources belong to [default: the config file's, else `default`].
    #[arg(long, global = true, env = "KILN_PROJECT")]
    project: Option<String>,
    /// URL of the Kiln server [default: the config file's, else http://127.0.0.1:8080].
    #[arg(long, global = true, env = "KILN_ENDPOINT")]
    endpoint: Option<String>,
    /// PEM certificates to trust for an https:// endpoint besides the system's (a private
    /// authority's, or a self-signed server's own) [default: the config file's].
    #[arg(long, global = true, env = "KILN_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Output format: json, yaml, table, or a projection: table(name.basename(), state),
    /// value(name), csv(jobId, state).
    #[arg(long, global = true)]
    format: Option<Format>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Kiln server.
    Server(Box<commands::server::ServerArgs>),
    /// Train the census Wide & Deep model, deploy it as census/v1 on an embedded server and predict.
    Quickstart(commands::quickstart::QuickstartArgs),
    /// Train a built-in algorithm locally: `kiln train wide_deep --training_data_path=... --job-dir=...`.
    Train(commands::local::TrainArgs),
    /// Synthetic data sets for tests and benchmarks.
    #[command(subcommand)]
    Datagen(commands::datagen::DatagenCommand),
    /// Local commands that need no server.
    #[command(subcommand)]
    Local(commands::local::LocalCommand),
    /// Training jobs.
    #[command(subcommand)]
    Jobs(commands::jobs::JobsCommand),
    /// Models.
    #[command(subcommand)]
    Models(commands::models::ModelsCommand),
    /// Versions of a model.
    #[command(subcommand)]
    Versions(commands::versions::VersionsCommand),
    /// Online prediction.
    Predict(PredictArgs),
    /// Feature attributions (sampled Shapley) of instances, as `gcloud beta ai-platform explain`.
    Explain(PredictArgs),
    /// Long-running operations.
    #[command(subcommand)]
    Operations(commands::operations::OperationsCommand),
    /// Studies and their trials (Vizier), as `gcloud ai-platform optimizer`.
    #[command(subcommand)]
    Studies(commands::studies::StudiesCommand),
    /// Projects' access policies.
    #[command(subcommand)]
    Projects(commands::iam::ProjectsCommand),
    /// Log in, tokens, and the audit log.
    #[command(subcommand)]
    Auth(commands::auth::AuthCommand),
    /// A server's backups, taken and restored without a server running.
    #[command(subcommand)]
    Admin(commands::admin::AdminCommand),
    /// A shell's completion script: `kiln completions bash > ~/.local/share/bash-completion/completions/kiln`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The per-replica launcher an executor starts on a node.
    #[command(hide = true)]
    Replica(commands::replica::ReplicaArgs),
}

/// `predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model to predict with.
    #[arg(long)]
    pub model: String,
    /// Version; the model's default when absent.
    #[arg(long)]
    pub version: Option<String>,
    #[command(flatten)]
    pub instances: instances::InstanceArgs,
    /// Region (accepted for compatibility).
    #[arg(long)]
    pub region: Option<String>,
    /// Signature (Kiln models have one).
    #[arg(long)]
    pub signature_name: Option<String>,
}

/// `ml-engine` and `ai-platform` are accepted before the command, as gcloud's group names.
fn arguments() -> Vec<String> {
    let mut args: Vec<String> = std::env::args().collect();
    let mut index = 1;
    while index < args.len() {
        let arg = &args[index];
        if arg == "ml-engine" || arg == "ai-platform" {
            args.remove(index);
            break;
        }
        let global_with_value =
            ["--project", "--endpoint", "--format", "--ca-file"].contains(&arg.as_str());
        if !arg.starts_with('-') {
            break;
        }
        index += if global_with_value { 2 } else { 1 };
    }
    args
}

fn main() -> std::process::ExitCode {
    let command = Cli::command();
    let argv = arguments();
    let matches = command.clone().get_matches_from(&argv);
    // A server's config file adds flags: the command line is read again with them.
    let matches = match commands::server_config::flags(&command, &matches) {
        Ok(added) if added.is_empty() => matches,
        Ok(added) => command.get_matches_from(argv.into_iter().chain(added)),
        Err(error) => {
            eprintln!("ERROR: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let log = match &cli.command {
        Command::Server(args) => logging::init(args.log_format, true),
        _ => logging::init(logging::LogFormat::Text, false),
    };
    if let Command::Replica(args) = cli.command {
        return match commands::replica::run(args) {
            Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(error) => {
                eprintln!("ERROR: {error:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let result = config::load().and_then(|saved| {
        let ca_file = cli.ca_file.or(saved.ca_file);
        let context = client::Context {
            http: client::http_client(ca_file.as_deref())?,
            ca_file,
            project: cli
                .project
                .or(saved.project)
                .unwrap_or_else(|| "default".into()),
            endpoint: cli
                .endpoint
                .or(saved.endpoint)
                .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            format: cli.format,
            token: std::env::var("KILN_TOKEN")
                .ok()
                .filter(|token| !token.is_empty())
                .or(saved.token),
        };
        dispatch(cli.command, &context)
    });
    drop(log);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ERROR: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command, context: &client::Context) -> anyhow::Result<()> {
    match command {
        Command::Server(args) => commands::server::run(*args),
        Command::Quickstart(args) => commands::quickstart::run(args, context),
        Command::Train(args) => commands::local::train(args),
        Command::Local(command) => commands::local::run(command, context),
        Command::Datagen(command) => commands::datagen::run(command),
        Command::Jobs(command) => commands::jobs::run(command, context),
        Command::Models(command) => commands::models::run(command, context),
        Command::Versions(command) => commands::versions::run(command, context),
        Command::Predict(args) => commands::predict::run(args, context),
        Command::Explain(args) => commands::predict::explain(args, context),
        Command::Operations(command) => commands::operations::run(command, context),
        Command::Studies(command) => commands::studies::run(command, context),
        Command::Projects(command) => commands::iam::run_projects(command, context),
        Command::Auth(command) => commands::auth::run(command, context),
        Command::Admin(command) => commands::admin::run(command),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
            Ok(())
        }
        Command::Replica(_) => unreachable!("the launcher runs before any configuration is read"),
    }
}
