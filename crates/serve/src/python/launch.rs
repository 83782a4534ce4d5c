//! Starting Python processes in a runtime environment: each runtime gets a scratch directory of
//! its own (its home, its temporary files, its routine's packages) and its processes start
//! confined to the model, the environment and that directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::environment::Environment;
use super::{Frameworks, Reach};
use crate::ServeError;

/// The scripts written into every scratch directory, by name.
const SCRIPTS: [(&str, &str); 2] = [
    ("predictor.py", include_str!("predictor.py")),
    ("converter.py", include_str!("converter.py")),
];

/// Starts processes in one environment, on one model, from one scratch directory.
pub(super) struct Launcher {
    python: PathBuf,
    scratch: tempfile::TempDir,
    reach: Reach,
    frameworks: Frameworks,
    threads: usize,
}

impl Launcher {
    /// A scratch directory under `frameworks.scratch` with the scripts in it, for processes of
    /// `environment` reading the model in `model`; `processes` of them share the cores.
    pub(super) fn new(
        model: &Path,
        environment: &Environment,
        frameworks: &Frameworks,
        processes: usize,
    ) -> Result<Self, ServeError> {
        std::fs::create_dir_all(&frameworks.scratch).map_err(|error| {
            ServeError::Load(format!("{}: {error}", frameworks.scratch.display()))
        })?;
        let scratch = tempfile::Builder::new()
            .prefix("worker-")
            .tempdir_in(&frameworks.scratch)
            .map_err(|error| {
                ServeError::Load(format!("a scratch directory for the worker: {error}"))
            })?;
        for (name, text) in SCRIPTS {
            let path = scratch.path().join(name);
            std::fs::write(&path, text)
                .map_err(|error| ServeError::Load(format!("{}: {error}", path.display())))?;
        }
        let reach = Reach {
            read: [
                Some(model.to_path_buf()),
                Some(environment.dir.clone()),
                environment.base.clone(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            write: vec![scratch.path().to_path_buf()],
        };
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(Self {
            python: environment.python.clone(),
            scratch,
            reach,
            frameworks: frameworks.clone(),
            threads: (cores / processes.max(1)).max(1),
        })
    }

    /// The scratch directory (scripts, home, output).
    pub(super) fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// Where a routine's packages are installed, on the processes' `PYTHONPATH`.
    pub(super) fn packages(&self) -> PathBuf {
        self.scratch.path().join("packages")
    }

    /// The environment's interpreter, confined, reaching also `read`; arguments are the caller's.
    pub(super) fn command(&self, read: &[PathBuf]) -> Result<Command, ServeError> {
        let home = self.scratch.path();
        let mut command = Command::new(&self.python);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("TMPDIR", home)
            .env("PYTHONPATH", self.packages())
            .env("PYTHONUTF8", "1")
            .env("PYTHONNOUSERSITE", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(
                ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"]
                    .map(|name| (name, self.threads.to_string())),
            )
            .current_dir(home);
        if let Some(confine) = &self.frameworks.confine {
            let mut reach = self.reach.clone();
            reach.read.extend(read.iter().cloned());
            confine(&mut command, &reach).map_err(ServeError::Load)?;
        }
        Ok(command)
    }
}
