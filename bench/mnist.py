#!/usr/bin/env python3
"""Built-in training on images (issue 5's benchmark, third part): the Keras MNIST example's CNN, in Kiln's
`sequential` algorithm and in TensorFlow 2 Keras, to 99.2% test accuracy.

The model is keras-team/keras' examples/mnist_cnn.py (data/mnist/cnn.yaml): Conv2D 32 3x3 ReLU, Conv2D 64 3x3
ReLU, MaxPooling 2x2, Dropout 0.25, Flatten, Dense 128 ReLU, Dropout 0.5, Dense 10 softmax; Adadelta with
learning rate 1.0 (rho 0.95, epsilon 1e-7), batch 128, at most 12 epochs, pixels scaled to [0, 1]; 60,000
training images, the 10,000 test images evaluated after every epoch. Each framework runs in its own process
with 2 threads. Reported: wall time to the first evaluation at or above 99.2%, from process start and from
the end of data loading and model building, and the time per epoch.

    python3 bench/mnist.py     # after `cargo build --release`; uses bench/.venv-train
"""
import argparse
import gzip
import json
import os
import sys

import envs
from train import parse_json, parse_kiln, time_to_target

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv-train")
MNIST = os.path.join(os.path.dirname(ROOT), "shared", "data", "mnist")
TARGET = 0.992
EPOCHS = 12
THREADS = 2


def idx(name, directory=MNIST):
    import numpy as np
    with gzip.open(os.path.join(directory, name), "rb") as handle:
        data = handle.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def run_keras():
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    from tensorflow import keras
    from tensorflow.keras import layers
    tf.random.set_seed(42)
    x = (idx("train-images-idx3-ubyte.gz").astype("float32") / 255.0)[..., None]
    y = idx("train-labels-idx1-ubyte.gz").astype("int64")
    tx = (idx("t10k-images-idx3-ubyte.gz").astype("float32") / 255.0)[..., None]
    ty = idx("t10k-labels-idx1-ubyte.gz").astype("int64")
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-7),
                  metrics=["accuracy"])

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            _, accuracy = self.model.evaluate(tx, ty, batch_size=1000, verbose=0)
            print(json.dumps({"epoch": epoch + 1, "accuracy": float(accuracy)}), flush=True)

    print(json.dumps({"ready": True}), flush=True)
    model.fit(x, y, batch_size=128, epochs=EPOCHS, verbose=0, callbacks=[Report()])


def kiln_command(kiln, job_dir, directory=MNIST, device="cpu"):
    """Kiln's `sequential` run of the Keras example on the idx files in `directory`."""
    return [kiln, "train", "sequential", "--job-dir", job_dir, "--",
            f"--model_definition={ROOT}/data/mnist/cnn.yaml", "--batch_size=128", f"--num_epochs={EPOCHS}",
            f"--training_data_path={directory}/train-images-idx3-ubyte.gz",
            f"--training_labels_path={directory}/train-labels-idx1-ubyte.gz",
            f"--validation_data_path={directory}/t10k-images-idx3-ubyte.gz",
            f"--validation_labels_path={directory}/t10k-labels-idx1-ubyte.gz", f"--device={device}"]


def print_table(results):
    """The table of `time_to_target` results by framework; the first row (Kiln's) is the ratios' base."""
    print(f"| {'framework':30} | {'total s':>8} | {'train s':>8} | {'epochs':>6} | {'s/epoch':>7} | {'÷ Kiln':>6} "
          f"| {'best':>6} |")
    print(f"|{'-' * 32}|{'-' * 10}|{'-' * 10}|{'-' * 8}|{'-' * 9}|{'-' * 8}|{'-' * 8}|")
    kiln_epoch = next(iter(results.values()))[5]
    for name, (total, train, epochs, _, best, per_epoch) in results.items():
        reached = [f"{total:8.1f}", f"{train:8.1f}", f"{epochs:6d}"] if total is not None else ["never", "", ""]
        ratio = f"{per_epoch / kiln_epoch:5.2f}x" if per_epoch and kiln_epoch else ""
        epoch = f"{per_epoch:7.1f}" if per_epoch else ""
        print(f"| {name:30} | {reached[0]:>8} | {reached[1]:>8} | {reached[2]:>6} | {epoch:>7} | {ratio:>6} "
              f"| {best:6.4f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", choices=["keras"], help=argparse.SUPPRESS)
    parser.add_argument("--kiln", default=os.path.join(ROOT, "target", "release", "kiln"))
    args = parser.parse_args()
    if args.run == "keras":
        return run_keras()
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")
    envs.ensure(VENV, ["tensorflow-cpu", "numpy"], torch=True)
    job_dir = f"/tmp/kiln-bench-mnist-{os.getpid()}"
    results = {
        "Kiln (sequential, burn-flex)": time_to_target(kiln_command(args.kiln, job_dir), parse_kiln,
                                                       {"RAYON_NUM_THREADS": str(THREADS)}, target=TARGET),
        "TensorFlow 2 (Keras)": time_to_target([sys.executable, __file__, "--run", "keras"], parse_json,
                                               target=TARGET),
    }
    print(f"\nKeras' MNIST CNN, Adadelta, batch 128, {THREADS} threads: wall time to {TARGET:.1%} test accuracy, from")
    print("the process start and from the end of data loading and model building; seconds per epoch (training and")
    print("the evaluation after it); the best test accuracy in the epochs run\n")
    print_table(results)


if __name__ == "__main__":
    main()
