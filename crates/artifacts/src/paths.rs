//! Where a project may read and write: the check every user-given location passes
//! (`jobDir`, `packageUris`, `deploymentUri`, and batch prediction's paths).
//!
//! A location is allowed when, after resolving symbolic links, it lies under one of the roots
//! an administrator allowed (`{project}` in a root stands for the caller's project), or under the
//! project's own workspace in the data directory. The rest of the data directory (the metadata
//! database, other projects' files, the managed artifacts) is never reachable, whatever the
//! roots say. `..` is refused outright rather than resolved, so a path means what it reads.
//!
//! Locations that do not exist yet (a new `jobDir`) are checked by resolving their deepest
//! existing ancestor. A link created later, between the check and the use, is not caught: that
//! needs trainers confined by the operating system, which the local executor does not do.

use std::path::{Component, Path, PathBuf};

use url::Url;

/// Stands for the caller's project in an allowed root.
pub const PROJECT_PLACEHOLDER: &str = "{project}";

/// The locations projects may use.
#[derive(Debug, Clone)]
pub struct PathPolicy {
    /// Allowed roots as given: absolute paths or `gs://`/`s3://` prefixes, maybe with `{project}`.
    roots: Vec<String>,
    /// The data directory, resolved.
    data_dir: PathBuf,
}

/// Name of the directory under the data directory holding each project's workspace.
pub const WORKSPACE_DIR: &str = "workspace";

impl PathPolicy {
    /// A policy allowing `roots` and each project's workspace under `data_dir`.
    pub fn new(data_dir: &Path, roots: Vec<String>) -> Self {
        Self {
            roots,
            data_dir: resolve(data_dir),
        }
    }

    /// The project's own directory, always allowed: `<data dir>/workspace/<project>`.
    pub fn workspace(&self, project: &str) -> PathBuf {
        self.data_dir.join(WORKSPACE_DIR).join(project)
    }

    /// Checks a location `project` gave in `field`. Returns what to use: a local location as its
    /// resolved absolute path, a bucket URL as given.
    pub fn check(&self, project: &str, field: &str, uri: &str) -> Result<String, String> {
        let refuse = |why: String| format!("Field: {field} Error: {uri:?} {why}");
        if uri.is_empty() {
            return Err(format!("Field: {field} Error: the location is empty"));
        }
        if uri.split(['/', '\\']).any(|segment| segment == "..") {
            return Err(refuse("must not contain '..'".into()));
        }
        let path = if uri.starts_with('/') {
            PathBuf::from(uri)
        } else {
            let url = Url::parse(uri).map_err(|_| {
                refuse("is neither an absolute path nor a URL (file://, gs://, s3://)".into())
            })?;
            if url.scheme() != "file" {
                return match self.rendered(project).any(|root| is_prefix(&root, uri)) {
                    true => Ok(uri.to_string()),
                    false => Err(refuse(self.outside(project))),
                };
            }
            url.to_file_path()
                .map_err(|_| refuse("is not a local file URL".into()))?
        };
        let resolved = resolve(&path);
        let workspace = self.workspace(project);
        let allowed = if resolved.starts_with(&self.data_dir) {
            resolved.starts_with(&workspace)
        } else {
            self.rendered(project)
                .filter(|root| root.starts_with('/'))
                .any(|root| resolved.starts_with(resolve(Path::new(&root))))
        };
        match allowed {
            true => Ok(resolved.to_string_lossy().into_owned()),
            false => Err(refuse(self.outside(project))),
        }
    }

    fn rendered<'a>(&'a self, project: &'a str) -> impl Iterator<Item = String> + 'a {
        self.roots
            .iter()
            .map(move |root| root.replace(PROJECT_PLACEHOLDER, project))
    }

    fn outside(&self, project: &str) -> String {
        let mut allowed: Vec<String> = self.rendered(project).collect();
        allowed.push(self.workspace(project).display().to_string());
        format!(
            "is outside the locations project {project:?} may use: {}",
            allowed.join(", ")
        )
    }
}

/// Whether `uri` lies under the bucket prefix `root` (whole path segments only).
fn is_prefix(root: &str, uri: &str) -> bool {
    let root = root.trim_end_matches('/');
    uri.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `path` with every symbolic link of its existing part resolved; the part that does not exist
/// yet is appended as written.
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut missing = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            return missing
                .iter()
                .rev()
                .fold(canonical, |path, part| path.join(part));
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                missing.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => {
                return path
                    .components()
                    .filter(|part| !matches!(part, Component::CurDir))
                    .collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Setup {
        _dir: tempfile::TempDir,
        root: PathBuf,
        policy: PathPolicy,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let data = root.join("data");
        std::fs::create_dir_all(data.join("workspace/p")).unwrap();
        std::fs::create_dir_all(root.join("shared/p")).unwrap();
        std::fs::create_dir_all(root.join("shared/q")).unwrap();
        std::fs::create_dir_all(root.join("secret")).unwrap();
        let policy = PathPolicy::new(
            &data,
            vec![
                format!("{}/shared/{{project}}", root.display()),
                "gs://bucket/{project}".into(),
            ],
        );
        Setup {
            _dir: dir,
            root,
            policy,
        }
    }

    #[test]
    fn own_roots_and_workspace_are_allowed() {
        let Setup {
            _dir: _guard,
            root,
            policy,
        } = setup();
        for uri in [
            format!("{}/shared/p/model", root.display()),
            format!("file://{}/shared/p/new/dir", root.display()),
            format!("{}/data/workspace/p/out", root.display()),
            "gs://bucket/p/model".into(),
        ] {
            assert!(policy.check("p", "f", &uri).is_ok(), "{uri}");
        }
        assert_eq!(
            policy
                .check("p", "f", &format!("file://{}/shared/p/x", root.display()))
                .unwrap(),
            format!("{}/shared/p/x", root.display())
        );
    }

    #[test]
    fn escapes_are_refused_with_the_field_named() {
        let Setup {
            _dir: _guard,
            root,
            policy,
        } = setup();
        std::os::unix::fs::symlink(root.join("secret"), root.join("shared/p/link")).unwrap();
        for (uri, why) in [
            (format!("{}/shared/p/../q", root.display()), "'..'"),
            (format!("{}/shared/q/model", root.display()), "outside"),
            (format!("{}/secret", root.display()), "outside"),
            (format!("{}/shared/p/link/inner", root.display()), "outside"),
            (format!("{}/data/kiln.db", root.display()), "outside"),
            (format!("{}/data/workspace/q", root.display()), "outside"),
            ("gs://bucket/q/model".into(), "outside"),
            ("gs://bucket/pp".into(), "outside"),
            ("relative/path".into(), "absolute"),
            ("/etc/passwd".into(), "outside"),
        ] {
            let error = policy
                .check("p", "training_input.job_dir", &uri)
                .unwrap_err();
            assert!(
                error.contains(why) && error.contains("training_input.job_dir"),
                "{uri}: {error}"
            );
        }
    }
}
