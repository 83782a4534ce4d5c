#!/usr/bin/env python3
"""Built-in training at Criteo scale (issue 5's benchmark, second part): Kiln against PyTorch with sparse
embeddings on the same synthetic Criteo-layout data.

`kiln datagen criteo` writes 1,000,000 training rows and 100,000 evaluation rows (another seed: the same
population). The model in both frameworks: 26 categorical columns hashed into 100,000 buckets each with
8-wide embeddings, the 13 counts z-scored, a ReLU MLP of 256, 128 and 64 units, one logit; batch 512, one
epoch, Adam 0.002 for the dense part and lazy (sparse) Adam 0.002 for the embeddings (Kiln: row-sparse tables;
PyTorch: `nn.Embedding(sparse=True)` with `SparseAdam`). Each runs in its own process with 2 threads.

Reported: training throughput (examples/s over the training steps only, data loading and evaluation excluded),
evaluation AUC after the epoch, and the process's peak resident memory. Kiln runs twice: with its examples in
memory (the default for files this size) and streamed from the file through a 100,000-example shuffle buffer
(`--streaming=true`, how it reads files larger than memory).

    python3 bench/criteo.py [--rows 1000000]    # after `cargo build --release`; uses bench/.venv-train
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
SCHEMA = os.path.join(ROOT, "data", "criteo", "schema.yaml")
BUCKETS = 100_000
DIM = 8
HIDDEN = [256, 128, 64]
BATCH = 512
RATE = 0.002
THREADS = 2
LOG_EVERY = 20


def read(path):
    """Labels, z-scored counts (missing = the mean) and hashed categorical ids, as numpy arrays."""
    import numpy as np
    labels, counts, ids = [], [], []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            cells = line.rstrip("\n").split("\t")
            labels.append(float(cells[0]))
            counts.append([float(cell) if cell else np.nan for cell in cells[1:14]])
            ids.append([zlib.crc32(cell.encode()) % BUCKETS for cell in cells[14:40]])
    return np.array(labels, dtype=np.float32), np.array(counts, dtype=np.float32), np.array(ids, dtype=np.int64)


def auc(scores, labels):
    import numpy as np
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    positives = labels > 0.5
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def run_torch(train_path, eval_path, device="cpu"):
    """PyTorch's epoch; on a GPU (`device` "cuda") the data is copied to it once, before the clock starts."""
    import numpy as np
    import torch
    torch.set_num_threads(THREADS)
    torch.manual_seed(42)
    y, x, ids = read(train_path)
    mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0) + 1e-6

    def normalise(values):
        values = (values - mean) / std
        return np.nan_to_num(values, nan=0.0).astype(np.float32)

    x = normalise(x)
    ey, ex, eids = read(eval_path)
    ex = normalise(ex)
    tables = torch.nn.ModuleList([torch.nn.Embedding(BUCKETS, DIM, sparse=True) for _ in range(26)])
    for table in tables:
        torch.nn.init.uniform_(table.weight, -DIM ** -0.5, DIM ** -0.5)
    layers, width = [], 26 * DIM + 13
    for units in HIDDEN:
        layers += [torch.nn.Linear(width, units), torch.nn.ReLU()]
        width = units
    mlp = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
    tables, mlp = tables.to(device), mlp.to(device)
    y, x, ids, ex, eids = (torch.from_numpy(array).to(device) for array in (y, x, ids, ex, eids))
    dense = torch.optim.Adam(mlp.parameters(), lr=RATE)
    sparse = torch.optim.SparseAdam(list(tables.parameters()), lr=RATE)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def forward(batch_ids, batch_x):
        embedded = [table(batch_ids[:, column]) for column, table in enumerate(tables)]
        return mlp(torch.cat(embedded + [batch_x], dim=1)).squeeze(1)

    print(json.dumps({"ready": True}), flush=True)
    order = torch.from_numpy(np.random.default_rng(42).permutation(len(y))).to(device)
    started = time.time()
    for start in range(0, len(y), BATCH):
        rows = order[start:start + BATCH]
        loss = loss_fn(forward(ids[rows], x[rows]), y[rows])
        dense.zero_grad()
        sparse.zero_grad()
        loss.backward()
        dense.step()
        sparse.step()
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.time() - started
    with torch.no_grad():
        scores = torch.cat([forward(eids[s:s + 8192], ex[s:s + 8192]) for s in range(0, len(ey), 8192)]).cpu().numpy()
    print(json.dumps({"examples_per_second": len(y) / seconds, "auc": auc(scores, ey)}), flush=True)


def run(command, env=None):
    """Runs `command`; returns its stdout lines and its peak resident memory in MB."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, **(env or {})})
    lines = list(process.stdout)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        sys.exit(f"{command[0]} failed ({status}): {''.join(lines[-5:])}")
    return lines, usage.ru_maxrss / 1024


def kiln_run(kiln, train_path, eval_path, streaming, device="cpu"):
    job_dir = f"/tmp/kiln-bench-criteo-{os.getpid()}-{streaming}-{device}"
    lines, rss = run([kiln, "train", "dnn", "--job-dir", job_dir, "--",
                      f"--training_data_path={train_path}", f"--validation_data_path={eval_path}",
                      f"--schema={SCHEMA}", "--hidden_units=256,128,64", f"--batch_size={BATCH}",
                      f"--learning_rate={RATE}", "--num_epochs=1", f"--log_every={LOG_EVERY}",
                      f"--streaming={'true' if streaming else 'false'}", f"--device={device}"],
                     {"RAYON_NUM_THREADS": str(THREADS)})
    # Training throughput from the progress lines (each covers LOG_EVERY steps), so reading the data and the
    # evaluation are left out as for PyTorch.
    examples = seconds = 0.0
    auc_value = None
    for line in lines:
        if line.startswith("step "):
            rate = float(line.split("examples/s ")[1])
            examples += LOG_EVERY * BATCH
            seconds += LOG_EVERY * BATCH / rate
        if line.startswith("eval after epoch"):
            auc_value = float(line.split("auc ")[1].split(",")[0])
    return examples / seconds, auc_value, rss


def torch_run(train_path, eval_path, device):
    """PyTorch's epoch in a process of its own: (examples/s, eval AUC, peak RSS in MB)."""
    lines, rss = run([sys.executable, __file__, "--run", train_path, eval_path, device])
    result = json.loads(lines[-1])
    return result["examples_per_second"], result["auc"], rss


def print_table(results, baseline):
    """The table of (examples/s, eval AUC, peak RSS) by framework, with ratios to `results[baseline]`."""
    base_rate, _, base_rss = results[baseline]
    print(f"| {'framework':28} | {'examples/s':>10} | {'÷ PyTorch':>9} | {'eval AUC':>8} | {'peak RSS MB':>11} "
          f"| {'÷ PyTorch':>9} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 11}|{'-' * 10}|{'-' * 13}|{'-' * 11}|")
    for name, (rate, auc_value, rss) in results.items():
        print(f"| {name:28} | {rate:10,.0f} | {rate / base_rate:8.2f}x | {auc_value:8.4f} | {rss:11,.0f} "
              f"| {rss / base_rss:8.2f}x |", flush=True)


def generate(kiln, rows):
    """The training and evaluation files for `rows` training rows, written by `kiln datagen` the first time."""
    data = f"/tmp/kiln-bench-criteo-data-{rows}"
    os.makedirs(data, exist_ok=True)
    train_path, eval_path = f"{data}/train.tsv.gz", f"{data}/eval.tsv.gz"
    for path, count, seed in [(train_path, rows, 1), (eval_path, max(rows // 10, 1000), 2)]:
        if not os.path.exists(path):
            subprocess.check_call([kiln, "datagen", "criteo", "--rows", str(count), "--seed", str(seed),
                                   "--output", path], stdout=subprocess.DEVNULL)
    return train_path, eval_path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kiln", default=os.path.join(ROOT, "target", "release", "kiln"))
    args = parser.parse_args()
    if args.run:
        return run_torch(*args.run)
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")
    envs.ensure(VENV, ["tensorflow-cpu", "numpy"], torch=True)
    train_path, eval_path = generate(args.kiln, args.rows)
    results = {}
    for streaming in [False, True]:
        name = "Kiln, streamed" if streaming else "Kiln, in memory"
        results[name] = kiln_run(args.kiln, train_path, eval_path, streaming)
    results["PyTorch (sparse embeddings)"] = torch_run(train_path, eval_path, "cpu")
    print(f"\nCriteo layout, {args.rows:,} training rows: 26 x {BUCKETS:,} x {DIM} embeddings, MLP "
          f"{'-'.join(map(str, HIDDEN))}, batch {BATCH}, {THREADS} threads, one epoch\n")
    print_table(results, "PyTorch (sparse embeddings)")


if __name__ == "__main__":
    main()
