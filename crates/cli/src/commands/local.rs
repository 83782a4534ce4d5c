//! `kiln train`, `kiln local train` and `kiln local predict`: no server needed.

use std::path::PathBuf;

use anyhow::Context as _;
use kiln_train::{Algorithm, TrainArgs as AlgorithmArgs, TrainOutcome};

use crate::client::Context;
use crate::instances::InstanceArgs;
use crate::output;

/// `kiln train ALGORITHM [ARGS...]`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Built-in algorithm: wide_deep, linear, dnn (or an ML Engine built-in algorithm image URI).
    pub algorithm: String,
    /// Output directory; also accepted among the algorithm's arguments.
    #[arg(long)]
    pub job_dir: Option<PathBuf>,
    /// The algorithm's arguments, such as --training_data_path=FILE --schema=FILE --max_steps=1000.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `kiln local ...`.
#[derive(Debug, clap::Subcommand)]
pub enum LocalCommand {
    /// Run a trainer locally, as `gcloud ai-platform local train`.
    Train {
        /// The built-in algorithm to run (`kiln/wide_deep`, `gcr.io/cloud-ml-algos/wide_deep_learner_cpu`, ...).
        #[arg(long)]
        master_image_uri: String,
        /// Output directory, appended to the trainer's arguments as --job-dir.
        #[arg(long)]
        job_dir: Option<PathBuf>,
        /// Arguments for the trainer, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Predict with a model directory, as `gcloud ai-platform local predict`.
    Predict {
        /// The exported model directory.
        #[arg(long)]
        model_dir: PathBuf,
        #[command(flatten)]
        instances: InstanceArgs,
        /// Framework (detected from the files when absent).
        #[arg(long)]
        framework: Option<String>,
    },
}

/// Runs a built-in algorithm and prints where the model went.
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let outcome = run_algorithm(&args.algorithm, args.job_dir, &args.args)?;
    println!("model exported to {}", outcome.export_dir.display());
    println!("eval metrics: {}", serde_json::to_string(&outcome.metrics)?);
    Ok(())
}

/// Trains `algorithm` with ML Engine-style arguments, printing progress lines.
pub fn run_algorithm(
    algorithm: &str,
    job_dir: Option<PathBuf>,
    args: &[String],
) -> anyhow::Result<TrainOutcome> {
    let algorithm = Algorithm::find(algorithm)?;
    let config = AlgorithmArgs::parse(args)?.into_config(algorithm, job_dir)?;
    let outcome = kiln_train::train(&config, &mut |line| println!("{line}"))?;
    Ok(outcome)
}

/// Runs a `kiln local` command.
pub fn run(command: LocalCommand, context: &Context) -> anyhow::Result<()> {
    match command {
        LocalCommand::Train {
            master_image_uri,
            job_dir,
            args,
        } => train(TrainArgs {
            algorithm: master_image_uri,
            job_dir,
            args,
        }),
        LocalCommand::Predict {
            model_dir,
            instances,
            framework,
        } => {
            let body = instances.request()?;
            let detected = kiln_serve::detect(&model_dir)?;
            if let Some(framework) = framework {
                let wanted = framework.to_ascii_uppercase().replace('-', "_");
                if wanted != detected.name() {
                    anyhow::bail!(
                        "--framework {framework} given, but {} holds a {} model",
                        model_dir.display(),
                        detected.name()
                    );
                }
            }
            let runtime = kiln_serve::load(&model_dir, detected)?;
            let instances = body["instances"].as_array().cloned().unwrap_or_default();
            let predictions = runtime.predict(&instances).context("Prediction failed")?;
            output::print_resource(
                context.format.or(Some(output::Format::Json)),
                &serde_json::json!({ "predictions": predictions }),
            );
            Ok(())
        }
    }
}
