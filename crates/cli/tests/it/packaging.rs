//! Running Kiln as a service: `kiln server --config`, the shipped config file and systemd unit,
//! shell completions.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Server, kiln, kiln_binary, refused_start};

/// The line naming the locations projects may use, from a server's startup lines.
fn allowed(startup: &[String]) -> &str {
    startup
        .iter()
        .find_map(|line| line.strip_prefix("Projects may use: "))
        .unwrap_or_else(|| panic!("{startup:?}"))
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_server_takes_flags_from_a_config_file_below_flags_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|name| {
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        path.display().to_string()
    });
    let config = dir.path().join("kiln.yaml");
    std::fs::write(
        &config,
        format!("# a team's server\nallow-path:\n  - {a}\n  - {b}\ninsecure-no-auth: true\n"),
    )
    .unwrap();
    let config = config.display().to_string();

    let data = tempfile::tempdir().unwrap();
    let (_server, startup) = Server::start_with_args(data.path(), &["--config", &config], &[]);
    assert_eq!(allowed(&startup), format!("{a}, {b} and their workspace"));
    assert!(
        startup
            .iter()
            .any(|line| line.starts_with("WARNING: authentication is off")),
        "{startup:?}"
    );

    let data = tempfile::tempdir().unwrap();
    let (_server, startup) =
        Server::start_with_args(data.path(), &["--config", &config, "--allow-path", &c], &[]);
    assert_eq!(allowed(&startup), format!("{c} and their workspace"));

    let data = tempfile::tempdir().unwrap();
    let (_server, startup) = Server::start_with_args(
        data.path(),
        &["--config", &config],
        &[("KILN_ALLOW_PATHS", c.as_str())],
    );
    assert_eq!(allowed(&startup), format!("{c} and their workspace"));
}

/// `kiln server --config` with `text` as the file, expected to stop at startup: its stderr.
fn refused(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kiln.yaml");
    std::fs::write(&config, text).unwrap();
    let config = config.display().to_string();
    refused_start(&dir.path().join("data"), &["--config", &config]).replace(&config, "kiln.yaml")
}

#[test]
fn a_config_file_with_an_unknown_key_or_a_bad_value_stops_the_server_naming_the_line() {
    let unknown = refused("bind: 127.0.0.1:0\nallow-paths: [/srv]\n");
    assert!(
        unknown.contains("kiln.yaml:2: allow-paths: no such key")
            && unknown.contains("allow-path,"),
        "{unknown}"
    );
    let bad = refused("# sizes\n\nmax-batch-size: many\n");
    assert!(
        bad.contains("kiln.yaml:3: max-batch-size: invalid value 'many'"),
        "{bad}"
    );
    let flag = refused("insecure-no-auth: yes please\n");
    assert!(
        flag.contains("kiln.yaml:1: insecure-no-auth: is true or false"),
        "{flag}"
    );
    let missing = refused("tls-cert: /nonexistent/cert.pem\n");
    assert!(missing.contains("--tls-key"), "{missing}");
}

#[test]
fn the_shipped_config_file_and_systemd_unit_are_valid() {
    let config = repository().join("packaging/kiln.yaml");
    let data = tempfile::tempdir().unwrap();
    let (_server, startup) = Server::start_with_args(
        data.path(),
        &["--config", &config.display().to_string()],
        &[],
    );
    assert_eq!(allowed(&startup), "/srv/ml/{project} and their workspace");

    let unit = std::fs::read_to_string(repository().join("packaging/kiln.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/kiln server --config /etc/kiln/kiln.yaml"),
        "{unit}"
    );
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("kiln.service");
    std::fs::write(&local, unit.replace("/usr/local/bin/kiln", kiln_binary())).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .output()
        .expect("systemd-analyze (Debian's systemd) checks the unit");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn completions_load_in_bash_and_cover_the_verbs() {
    let bash = kiln(&["completions", "bash"]);
    assert!(bash.status.success());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("kiln.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p kiln", script.display()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains("_kiln"),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    for verb in ["jobs", "versions", "--tls-cert", "--filter"] {
        assert!(
            String::from_utf8_lossy(&bash.stdout).contains(verb),
            "{verb}"
        );
    }
    for shell in ["zsh", "fish"] {
        let script = kiln(&["completions", shell]);
        assert!(script.status.success());
        assert!(String::from_utf8_lossy(&script.stdout).contains("predict"));
    }
}
