//! The `sequential` algorithm on scikit-learn's digits (8 x 8 images, label last): a CNN learns
//! them, and a run resumed from a checkpoint ends exactly where the uninterrupted run does, which
//! needs the optimizer's moments restored as well as the weights. The same digits split into CSV
//! and gzipped TFRecord files train to the same model, and streamed from them as well.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kiln_train::{Algorithm, TrainArgs, TrainOutcome};

fn digits() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/sklearn-toy/digits.csv.gz")
}

/// A small CNN without dropout, so two runs with the same seed take the same steps.
const DEFINITION: &str = "
input: {type: image, height: 8, width: 8, scale: 0.0625}
layers:
  - {type: Conv2D, filters: 8, kernel_size: 3, padding: same, activation: relu}
  - {type: MaxPooling2D, pool_size: 2}
  - {type: Flatten}
  - {type: Dense, units: 32, activation: tanh}
  - {type: Dense, units: 10, activation: softmax}
optimizer: {type: Adam, learning_rate: 0.003}
";

/// One training at a time in this test process. A run repeats bit for bit when it has the thread
/// pool to itself, as a job's replica (a process of its own) does; when this file's tests trained
/// at once on the shared pool, how the pool split the work shifted sums in the last bits, and two
/// runs compared here for equality differed now and then.
static TRAINING: Mutex<()> = Mutex::new(());

/// Runs the `sequential` algorithm with `args` in `dir`, returning its outcome and log lines.
fn run(dir: &Path, args: &[String]) -> Result<(TrainOutcome, Vec<String>), kiln_train::TrainError> {
    let _alone = TRAINING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut lines = Vec::new();
    let outcome = TrainArgs::parse(args)?.run(
        Algorithm::find("kiln/sequential")?,
        Some(dir.to_path_buf()),
        None,
        &mut |line| lines.push(line.to_string()),
    )?;
    Ok((outcome, lines))
}

fn train(
    dir: &Path,
    extra: &[&str],
) -> Result<(TrainOutcome, Vec<String>), kiln_train::TrainError> {
    train_on(dir, &digits(), extra)
}

fn train_on(
    dir: &Path,
    data: &Path,
    extra: &[&str],
) -> Result<(TrainOutcome, Vec<String>), kiln_train::TrainError> {
    let definition = dir.join("definition.yaml");
    std::fs::write(&definition, DEFINITION).unwrap();
    let mut args: Vec<String> = vec![
        format!("--model_definition={}", definition.display()),
        format!("--training_data_path={}", data.display()),
        "--label_column=-1".into(),
        "--batch_size=64".into(),
    ];
    args.extend(extra.iter().map(|arg| arg.to_string()));
    run(dir, &args)
}

#[test]
fn a_cnn_learns_digits_and_a_resumed_run_matches_the_uninterrupted_one() {
    let whole = tempfile::tempdir().unwrap();
    let (uninterrupted, _) = train(whole.path(), &["--num_epochs=4"]).unwrap();
    assert!(
        uninterrupted.metrics["accuracy"] >= 0.9,
        "{:?}",
        uninterrupted.metrics
    );

    let split = tempfile::tempdir().unwrap();
    train(split.path(), &["--num_epochs=2"]).unwrap();
    let checkpoint = split.path().join("checkpoints/epoch-2");
    assert!(checkpoint.join("optimizer.bpk").is_file());
    let (resumed, lines) = train(split.path(), &["--num_epochs=4", "--resume=true"]).unwrap();
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("resuming from") && line.ends_with("after epoch 2")),
        "{lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|line| line.starts_with("eval after epoch 1"))
    );
    assert_eq!(resumed.steps, uninterrupted.steps);
    assert_eq!(
        resumed.metrics, uninterrupted.metrics,
        "weights, Adam's moments and the shuffles all carry over"
    );

    // Without the optimizer's state the resume is refused rather than silently restarted.
    std::fs::remove_file(split.path().join("checkpoints/epoch-4/optimizer.bpk")).unwrap();
    let error = train(split.path(), &["--num_epochs=5", "--resume=true"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("optimizer.bpk"), "{error}");
}

/// Writes the digits' first 900 rows as CSV and the rest as gzipped TFRecord examples of raw
/// pixel bytes, into `dir/part-*`.
fn split_digits(dir: &Path) {
    use std::io::{BufRead, Write};

    use kiln_events::example::{Feature, encode};
    let lines: Vec<String> = kiln_events::files::open(&digits())
        .unwrap()
        .lines()
        .map(Result::unwrap)
        .collect();
    std::fs::write(dir.join("part-0.csv"), lines[..900].join("\n")).unwrap();
    let file = std::fs::File::create(dir.join("part-1.tfrecord.gz")).unwrap();
    let mut gzip = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    for line in &lines[900..] {
        let cells: Vec<u8> = line.split(',').map(|cell| cell.parse().unwrap()).collect();
        let (label, pixels) = cells.split_last().unwrap();
        let example = encode(&[
            ("image", Feature::Bytes(vec![pixels.to_vec()])),
            ("label", Feature::Ints(vec![i64::from(*label)])),
        ]);
        gzip.write_all(&kiln_events::record::frame(&example))
            .unwrap();
    }
    gzip.finish().unwrap();
}

#[test]
fn csv_and_tfrecord_parts_train_as_one_file_does_in_memory_or_streamed() {
    let parts = tempfile::tempdir().unwrap();
    split_digits(parts.path());
    let pattern = parts.path().join("part-*");
    let fields = [
        "--label_field=label",
        "--input_field=image",
        "--num_epochs=3",
    ];

    let whole = tempfile::tempdir().unwrap();
    let (one_file, lines) = train(whole.path(), &["--num_epochs=3"]).unwrap();
    assert!(
        lines
            .iter()
            .any(|line| line.contains("1618 training examples (in memory), 179 evaluation")),
        "every tenth example held out: {lines:?}"
    );
    let in_memory = tempfile::tempdir().unwrap();
    let (from_parts, _) = train_on(in_memory.path(), &pattern, &fields).unwrap();
    assert_eq!(
        from_parts.metrics, one_file.metrics,
        "the same examples in the same order, pixels from CSV text or TFRecord bytes"
    );

    let streamed = tempfile::tempdir().unwrap();
    let (outcome, lines) = train_on(
        streamed.path(),
        &pattern,
        &[&fields[..], &["--streaming=true", "--shuffle_buffer=300"]].concat(),
    )
    .unwrap();
    assert!(
        lines.iter().any(|line| line.contains(
            "1618 training examples (streamed, shuffle buffer 300), streamed evaluation"
        )),
        "{lines:?}"
    );
    assert_eq!(outcome.eval_rows, 179);
    assert_eq!(outcome.steps, from_parts.steps);
    assert!(outcome.metrics["accuracy"] >= 0.9, "{:?}", outcome.metrics);
}

#[test]
fn a_definition_that_does_not_fit_is_refused_with_the_layer_named() {
    let dir = tempfile::tempdir().unwrap();
    let definition = dir.path().join("bad.json");
    std::fs::write(
        &definition,
        r#"{"input": {"type": "image", "height": 8, "width": 8},
            "layers": [{"type": "Dense", "units": 10, "activation": "softmax"}]}"#,
    )
    .unwrap();
    let args: Vec<String> = vec![
        format!("--model_definition={}", definition.display()),
        format!("--training_data_path={}", digits().display()),
        "--label_column=-1".into(),
    ];
    let error = run(dir.path(), &args).unwrap_err().to_string();
    assert_eq!(
        error,
        "layers[0] (Dense) does not take an image of 8 x 8 x 1"
    );

    std::fs::write(
        &definition,
        r#"{"input": {"type": "image", "height": 8, "width": 8},
            "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]}"#,
    )
    .unwrap();
    let error = run(dir.path(), &args).unwrap_err().to_string();
    assert_eq!(
        error,
        "layers[1]: the labels have 10 classes; the last layer has 3 units"
    );
}

/// Token ids into an Embedding, averaged: a text classifier that needs the tokenizer's
/// sequences, padded at the front, at training and at serving time alike.
#[test]
fn an_embedding_text_classifier_learns_four_groups_of_documents() {
    let dir = tempfile::tempdir().unwrap();
    let definition = dir.path().join("embedding.yaml");
    std::fs::write(
        &definition,
        "input: {type: text, tokenizer: {num_words: 20000}, sequence_length: 300}
layers:
  - {type: Embedding, output_dim: 32}
  - {type: GlobalAveragePooling1D}
  - {type: Dense, units: 32, activation: relu}
  - {type: Dense, units: 4, activation: softmax}
optimizer: {type: Adam, learning_rate: 0.005}
",
    )
    .unwrap();
    // Documents of four groups, made here (`kiln_train::datagen::topics`): 2,000 to learn from,
    // 800 more from another seed to evaluate on.
    let news = |split: &str, documents: usize, seed: u64| {
        let path = dir.path().join(format!("topics-{split}.jsonl"));
        let mut file = std::fs::File::create(&path).unwrap();
        kiln_train::datagen::topics(documents, seed, &mut file).unwrap();
        path.display().to_string()
    };
    let (train, test) = (news("train", 2000, 1), news("test", 800, 2));
    let args: Vec<String> = vec![
        format!("--model_definition={}", definition.display()),
        format!("--training_data_path={train}"),
        format!("--validation_data_path={test}"),
        "--label_field=group".into(),
        "--classes=alt.atheism,talk.religion.misc,comp.graphics,sci.space".into(),
        "--num_epochs=6".into(),
    ];
    let (outcome, _) = run(dir.path(), &args).unwrap();
    assert!(outcome.metrics["accuracy"] >= 0.9, "{:?}", outcome.metrics);
    assert_eq!(outcome.eval_rows, 800, "the test documents");

    let model = kiln_model::sequential::SequentialModel::load(
        &outcome.export_dir,
        &burn::tensor::Device::flex(),
    )
    .unwrap();
    let mut values = Vec::new();
    for text in [
        "The shuttle launch to orbit was delayed by NASA",
        "Convert the JPEG image to GIF with this graphics viewer",
    ] {
        model.spec.input.encode_text(text, &mut values).unwrap();
    }
    let classes: Vec<String> = model
        .predict(values, 2)
        .into_iter()
        .map(|prediction| match prediction {
            kiln_model::Prediction::MultiClass { class, .. } => class,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(classes, ["sci.space", "comp.graphics"]);
}
