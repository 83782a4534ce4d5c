//! HTTPS: `kiln server --tls-cert --tls-key`, and the CLI trusting a private authority with
//! `--ca-file`; certificates the client must refuse; files the server must refuse at startup; the
//! warning of a plain-HTTP server other machines can reach.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

use crate::auth::token_in;
use crate::support::{Server, kiln_binary, refused_start};

/// A private certificate authority and the files a server and its clients are given.
struct Authority {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// A new authority; its certificate is `ca.pem`.
    fn new() -> Authority {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Kiln test authority");
        let certificate = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), certificate.pem()).unwrap();
        Authority {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for 127.0.0.1 and localhost, valid from `from` to `until` (years),
    /// written as `{name}.pem` and `{name}.key`.
    fn server(&self, name: &str, from: i32, until: i32) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let (cert, private) = (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&cert, certificate.pem()).unwrap();
        std::fs::write(&private, key.serialize_pem()).unwrap();
        (cert, private)
    }
}

/// A server on HTTPS with authentication on; its administrator token.
fn https_server(data_dir: &Path, cert: &Path, key: &Path) -> (Server, String) {
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let (server, startup) =
        Server::start_with_args(data_dir, &["--tls-cert", &cert, "--tls-key", &key], &[]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let token = token_in(&startup).expect("the first start prints a token");
    (server, token)
}

/// `kiln --endpoint {url} args`, with `token` and a config file of the test's own.
fn cli(url: &str, token: Option<&str>, config: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(kiln_binary());
    command
        .args(["--project", "p", "--endpoint", url])
        .args(args)
        .env("KILN_CONFIG", config)
        .env_remove("KILN_TOKEN")
        .env_remove("KILN_CA_FILE");
    if let Some(token) = token {
        command.env("KILN_TOKEN", token);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_cli_reaches_an_https_server_through_the_authority_it_is_given() {
    let authority = Authority::new();
    let (cert, key) = authority.server("server", 2020, 2100);
    let data = tempfile::tempdir().unwrap();
    let (server, token) = https_server(data.path(), &cert, &key);
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.yaml");
    let ca = authority.ca().display().to_string();

    let created = cli(
        &server.url,
        Some(&token),
        &config,
        &["--ca-file", &ca, "models", "create", "census"],
    );
    assert!(created.status.success(), "{}", stderr(&created));

    let refused = cli(&server.url, Some(&token), &config, &["models", "list"]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("TLS certificate was refused") && message.contains("--ca-file"),
        "a client that does not trust the authority says so and what to do: {message}"
    );

    let login = cli(
        &server.url,
        None,
        &config,
        &["--ca-file", &ca, "auth", "login", "--token", &token],
    );
    assert!(login.status.success(), "{}", stderr(&login));
    let listed = cli(
        &server.url,
        None,
        &config,
        &["models", "list", "--format", "value(name)"],
    );
    assert!(
        listed.status.success(),
        "the login saved the authority with the endpoint: {}",
        stderr(&listed)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("census"));

    let plain = server.url.replacen("https://", "http://", 1);
    let cleartext = cli(&plain, Some(&token), &config, &["models", "list"]);
    assert!(
        !cleartext.status.success(),
        "the HTTPS port answers no plain HTTP"
    );
}

#[test]
fn the_cli_names_what_is_wrong_with_a_certificate() {
    let authority = Authority::new();
    let (cert, key) = authority.server("expired", 2020, 2021);
    let data = tempfile::tempdir().unwrap();
    let (server, token) = https_server(data.path(), &cert, &key);
    let home = tempfile::tempdir().unwrap();
    let ca = authority.ca().display().to_string();
    let expired = cli(
        &server.url,
        Some(&token),
        &home.path().join("config.yaml"),
        &["--ca-file", &ca, "models", "list"],
    );
    assert!(!expired.status.success());
    let message = stderr(&expired);
    assert!(
        message.contains("TLS certificate was refused") && message.contains("expired"),
        "{message}"
    );

    let missing = home.path().join("missing.pem").display().to_string();
    let unreadable = cli(
        &server.url,
        Some(&token),
        &home.path().join("config.yaml"),
        &["--ca-file", &missing, "models", "list"],
    );
    assert!(
        stderr(&unreadable).contains(&format!("--ca-file {missing}")),
        "{}",
        stderr(&unreadable)
    );
}

#[test]
fn the_server_refuses_certificate_files_it_cannot_use_naming_them() {
    let authority = Authority::new();
    let (cert, key) = authority.server("one", 2020, 2100);
    let (_, other_key) = authority.server("two", 2020, 2100);
    let data = tempfile::tempdir().unwrap();
    let (cert, key, other_key) = (
        cert.display().to_string(),
        key.display().to_string(),
        other_key.display().to_string(),
    );

    let message = refused_start(data.path(), &["--tls-cert", &cert]);
    assert!(message.contains("--tls-key"), "{message}");

    let message = refused_start(data.path(), &["--tls-cert", &key, "--tls-key", &key]);
    assert!(
        message.contains(&format!("--tls-cert {key}")) && message.contains("no PEM certificate"),
        "{message}"
    );
    let message = refused_start(data.path(), &["--tls-cert", &cert, "--tls-key", &cert]);
    assert!(
        message.contains(&format!("--tls-key {cert}")) && message.contains("private key"),
        "{message}"
    );
    let message = refused_start(data.path(), &["--tls-cert", &cert, "--tls-key", &other_key]);
    assert!(
        message.contains(&format!("--tls-cert {cert} and --tls-key {other_key}")),
        "{message}"
    );
}

/// The lines `kiln server` prints at startup, up to the one naming the allowed locations.
fn startup_lines(args: &[&str]) -> Vec<String> {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(kiln_binary())
        .arg("server")
        .args(args)
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("KILN_DATABASE")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Projects may use");
        lines.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    lines
}

#[test]
fn plain_http_that_other_machines_reach_is_called_a_risk() {
    let warning = |lines: &[String]| {
        lines
            .iter()
            .any(|line| line.starts_with("WARNING: plain HTTP"))
    };
    let open = startup_lines(&["--bind", "0.0.0.0:0"]);
    assert!(warning(&open), "{open:?}");
    let loopback = startup_lines(&["--bind", "127.0.0.1:0"]);
    assert!(!warning(&loopback), "{loopback:?}");

    let authority = Authority::new();
    let (cert, key) = authority.server("server", 2020, 2100);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let encrypted = startup_lines(&[
        "--bind",
        "0.0.0.0:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    assert!(!warning(&encrypted), "{encrypted:?}");
    assert!(encrypted[0].contains("https://"), "{encrypted:?}");
}
