//! Trains the built-in algorithms on the census data shipped in `data/census` and checks the
//! accuracy the foundation issue asks for, and that the export serves the same predictions.

use std::path::PathBuf;

use kiln_model::columns::RawValue;
use kiln_model::{Prediction, Task};
use kiln_train::{Algorithm, Schema, TrainConfig, train};

fn census() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/census")
}

fn config(algorithm: &str, job_dir: PathBuf) -> TrainConfig {
    let algorithm = Algorithm::find(algorithm).unwrap();
    let schema = Schema::from_file(&census().join("schema.yaml")).unwrap();
    let mut config = TrainConfig::new(
        algorithm.name,
        algorithm.columns_kind().unwrap(),
        schema,
        job_dir,
    );
    config.train_files = vec![census().join("adult.data.csv.gz")];
    config.eval_files = vec![census().join("adult.test.csv.gz")];
    config
}

#[test]
fn wide_and_deep_reaches_85_percent_on_census_and_exports_a_servable_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = config("wide_deep", dir.path().to_path_buf());
    let mut lines = Vec::new();
    let outcome = train(&config, &mut |line| {
        println!("{line}");
        lines.push(line.to_string());
    })
    .unwrap();
    assert!(outcome.metrics["accuracy"] >= 0.85, "{:?}", outcome.metrics);
    assert!(outcome.metrics["auc"] >= 0.88, "{:?}", outcome.metrics);
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("step ") && line.contains("examples/s"))
    );
    assert!(dir.path().join("checkpoints").read_dir().unwrap().count() >= 1);

    let model = kiln_model::load(&outcome.export_dir, &burn::tensor::Device::flex()).unwrap();
    assert_eq!(model.spec.task, Task::BinaryClassification);
    assert_eq!(model.spec.label_vocabulary, vec!["<=50K", ">50K"]);
    assert_eq!(model.spec.metrics["accuracy"], outcome.metrics["accuracy"]);
    let rich: Vec<RawValue> = model
        .spec
        .columns
        .inputs
        .iter()
        .map(|input| match input.name.as_str() {
            "age" => RawValue::Number(45.0),
            "education_num" => RawValue::Number(16.0),
            "capital_gain" => RawValue::Number(99999.0),
            "hours_per_week" => RawValue::Number(60.0),
            "education" => RawValue::Text("Doctorate".into()),
            "marital_status" => RawValue::Text("Married-civ-spouse".into()),
            "occupation" => RawValue::Text("Exec-managerial".into()),
            _ => RawValue::Missing,
        })
        .collect();
    let encoded = model.encoder.encode(&rich).unwrap();
    match &kiln_model::predict(&model, &[encoded])[0] {
        Prediction::Binary {
            probability, class, ..
        } => {
            assert!(
                *probability > 0.5,
                "a married doctor with capital gains: {probability}"
            );
            assert_eq!(class, ">50K");
        }
        other => panic!("{other:?}"),
    }
}

/// The census rows split over a gzip CSV, a JSON-lines file and a TFRecord file, read by one
/// pattern and streamed through a shuffle buffer much smaller than the data.
#[test]
fn streamed_files_of_three_formats_train_as_well_as_one_file() {
    use kiln_events::example::{Feature, encode};
    use std::io::{Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::from_file(&census().join("schema.yaml")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(census().join("adult.data.csv.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let third = lines.len() / 3;
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.path().join("part-1.csv.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(lines[..third].join("\n").as_bytes()).unwrap();
    gz.finish().unwrap();
    let cells = |line: &str| -> Vec<String> {
        line.split(',')
            .map(|cell| cell.trim().to_string())
            .collect()
    };
    let json: Vec<String> = lines[third..2 * third]
        .iter()
        .map(|line| {
            let object: serde_json::Map<String, serde_json::Value> = schema
                .columns
                .iter()
                .zip(cells(line))
                .map(|(name, cell)| match cell.parse::<f64>() {
                    Ok(number) => (name.clone(), serde_json::json!(number)),
                    Err(_) => (name.clone(), serde_json::json!(cell)),
                })
                .collect();
            serde_json::Value::Object(object).to_string()
        })
        .collect();
    std::fs::write(dir.path().join("part-2.jsonl"), json.join("\n")).unwrap();
    let mut records = Vec::new();
    for line in &lines[2 * third..] {
        let features: Vec<(&str, Feature)> = schema
            .columns
            .iter()
            .zip(cells(line))
            .map(|(name, cell)| match cell.parse::<i64>() {
                Ok(number) => (name.as_str(), Feature::Ints(vec![number])),
                Err(_) => (name.as_str(), Feature::Bytes(vec![cell.into_bytes()])),
            })
            .collect();
        records.extend(kiln_events::record::frame(&encode(&features)));
    }
    std::fs::write(dir.path().join("part-3.tfrecord"), records).unwrap();

    let mut config = config("wide_deep", dir.path().join("job"));
    config.train_files = vec![dir.path().join("part-*")];
    config.streaming = Some(true);
    config.shuffle_buffer = 2000;
    config.num_epochs = 1;
    let mut lines_logged = Vec::new();
    let outcome = train(&config, &mut |line| lines_logged.push(line.to_string())).unwrap();
    assert!(
        lines_logged[0].contains("streamed (shuffle buffer 2000) training rows"),
        "{lines_logged:?}"
    );
    assert_eq!(
        outcome.steps,
        lines.len().div_ceil(config.batch_size),
        "every row, once"
    );
    assert!(outcome.metrics["accuracy"] >= 0.84, "{:?}", outcome.metrics);
}

#[test]
fn linear_and_dnn_siblings_train_and_a_regressor_reports_rmse() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in ["linear", "dnn"] {
        let mut config = config(algorithm, dir.path().join(algorithm));
        config.num_epochs = 2;
        let outcome = train(&config, &mut |_| {}).unwrap();
        assert!(
            outcome.metrics["accuracy"] >= 0.82,
            "{algorithm}: {:?}",
            outcome.metrics
        );
    }
    let mut config = config("wide_deep", dir.path().join("regressor"));
    config.schema.label = "hours_per_week".into();
    config.schema.ignore.push("income_bracket".into());
    config.num_epochs = 1;
    let outcome = train(&config, &mut |_| {}).unwrap();
    // Predicting hours worked from the rest; the label's own standard deviation is about 12.4.
    assert!(outcome.metrics["rmse"] < 12.0, "{:?}", outcome.metrics);
    assert!(outcome.metrics.contains_key("mae"));
}

#[test]
fn early_stopping_ends_training_and_exports_the_best_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config("wide_deep", dir.path().to_path_buf());
    config.num_epochs = 20;
    config.learning_rate = 0.02;
    config.early_stopping = Some(kiln_train::EarlyStopping {
        metric: "loss".into(),
        patience: 1,
        min_delta: 0.0,
    });
    let mut losses = Vec::new();
    let mut stopped = false;
    let outcome = train(&config, &mut |line| {
        if let Some(rest) = line.strip_prefix("eval after epoch ") {
            let loss = rest.rsplit("loss ").next().unwrap().parse::<f64>().unwrap();
            losses.push(loss);
        }
        stopped |= line.starts_with("early stopping after epoch");
    })
    .unwrap();
    assert!(stopped && losses.len() < 20, "{losses:?}");
    let best = losses.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(
        (outcome.metrics["loss"] - best).abs() < 1e-4,
        "{:?} vs {losses:?}",
        outcome.metrics
    );
    // The last evaluation did not improve on the best: that is why training stopped.
    assert!(losses.last().unwrap() >= &best);
    let model = kiln_model::load(&outcome.export_dir, &burn::tensor::Device::flex()).unwrap();
    assert_eq!(model.spec.metrics["loss"], outcome.metrics["loss"]);
}

#[test]
fn training_resumes_from_the_newest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config("wide_deep", dir.path().to_path_buf());
    config.num_epochs = 2;
    train(&config, &mut |_| {}).unwrap();
    assert!(
        dir.path()
            .join("checkpoints/epoch-2/kiln_model.json")
            .is_file()
    );

    // As if the run had been killed after epoch 2 of 3: only epoch 3 runs.
    config.num_epochs = 3;
    config.resume = true;
    let mut lines = Vec::new();
    let outcome = train(&config, &mut |line| lines.push(line.to_string())).unwrap();
    let evaluations: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("eval after epoch"))
        .collect();
    assert_eq!(evaluations.len(), 1, "{lines:?}");
    assert!(
        evaluations[0].starts_with("eval after epoch 3 (step 1527)"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("resuming from") && l.contains("epoch-2")),
        "{lines:?}"
    );
    assert!(outcome.metrics["accuracy"] >= 0.85, "{:?}", outcome.metrics);
    assert!(dir.path().join("checkpoints/epoch-3").is_dir());

    // The tables' and the dense part's optimizer moments are checkpointed too, so the resumed
    // run ends exactly where an uninterrupted one does.
    let whole = tempfile::tempdir().unwrap();
    let mut uninterrupted = config.clone();
    uninterrupted.job_dir = whole.path().to_path_buf();
    uninterrupted.resume = false;
    let reference = train(&uninterrupted, &mut |_| {}).unwrap();
    assert_eq!(outcome.metrics, reference.metrics);

    // A checkpoint of another network is refused, not silently mixed in.
    config.num_epochs = 4;
    config.hidden_units = vec![10];
    let error = train(&config, &mut |_| {}).unwrap_err().to_string();
    assert!(error.contains("of another model"), "{error}");
}
