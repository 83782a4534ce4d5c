//! Watches over HTTP: the jobs list and a job followed from their server-sent events until the
//! job ends, its log lines each sent once; the models list, a model's versions and a study's
//! trials changing under a watch; watches refused before any stream starts, and one that ends at
//! its `timeoutSeconds`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::jobs::{python_job, trainer_package};
use crate::support::{Events, Server, call, census_model, file_uri, wait_operation, watch_as};

fn watch(url: &str) -> Events {
    watch_as(None, url).unwrap_or_else(|(status, body)| panic!("{url}: {status} {body}"))
}

/// The next event, which must be `name`.
fn next(events: &mut Events, name: &str) -> Value {
    let (event, data) = events.next().expect("the stream ended");
    assert_eq!(event, name, "{data}");
    data
}

#[test]
fn a_job_is_followed_from_its_watch_until_it_ends() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let list = watch(&server.api("p", "jobs:watch?timeoutSeconds=60"));
    let mut list = list.map(|(name, data)| {
        assert_eq!(name, "jobs");
        data["jobs"].as_array().cloned().unwrap_or_default()
    });
    assert_eq!(list.next(), Some(vec![]), "an empty list first");

    let package = trainer_package(work.path());
    let body = python_job(
        "watched",
        &package,
        &work.path().join("out"),
        &["--sleep", "1"],
        json!({}),
    );
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");

    // The job's watch sends each log line once and the job as it changes, and ends with the job.
    let mut lines = Vec::new();
    let mut states = Vec::new();
    for (name, data) in watch(&server.api("p", "jobs/watched:watch")) {
        match name.as_str() {
            "logs" => lines.extend(
                data["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|entry| entry["message"].as_str().unwrap().to_string()),
            ),
            "job" => states.push(data["state"].as_str().unwrap().to_string()),
            "metrics" => assert!(data["series"].is_array(), "{data}"),
            other => panic!("unexpected event {other}: {data}"),
        }
    }
    assert_eq!(
        states.last().map(String::as_str),
        Some("SUCCEEDED"),
        "{states:?}"
    );
    for expected in ["hello from master-0", "done master-0"] {
        assert_eq!(
            lines.iter().filter(|line| line.contains(expected)).count(),
            1,
            "{lines:?}"
        );
    }
    // From a later line on, only what follows is sent.
    let skip = lines.len() - 1;
    let rest: Vec<Value> = watch(&server.api("p", &format!("jobs/watched:watch?pageToken={skip}")))
        .filter(|(name, _)| name == "logs")
        .flat_map(|(_, data)| data["entries"].as_array().unwrap().clone())
        .collect();
    assert_eq!(rest.len(), 1, "{rest:?}");

    // The list's watch saw the job appear and finish, without being asked again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    for jobs in list.by_ref() {
        if let Some(job) = jobs.first() {
            seen.push(job["state"].as_str().unwrap().to_string());
        }
        if seen.last().map(String::as_str) == Some("SUCCEEDED") || Instant::now() > deadline {
            break;
        }
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("SUCCEEDED"),
        "{seen:?}"
    );
}

#[test]
fn lists_and_trials_are_sent_again_when_they_change() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_serving(data.path(), None, &[]);
    let mut models = watch(&server.api("p", "models:watch"));
    assert_eq!(next(&mut models, "models"), json!({}));
    call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "census"}"#),
    );
    assert_eq!(
        next(&mut models, "models")["models"][0]["name"],
        "projects/p/models/census"
    );

    let mut versions = watch(&server.api("p", "models/census/versions:watch"));
    assert_eq!(next(&mut versions, "versions"), json!({}));
    let body = json!({"name": "v1", "deploymentUri": file_uri(census_model())});
    let url = server.api("p", "models/census/versions");
    let (status, operation) = call("POST", &url, Some(&body.to_string()));
    assert_eq!(status, 200, "{operation}");
    wait_operation(&server, "p", &operation);
    let mut state = Value::Null;
    while state != "READY" {
        state = next(&mut versions, "versions")["versions"][0]["state"].clone();
    }

    let studies = format!("{}/v1/projects/p/locations/us-central1/studies", server.url);
    let config = json!({"studyConfig": {
        "metrics": [{"metric": "loss", "goal": "MINIMIZE"}],
        "parameters": [{"parameter": "x", "type": "DOUBLE",
                        "doubleValueSpec": {"minValue": -1, "maxValue": 1}}]}});
    let (status, study) = call(
        "POST",
        &format!("{studies}?studyId=s"),
        Some(&config.to_string()),
    );
    assert_eq!(status, 200, "{study}");
    let mut trials = watch(&format!("{studies}/s/trials:watch"));
    assert_eq!(next(&mut trials, "trials"), json!({}));
    let (status, _) = call(
        "POST",
        &format!("{studies}/s/trials:suggest"),
        Some(r#"{"suggestionCount": 1, "clientId": "c"}"#),
    );
    assert_eq!(status, 200);
    assert_eq!(next(&mut trials, "trials")["trials"][0]["state"], "ACTIVE");
    let complete = json!({"finalMeasurement": {"metrics": [{"metric": "loss", "value": 0.5}]}});
    let (status, _) = call(
        "POST",
        &format!("{studies}/s/trials/1:complete"),
        Some(&complete.to_string()),
    );
    assert_eq!(status, 200);
    assert_eq!(
        next(&mut trials, "trials")["trials"][0]["state"],
        "COMPLETED"
    );
    // Every location's studies, as AIP-159's `-` asks.
    let (status, all) = call(
        "GET",
        &format!("{}/v1/projects/p/locations/-/studies", server.url),
        None,
    );
    assert_eq!(
        (status, all["studies"][0]["name"].clone()),
        (200, study["name"].clone())
    );

    // Deleting the study ends its trials' watch with the error.
    call("DELETE", &format!("{studies}/s"), None);
    let error = next(&mut trials, "error");
    assert_eq!(error["error"]["status"], "NOT_FOUND", "{error}");
    assert!(trials.next().is_none(), "the stream ended");
}

#[test]
fn watches_are_refused_before_streaming_and_end_at_their_timeout() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    for (path, status, fragment) in [
        ("jobs/absent:watch", 404, "absent"),
        ("jobs:watch?timeoutSeconds=0", 400, "timeoutSeconds"),
        ("jobs:watch?timeoutSeconds=soon", 400, "timeoutSeconds"),
        ("jobs:watch?pageSize=many", 400, "pageSize"),
        ("models/absent/versions:watch", 404, "absent"),
    ] {
        let Err((actual, body)) = watch_as(None, &server.api("p", path)) else {
            panic!("{path} streamed");
        };
        assert_eq!(actual, status, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(fragment),
            "{path}: {body}"
        );
    }
    let started = Instant::now();
    let events: Vec<(String, Value)> =
        watch(&server.api("p", "jobs:watch?timeoutSeconds=1")).collect();
    assert_eq!(events, vec![("jobs".to_string(), json!({}))]);
    assert!(started.elapsed() < Duration::from_secs(10));
}
