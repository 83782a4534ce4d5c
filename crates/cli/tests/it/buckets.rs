//! Buckets as locations (a deployed version's files, a job's `jobDir` and packages, a batch
//! prediction's inputs and outputs) and as the managed artifact root, against a
//! real S3-protocol server: moto in server mode
//! (`scripts/dev-cluster.sh s3 up`, whose `AWS_*` settings the server passes to object_store, and
//! whose Python has boto3 to put the test's files in). `KILN_REQUIRE_S3=1` makes a missing
//! server a failure rather than a skip.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::jobs::{ended, trainer_sdist, wait_job};
use crate::support::{Server, call, census_instances, census_model, wait_operation};

/// The Python with boto3 that `dev-cluster.sh s3 env` names, or `None` (the test is skipped,
/// saying so) without an S3 server.
fn s3_python() -> Option<String> {
    let python = std::env::var("KILN_S3_PYTHON").ok();
    assert!(
        python.is_some() || std::env::var("KILN_REQUIRE_S3").is_err(),
        "KILN_REQUIRE_S3 is set, but KILN_S3_PYTHON is not (scripts/dev-cluster.sh s3 up)"
    );
    if python.is_none() {
        eprintln!("no S3 server (scripts/dev-cluster.sh s3 up): skipped");
    }
    python
}

/// Makes `bucket` and copies every file under `dir` into it under `prefix/`.
fn upload(python: &str, bucket: &str, dir: &Path, prefix: &str) {
    let script = r#"
import os, sys, boto3
bucket, root, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.create_bucket(Bucket=bucket)
for folder, _, files in os.walk(root):
    for name in files:
        path = os.path.join(folder, name)
        s3.upload_file(path, bucket, prefix + "/" + os.path.relpath(path, root))
"#;
    let status = Command::new(python)
        .args(["-c", script, bucket])
        .arg(dir)
        .arg(prefix)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "uploading {} to s3://{bucket}",
        dir.display()
    );
}

/// A version deploys from `s3://` and serves; a prefix with no files, a bucket that does not
/// exist and a bucket outside the allowed ones are refused when the version is created, each
/// naming the location and why.
#[test]
fn a_version_deploys_from_an_s3_bucket_and_bad_buckets_are_refused_at_once() {
    let Some(python) = s3_python() else {
        return;
    };
    let bucket = format!("kiln-test-{}", std::process::id());
    upload(&python, &bucket, census_model(), "census");
    let data = tempfile::tempdir().unwrap();
    let allowed = format!("s3://{bucket}");
    let flags = [
        "--insecure-no-auth",
        "--allow-path",
        &allowed,
        "--allow-path",
        "s3://kiln-no-such-bucket",
    ];
    let (server, _) = Server::start_with_args(data.path(), &flags, &[]);
    call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "census"}"#),
    );
    let versions = server.api("p", "models/census/versions");
    let create = |name: &str, uri: &str| {
        let body = json!({"name": name, "deploymentUri": uri}).to_string();
        call("POST", &versions, Some(&body))
    };

    let (status, operation) = create("v1", &format!("s3://{bucket}/census"));
    assert_eq!(status, 200, "{operation}");
    let done = wait_operation(&server, "p", &operation);
    assert!(done.get("error").is_none(), "{done}");
    let body = json!({"instances": census_instances()}).to_string();
    let (status, answer) = call(
        "POST",
        &server.api("p", "models/census:predict"),
        Some(&body),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["predictions"].as_array().map(Vec::len), Some(2));

    for (name, uri, words) in [
        (
            "empty",
            format!("s3://{bucket}/nothing-here"),
            vec!["version.deployment_uri", "holds no files"],
        ),
        (
            "missing",
            "s3://kiln-no-such-bucket/census".to_string(),
            vec![
                "version.deployment_uri",
                "s3://kiln-no-such-bucket/census",
                "NoSuchBucket",
            ],
        ),
        (
            "elsewhere",
            "s3://someone-elses-bucket/census".to_string(),
            vec!["version.deployment_uri"],
        ),
    ] {
        let (status, answer) = create(name, &uri);
        assert_eq!(status, 400, "{uri}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        for word in words {
            assert!(message.contains(word), "{uri}: {word} not in {message}");
        }
    }
    let (_, listed) = call("GET", &versions, None);
    assert_eq!(
        listed["versions"].as_array().map(Vec::len),
        Some(1),
        "refused versions leave nothing behind: {listed}"
    );
}

/// What a trainer with a bucket `jobDir` runs: checks that it was given the bucket as ML Engine
/// gives it, and puts the event file it is given under `<jobDir>/train/` with the credentials the
/// server passed on (`--job-env`; without them boto3 finds none).
const BUCKET_TRAINER: &str = r#"
import argparse, os, boto3
parser = argparse.ArgumentParser()
parser.add_argument('--events', required=True)
parser.add_argument('--job-dir', required=True)
args = parser.parse_args()
assert args.job_dir.startswith('s3://'), args.job_dir
bucket, _, prefix = args.job_dir[len('s3://'):].partition('/')
s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'])
s3.upload_file(args.events, bucket, prefix + '/train/' + os.path.basename(args.events))
print('wrote', args.job_dir, flush=True)
"#;

/// A job whose `jobDir` is in a bucket: the trainer gets `--job-dir s3://...` and the credentials
/// the server passes on, writes its event files there, and the job's curves are read from the
/// bucket; no local directory is made of the URL. A Python trainer's sdist installs from a
/// bucket. What cannot work so is refused, naming the field.
#[test]
fn a_jobs_job_dir_and_package_can_be_in_a_bucket() {
    let Some(python) = s3_python() else {
        return;
    };
    let bucket = format!("kiln-jobs-{}", std::process::id());
    let work = tempfile::tempdir().unwrap();
    let events = work.path().join("events");
    let mut writer = kiln_events::Writer::create(&events, 1_700_000_000.0).unwrap();
    for step in 1..=3 {
        writer
            .scalars(
                step,
                1_700_000_000.0 + step as f64,
                &[("loss", 1.0 / step as f64)],
            )
            .unwrap();
    }
    let events_file = std::fs::read_dir(&events)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let dist = work.path().join("dist");
    trainer_sdist(work.path(), &dist);
    upload(&python, &bucket, &dist, "packages");
    let script = work.path().join("bucket_trainer.py");
    std::fs::write(&script, BUCKET_TRAINER).unwrap();

    let data = tempfile::tempdir().unwrap();
    let allowed_bucket = format!("s3://{bucket}");
    let tmp = std::env::temp_dir().display().to_string();
    let flags = [
        "--insecure-no-auth",
        "--allow-path",
        &allowed_bucket,
        "--allow-path",
        &tmp,
        "--allow-unconfined-code",
        "--job-env",
        "AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_REGION,AWS_ENDPOINT_URL",
    ];
    let (server, _) = Server::start_with_args(data.path(), &flags, &[]);
    let jobs = server.api("p", "jobs");
    let job_dir = format!("s3://{bucket}/jobs/to_bucket");
    let body = json!({"jobId": "to_bucket", "trainingInput": {
        "masterConfig": {"containerCommand": [python, script.display().to_string(), "--events", events_file.display().to_string()]},
        "jobDir": job_dir,
    }});
    let (status, job) = call("POST", &jobs, Some(&body.to_string()));
    assert_eq!(status, 200, "{job}");
    let sdist = format!("s3://{bucket}/packages/trainer-0.1.tar.gz");
    let local_dir = work.path().join("from_bucket");
    let body = json!({"jobId": "from_bucket", "trainingInput": {
        "pythonModule": "trainer.task",
        "packageUris": [sdist],
        "jobDir": local_dir.display().to_string(),
    }});
    let (status, job) = call("POST", &jobs, Some(&body.to_string()));
    assert_eq!(status, 200, "{job}");

    let job = wait_job(&server, "p", "to_bucket", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    let (status, metrics) = call("GET", &server.api("p", "jobs/to_bucket/metrics"), None);
    assert_eq!(status, 200, "{metrics}");
    let series = &metrics["series"][0];
    assert_eq!(
        (series["run"].as_str(), series["tag"].as_str()),
        (Some("train"), Some("loss")),
        "{metrics}"
    );
    assert_eq!(
        series["points"].as_array().map(Vec::len),
        Some(3),
        "{metrics}"
    );
    assert!(
        !data.path().join("s3:").exists() && !Path::new("s3:").exists(),
        "no local directory is made of the bucket URL"
    );
    let job = wait_job(&server, "p", "from_bucket", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert!(
        local_dir.join("master-0.json").is_file(),
        "the installed trainer ran"
    );

    for (body, words) in [
        (
            json!({"jobId": "loose", "trainingInput": {"pythonModule": "trainer.task",
                "packageUris": [format!("s3://{bucket}/packages/trainer")]}}),
            vec!["package_uris", "sdist"],
        ),
        (
            json!({"jobId": "built_in", "trainingInput": {"masterConfig": {"imageUri": "gcr.io/cloud-ml-algos/wide_deep_learner_cpu"},
                "jobDir": format!("s3://{bucket}/jobs/built_in")}}),
            vec!["job_dir", "built-in algorithms"],
        ),
    ] {
        let (status, answer) = call("POST", &jobs, Some(&body.to_string()));
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        for word in words {
            assert!(message.contains(word), "{word} not in {message}");
        }
    }
}

/// The text of every object under `prefix/` in `bucket` (bytes that are not UTF-8 replaced), by
/// key.
fn download(python: &str, bucket: &str, prefix: &str) -> serde_json::Value {
    let script = r#"
import json, os, sys, boto3
bucket, prefix = sys.argv[1:3]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
print(json.dumps({o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode(errors="replace") for o in listed}))
"#;
    let output = Command::new(python)
        .args(["-c", script, bucket, prefix])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A batch prediction job reads its inputs from a bucket (a `*` pattern) and writes its results
/// there.
#[test]
fn a_batch_prediction_reads_and_writes_a_bucket() {
    let Some(python) = s3_python() else {
        return;
    };
    let bucket = format!("kiln-batch-{}", std::process::id());
    let work = tempfile::tempdir().unwrap();
    let inputs = work.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let lines: Vec<String> = census_instances()
        .iter()
        .map(|instance| instance.to_string())
        .collect();
    std::fs::write(inputs.join("part-0.json"), lines.join("\n") + "\n").unwrap();
    std::fs::write(inputs.join("part-1.json"), lines[0].clone() + "\n").unwrap();
    std::fs::write(inputs.join("other.json"), lines[0].clone() + "\n").unwrap();
    upload(&python, &bucket, &inputs, "in");

    let data = tempfile::tempdir().unwrap();
    let allowed_bucket = format!("s3://{bucket}");
    let model_root = census_model().parent().unwrap().display().to_string();
    let flags = [
        "--insecure-no-auth",
        "--allow-path",
        &allowed_bucket,
        "--allow-path",
        &model_root,
        "--job-env",
        "AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_REGION,AWS_ENDPOINT_URL,AWS_ALLOW_HTTP",
    ];
    let (server, _) = Server::start_with_args(data.path(), &flags, &[]);
    let body = json!({"jobId": "batch_bucket", "predictionInput": {
        "dataFormat": "JSON",
        "inputPaths": [format!("s3://{bucket}/in/part-*")],
        "outputPath": format!("s3://{bucket}/out"),
        "uri": crate::support::file_uri(census_model()),
        "maxWorkerCount": "1",
    }});
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body.to_string()));
    assert_eq!(status, 200, "{job}");
    let job = wait_job(&server, "p", "batch_bucket", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert_eq!(job["predictionOutput"]["predictionCount"], "3", "{job}");
    let written = download(&python, &bucket, "out");
    let results: Vec<&str> = written
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.contains("prediction.results-"))
        .flat_map(|(_, text)| text.as_str().unwrap().lines())
        .collect();
    assert_eq!(
        results.len(),
        3,
        "the matching inputs' predictions, in the bucket: {written}"
    );
}

/// With the managed artifact root in a bucket, two servers sharing a database but not a data
/// directory serve the same version: the one that created it put its files in the bucket, the
/// other copies them where it serves. Projects cannot point at the managed root; deleting the
/// version deletes its files there.
#[test]
fn servers_without_a_shared_data_directory_serve_from_a_bucket_artifact_root() {
    let Some(python) = s3_python() else {
        return;
    };
    let bucket = format!("kiln-root-{}", std::process::id());
    let empty = tempfile::tempdir().unwrap();
    upload(&python, &bucket, empty.path(), "unused");
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let database = crate::support::database_for(first_dir.path())
        .unwrap_or_else(|| first_dir.path().join("kiln.db").display().to_string());
    let root = format!("s3://{bucket}/kiln");
    let allowed_bucket = format!("s3://{bucket}");
    let model_root = census_model().parent().unwrap().display().to_string();
    let flags = [
        "--insecure-no-auth",
        "--database",
        &database,
        "--artifact-root",
        &root,
        "--allow-path",
        &model_root,
        "--allow-path",
        &allowed_bucket,
    ];
    let (first, _) = Server::start_with_args(first_dir.path(), &flags, &[]);
    let (second, _) = Server::start_with_args(second_dir.path(), &flags, &[]);
    first.deploy_census();
    let prefix = "kiln/projects/p/models/census/versions/v1";
    assert!(
        !download(&python, &bucket, prefix)
            .as_object()
            .unwrap()
            .is_empty(),
        "the version's files are in the bucket"
    );
    let body = json!({"instances": census_instances()}).to_string();
    let (status, answer) = call(
        "POST",
        &second.api("p", "models/census:predict"),
        Some(&body),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        second_dir
            .path()
            .join("artifacts/projects/p/models/census/versions/v1")
            .is_dir(),
        "the second server copied the version where it serves it"
    );

    let managed = json!({"name": "v2", "deploymentUri": format!("s3://{bucket}/{prefix}")});
    let (status, answer) = call(
        "POST",
        &first.api("p", "models/census/versions"),
        Some(&managed.to_string()),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("managed artifacts"),
        "{answer}"
    );
    let (status, operation) = call(
        "DELETE",
        &second.api("p", "models/census/versions/v1"),
        None,
    );
    assert_eq!(status, 200, "{operation}");
    wait_operation(&second, "p", &operation);
    assert!(
        download(&python, &bucket, prefix)
            .as_object()
            .unwrap()
            .is_empty(),
        "deleting the version deleted its files"
    );
}
