#!/usr/bin/env python3
"""Built-in training on an NVIDIA GPU (issue 5's GPU path): Kiln built with `--features cuda` and run with
`--device cuda`, against PyTorch on the same GPU, on two of the CPU benchmarks' workloads.

- MNIST: the Keras example's CNN as in bench/mnist.py (Adadelta 1.0, batch 128, at most 12 epochs): wall time
  to 99.2% test accuracy and seconds per epoch. PyTorch runs the same network with Keras' initialisation and
  optimizer settings, its data held on the GPU.
- Criteo layout: bench/criteo.py's model and epoch (26 x 100,000 x 8 embeddings, MLP 256-128-64, batch 512,
  lazy Adam 0.002 on the embeddings): training examples/s, eval AUC, host peak RSS. PyTorch keeps its
  embeddings and data on the GPU (`nn.Embedding(sparse=True)`, `SparseAdam`); Kiln keeps its row-sparse
  tables in host memory and runs the dense part on the GPU.

Each run is its own process with 2 CPU threads. Uses the Python it is started with, which needs torch with
CUDA and numpy (GPU machines bring their own; no virtual environment is made).

    python3 bench/gpu.py --kiln target/release/kiln [--mnist DIR] [--rows 1000000] [--only mnist|criteo]

A binary from bench/cuda-build-offline.sh runs with its stub library preloaded (the script prints the path):

    LD_PRELOAD=target/cuda/release/libkiln_llvm_stubs.so python3 bench/gpu.py --kiln target/cuda/release/kiln
"""
import argparse
import json
import os
import sys

import criteo
import mnist
from train import parse_json, parse_kiln, time_to_target

THREADS = 2


def run_torch_mnist(directory):
    """The Keras example in PyTorch on the GPU: Glorot-uniform weights, zero biases, Adadelta (rho 0.95,
    epsilon 1e-7), a fresh permutation each epoch; prints the test accuracy after each epoch as JSON."""
    import torch
    from torch import nn
    torch.set_num_threads(THREADS)
    torch.manual_seed(42)
    device = "cuda"

    def images(name):
        return torch.from_numpy(mnist.idx(name, directory).astype("float32") / 255.0)[:, None].to(device)

    def labels(name):
        return torch.from_numpy(mnist.idx(name, directory).astype("int64")).to(device)

    x, y = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
    tx, ty = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10)).to(device)
    for layer in model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    print(json.dumps({"ready": True}), flush=True)
    for epoch in range(mnist.EPOCHS):
        model.train()
        order = torch.randperm(len(y), device=device)
        for start in range(0, len(y), 128):
            rows = order[start:start + 128]
            loss = loss_fn(model(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(tx[s:s + 1000]).argmax(1) == ty[s:s + 1000]).sum())
                          for s in range(0, len(ty), 1000))
        print(json.dumps({"epoch": epoch + 1, "accuracy": correct / len(ty)}), flush=True)


def bench_mnist(kiln, directory):
    env = {"RAYON_NUM_THREADS": str(THREADS)}
    job_dir = f"/tmp/kiln-bench-gpu-mnist-{os.getpid()}"
    results = {
        "Kiln (sequential, burn-cuda)": time_to_target(mnist.kiln_command(kiln, job_dir, directory, "cuda"),
                                                       parse_kiln, env, target=mnist.TARGET),
        "PyTorch (cuda)": time_to_target([sys.executable, __file__, "--run", "mnist", directory], parse_json,
                                         target=mnist.TARGET),
    }
    print(f"\nMNIST, Keras' CNN, Adadelta, batch 128, on the GPU: wall time to {mnist.TARGET:.1%} test accuracy "
          "from the process start and from\nthe end of loading; seconds per epoch (training and evaluation)\n")
    mnist.print_table(results)


def bench_criteo(kiln, rows):
    train_path, eval_path = criteo.generate(kiln, rows)
    results = {
        "Kiln (burn-cuda)": criteo.kiln_run(kiln, train_path, eval_path, False, "cuda"),
        "PyTorch (cuda)": criteo.torch_run(train_path, eval_path, "cuda"),
    }
    print(f"\nCriteo layout, {rows:,} training rows, one epoch on the GPU: examples/s over the training steps, "
          "eval AUC, host peak RSS\n")
    criteo.print_table(results, "PyTorch (cuda)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--kiln", default=os.path.join(mnist.ROOT, "target", "release", "kiln"))
    parser.add_argument("--mnist", default=mnist.MNIST, help="the folder of MNIST's four idx .gz files")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["mnist", "criteo"])
    args = parser.parse_args()
    if args.run:
        return run_torch_mnist(args.run[1])
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release --features cuda` first")
    if args.only in (None, "mnist"):
        bench_mnist(args.kiln, args.mnist)
    if args.only in (None, "criteo"):
        bench_criteo(args.kiln, args.rows)


if __name__ == "__main__":
    main()
