//! The online data plane against a real server: concurrent requests batched onto one model with
//! every client getting its own answers, a full queue answering 429 RESOURCE_EXHAUSTED, and a
//! request for a version still being created waiting for it instead of failing.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{
    Server, call, census_instances, census_model, census_variants, file_uri, metrics,
    wait_operation,
};

fn start(data: &Path, serving: &[&str]) -> Server {
    Server::start_serving(data, None, serving)
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
    server.deploy_census();
    let expected: Vec<Value> = (0..32)
        .map(|client| predict(&server, &census_variants(3, client)).1["predictions"].clone())
        .collect();
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|client| {
                let server = &server;
                scope.spawn(move || predict(server, &census_variants(3, client)))
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

    // One worker, a queue of one: most of a burst is refused, the rest is answered in full (by
    // one HTTP thread).
    let data = tempfile::tempdir().unwrap();
    let server = start(
        data.path(),
        &[
            "--http-threads",
            "1",
            "--predict-workers",
            "1",
            "--max-queued-requests",
            "1",
            "--max-batch-size",
            "1",
        ],
    );
    server.deploy_census();
    let big = census_variants(2000, 0);
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
    let counters = metrics(&server);
    let v1 = "{version=\"projects/p/models/census/versions/v1\"}";
    assert!(
        counters.contains(&format!(
            "kiln_predict_rejected_total{v1} {}",
            refused.len()
        )),
        "{counters}"
    );
    assert!(
        counters.contains(&format!(
            "kiln_predict_requests_total{v1} {}",
            24 - refused.len()
        )),
        "{counters}"
    );
    assert!(
        counters.contains(&format!("kiln_predict_workers_awake{v1} 1")),
        "{counters}"
    );
    assert!(
        counters.contains(&format!(
            "kiln_predict_duration_seconds_count{v1} {}",
            24 - refused.len()
        )),
        "every answered request is timed: {counters}"
    );
}

#[test]
fn versions_that_scale_to_zero_unload_when_idle_and_load_again_on_demand() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &["--scale-to-zero-after-seconds", "1"]);
    call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "census"}"#),
    );
    let body = json!({"name": "v1", "deploymentUri": file_uri(census_model()), "autoScaling": {"minNodes": 0}});
    let (_, operation) = call(
        "POST",
        &server.api("p", "models/census/versions"),
        Some(&body.to_string()),
    );
    assert!(
        wait_operation(&server, "p", &operation)
            .get("error")
            .is_none()
    );
    assert!(
        wait_operation(&server, "p", &deploy(&server, "v2"))
            .get("error")
            .is_none()
    );
    let body = json!({ "instances": census_instances() }).to_string();
    for version in ["v1", "v2"] {
        let url = server.api("p", &format!("models/census/versions/{version}:predict"));
        assert_eq!(call("POST", &url, Some(&body)).0, 200);
    }
    assert!(metrics(&server).contains("kiln_versions_loaded 2"));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let counters = metrics(&server);
    assert!(counters.contains("kiln_versions_loaded 1"), "{counters}");
    assert!(
        !counters.contains("versions/v1\"}"),
        "v1 unloaded: {counters}"
    );
    assert!(
        counters.contains("versions/v2\"}"),
        "v2 stays warm: {counters}"
    );
    let url = server.api("p", "models/census/versions/v1:predict");
    let (status, answer) = call("POST", &url, Some(&body));
    assert_eq!(status, 200, "loaded again: {answer}");
    assert!(metrics(&server).contains("kiln_versions_loaded 2"));
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
    let body = json!({ "instances": census_instances() }).to_string();
    let url = server.api("p", "models/census/versions/v1:predict");
    // A client hammers the version from before it exists until it answers: while it is being
    // created (files copied, model loaded) requests are held, never refused as not READY.
    let answers = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            let mut seen = Vec::new();
            loop {
                let (status, answer) = call("POST", &url, Some(&body));
                seen.push((status, answer.clone()));
                if status == 200 || seen.len() > 2000 {
                    return seen;
                }
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        let operation = deploy(&server, "v1");
        assert!(
            wait_operation(&server, "p", &operation)
                .get("error")
                .is_none()
        );
        client.join().unwrap()
    });
    let (last_status, last) = answers.last().unwrap();
    assert_eq!(*last_status, 200, "{last}");
    assert_eq!(
        last["predictions"].as_array().unwrap().len(),
        census_instances().len()
    );
    for (status, answer) in &answers[..answers.len() - 1] {
        assert_eq!(
            *status, 404,
            "only 'not found' before the version exists: {answer}"
        );
    }
}

#[test]
fn the_queue_counts_bytes_and_its_refusals_say_when_to_retry() {
    let data = tempfile::tempdir().unwrap();
    let server = start(
        data.path(),
        &[
            "--predict-workers",
            "1",
            "--max-queued-bytes",
            "1000",
            "--max-batch-size",
            "1",
        ],
    );
    server.deploy_census();
    let body = json!({ "instances": census_variants(2000, 0) }).to_string();
    let url = server.api("p", "models/census:predict");
    let answers: Vec<(u16, Option<String>, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (url, body) = (&url, &body);
                scope.spawn(move || {
                    let response = reqwest::blocking::Client::new()
                        .post(url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .unwrap();
                    let retry = response
                        .headers()
                        .get("retry-after")
                        .map(|value| value.to_str().unwrap().to_string());
                    (response.status().as_u16(), retry, response.json().unwrap())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, ..)| *status == 429)
        .collect();
    assert!(
        !refused.is_empty(),
        "8 requests of 2000 instances exceed 1000 bytes at once"
    );
    assert!(refused.len() < 8, "a request alone is always taken");
    for (_, retry, answer) in refused {
        assert_eq!(retry.as_deref(), Some("1"), "{answer}");
        assert!(answer.to_string().contains("at most 1000"), "{answer}");
    }
}
