//! What a replica runs.
//!
//! - A built-in algorithm named by `imageUri` (`kiln/wide_deep`, ML Engine's
//!   `gcr.io/cloud-ml-algos/wide_deep_learner_cpu`, ...): the `kiln` binary's `train` command.
//! - A batch prediction job's replica: the `kiln` binary's `local batch-predict` command.
//! - A container: Kiln runs no container engine, so `containerCommand` + `containerArgs` run directly.
//! - A Python trainer: `python -m pythonModule args`, with each `packageUris` entry that is a local
//!   directory on `PYTHONPATH` (its parent when it is a package itself, as `gcloud local train`
//!   runs in the parent of `--package-path`), and each sdist or wheel pip-installed into a
//!   per-job virtual environment ([`install`]).
//!
//! `--job-dir DIR` is appended to the arguments when the job has a `jobDir`, as ML Engine does.

use std::path::{Path, PathBuf};

use kiln_api::job::{ReplicaConfig, TrainingInput};

use crate::logs::JobLog;
use crate::sandbox::{Confinement, Sandbox};

/// The built-in algorithms a job may name by `imageUri`. The scheduler runs them by name (the
/// `kiln` binary's `train` command) but does not know them; the training crate does.
pub trait BuiltIns {
    /// The name of the algorithm `image_uri` names (`gcr.io/cloud-ml-algos/linear_learner_cpu`
    /// → `linear`), if it names one.
    fn find(&self, image_uri: &str) -> Option<&'static str>;

    /// Every algorithm's name, for the refusal of an image that names none.
    fn names(&self) -> Vec<&'static str>;
}

/// How to run a job's replicas, decided once at submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    /// A built-in algorithm.
    BuiltIn {
        /// Canonical algorithm name.
        algorithm: String,
    },
    /// A batch prediction job's replica: `kiln local batch-predict` with these arguments.
    BatchPredict {
        /// The deployed model's files, read by the replica.
        model_dir: PathBuf,
        /// The arguments after `batch-predict --model-dir DIR`.
        args: Vec<String>,
        /// The runtime environments a TensorFlow, scikit-learn or XGBoost model is served from
        /// (or converted in), and ONNX Runtime's, read by the replica (built before the
        /// replicas start).
        environments: Vec<PathBuf>,
    },
    /// A command run directly.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
    },
    /// `python -m module`.
    Python {
        /// The module.
        module: String,
        /// Directories to put on PYTHONPATH.
        python_path: Vec<PathBuf>,
        /// sdists and wheels to pip-install into the job's virtual environment first.
        packages: Vec<PathBuf>,
        /// sdists and wheels in buckets (`gs://`, `s3://`), downloaded into the job's working
        /// directory and installed with `packages`.
        fetched: Vec<String>,
    },
}

impl Program {
    /// What its replicas read beyond the job's directories and the project's roots: the package
    /// directories and files of a Python trainer, the model of a batch prediction.
    pub fn reads(&self) -> Vec<PathBuf> {
        match self {
            Program::Python {
                python_path,
                packages,
                ..
            } => python_path.iter().chain(packages).cloned().collect(),
            Program::BatchPredict {
                model_dir,
                environments,
                ..
            } => std::iter::once(model_dir)
                .chain(environments)
                .cloned()
                .collect(),
            Program::BuiltIn { .. } | Program::Command { .. } => Vec::new(),
        }
    }

    /// Whether it runs code the user brought (a command, a Python package) rather than Kiln's own.
    pub fn runs_user_code(&self) -> bool {
        matches!(self, Program::Command { .. } | Program::Python { .. })
    }
}

/// Where Kiln finds what it runs.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The `kiln` binary (built-in algorithms run as `kiln train`).
    pub kiln: PathBuf,
    /// The Python interpreter for Python trainers.
    pub python: PathBuf,
}

/// File names pip installs from.
pub const PACKAGE_SUFFIXES: &[&str] = &[".tar.gz", ".tgz", ".zip", ".whl"];

/// Whether `name` is an sdist or wheel pip installs from.
pub fn is_package(name: &str) -> bool {
    PACKAGE_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

fn local_dir(uri: &str) -> Option<PathBuf> {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// Decides what the replicas of `input` run, collecting every problem.
pub fn decide(input: &TrainingInput, built_ins: &dyn BuiltIns) -> Result<Program, Vec<String>> {
    let master = input.master_config.clone().unwrap_or_default();
    let has_container = !master.image_uri.is_empty() || !master.container_command.is_empty();
    let mut problems = Vec::new();
    if has_container && !input.python_module.is_empty() {
        problems.push("Field: training_input.python_module Error: give either masterConfig.imageUri or pythonModule, not both".into());
    }
    if !master.container_command.is_empty() {
        return match problems.is_empty() {
            true => Ok(Program::Command {
                argv: container_argv(&master, input),
            }),
            false => Err(problems),
        };
    }
    if !master.image_uri.is_empty() {
        return match built_ins.find(&master.image_uri) {
            Some(algorithm) if problems.is_empty() => Ok(Program::BuiltIn {
                algorithm: algorithm.to_string(),
            }),
            Some(_) => Err(problems),
            None => {
                let known = built_ins.names();
                problems.push(format!(
                    "Field: training_input.master_config.image_uri Error: {:?} is not a built-in algorithm ({}) \
                     and Kiln runs no container engine: set masterConfig.containerCommand to the command to run",
                    master.image_uri,
                    known.join(", ")
                ));
                Err(problems)
            }
        };
    }
    if input.python_module.is_empty() {
        problems.push("Field: training_input.python_module Error: a pythonModule (with packageUris) or a masterConfig.imageUri is required".into());
        return Err(problems);
    }
    let mut python_path = Vec::new();
    let mut packages = Vec::new();
    let mut fetched = Vec::new();
    for uri in &input.package_uris {
        if uri.starts_with("gs://") || uri.starts_with("s3://") {
            match is_package(uri) {
                true => fetched.push(uri.clone()),
                false => problems.push(format!(
                    "Field: training_input.package_uris Error: {uri:?} is in a bucket, so it must be an sdist ({}) or wheel",
                    PACKAGE_SUFFIXES.join(", ")
                )),
            }
            continue;
        }
        match local_dir(uri) {
            Some(dir) if dir.is_dir() => {
                let entry = if dir.join("__init__.py").is_file() { dir.parent().map(Path::to_path_buf).unwrap_or(dir) } else { dir };
                python_path.push(entry);
            }
            Some(file) if file.is_file() && is_package(&file.to_string_lossy()) => {
                packages.push(file);
            }
            _ => problems.push(format!(
                "Field: training_input.package_uris Error: {uri:?} must be a local package directory, sdist ({}) or \
                 wheel (absolute path, file://, or an sdist or wheel at gs:// or s3://)",
                PACKAGE_SUFFIXES.join(", ")
            )),
        }
    }
    match problems.is_empty() {
        true => Ok(Program::Python {
            module: input.python_module.clone(),
            python_path,
            packages,
            fetched,
        }),
        false => Err(problems),
    }
}

fn container_argv(config: &ReplicaConfig, input: &TrainingInput) -> Vec<String> {
    let args = if config.container_args.is_empty() {
        &input.args
    } else {
        &config.container_args
    };
    config
        .container_command
        .iter()
        .chain(args)
        .cloned()
        .collect()
}

/// Program, arguments and extra environment of one replica.
pub fn command(
    program: &Program,
    config: &ReplicaConfig,
    input: &TrainingInput,
    runtime: &Runtime,
) -> (PathBuf, Vec<String>, Vec<(String, String)>) {
    let job_dir: Vec<String> = match input.job_dir.is_empty() {
        true => Vec::new(),
        false => vec!["--job-dir".into(), input.job_dir.clone()],
    };
    match program {
        Program::BuiltIn { algorithm } => {
            let args = ["train".to_string(), algorithm.clone()]
                .into_iter()
                .chain(input.args.iter().cloned())
                .chain(job_dir)
                .collect();
            (runtime.kiln.clone(), args, Vec::new())
        }
        Program::BatchPredict {
            model_dir, args, ..
        } => {
            let args = ["local", "batch-predict", "--model-dir"]
                .into_iter()
                .map(str::to_string)
                .chain([model_dir.display().to_string()])
                .chain(args.iter().cloned())
                .collect();
            (runtime.kiln.clone(), args, Vec::new())
        }
        Program::Command { argv } => {
            // A worker or parameter server may run its own command.
            let argv = if config.container_command.is_empty() {
                argv.clone()
            } else {
                container_argv(config, input)
            };
            let mut argv = argv.into_iter().chain(job_dir);
            let program = PathBuf::from(argv.next().unwrap_or_default());
            (program, argv.collect(), Vec::new())
        }
        Program::Python {
            module,
            python_path,
            ..
        } => {
            let args = ["-m".to_string(), module.clone()]
                .into_iter()
                .chain(input.args.iter().cloned())
                .chain(job_dir)
                .collect();
            let joined = std::env::join_paths(python_path)
                .map(|paths| paths.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                runtime.python.clone(),
                args,
                vec![
                    ("PYTHONPATH".into(), joined),
                    ("PYTHONUNBUFFERED".into(), "1".into()),
                ],
            )
        }
    }
}

/// Creates a virtual environment in `dir` (seeing the machine's site packages, as ML Engine's runtime
/// images had theirs) and pip-installs `packages` into it. Output goes to `log` as task `service`.
/// Returns the environment's interpreter, or what failed with pip's last lines.
/// Both steps run confined as the job's replicas are (a package's `setup.py` is the user's code),
/// with `env` added (the sandbox's `HOME` and `TMPDIR`).
pub async fn install(
    python: &Path,
    packages: &[PathBuf],
    dir: &Path,
    log: &JobLog,
    confined: (&Sandbox, &Confinement),
    env: &[(String, String)],
) -> Result<PathBuf, String> {
    let venv = dir.join("venv");
    let steps: [(PathBuf, Vec<String>, String); 2] = [
        (
            python.to_path_buf(),
            vec![
                "-m".into(),
                "venv".into(),
                "--system-site-packages".into(),
                venv.display().to_string(),
            ],
            "creating the job's virtual environment".into(),
        ),
        (
            venv_python(dir),
            [
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
            ]
            .iter()
            .map(|arg| arg.to_string())
            .chain(packages.iter().map(|package| package.display().to_string()))
            .collect(),
            format!(
                "pip install of {}",
                packages
                    .iter()
                    .filter_map(|package| package.file_name())
                    .map(|name| name.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ];
    for (program, args, what) in steps {
        log.append(
            "service",
            "INFO",
            &format!("{what}: {} {}", program.display(), args.join(" ")),
        );
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&args)
            .env_clear()
            .envs(crate::executor::passed_env())
            .envs(
                env.iter()
                    .map(|(name, value)| (name.as_str(), value.as_str())),
            )
            .current_dir(dir);
        let (sandbox, confinement) = confined;
        sandbox
            .prepare(confinement)
            .map_err(|error| error.to_string())?
            .install(&mut command);
        let output = command
            .output()
            .await
            .map_err(|error| format!("{what} could not start: {error}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        for line in &lines {
            log.append(
                "service",
                if output.status.success() {
                    "INFO"
                } else {
                    "ERROR"
                },
                line,
            );
        }
        if !output.status.success() {
            let tail = lines[lines.len().saturating_sub(crate::logs::ERROR_LOG_LINES)..].join("\n");
            return Err(format!("{what} failed with {}:\n{tail}", output.status));
        }
    }
    Ok(venv_python(dir))
}

/// The interpreter of the virtual environment [`install`] makes in `dir`.
pub fn venv_python(dir: &Path) -> PathBuf {
    dir.join("venv").join("bin").join("python")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> TrainingInput {
        serde_json::from_value(json).unwrap()
    }

    /// One built-in algorithm, `linear`, under ML Engine's image name.
    struct Linear;

    impl BuiltIns for Linear {
        fn find(&self, image_uri: &str) -> Option<&'static str> {
            (image_uri == "gcr.io/cloud-ml-algos/linear_learner_cpu").then_some("linear")
        }

        fn names(&self) -> Vec<&'static str> {
            vec!["linear"]
        }
    }

    fn decide(input: &TrainingInput) -> Result<Program, Vec<String>> {
        super::decide(input, &Linear)
    }

    #[test]
    fn decides_builtin_command_and_python_programs() {
        let built_in = decide(&input(serde_json::json!({"masterConfig": {"imageUri": "gcr.io/cloud-ml-algos/linear_learner_cpu"}}))).unwrap();
        assert_eq!(
            built_in,
            Program::BuiltIn {
                algorithm: "linear".into()
            }
        );
        let command = decide(&input(serde_json::json!({"masterConfig": {"imageUri": "my/image", "containerCommand": ["sh", "-c"], "containerArgs": ["exit 0"]}}))).unwrap();
        assert_eq!(
            command,
            Program::Command {
                argv: vec!["sh".into(), "-c".into(), "exit 0".into()]
            }
        );
        let package = tempfile::tempdir().unwrap();
        std::fs::write(package.path().join("__init__.py"), "").unwrap();
        let uri = format!("file://{}", package.path().display());
        let python = decide(&input(
            serde_json::json!({"pythonModule": "trainer.task", "packageUris": [uri]}),
        ))
        .unwrap();
        assert_eq!(
            python,
            Program::Python {
                module: "trainer.task".into(),
                python_path: vec![package.path().parent().unwrap().to_path_buf()],
                packages: Vec::new(),
                fetched: Vec::new(),
            }
        );
        let fetched = decide(&input(
            serde_json::json!({"pythonModule": "t", "packageUris": ["s3://b/t-0.1.tar.gz"]}),
        ))
        .unwrap();
        assert!(
            matches!(fetched, Program::Python { fetched, .. } if fetched == ["s3://b/t-0.1.tar.gz"]),
            "an sdist in a bucket is downloaded"
        );
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        for (json, fragment) in [
            (serde_json::json!({}), "pythonModule"),
            (
                serde_json::json!({"masterConfig": {"imageUri": "gcr.io/me/trainer"}}),
                "no container engine",
            ),
            (
                serde_json::json!({"pythonModule": "t", "packageUris": ["gs://b/trainer"]}),
                "is in a bucket, so it must be an sdist",
            ),
            (
                serde_json::json!({"pythonModule": "t", "packageUris": ["/no/such/t.tar.gz"]}),
                "local package directory, sdist",
            ),
        ] {
            let problems = decide(&input(json.clone())).unwrap_err().join(" ");
            assert!(problems.contains(fragment), "{json}: {problems}");
        }
    }
}
