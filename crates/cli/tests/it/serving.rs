//! The online data plane against a real server: concurrent requests batched onto one model with
//! every client getting its own answers, a full queue answering 429 RESOURCE_EXHAUSTED, and a
//! request for a version still being created waiting for it instead of failing.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{Server, call, census_instances, census_model, file_uri, wait_operation};

fn start(data: &Path, serving: &[&str]) -> Server {
    let model_root = census_model().parent().unwrap().display().to_string();
    let mut args = vec!["--insecure-no-auth", "--allow-path", &model_root];
    args.extend_from_slice(serving);
    Server::start_with_args(data, &args, &[]).0
}

fn deploy(server: &Server, version: &str) -> Value {
    let body = json!({"name": version, "deploymentUri": file_uri(census_model())}).to_string();
    let (status, operation) = call(
        "POST",
        &server.api("p", "models/census/versions"),
        Some(&body),
    );
    assert_eq!(status, 200, "{operation}");
    operation
}

/// `count` census instances with varied ages, so each has its own prediction.
fn instances(count: usize, offset: usize) -> Vec<Value> {
    let base = census_instances();
    (0..count)
        .map(|index| {
            let mut instance = base[index % base.len()].clone();
            instance["age"] = json!(18 + (offset + index) % 60);
            instance
        })
        .collect()
}

fn predict(server: &Server, instances: &[Value]) -> (u16, Value) {
    let body = json!({ "instances": instances }).to_string();
    call(
        "POST",
        &server.api("p", "models/census:predict"),
        Some(&body),
    )
}

#[test]
fn concurrent_requests_get_their_own_answers_and_a_full_queue_answers_429() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &[]);
    call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "census"}"#),
    );
    assert!(
        wait_operation(&server, "p", &deploy(&server, "v1"))
            .get("error")
            .is_none()
    );
    let expected: Vec<Value> = (0..32)
        .map(|client| predict(&server, &instances(3, client)).1["predictions"].clone())
        .collect();
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|client| {
                let server = &server;
                scope.spawn(move || predict(server, &instances(3, client)))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    for (client, (status, answer)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["predictions"], expected[client], "client {client}");
    }
    drop(server);

    // One worker, a queue of one: most of a burst is refused, the rest is answered in full.
    let data = tempfile::tempdir().unwrap();
    let server = start(
        data.path(),
        &[
            "--predict-workers",
            "1",
            "--max-queued-requests",
            "1",
            "--max-batch-size",
            "1",
        ],
    );
    call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "census"}"#),
    );
    assert!(
        wait_operation(&server, "p", &deploy(&server, "v1"))
            .get("error")
            .is_none()
    );
    let big = instances(2000, 0);
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                let (server, big) = (&server, &big);
                scope.spawn(move || predict(server, big))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 429)
        .map(|(_, a)| a)
        .collect();
    assert!(
        !refused.is_empty(),
        "24 requests at once cannot all fit a queue of 1"
    );
    assert!(refused.len() < 24, "the queue still serves");
    for answer in &refused {
        assert_eq!(answer["error"]["status"], "RESOURCE_EXHAUSTED", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("queue is full"),
            "{answer}"
        );
    }
    for (status, answer) in answers.iter().filter(|(status, _)| *status == 200) {
        assert_eq!(*status, 200);
        assert_eq!(answer["predictions"].as_array().unwrap().len(), 2000);
    }
}

#[test]
fn a_request_for_a_version_being_created_waits_for_it() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &[]);
    call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "census"}"#),
    );
    let operation = deploy(&server, "v1");
    // Sent at once: the version is CREATING (its files are being copied and loaded).
    let (_, version) = call("GET", &server.api("p", "models/census/versions/v1"), None);
    assert_eq!(version["state"], "CREATING", "{version}");
    let body = json!({ "instances": census_instances() }).to_string();
    let (status, answer) = call(
        "POST",
        &server.api("p", "models/census/versions/v1:predict"),
        Some(&body),
    );
    assert_eq!(status, 200, "held until READY: {answer}");
    assert_eq!(
        answer["predictions"].as_array().unwrap().len(),
        census_instances().len()
    );
    assert!(
        wait_operation(&server, "p", &operation)
            .get("error")
            .is_none()
    );
}
