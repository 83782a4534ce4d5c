//! What an operator watches: the access log (text and JSON lines), `/v1/metrics` with its
//! dedicated token, and `/readyz`.

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::auth::token_in;
use crate::support::{Server, call, call_as};

/// A server with authentication on and `args`, its log written to `log`; its administrator token.
fn logged_server(data: &Path, log: &Path, args: &[&str]) -> (Server, String) {
    let (server, startup) = Server::start_with_stderr(
        data,
        args,
        &[("RUST_LOG", "info")],
        Stdio::from(File::create(log).unwrap()),
    );
    (
        server,
        token_in(&startup).expect("the first start prints a token"),
    )
}

/// The log's lines once one satisfies `found`, within ten seconds.
fn log_lines(log: &Path, found: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.iter().any(|line| found(line)) {
            return lines;
        }
        assert!(Instant::now() < deadline, "{}", lines.join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_request_is_logged_as_a_json_line_with_its_caller() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("server.log");
    let (server, admin) = logged_server(&data.path().join("data"), &log, &["--log-format", "json"]);
    let models = server.api("p", "models?pageSize=5");
    assert_eq!(call_as(Some(&admin), "GET", &models, None).0, 200);
    assert_eq!(call("GET", &models, None).0, 401);
    assert_eq!(
        call("GET", &format!("{}/v1/nowhere", server.url), None).0,
        404
    );

    let lines = log_lines(&log, |line| line.contains("/v1/nowhere"));
    let access: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("{line}")))
        .filter(|event| event["target"] == "kiln::access")
        .collect();
    let listed: Vec<&Value> = access
        .iter()
        .filter(|event| event["path"] == "/v1/projects/p/models")
        .collect();
    assert_eq!(listed.len(), 2, "{access:?}");
    assert_eq!(listed[0]["method"], "GET");
    assert_eq!(listed[0]["status"], 200);
    assert_eq!(listed[0]["route"], "projects.models.list");
    assert!(
        listed[0]["caller"]
            .as_str()
            .is_some_and(|caller| caller.starts_with("serviceAccount:")),
        "{}",
        listed[0]
    );
    assert!(listed[0]["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert_eq!(listed[1]["status"], 401);
    assert_eq!(listed[1]["caller"], "-", "a refused token names nobody");
    assert!(
        access
            .iter()
            .any(|event| event["path"] == "/v1/nowhere" && event["status"] == 404),
        "{access:?}"
    );
    assert!(
        !lines.iter().any(|line| line.contains("pageSize")),
        "the query string stays out of the log"
    );
}

#[test]
fn the_text_log_names_the_same_fields() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("server.log");
    let (server, _) = logged_server(&data.path().join("data"), &log, &[]);
    assert_eq!(call("GET", &format!("{}/healthz", server.url), None).0, 200);
    let lines = log_lines(&log, |line| line.contains("path=/healthz"));
    let line = lines
        .iter()
        .find(|line| line.contains("path=/healthz"))
        .unwrap();
    for field in [
        "kiln::access",
        "method=GET",
        "status=200",
        "route=\"/healthz\"",
        "latency_ms=",
    ] {
        assert!(line.contains(field), "{field}: {line}");
    }
}

#[test]
fn the_metrics_token_reads_the_metrics_and_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let token_file = data.path().join("metrics-token");
    let token = "scrape-0123456789abcdef";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let (server, admin) = logged_server(
        &data.path().join("data"),
        &data.path().join("server.log"),
        &["--metrics-token-file", &token_file.display().to_string()],
    );
    let models = server.api("p", "models");
    assert_eq!(call_as(Some(&admin), "GET", &models, None).0, 200);
    assert_eq!(call_as(Some(token), "GET", &models, None).0, 401);

    let metrics = format!("{}/v1/metrics", server.url);
    assert_eq!(call("GET", &metrics, None).0, 401);
    assert_eq!(
        call_as(Some("scrape-0123456789abcdeX"), "GET", &metrics, None).0,
        401
    );
    let (status, text) = call_as(Some(token), "GET", &metrics, None);
    assert_eq!(status, 200, "{text}");
    let text = text.as_str().unwrap().to_string();
    for line in [
        "kiln_http_requests_total{route=\"projects.models.list\",status=\"200\"} 1",
        "kiln_http_requests_total{route=\"projects.models.list\",status=\"401\"} 1",
        "kiln_http_request_duration_seconds_count{route=\"projects.models.list\"} 2",
        "kiln_http_request_duration_seconds_bucket{route=\"projects.models.list\",le=\"+Inf\"} 2",
        "kiln_jobs{state=\"QUEUED\"} 0",
        "kiln_jobs{state=\"RUNNING\"} 0",
        "kiln_versions_loaded 0",
    ] {
        assert!(text.lines().any(|got| got == line), "{line}\n{text}");
    }
    let (status, _) = call_as(Some(&admin), "GET", &metrics, None);
    assert_eq!(status, 200, "administrators read the metrics too");
}

#[test]
fn a_short_metrics_token_is_refused_at_startup() {
    let data = tempfile::tempdir().unwrap();
    let token_file = data.path().join("metrics-token");
    std::fs::write(&token_file, "short\n").unwrap();
    let token_file = token_file.display().to_string();
    let stderr = crate::support::refused_start(
        &data.path().join("data"),
        &["--metrics-token-file", &token_file],
    );
    assert!(
        stderr.contains("--metrics-token-file") && stderr.contains("16"),
        "{stderr}"
    );
}

#[test]
fn readiness_reports_the_store_and_the_loaded_versions() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_serving(data.path(), None, &[]);
    let ready = format!("{}/readyz", server.url);
    let (status, body) = call("GET", &ready, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store"], "ok");
    assert_eq!(body["loadedVersions"], 0);
    server.deploy_census();
    let (status, _) =
        crate::support::predict_model(&server, "census", &crate::support::census_instances());
    assert_eq!(status, 200);
    let (_, body) = call("GET", &ready, None);
    assert_eq!(body["loadedVersions"], 1, "{body}");
    let text = crate::support::metrics(&server);
    let version = "version=\"projects/p/models/census/versions/v1\"";
    assert!(
        text.contains(&format!(
            "kiln_predict_duration_seconds_count{{{version}}} 1"
        )),
        "{text}"
    );
}
