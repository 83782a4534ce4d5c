//! `kiln datagen criteo`: files in the Criteo layout that the built-in algorithms learn from, read
//! with `data/criteo/schema.yaml`, plain and gzip, train and eval splits from two seeds.

use std::path::Path;
use std::process::Command;

use crate::support::kiln_binary;

fn datagen(rows: &str, seed: &str, output: &Path) -> String {
    let run = Command::new(kiln_binary())
        .args([
            "datagen", "criteo", "--rows", rows, "--seed", seed, "--output",
        ])
        .arg(output)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stderr).into_owned()
}

#[test]
fn generated_criteo_data_is_learnable_by_the_built_in_algorithms() {
    let dir = tempfile::tempdir().unwrap();
    let report = datagen("30000", "1", &dir.path().join("train.tsv.gz"));
    assert!(report.contains("wrote 30000 rows"), "{report}");
    datagen("8000", "2", &dir.path().join("eval.tsv"));
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/criteo/schema.yaml");
    let mut scores = Vec::new();
    for algorithm in ["linear", "wide_deep"] {
        let job_dir = dir.path().join(algorithm);
        let run = Command::new(kiln_binary())
            .args(["train", algorithm, "--job-dir"])
            .arg(&job_dir)
            .arg("--")
            .arg(format!(
                "--training_data_path={}",
                dir.path().join("train.tsv.gz").display()
            ))
            .arg(format!(
                "--validation_data_path={}",
                dir.path().join("eval.tsv").display()
            ))
            .arg(format!("--schema={}", schema.display()))
            .args(["--num_epochs=2", "--batch_size=256"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            stdout.contains("13 numeric and 26 categorical columns"),
            "{stdout}"
        );
        let metrics = stdout
            .lines()
            .find_map(|line| line.strip_prefix("eval metrics: "))
            .unwrap();
        let metrics: serde_json::Value = serde_json::from_str(metrics).unwrap();
        scores.push(metrics["auc"].as_f64().unwrap());
    }
    // Both learn the signal; the deep part also finds the count × category interaction.
    assert!(scores[0] > 0.72, "linear AUC {}", scores[0]);
    assert!(
        scores[1] > scores[0] + 0.005,
        "wide & deep AUC {} vs linear {}",
        scores[1],
        scores[0]
    );
}
