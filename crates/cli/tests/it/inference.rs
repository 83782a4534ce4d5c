//! The Open Inference Protocol over every version: Triton's own HTTP client (`tritonclient[http]`
//! from pip), unchanged, reads health, readiness and metadata and infers with JSON and binary
//! tensors, on a Kiln export (census: text and number inputs by name) and a scikit-learn pipeline
//! (one feature-row input) served by scikit-learn and converted to ONNX (whose runtime reads the
//! tensors itself); the answers equal `:predict`'s. Bad tensors get a 400 naming the input.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{
    Server, call, census_instances, create_version, python_exports, saved_expectations,
};

#[test]
fn a_triton_client_infers_on_kiln_and_framework_versions_as_predict_does() {
    let exports = python_exports("frameworks/export.py", "sklearn");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_serving(data.path(), Some(exports), &[]);
    server.deploy_census();
    let iris = exports.join("iris_pipeline");
    let operation = create_version(&server, "iris", &iris, json!({}));
    assert!(operation.get("error").is_none(), "{operation}");
    let operation = create_version(
        &server,
        "iris_onnx",
        &iris,
        json!({"engine": "ONNX_RUNTIME"}),
    );
    assert!(operation.get("error").is_none(), "{operation}");

    let census = census_instances();
    let (iris_rows, iris_want) = saved_expectations(&iris);
    let requests = data.path().join("requests.json");
    std::fs::write(
        &requests,
        json!({"census": census, "iris": iris_rows}).to_string(),
    )
    .unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inference/triton_client.py");
    let base = format!("{}/v1/projects/p", server.url.trim_start_matches("http://"));
    let output = Command::new("python3")
        .arg(&script)
        .arg(&base)
        .arg(&requests)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "triton_client.py failed (pip install 'tritonclient[http]'): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answers["live"], true);
    assert_eq!(answers["ready"], true);
    assert_eq!(answers["census_ready"], true);
    assert_eq!(answers["missing_ready"], false);
    let metadata = &answers["census_metadata"];
    assert_eq!(metadata["name"], "census");
    assert_eq!(metadata["versions"], json!(["v1"]));
    // A Kiln export names its inputs and the outputs it answers with.
    let has = |key: &str, tensor: Value| {
        metadata[key]
            .as_array()
            .is_some_and(|tensors| tensors.contains(&tensor))
    };
    assert!(
        has(
            "inputs",
            json!({"name": "age", "datatype": "FP32", "shape": [-1]})
        ) && has(
            "inputs",
            json!({"name": "workclass", "datatype": "BYTES", "shape": [-1]})
        ) && has(
            "outputs",
            json!({"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]})
        ) && has(
            "outputs",
            json!({"name": "class_ids", "datatype": "INT64", "shape": [-1, 1]})
        ),
        "{metadata}"
    );
    // A scikit-learn classifier takes feature rows and answers its label, typed as its classes.
    assert_eq!(
        (
            &answers["iris_metadata"]["inputs"],
            &answers["iris_metadata"]["outputs"]
        ),
        (
            &json!([{"name": "instances", "datatype": "FP32", "shape": [-1, 4]}]),
            &json!([{"name": "predictions", "datatype": "INT64", "shape": [-1]}])
        )
    );

    // An ONNX graph declares its outputs too: the same pipeline served converted names its label.
    let (status, metadata) = call(
        "GET",
        &format!("{}/v1/projects/p/v2/models/iris_onnx", server.url),
        None,
    );
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(
        (&metadata["inputs"], &metadata["outputs"]),
        (
            &json!([{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]),
            &json!([{"name": "output_label", "datatype": "INT64", "shape": [-1]}])
        ),
        "{metadata}"
    );

    // What :predict answers, as one column per prediction key.
    let body = json!({ "instances": census }).to_string();
    let (status, predicted) = call(
        "POST",
        &server.api("p", "models/census/versions/v1:predict"),
        Some(&body),
    );
    assert_eq!(status, 200, "{predicted}");
    let predictions = predicted["predictions"].as_array().unwrap();
    let other = json!({ "instances": census, "signature_name": "other" }).to_string();
    let (status, refused) = call(
        "POST",
        &server.api("p", "models/census/versions/v1:predict"),
        Some(&other),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("one signature, serving_default"),
        "{refused}"
    );
    for form in ["census_json", "census_binary"] {
        let columns = answers[form].as_object().unwrap();
        let keys = predictions[0].as_object().unwrap();
        assert_eq!(
            columns.keys().collect::<Vec<_>>().len(),
            keys.len(),
            "{form}: one output per prediction key: {columns:?}"
        );
        for (key, _) in keys {
            let want: Vec<Value> = predictions.iter().map(|row| row[key].clone()).collect();
            close(&columns[key], &Value::Array(want), &format!("{form}.{key}"));
        }
    }
    assert_eq!(answers["iris_json"], iris_want);
    assert_eq!(answers["iris_binary"], iris_want);
    assert_eq!(answers["iris_onnx_json"], iris_want);
    assert_eq!(answers["iris_onnx_binary"], iris_want);

    // A model that reads tensors takes numbers of another type where no value changes, refuses
    // what does not fit naming its input, and answers the outputs asked for.
    let url = format!("{}/v1/projects/p/v2/models/iris_onnx/infer", server.url);
    let rows = &iris_rows;
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|row| row.as_array().unwrap().clone())
        .collect();
    let doubles = json!({"inputs": [{"name": "input", "shape": [rows.len(), 4],
                                     "datatype": "FP64", "data": flat}],
                         "outputs": [{"name": "output_label"}]});
    let (status, body) = call("POST", &url, Some(&doubles.to_string()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["datatype"], "INT64", "{body}");
    assert_eq!(body["outputs"][0]["shape"], json!([rows.len()]), "{body}");
    assert_eq!(body["outputs"][0]["data"], iris_want, "{body}");
    for (request, refusal) in [
        (
            json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                               "data": [1.0, 2.0, 3.0]}]}),
            "input 'input': takes shape [batch, 4]; got [1, 3]",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "BOOL",
                               "data": [true, false, true, false]}]}),
            "input 'input': takes float32 elements; got bool",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                               "data": [1.0, 2.0, 3.0, 4.0]}],
                   "outputs": [{"name": "label"}]}),
            "the model has no output \"label\"; it has output_label",
        ),
    ] {
        let (status, body) = call("POST", &url, Some(&request.to_string()));
        assert_eq!(status, 400, "{body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(refusal), "{message}");
    }

    // Bad tensors are refused naming the input, in the protocol's error shape.
    let url = format!("{}/v1/projects/p/v2/models/iris/infer", server.url);
    let bad = json!({"inputs": [{"name": "instances", "shape": [2, 4], "datatype": "FP32",
                                 "data": [1.0, 2.0, 3.0]}]});
    let (status, body) = call("POST", &url, Some(&bad.to_string()));
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("inputs[0] (instances)"), "{message}");
    let wide = json!({"inputs": [{"name": "instances", "shape": [1, 3], "datatype": "FP32",
                                  "data": [1.0, 2.0, 3.0]}]});
    let (status, body) = call("POST", &url, Some(&wide.to_string()));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("expected 4 feature values"),
        "{body}"
    );
    let (status, body) = call(
        "GET",
        &format!("{}/v1/projects/p/v2/models/missing", server.url),
        None,
    );
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string(), "{body}");

    // Each version offers a request body to start from, which it predicts on: the census export
    // at its columns' typical values, the pipelines as rows of their four features.
    for model in ["census", "iris", "iris_onnx"] {
        let url = server.api("p", &format!("models/{model}/versions/v1/example"));
        let (status, example) = call("GET", &url, None);
        assert_eq!(status, 200, "{example}");
        let instance = &example["instances"][0];
        match model {
            "census" => assert!(
                instance["age"].as_f64().is_some_and(|age| age > 18.0)
                    && instance["workclass"]
                        .as_str()
                        .is_some_and(|w| !w.is_empty()),
                "{example}"
            ),
            _ => assert_eq!(instance, &json!([0, 0, 0, 0]), "{model}: {example}"),
        }
        let url = server.api("p", &format!("models/{model}/versions/v1:predict"));
        let (status, answer) = call("POST", &url, Some(&example.to_string()));
        assert_eq!(status, 200, "{model}: {answer}");
        assert_eq!(answer["predictions"].as_array().map(Vec::len), Some(1));
    }
}

/// Asserts the numbers of `got` are within 1e-6 of `want`'s and everything else equal.
fn close(got: &Value, want: &Value, what: &str) {
    match (got, want) {
        (Value::Array(got), Value::Array(want)) => {
            assert_eq!(got.len(), want.len(), "{what}");
            for (index, (got, want)) in got.iter().zip(want).enumerate() {
                close(got, want, &format!("{what}[{index}]"));
            }
        }
        (got, want) if want.is_f64() => {
            let (got, want) = (got.as_f64().unwrap(), want.as_f64().unwrap());
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{what}: {got} {want}"
            );
        }
        (got, want) => assert_eq!(got, want, "{what}"),
    }
}
