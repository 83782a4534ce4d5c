//! A killed server loses nothing; a terminated one stops gracefully.

use serde_json::json;

use crate::support::{Server, call, census_instances, census_model, file_uri, wait_operation};

#[test]
fn sigkill_and_restart_keeps_models_versions_and_operations() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "census"}"#),
    );
    let body = json!({"name": "v1", "deploymentUri": file_uri(census_model())}).to_string();
    let (_, operation) = call(
        "POST",
        &server.api("p", "models/census/versions"),
        Some(&body),
    );
    wait_operation(&server, "p", &operation);
    let predict = json!({"instances": census_instances()}).to_string();
    let (_, before) = call(
        "POST",
        &server.api("p", "models/census:predict"),
        Some(&predict),
    );
    let (_, model_before) = call("GET", &server.api("p", "models/census"), None);
    let (_, operations_before) = call("GET", &server.api("p", "operations"), None);
    server.kill();

    let server = Server::start(data.path());
    let (_, model_after) = call("GET", &server.api("p", "models/census"), None);
    assert_eq!(model_after, model_before);
    let (_, operations_after) = call("GET", &server.api("p", "operations"), None);
    assert_eq!(operations_after, operations_before);
    let (status, after) = call(
        "POST",
        &server.api("p", "models/census:predict"),
        Some(&predict),
    );
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        after, before,
        "the restarted server loads the stored version and predicts the same"
    );
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (status, _) = call("GET", &format!("{}/healthz", server.url), None);
    assert_eq!(status, 200);
    assert!(server.terminate().success());
}
