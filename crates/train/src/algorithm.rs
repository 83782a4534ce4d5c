//! The built-in algorithms, registered by name, and the command-line arguments they take.
//!
//! The names accept ML Engine's built-in algorithm images too, so a job written for
//! `gcr.io/cloud-ml-algos/wide_deep_learner_cpu` runs unchanged. Arguments follow those
//! algorithms (`--training_data_path`, `--validation_data_path`, `--model_type`, `--batch_size`,
//! `--max_steps`, ...) and ML Engine's data rule: CSV without a header, target in the first column,
//! unless a `--schema` file says otherwise.

use std::path::PathBuf;

use kiln_model::ModelKind;

use crate::TrainError;
use crate::accelerator::Accelerator;
use crate::data::expand;
use crate::resolve::ModelType;
use crate::schema::Schema;
use crate::sequential::data::Source;
use crate::sequential::{Definition, SequentialConfig};
use crate::trainer::{EarlyStopping, TrainConfig, TrainOutcome};

/// What an algorithm trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A linear, DNN or Wide & Deep network over feature columns of tabular data.
    Columns(ModelKind),
    /// A Sequential model from a definition file, over images, text or vectors.
    Sequential,
}

/// A built-in algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Algorithm {
    /// Canonical name.
    pub name: &'static str,
    /// What it trains.
    pub family: Family,
    /// Other names that select it (image URIs of ML Engine's built-in algorithms).
    pub aliases: &'static [&'static str],
}

/// Every built-in algorithm.
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm {
        name: "wide_deep",
        family: Family::Columns(ModelKind::WideDeep),
        aliases: &[
            "wide_and_deep",
            "gcr.io/cloud-ml-algos/wide_deep_learner_cpu",
            "gcr.io/cloud-ml-algos/wide_deep_learner_gpu",
        ],
    },
    Algorithm {
        name: "linear",
        family: Family::Columns(ModelKind::Linear),
        aliases: &[
            "linear_learner",
            "gcr.io/cloud-ml-algos/linear_learner_cpu",
            "gcr.io/cloud-ml-algos/linear_learner_gpu",
        ],
    },
    Algorithm {
        name: "dnn",
        family: Family::Columns(ModelKind::Dnn),
        aliases: &["deep"],
    },
    Algorithm {
        name: "sequential",
        family: Family::Sequential,
        aliases: &["keras_sequential"],
    },
];

impl Algorithm {
    /// The network of a feature-column algorithm; `None` for the others.
    pub fn columns_kind(&self) -> Option<ModelKind> {
        match self.family {
            Family::Columns(kind) => Some(kind),
            Family::Sequential => None,
        }
    }

    /// Finds an algorithm by name, alias or image URI (`kiln/` prefixes and `:tag`s are ignored).
    pub fn find(name: &str) -> Result<Algorithm, TrainError> {
        let bare = name.strip_prefix("kiln/").unwrap_or(name);
        let bare = bare.split(':').next().unwrap_or(bare);
        ALGORITHMS
            .iter()
            .find(|algorithm| algorithm.name == bare || algorithm.aliases.contains(&bare))
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = ALGORITHMS.iter().map(|algorithm| algorithm.name).collect();
                TrainError::Config(format!(
                    "unknown built-in algorithm {name:?}; known: {}",
                    known.join(", ")
                ))
            })
    }
}

/// `--training_data_path` and its alias.
const TRAINING_DATA: &[&str] = &["training_data_path", "train_files"];
/// `--validation_data_path` and its alias.
const VALIDATION_DATA: &[&str] = &["validation_data_path", "eval_files"];
/// `--training_labels_path` (IDX labels).
const TRAINING_LABELS: &[&str] = &["training_labels_path"];
/// `--validation_labels_path` (IDX labels).
const VALIDATION_LABELS: &[&str] = &["validation_labels_path"];
/// `--schema`.
const SCHEMA: &[&str] = &["schema"];
/// `--model_definition` and its alias.
const MODEL_DEFINITION: &[&str] = &["model_definition", "model"];
/// `--job-dir`.
const JOB_DIR: &[&str] = &["job_dir"];

/// The arguments of built-in algorithms that name files or directories, each with its aliases:
/// each value is a comma-separated list of locations.
pub const LOCATION_ARGS: &[&[&str]] = &[
    TRAINING_DATA,
    VALIDATION_DATA,
    TRAINING_LABELS,
    VALIDATION_LABELS,
    SCHEMA,
    MODEL_DEFINITION,
    JOB_DIR,
];

/// A built-in algorithm's arguments, parsed from `--name=value` or `--name value` pairs.
#[derive(Debug, Clone, Default)]
pub struct TrainArgs {
    pairs: Vec<(String, String)>,
}

impl TrainArgs {
    /// Parses arguments; `-` and `_` in names are equivalent.
    pub fn parse(args: &[String]) -> Result<Self, TrainError> {
        let mut pairs = Vec::new();
        let mut iter = args.iter().peekable();
        while let Some(arg) = iter.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(TrainError::Config(format!(
                    "unexpected argument {arg:?}; use --name=value"
                )));
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => match iter.peek() {
                    Some(next) if !next.starts_with("--") => {
                        (flag.to_string(), iter.next().cloned().unwrap_or_default())
                    }
                    _ => (flag.to_string(), "true".to_string()),
                },
            };
            pairs.push((name.replace('-', "_"), value));
        }
        Ok(Self { pairs })
    }

    /// The arguments again as `--name=value`, every location in a [`LOCATION_ARGS`] argument
    /// replaced by what `check` makes of it (given the argument's name and the location). Collects
    /// every problem.
    pub fn check_locations(
        args: &[String],
        mut check: impl FnMut(&str, &str) -> Result<String, String>,
    ) -> Result<Vec<String>, Vec<String>> {
        let parsed = Self::parse(args)
            .map_err(|error| vec![format!("Field: training_input.args Error: {error}")])?;
        let mut problems = Vec::new();
        let mut checked = Vec::new();
        for (name, value) in parsed.pairs {
            if !LOCATION_ARGS
                .iter()
                .any(|names| names.contains(&name.as_str()))
            {
                checked.push(format!("--{name}={value}"));
                continue;
            }
            let locations: Vec<String> = locations(&value)
                .filter_map(|location| {
                    check(&name, location)
                        .map_err(|problem| problems.push(problem))
                        .ok()
                })
                .collect();
            checked.push(format!("--{name}={}", locations.join(",")));
        }
        match problems.is_empty() {
            true => Ok(checked),
            false => Err(problems),
        }
    }

    fn take(&mut self, names: &[&str]) -> Option<String> {
        let index = self
            .pairs
            .iter()
            .rposition(|(name, _)| names.contains(&name.as_str()))?;
        let value = self.pairs.remove(index).1;
        self.pairs
            .retain(|(name, _)| !names.contains(&name.as_str()));
        Some(value)
    }

    fn number<T: std::str::FromStr>(&mut self, names: &[&str]) -> Result<Option<T>, TrainError> {
        match self.take(names) {
            None => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|_| {
                TrainError::Config(format!("--{} must be a number, got {value:?}", names[0]))
            }),
        }
    }

    /// Trains `algorithm` with these arguments, calling `log` with progress lines.
    pub fn run(
        self,
        algorithm: Algorithm,
        default_job_dir: Option<PathBuf>,
        metric_file: Option<PathBuf>,
        log: &mut dyn FnMut(&str),
    ) -> Result<TrainOutcome, TrainError> {
        match algorithm.family {
            Family::Columns(_) => {
                let mut config = self.into_config(algorithm, default_job_dir)?;
                config.metric_file = metric_file;
                crate::trainer::train(&config, log)
            }
            Family::Sequential => {
                let mut config = self.into_sequential_config(default_job_dir)?;
                config.metric_file = metric_file;
                crate::sequential::train(&config, log)
            }
        }
    }

    /// Builds a training configuration for a feature-column `algorithm`; unknown arguments are
    /// an error that names them.
    pub fn into_config(
        mut self,
        algorithm: Algorithm,
        default_job_dir: Option<PathBuf>,
    ) -> Result<TrainConfig, TrainError> {
        let Some(kind) = algorithm.columns_kind() else {
            return Err(TrainError::Config(format!(
                "{} does not train over feature columns",
                algorithm.name
            )));
        };
        let train_files = files(self.take(TRAINING_DATA));
        let eval_files = files(self.take(VALIDATION_DATA));
        let common = self.common(default_job_dir)?;
        let header = match self.take(&["header"]) {
            None => None,
            Some(value) => Some(value.parse::<bool>().map_err(|_| {
                TrainError::Config(format!("--header must be true or false, got {value:?}"))
            })?),
        };
        let schema = match self.take(SCHEMA) {
            Some(path) => {
                let mut schema = Schema::from_file(&PathBuf::from(path))?;
                schema.header = header.or(schema.header);
                schema
            }
            None => {
                // ML Engine's rule for built-in algorithms: no header, target first.
                let mut schema = Schema {
                    label: "target".into(),
                    header: Some(header.unwrap_or(false)),
                    ..Schema::default()
                };
                if schema.header == Some(false) {
                    let width = first_line_width(&train_files)?;
                    schema.columns = std::iter::once("target".to_string())
                        .chain((1..width).map(|index| format!("feature_{index}")))
                        .collect();
                }
                schema
            }
        };
        let mut config = TrainConfig::new(algorithm.name, kind, schema, common.job_dir);
        config.train_files = train_files;
        config.eval_files = eval_files;
        config.model_type = match self.take(&["model_type"]).as_deref() {
            None => None,
            Some("classification") => Some(ModelType::Classification),
            Some("regression") => Some(ModelType::Regression),
            Some(other) => {
                return Err(TrainError::Config(format!(
                    "--model_type must be classification or regression, got {other:?}"
                )));
            }
        };
        if let Some(units) = self.take(&["hidden_units"]) {
            config.hidden_units = units
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|part| !part.is_empty())
                .map(|part| part.parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    TrainError::Config(format!(
                        "--hidden_units must be numbers like 100,50, got {units:?}"
                    ))
                })?;
        }
        config.batch_size = common.batch_size.unwrap_or(config.batch_size);
        config.num_epochs = common.num_epochs.unwrap_or(config.num_epochs);
        config.max_steps = common.max_steps;
        config.learning_rate = common.learning_rate.unwrap_or(config.learning_rate);
        if let Some(value) = self.number(&["linear_learning_rate"])? {
            config.linear_learning_rate = value;
        }
        config.streaming = common.streaming;
        config.shuffle_buffer = common.shuffle_buffer.unwrap_or(config.shuffle_buffer);
        config.seed = common.seed.unwrap_or(config.seed);
        config.log_every = common.log_every.unwrap_or(config.log_every);
        config.resume = common.resume;
        config.early_stopping = common.early_stopping;
        config.accelerator = common.accelerator;
        self.finish(algorithm)?;
        Ok(config)
    }

    /// Builds the configuration of the `sequential` algorithm: `--model_definition` names the
    /// definition file; IDX data takes its labels from `--training_labels_path` and
    /// `--validation_labels_path`.
    pub fn into_sequential_config(
        mut self,
        default_job_dir: Option<PathBuf>,
    ) -> Result<SequentialConfig, TrainError> {
        let definition = self.take(MODEL_DEFINITION).ok_or_else(|| {
            TrainError::Config("--model_definition (a JSON or YAML file) is required".into())
        })?;
        let definition = Definition::from_file(&PathBuf::from(definition))?;
        let label_column = self.number(&["label_column"])?.unwrap_or(0);
        let label_field = self
            .take(&["label_field"])
            .unwrap_or_else(|| "label".into());
        let input_field = self.take(&["input_field"]).unwrap_or_else(|| {
            match definition.input {
                kiln_model::sequential::InputSpec::Text { .. } => "text",
                _ => "input",
            }
            .into()
        });
        let source = |files: Vec<PathBuf>, label_files: Vec<PathBuf>| Source {
            files,
            label_files,
            label_column,
            label_field: label_field.clone(),
            input_field: input_field.clone(),
        };
        let train = source(
            expand(&files(self.take(TRAINING_DATA)))?,
            expand(&files(self.take(TRAINING_LABELS)))?,
        );
        if train.files.is_empty() {
            return Err(TrainError::Config(
                "no training files (--training_data_path / --train-files)".into(),
            ));
        }
        let eval_files = expand(&files(self.take(VALIDATION_DATA)))?;
        let eval_labels = expand(&files(self.take(VALIDATION_LABELS)))?;
        let eval = (!eval_files.is_empty()).then(|| source(eval_files, eval_labels));
        let classes = self
            .take(&["classes"])
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|class| !class.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let common = self.common(default_job_dir)?;
        let mut definition = definition;
        if let Some(rate) = common.learning_rate {
            definition.optimizer.set_learning_rate(rate);
        }
        let config = SequentialConfig {
            definition,
            train,
            eval,
            classes,
            batch_size: common.batch_size.unwrap_or(32),
            num_epochs: common.num_epochs.unwrap_or(5),
            max_steps: common.max_steps,
            seed: common.seed.unwrap_or(42),
            job_dir: common.job_dir,
            log_every: common.log_every.unwrap_or(100),
            metric_file: None,
            early_stopping: common.early_stopping,
            resume: common.resume,
            accelerator: common.accelerator,
            streaming: common.streaming,
            shuffle_buffer: common.shuffle_buffer.unwrap_or(10_000),
        };
        self.finish(Algorithm::find("sequential")?)?;
        Ok(config)
    }

    /// The arguments every algorithm takes.
    fn common(&mut self, default_job_dir: Option<PathBuf>) -> Result<Common, TrainError> {
        let job_dir = self
            .take(JOB_DIR)
            .map(PathBuf::from)
            .or(default_job_dir)
            .ok_or_else(|| TrainError::Config("--job-dir is required".into()))?;
        let batch_size = self.number(&["batch_size", "train_batch_size"])?;
        let max_steps = self.number(&["max_steps", "train_steps"])?;
        // With only --max_steps, the step count ends training: epochs run without limit.
        let num_epochs = match (self.number(&["num_epochs"])?, max_steps) {
            (Some(epochs), _) => Some(epochs),
            (None, Some(_)) => Some(usize::MAX),
            (None, None) => None,
        };
        let learning_rate = self.number(&["learning_rate"])?;
        let seed = self.number(&["seed"])?;
        let accelerator = match self.take(&["device"]) {
            Some(device) => Accelerator::parse(&device)?,
            None => Accelerator::Cpu,
        };
        let log_every = self.number(&["log_every", "log_every_steps"])?;
        let resume = match self.take(&["resume"]).as_deref() {
            None | Some("false") => false,
            Some("true") | Some("") => true,
            Some(other) => {
                return Err(TrainError::Config(format!(
                    "--resume must be true or false, got {other:?}"
                )));
            }
        };
        let streaming = match self.take(&["streaming"]).as_deref() {
            None | Some("auto") => None,
            Some("true") | Some("") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(TrainError::Config(format!(
                    "--streaming must be true, false or auto, got {other:?}"
                )));
            }
        };
        let shuffle_buffer = self.number(&["shuffle_buffer", "shuffle_buffer_size"])?;
        let patience = self.number(&["early_stopping_patience"])?;
        let min_delta = self.number(&["early_stopping_min_delta"])?;
        let early_stopping = match self.take(&["early_stopping_metric"]) {
            Some(metric) => Some(EarlyStopping {
                metric,
                patience: patience.unwrap_or(2).max(1),
                min_delta: min_delta.unwrap_or(0.0),
            }),
            None if patience.is_some() || min_delta.is_some() => {
                return Err(TrainError::Config(
                    "--early_stopping_patience and --early_stopping_min_delta need --early_stopping_metric".into(),
                ));
            }
            None => None,
        };
        Ok(Common {
            job_dir,
            accelerator,
            batch_size,
            num_epochs,
            max_steps,
            learning_rate,
            seed,
            log_every,
            resume,
            early_stopping,
            streaming,
            shuffle_buffer,
        })
    }

    /// Fails with the names of the arguments nothing took.
    fn finish(self, algorithm: Algorithm) -> Result<(), TrainError> {
        if self.pairs.is_empty() {
            return Ok(());
        }
        let unknown: Vec<String> = self
            .pairs
            .iter()
            .map(|(name, _)| format!("--{name}"))
            .collect();
        Err(TrainError::Config(format!(
            "unknown arguments for {}: {}",
            algorithm.name,
            unknown.join(", ")
        )))
    }
}

/// The arguments every algorithm takes; `None` leaves the algorithm's default.
struct Common {
    job_dir: PathBuf,
    accelerator: Accelerator,
    batch_size: Option<usize>,
    num_epochs: Option<usize>,
    max_steps: Option<usize>,
    learning_rate: Option<f64>,
    seed: Option<u64>,
    log_every: Option<usize>,
    resume: bool,
    early_stopping: Option<EarlyStopping>,
    /// Whether to stream the examples from their files (`None`: by their size).
    streaming: Option<bool>,
    /// Examples in the shuffle buffer of a streamed run.
    shuffle_buffer: Option<usize>,
}

/// A comma-separated list of paths.
fn files(value: Option<String>) -> Vec<PathBuf> {
    value
        .map(|value| locations(&value).map(PathBuf::from).collect())
        .unwrap_or_default()
}

/// The locations of a comma-separated list.
fn locations(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').filter(|part| !part.is_empty())
}

fn first_line_width(files: &[PathBuf]) -> Result<usize, TrainError> {
    let Some(first) = files.first() else {
        return Ok(0);
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(crate::data::open(first)?);
    match reader.records().next() {
        Some(Ok(record)) => Ok(record.len()),
        Some(Err(error)) => Err(TrainError::Data(format!("{}: {error}", first.display()))),
        None => Err(TrainError::Data(format!("{} is empty", first.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> TrainArgs {
        TrainArgs::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn finds_algorithms_by_image_uri() {
        assert_eq!(
            Algorithm::find("gcr.io/cloud-ml-algos/wide_deep_learner_cpu:latest")
                .unwrap()
                .name,
            "wide_deep"
        );
        assert_eq!(
            Algorithm::find("kiln/linear").unwrap().family,
            Family::Columns(ModelKind::Linear)
        );
        let error = Algorithm::find("xgboost").unwrap_err().to_string();
        assert!(
            error.contains("\"xgboost\"") && error.contains("wide_deep"),
            "{error}"
        );
    }

    #[test]
    fn parses_both_flag_forms_and_rejects_unknown_ones() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("train.csv");
        std::fs::write(&data, "1,2.5,a\n0,1.5,b\n").unwrap();
        let path = data.display().to_string();
        let config = args(&[
            "--training_data_path",
            &path,
            "--batch-size=32",
            "--job-dir",
            "out",
            "--max_steps=7",
        ])
        .into_config(Algorithm::find("dnn").unwrap(), None)
        .unwrap();
        assert_eq!(config.batch_size, 32);
        assert_eq!(config.max_steps, Some(7));
        assert_eq!(
            config.num_epochs,
            usize::MAX,
            "--max_steps alone ends training by steps"
        );
        let both = args(&[
            "--training_data_path",
            &path,
            "--job-dir=out",
            "--num_epochs=3",
            "--max_steps=7",
        ])
        .into_config(Algorithm::find("dnn").unwrap(), None)
        .unwrap();
        assert_eq!(
            (both.num_epochs, both.max_steps),
            (3, Some(7)),
            "--num_epochs is kept beside --max_steps"
        );
        assert_eq!(
            config.schema.columns,
            vec!["target", "feature_1", "feature_2"]
        );
        let error = args(&["--training_data_path", &path, "--job-dir=out", "--bogus=1"])
            .into_config(Algorithm::find("dnn").unwrap(), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--bogus"), "{error}");
        let error = args(&[
            "--training_data_path",
            &path,
            "--job-dir=out",
            "--batch_size=many",
        ])
        .into_config(Algorithm::find("dnn").unwrap(), None)
        .unwrap_err()
        .to_string();
        assert!(error.contains("--batch_size must be a number"), "{error}");
    }
}
