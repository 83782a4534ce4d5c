//! TensorFlow SavedModels, scikit-learn pickles and XGBoost boosters, trained and saved by their
//! own frameworks during the test (`tests/frameworks/export.py`), deployed as they are and served
//! by framework worker processes in the runtime version's environment; predictions are compared
//! with what the framework itself answered. Models that do not load fail their version with the
//! cause; a worker that dies fails its call and the next call is served.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::jobs::{ended, wait_job};
use crate::support::{
    Server, call, create_version, kiln, metrics, predict_model as predict, python_exports,
    saved_expectations as expected,
};

fn exported(framework: &'static str) -> &'static Path {
    python_exports("frameworks/export.py", framework)
}

/// A server that may read `exports`, with its runtime environments in its data directory.
fn start(exports: &Path) -> (Server, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let root = exports.display().to_string();
    let server = Server::start_with_args(
        data.path(),
        &["--insecure-no-auth", "--allow-path", &root],
        &[],
    )
    .0;
    (server, data)
}

/// Deploys `model` (with the version fields of `config`) and predicts its saved instances;
/// returns the version and the predictions, asserting both succeeded.
fn deploy_and_predict(
    server: &Server,
    exports: &Path,
    model: &str,
    config: Value,
) -> (Value, Value) {
    let operation = create_version(server, model, &exports.join(model), config);
    assert!(operation.get("error").is_none(), "{model}: {operation}");
    let (instances, _) = expected(&exports.join(model));
    let (status, mut body) = predict(server, model, &instances);
    assert_eq!(status, 200, "{model}: {body}");
    (operation["response"].clone(), body["predictions"].take())
}

/// The error the create of `model`'s version v1 from `dir` ended with.
fn failed_create(server: &Server, model: &str, dir: &Path, config: Value) -> String {
    let operation = create_version(server, model, dir, config);
    let message = operation["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{model} should not load: {operation}");
    let (_, version) = call(
        "GET",
        &server.api("p", &format!("models/{model}/versions/v1")),
        None,
    );
    assert_eq!(version["state"], "FAILED", "{version}");
    assert_eq!(version["errorMessage"], message);
    message.to_string()
}

/// Asserts every number in `got` is within `rtol` of the one at the same place in `want`.
fn close(got: &Value, want: &Value, rtol: f64, what: &str) {
    match (got, want) {
        (Value::Array(got), Value::Array(want)) => {
            assert_eq!(got.len(), want.len(), "{what}");
            for (index, (got, want)) in got.iter().zip(want).enumerate() {
                close(got, want, rtol, &format!("{what}[{index}]"));
            }
        }
        (Value::Object(got), Value::Object(want)) => {
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{what}"
            );
            for (key, want) in want {
                close(&got[key], want, rtol, &format!("{what}.{key}"));
            }
        }
        _ => {
            let (got_number, want_number) = (got.as_f64(), want.as_f64());
            let (Some(got_number), Some(want_number)) = (got_number, want_number) else {
                panic!("{what}: Kiln {got}, the framework {want}");
            };
            assert!(
                (got_number - want_number).abs() <= rtol * want_number.abs().max(1e-6),
                "{what}: Kiln {got_number}, the framework {want_number}"
            );
        }
    }
}

#[test]
fn scikit_learn_pickles_serve_what_scikit_learn_predicts() {
    let exports = exported("sklearn");
    let (server, data) = start(exports);

    // A pipeline with its scaler, named by framework; a text pipeline taking raw strings, detected.
    let (version, predictions) = deploy_and_predict(
        &server,
        exports,
        "iris_pipeline",
        json!({"framework": "SCIKIT_LEARN"}),
    );
    assert_eq!(version["framework"], "SCIKIT_LEARN");
    assert_eq!(version["runtimeVersion"], "2.21", "the default runtime");
    assert_eq!(version["pythonVersion"], "3.11");
    assert_eq!(predictions, expected(&exports.join("iris_pipeline")).1);
    let environment = data.path().join("runtimes/2.21-py3.11-scikit-learn");
    let marker = environment.join("kiln-runtime.json");
    let built = std::fs::metadata(&marker).unwrap().modified().unwrap();
    let (version, predictions) = deploy_and_predict(&server, exports, "text_pipeline", json!({}));
    assert_eq!(version["framework"], "SCIKIT_LEARN");
    assert_eq!(predictions, expected(&exports.join("text_pipeline")).1);
    assert_eq!(
        std::fs::metadata(&marker).unwrap().modified().unwrap(),
        built,
        "the runtime's environment is built once and reused"
    );

    // The metrics say what serves each version.
    assert!(
        metrics(&server).contains(
            "kiln_version_engine{version=\"projects/p/models/iris_pipeline/versions/v1\",\
             engine=\"scikit-learn 1.9.1 (runtime 2.21, Python 3.11)\"} 1"
        ),
        "{}",
        metrics(&server)
    );

    // A row of the wrong width fails its own instance, named by index.
    let (status, body) = predict(
        &server,
        "iris_pipeline",
        &[json!([5.1, 3.5, 1.4, 0.2]), json!([5.1, 3.5])],
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("element: 1") && message.contains("expected 4 feature values, got 2"),
        "{message}"
    );

    // Pickles that are not models, or that fail to load, fail their version with the cause.
    let message = failed_create(
        &server,
        "not_a_model",
        &exports.join("not_a_model"),
        json!({}),
    );
    assert!(
        message.contains("dict, which has no predict method"),
        "{message}"
    );
    let message = failed_create(
        &server,
        "raises_on_load",
        &exports.join("raises_on_load"),
        json!({}),
    );
    assert!(message.contains("ZeroDivisionError"), "{message}");

    // Unpickling runs the pickle's code, confined: it cannot read another version's files.
    let other = data
        .path()
        .join("artifacts/projects/p/models/iris_pipeline/versions/v1/model.joblib");
    assert!(other.is_file(), "{}", other.display());
    let snoop = tempfile::Builder::new()
        .prefix("snoop")
        .tempdir_in(exports)
        .unwrap();
    let status = Command::new("python3")
        .arg("-c")
        .arg(
            "import pickle, sys\n\
             class Snoop:\n    def __reduce__(self):\n        \
             return (eval, ('open(%r, \"rb\").read()' % sys.argv[1],))\n\
             pickle.dump(Snoop(), open(sys.argv[2], 'wb'))",
        )
        .arg(&other)
        .arg(snoop.path().join("model.pkl"))
        .status()
        .unwrap();
    assert!(status.success());
    let model = snoop.path().file_name().unwrap().to_str().unwrap();
    let message = failed_create(&server, model, snoop.path(), json!({}));
    assert!(message.contains("PermissionError"), "{message}");
}

#[test]
fn xgboost_models_serve_what_xgboost_predicts() {
    let exports = exported("xgboost");
    let (server, _data) = start(exports);
    // A booster file, detected; a pickled XGBClassifier, named XGBOOST: served through its
    // booster, as ML Engine does (the probability of class 1).
    for (model, config) in [
        ("cancer_booster", json!({})),
        ("cancer_classifier", json!({"framework": "XGBOOST"})),
    ] {
        let (version, predictions) = deploy_and_predict(&server, exports, model, config);
        assert_eq!(version["framework"], "XGBOOST", "{model}");
        close(&predictions, &expected(&exports.join(model)).1, 1e-5, model);
    }
    let (status, body) = predict(&server, "cancer_booster", &[json!(["a", "b"])]);
    assert_eq!(status, 400, "{body}");

    // :explain attributes a feature row by position; Shapley values add up to the score's change.
    let config = json!({"explanationConfig": {"sampledShapleyAttribution": {"numPaths": 3}}});
    let operation = create_version(
        &server,
        "cancer_explained",
        &exports.join("cancer_booster"),
        config,
    );
    assert!(operation.get("error").is_none(), "{operation}");
    let (instances, _) = expected(&exports.join("cancer_booster"));
    let body = json!({ "instances": [instances[0]] }).to_string();
    let (status, answer) = call(
        "POST",
        &server.api("p", "models/cancer_explained:explain"),
        Some(&body),
    );
    assert_eq!(status, 200, "{answer}");
    let label = &answer["explanations"][0]["attributions_by_label"][0];
    let attributions = label["attributions"].as_object().unwrap();
    assert_eq!(attributions.len(), 30, "{label}");
    let total: f64 = attributions.values().filter_map(Value::as_f64).sum();
    let change =
        label["example_score"].as_f64().unwrap() - label["baseline_score"].as_f64().unwrap();
    assert!((total - change).abs() < 1e-4, "{total} against {change}");
}

#[test]
fn tensorflow_saved_models_serve_what_tensorflow_predicts() {
    let exports = exported("tensorflow");
    let (server, _data) = start(exports);
    // Two named outputs: an object per instance. One output (Keras' export): bare values. A
    // signature that parses tf.Example strings, sent as {"b64": ...}.
    for model in ["affine", "keras_iris", "example_parser"] {
        let (version, predictions) = deploy_and_predict(&server, exports, model, json!({}));
        assert_eq!(version["framework"], "TENSORFLOW", "{model}");
        close(&predictions, &expected(&exports.join(model)).1, 1e-5, model);
    }
    let (status, body) = predict(&server, "affine", &[json!({"x": [1.0, 2.0], "scale": 1.0})]);
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("input 'x' must have shape [3]"),
        "{message}"
    );
    let (status, body) = predict(&server, "affine", &[json!({"x": [1.0, 2.0, 3.0]})]);
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("missing input 'scale'"), "{body}");

    // A request's signature_name picks another signature; one the model lacks is named.
    let text = std::fs::read_to_string(exports.join("affine/norms.json")).unwrap();
    let norms: Value = serde_json::from_str(&text).unwrap();
    let url = server.api("p", "models/affine:predict");
    let body = json!({"instances": norms["instances"], "signature_name": "norms"});
    let (status, answer) = call("POST", &url, Some(&body.to_string()));
    assert_eq!(status, 200, "{answer}");
    close(&answer["predictions"], &norms["expected"], 1e-5, "norms");
    let body = json!({"instances": norms["instances"], "signature_name": "nope"});
    let (status, answer) = call("POST", &url, Some(&body.to_string()));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("its signatures are norms, serving_default"),
        "{answer}"
    );

    let message = failed_create(
        &server,
        "no_default",
        &exports.join("no_default"),
        json!({}),
    );
    assert!(
        message.contains("no serving_default signature") && message.contains("affine"),
        "{message}"
    );
}

#[test]
fn a_worker_that_dies_fails_its_call_and_the_next_call_is_served() {
    let exports = exported("sklearn");
    let (server, data) = start(exports);
    let model = "iris_pipeline";
    deploy_and_predict(&server, exports, model, json!({}));

    // Killed while idle: a call that meets a dead worker fails with the cause (or, if its death
    // was already seen, a new worker serves it); the call after is served.
    let artifacts = data.path().join("artifacts/projects/p/models").join(model);
    let killed = Command::new("pkill")
        .args(["-KILL", "-f", &artifacts.display().to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "the workers run with the version's files");
    let (instances, want) = expected(&exports.join(model));
    for _ in 0..2 {
        let (status, body) = predict(&server, model, &instances);
        if status == 200 {
            break;
        }
        assert_eq!(status, 500, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("framework worker exited"), "{message}");
    }
    let (status, body) = predict(&server, model, &instances);
    assert_eq!(status, 200, "a new worker serves the call: {body}");
    assert_eq!(body["predictions"], want);

    // Dies in a call (a routine that kills itself when asked): that call fails with the cause,
    // and the next is served.
    let work = tempfile::tempdir_in(exports).unwrap();
    let routine = work.path().join("model");
    std::fs::create_dir_all(&routine).unwrap();
    std::fs::write(routine.join("README"), "a routine that needs no files").unwrap();
    let package = sdist(
        work.path(),
        "fragile_predictor",
        "from setuptools import setup\nsetup(name='fragile_predictor', version='0.1', \
         py_modules=['fragile_predictor'])\n",
        "import os, signal\n\
         class Fragile:\n    \
             @classmethod\n    \
             def from_path(cls, model_dir):\n        return cls()\n    \
             def predict(self, instances, **kwargs):\n        \
                 if 'die' in instances:\n            os.kill(os.getpid(), signal.SIGKILL)\n        \
                 return instances\n",
    );
    let config = json!({"predictionClass": "fragile_predictor.Fragile", "packageUris": [package]});
    let operation = create_version(&server, "fragile", &routine, config);
    assert!(operation.get("error").is_none(), "{operation}");
    let (status, body) = predict(&server, "fragile", &[json!("die")]);
    assert_eq!(status, 500, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("framework worker exited") && message.contains("SIGKILL"),
        "{message}"
    );
    let (status, body) = predict(&server, "fragile", &[json!("live")]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["predictions"], json!(["live"]));
}

#[test]
fn runtime_versions_are_checked_and_local_predict_uses_the_same_loader() {
    let exports = exported("sklearn");
    let (server, data) = start(exports);
    call("POST", &server.api("p", "models"), Some(r#"{"name": "m"}"#));
    let url = server.api("p", "models/m/versions");
    let uri = exports.join("iris_pipeline").display().to_string();
    let (status, body) = call(
        "POST",
        &url,
        Some(&json!({"name": "v", "deploymentUri": uri, "runtimeVersion": "3.0"}).to_string()),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("version.runtime_version") && message.contains("1.15, 2.11, 2.21"),
        "{message}"
    );
    let (status, body) = call(
        "POST",
        &url,
        Some(
            &json!({"name": "v", "deploymentUri": uri, "runtimeVersion": "2.11",
                    "pythonVersion": "3.11"})
            .to_string(),
        ),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("takes Python 3.7"), "{body}");

    let (instances, want) = expected(&exports.join("iris_pipeline"));
    let instances_file = data.path().join("instances.json");
    let lines: Vec<String> = instances.iter().map(Value::to_string).collect();
    std::fs::write(&instances_file, lines.join("\n")).unwrap();
    let runtimes = data.path().join("runtimes");
    let output = kiln(&[
        "local",
        "predict",
        "--model-dir",
        &uri,
        "--json-instances",
        instances_file.to_str().unwrap(),
        "--runtime-dir",
        runtimes.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["predictions"], want);
}

#[test]
fn batch_prediction_serves_a_framework_version_in_its_runtime() {
    let exports = exported("xgboost");
    let (server, _data) = start(exports);
    let (instances, want) = expected(&exports.join("cancer_classifier"));
    let work = tempfile::tempdir_in(exports).unwrap();
    let lines: Vec<String> = instances.iter().map(Value::to_string).collect();
    std::fs::write(work.path().join("in.json"), lines.join("\n")).unwrap();
    // Served by XGBoost, and by ONNX Runtime on the converted booster: the replica serves the
    // version as the server does.
    for (model, engine) in [
        ("framework_batch", "FRAMEWORK"),
        ("converted_batch", "ONNX_RUNTIME"),
    ] {
        let config = json!({"framework": "XGBOOST", "engine": engine});
        let operation = create_version(&server, model, &exports.join("cancer_classifier"), config);
        assert_eq!(operation["response"]["engine"], engine, "{operation}");
        let output = work.path().join(model);
        let input = json!({
            "versionName": format!("projects/p/models/{model}/versions/v1"),
            "dataFormat": "JSON",
            "inputPaths": [work.path().join("in.json")],
            "outputPath": output,
            "maxWorkerCount": 1,
        });
        let body = json!({"jobId": model, "predictionInput": input}).to_string();
        let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
        assert_eq!(status, 200, "{job}");
        let job = wait_job(&server, "p", model, ended);
        assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
        let results =
            std::fs::read_to_string(output.join("prediction.results-00000-of-00001")).unwrap();
        let got: Vec<Value> = results
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        close(&Value::Array(got), &want, 1e-5, model);
    }
}

#[test]
fn framework_models_may_be_served_converted_to_onnx() {
    let exports = exported("sklearn");
    let (server, _data) = start(exports);
    let iris = exports.join("iris_pipeline");
    let (instances, want) = expected(&iris);

    // Unnamed, a framework model is served by its framework; named, by ONNX Runtime or tract on
    // its ONNX form, with the framework's labels.
    let mut predictions = Vec::new();
    for (model, engine) in [
        ("iris_framework", None),
        ("iris_onnxruntime", Some("ONNX_RUNTIME")),
        ("iris_tract", Some("TRACT")),
    ] {
        let config = engine.map_or(json!({}), |engine| json!({"engine": engine}));
        let operation = create_version(&server, model, &iris, config);
        assert!(operation.get("error").is_none(), "{model}: {operation}");
        let served = engine.unwrap_or("FRAMEWORK");
        assert_eq!(operation["response"]["engine"], served, "{operation}");
        let (_, version) = call(
            "GET",
            &server.api("p", &format!("models/{model}/versions/v1")),
            None,
        );
        assert_eq!(version["engine"], served, "versions describe says which");
        let (status, body) = predict(&server, model, &instances);
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["predictions"], want, "{model}");
        predictions.push(body["predictions"].clone());
    }
    let metrics = metrics(&server);
    assert!(
        metrics.contains(
            "kiln_version_engine{version=\"projects/p/models/iris_onnxruntime/versions/v1\",\
             engine=\"onnxruntime (skl2onnx 1.20.0 from scikit-learn 1.9.1)\"} 1"
        ),
        "{metrics}"
    );

    // A model without a check set (a text pipeline takes strings, of no declared width) is not
    // served converted: its version fails with the reason.
    let message = failed_create(
        &server,
        "text_onnx",
        &exports.join("text_pipeline"),
        json!({"engine": "ONNX_RUNTIME"}),
    );
    assert!(
        message.contains("converting the SCIKIT_LEARN model to ONNX")
            && message.contains("no check set"),
        "{message}"
    );

    // An engine that cannot serve the framework is refused at create, naming the field.
    call(
        "POST",
        &server.api("p", "models"),
        Some(&json!({"name": "refused"}).to_string()),
    );
    let body = json!({"name": "v1", "deploymentUri": format!("file://{}", iris.display()),
        "framework": "SCIKIT_LEARN", "engine": "KILN"});
    let (status, answer) = call(
        "POST",
        &server.api("p", "models/refused/versions"),
        Some(&body.to_string()),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.to_string().contains("version.engine")
            && answer
                .to_string()
                .contains("FRAMEWORK or ONNX_RUNTIME or TRACT"),
        "{answer}"
    );

    // XGBoost and a Keras SavedModel, converted, predict what their frameworks do.
    for (framework, model) in [("xgboost", "cancer_booster"), ("tensorflow", "keras_iris")] {
        let exports = exported(framework);
        let server = start(exports).0;
        let dir = exports.join(model);
        let operation = create_version(&server, model, &dir, json!({"engine": "ONNX_RUNTIME"}));
        assert_eq!(
            operation["response"]["engine"], "ONNX_RUNTIME",
            "{operation}"
        );
        let (instances, want) = expected(&dir);
        let (status, body) = predict(&server, model, &instances);
        assert_eq!(status, 200, "{model}: {body}");
        close(&body["predictions"], &want, 1e-5, model);
    }
}

/// Writes the sdist `NAME-0.1.tar.gz` of a one-module package into `dir`.
fn sdist(dir: &Path, name: &str, setup: &str, module: &str) -> std::path::PathBuf {
    let source = dir.join("src").join(format!("{name}-0.1"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("setup.py"), setup).unwrap();
    std::fs::write(source.join(format!("{name}.py")), module).unwrap();
    let archive = dir.join(format!("{name}-0.1.tar.gz"));
    let status = Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.join("src"))
        .arg(format!("{name}-0.1"))
        .status()
        .unwrap();
    assert!(status.success());
    archive
}

#[test]
fn a_custom_prediction_routine_serves_with_its_packages() {
    let work = tempfile::tempdir().unwrap();
    let (server, _data) = start(work.path());
    let model = work.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("scale.txt"), "2.5").unwrap();
    let setup = |name: &str| {
        format!(
            "from setuptools import setup\nsetup(name={name:?}, version='0.1', py_modules=[{name:?}])\n"
        )
    };
    let package = sdist(
        work.path(),
        "scaler_predictor",
        &setup("scaler_predictor"),
        "import os\n\
         class ScalingPredictor:\n    \
             def __init__(self, scale):\n        self.scale = scale\n    \
             @classmethod\n    \
             def from_path(cls, model_dir):\n        \
                 return cls(float(open(os.path.join(model_dir, 'scale.txt')).read()))\n    \
             def predict(self, instances, **kwargs):\n        \
                 return [[value * self.scale for value in row] for row in instances]\n",
    );
    let routine = |class: &str, package: &Path| json!({"predictionClass": class, "packageUris": [package], "runtimeVersion": "2.21"});
    // Deployed through the CLI, as `gcloud beta ai-platform versions create` takes it.
    let cli = |args: &[&str]| {
        let output = kiln(&[&["--endpoint", server.url.as_str(), "--project", "p"], args].concat());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    cli(&["models", "create", "scaler"]);
    cli(&[
        "versions",
        "create",
        "v1",
        "--model",
        "scaler",
        "--origin",
        model.to_str().unwrap(),
        "--prediction-class",
        "scaler_predictor.ScalingPredictor",
        "--package-uris",
        package.to_str().unwrap(),
    ]);
    let (status, body) = predict(&server, "scaler", &[json!([1.0, 2.0]), json!([3.0, 4.0])]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["predictions"], json!([[2.5, 5.0], [7.5, 10.0]]));

    // A class the package lacks, and a package that fails to install (pip's words kept).
    let message = failed_create(
        &server,
        "missing",
        &model,
        routine("scaler_predictor.Nope", &package),
    );
    assert!(
        message.contains("module scaler_predictor has no Nope"),
        "{message}"
    );
    let broken = sdist(
        work.path(),
        "broken_predictor",
        "raise RuntimeError('this package refuses to build')\n",
        "",
    );
    let message = failed_create(
        &server,
        "broken",
        &model,
        routine("broken_predictor.P", &broken),
    );
    assert!(
        message.contains("installing packageUris failed")
            && message.contains("this package refuses to build"),
        "{message}"
    );

    // Fields that cannot make a routine are refused at once, named.
    call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "bad"}"#),
    );
    let url = server.api("p", "models/bad/versions");
    for (body, field) in [
        (
            json!({"name": "v", "deploymentUri": model, "predictionClass": "NoModule",
                   "packageUris": [package]}),
            "version.prediction_class",
        ),
        (
            json!({"name": "v", "deploymentUri": model, "packageUris": [package]}),
            "version.package_uris",
        ),
        (
            json!({"name": "v", "deploymentUri": model, "predictionClass": "a.B",
                   "packageUris": [model.join("scale.txt")]}),
            "version.package_uris[0]",
        ),
    ] {
        let (status, answer) = call("POST", &url, Some(&body.to_string()));
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(field), "{field}: {answer}");
    }
}
