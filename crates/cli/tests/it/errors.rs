//! Bad input over HTTP: every case gets a 4xx whose message names the problem, never a 500.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::support::{Server, call, census_model, file_uri, wait_operation};

/// Sends the request and checks the status, the error shape and a message fragment.
fn check(
    server: &Server,
    method: &str,
    path: &str,
    body: Option<&str>,
    status: u16,
    fragment: &str,
) {
    let (actual, response) = call(method, &format!("{}{path}", server.url), body);
    assert_eq!(actual, status, "{method} {path}: {response}");
    let message = match &response["error"] {
        Value::Object(error) => {
            assert_eq!(error["code"], json!(status), "{response}");
            assert!(error["status"].is_string(), "{response}");
            error["message"].as_str().unwrap().to_string()
        }
        Value::String(message) => message.clone(),
        _ => panic!("{method} {path}: not an error body: {response}"),
    };
    assert!(
        message.contains(fragment),
        "{method} {path}: {message:?} lacks {fragment:?}"
    );
}

#[test]
fn malformed_requests_are_4xx_with_messages_that_name_the_problem() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (status, _) = call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "census"}"#),
    );
    assert_eq!(status, 200);
    let model_dir = file_uri(census_model());
    let (_, operation) = call(
        "POST",
        &server.api("p", "models/census/versions"),
        Some(&json!({"name": "v1", "deploymentUri": model_dir}).to_string()),
    );
    wait_operation(&server, "p", &operation);
    let models = "/v1/projects/p/models";
    let predict = "/v1/projects/p/models/census:predict";

    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        (
            "POST",
            models,
            Some("{not json"),
            400,
            "Invalid JSON payload",
        ),
        (
            "POST",
            models,
            Some(r#"{"name": "x", "colour": "red"}"#),
            400,
            "unknown field `colour`",
        ),
        ("POST", models, Some(r#"{"name": 7}"#), 400, "Field name"),
        (
            "POST",
            models,
            Some(r#"{"description": "no name"}"#),
            400,
            "A name should be specified",
        ),
        (
            "POST",
            models,
            Some(r#"{"name": "2bad"}"#),
            400,
            "\"2bad\" is invalid",
        ),
        (
            "POST",
            models,
            Some(r#"{"name": "census"}"#),
            409,
            "already exists",
        ),
        (
            "POST",
            models,
            Some(r#"{"name": "r", "regions": ["a", "b"]}"#),
            400,
            "exactly one region",
        ),
        (
            "POST",
            "/v1/projects/Bad_Project/models",
            Some(r#"{"name": "x"}"#),
            400,
            "project \"Bad_Project\" is invalid",
        ),
        (
            "GET",
            "/v1/projects/p/models/nope",
            None,
            404,
            "\"nope\" was not found",
        ),
        (
            "GET",
            "/v1/projects/p/models?pageSize=ten",
            None,
            400,
            "pageSize",
        ),
        (
            "GET",
            "/v1/projects/p/models?pageSize=-3",
            None,
            400,
            "pageSize must not be negative",
        ),
        (
            "GET",
            "/v1/projects/p/models?pageToken=xyz",
            None,
            400,
            "pageToken",
        ),
        (
            "GET",
            "/v1/projects/p/models?filter=name",
            None,
            400,
            "filter term \"name\"",
        ),
        (
            "GET",
            "/v1/projects/p/models?filter=(name:census%20OR%20name:x",
            None,
            400,
            "filter: expected ')' at position 22, found the end",
        ),
        (
            "PATCH",
            "/v1/projects/p/models/census",
            Some("{}"),
            400,
            "updateMask is required",
        ),
        (
            "PATCH",
            "/v1/projects/p/models/census?updateMask=regions",
            Some("{}"),
            400,
            "updateMask field \"regions\"",
        ),
        (
            "POST",
            "/v1/projects/p/models/census/versions",
            Some(r#"{"name": "v9"}"#),
            400,
            "deployment_uri",
        ),
        (
            "POST",
            "/v1/projects/p/models/census/versions",
            Some(r#"{"name": "v9", "deploymentUri": "relative/dir"}"#),
            400,
            "neither an absolute path nor a URL",
        ),
        (
            "POST",
            "/v1/projects/p/models/census/versions",
            Some(r#"{"name": "v9", "deploymentUri": "/x/../y"}"#),
            400,
            "'..'",
        ),
        (
            "POST",
            "/v1/projects/p/models/nope/versions",
            Some(r#"{"name": "v1", "deploymentUri": "/tmp"}"#),
            404,
            "\"nope\" was not found",
        ),
        (
            "GET",
            "/v1/projects/p/models/census/versions/v7",
            None,
            404,
            "\"v7\"",
        ),
        (
            "POST",
            "/v1/projects/p/models/census/versions/v7:setDefault",
            None,
            404,
            "\"v7\"",
        ),
        (
            "GET",
            "/v1/projects/p/operations/op_1",
            None,
            404,
            "was not found",
        ),
        ("POST", predict, Some("[1, 2]"), 400, "Invalid JSON payload"),
        (
            "POST",
            predict,
            Some(r#"{"inputs": []}"#),
            400,
            "unknown field `inputs`",
        ),
        (
            "POST",
            predict,
            Some(r#"{"instances": []}"#),
            400,
            "at least one instance",
        ),
        (
            "POST",
            predict,
            Some(r#"{"instances": [{"age": 30}]}"#),
            400,
            "Failed to process element: 0 of 'instances' list. Error: missing input",
        ),
        (
            "POST",
            predict,
            Some(
                r#"{"instances": [{"age": "old", "workclass": "x", "education": "x", "education_num": 1, "marital_status": "x", "occupation": "x", "relationship": "x", "race": "x", "gender": "x", "capital_gain": 0, "capital_loss": 0, "hours_per_week": 40, "native_country": "x"}]}"#,
            ),
            400,
            "input \"age\" must be a number",
        ),
        (
            "POST",
            predict,
            Some(r#"{"instances": [{"shoe_size": 44}]}"#),
            400,
            "unknown input \"shoe_size\"",
        ),
        (
            "POST",
            predict,
            Some(r#"{"instances": [7]}"#),
            400,
            "expected an object",
        ),
        (
            "POST",
            predict,
            Some(r#"{"instances": ["1,2"]}"#),
            400,
            "a CSV instance needs 14 values",
        ),
        (
            "POST",
            "/v1/projects/p/models/nope:predict",
            Some(r#"{"instances": [1]}"#),
            404,
            "\"nope\" was not found",
        ),
        (
            "POST",
            "/v1/projects/p/models/census:frobnicate",
            Some("{}"),
            404,
            "unknown method :frobnicate",
        ),
        (
            "GET",
            "/v1/projects/p/models/census:predict",
            None,
            404,
            ":predict takes POST",
        ),
        ("GET", "/v2/anything", None, 404, "Not found: /v2/anything"),
        ("PUT", models, Some("{}"), 400, "method PUT is not allowed"),
    ];
    for (method, path, body, status, fragment) in cases {
        check(&server, method, path, *body, *status, fragment);
    }
    // A body over the limit is refused as Google APIs do, whichever handler it was meant for.
    let huge = format!("{{\"instances\": [\"{}\"]}}", "x".repeat(11 << 20));
    for path in [
        "/v1/projects/p/models/census:predict",
        "/v1/projects/p/models",
    ] {
        check(
            &server,
            "POST",
            path,
            Some(&huge),
            400,
            "Request payload size exceeds the limit: 10485760 bytes.",
        );
    }

    // Prediction errors use ML Engine's string shape.
    let (status, body) = call(
        "POST",
        &server.api("p", "models/census:predict"),
        Some(r#"{"instances": [{"age": 30}]}"#),
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Prediction failed: "),
        "{body}"
    );
}

/// A body over the limit is read to its end before the refusal: a server that closed with the
/// rest unread would reset the connection under a client still sending (which then saw a send
/// error, not the 400), and the connection could not be used again. A client that asked to be
/// told before sending is refused without being told to go on.
#[test]
fn a_body_over_the_limit_is_read_to_its_end_so_its_refusal_arrives_on_a_usable_connection() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let address = server.url.trim_start_matches("http://");
    let (mut reader, mut writer) = connect(address);
    let body = format!("{{\"instances\": [\"{}\"]}}", "x".repeat(11 << 20));
    write!(
        writer,
        "POST /v1/projects/p/models HTTP/1.1\r\nhost: {address}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("the server reads the whole body");
    let (status, text) = response(&mut reader);
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("Request payload size exceeds the limit: 10485760 bytes."),
        "{text}"
    );
    write!(
        writer,
        "GET /v1/projects/p/models HTTP/1.1\r\nhost: {address}\r\n\r\n"
    )
    .unwrap();
    let (status, text) = response(&mut reader);
    assert_eq!(status, 200, "{text}");

    // A client that waits for `100 Continue` (curl, above 1 MB) is refused without sending it.
    let (mut reader, mut writer) = connect(address);
    write!(
        writer,
        "POST /v1/projects/p/models HTTP/1.1\r\nhost: {address}\r\nexpect: 100-continue\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let (status, text) = response(&mut reader);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("exceeds the limit"), "{text}");
}

/// A POST whose `{}` body arrives after its headers gets its answer once the body is read, and the
/// connection then serves the next request, for every method whose body is `{}`.
#[test]
fn a_late_empty_body_is_read_and_the_connection_kept() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let studies = "/v1/projects/p/locations/us-central1/studies";
    let config = json!({"studyConfig": {
        "metrics": [{"metric": "loss", "goal": "MINIMIZE"}],
        "parameters": [{"parameter": "x", "type": "DOUBLE",
                        "doubleValueSpec": {"minValue": 0, "maxValue": 1}}]}});
    let url = |path: &str| format!("{}{path}", server.url);
    assert_eq!(
        call(
            "POST",
            &url(&format!("{studies}?studyId=s")),
            Some(&config.to_string())
        )
        .0,
        200
    );
    let body = r#"{"suggestionCount": 2, "clientId": "c"}"#;
    assert_eq!(
        call(
            "POST",
            &url(&format!("{studies}/s/trials:suggest")),
            Some(body)
        )
        .0,
        200
    );
    let address = server.url.trim_start_matches("http://");
    for path in [
        format!("{studies}/s/trials:listOptimalTrials"),
        format!("{studies}/s/trials/1:checkEarlyStoppingState"),
        format!("{studies}/s/trials/2:stop"),
    ] {
        let (mut reader, mut writer) = connect(address);
        write!(
            writer,
            "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
             content-length: 2\r\n\r\n"
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        writer.write_all(b"{}").unwrap();
        let (status, answer) = response(&mut reader);
        assert_eq!(status, 200, "{path}: {answer}");
        write!(
            writer,
            "GET {studies}/s HTTP/1.1\r\nhost: {address}\r\n\r\n"
        )
        .unwrap();
        let (status, answer) = response(&mut reader);
        assert_eq!(status, 200, "the connection after {path}: {answer}");
    }
}

/// A connection to `address`: a buffered reader and a writer on the same socket.
pub(crate) fn connect(address: &str) -> (BufReader<TcpStream>, TcpStream) {
    let stream = TcpStream::connect(address).unwrap();
    (BufReader::new(stream.try_clone().unwrap()), stream)
}

/// Reads one HTTP/1.1 response with a `content-length`: its status and body.
pub(crate) fn response(reader: &mut impl BufRead) -> (u16, String) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a status line");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {line:?}"));
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a header line");
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_version_whose_files_are_not_a_model_fails_with_an_error_message() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let not_a_model = tempfile::tempdir().unwrap();
    std::fs::write(not_a_model.path().join("README.txt"), "hello").unwrap();
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("kiln_model.json"),
        "{\"format\": \"something else\"}",
    )
    .unwrap();
    let sklearn = tempfile::tempdir().unwrap();
    std::fs::write(sklearn.path().join("model.joblib"), "pickle").unwrap();
    call("POST", &server.api("p", "models"), Some(r#"{"name": "m"}"#));
    for (version, dir, fragment) in [
        ("plain_files", not_a_model.path(), "no model file found"),
        ("broken", broken.path(), "invalid Kiln model"),
        (
            "sklearn",
            sklearn.path(),
            "model.joblib could not be unpickled",
        ),
    ] {
        let body = json!({"name": version, "deploymentUri": file_uri(dir)}).to_string();
        let (status, operation) = call("POST", &server.api("p", "models/m/versions"), Some(&body));
        assert_eq!(status, 200, "{operation}");
        let done = wait_operation(&server, "p", &operation);
        assert!(
            done["error"]["message"]
                .as_str()
                .unwrap()
                .contains(fragment),
            "{done}"
        );
        let (_, stored) = call(
            "GET",
            &server.api("p", &format!("models/m/versions/{version}")),
            None,
        );
        assert_eq!(stored["state"], "FAILED");
        assert!(
            stored["errorMessage"].as_str().unwrap().contains(fragment),
            "{stored}"
        );
        let (status, error) = call(
            "POST",
            &server.api("p", &format!("models/m/versions/{version}:predict")),
            Some(r#"{"instances": [1]}"#),
        );
        assert_eq!(status, 400, "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not READY"),
            "{error}"
        );
    }
    let (status, error) = call(
        "POST",
        &server.api("p", "models/m/versions/plain_files:setDefault"),
        Some("{}"),
    );
    assert_eq!(
        status, 400,
        "a FAILED version cannot become the default: {error}"
    );
}

#[test]
fn names_with_separators_oversized_labels_and_non_finite_inputs_are_refused_by_field() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_serving(data.path(), None, &[]);
    check(
        &server,
        "POST",
        "/v1/projects/p/models",
        Some(r#"{"name": "projects/pb/models/x"}"#),
        400,
        "model.name",
    );
    check(
        &server,
        "POST",
        "/v1/projects/p/models",
        Some(r#"{"name": "a/b"}"#),
        400,
        "model.name",
    );
    let (_, listed) = call("GET", &server.api("pb", "models"), None);
    assert!(!listed.to_string().contains("\"x\""), "{listed}");
    let (status, model) = call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "projects/p/models/ok"}"#),
    );
    assert_eq!(
        (status, model["name"].as_str()),
        (200, Some("projects/p/models/ok")),
        "{model}"
    );

    let labels: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    for (method, path, body, fragment) in [
        (
            "POST",
            "models",
            json!({"name": "many", "labels": labels}),
            "at most 64",
        ),
        (
            "POST",
            "models",
            json!({"name": "upper", "labels": {"Team": "a"}}),
            "model.labels",
        ),
        (
            "POST",
            "models",
            json!({"name": "long", "description": "x".repeat(8193)}),
            "8192",
        ),
        (
            "PATCH",
            "models/ok?updateMask=labels",
            json!({"labels": {"k": "v".repeat(64)}}),
            "at most 63",
        ),
    ] {
        let path = format!("/v1/projects/p/{path}");
        check(
            &server,
            method,
            &path,
            Some(&body.to_string()),
            400,
            fragment,
        );
    }

    server.deploy_census();
    let instance = std::fs::read_to_string(crate::support::census().join("test.json")).unwrap();
    let mut instance: Value = serde_json::from_str(instance.lines().next().unwrap()).unwrap();
    instance["age"] = json!(1e308);
    let body = json!({"instances": [instance]}).to_string();
    check(
        &server,
        "POST",
        "/v1/projects/p/models/census:predict",
        Some(&body),
        400,
        "float32",
    );
}

#[test]
fn an_inconsistent_export_fails_its_version_with_the_field_named_and_no_panic_text() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start_serving(data.path(), Some(work.path()), &[]);
    call("POST", &server.api("p", "models"), Some(r#"{"name": "m"}"#));
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit, &str); 3] = [
        (
            "no_classes",
            |spec| spec["label_vocabulary"] = json!([]),
            "label_vocabulary",
        ),
        (
            "twice",
            |spec| spec["label_vocabulary"] = json!(["a", "a"]),
            "twice",
        ),
        (
            "extra_field",
            |spec| spec["surprise"] = json!(1),
            "surprise",
        ),
    ];
    for (version, edit, fragment) in edits {
        let dir = work.path().join(version);
        let copied = std::process::Command::new("cp")
            .arg("-r")
            .arg(census_model())
            .arg(&dir)
            .status()
            .unwrap();
        assert!(copied.success());
        let path = dir.join("kiln_model.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut spec);
        std::fs::write(&path, spec.to_string()).unwrap();
        let body = json!({"name": version, "deploymentUri": file_uri(&dir)}).to_string();
        let (status, operation) = call("POST", &server.api("p", "models/m/versions"), Some(&body));
        assert_eq!(status, 200, "{operation}");
        wait_operation(&server, "p", &operation);
        let (_, stored) = call(
            "GET",
            &server.api("p", &format!("models/m/versions/{version}")),
            None,
        );
        let message = stored["errorMessage"].as_str().unwrap_or_default();
        assert_eq!(stored["state"], "FAILED", "{stored}");
        assert!(message.contains(fragment), "{version}: {message}");
        assert!(!message.contains("panicked"), "{version}: {message}");
    }
}
