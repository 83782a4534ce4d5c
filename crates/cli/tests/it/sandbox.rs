//! A job's processes reach their job's directories and their project's, and nothing else: not the
//! metadata database, not another project's workspace, not the server's files or process.

use std::path::Path;

use serde_json::json;

use crate::jobs::{ended, wait_job};
use crate::support::{Server, call};

/// The shell lines of a trainer that tries each forbidden thing and prints `DENIED name` or
/// `LEAKED name`, then does its normal work (a Python step writing to its job directory).
fn probe_script(data: &Path, outside: &Path, server_pid: u32, job_dir: &Path) -> String {
    let try_read = |name: &str, path: &Path| {
        format!(
            "if cat '{}' > /dev/null 2>&1; then echo LEAKED {name}; else echo DENIED {name}; fi",
            path.display()
        )
    };
    let try_write = |name: &str, path: &Path| {
        format!(
            "if echo x > '{}' 2> /dev/null; then echo LEAKED {name}; else echo DENIED {name}; fi",
            path.display()
        )
    };
    [
        try_read("database", &data.join("kiln.db")),
        try_read("other-workspace", &data.join("workspace/q/secret.txt")),
        try_write("other-workspace-write", &data.join("workspace/q/planted.txt")),
        try_read("server-file", &outside.join("server-secret.txt")),
        try_read("shadow", Path::new("/etc/shadow")),
        format!(
            "if ls '{}' > /dev/null 2>&1; then echo LEAKED workspace-list; else echo DENIED workspace-list; fi",
            data.join("workspace").display()
        ),
        format!(
            "if kill -0 {server_pid} 2> /dev/null; then echo LEAKED signal; else echo DENIED signal; fi"
        ),
        format!(
            "python3 -c \"import json, sys; open(sys.argv[1], 'w').write(json.dumps({{'ok': 1}}))\" '{}/written.json'",
            job_dir.display()
        ),
        "echo home=$HOME tmp=$TMPDIR".into(),
    ]
    .join("\n")
}

#[test]
fn a_trainer_cannot_read_the_database_other_projects_or_the_server_but_still_trains() {
    let data = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let roots = format!("{}/{{project}}", work.path().display());
    let (server, startup) = Server::start_with_args(
        data.path(),
        &["--insecure-no-auth", "--allow-path", &roots],
        &[],
    );
    let data = data.path().canonicalize().unwrap();
    std::fs::create_dir_all(data.join("workspace/q")).unwrap();
    std::fs::write(data.join("workspace/q/secret.txt"), "q's data").unwrap();
    std::fs::write(outside.path().join("server-secret.txt"), "secret").unwrap();
    let job_dir = work.path().canonicalize().unwrap().join("p/probe");
    let script = probe_script(&data, outside.path(), server.pid(), &job_dir);
    let body = json!({"jobId": "probe", "trainingInput": {
        "masterConfig": {"containerCommand": ["sh", "-c", script]},
        "jobDir": job_dir.display().to_string(),
    }});
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body.to_string()));
    if startup.iter().any(|line| line.contains("NOT confined")) {
        // Without Landlock, user code is refused rather than run with the server's privileges.
        assert_eq!(status, 400, "{job}");
        assert!(job.to_string().contains("--allow-unconfined-code"), "{job}");
        return;
    }
    assert!(
        startup
            .iter()
            .any(|line| line.contains("confined (Landlock")),
        "{startup:?}"
    );
    assert_eq!(status, 200, "{job}");
    let job = wait_job(&server, "p", "probe", ended);
    let (_, logs) = call("GET", &server.api("p", "jobs/probe/logs"), None);
    let lines: Vec<String> = logs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(job["state"], "SUCCEEDED", "{job} {lines:?}");
    for name in [
        "database",
        "other-workspace",
        "other-workspace-write",
        "server-file",
        "shadow",
        "workspace-list",
        "signal",
    ] {
        assert!(
            lines.contains(&format!("DENIED {name}")),
            "{name} was not denied: {lines:?}"
        );
    }
    assert!(
        !lines.iter().any(|line| line.starts_with("LEAKED")),
        "{lines:?}"
    );
    assert!(!data.join("workspace/q/planted.txt").exists());
    assert_eq!(
        std::fs::read_to_string(job_dir.join("written.json")).unwrap(),
        r#"{"ok": 1}"#
    );
    let home = data.join("jobs/projects/p/probe");
    assert!(
        lines.contains(&format!(
            "home={} tmp={}/tmp",
            home.display(),
            home.display()
        )),
        "{lines:?}"
    );
}

#[test]
fn unconfined_user_code_needs_the_administrators_word() {
    let data = tempfile::tempdir().unwrap();
    let body =
        json!({"jobId": "cmd", "trainingInput": {"masterConfig": {"containerCommand": ["true"]}}})
            .to_string();
    let (server, startup) = Server::start_with_args(
        data.path(),
        &["--insecure-no-auth", "--sandbox", "off"],
        &[],
    );
    assert!(
        startup.iter().any(|line| line.contains("NOT confined")),
        "{startup:?}"
    );
    let (status, error) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 400, "{error}");
    assert!(
        error.to_string().contains("--allow-unconfined-code"),
        "{error}"
    );
    drop(server);
    let (server, _) = Server::start_with_args(
        data.path(),
        &[
            "--insecure-no-auth",
            "--sandbox",
            "off",
            "--allow-unconfined-code",
        ],
        &[],
    );
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    assert_eq!(wait_job(&server, "p", "cmd", ended)["state"], "SUCCEEDED");
}
