//! Imported ONNX models against a real server, on both engines (ONNX Runtime from the pip wheel,
//! and tract with `KILN_ONNX_RUNTIME=tract`): scikit-learn, XGBoost, PyTorch and Keras models
//! trained and exported by their own frameworks during the test (`tests/onnx/export.py`), served
//! by Kiln and compared with what the frameworks themselves answered; a model using operators its
//! engine lacks fails its version create with them named.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{
    Server, call, create_version, kiln, metrics, predict_model as predict, python_exports,
    saved_expectations as expected,
};

/// The models `export.py` trained with `framework` and exported to ONNX.
fn exported(framework: &'static str) -> &'static Path {
    python_exports("onnx/export.py", framework)
}

/// The engines: ONNX Runtime (found through `python3`'s `onnxruntime` package) and tract.
const ENGINES: [&str; 2] = ["onnxruntime", "tract"];

fn start(exports: &Path, engine: &str) -> Server {
    let root = exports.display().to_string();
    Server::start_with_args(
        tempfile::tempdir().unwrap().keep().as_path(),
        &["--insecure-no-auth", "--allow-path", &root],
        &[("KILN_ONNX_RUNTIME", engine)],
    )
    .0
}

/// The numbers of a nested list, as one flat list.
fn flatten(value: &Value) -> Value {
    fn push(value: &Value, out: &mut Vec<Value>) {
        match value {
            Value::Array(items) => items.iter().for_each(|item| push(item, out)),
            scalar => out.push(scalar.clone()),
        }
    }
    let mut out = Vec::new();
    push(value, &mut out);
    Value::Array(out)
}

/// Asserts `got` is a number within `tolerance` (relative, absolute below 1) of `want`.
fn close(got: &Value, want: f64, tolerance: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert!(
        (got - want).abs() <= tolerance * want.abs().max(1.0),
        "{what}: Kiln {got}, framework {want}"
    );
}

fn close_all(got: &Value, want: &Value, tolerance: f64, what: &str) {
    let (got, want) = (got.as_array().unwrap(), want.as_array().unwrap());
    assert_eq!(got.len(), want.len(), "{what}");
    for (index, (got, want)) in got.iter().zip(want).enumerate() {
        close(
            got,
            want.as_f64().unwrap(),
            tolerance,
            &format!("{what}[{index}]"),
        );
    }
}

#[test]
fn scikit_learn_exports_serve_what_scikit_learn_predicts() {
    let exports = exported("sklearn");
    for engine in ENGINES {
        serve_scikit_learn(exports, engine);
    }
}

fn serve_scikit_learn(exports: &Path, engine: &str) {
    let server = start(exports, engine);
    let engine_line = format!(
        "kiln_version_engine{{version=\"projects/p/models/iris_logreg/versions/v1\",engine=\"{engine}\"}} 1"
    );

    // Classifiers: skl2onnx's defaults (Scaler + LinearClassifier + ZipMap; TreeEnsembleClassifier).
    for (model, framework) in [
        ("iris_logreg", Some("SCIKIT_LEARN")),
        ("cancer_forest", None),
    ] {
        let config = framework.map_or(json!({}), |framework| json!({ "framework": framework }));
        let (version, predictions, want) =
            deploy_and_predict(&server, engine, exports, model, config);
        assert_eq!(version["state"], "READY");
        assert_eq!(version["framework"], framework.unwrap_or("ONNX"));
        for (index, prediction) in predictions.iter().enumerate() {
            assert_eq!(
                prediction["output_label"], want["label"][index],
                "{engine}: {model} #{index}"
            );
            let probabilities = want["probabilities"][index].as_array().unwrap();
            for (class, probability) in probabilities.iter().enumerate() {
                close(
                    &prediction["output_probability"][class.to_string()],
                    probability.as_f64().unwrap(),
                    1e-4,
                    &format!("{engine}: {model} #{index} P(class {class})"),
                );
            }
        }
    }

    let metrics = metrics(&server);
    assert!(metrics.contains(&engine_line), "{metrics}");

    // Regressors (LinearRegressor; TreeEnsembleRegressor averaging its trees), with instances of
    // named inputs as well as bare lists.
    for model in ["wine_linear", "wine_forest"] {
        serves_regressor(&server, engine, exports, model, "X");
    }

    // An instance of the wrong width is refused by name; the model keeps serving.
    let (status, body) = predict(&server, "iris_logreg", &[json!([5.1, 3.5, 1.4])]);
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("element: 0")
            && message.contains("input 'X' takes instances of shape [4]"),
        "{message}"
    );

    // An SVC's export: ONNX Runtime serves it as scikit-learn predicts; tract lacks an operator,
    // and the create fails naming only that one.
    let svc = exports.join("iris_svc");
    let operation = create_version(&server, "iris_svc", &svc, json!({}));
    if engine == "tract" {
        let message = operation["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("cannot run: SVMClassifier (ai.onnx.ml).")
                && !message.contains("ArrayFeatureExtractor"),
            "{operation}"
        );
        let url = server.api("p", "models/iris_svc/versions/v1");
        let (status, version) = call("GET", &url, None);
        assert_eq!(status, 200);
        assert_eq!(version["state"], "FAILED");
        assert_eq!(version["errorMessage"].as_str(), Some(message));
    } else {
        assert!(
            operation.get("error").is_none(),
            "{operation} (is the onnxruntime pip package installed for python3?)"
        );
        let (instances, want) = expected(&svc);
        let (status, body) = predict(&server, "iris_svc", &instances);
        assert_eq!(status, 200, "{body}");
        for (index, prediction) in body["predictions"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                prediction["output_label"], want["label"][index],
                "SVC #{index}"
            );
        }
    }

    // A string input takes text, plain or as base64 ({"b64": ...}, bare or under its name).
    let mapper = exports.join("colour_ids");
    let operation = create_version(&server, "colours", &mapper, json!({}));
    assert!(operation.get("error").is_none(), "{engine}: {operation}");
    let (instances, want) = expected(&mapper);
    let b64 = |text: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text.as_str().unwrap())
    };
    let bare: Vec<Value> = instances.iter().map(|t| json!({"b64": b64(t)})).collect();
    let keyed: Vec<Value> = instances
        .iter()
        .map(|t| json!({"colour": {"b64": b64(t)}}))
        .collect();
    for sent in [&instances, &bare, &keyed] {
        let (status, body) = predict(&server, "colours", sent);
        assert_eq!(status, 200, "{engine}: {body}");
        assert_eq!(body["predictions"], want["id"], "{engine}: {sent:?}");
    }

    // An operator of an unknown domain fails on every engine, named.
    let operation = create_version(&server, "mystery", &exports.join("mystery"), json!({}));
    let message = operation["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot run: Mystery (com.example)."),
        "{engine}: {operation}"
    );
}

#[test]
fn xgboost_exports_serve_what_xgboost_predicts() {
    let exports = exported("xgboost");
    for engine in ENGINES {
        let server = start(exports, engine);
        // TreeEnsembleClassifier with two and with three classes: outputs `label` and
        // `probabilities`, answered as an object per instance.
        for model in ["cancer_xgb", "iris_xgb"] {
            let config = json!({"framework": "XGBOOST"});
            let (version, predictions, want) =
                deploy_and_predict(&server, engine, exports, model, config);
            assert_eq!(version["framework"], "XGBOOST");
            for (index, prediction) in predictions.iter().enumerate() {
                let what = format!("{engine}: {model} #{index}");
                assert_eq!(prediction["label"], want["label"][index], "{what}");
                close_all(
                    &prediction["probabilities"],
                    &want["probabilities"][index],
                    1e-4,
                    &what,
                );
            }
        }
        // TreeEnsembleRegressor: one output, a bare value per instance.
        serves_regressor(&server, engine, exports, "wine_xgb", "features");
    }
}

#[test]
fn a_version_that_asks_for_onnx_runtime_gets_it_where_python3_has_none() {
    // `python3` on the server's PATH is a bare virtual environment without onnxruntime, so
    // neither ORT_DYLIB_PATH nor python3 offers the library: a version that names ONNX_RUNTIME has
    // Kiln build its own ONNX Runtime environment (pip, from the machine's python3.X), and one
    // that names no engine is served by tract without building anything.
    let exports = exported("xgboost");
    let bare = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(bare.path().join("venv"))
        .status()
        .unwrap();
    assert!(status.success());
    let bin = bare.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // A script, not a link: Python finds its virtual environment from the path it was run by.
    let script = format!(
        "#!/bin/sh\nexec {} \"$@\"\n",
        bare.path().join("venv/bin/python3").display()
    );
    std::fs::write(bin.join("python3"), script).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(bin.join("python3"), mode).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let root = exports.display().to_string();
    for (engine, served) in [("ONNX_RUNTIME", "ONNX_RUNTIME"), ("", "TRACT")] {
        let data = tempfile::tempdir().unwrap();
        let server = Server::start_with_args(
            data.path(),
            &["--insecure-no-auth", "--allow-path", &root],
            &[("PATH", &path), ("ORT_DYLIB_PATH", "")],
        )
        .0;
        let config = match engine {
            "" => json!({}),
            engine => json!({ "engine": engine }),
        };
        let (version, predictions, want) =
            deploy_and_predict(&server, engine, exports, "cancer_xgb", config);
        assert_eq!(version["engine"], served, "{version}");
        for (index, prediction) in predictions.iter().enumerate() {
            assert_eq!(
                prediction["label"], want["label"][index],
                "{served} #{index}"
            );
        }
        let built = data
            .path()
            .join("runtimes")
            .read_dir()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .any(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("onnxruntime-")
                    && entry.path().join("kiln-runtime.json").is_file()
            });
        assert_eq!(built, engine == "ONNX_RUNTIME", "{served}");
    }
}

/// Creates version `v1` of `model` from its export, with the version fields of `config`, and
/// predicts the instances saved beside it; returns the created version, the predictions and what
/// the framework answered.
fn deploy_and_predict(
    server: &Server,
    engine: &str,
    exports: &Path,
    model: &str,
    config: Value,
) -> (Value, Vec<Value>, Value) {
    let operation = create_version(server, model, &exports.join(model), config);
    assert!(operation.get("error").is_none(), "{engine}: {operation}");
    let (instances, want) = expected(&exports.join(model));
    let (status, mut body) = predict(server, model, &instances);
    assert_eq!(status, 200, "{engine}: {body}");
    let predictions = body["predictions"].take();
    let predictions = predictions.as_array().cloned().unwrap_or_default();
    assert_eq!(predictions.len(), instances.len(), "{engine}: {model}");
    (operation["response"].clone(), predictions, want)
}

/// Deploys regressor `model` and compares its predictions with the framework's (`variable`), for
/// bare instances and for instances keyed by the name of its input.
fn serves_regressor(server: &Server, engine: &str, exports: &Path, model: &str, input: &str) {
    let operation = create_version(server, model, &exports.join(model), json!({}));
    assert!(operation.get("error").is_none(), "{engine}: {operation}");
    let (instances, want) = expected(&exports.join(model));
    let keyed: Vec<Value> = instances.iter().map(|row| json!({ input: row })).collect();
    for sent in [&instances, &keyed] {
        let (status, body) = predict(server, model, sent);
        assert_eq!(status, 200, "{body}");
        for (index, prediction) in body["predictions"].as_array().unwrap().iter().enumerate() {
            close(
                &prediction[0],
                want["variable"][index].as_f64().unwrap(),
                1e-4,
                &format!("{engine}: {model} #{index}"),
            );
        }
    }
}

#[test]
fn keras_export_serves_what_keras_predicts() {
    let exports = exported("keras");
    let model = exports.join("digits_keras");
    let (instances, want) = expected(&model);
    for engine in ENGINES {
        let server = start(exports, engine);
        let operation = create_version(&server, "digits", &model, json!({}));
        assert!(operation.get("error").is_none(), "{engine}: {operation}");
        // Channels-last images of [8, 8, 1], nested as Keras takes them and flat.
        let flat: Vec<Value> = instances.iter().map(flatten).collect();
        for sent in [&instances, &flat] {
            let (status, body) = predict(&server, "digits", sent);
            assert_eq!(status, 200, "{body}");
            let predictions = body["predictions"].as_array().unwrap();
            assert_eq!(predictions.len(), instances.len());
            for (index, probabilities) in predictions.iter().enumerate() {
                close_all(
                    probabilities,
                    &want["probabilities"][index],
                    1e-4,
                    &format!("{engine}: Keras #{index}"),
                );
            }
        }
    }
}

#[test]
fn pytorch_exports_serve_what_pytorch_computes_online_and_in_batch() {
    let exports = exported("torch");
    for engine in ENGINES {
        serve_pytorch(exports, engine);
    }
    batch_predict_pytorch(exports);
}

fn serve_pytorch(exports: &Path, engine: &str) {
    let server = start(exports, engine);
    let predicts_logits = |model: &str, instances: &[Value], want: &Value, what: &str| {
        let (status, body) = predict(&server, model, instances);
        assert_eq!(status, 200, "{body}");
        for (index, logits) in body["predictions"].as_array().unwrap().iter().enumerate() {
            let what = format!("{engine}: {model} {what} #{index}");
            close_all(logits, &want["logits"][index], 1e-4, &what);
        }
    };
    for model in ["digits_mlp", "digits_cnn", "digits_bytes"] {
        let operation = create_version(&server, model, &exports.join(model), json!({}));
        assert!(operation.get("error").is_none(), "{operation}");
        let (instances, want) = expected(&exports.join(model));
        predicts_logits(model, &instances, &want, "");
    }

    // A uint8 input also takes its bytes as {"b64": ...}, bare or under the input's name.
    let (instances, want) = expected(&exports.join("digits_bytes"));
    let encoded: Vec<Value> = instances
        .iter()
        .enumerate()
        .map(|(index, pixels)| {
            use base64::Engine;
            let bytes: Vec<u8> = pixels
                .as_array()
                .unwrap()
                .iter()
                .map(|pixel| pixel.as_u64().unwrap() as u8)
                .collect();
            let b64 = json!({"b64": base64::engine::general_purpose::STANDARD.encode(bytes)});
            match index % 2 {
                0 => b64,
                _ => json!({ "pixels": b64 }),
            }
        })
        .collect();
    predicts_logits("digits_bytes", &encoded, &want, "b64");

    // Integrated gradients of the MLP's top logit over the 64 pixels, from a black image.
    let explanation = json!({"integratedGradientsAttribution": {"numIntegralSteps": 50}});
    let config = json!({ "explanationConfig": explanation });
    let operation = create_version(&server, "explained", &exports.join("digits_mlp"), config);
    assert!(operation.get("error").is_none(), "{operation}");
    let (instances, want) = expected(&exports.join("digits_mlp"));
    let request = json!({"instances": [{"pixels": instances[0]}]}).to_string();
    let url = server.api("p", "models/explained:explain");
    let (status, answer) = call("POST", &url, Some(&request));
    assert_eq!(status, 200, "{answer}");
    let label = &answer["explanations"][0]["attributions_by_label"][0];
    let logits: Vec<f64> = want["logits"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let top = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap();
    assert_eq!(label["label_index"], top, "{engine}: {label}");
    close(
        &label["example_score"],
        logits[top],
        1e-4,
        "explained logit",
    );
    let pixels = label["attributions"]["pixels"].as_array().unwrap();
    assert_eq!(pixels.len(), 64);
    let total: f64 = pixels.iter().map(|v| v.as_f64().unwrap()).sum();
    let change =
        label["example_score"].as_f64().unwrap() - label["baseline_score"].as_f64().unwrap();
    assert!(
        (total - change).abs() <= 0.05 * change.abs(),
        "{engine}: {total} vs {change}"
    );
    assert!(
        label["approx_error"].as_f64().unwrap() < 0.05,
        "{engine}: {label}"
    );

    // Raw pixels: the CNN's [1, 8, 8] images also accepted flat, as 64 values.
    let (instances, want) = expected(&exports.join("digits_cnn"));
    let flat: Vec<Value> = instances.iter().map(flatten).collect();
    let (status, body) = predict(&server, "digits_cnn", &flat);
    assert_eq!(status, 200, "{body}");
    close_all(
        &body["predictions"][3],
        &want["logits"][3],
        1e-4,
        "flat image",
    );
}

/// Batch prediction with the same runtime: keyed JSON lines on two workers, results joined back
/// by key; then lines without keys on one worker, whose results keep the input's order. A bad
/// line among them sends its batch down the value path.
fn batch_predict_pytorch(exports: &Path) {
    let model = exports.join("digits_mlp");
    let (instances, want) = expected(&model);
    let bad = "{\"key\": \"bad\", \"pixels\": [1, 2]}".to_string();
    let keyed: Vec<String> = instances
        .iter()
        .enumerate()
        .map(|(key, pixels)| json!({"key": key, "pixels": pixels}).to_string())
        .chain([bad])
        .collect();
    let (results, errors) = batch_predict(&model, &keyed, 2);
    assert_eq!(results.len(), instances.len());
    for result in &results {
        let key = result["key"].as_u64().unwrap() as usize;
        close_all(
            &result["prediction"],
            &want["logits"][key],
            1e-4,
            &format!("batch #{key}"),
        );
    }
    assert!(
        errors.contains("instances.json:") && errors.contains("shape [64]"),
        "{errors}"
    );

    let mut plain: Vec<String> = instances
        .iter()
        .map(|pixels| json!({"pixels": pixels}).to_string())
        .collect();
    plain.insert(3, "{\"pixels\": [1, 2]}".to_string());
    let (results, errors) = batch_predict(&model, &plain, 1);
    assert_eq!(results.len(), instances.len());
    for (index, result) in results.iter().enumerate() {
        assert!(result.get("key").is_none(), "{result}");
        close_all(
            result,
            &want["logits"][index],
            1e-4,
            &format!("unkeyed batch #{index}"),
        );
    }
    assert!(
        errors.contains("instances.json:4") && errors.contains("shape [64]"),
        "{errors}"
    );
}

/// `kiln local batch-predict` over `lines` (batches of 8 on `workers` workers): the results in
/// the order written (shard by shard) and the errors files' text.
fn batch_predict(model: &Path, lines: &[String], workers: usize) -> (Vec<Value>, String) {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("instances.json");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let output_dir = work.path().join("out");
    let run = kiln(&[
        "local",
        "batch-predict",
        "--model-dir",
        model.to_str().unwrap(),
        "--data-format",
        "json",
        "--input-paths",
        input.to_str().unwrap(),
        "--output-path",
        output_dir.to_str().unwrap(),
        "--max-worker-count",
        &workers.to_string(),
        "--batch-size",
        "8",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&output_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    let (mut results, mut errors) = (Vec::new(), String::new());
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        match path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("prediction.results")
        {
            true => results.extend(
                text.lines()
                    .map(|line| serde_json::from_str::<Value>(line).unwrap()),
            ),
            false => errors.push_str(&text),
        }
    }
    (results, errors)
}
