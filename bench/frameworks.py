#!/usr/bin/env python3
"""Framework models served as their frameworks saved them (issue 28's benchmark): a scikit-learn pipeline, an
XGBoost booster and a Keras SavedModel, each served over loopback HTTP by Kiln (framework worker processes behind
its batcher), MLflow (`mlflow models serve`, the model's own flavor) and the KServe Python model server (a
`kserve.Model` loading the model the way KServe's sklearn and xgboost servers do: joblib, `Booster.load_model`,
`tf.saved_model.load`), in one run.

The data is the repository's breast-cancer table (30 numeric features). Every server gets the same rows as
`{"instances": [[30 floats], ...]}`. Kiln serves each model twice: by the framework (engine `FRAMEWORK`) and
converted to ONNX on ONNX Runtime (engine `ONNX_RUNTIME`: skl2onnx, onnxmltools, tf2onnx, checked against the
framework's predictions at load). `wrk` (one thread) drives each server for `--seconds` at 1 instance per request
(16 connections) and at 64 (8 connections): req/s, p50 and p99. Each server gets 2 workers (Kiln: 1 HTTP thread,
2 model workers, each with a framework process; MLflow: 2 uvicorn workers; KServe: 2 workers). TensorFlow Serving is
not installable here (no pip or apt package); its own published REST figures are cited in the README, not measured.

    python3 bench/frameworks.py      # after `cargo build --release`; needs wrk (apt-get install wrk)

The first run creates bench/.venv-frameworks (MLflow and KServe, seeing the machine's scikit-learn, XGBoost and
TensorFlow, which must be runtime version 2.21's releases). Prints a table and the ratios.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv-frameworks")
THREADS = 2
MODELS = ("sklearn", "xgboost", "keras")


def ensure_venv():
    """Re-runs this script in VENV, made with the machine's packages visible and MLflow and KServe added."""
    python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(python):
        print(f"creating {VENV} (mlflow, kserve)...", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", "--system-site-packages", VENV])
        subprocess.check_call([python, "-m", "pip", "install", "-q", "mlflow", "kserve"])
    os.execv(python, [python] + sys.argv)


def table():
    sys.path.insert(0, os.path.join(ROOT, "crates", "cli", "tests", "onnx"))
    import export
    x, y = export.load("breast_cancer.csv")
    return x, y


def train(work):
    """Saves each model as its framework does; returns the rows to send."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import joblib
    import mlflow.sklearn
    import mlflow.xgboost
    import numpy as np
    import xgboost as xgb
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = table()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    os.makedirs(os.path.join(work, "sklearn"))
    joblib.dump(pipeline, os.path.join(work, "sklearn", "model.joblib"))
    mlflow.sklearn.save_model(pipeline, os.path.join(work, "mlflow-sklearn"))

    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "seed": 0}, xgb.DMatrix(x, label=y), 100)
    os.makedirs(os.path.join(work, "xgboost"))
    booster.save_model(os.path.join(work, "xgboost", "model.bst"))
    mlflow.xgboost.save_model(booster, os.path.join(work, "mlflow-xgboost"))

    import tensorflow as tf
    import mlflow.tensorflow
    model = tf.keras.Sequential([tf.keras.Input((x.shape[1],)), tf.keras.layers.Normalization(),
                                 tf.keras.layers.Dense(64, activation="relu"),
                                 tf.keras.layers.Dense(1, activation="sigmoid")])
    model.layers[0].adapt(x)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=5, verbose=0)
    model.export(os.path.join(work, "keras"), verbose=False)
    mlflow.tensorflow.save_model(model, os.path.join(work, "mlflow-keras"))
    return np.asarray(x, dtype=np.float32).tolist()


def kiln_servers(kiln, work):
    """Kiln, serving each model by its framework, and the same server seen through its converted versions."""
    import copy
    import serve
    port = serve.free_port()
    url = f"http://127.0.0.1:{port}/v1/projects/bench"
    log = os.path.join(work, "kiln.log")
    server = serve.Server("Kiln", [kiln, "server", "--insecure-no-auth", "--bind", f"127.0.0.1:{port}",
                                   "--data-dir", os.path.join(work, "kiln-data"), "--allow-path", work,
                                   "--http-threads", "1", "--predict-workers", str(THREADS)],
                          None, lambda rows: {"instances": rows}, log)
    serve.wait_ready(f"{url}/models", {"name": "warmup"}, server.process, log)
    for name in MODELS:
        for model, engine in ((name, "FRAMEWORK"), (name + "_onnx", "ONNX_RUNTIME")):
            serve.post(f"{url}/models", {"name": model})
            operation = serve.post(f"{url}/models/{model}/versions", {
                "name": "v1", "deploymentUri": f"file://{os.path.join(work, name)}", "engine": engine})
            while not operation.get("done"):
                time.sleep(0.5)
                operation = serve.get(f"http://127.0.0.1:{port}/v1/{operation['name']}")
            if "error" in operation:
                sys.exit(f"Kiln could not load {model}: {operation['error']}")
    server.urls = {name: f"{url}/models/{name}:predict" for name in MODELS}
    converted = copy.copy(server)
    converted.name = "Kiln, ONNX Runtime (converted)"
    converted.urls = {name: f"{url}/models/{name}_onnx:predict" for name in MODELS}
    return server, converted


def mlflow_server(name, work):
    import serve
    port = serve.free_port()
    env = {**os.environ, "PATH": os.path.join(VENV, "bin") + os.pathsep + os.environ["PATH"]}
    server = serve.Server("MLflow", [os.path.join(VENV, "bin", "mlflow"), "models", "serve", "-m",
                                     os.path.join(work, f"mlflow-{name}"), "-h", "127.0.0.1", "-p", str(port),
                                     "--env-manager", "local", "-w", str(THREADS)],
                          None, lambda rows: {"instances": rows}, os.path.join(work, f"mlflow-{name}.log"), env=env)
    server.urls = {name: f"http://127.0.0.1:{port}/invocations"}
    return server


def kserve_server(name, work):
    import serve
    port = serve.free_port()
    server = serve.Server("KServe", [sys.executable, os.path.abspath(__file__), "kserve", name, work, str(port)],
                          None, lambda rows: {"instances": rows}, os.path.join(work, f"kserve-{name}.log"))
    server.urls = {name: f"http://127.0.0.1:{port}/v1/models/{name}:predict"}
    return server


def load_framework(name, directory):
    """A function predicting rows with `name`'s model, loaded as KServe's own servers load it."""
    import numpy as np
    if name == "sklearn":
        import joblib
        model = joblib.load(os.path.join(directory, "model.joblib"))
        return lambda rows: model.predict(np.asarray(rows)).tolist()
    if name == "xgboost":
        import xgboost as xgb
        # KServe's xgbserver loads with nthread 1 (its --nthread default).
        booster = xgb.Booster(params={"nthread": 1}, model_file=os.path.join(directory, "model.bst"))
        return lambda rows: booster.predict(xgb.DMatrix(np.asarray(rows, dtype=np.float32))).tolist()
    import tensorflow as tf
    function = tf.saved_model.load(directory).signatures["serving_default"]
    (key,) = function.structured_input_signature[1]
    return lambda rows: [value.numpy().tolist()
                         for value in function(**{key: tf.constant(rows, tf.float32)}).values()][0]


try:
    import kserve

    class Served(kserve.Model):
        """A KServe model (module level: KServe's worker processes receive it pickled) that loads its framework
        in each worker on the first request."""

        def __init__(self, name, directory):
            super().__init__(name)
            self.directory, self.run = directory, None
            self.ready = True

        def __getstate__(self):
            return {**self.__dict__, "run": None}

        def predict(self, payload, headers=None):
            if self.run is None:
                self.run = load_framework(self.name, self.directory)
            return {"predictions": self.run(payload["instances"])}
except ImportError:  # outside the venv
    kserve = None


def run_kserve(name, work, port):
    """The KServe Python model server with `name`'s model, 2 worker processes."""
    kserve.ModelServer(http_port=int(port), workers=THREADS).start([Served(name, os.path.join(work, name))])


def main():
    if sys.argv[1:2] == ["kserve"]:
        ensure_venv()
        return run_kserve(*sys.argv[2:5])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiln", default=os.path.join(ROOT, "target", "release", "kiln"))
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    ensure_venv()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import serve
    work = tempfile.mkdtemp(prefix="kiln-bench-frameworks-")
    rows = train(work)

    results = {name: [] for name in MODELS}
    kiln, converted = kiln_servers(args.kiln, work)
    makers = [lambda name: kiln, lambda name: converted, lambda name: mlflow_server(name, work),
              lambda name: kserve_server(name, work)]
    try:
        for make in makers:
            for name in MODELS:
                server = make(name)
                try:
                    url = server.urls[name]
                    first = serve.wait_ready(url, server.body(rows[:1]), server.process, server.log)
                    print(f"{server.name} serves {name}; first answer {json.dumps(first)[:80]}", file=sys.stderr)
                    result = {"name": server.name}
                    for size, connections in ((1, 16), (64, 8)):
                        print(f"{server.name}, {name}: {size} instance(s) per request, {connections} connections, "
                              f"{args.seconds} s", file=sys.stderr)
                        result[size] = serve.wrk(url, server.body(rows[:size]), connections, args.seconds, work)
                    results[name].append(result)
                finally:
                    if server not in (kiln, converted):
                        server.stop()
    finally:
        kiln.stop()

    print(f"\nFramework models, loopback HTTP, wrk 1 thread, {args.seconds} s per row, {THREADS} workers per server\n")
    print("| model | server | req/s, 1 inst | p50 ms | p99 ms | req/s, 64 inst | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name in MODELS:
        for result in results[name]:
            one, many = result[1], result[64]
            print(f"| {name} | {result['name']} | {one[0]:,.0f} | {one[1]:.2f} | {one[2]:.2f} | {many[0]:,.0f} "
                  f"| {many[1]:.2f} | {many[2]:.2f} |")
    for name in MODELS:
        kilns, peers = results[name][:2], results[name][2:]
        for size in (1, 64):
            best = max(peers, key=lambda result: result[size][0])
            for kiln_result in kilns:
                print(f"{name}, {size} instance(s)/request: {kiln_result['name']} "
                      f"{kiln_result[size][0] / best[size][0]:.1f}x the req/s of the best peer ({best['name']}), "
                      f"p99 {kiln_result[size][2] / best[size][2]:.2f} of its p99")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
