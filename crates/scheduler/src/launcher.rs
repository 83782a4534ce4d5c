//! The per-replica launcher: what `kiln replica` does on the node an executor chose.
//!
//! 1. Reads the [`Gang`] and finds its replica: `--rank`, else Slurm's `SLURM_PROCID`.
//! 2. Holds a free port on its node's address (or the one it is given) and publishes it in the
//!    gang's directory, then waits until every replica has (the rendezvous).
//! 3. Starts the trainer with its environment plus `TF_CONFIG`, `CLUSTER_SPEC` and PyTorch's
//!    variables ([`Gang::cluster_env`]), confined by this node's [`Sandbox`] when the gang says so
//!    (a node that cannot confine refuses), in the launcher's own process group, so whatever stops
//!    the replica reaches the trainer too.
//! 4. Appends the trainer's output to the job log, line by line (stdout `INFO`, stderr `ERROR`).
//! 5. Records how the trainer ended in the gang's directory once its last lines are in the log,
//!    and exits with the trainer's status.
//!
//! The launcher leads a process group that its trainer joins. It survives the signals that stop
//! its trainer (it has to record the exit); SIGKILL stops both. A `stop` file in the gang's
//! directory makes it send the signal the file names to the group, for executors that cannot
//! signal processes on the node themselves. It needs nothing from the server, so a replica runs to its end if the server
//! dies.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::SchedulerError;
use crate::cluster::Member;
use crate::executor::{ExitReport, passed_env};
use crate::gang::Gang;
use crate::logs::JobLog;
use crate::sandbox::Sandbox;

/// Where a launcher runs and how it ends.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Its replica's rank (`SLURM_PROCID` when `None`).
    pub rank: Option<usize>,
    /// The address to listen and publish at (the node's own when `None`).
    pub host: Option<String>,
    /// Whether the replica ends with the process that started the launcher (a Ray task's
    /// worker, which Ray kills when it stops the job), rather than outliving it (the server).
    pub exit_with_parent: bool,
}

/// Runs a replica of the gang saved at `gang_file` to its end and returns the exit code to leave
/// with.
pub async fn run(gang_file: &Path, placement: Placement) -> Result<i32, SchedulerError> {
    let Placement {
        rank,
        host,
        exit_with_parent,
    } = placement;
    let dir = gang_file.parent().unwrap_or(Path::new("."));
    let gang = Gang::load(dir)?;
    // SAFETY: setpgid(2) on the calling process; failing (already a session leader) is fine.
    unsafe {
        libc::setpgid(0, 0);
    }
    let rank = match rank {
        Some(rank) => rank,
        None => std::env::var("SLURM_PROCID")
            .ok()
            .and_then(|rank| rank.parse().ok())
            .ok_or_else(|| SchedulerError::Io("no --rank and no SLURM_PROCID".into()))?,
    };
    let Some(spec) = gang.replicas.get(rank) else {
        return Err(SchedulerError::Io(format!(
            "rank {rank} is not in a gang of {}",
            gang.replicas.len()
        )));
    };
    let log = JobLog::open(&gang.log)?;
    match start_and_wait(&gang, rank, host, exit_with_parent, &log).await {
        Ok(report) => {
            let _ = gang.record_exit(rank, &report);
            Ok(report.code.unwrap_or(128 + report.signal.unwrap_or(0)))
        }
        Err(reason) => {
            log.append(&spec.task_name, "ERROR", &reason);
            let report = ExitReport {
                reason: Some(reason),
                ..ExitReport::default()
            };
            let _ = gang.record_exit(rank, &report);
            Ok(1)
        }
    }
}

/// Meets the other replicas, runs the trainer and reports how it ended; an `Err` says why the
/// trainer never started.
async fn start_and_wait(
    gang: &Gang,
    rank: usize,
    host: Option<String>,
    exit_with_parent: bool,
    log: &JobLog,
) -> Result<ExitReport, String> {
    // SAFETY: getppid(2) has no preconditions.
    let parent = unsafe { libc::getppid() };
    let spec = &gang.replicas[rank];
    let host = host.unwrap_or_else(node_address);
    let node = node_name();
    let listener = std::net::TcpListener::bind((host.as_str(), 0))
        .map_err(|error| format!("cannot hold a port on {host} (node {node}): {error}"))?;
    let port = listener
        .local_addr()
        .map_err(|error| error.to_string())?
        .port();
    gang.publish(rank, &format!("{host}:{port}"), &node)
        .map_err(|error| format!("cannot publish the replica's address: {error}"))?;
    let members = rendezvous(gang).await?;
    let cluster = gang.cluster_env(&members, rank);
    let sandbox = match gang.confine {
        true => {
            let sandbox = Sandbox::detect(&[&gang.kiln, &gang.python]);
            if !sandbox.is_on() {
                return Err(format!(
                    "node {node} cannot confine the replica (its kernel enforces no Landlock)"
                ));
            }
            sandbox
        }
        false => Sandbox::off(),
    };
    // SIGTERM and SIGINT stop the trainer (they reach the whole group); this process stays to
    // record how it ended.
    let _terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let _interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(passed_env())
        .envs(spec.env.iter().cloned())
        .envs(cluster)
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    sandbox
        .prepare(&spec.confinement)
        .map_err(|error| error.to_string())?
        .install(&mut command);
    if exit_with_parent {
        // The engine may kill this launcher outright when it stops the job: the trainer follows.
        // SAFETY: prctl(2) with integer arguments, async-signal-safe as `pre_exec` requires.
        unsafe {
            command.pre_exec(|| {
                match libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
    }
    drop(listener);
    let mut child = command.spawn().map_err(|error| {
        format!(
            "cannot start {} ({}) on node {node}: {error}",
            spec.task_name,
            spec.program.display()
        )
    })?;
    let mut pumps = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        pumps.push(pump(stdout, log.clone(), spec.task_name.clone(), "INFO"));
    }
    if let Some(stderr) = child.stderr.take() {
        pumps.push(pump(stderr, log.clone(), spec.task_name.clone(), "ERROR"));
    }
    let stop = crate::gang::stop_file(&gang.dir);
    let mut sent = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                let asked = match std::fs::read_to_string(&stop) {
                    Ok(text) if text.trim() == "SIGKILL" => Some(libc::SIGKILL),
                    Ok(_) => Some(libc::SIGTERM),
                    Err(_) => None,
                };
                if asked.is_some() && asked != sent {
                    sent = asked;
                    signal_own_group(asked.unwrap_or(libc::SIGTERM));
                }
                // SAFETY: getppid(2) has no preconditions.
                if exit_with_parent && unsafe { libc::getppid() } != parent {
                    signal_own_group(libc::SIGKILL);
                }
            }
        }
    };
    let report = ExitReport::of(status);
    // The exit is recorded once the trainer's last lines are in the log, so a failure message
    // quotes them. The bound covers a descendant that still holds the pipes.
    for pump in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
    }
    Ok(report)
}

/// Sends `signal` to this process's group (the trainer and what it started) when this process
/// leads it; the launcher itself survives SIGTERM and SIGINT.
fn signal_own_group(signal: i32) {
    // SAFETY: getpgrp(2), getpid(2) and kill(2) take and touch no memory of ours.
    unsafe {
        if libc::getpgrp() == libc::getpid() {
            libc::kill(0, signal);
        }
    }
}

/// Waits until every replica of the gang has published its address.
async fn rendezvous(gang: &Gang) -> Result<Vec<Member>, String> {
    let deadline = Instant::now() + Duration::from_secs(gang.rendezvous_seconds);
    loop {
        if let Some(members) = gang.members() {
            return Ok(members.into_iter().map(|(member, _)| member).collect());
        }
        if Instant::now() > deadline {
            let missing: Vec<&str> = (0..gang.replicas.len())
                .filter(|rank| !gang.address_file(*rank).exists())
                .map(|rank| gang.replicas[rank].task_name.as_str())
                .collect();
            return Err(format!(
                "the replicas did not all start within {} s (waiting for {})",
                gang.rendezvous_seconds,
                missing.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Copies a trainer's output stream into the job log, line by line.
fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    log: JobLog,
    task_name: String,
    severity: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.append(&task_name, severity, &line);
        }
    })
}

/// This machine's host name.
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `len` bytes into the buffer it is given.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return "localhost".into();
    }
    let end = buffer
        .iter()
        .position(|byte| *byte == 0)
        .unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// The node's name: Slurm's for it (emulated nodes share a host), else the host name.
fn node_name() -> String {
    std::env::var("SLURMD_NODENAME").unwrap_or_else(|_| host_name())
}

/// The address other nodes reach this one at: the host name's first IPv4 address.
fn node_address() -> String {
    use std::net::ToSocketAddrs;
    (host_name().as_str(), 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.find(|address| address.is_ipv4()))
        .map(|address| address.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}
