//! Runtime environments: one virtual environment per runtime version, Python version and
//! framework, built on first use and reused by every version (and every server process) after.
//!
//! An environment is `<root>/<runtime>-py<python>-<framework>/`, made with the machine's
//! `python<X.Y>` (`--system-site-packages`, as the trainers' environments are: the machine's
//! packages are seen, the runtime's pinned releases installed over them) and finished by writing
//! [`MARKER`], which lists what was installed. A directory without it is a build that did not
//! finish and is built again. Builds of one environment are serialised by an exclusive `flock` on
//! `<name>.lock`, so concurrent version creates, in one process or several, build it once.
//!
//! Two more kinds live beside them: `<runtime>-py<python>-<framework>-onnx/`, the framework with
//! its ONNX converter (models are converted there, never served), and
//! `onnxruntime-<release>-py<python>/`, whose ONNX Runtime library serves ONNX models when the
//! machine has none of its own.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::runtimes::{PythonFramework, RuntimeVersion};
use crate::ServeError;

/// The file that marks an environment as complete.
pub const MARKER: &str = "kiln-runtime.json";

/// The arguments that start a non-interactive `pip install` in an interpreter.
pub(super) const PIP_INSTALL: [&str; 5] = [
    "-m",
    "pip",
    "install",
    "--no-input",
    "--disable-pip-version-check",
];

/// Lines of pip's output kept in an error.
const PIP_TAIL_LINES: usize = 12;

/// Which environment: a runtime version, one of its Python versions, a framework, and whether it
/// also holds the framework's ONNX converter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The runtime version.
    pub runtime: &'static RuntimeVersion,
    /// Its Python version.
    pub python: &'static str,
    /// The framework served.
    pub framework: PythonFramework,
    /// Whether the framework's ONNX converter is installed too.
    pub converter: bool,
}

impl Spec {
    /// The environment's directory under `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(self.name())
    }

    fn name(&self) -> String {
        format!(
            "{}-py{}-{}{}",
            self.runtime.name,
            self.python,
            self.framework.slug(),
            if self.converter { "-onnx" } else { "" }
        )
    }

    /// What it installs, or why it cannot be built.
    fn requirements(&self) -> Result<Vec<String>, ServeError> {
        match self.converter {
            false => Ok(self.runtime.requirements(self.framework)),
            true => self
                .runtime
                .converter_requirements(self.framework)
                .ok_or_else(|| {
                    ServeError::Unsupported(format!(
                        "runtime version {} has no ONNX converter for {} models; the runtime \
                         versions that convert are {}",
                        self.runtime.name,
                        self.framework.name(),
                        super::runtimes::RUNTIME_VERSIONS
                            .iter()
                            .filter(|runtime| runtime
                                .converter_requirements(self.framework)
                                .is_some())
                            .map(|runtime| runtime.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }),
        }
    }
}

/// A built environment.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Its directory.
    pub dir: PathBuf,
    /// Its interpreter.
    pub python: PathBuf,
    /// The Python installation it was made from (its interpreter and standard library), which a
    /// confined worker must also read.
    pub base: Option<PathBuf>,
}

/// The environment `spec` names under `root`, built if it is not yet.
pub fn ensure(root: &Path, spec: &Spec) -> Result<Environment, ServeError> {
    let requirements = spec.requirements()?;
    let marker = serde_json::json!({
        "runtimeVersion": spec.runtime.name,
        "pythonVersion": spec.python,
        "framework": spec.framework.name(),
        "requirements": requirements,
    });
    let what = format!("runtime version {}", spec.runtime.name);
    ensure_named(
        root,
        &spec.name(),
        spec.python,
        &what,
        &requirements,
        &marker,
    )
}

/// The environment that holds ONNX Runtime (the default runtime version's release) under `root`,
/// built if it is not yet; `None` when `root` has none and `build` is false.
pub fn onnx_runtime(root: &Path, build: bool) -> Result<Option<Environment>, ServeError> {
    let Some((name, python, requirements)) = onnx_runtime_spec() else {
        return Ok(None);
    };
    let marker = serde_json::json!({"pythonVersion": python, "requirements": requirements});
    if !build && !is_complete(&root.join(&name), &marker) {
        return Ok(None);
    }
    ensure_named(root, &name, python, "ONNX Runtime", &requirements, &marker).map(Some)
}

/// The directory of the ONNX Runtime environment under `root` (whether built or not), where a
/// runtime version ships ONNX Runtime.
pub fn onnx_runtime_dir(root: &Path) -> Option<PathBuf> {
    onnx_runtime_spec().map(|(name, _, _)| root.join(name))
}

/// The ONNX Runtime environment's name, Python version and requirements: the default runtime
/// version's release, where it has one.
fn onnx_runtime_spec() -> Option<(String, &'static str, Vec<String>)> {
    let runtime = super::runtimes::latest();
    let release = runtime.onnx?.onnxruntime;
    let python = runtime.python[0];
    Some((
        format!("onnxruntime-{release}-py{python}"),
        python,
        vec![format!("onnxruntime=={release}")],
    ))
}

/// Whether the environment in `dir` was built to `marker`.
fn is_complete(dir: &Path, marker: &serde_json::Value) -> bool {
    std::fs::read(dir.join(MARKER))
        .ok()
        .and_then(|text| serde_json::from_slice::<serde_json::Value>(&text).ok())
        .is_some_and(|found| found == *marker)
}

/// The environment `<root>/<name>`, built with `python<python>` and `requirements` (`what` they
/// are, for messages) unless its marker already equals `marker`.
fn ensure_named(
    root: &Path,
    name: &str,
    python: &str,
    what: &str,
    requirements: &[String],
    marker: &serde_json::Value,
) -> Result<Environment, ServeError> {
    let dir = root.join(name);
    let failed = |step: &str, error: &dyn std::fmt::Display| {
        ServeError::Load(format!(
            "runtime environment {}: {step}: {error}",
            dir.display()
        ))
    };
    // A built environment is only read (batch prediction replicas may not write there).
    if !is_complete(&dir, marker) {
        std::fs::create_dir_all(root).map_err(|error| failed("creating its parent", &error))?;
        let lock = File::create(root.join(format!("{name}.lock")))
            .map_err(|error| failed("creating its lock file", &error))?;
        // SAFETY: flock(2) on a descriptor this function owns; the lock ends when `lock` closes.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(failed("locking", &std::io::Error::last_os_error()));
        }
        // Another process may have built it while this one waited for the lock.
        if !is_complete(&dir, marker) {
            build(&dir, python, what, requirements)?;
            std::fs::write(dir.join(MARKER), marker.to_string())
                .map_err(|error| failed("recording it as built", &error))?;
        }
    }
    Ok(Environment {
        python: dir.join("bin").join("python"),
        base: base_installation(&dir),
        dir,
    })
}

fn build(dir: &Path, python: &str, what: &str, requirements: &[String]) -> Result<(), ServeError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|error| {
            ServeError::Load(format!(
                "removing the unfinished runtime environment {}: {error}",
                dir.display()
            ))
        })?;
    }
    let interpreter = format!("python{python}");
    let Some(interpreter) = find_program(&interpreter) else {
        return Err(ServeError::Load(format!(
            "{what} runs on Python {python}, and this machine has no {interpreter} on its PATH; \
             install it, or choose a runtime version for a Python it has"
        )));
    };
    tracing::info!(environment = %dir.display(), ?requirements, "building a runtime environment");
    run(
        Command::new(&interpreter)
            .args(["-m", "venv", "--system-site-packages"])
            .arg(dir),
        &format!(
            "creating the runtime environment with {}",
            interpreter.display()
        ),
    )?;
    run(
        Command::new(dir.join("bin").join("python"))
            .args(PIP_INSTALL)
            .arg("--quiet")
            .args(requirements),
        &format!("installing {what}'s {}", requirements.join(" ")),
    )
}

/// Runs `command` to its end; on failure, what failed with the last lines of its output.
pub(super) fn run(command: &mut Command, what: &str) -> Result<(), ServeError> {
    let output = command
        .output()
        .map_err(|error| ServeError::Load(format!("{what}: could not start: {error}")))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    Err(ServeError::Load(format!(
        "{what} failed with {}:\n{}",
        output.status,
        lines[lines.len().saturating_sub(PIP_TAIL_LINES)..].join("\n")
    )))
}

/// The first `name` on the `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The installation an environment was made from: `pyvenv.cfg`'s `home` (its `bin` directory),
/// one level up.
fn base_installation(dir: &Path) -> Option<PathBuf> {
    let config = std::fs::read_to_string(dir.join("pyvenv.cfg")).ok()?;
    let home = config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "home").then(|| PathBuf::from(value.trim()))
    })?;
    Some(home.parent().unwrap_or(&home).to_path_buf())
}
