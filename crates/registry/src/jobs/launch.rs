//! A job's input checked and turned into what will run: replicas, program, limits, and a tuning or
//! batch prediction plan. Every problem is collected, each naming its field.

use std::path::Path;
use std::time::Duration;

use kiln_api::{BuiltInAlgorithm, ListBuiltInAlgorithmsResponse};
use kiln_artifacts::PathPolicy;
use kiln_scheduler::cluster::Resources;
use kiln_scheduler::cluster::units_per_hour;
use kiln_scheduler::program::{self, Program};
use kiln_scheduler::{ReplicaPlan, TaskType};
use kiln_train::Algorithm;
use kiln_train::algorithm::{ALGORITHMS, TrainArgs};

use super::{DEFAULT_MAX_RUNNING_TIME, JobSettings};
use crate::batch::{self, PredictionPlan};
use crate::registry::Registry;
use crate::tuning::{self, TuningPlan};

/// What a validated job will run.
#[derive(Clone)]
pub(super) struct Launch {
    pub(super) replicas: Vec<ReplicaPlan>,
    pub(super) program: Program,
    pub(super) max_running: Duration,
    pub(super) max_wait: Option<Duration>,
    /// ML units per hour of all replicas together: what the job takes from the quota.
    pub(super) units: f64,
    /// A tuning job's search.
    pub(super) tuning: Option<TuningPlan>,
    /// A batch prediction job's output.
    pub(super) prediction: Option<PredictionPlan>,
}

/// Checks a training input and decides how to run it, collecting every problem. Replaces `jobDir`
/// and `packageUris` by the locations `paths` resolved them to.
pub(super) fn validate(
    input: &mut kiln_api::TrainingInput,
    paths: &PathPolicy,
    project: &str,
    job_id: &str,
) -> Result<Launch, Vec<String>> {
    let mut problems = Vec::new();
    if !input.job_dir.is_empty() {
        match paths.check(project, "training_input.job_dir", &input.job_dir) {
            Ok(checked) => input.job_dir = checked,
            Err(problem) => problems.push(problem),
        }
    }
    let packages = std::mem::take(&mut input.package_uris);
    for (index, uri) in packages.iter().enumerate() {
        match paths.check(
            project,
            &format!("training_input.package_uris[{index}]"),
            uri,
        ) {
            Ok(checked) => input.package_uris.push(checked),
            Err(problem) => problems.push(problem),
        }
    }
    let replicas = kiln_scheduler::plan(input)
        .map_err(|found| problems.extend(found))
        .ok();
    let program = program::decide(input, &TrainAlgorithms)
        .map_err(|found| problems.extend(found))
        .ok();
    if matches!(program, Some(Program::BuiltIn { .. })) {
        let checked = TrainArgs::check_locations(&input.args, |name, location| {
            batch::checked_input(
                location,
                project,
                paths,
                &format!("training_input.args[--{name}]"),
            )
        });
        match checked {
            Ok(args) => input.args = args,
            Err(found) => problems.extend(found),
        }
    }
    if matches!(program, Some(Program::BuiltIn { .. }))
        && kiln_artifacts::bucket::is_bucket(&input.job_dir)
    {
        problems.push(format!(
            "Field: training_input.job_dir Error: {:?} is a bucket; built-in algorithms write \
             their model and event files to a local jobDir (an allowed directory, or the \
             project's workspace)",
            input.job_dir
        ));
    }
    if matches!(program, Some(Program::BuiltIn { .. }))
        && replicas.as_ref().is_some_and(|replicas| replicas.len() > 1)
    {
        problems.push("Field: training_input.scale_tier Error: built-in algorithms run on one replica; use BASIC".into());
    }
    let scheduling = input.scheduling.clone().unwrap_or_default();
    let max_running = parse_duration("max_running_time", &scheduling.max_running_time)
        .map_err(|problem| problems.push(problem))
        .ok()
        .flatten();
    let max_wait = parse_duration("max_wait_time", &scheduling.max_wait_time)
        .map_err(|problem| problems.push(problem))
        .ok()
        .flatten();
    let tuning = input.hyperparameters.as_ref().and_then(|spec| {
        tuning::plan(spec, job_id)
            .map_err(|found| problems.extend(found))
            .ok()
    });
    match (replicas, program, problems.is_empty()) {
        (Some(replicas), Some(program), true) => Ok(Launch {
            units: units(&replicas),
            replicas,
            program,
            max_running: max_running.unwrap_or(DEFAULT_MAX_RUNNING_TIME),
            max_wait,
            tuning,
            prediction: None,
        }),
        _ => Err(problems),
    }
}

/// A problem for each replica that asks more of a node than the `largest` one has.
pub(super) fn too_large(replicas: &[ReplicaPlan], largest: &Resources) -> Vec<String> {
    let mut problems: Vec<String> = replicas
        .iter()
        .filter(|replica| !largest.holds(&replica.resources()))
        .map(|replica| {
            let field = match replica.task {
                TaskType::Master => "master_type",
                TaskType::Worker => "worker_type",
                TaskType::Ps => "parameter_server_type",
                TaskType::Evaluator => "evaluator_type",
            };
            format!(
                "Field: training_input.{field} Error: {} ({}) asks for {}, more than the \
                 cluster's largest node has ({largest})",
                replica.task_name(),
                replica.machine_type,
                replica.resources()
            )
        })
        .collect();
    problems.dedup_by(|a, b| a.split(" Error: ").next() == b.split(" Error: ").next());
    problems
}

/// ML units per hour of all `replicas` together: what a job takes from the quota.
fn units(replicas: &[ReplicaPlan]) -> f64 {
    replicas
        .iter()
        .map(|replica| units_per_hour(&replica.machine_type).unwrap_or(0.0))
        .sum()
}

/// Checks a batch prediction input and decides how to run it: one `standard` replica, or on a
/// cluster (`spans_nodes`) one for each of `maxWorkerCount` parts.
pub(super) fn validate_prediction(
    input: &kiln_api::PredictionInput,
    settings: &JobSettings,
    registry: &Registry,
    project: &str,
    summary: &Path,
    spans_nodes: bool,
) -> Result<Launch, Vec<String>> {
    let standard = kiln_scheduler::plan(&kiln_api::TrainingInput::default())?;
    let spread = match spans_nodes {
        true => batch::Spread::Replicas {
            threads: standard.first().map_or(1, |master| master.resources().cpus),
        },
        false => batch::Spread::Threads,
    };
    let (program, prediction) =
        batch::plan(input, project, &settings.paths, registry, summary, spread)?;
    let replicas = match prediction.parts {
        1 => standard,
        parts => kiln_scheduler::plan(&kiln_api::TrainingInput {
            scale_tier: kiln_api::job::ScaleTier::Custom,
            master_type: "standard".into(),
            worker_type: "standard".into(),
            worker_count: parts as i64 - 1,
            ..kiln_api::TrainingInput::default()
        })?,
    };
    Ok(Launch {
        units: units(&replicas),
        replicas,
        program,
        max_running: DEFAULT_MAX_RUNNING_TIME,
        max_wait: None,
        tuning: None,
        prediction: Some(prediction),
    })
}

fn parse_duration(field: &str, text: &str) -> Result<Option<Duration>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.strip_suffix('s')
        .and_then(|seconds| seconds.parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map(|seconds| Some(Duration::from_secs_f64(seconds)))
        .ok_or_else(|| format!("Field: training_input.scheduling.{field} Error: {text:?} is not a duration such as \"7200s\""))
}

/// The built-in algorithms of `kiln-train`, for [`program::decide`].
struct TrainAlgorithms;

/// The built-in algorithms a training job's `masterConfig.imageUri` may name.
pub fn built_in_algorithms() -> ListBuiltInAlgorithmsResponse {
    let algorithms = ALGORITHMS
        .iter()
        .map(|algorithm| BuiltInAlgorithm {
            name: algorithm.name.into(),
            image_uris: std::iter::once(format!("kiln/{}", algorithm.name))
                .chain(
                    algorithm
                        .aliases
                        .iter()
                        .filter(|alias| alias.contains('/'))
                        .map(|alias| alias.to_string()),
                )
                .collect(),
        })
        .collect();
    ListBuiltInAlgorithmsResponse { algorithms }
}

impl program::BuiltIns for TrainAlgorithms {
    fn find(&self, image_uri: &str) -> Option<&'static str> {
        Algorithm::find(image_uri)
            .ok()
            .map(|algorithm| algorithm.name)
    }

    fn names(&self) -> Vec<&'static str> {
        ALGORITHMS.iter().map(|algorithm| algorithm.name).collect()
    }
}
