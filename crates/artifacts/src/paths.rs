//! Where a project may read and write: the one check every user-given location passes (`jobDir`,
//! `packageUris`, `deploymentUri`, batch prediction's paths, and the path arguments of built-in
//! algorithms).
//!
//! [`PathPolicy::check`] decodes a location first (a `file://` URL's percent escapes), then
//! judges the decoded text, so what is checked is what is used:
//! - `.` and `..` segments, empty segments, control characters and `%` in a decoded path are
//!   refused rather than interpreted, so a location means what it reads and no later decoding
//!   (an object store's) can turn it into another;
//! - symbolic links in the part that exists are resolved, and the resolved path must lie under one
//!   of the roots an administrator allowed (`{project}` in a root stands for the caller's project)
//!   or under the project's own workspace in the data directory. The rest of the data directory
//!   (the metadata database, other projects' files, the managed artifacts) is never reachable,
//!   whatever the roots say;
//! - a bucket URL (`gs://`, `s3://`) must be plain: no percent escapes or backslashes, no dot or
//!   empty segments, and under an allowed bucket root by whole segments.
//!
//! What `check` returns (the resolved path, or the bucket URL) is what callers use. A link created
//! after the check is not followed by Kiln's own copies ([`crate::ArtifactStore::import`] refuses
//! links and opens files without following them), and trainers run confined to their job's
//! directories, so a race cannot widen what a project reaches.

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
    /// The managed artifact root when it is in a bucket, which no project location may reach.
    managed: Option<String>,
}

/// Name of the directory under the data directory holding each project's workspace.
pub const WORKSPACE_DIR: &str = "workspace";

impl PathPolicy {
    /// A policy allowing `roots` and each project's workspace under `data_dir`.
    pub fn new(data_dir: &Path, roots: Vec<String>) -> Self {
        Self {
            roots,
            data_dir: resolve(data_dir),
            managed: None,
        }
    }

    /// The same policy, keeping projects out of the managed artifact root at bucket location
    /// `root` as it keeps them out of the data directory.
    pub fn managing(mut self, root: &str) -> Self {
        if crate::bucket::is_bucket(root) {
            self.managed = Some(root.trim_end_matches('/').to_string());
        }
        self
    }

    /// The project's own directory, always allowed: `<data dir>/workspace/<project>`.
    pub fn workspace(&self, project: &str) -> PathBuf {
        self.data_dir.join(WORKSPACE_DIR).join(project)
    }

    /// The local directories `project` may use, resolved: its allowed roots and its workspace.
    /// A confined trainer of the project sees these.
    pub fn local_roots(&self, project: &str) -> Vec<PathBuf> {
        self.rendered(project)
            .filter(|root| root.starts_with('/'))
            .map(|root| resolve(Path::new(&root)))
            .filter(|root| !root.starts_with(&self.data_dir))
            .chain([self.workspace(project)])
            .collect()
    }

    /// Checks a location `project` gave in `field`. Returns what to use: a local location as its
    /// resolved absolute path, a bucket URL as given.
    pub fn check(&self, project: &str, field: &str, uri: &str) -> Result<String, String> {
        let refuse = |why: &str| format!("Field: {field} Error: {uri:?} {why}");
        if uri.is_empty() {
            return Err(format!("Field: {field} Error: the location is empty"));
        }
        let path = if uri.starts_with('/') {
            PathBuf::from(uri)
        } else {
            // A URL parser resolves `%2e%2e` as `..` before anyone sees it: judge the decoded
            // segments of the text as given.
            let dots = uri.split('/').skip(3).any(|segment| {
                let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
                decoded == ".." || decoded == "."
            });
            if dots {
                return Err(refuse(
                    "must not contain '..' or '.' segments, encoded or not",
                ));
            }
            let url = Url::parse(uri).map_err(|_| {
                refuse("is neither an absolute path nor a URL (file://, gs://, s3://)")
            })?;
            if url.scheme() != "file" {
                plain_bucket_url(uri).map_err(&refuse)?;
                if let Some(managed) = &self.managed
                    && (is_prefix(managed, uri) || is_prefix(uri, managed))
                {
                    return Err(refuse(
                        "holds Kiln's managed artifacts (--artifact-root), which no project may use",
                    ));
                }
                return match self.rendered(project).any(|root| is_prefix(&root, uri)) {
                    true => Ok(uri.to_string()),
                    false => Err(refuse(&self.outside(project))),
                };
            }
            if url.host_str().is_some_and(|host| !host.is_empty()) {
                return Err(refuse(
                    "names a host; a file URL must be file:///absolute/path",
                ));
            }
            url.to_file_path()
                .map_err(|_| refuse("is not a local file URL"))?
        };
        let text = path
            .to_str()
            .ok_or_else(|| refuse("is not valid UTF-8 once decoded"))?;
        plain_path(text).map_err(&refuse)?;
        let resolved = resolve(&path);
        match self.allows(project, &resolved) {
            true => Ok(resolved.to_string_lossy().into_owned()),
            false => Err(refuse(&self.outside(project))),
        }
    }

    /// Whether the resolved local path `resolved` lies where `project` may go. Inside the data
    /// directory only the workspace counts, even under a root that holds the data directory.
    fn allows(&self, project: &str, resolved: &Path) -> bool {
        if resolved.starts_with(&self.data_dir) {
            return resolved.starts_with(self.workspace(project));
        }
        self.local_roots(project)
            .iter()
            .any(|root| resolved.starts_with(root))
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

/// Refuses what a decoded local path must not hold: anything but `/`-separated names, each neither
/// empty, `.` nor `..`, without control characters or `%`.
fn plain_path(path: &str) -> Result<(), &'static str> {
    if path.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    if path.contains('%') {
        return Err("must not contain '%' once decoded (it would be decoded again in storage)");
    }
    let segments = path.trim_start_matches('/').trim_end_matches('/');
    if segments.split('/').any(|segment| segment == "..") {
        return Err("must not contain '..'");
    }
    if segments
        .split('/')
        .any(|segment| segment == "." || segment.is_empty())
    {
        return Err("must not contain '.' or empty segments ('//')");
    }
    Ok(())
}

/// Refuses a bucket URL that another reader could understand differently: percent escapes
/// (`%2e%2e` is `..` to a URL parser), backslashes (`\..` is `/..` to one that takes them for
/// slashes, as WHATWG URL parsers do), dot and empty segments, control characters.
fn plain_bucket_url(uri: &str) -> Result<(), &'static str> {
    if uri.contains('%') {
        return Err("must not contain percent escapes");
    }
    if uri.contains('\\') {
        return Err("must not contain backslashes (some readers take them for '/')");
    }
    let Some((_, rest)) = uri.split_once("://") else {
        return Err("is not a URL");
    };
    plain_path(rest)
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
            (
                format!("file://{}/data/workspace/p/x%2F..%2F..%2Fq", root.display()),
                "'..'",
            ),
            (
                format!("file://{}/shared/p/%2e%2e/q", root.display()),
                "'..'",
            ),
            (format!("file://{}/shared/p/a%252Fb", root.display()), "'%'"),
            (format!("{}/shared/p/./x", root.display()), "'.'"),
            (format!("{}/shared/p//x", root.display()), "empty"),
            (format!("{}/shared/p/x\n", root.display()), "control"),
            (format!("file://host{}/shared/p", root.display()), "host"),
            ("gs://bucket/p/%2e%2e/q".into(), "'..'"),
            ("gs://bucket/p/a%2Fb".into(), "percent"),
            ("gs://bucket/p/../q".into(), "'..'"),
            ("gs://bucket/p/\\../q".into(), "backslashes"),
            ("gs://bucket/p//q".into(), "empty"),
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

    /// Pieces a hostile location is built from: separators, encodings of them, dots, links.
    const PIECES: &[&str] = &[
        "/",
        "//",
        ".",
        "..",
        "%2F",
        "%2f",
        "%2e",
        "%2E%2E",
        "%25",
        "%00",
        "\\",
        "p",
        "q",
        "shared",
        "data",
        "workspace",
        "secret",
        "link",
        "up",
        "flip",
        "x",
        "kiln.db",
        "*",
        "~",
        "\n",
        " ",
    ];

    /// A location built from a form (path, file URL, file URL naming localhost, bucket URL), a
    /// start inside or beside the roots, and hostile pieces.
    fn hostile() -> impl proptest::strategy::Strategy<Value = (usize, String)> {
        use proptest::prelude::*;
        (
            0..4usize,
            prop::sample::select(vec!["", "shared/p/", "data/workspace/p/", "shared/"]),
            prop::collection::vec(prop::sample::select(PIECES.to_vec()), 0..10),
        )
            .prop_map(|(form, start, pieces)| (form, format!("{start}{}", pieces.concat())))
    }

    /// Whatever is thrown at it, a location `check` accepts stays inside the project's roots once
    /// it is used: created, then resolved through every link on the way.
    #[test]
    fn no_accepted_location_leads_outside() {
        use proptest::prelude::*;
        let Setup {
            _dir: _guard,
            root,
            policy,
        } = setup();
        let shared = root.join("shared/p");
        std::os::unix::fs::symlink(root.join("secret"), shared.join("link")).unwrap();
        std::os::unix::fs::symlink("..", shared.join("up")).unwrap();
        std::os::unix::fs::symlink(root.join("data"), shared.join("data")).unwrap();
        let allowed = [shared.clone(), root.join("data/workspace/p")];
        let tried = std::sync::atomic::AtomicUsize::new(0);
        let config = ProptestConfig {
            cases: 20_000,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        proptest!(config, |((form, rest) in hostile())| {
            tried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let uri = match form {
                0 => format!("{}/{rest}", root.display()),
                1 => format!("file://{}/{rest}", root.display()),
                2 => format!("file://localhost{}/{rest}", root.display()),
                _ => format!("gs://bucket/{rest}"),
            };
            if let Ok(checked) = policy.check("p", "f", &uri) {
                if checked.starts_with("gs://") {
                    prop_assert!(checked.starts_with("gs://bucket/p/") || checked == "gs://bucket/p");
                    // `..p` is a name like any other; only a whole `.` or `..` segment climbs.
                    prop_assert!(!checked.split('/').any(|segment| segment == ".." || segment == "."));
                    prop_assert!(!checked.contains('%'));
                } else {
                    let path = PathBuf::from(&checked);
                    prop_assert!(path.is_absolute());
                    if std::fs::create_dir_all(&path).is_ok() {
                        let real = path.canonicalize().unwrap();
                        prop_assert!(allowed.iter().any(|root| real.starts_with(root)), "{uri} -> {checked} -> {}", real.display());
                    }
                }
            }
        });
        eprintln!(
            "path policy: {} hostile locations tried",
            tried.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    /// A link that comes and goes while locations are checked never makes `check` answer with a
    /// location outside the roots: each answer is resolved at the moment it is given.
    #[test]
    fn a_link_swapped_during_checks_is_never_let_through() {
        let Setup {
            _dir: _guard,
            root,
            policy,
        } = setup();
        let flip = root.join("shared/p/flip");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (flip, secret, stop) = (flip.clone(), root.join("secret"), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::fs::create_dir(&flip);
                    let _ = std::fs::remove_dir(&flip);
                    let _ = std::os::unix::fs::symlink(&secret, &flip);
                    let _ = std::fs::remove_file(&flip);
                }
            })
        };
        let uri = format!("{}/shared/p/flip/model", root.display());
        let secret = root.join("secret");
        for _ in 0..20_000 {
            if let Ok(checked) = policy.check("p", "f", &uri) {
                assert!(!Path::new(&checked).starts_with(&secret), "{checked}");
                assert!(
                    Path::new(&checked).starts_with(root.join("shared/p")),
                    "{checked}"
                );
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
    }
}
