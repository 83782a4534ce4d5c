//! Confining what a job's processes can reach.
//!
//! A job's code is the user's: a `containerCommand`, a Python package (and its `setup.py`, run by
//! pip), or a built-in algorithm reading user-named files. It must not reach the metadata database,
//! another project's files or the server's, nor the server's process. Each replica, and each pip
//! install, is started confined by two kernel facilities, applied in the child between `fork` and
//! `exec`:
//! - **Landlock** (Linux 5.13+, through the `landlock` crate): the process and everything it starts
//!   may read and execute the system's directories (`/usr`, `/etc` less its secrets, `/proc`, ...),
//!   the Python installation and the `kiln` binary; may read and write its job's directories and
//!   its project's allowed roots ([`Confinement`]); and nothing else. Where the kernel has
//!   Landlock ABI 6, it may neither signal nor reach through abstract UNIX sockets any process
//!   outside its sandbox (the server's among them); `ptrace` and `/proc/<pid>/mem` of such
//!   processes are denied by Landlock at any ABI.
//! - **A user namespace**, when the server runs as root: the process keeps no capability over the
//!   host (no module loading, raw devices, mounts, changing users, or kernel settings), since its
//!   capabilities hold only in a namespace of its own. `no_new_privs` is set in every case, so a
//!   set-user-id program cannot give privileges back.
//!
//! Where the kernel has no Landlock the sandbox is off ([`Sandbox::is_on`]); the server then runs
//! commands and packages only when its administrator allowed unconfined code.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetError, Scope, path_beneath_rules,
};

use crate::SchedulerError;

/// The Landlock ABI whose rights Kiln asks for; older kernels grant what they know (best effort).
const TARGET_ABI: ABI = ABI::V6;

/// System directories every confined process may read and execute.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/proc",
    "/sys",
    "/run/systemd/resolve",
];

/// Entries of `/etc` a confined process may not read: password hashes and privilege rules.
const ETC_SECRETS: &[&str] = &[
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "sudoers",
    "sudoers.d",
    "ssh",
    "ssl/private",
    "security/opasswd",
];

/// Devices a confined process may read and write (and the GPUs', found when the server starts).
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/pts",
    "/dev/shm",
];

/// What one job's processes may touch besides the system.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Confinement {
    /// Read and execute.
    pub read: Vec<PathBuf>,
    /// Read, write, create and remove beneath.
    pub write: Vec<PathBuf>,
}

/// How this machine confines job processes.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Whether the kernel enforces Landlock.
    on: bool,
    /// Whether confined processes start in a user namespace of their own (the server is root).
    user_namespace: bool,
    /// What every confined process may reach, opened once, with the rights it has there.
    shared: Arc<Vec<(PathFd, BitFlags<AccessFs>)>>,
}

impl Sandbox {
    /// The sandbox the kernel allows, letting every confined process read and execute `programs`
    /// (the `kiln` binary, the Python interpreter) and the installations they belong to.
    pub fn detect(programs: &[&Path]) -> Self {
        if !landlock_enforced() {
            return Self::off();
        }
        let mut system: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
        system.extend(etc_entries());
        for program in programs {
            system.extend(installation(program));
        }
        system.sort();
        system.dedup();
        let devices = DEVICES.iter().map(PathBuf::from).chain(accelerators());
        let shared = system
            .into_iter()
            .map(|path| (path, false))
            .chain(devices.map(|path| (path, true)))
            .filter_map(|(path, write)| {
                let access = match write {
                    true => AccessFs::from_all(TARGET_ABI),
                    false => AccessFs::from_read(TARGET_ABI),
                };
                let access = match std::fs::metadata(&path).ok()?.is_file() {
                    true => access & AccessFs::from_file(TARGET_ABI),
                    false => access,
                };
                Some((PathFd::new(&path).ok()?, access))
            })
            .collect();
        Self {
            on: true,
            // SAFETY: geteuid(2) has no preconditions.
            user_namespace: unsafe { libc::geteuid() } == 0,
            shared: Arc::new(shared),
        }
    }

    /// No confinement: processes reach what the server's user reaches.
    pub fn off() -> Self {
        Self {
            on: false,
            user_namespace: false,
            shared: Arc::new(Vec::new()),
        }
    }

    /// Whether processes are confined.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// The confinement of one process, prepared in the parent so that the child only has to make
    /// system calls (no allocation between `fork` and `exec`).
    pub fn prepare(&self, confinement: &Confinement) -> Result<Prepared, SchedulerError> {
        if !self.on {
            return Ok(Prepared::default());
        }
        let refused = |error: landlock::RulesetError| {
            SchedulerError::Io(format!("preparing the sandbox: {error}"))
        };
        let shared = self
            .shared
            .iter()
            .map(|(fd, access)| Ok::<_, RulesetError>(PathBeneath::new(fd, *access)));
        let ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(TARGET_ABI))
            .and_then(|ruleset| ruleset.scope(Scope::from_all(TARGET_ABI)))
            .and_then(|ruleset| ruleset.create())
            .and_then(|ruleset| ruleset.add_rules(shared))
            .and_then(|ruleset| {
                ruleset.add_rules(path_beneath_rules(
                    &confinement.read,
                    AccessFs::from_read(TARGET_ABI),
                ))
            })
            .and_then(|ruleset| {
                ruleset.add_rules(path_beneath_rules(
                    &confinement.write,
                    AccessFs::from_all(TARGET_ABI),
                ))
            })
            .map_err(refused)?;
        Ok(Prepared {
            ruleset: ruleset.into(),
            user_namespace: self.user_namespace,
        })
    }
}

/// One process's confinement, ready to apply in the child.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The Landlock ruleset (`None`: not confined).
    ruleset: Option<OwnedFd>,
    /// Whether to enter a user namespace of its own first (the server runs as root).
    user_namespace: bool,
}

impl Prepared {
    /// Makes `command`'s child apply this confinement before it executes its program.
    pub fn install(self, command: &mut tokio::process::Command) {
        if self.ruleset.is_none() {
            return;
        }
        // SAFETY: `apply` makes only async-signal-safe system calls on data prepared before the
        // fork, as a `pre_exec` hook must.
        unsafe {
            command.pre_exec(move || self.apply());
        }
    }

    /// The same for a synchronous `command` (framework workers, started from blocking threads).
    pub fn install_std(self, command: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        if self.ruleset.is_none() {
            return;
        }
        // SAFETY: as in `install`.
        unsafe {
            command.pre_exec(move || self.apply());
        }
    }

    /// Confines the calling process. Runs between `fork` and `exec`: system calls only.
    fn apply(&self) -> std::io::Result<()> {
        let Some(ruleset) = &self.ruleset else {
            return Ok(());
        };
        if self.user_namespace {
            enter_user_namespace()?;
        }
        // SAFETY: plain system calls with integer arguments.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// The GPU device files (`/dev/nvidia*`, `/dev/dri`), which a CUDA trainer opens.
fn accelerators() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/dev") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("nvidia") || name == "dri"
        })
        .map(|entry| entry.path())
        .collect()
}

/// Moves the calling process (root) into a new user namespace where it is root, mapped to root
/// outside: its files stay the server's, but its capabilities hold only inside.
fn enter_user_namespace() -> std::io::Result<()> {
    // SAFETY: unshare(2) on the calling, single-threaded (just forked) process.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    write_proc(c"/proc/self/setgroups", b"deny")?;
    write_proc(c"/proc/self/uid_map", b"0 0 1")?;
    write_proc(c"/proc/self/gid_map", b"0 0 1")
}

/// Writes `text` to a file of `/proc` with open/write/close only.
fn write_proc(path: &std::ffi::CStr, text: &[u8]) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated path and a buffer of the given length.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let written = libc::write(fd, text.as_ptr().cast(), text.len());
        libc::close(fd);
        if written != text.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether the kernel enforces Landlock (its ABI version answers).
fn landlock_enforced() -> bool {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only reports.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    version >= 1
}

/// The entries of `/etc` but its secrets, descending into a directory that holds one.
fn etc_entries() -> Vec<PathBuf> {
    let mut allowed = Vec::new();
    let mut pending = vec![PathBuf::from("/etc")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let relative = path.strip_prefix("/etc").unwrap_or(&path);
            if ETC_SECRETS
                .iter()
                .any(|secret| relative == Path::new(secret))
            {
                continue;
            }
            match ETC_SECRETS
                .iter()
                .any(|secret| Path::new(secret).starts_with(relative))
            {
                true => pending.push(path),
                false => allowed.push(path),
            }
        }
    }
    allowed
}

/// The installation a program belongs to: the file itself when it is not a command found on the
/// `PATH` of a directory named `bin` (or `shims`), else that directory's parent, both as given and
/// with links resolved (`/root/.pyenv/shims/python3` gives `/root/.pyenv`; a virtual environment's
/// `bin/python` gives the environment and the interpreter it links to).
fn installation(program: &Path) -> Vec<PathBuf> {
    let found = match program.is_absolute() {
        true => Some(program.to_path_buf()),
        false => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        }),
    };
    let Some(found) = found else {
        return Vec::new();
    };
    let resolved = found.canonicalize().unwrap_or_else(|_| found.clone());
    [found, resolved]
        .into_iter()
        .map(|path| {
            let dir = path.parent().filter(|dir| {
                dir.file_name()
                    .is_some_and(|name| name == "bin" || name == "shims")
            });
            match dir.and_then(Path::parent) {
                Some(prefix) if prefix != Path::new("/") => prefix.to_path_buf(),
                _ => path,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installation_is_the_prefix_above_its_bin_directory() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("env/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("python"), "").unwrap();
        let found = installation(&bin.join("python"));
        assert!(found.contains(&dir.path().join("env")), "{found:?}");
        std::fs::write(dir.path().join("tool"), "").unwrap();
        assert!(installation(&dir.path().join("tool")).contains(&dir.path().join("tool")));
        assert!(installation(Path::new("no-such-program-anywhere")).is_empty());
    }

    #[test]
    fn etc_secrets_are_left_out() {
        let entries = etc_entries();
        assert!(!entries.contains(&PathBuf::from("/etc/shadow")));
        assert!(
            !entries
                .iter()
                .any(|entry| entry.starts_with("/etc/ssl/private"))
        );
        if Path::new("/etc/passwd").exists() {
            assert!(entries.contains(&PathBuf::from("/etc/passwd")));
        }
    }
}
