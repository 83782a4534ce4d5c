//! The `sequential` built-in algorithm end to end: a CNN trained as a job on scikit-learn's
//! digits and a tf-idf text classifier trained with `kiln local train` on documents of four groups
//! made by the test, both deployed and served over HTTP from raw pixels and raw text.

use std::io::Read;

use base64::Engine;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::jobs::{ended, wait_job};
use crate::support::{Server, call, create_version, kiln, predict_model};

/// A file of the repository's `data/`.
fn repo_data(path: &str) -> PathBuf {
    crate::support::census().parent().unwrap().join(path)
}

/// Writes `documents` documents of four groups (`kiln_train::datagen::topics`) to `path`.
fn topics(path: &Path, documents: usize, seed: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    kiln_train::datagen::topics(documents, seed, &mut file).unwrap();
}

/// The digits as (8 x 8 pixel rows, label).
fn digits() -> Vec<(Vec<Vec<f64>>, String)> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(repo_data("sklearn-toy/digits.csv.gz")).unwrap(),
    )
    .read_to_string(&mut text)
    .unwrap();
    text.lines()
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let pixels: Vec<f64> = cells[..64]
                .iter()
                .map(|cell| cell.parse().unwrap())
                .collect();
            (
                pixels.chunks(8).map(<[f64]>::to_vec).collect(),
                cells[64].to_string(),
            )
        })
        .collect()
}

fn accuracy(predictions: &Value, labels: &[String]) -> f64 {
    let predictions = predictions["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), labels.len());
    let right = predictions
        .iter()
        .zip(labels)
        .filter(|(prediction, label)| prediction["classes"] == label.as_str())
        .count();
    right as f64 / labels.len() as f64
}

#[test]
fn a_cnn_trained_as_a_job_serves_raw_pixels() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let definition = work.path().join("cnn.yaml");
    std::fs::write(
        &definition,
        "input: {type: image, height: 8, width: 8, scale: 0.0625}
layers:
  - {type: Conv2D, filters: 16, kernel_size: 3, padding: same, activation: relu}
  - {type: MaxPool2D, pool_size: 2}
  - {type: Dropout, rate: 0.2}
  - {type: Flatten}
  - {type: Dense, units: 64, activation: relu}
  - {type: Dense, units: 10, activation: softmax}
optimizer: {type: Adadelta}
",
    )
    .unwrap();
    let submit = |id: &str, definition: &Path| {
        let body = json!({"jobId": id, "trainingInput": {
            "masterConfig": {"imageUri": "kiln/sequential"},
            "args": [
                format!("--model_definition={}", definition.display()),
                format!("--training_data_path={}", repo_data("sklearn-toy/digits.csv.gz").display()),
                "--label_column=-1",
                "--num_epochs=12",
            ],
            "jobDir": work.path().join(id).display().to_string(),
            "region": "us-central1",
        }});
        let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body.to_string()));
        assert_eq!(status, 200, "{job}");
        wait_job(&server, "p", id, ended)
    };
    let job = submit("digits", &definition);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    let reported = &job["trainingOutput"]["builtInAlgorithmOutput"];
    let model_path = reported["modelPath"].as_str().unwrap();
    let (_, metrics) = call("GET", &server.api("p", "jobs/digits/metrics"), None);
    let evaluations = metrics["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|series| series["run"] == "eval" && series["tag"] == "accuracy")
        .unwrap_or_else(|| panic!("no eval accuracy in {metrics}"));
    assert_eq!(
        evaluations["points"].as_array().unwrap().len(),
        12,
        "{evaluations}"
    );

    let operation = create_version(&server, "digits", Path::new(model_path), json!({}));
    assert_eq!(operation["done"], true, "{operation}");
    assert!(operation.get("error").is_none(), "{operation}");
    let digits = digits();
    let sample = &digits[..300];
    let nested: Vec<Value> = sample.iter().map(|(pixels, _)| json!(pixels)).collect();
    let labels: Vec<String> = sample.iter().map(|(_, label)| label.clone()).collect();
    let (status, nested_answer) = predict_model(&server, "digits", &nested);
    assert_eq!(status, 200, "{nested_answer}");
    assert!(accuracy(&nested_answer, &labels) >= 0.9, "{nested_answer}");
    let first = &nested_answer["predictions"][0];
    assert_eq!(first["probabilities"].as_array().unwrap().len(), 10);
    let total: f64 = first["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-4, "{first}");

    // Flat pixels, keyed instances and PNG files (b64, bare or as ML Engine's `image_bytes`) are
    // the same image: the digits' pixels (0 to 16) are the PNG's grey bytes.
    let png = |pixels: &[Vec<f64>]| {
        let bytes: Vec<u8> = pixels.concat().iter().map(|&value| value as u8).collect();
        let image = image::GrayImage::from_raw(8, 8, bytes).unwrap();
        let mut file = std::io::Cursor::new(Vec::new());
        image.write_to(&mut file, image::ImageFormat::Png).unwrap();
        base64::engine::general_purpose::STANDARD.encode(file.get_ref())
    };
    let same_image = |form: &dyn Fn(&[Vec<f64>]) -> Value| {
        let sent: Vec<Value> = sample
            .iter()
            .take(5)
            .map(|(pixels, _)| form(pixels))
            .collect();
        let (status, answer) = predict_model(&server, "digits", &sent);
        assert_eq!(status, 200, "{answer}");
        for (index, prediction) in answer["predictions"].as_array().unwrap().iter().enumerate() {
            assert_eq!(prediction, &nested_answer["predictions"][index], "{sent:?}");
        }
    };
    same_image(&|pixels| json!({"image": pixels.concat()}));
    same_image(&|pixels| json!({"b64": png(pixels)}));
    same_image(&|pixels| json!({"image_bytes": {"b64": png(pixels)}}));
    // Refused with the reason: bytes that are no image, an image of the wrong size.
    for (instance, reason) in [
        (
            json!({"b64": "bm90IGFuIGltYWdl"}),
            "not a PNG or JPEG image",
        ),
        (json!(vec![1.0; 63]), "has 64 values; got 63"),
    ] {
        let (status, error) = predict_model(&server, "digits", &[instance]);
        assert_eq!(status, 400, "{error}");
        assert!(error["error"].as_str().unwrap().contains(reason), "{error}");
    }

    // A definition that does not fit its input fails the job, naming the layer.
    let bad = work.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "input: {type: image, height: 8, width: 8}\nlayers: [{type: Dense, units: 10, activation: softmax}]\n",
    )
    .unwrap();
    let job = submit("bad_digits", &bad);
    assert_eq!(job["state"], "FAILED", "{job}");
    assert!(
        job["errorMessage"]
            .as_str()
            .unwrap()
            .contains("layers[0] (Dense) does not take an image of 8 x 8 x 1"),
        "{job}"
    );
}

#[test]
fn a_text_classifier_carries_its_tokenizer_and_serves_raw_text() {
    let work = tempfile::tempdir().unwrap();
    let definition = work.path().join("mlp.yaml");
    std::fs::write(
        &definition,
        "input: {type: text, tokenizer: {num_words: 3000, mode: tfidf}}
layers:
  - {type: Dense, units: 32, activation: relu}
  - {type: Dropout, rate: 0.5}
  - {type: Dense, units: 4, activation: softmax}
",
    )
    .unwrap();
    let groups = "alt.atheism,talk.religion.misc,comp.graphics,sci.space";
    let (train, test) = (
        work.path().join("train.jsonl"),
        work.path().join("test.jsonl"),
    );
    topics(&train, 2000, 1);
    topics(&test, 800, 2);
    let job_dir = work.path().join("news");
    let output = kiln(&[
        "local",
        "train",
        "--master-image-uri",
        "sequential",
        "--job-dir",
        job_dir.to_str().unwrap(),
        "--",
        &format!("--model_definition={}", definition.display()),
        &format!("--training_data_path={}", train.display()),
        "--label_field=group",
        &format!("--classes={groups}"),
        "--num_epochs=4",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1800 training examples (in memory), 200 evaluation examples"),
        "2000 documents, every tenth held out: {stdout}"
    );

    let export: Value =
        serde_json::from_slice(&std::fs::read(job_dir.join("model/kiln_model.json")).unwrap())
            .unwrap();
    assert_eq!(
        export["input"]["tokenizer"]["words"]
            .as_array()
            .unwrap()
            .len(),
        kiln_train::datagen::topic_words().len(),
        "every word of the documents (fewer than num_words)"
    );
    assert_eq!(
        export["label_vocabulary"],
        json!(groups.split(',').collect::<Vec<_>>())
    );

    let documents: Vec<Value> = std::fs::read_to_string(&test)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .step_by(5)
        .collect();
    let texts: Vec<Value> = documents
        .iter()
        .map(|document| document["text"].clone())
        .collect();
    let labels: Vec<String> = documents
        .iter()
        .map(|document| document["group"].as_str().unwrap().to_string())
        .collect();

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let operation = create_version(&server, "news", &job_dir.join("model"), json!({}));
    assert!(operation.get("error").is_none(), "{operation}");
    let (status, answer) = predict_model(&server, "news", &texts);
    assert_eq!(status, 200, "{answer}");
    let held_out = accuracy(&answer, &labels);
    assert!(
        held_out >= 0.9,
        "test accuracy {held_out} on {} documents",
        labels.len()
    );
    let keyed = json!({"text": texts[0]});
    let (_, keyed_answer) = predict_model(&server, "news", &[keyed]);
    let (alone, batched) = (&keyed_answer["predictions"][0], &answer["predictions"][0]);
    assert_eq!(alone["classes"], batched["classes"]);
    for (a, b) in alone["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .zip(batched["probabilities"].as_array().unwrap())
    {
        assert!(
            (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-5,
            "{alone} {batched}"
        );
    }
    let (status, error) = predict_model(&server, "news", &[json!([1, 2, 3])]);
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("takes text"),
        "{error}"
    );
}
