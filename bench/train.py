#!/usr/bin/env python3
"""Built-in training speed (issue 5's benchmark, first part): census Wide & Deep to 85% eval accuracy.

The same model in each framework: the wide part sums one weight per categorical value, per bucket of age
(11 buckets) and per hashed cross (education x occupation: 10,000 buckets; age bucket x race x occupation:
1,000,000; native_country x occupation: 10,000); the deep part feeds 8-wide embeddings of the 8 categorical
columns and the 5 z-scored numeric columns to ReLU layers of 100, 70, 50 and 25 units. Batch 64, Adam 0.002 for
the deep part, a sparse optimizer for the wide part (Kiln: FTRL, 0.05; PyTorch: sparse Adagrad on an
EmbeddingBag with sparse gradients; TensorFlow: Keras' FTRL in a custom step), the census training file,
evaluation on the 16,281 test rows after every epoch. Each framework runs in its own process with 2 threads.
Two times to the first evaluation at or above 85% accuracy: from process start (imports, reading and encoding the
data included), and from the end of data loading and model building (training and evaluation only).

    python3 bench/train.py            # after `cargo build --release`; creates bench/.venv-train on first use

The first run installs torch (CPU wheels when download.pytorch.org is reachable, else PyPI's) and
tensorflow-cpu into bench/.venv-train. Prints a table and the ratios.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import time
import zlib

import envs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv-train")
CENSUS = os.path.join(ROOT, "data", "census")
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
           "relationship", "race", "gender", "capital_gain", "capital_loss", "hours_per_week", "native_country",
           "income_bracket"]
CATEGORICAL = ["workclass", "education", "marital_status", "occupation", "relationship", "race", "gender",
               "native_country"]
HASHED = {"occupation": 100, "native_country": 100}
NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
AGE_BOUNDARIES = [18, 25, 30, 35, 40, 45, 50, 55, 60, 65]
CROSSES = [(["education", "occupation"], 10_000), (["age_bucket", "race", "occupation"], 1_000_000),
           (["native_country", "occupation"], 10_000)]
TARGET = 0.85
THREADS = 2


def ensure_venv():
    envs.ensure(VENV, ["tensorflow-cpu", "numpy"], torch=True)


# ---- data: the same encoding for both Python frameworks ---------------------------------------------

def read(name):
    with gzip.open(os.path.join(CENSUS, name), "rt") as handle:
        rows = [[cell.strip() for cell in line.split(",")] for line in handle if line.strip()]
    return [row for row in rows if len(row) == len(COLUMNS)]


def encode(train_rows, test_rows):
    """Ids into one stacked wide table, ids per embedding table, z-scored numerics, labels."""
    import numpy as np
    index = {name: i for i, name in enumerate(COLUMNS)}
    vocabularies = {}
    for name in CATEGORICAL:
        if name not in HASHED:
            values = sorted({row[index[name]] for row in train_rows})
            vocabularies[name] = {value: i + 1 for i, value in enumerate(values)}  # 0: unknown
    sizes = {name: HASHED.get(name, len(vocabularies.get(name, {})) + 1) for name in CATEGORICAL}
    numeric = np.array([[float(row[index[n]]) for n in NUMERIC] for row in train_rows], dtype=np.float32)
    mean, std = numeric.mean(0), numeric.std(0) + 1e-12
    wide_sizes = [sizes[n] for n in CATEGORICAL] + [len(AGE_BOUNDARIES) + 1] + [b for _, b in CROSSES]
    wide_offsets = np.cumsum([0] + wide_sizes[:-1])

    def category(name, value):
        if name in HASHED:
            return zlib.crc32(value.encode()) % HASHED[name]
        return vocabularies[name].get(value, 0)

    def rows_to_arrays(rows):
        cat = np.zeros((len(rows), len(CATEGORICAL)), dtype=np.int64)
        wide = np.zeros((len(rows), len(wide_sizes)), dtype=np.int64)
        num = np.zeros((len(rows), len(NUMERIC)), dtype=np.float32)
        label = np.zeros(len(rows), dtype=np.float32)
        for r, row in enumerate(rows):
            values = {name: row[index[name]] for name in COLUMNS}
            age = float(values["age"])
            values["age_bucket"] = str(sum(age >= b for b in AGE_BOUNDARIES))
            for c, name in enumerate(CATEGORICAL):
                cat[r, c] = category(name, values[name])
            wide[r, :len(CATEGORICAL)] = cat[r]
            wide[r, len(CATEGORICAL)] = int(values["age_bucket"])
            for k, (names, buckets) in enumerate(CROSSES):
                key = "\x01".join(values[n] for n in names)
                wide[r, len(CATEGORICAL) + 1 + k] = zlib.crc32(key.encode()) % buckets
            num[r] = [(float(values[n]) - mean[i]) / std[i] for i, n in enumerate(NUMERIC)]
            label[r] = 1.0 if values["income_bracket"].startswith(">50K") else 0.0
        return cat, wide + wide_offsets, num, label

    return rows_to_arrays(train_rows), rows_to_arrays(test_rows), [sizes[n] for n in CATEGORICAL], sum(wide_sizes)


# ---- one framework per process ------------------------------------------------------------------------

def run_torch(epochs):
    print_ready = lambda: print(json.dumps({"ready": True}), flush=True)
    torch_census(epochs, print_ready, report)


def torch_census(epochs, on_ready, on_epoch):
    """Trains the PyTorch Wide & Deep on census (2 threads), calling on_ready() once the data is encoded and the
    model built, and on_epoch(epoch, accuracy) after each epoch. Returns the model and the encoded test arrays
    (bench/serve.py exports this model to ONNX)."""
    import torch
    torch.set_num_threads(THREADS)
    torch.manual_seed(42)
    train, test, sizes, wide_rows = encode(read("adult.data.csv.gz"), read("adult.test.csv.gz"))

    class WideDeep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wide = torch.nn.EmbeddingBag(wide_rows, 1, mode="sum", sparse=True)
            torch.nn.init.zeros_(self.wide.weight)
            self.embeddings = torch.nn.ModuleList(torch.nn.Embedding(s, 8, sparse=True) for s in sizes)
            layers, width = [], 8 * len(sizes) + len(NUMERIC)
            for units in (100, 70, 50, 25):
                layers += [torch.nn.Linear(width, units), torch.nn.ReLU()]
                width = units
            self.deep = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))

        def forward(self, cat, wide, num):
            deep_in = torch.cat([e(cat[:, i]) for i, e in enumerate(self.embeddings)] + [num], 1)
            return (self.deep(deep_in) + self.wide(wide)).squeeze(1)

    model = WideDeep()
    sparse = [model.wide.weight]
    embeddings = [e.weight for e in model.embeddings]
    optimizers = [torch.optim.Adagrad(sparse, lr=0.05), torch.optim.SparseAdam(embeddings, lr=0.002),
                  torch.optim.Adam(model.deep.parameters(), lr=0.002)]
    loss_fn = torch.nn.BCEWithLogitsLoss()
    tensors = [torch.from_numpy(a) for a in train]
    test_tensors = [torch.from_numpy(a) for a in test]
    on_ready()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(tensors[3]))
        model.train()
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            cat, wide, num, label = (t[batch] for t in tensors)
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss_fn(model(cat, wide, num), label).backward()
            for optimizer in optimizers:
                optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(*test_tensors[:3])
            accuracy = ((logits > 0).float() == test_tensors[3]).float().mean().item()
        on_epoch(epoch, accuracy)
    return model, test


def run_tensorflow(epochs):
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    tf.random.set_seed(42)
    train, test, sizes, wide_rows = encode(read("adult.data.csv.gz"), read("adult.test.csv.gz"))
    cat_in = tf.keras.Input((len(sizes),), dtype="int64")
    wide_in = tf.keras.Input((train[1].shape[1],), dtype="int64")
    num_in = tf.keras.Input((len(NUMERIC),))
    wide_table = tf.keras.layers.Embedding(wide_rows, 1, embeddings_initializer="zeros")
    ops = tf.keras.ops
    wide_logit = ops.sum(wide_table(wide_in), axis=[1, 2])
    parts = [tf.keras.layers.Embedding(s, 8)(cat_in[:, i]) for i, s in enumerate(sizes)] + [num_in]
    x = tf.keras.layers.Concatenate(axis=1)(parts)
    for units in (100, 70, 50, 25):
        x = tf.keras.layers.Dense(units, activation="relu")(x)
    logit = ops.squeeze(tf.keras.layers.Dense(1)(x), 1) + wide_logit
    model = tf.keras.Model([cat_in, wide_in, num_in], logit)
    wide_vars = wide_table.trainable_variables
    deep_vars = [v for v in model.trainable_variables if all(v is not w for w in wide_vars)]
    ftrl, adam = tf.keras.optimizers.Ftrl(0.05), tf.keras.optimizers.Adam(0.002)
    loss_fn = tf.keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(cat, wide, num, label):
        with tf.GradientTape() as tape:
            loss = loss_fn(label, model([cat, wide, num], training=True))
        grads = tape.gradient(loss, wide_vars + deep_vars)
        ftrl.apply_gradients(zip(grads[:len(wide_vars)], wide_vars))
        adam.apply_gradients(zip(grads[len(wide_vars):], deep_vars))

    data = tf.data.Dataset.from_tensor_slices(tuple(train)).shuffle(len(train[3]), seed=42).batch(64)
    print(json.dumps({"ready": True}), flush=True)
    for epoch in range(1, epochs + 1):
        for cat, wide, num, label in data:
            step(cat, wide, num, label)
        logits = model.predict([test[0], test[1], test[2]], batch_size=4096, verbose=0)
        accuracy = float(np.mean((logits > 0) == (test[3] > 0.5)))
        report(epoch, accuracy)


def report(epoch, accuracy):
    print(json.dumps({"epoch": epoch, "accuracy": accuracy, "time": time.time()}), flush=True)


# ---- the driver ---------------------------------------------------------------------------------------

def time_to_target(command, parse, env=None, target=TARGET):
    """Runs `command`; returns (seconds to the first evaluation >= `target` from the start, the same from
    the end of data loading and model building, epochs, accuracy, best accuracy, seconds per epoch from the end
    of loading to the last evaluation seen). The first four are None when no evaluation reaches `target`."""
    started = time.time()
    ready = None
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, **(env or {})})
    best, per_epoch = 0.0, None
    for line in process.stdout:
        found = parse(line)
        if found == "ready":
            ready = ready or time.time()
            continue
        if found is None:
            continue
        epoch, accuracy = found
        now = time.time()
        best = max(best, accuracy)
        per_epoch = (now - (ready or started)) / epoch
        if accuracy >= target:
            process.kill()
            process.wait()
            return now - started, now - (ready or started), epoch, accuracy, best, per_epoch
    process.wait()
    return None, None, None, None, best, per_epoch


def parse_kiln(line):
    if line.startswith(("wide_deep: ", "sequential: ")):
        return "ready"
    if not line.startswith("eval after epoch "):
        return None
    epoch = int(line.split()[3])
    accuracy = float(line.split("accuracy ")[1].split(",")[0])
    return epoch, accuracy


def parse_json(line):
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if "ready" in entry:
        return "ready"
    return entry["epoch"], entry["accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", choices=["torch", "tensorflow"], help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--kiln", default=os.path.join(ROOT, "target", "release", "kiln"))
    args = parser.parse_args()
    if args.run == "torch":
        return run_torch(args.epochs)
    if args.run == "tensorflow":
        return run_tensorflow(args.epochs)
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")
    ensure_venv()
    job_dir = os.path.join("/tmp", f"kiln-bench-train-{os.getpid()}")
    results = {
        "Kiln (burn-flex, row-sparse tables)": time_to_target(
            [args.kiln, "train", "wide_deep", "--job-dir", job_dir, "--",
             f"--training_data_path={CENSUS}/adult.data.csv.gz", f"--validation_data_path={CENSUS}/adult.test.csv.gz",
             f"--schema={CENSUS}/schema.yaml", f"--num_epochs={args.epochs}", "--batch_size=64"],
            parse_kiln, {"RAYON_NUM_THREADS": str(THREADS)}),
        "PyTorch (sparse embeddings)": time_to_target([sys.executable, __file__, "--run", "torch",
                                                       "--epochs", str(args.epochs)], parse_json),
        "TensorFlow 2 (Keras)": time_to_target([sys.executable, __file__, "--run", "tensorflow",
                                                "--epochs", str(args.epochs)], parse_json),
    }
    print(f"\ncensus Wide & Deep, batch 64, {THREADS} threads: wall time to {TARGET:.0%} eval accuracy, from the")
    print("process start (imports and data loading included), and from the end of data loading and model building\n")
    print(f"| {'framework':36} | {'total s':>8} | {'÷ Kiln':>7} | {'train s':>8} | {'÷ Kiln':>7} | {'epochs':>6} | {'accuracy':>8} |")
    print(f"|{'-' * 38}|{'-' * 10}|{'-' * 9}|{'-' * 10}|{'-' * 9}|{'-' * 8}|{'-' * 10}|")
    kiln = next(iter(results.values()))
    for name, (total, train, epochs, accuracy, best, _) in results.items():
        if total is None:
            print(f"| {name:36} | {'never':>8} | {'':>7} | {'':>8} | {'':>7} | {'':>6} | {best:8.4f} |")
            continue
        print(f"| {name:36} | {total:8.2f} | {total / kiln[0]:6.1f}x | {train:8.2f} | {train / kiln[1]:6.1f}x "
              f"| {epochs:6d} | {accuracy:8.4f} |")


if __name__ == "__main__":
    main()
