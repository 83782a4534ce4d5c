//! The embedded default executor: every replica's launcher runs as a process group on this machine.
//!
//! A replica's id is its process group's number. Launchers write nothing to the server's pipes
//! (their own output goes to `<rank>.out` in the gang's directory), so they run on when the server
//! dies, and a restarted server watches them through the gang's files and `/proc`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::SchedulerError;
use crate::executor::{Executor, ExitReport, Pending, Replica, passed_env};
use crate::gang::Gang;

/// Runs each replica's launcher as a local process group.
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor;

/// A replica this server started: its launcher is a child of ours.
struct Started {
    child: tokio::process::Child,
    pgid: u32,
    gang: Gang,
    rank: usize,
}

/// A replica a previous server started, watched through the gang's files and `/proc`.
struct Attached {
    pgid: u32,
    gang: Gang,
    rank: usize,
}

impl Replica for Started {
    fn id(&self) -> String {
        self.pgid.to_string()
    }

    fn wait(&mut self) -> Pending<'_, ExitReport> {
        Box::pin(async move {
            let status = self.child.wait().await;
            // Children the trainer left behind go with it.
            signal_group(self.pgid, libc::SIGKILL);
            self.gang
                .exit(self.rank)
                .unwrap_or_else(|| ExitReport::of(status))
        })
    }
}

impl Replica for Attached {
    fn id(&self) -> String {
        self.pgid.to_string()
    }

    fn wait(&mut self) -> Pending<'_, ExitReport> {
        Box::pin(async move {
            loop {
                if let Some(report) = self.gang.exit(self.rank) {
                    return report;
                }
                if !runs_job(self.pgid, &self.gang.job_id) {
                    // The launcher may have recorded the exit just before it left.
                    return self.gang.exit(self.rank).unwrap_or(ExitReport {
                        reason: Some(
                            "ended without recording its exit (its launcher was killed)".into(),
                        ),
                        ..ExitReport::default()
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }
}

impl Executor for LocalExecutor {
    fn launch<'a>(
        &'a self,
        gang: &'a Gang,
    ) -> Pending<'a, Result<Vec<Box<dyn Replica>>, SchedulerError>> {
        Box::pin(async move {
            let file = gang.save()?;
            let mut started: Vec<Box<dyn Replica>> = Vec::new();
            let mut groups = Vec::new();
            for rank in 0..gang.replicas.len() {
                match spawn(gang, &file, rank) {
                    Ok(child) => {
                        let pgid = child.id().unwrap_or_default();
                        groups.push(pgid);
                        started.push(Box::new(Started {
                            child,
                            pgid,
                            gang: gang.clone(),
                            rank,
                        }));
                    }
                    Err(error) => {
                        for pgid in groups {
                            signal_group(pgid, libc::SIGKILL);
                        }
                        return Err(error);
                    }
                }
            }
            Ok(started)
        })
    }

    fn attach(&self, gang: &Gang, ids: &[String]) -> Vec<Box<dyn Replica>> {
        ids.iter()
            .enumerate()
            .map(|(rank, id)| {
                Box::new(Attached {
                    pgid: process_group(id),
                    gang: gang.clone(),
                    rank,
                }) as Box<dyn Replica>
            })
            .collect()
    }

    fn terminate(&self, id: &str) {
        signal_group(process_group(id), libc::SIGTERM);
    }

    fn kill(&self, id: &str) {
        signal_group(process_group(id), libc::SIGKILL);
    }

    fn reclaim(&self, id: &str, job_id: &str) {
        let id = process_group(id);
        if runs_job(id, job_id) {
            signal_group(id, libc::SIGKILL);
        }
    }
}

/// Starts the launcher of replica `rank` in a process group of its own, with the server's
/// environment withheld.
fn spawn(gang: &Gang, file: &Path, rank: usize) -> Result<tokio::process::Child, SchedulerError> {
    let task_name = &gang.replicas[rank].task_name;
    let output = gang.dir.join(format!("{rank}.out"));
    let io = |error: std::io::Error| {
        SchedulerError::Io(format!("cannot start the launcher of {task_name}: {error}"))
    };
    let out = std::fs::File::create(&output).map_err(io)?;
    let err = out.try_clone().map_err(io)?;
    tokio::process::Command::new(&gang.kiln)
        .arg("replica")
        .arg("--gang")
        .arg(file)
        .args(["--rank", &rank.to_string(), "--host", "127.0.0.1"])
        .env_clear()
        .envs(passed_env())
        .env("CLOUD_ML_JOB_ID", &gang.job_id)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(io)
}

/// Whether process group `pgid` still runs and belongs to `job_id`: its leader is alive (not a
/// zombie) and its environment names the job (every launcher's and trainer's does).
fn runs_job(pgid: u32, job_id: &str) -> bool {
    if pgid == 0 {
        return false;
    }
    let alive = std::fs::read_to_string(format!("/proc/{pgid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may itself hold spaces.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    });
    let marker = format!("CLOUD_ML_JOB_ID={job_id}");
    alive
        && std::fs::read(format!("/proc/{pgid}/environ")).is_ok_and(|environ| {
            environ
                .split(|byte| *byte == 0)
                .any(|entry| entry == marker.as_bytes())
        })
}

/// The process group a replica id names (0, which signals nothing, for an id not ours).
fn process_group(id: &str) -> u32 {
    id.parse().unwrap_or(0)
}

/// Sends `signal` to a process group; a group that is gone already is fine.
fn signal_group(pgid: u32, signal: i32) {
    if pgid == 0 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory of ours.
    unsafe {
        libc::kill(-(pgid as i32), signal);
    }
}
