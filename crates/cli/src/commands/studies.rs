//! `kiln studies ...`: studies and their trials, as `gcloud ai-platform optimizer` offers them.

use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::client::{Api, Context};
use crate::output;

/// The region a study lives in unless `--region` says otherwise.
const DEFAULT_REGION: &str = "us-central1";

/// `kiln studies` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StudiesCommand {
    /// Create a study from a YAML or JSON StudyConfig (or a Study holding one as `studyConfig`).
    Create {
        /// Study id.
        study: String,
        /// The study's configuration.
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        region: Region,
    },
    /// List the region's studies (every region's with `--region=-`).
    List {
        #[command(flatten)]
        region: Region,
    },
    /// Describe a study.
    Describe {
        /// Study id.
        study: String,
        #[command(flatten)]
        region: Region,
    },
    /// Delete a study and its trials.
    Delete {
        /// Study id.
        study: String,
        #[command(flatten)]
        region: Region,
    },
    /// A study's trials.
    #[command(subcommand)]
    Trials(TrialsCommand),
}

/// `kiln studies trials` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TrialsCommand {
    /// Ask for new trials (a client's unfinished ones come back first).
    Suggest {
        #[command(flatten)]
        study: StudyArg,
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Who asks.
        #[arg(long, default_value = "kiln-cli")]
        client_id: String,
    },
    /// List a study's trials.
    List {
        #[command(flatten)]
        study: StudyArg,
    },
    /// Complete a trial with its final measurement, or as infeasible.
    Complete {
        /// Trial id.
        trial: String,
        #[command(flatten)]
        study: StudyArg,
        /// The final measurement's metrics, NAME=VALUE,...
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<String>,
        /// Marks the trial infeasible, saying why.
        #[arg(long)]
        infeasible_reason: Option<String>,
    },
    /// Stop a trial.
    Stop {
        /// Trial id.
        trial: String,
        #[command(flatten)]
        study: StudyArg,
    },
    /// The study's optimal trials.
    Optimal {
        #[command(flatten)]
        study: StudyArg,
    },
}

/// `--region`.
#[derive(Debug, clap::Args)]
pub struct Region {
    /// Region of the study.
    #[arg(long, default_value = DEFAULT_REGION)]
    region: String,
}

/// `--study` and `--region` of a trial command.
#[derive(Debug, clap::Args)]
pub struct StudyArg {
    /// Study id.
    #[arg(long)]
    study: String,
    #[command(flatten)]
    region: Region,
}

impl StudyArg {
    fn path(&self) -> String {
        study_path(&self.region, &self.study)
    }
}

fn studies_path(region: &Region) -> String {
    format!(
        "locations/{}/studies",
        crate::client::encode(&region.region)
    )
}

fn study_path(region: &Region, study: &str) -> String {
    format!(
        "{}/{}",
        studies_path(region),
        crate::client::encode(kiln_api::names::short(study))
    )
}

/// Prints the `trials` of an answer (a list, a suggestion, the optimal ones).
fn print_trials(format: Option<&output::Format>, answer: &Value) {
    let trials = answer["trials"].as_array().cloned().unwrap_or_default();
    output::print_list(format, &trials, TRIAL_COLUMNS);
}

const TRIAL_COLUMNS: &[output::Column<'static>] = &[
    ("NAME", "name"),
    ("STATE", "state"),
    ("PARAMETERS", "parameters"),
    ("FINAL_MEASUREMENT", "finalMeasurement.metrics"),
];

/// Runs a `kiln studies` command.
pub fn run(command: StudiesCommand, context: &Context) -> anyhow::Result<()> {
    let api = context.client();
    let format = context.format.as_ref();
    match command {
        StudiesCommand::Create {
            study,
            config,
            region,
        } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading --config {}", config.display()))?;
            let value: Value = serde_norway::from_str(&text)
                .with_context(|| format!("--config {} is not YAML or JSON", config.display()))?;
            let body = match value.get("studyConfig") {
                Some(_) => value,
                None => json!({ "studyConfig": value }),
            };
            let path = format!(
                "{}?studyId={}",
                studies_path(&region),
                crate::client::encode(&study)
            );
            output::print_resource(format, &api.post(&path, &body)?);
        }
        StudiesCommand::List { region } => {
            let studies = api.get(&studies_path(&region))?;
            let items = studies["studies"].as_array().cloned().unwrap_or_default();
            output::print_list(
                format,
                &items,
                &[
                    ("NAME", "name"),
                    ("STATE", "state"),
                    ("CREATE_TIME", "createTime"),
                ],
            );
        }
        StudiesCommand::Describe { study, region } => {
            output::print_resource(format, &api.get(&study_path(&region, &study))?);
        }
        StudiesCommand::Delete { study, region } => {
            api.delete(&study_path(&region, &study))?;
            eprintln!("Deleted study [{study}].");
        }
        StudiesCommand::Trials(command) => trials(command, &api, format)?,
    }
    Ok(())
}

fn trials(
    command: TrialsCommand,
    api: &Api,
    format: Option<&output::Format>,
) -> anyhow::Result<()> {
    match command {
        TrialsCommand::Suggest {
            study,
            count,
            client_id,
        } => {
            let body = json!({"suggestionCount": count, "clientId": client_id});
            let response =
                api.wait(api.post(&format!("{}/trials:suggest", study.path()), &body)?)?;
            print_trials(format, &response);
        }
        TrialsCommand::List { study } => {
            let answer = api.get(&format!("{}/trials", study.path()))?;
            print_trials(format, &answer);
        }
        TrialsCommand::Complete {
            trial,
            study,
            metrics,
            infeasible_reason,
        } => {
            let metrics = metrics
                .iter()
                .map(|pair| {
                    let (metric, value) = pair.split_once('=').with_context(|| {
                        format!("--metrics takes NAME=VALUE pairs, got {pair:?}")
                    })?;
                    let value: f64 = value.parse().with_context(|| {
                        format!("--metrics: the value of {metric} is not a number: {value:?}")
                    })?;
                    Ok(json!({"metric": metric, "value": value}))
                })
                .collect::<anyhow::Result<Vec<Value>>>()?;
            let body = match infeasible_reason {
                Some(reason) => json!({"trialInfeasible": true, "infeasibleReason": reason}),
                None => json!({"finalMeasurement": {"metrics": metrics}}),
            };
            let path = format!("{}/trials/{}:complete", study.path(), trial_id(&trial));
            output::print_resource(format, &api.post(&path, &body)?);
        }
        TrialsCommand::Stop { trial, study } => {
            let path = format!("{}/trials/{}:stop", study.path(), trial_id(&trial));
            output::print_resource(format, &api.post(&path, &json!({}))?);
        }
        TrialsCommand::Optimal { study } => {
            let answer = api.post(
                &format!("{}/trials:listOptimalTrials", study.path()),
                &json!({}),
            )?;
            print_trials(format, &answer);
        }
    }
    Ok(())
}

/// A trial's id from its id or full name.
fn trial_id(trial: &str) -> String {
    crate::client::encode(kiln_api::names::short(trial))
}
