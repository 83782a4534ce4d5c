//! Buckets as locations, against a real S3-protocol server: moto in server mode
//! (`scripts/dev-cluster.sh s3 up`, whose `AWS_*` settings the server passes to object_store, and
//! whose Python has boto3 to put the test's files in). `KILN_REQUIRE_S3=1` makes a missing
//! server a failure rather than a skip.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::support::{Server, call, census_instances, census_model, wait_operation};

/// The Python with boto3 that `dev-cluster.sh s3 env` names, or `None` without an S3 server.
fn s3_python() -> Option<String> {
    let python = std::env::var("KILN_S3_PYTHON").ok();
    assert!(
        python.is_some() || std::env::var("KILN_REQUIRE_S3").is_err(),
        "KILN_REQUIRE_S3 is set, but KILN_S3_PYTHON is not (scripts/dev-cluster.sh s3 up)"
    );
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
        eprintln!("no S3 server (scripts/dev-cluster.sh s3 up): skipped");
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
