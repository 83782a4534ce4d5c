#!/usr/bin/env python3
"""Text classification against the classic baselines: Kiln's 20 Newsgroups example beside scikit-learn's tf-idf
naive Bayes, logistic regression and linear SVM on the same split.

The corpus is not in the repository (its license is unknown) and no package registry ships it: pass the
directory that holds the bydate split as JSON lines, `20news-bydate-train*.jsonl.gz` and
`20news-bydate-test*.jsonl.gz`, each line `{"group": ..., "text": ...}`. Only the --groups are used (default:
the ML Engine sample's four). Kiln trains each --definition (default: data/newsgroups/mlp.yaml) with
`kiln local train --master-image-uri sequential` and reports its test accuracy after the last epoch;
scikit-learn fits `TfidfVectorizer(sublinear_tf=True)` features on the training texts. Seconds are scikit-learn's
fit of the model on features made beforehand, and Kiln's whole run, reading and tokenizing included.

    cargo build --release && python3 bench/text.py --data DIR [--definition FILE ...]
"""
import argparse
import glob
import gzip
import json
import os
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_GROUPS = "alt.atheism,talk.religion.misc,comp.graphics,sci.space"


def split_file(data, split):
    found = sorted(glob.glob(os.path.join(data, f"20news-bydate-{split}*.jsonl.gz")))
    if not found:
        raise SystemExit(f"no 20news-bydate-{split}*.jsonl.gz in {data}")
    return found[0]


def load(path, groups):
    with gzip.open(path, "rt") as lines:
        rows = [json.loads(line) for line in lines]
    rows = [row for row in rows if row["group"] in groups]
    return [row["text"] for row in rows], [row["group"] for row in rows]


def baselines(train, test, groups):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.svm import LinearSVC

    (train_x, train_y), (test_x, test_y) = load(train, groups), load(test, groups)
    vectorizer = TfidfVectorizer(sublinear_tf=True)
    features = vectorizer.fit_transform(train_x)
    test_features = vectorizer.transform(test_x)
    rows = []
    for name, model in [("scikit-learn naive Bayes (alpha 0.01)", MultinomialNB(alpha=0.01)),
                        ("scikit-learn logistic regression (C 10)", LogisticRegression(C=10, max_iter=2000)),
                        ("scikit-learn linear SVM", LinearSVC())]:
        start = time.time()
        model.fit(features, train_y)
        accuracy = float((model.predict(test_features) == test_y).mean())
        rows.append((name, accuracy, time.time() - start))
    return rows, len(train_x), len(test_x)


def kiln(binary, definition, train, test, groups):
    with tempfile.TemporaryDirectory() as job_dir:
        start = time.time()
        run = subprocess.run(
            [binary, "local", "train", "--master-image-uri", "sequential", "--job-dir", job_dir, "--",
             "--model_definition", definition, "--label_field", "group", "--classes", ",".join(groups),
             "--training_data_path", train, "--validation_data_path", test],
            capture_output=True, text=True, check=True)
        seconds = time.time() - start
    metrics = [line for line in run.stdout.splitlines() + run.stderr.splitlines()
               if line.startswith("eval metrics: ")]
    if not metrics:
        raise SystemExit(f"kiln printed no eval metrics:\n{run.stderr[-2000:]}")
    return json.loads(metrics[-1][len("eval metrics: "):])["accuracy"], seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="directory of the bydate split as JSON lines")
    parser.add_argument("--groups", default=SAMPLE_GROUPS)
    parser.add_argument("--definition", action="append",
                        help="Sequential model definitions to train (repeat)")
    parser.add_argument("--kiln", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "kiln"))
    args = parser.parse_args()
    groups = args.groups.split(",")
    train, test = split_file(args.data, "train"), split_file(args.data, "test")
    definitions = args.definition or [os.path.join(ROOT, "data", "newsgroups", "mlp.yaml")]
    rows, train_count, test_count = baselines(train, test, groups)
    for definition in definitions:
        accuracy, seconds = kiln(args.kiln, definition, train, test, groups)
        rows.append((f"Kiln, {os.path.relpath(definition, ROOT)}", accuracy, seconds))
    best_baseline = max(accuracy for name, accuracy, _ in rows if name.startswith("scikit-learn"))
    print(f"{len(groups)} groups, {train_count} training and {test_count} test documents\n")
    print("| model | test accuracy | over the best baseline | seconds |")
    print("|---|---|---|---|")
    for name, accuracy, seconds in rows:
        print(f"| {name} | {accuracy:.4f} | {accuracy - best_baseline:+.4f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
