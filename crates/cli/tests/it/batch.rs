//! Batch prediction jobs against a real server: JSON lines by model (default version), CSV by
//! version, gzip TFRecord of `tf.Example`s by `uri` through the CLI; wildcards, shards, counts, bad
//! records in the errors files, results equal to online predictions; input checks that name the
//! field; and a job that outlives a killed server, taken over by the next one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_events::example::{Feature, encode};
use serde_json::{Value, json};

use crate::jobs::{ended, wait_job};
use crate::support::{Server, call, census_model, census_variants, kiln_binary};

/// A server that may read `work` and the census export, with `census` v1 deployed.
fn deployed(data: &Path, work: &Path) -> Server {
    let server = Server::start_serving(data, Some(work), &[]);
    server.deploy_census();
    server
}

/// Census instances with a `key`, `count` of them.
fn keyed(count: usize, offset: usize) -> Vec<Value> {
    let mut instances = census_variants(count, offset);
    for (index, instance) in instances.iter_mut().enumerate() {
        instance["key"] = json!(offset + index);
    }
    instances
}

fn lines(values: &[Value]) -> String {
    values.iter().map(|value| format!("{value}\n")).collect()
}

/// Every line of the shards named `kind` in `dir`, and the shard count.
fn shard_lines(dir: &Path, kind: &str) -> (Vec<Value>, usize) {
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("prediction.{kind}-"))
        })
        .collect();
    shards.sort();
    let values = shards
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect();
    (values, shards.len())
}

/// Online predictions of `instances` (without their keys, which are not model inputs).
fn online(server: &Server, instances: &[Value]) -> Vec<Value> {
    let instances: Vec<Value> = instances
        .iter()
        .map(|instance| {
            let mut instance = instance.clone();
            instance.as_object_mut().unwrap().remove("key");
            instance
        })
        .collect();
    let body = json!({ "instances": instances }).to_string();
    let (status, answer) = call(
        "POST",
        &server.api("p", "models/census:predict"),
        Some(&body),
    );
    assert_eq!(status, 200, "{answer}");
    answer["predictions"].as_array().unwrap().clone()
}

fn submit(server: &Server, id: &str, input: Value) -> Value {
    let body = json!({"jobId": id, "predictionInput": input}).to_string();
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    let job = wait_job(server, "p", id, ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    job
}

#[test]
fn batch_prediction_reads_json_csv_and_tfrecord_and_sets_bad_records_aside() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = deployed(data.path(), work.path());
    let inputs = work.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();

    // JSON lines over two files matched by a wildcard (a third file does not match), with two bad
    // records: one not JSON, one the model refuses.
    let first = keyed(150, 0);
    let second = keyed(60, 1000);
    std::fs::write(inputs.join("part-1.json"), lines(&first)).unwrap();
    let mut text = lines(&second[..30]);
    text.push_str("{not json\n\n{\"age\": \"old\", \"key\": \"bad\"}\n");
    text.push_str(&lines(&second[30..]));
    std::fs::write(inputs.join("part-2.json"), text).unwrap();
    std::fs::write(inputs.join("other.json"), "{not json\n").unwrap();
    let out = work.path().join("out");
    let job = submit(
        &server,
        "batch_json",
        json!({"modelName": "projects/p/models/census", "dataFormat": "JSON",
               "inputPaths": [format!("{}/part-*", inputs.display())],
               "outputPath": out.display().to_string(), "region": "us-central1",
               "maxWorkerCount": "3", "batchSize": "16"}),
    );
    let output = &job["predictionOutput"];
    assert_eq!(output["predictionCount"], "210", "{output}");
    assert_eq!(output["errorCount"], "2", "{output}");
    assert!(output["nodeHours"].as_f64().unwrap() > 0.0, "{output}");
    assert_eq!(output["outputPath"], out.display().to_string());
    assert!(job.get("trainingOutput").is_none(), "{job}");
    let (results, shards) = shard_lines(&out, "results");
    // Three threads of one replica here; on a cluster three replicas (parts) of a `standard`
    // machine's four threads each, every record predicted once by one of them.
    let on_cluster = matches!(
        std::env::var("KILN_EXECUTOR").as_deref(),
        Ok("slurm" | "ray")
    );
    let expected_shards = if on_cluster { 12 } else { 3 };
    assert_eq!((results.len(), shards), (210, expected_shards));
    let (_, logs) = call(
        "GET",
        &server.api("p", "jobs/batch_json/logs?pageSize=1000"),
        None,
    );
    let mut tasks: Vec<&str> = logs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["taskName"].as_str())
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    let expected_tasks: &[&str] = if on_cluster {
        &["master-replica-0", "worker-replica-0", "worker-replica-1"]
    } else {
        &["master-replica-0"]
    };
    assert_eq!(tasks, expected_tasks, "{logs}");
    let (errors, _) = shard_lines(&out, "errors_stats");
    let mut sources: Vec<&str> = errors
        .iter()
        .map(|e| e["input"].as_str().unwrap())
        .collect();
    sources.sort();
    let part2 = inputs.join("part-2.json").display().to_string();
    assert_eq!(sources, [format!("{part2}:31"), format!("{part2}:33")]);
    assert!(
        errors
            .iter()
            .any(|e| e["error"].as_str().unwrap().contains("age")),
        "{errors:?}"
    );
    // Each result carries its instance's key and equals the online prediction.
    let by_key: BTreeMap<i64, &Value> = results
        .iter()
        .map(|result| (result["key"].as_i64().unwrap(), result))
        .collect();
    let all: Vec<Value> = first.iter().chain(&second).cloned().collect();
    for (instance, expected) in all.iter().zip(online(&server, &all)) {
        let key = instance["key"].as_i64().unwrap();
        let mut got = by_key[&key].clone();
        got.as_object_mut().unwrap().remove("key");
        assert_eq!(got, expected, "key {key}");
    }

    // CSV lines by version name.
    let mut test_rows = String::new();
    let gz = std::fs::File::open(crate::support::census().join("adult.test.csv.gz")).unwrap();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut test_rows).unwrap();
    let csv: String = test_rows
        .lines()
        .take(2)
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(inputs.join("rows.csv"), format!("{csv}1,2\n")).unwrap();
    let csv_out = work.path().join("csv_out");
    let job = submit(
        &server,
        "batch_csv",
        json!({"versionName": "projects/p/models/census/versions/v1", "dataFormat": "CSV",
               "inputPaths": [inputs.join("rows.csv").display().to_string()],
               "outputPath": csv_out.display().to_string(), "maxWorkerCount": "1"}),
    );
    assert_eq!(job["predictionOutput"]["predictionCount"], "2", "{job}");
    assert_eq!(job["predictionOutput"]["errorCount"], "1", "{job}");

    // Gzip TFRecord of tf.Examples, by uri, through the CLI.
    let examples: Vec<Vec<u8>> = first[..20]
        .iter()
        .map(|instance| {
            let features: Vec<(&str, Feature)> = instance
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, value)| {
                    let feature = match value {
                        Value::String(text) => Feature::Bytes(vec![text.as_bytes().to_vec()]),
                        Value::Number(number) if number.is_i64() => {
                            Feature::Ints(vec![number.as_i64().unwrap()])
                        }
                        other => Feature::Floats(vec![other.as_f64().unwrap() as f32]),
                    };
                    (name.as_str(), feature)
                })
                .collect();
            encode(&features)
        })
        .collect();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for example in &examples {
        gzip.write_all(&kiln_events::record::frame(example))
            .unwrap();
    }
    std::fs::write(inputs.join("examples.tfrecord.gz"), gzip.finish().unwrap()).unwrap();
    let tf_out = work.path().join("tf_out");
    let submitted = Command::new(kiln_binary())
        .args([
            "ai-platform",
            "jobs",
            "submit",
            "prediction",
            "batch_tf",
            "--project",
            "p",
        ])
        .args(["--endpoint", &server.url, "--data-format", "tf-record-gzip"])
        .args(["--model-dir", &census_model().display().to_string()])
        .args([
            "--input-paths",
            &inputs.join("examples*").display().to_string(),
        ])
        .args([
            "--output-path",
            &tf_out.display().to_string(),
            "--max-worker-count",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let job = wait_job(&server, "p", "batch_tf", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert_eq!(job["predictionInput"]["dataFormat"], "TF_RECORD_GZIP");
    assert_eq!(job["predictionOutput"]["predictionCount"], "20", "{job}");
    assert_eq!(job["predictionOutput"]["errorCount"], "0", "{job}");
    let (results, _) = shard_lines(&tf_out, "results");
    let mut keys: Vec<i64> = results.iter().map(|r| r["key"].as_i64().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, (0..20).collect::<Vec<_>>());
    let expected = online(&server, &first[..20]);
    for result in &results {
        let key = result["key"].as_i64().unwrap() as usize;
        let mut got = result.clone();
        got.as_object_mut().unwrap().remove("key");
        assert_eq!(got["classes"], expected[key]["classes"]);
        let (a, b) = (
            got["logits"][0].as_f64().unwrap(),
            expected[key]["logits"][0].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-4, "key {key}: {a} vs {b} (f32 features)");
    }
    let (status, logs) = call("GET", &server.api("p", "jobs/batch_tf/logs"), None);
    assert_eq!(status, 200);
    // One replica's progress here; on a cluster each of the two parts reports its own.
    let progress = if on_cluster {
        "predicted, 0 errors"
    } else {
        "20 predicted, 0 errors"
    };
    assert!(logs.to_string().contains(progress), "{logs}");
}

#[test]
fn batch_prediction_inputs_are_checked_naming_the_field() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = deployed(data.path(), work.path());
    let input = work.path().join("in.json");
    std::fs::write(&input, "{}\n").unwrap();
    let good = json!({"modelName": "census", "dataFormat": "JSON",
        "inputPaths": [input.display().to_string()],
        "outputPath": work.path().join("out").display().to_string()});
    let with = |changes: Value| {
        let mut body = good.clone();
        for (key, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => body.as_object_mut().unwrap().remove(key),
                value => body
                    .as_object_mut()
                    .unwrap()
                    .insert(key.clone(), value.clone()),
            };
        }
        body
    };
    let cases = [
        (
            with(json!({"modelName": null})),
            "exactly one of modelName, versionName or uri",
        ),
        (
            with(json!({"uri": "/tmp"})),
            "exactly one of modelName, versionName or uri",
        ),
        (
            with(json!({"modelName": "nope"})),
            "prediction_input.model_name",
        ),
        (
            with(json!({"modelName": "projects/p/models/census/versions/v1"})),
            "prediction_input.model_name",
        ),
        (
            with(json!({"dataFormat": null})),
            "prediction_input.data_format",
        ),
        (
            with(json!({"inputPaths": []})),
            "prediction_input.input_paths",
        ),
        (
            with(json!({"inputPaths": [format!("{}/*/x", work.path().display())]})),
            "prediction_input.input_paths[0]",
        ),
        (
            with(json!({"inputPaths": ["/etc/passwd"]})),
            "prediction_input.input_paths[0]",
        ),
        (
            with(json!({"outputPath": "/etc/kiln_out"})),
            "prediction_input.output_path",
        ),
        (
            with(json!({"maxWorkerCount": "-1"})),
            "prediction_input.max_worker_count",
        ),
        (
            with(json!({"batchSize": "-5"})),
            "prediction_input.batch_size",
        ),
        (
            with(json!({"outputDataFormat": "CSV"})),
            "prediction_input.output_data_format",
        ),
    ];
    for (index, (input, field)) in cases.iter().enumerate() {
        let body = json!({"jobId": format!("bad_{index}"), "predictionInput": input}).to_string();
        let (status, answer) = call("POST", &server.api("p", "jobs"), Some(&body));
        assert_eq!(status, 400, "case {index}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "case {index}: {message}");
    }
    let both = json!({"jobId": "both", "predictionInput": good,
        "trainingInput": {"pythonModule": "t", "packageUris": ["/tmp"]}})
    .to_string();
    let (status, answer) = call("POST", &server.api("p", "jobs"), Some(&both));
    assert_eq!(status, 400, "{answer}");
    let (status, _) = call("GET", &server.api("p", "jobs/bad_0"), None);
    assert_eq!(status, 404, "a refused job is not stored");
}

#[test]
fn a_batch_prediction_outlives_a_killed_server() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = deployed(data.path(), work.path());
    // A FIFO nobody writes to yet: the job's reader waits on it, so the job is RUNNING when killed.
    let fifo = work.path().join("pipe.json");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let out = work.path().join("out");
    let body =
        json!({"jobId": "stuck", "predictionInput": {"modelName": "census", "dataFormat": "JSON",
        "inputPaths": [fifo.display().to_string()], "outputPath": out.display().to_string()}})
        .to_string();
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    wait_job(&server, "p", "stuck", |job| job["state"] == "RUNNING");
    server.kill();
    let server = Server::start_serving(data.path(), Some(work.path()), &[]);
    let (_, job) = call("GET", &server.api("p", "jobs/stuck"), None);
    assert_eq!(
        job["state"], "RUNNING",
        "the restarted server took the job over: {job}"
    );
    // Opening the FIFO for writing succeeds only because the replica still reads it.
    std::fs::write(&fifo, lines(&keyed(3, 0))).unwrap();
    let job = wait_job(&server, "p", "stuck", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert_eq!(job["predictionOutput"]["predictionCount"], "3", "{job}");
    assert_eq!(shard_lines(&out, "results").0.len(), 3);
}
